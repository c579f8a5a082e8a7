"""Benchmark: the latest KPI values of every ward (the overview's, wall's and ward pages' first
query) over a history of daily KPI values, against its former plan in the same run.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/kpi_latest.py \
        [--kpis 21] [--days 30 365] [--n 15] [--keep]

Creates a scratch database, stores ``--days`` of daily values of ``--kpis`` KPIs for the 94
wards and the city, and times ``dashboards.queries.kpi_latest`` (two steps: each KPI's periods,
then their rows) against the baseline, the former single query (below, as it was), twice: before
the table has statistics (autovacuum off for it, as in a database just filled) and after
ANALYZE. Prints p50/p95 of each and the ratio, and checks both return the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scratch import scratch_database, seed_daily_kpis  # noqa: E402

from dashboards import queries  # noqa: E402
from ioc.db import connect  # noqa: E402

BASELINE_SQL = f"""
    WITH RECURSIVE {queries._KPI_NAMES_CTE}, latest AS (
        SELECT ks.kpi, (SELECT max(period_start) FROM kpi_values m
                        WHERE m.kpi = ks.kpi AND m.ward_code = 'city'
                          AND m.period = %(p)s) AS ps
        FROM ks WHERE ks.kpi IS NOT NULL
    ), prev AS (
        SELECT l.kpi, l.ps,
               (SELECT max(period_start) FROM kpi_values q
                 WHERE q.kpi = l.kpi AND q.ward_code = 'city' AND q.period = %(p)s
                   AND q.period_start < l.ps) AS prev_ps
        FROM latest l WHERE l.ps IS NOT NULL
    )
    SELECT v.kpi, v.ward_code, v.period_start, v.value, pv.value AS prev_value,
           v.computed_at
    FROM prev
    JOIN kpi_values v ON v.kpi = prev.kpi AND v.period = %(p)s AND v.period_start = prev.ps
    LEFT JOIN kpi_values pv ON pv.kpi = v.kpi AND pv.ward_code = v.ward_code
         AND pv.period = %(p)s AND pv.period_start = prev.prev_ps
    """


def _rows(rows: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in rows), key=lambda r: (r[0], r[1]))


def _time_new(conn: Any, n: int) -> tuple[list[float], list[tuple[Any, ...]]]:
    took, rows = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        df = queries.kpi_latest(conn, period="day")
        took.append(time.perf_counter() - t0)
        rows = _rows(df.itertuples(index=False))
    return took, rows


def _time_old(conn: Any, n: int) -> tuple[list[float], list[tuple[Any, ...]]]:
    took, rows = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        df = queries._frame(conn, BASELINE_SQL, {"p": "day"})
        took.append(time.perf_counter() - t0)
        rows = _rows(df.itertuples(index=False))
    return took, rows


def _p(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kpis", type=int, default=21, help="how many KPIs (default 21)")
    ap.add_argument("--days", type=int, nargs="+", default=[30, 365])
    ap.add_argument("--n", type=int, default=15, help="timed runs of each query")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    a = ap.parse_args()
    if a.kpis < 1 or a.n < 1 or min(a.days) < 2:
        raise SystemExit("--kpis and --n must be at least 1, --days at least 2")
    with scratch_database("kpi_latest", keep=a.keep) as (url, cfg):
        names = list(cfg.kpis.kpis)  # the configured ones, then made-up names
        kpis = [names[i] if i < len(names) else f"kpi_{i}" for i in range(a.kpis)]
        conn = connect(url)
        try:
            first = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            with conn.cursor() as cur:
                cur.execute("ALTER TABLE kpi_values SET (autovacuum_enabled = false)")
            conn.commit()
            stored, seeded = 0, 0
            for days in sorted(set(a.days)):  # each round adds the older days
                start = first - dt.timedelta(days=days)
                stored += seed_daily_kpis(conn, cfg, kpis, start, days - seeded)
                seeded = days
                for stats in ("no statistics", "after ANALYZE"):
                    if stats == "after ANALYZE":
                        with conn.cursor() as cur:
                            cur.execute("ANALYZE kpi_values")
                        conn.commit()
                    new, rows_new = _time_new(conn, a.n)
                    old, rows_old = _time_old(conn, a.n)
                    if rows_new != rows_old:
                        raise SystemExit("the two forms returned different rows")
                    print(
                        f"{days} days ({stored:,} rows, {len(rows_new):,} returned), {stats}: "
                        f"kpi_latest p50 {statistics.median(new) * 1000:.1f} ms"
                        f" p95 {_p(new, 0.95) * 1000:.1f} ms; former query p50"
                        f" {statistics.median(old) * 1000:.1f} ms p95 {_p(old, 0.95) * 1000:.1f}"
                        f" ms; {statistics.median(old) / statistics.median(new):.1f}x"
                    )
                with conn.cursor() as cur:  # the next round's new rows have no statistics
                    cur.execute("DELETE FROM pg_statistic WHERE starelid = 'kpi_values'::regclass")
                conn.commit()
        finally:
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
