"""Benchmark: one scheduler KPI run over a city-sized day of readings.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/kpis.py \
        [--hours 24] [--keep]

Creates a scratch database, registers every device type in every ward (94 × 7 devices),
writes one reading per metric per expected interval for ``--hours`` hours (generate_series),
300 applications per ward, refreshes the roll-ups and times: one ``compute_period`` per KPI for
the last hour and the last day, then a first ``compute_kpis`` run (hour + day periods).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scratch import scratch_database  # noqa: E402

from ioc.db import connect  # noqa: E402
from ioc.db.migrate import refresh_rollups  # noqa: E402
from ioc.kpi.compute import compute_period  # noqa: E402
from ioc.kpi.periods import floor  # noqa: E402
from ioc.scheduler import compute_kpis  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    with scratch_database("kpis", keep=a.keep) as (url, cfg):
        conn = connect(url)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = now - dt.timedelta(hours=a.hours)
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for w in cfg.wards:
                for key, dtype in cfg.sensors.device_types.items():
                    dev = f"{key}-{w.code}"
                    cur.execute(
                        "INSERT INTO devices (device_id, ward_code, device_type, status,"
                        " first_seen, last_seen) VALUES (%s, %s, %s, 'online', %s, %s)",
                        (dev, w.code, key, start, now),
                    )
                    cur.execute(
                        """
                        INSERT INTO readings (ts, ward_code, device_id, metric, value)
                        SELECT ts, %(ward)s, %(dev)s, m, (%(lo)s + random() * %(span)s)
                        FROM generate_series(%(start)s::timestamptz, %(now)s::timestamptz,
                                             make_interval(secs => %(step)s)) ts,
                             unnest(%(metrics)s::text[]) m
                        """,
                        {
                            "ward": w.code,
                            "dev": dev,
                            "start": start,
                            "now": now,
                            "step": dtype.interval_s,
                            "metrics": [m.name for m in dtype.metrics],
                            "lo": 0,
                            "span": 60,
                        },
                    )
                cur.execute(
                    """
                    INSERT INTO applications (id, ward_code, procedure, channel, received_at,
                        due_at, completed_at, status, last_event_at)
                    SELECT %(ward)s || '-' || i, %(ward)s, 'P', CASE WHEN i %% 2 = 0
                        THEN 'online' ELSE 'counter' END, r, r + INTERVAL '3 days',
                        CASE WHEN i %% 3 = 0 THEN r + INTERVAL '1 day' END,
                        CASE WHEN i %% 3 = 0 THEN 'completed' ELSE 'received' END, r
                    FROM generate_series(1, 300) i,
                         LATERAL (SELECT %(now)s::timestamptz - i * INTERVAL '17 minutes') x(r)
                    """,
                    {"ward": w.code, "now": now},
                )
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM readings")
            (n,) = cur.fetchone() or (0,)
        print(
            f"wrote {n:,} readings ({a.hours} h, 94 × 7 devices) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        t0 = time.perf_counter()
        refresh_rollups(conn, cfg, now=now)
        print(f"refresh_rollups (first, whole range): {time.perf_counter() - t0:.2f} s")
        tz = cfg.system.timezone
        from zoneinfo import ZoneInfo

        for period in ("hour", "day"):
            p_start = floor(now, period, ZoneInfo(tz))
            if period == "hour":
                p_start -= dt.timedelta(hours=1)
            p_end = p_start + (dt.timedelta(hours=1) if period == "hour" else dt.timedelta(days=1))
            for k in cfg.kpis.kpis:
                t0 = time.perf_counter()
                compute_period(
                    conn, cfg, kpis=[k], period=period, start=p_start, end=p_end, now=now
                )
                print(f"  {period:5s} {k:24s} {time.perf_counter() - t0:6.3f} s")
            conn.rollback()
        sched = cfg.kpis.scheduler.model_copy(update={"periods": ["hour", "day"]})
        cfg2 = dataclasses.replace(cfg, kpis=cfg.kpis.model_copy(update={"scheduler": sched}))
        t0 = time.perf_counter()
        done = compute_kpis(conn, cfg2, now=now)
        print(f"compute_kpis first run {done}: {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        done = compute_kpis(conn, cfg2, now=now + dt.timedelta(minutes=5))
        print(f"compute_kpis steady-state run {done}: {time.perf_counter() - t0:.1f} s")
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
