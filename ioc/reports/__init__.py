"""Reports: ``ioc export`` (export) and scheduled daily/weekly/monthly reports (scheduled)."""
