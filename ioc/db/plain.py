"""The plain-PostgreSQL twin of ioc/db/timescale.py.

Same relation names and columns (``readings_hourly``, ``readings_daily``) as TimescaleDB's
continuous aggregates, kept current by :func:`refresh_rollups` (run by the scheduler):
incremental from a watermark, recomputing ``lookback`` hours for late data, with ``date_bin``
instead of ``time_bucket``. Retention is :func:`apply_retention`.
"""

from __future__ import annotations

import datetime as dt

from psycopg2 import sql

from ioc.config.system import RetentionSection, StorageSection
from ioc.db import Connection

# Local midnight in Asia/Ho_Chi_Minh (UTC+7, no DST): the origin of daily buckets.
DAY_ORIGIN = "2000-01-01 00:00:00+07"

SETUP_SQL = """
CREATE TABLE IF NOT EXISTS readings_hourly (
    bucket timestamptz NOT NULL, ward_code text NOT NULL, metric text NOT NULL,
    n bigint NOT NULL, sum double precision, avg double precision,
    min double precision, max double precision,
    PRIMARY KEY (bucket, ward_code, metric)
);
CREATE TABLE IF NOT EXISTS readings_daily (
    bucket timestamptz NOT NULL, ward_code text NOT NULL, metric text NOT NULL,
    n bigint NOT NULL, sum double precision, avg double precision,
    min double precision, max double precision,
    PRIMARY KEY (bucket, ward_code, metric)
);
CREATE INDEX IF NOT EXISTS readings_hourly_metric ON readings_hourly (metric, bucket);
CREATE INDEX IF NOT EXISTS readings_daily_metric ON readings_daily (metric, bucket);
CREATE INDEX IF NOT EXISTS readings_ts_brin ON readings USING brin (ts);
CREATE INDEX IF NOT EXISTS camera_metrics_ts_brin ON camera_metrics USING brin (ts);
"""


def setup(conn: Connection, storage: StorageSection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename IN ('readings_hourly', 'readings_daily')"
        )
        row = cur.fetchone()
        had = row[0] if row else 0
        cur.execute(SETUP_SQL)
    return [] if had == 2 else ["roll-up tables readings_hourly, readings_daily"]


def refresh_rollups(
    conn: Connection, *, lookback_hours: int = 6, now: dt.datetime | None = None
) -> dict[str, int]:
    """Recompute hourly and daily roll-ups from the watermark (minus lookback) up to now.

    Idempotent and safe to run concurrently (a transaction-level advisory lock serialises it).
    Returns the number of rows written per view.
    """
    now = now or dt.datetime.now(dt.UTC)
    written: dict[str, int] = {}
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('ioc.refresh_rollups'))")
        cur.execute(
            "SELECT materialized_until FROM rollup_watermarks WHERE name = 'readings_hourly'"
        )
        row = cur.fetchone()
        lookback = dt.timedelta(hours=lookback_hours)
        if row is None:
            cur.execute("SELECT min(ts) FROM readings")
            first = cur.fetchone()
            start = first[0] if first and first[0] is not None else now - lookback
        else:
            start = min(row[0], now - lookback)
        cur.execute("SELECT date_trunc('hour', %s::timestamptz)", (start,))
        (h_start,) = cur.fetchone() or (start,)
        cur.execute(
            "DELETE FROM readings_hourly WHERE bucket >= %s AND bucket <= %s", (h_start, now)
        )
        cur.execute(
            """
            INSERT INTO readings_hourly (bucket, ward_code, metric, n, sum, avg, min, max)
            SELECT date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
                   ward_code, metric, count(*), sum(value), avg(value), min(value), max(value)
            FROM readings WHERE ts >= %s AND ts <= %s
            GROUP BY 1, 2, 3
            """,
            (h_start, now),
        )
        written["readings_hourly"] = cur.rowcount
        cur.execute(
            "SELECT date_bin(INTERVAL '1 day', %s::timestamptz, %s::timestamptz)",
            (h_start, DAY_ORIGIN),
        )
        (d_start,) = cur.fetchone() or (h_start,)
        cur.execute(
            "DELETE FROM readings_daily WHERE bucket >= %s AND bucket <= %s", (d_start, now)
        )
        cur.execute(
            """
            INSERT INTO readings_daily (bucket, ward_code, metric, n, sum, avg, min, max)
            SELECT date_bin(INTERVAL '1 day', bucket, %s::timestamptz), ward_code, metric,
                   sum(n), sum(sum), sum(sum) / NULLIF(sum(n), 0), min(min), max(max)
            FROM readings_hourly WHERE bucket >= %s AND bucket <= %s
            GROUP BY 1, 2, 3
            """,
            (DAY_ORIGIN, d_start, now),
        )
        written["readings_daily"] = cur.rowcount
        for name in ("readings_hourly", "readings_daily"):
            cur.execute(
                "INSERT INTO rollup_watermarks (name, materialized_until) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE"
                " SET materialized_until = EXCLUDED.materialized_until",
                (name, now),
            )
    conn.commit()
    return written


RETAINED: dict[str, tuple[str, str]] = {
    "readings": ("ts", "readings_days"),
    "camera_metrics": ("ts", "camera_metrics_days"),
    "ingest_rejects": ("received_at", "ingest_rejects_days"),
    "readings_hourly": ("bucket", "hourly_days"),
}


def apply_retention(
    conn: Connection, retention: RetentionSection, *, now: dt.datetime | None = None
) -> dict[str, int]:
    """Delete rows older than each table's retention (the plain path's drop_chunks)."""
    now = now or dt.datetime.now(dt.UTC)
    deleted: dict[str, int] = {}
    with conn.cursor() as cur:
        for table, (col, key) in RETAINED.items():
            cutoff = now - dt.timedelta(days=getattr(retention, key))
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE {} < %s").format(
                    sql.Identifier(table), sql.Identifier(col)
                ),
                (cutoff,),
            )
            deleted[table] = cur.rowcount
    conn.commit()
    return deleted
