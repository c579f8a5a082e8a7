"""SLA clocks: office hours of working days (``categories.yaml`` ``working_hours`` +
``holidays.yaml``, arithmetic of :mod:`ioc.workdays`), or round the clock.

A working clock started out of office time starts at the next office hour: an incident opened
on Saturday with 4 working hours to go is due on Monday at 11:30 (default hours).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ioc.workdays import WorkCalendar, add_working_hours, working_hours_between


@dataclass(frozen=True)
class Clock:
    """Working-time arithmetic for one SLA clock."""

    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    continuous: bool = False

    def add_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The instant when ``hours`` of clock time have run from ``start``."""
        if hours < 0:
            raise ValueError("hours must be >= 0")
        if self.continuous:
            return start + dt.timedelta(hours=hours)
        return add_working_hours(start, hours, self.calendar)

    def hours_between(self, a: dt.datetime, b: dt.datetime) -> float:
        """Clock hours from ``a`` to ``b`` (negative when ``b < a``)."""
        if self.continuous:
            return (b - a).total_seconds() / 3600.0
        return working_hours_between(a, b, self.calendar)
