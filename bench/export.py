"""Benchmark: 94 wards × 1 year of daily KPI values exported to XLSX (target ≤ 3 s).

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/export.py \
        [--kpis 1] [--days 365] [--keep]

Creates a scratch database on that server, initialises the schema, stores the values in
``kpi_values`` as the scheduler would (plus the city row), then times ``write_export`` to XLSX
and to CSV, and prints rows, seconds, rows/s, file size and the process's peak memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scratch import scratch_database, seed_daily_kpis  # noqa: E402

from ioc.db import connect  # noqa: E402
from ioc.reports.export import write_export  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kpis", type=int, default=1, help="how many KPIs (default 1)")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    a = ap.parse_args()
    with scratch_database("export", keep=a.keep) as (url, cfg):
        conn = connect(url)
        tz = ZoneInfo(cfg.system.timezone)
        kpis = list(cfg.kpis.kpis)[: a.kpis]
        first = dt.datetime(2025, 1, 1, tzinfo=tz)
        t0 = time.perf_counter()
        n_rows = seed_daily_kpis(conn, cfg, kpis, first, a.days)
        print(f"stored {n_rows:,} kpi_values rows in {time.perf_counter() - t0:.2f} s")
        end = first + dt.timedelta(days=a.days - 1)
        now = end + dt.timedelta(days=2)
        for fmt in ("xlsx", "csv"):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / f"export.{fmt}"
                t0 = time.perf_counter()
                n = write_export(
                    conn,
                    cfg,
                    kpis=kpis,
                    start=first,
                    end=end,
                    every="day",
                    fmt=fmt,
                    out=out,
                    now=now,
                )
                secs = time.perf_counter() - t0
                size = out.stat().st_size
            print(
                f"{fmt}: {n:,} rows ({len(cfg.wards)} wards + city × {a.days} days × "
                f"{len(kpis)} KPI) in {secs:.2f} s = {n / secs:,.0f} rows/s, "
                f"{size / 1e6:.1f} MB"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the process: {peak:.0f} MB")
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
