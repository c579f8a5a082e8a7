"""The plain-PostgreSQL twin of ioc/db/timescale.py.

Same relation names and columns (``readings_hourly``, ``readings_daily``) as TimescaleDB's
continuous aggregates, kept current by :func:`refresh_rollups` (run by the scheduler):
incremental from a watermark with ``date_bin`` instead of ``time_bucket``. Like TimescaleDB's
invalidation log, a statement-level trigger on ``readings`` records the time range of every
insert in ``rollup_invalidations`` (one row per INSERT statement, i.e. per writer batch), so
late or back-filled data of any age is re-aggregated: only the hours it touched, plus a
``lookback`` window. Retention is :func:`apply_retention`.
"""

from __future__ import annotations

import datetime as dt

from psycopg2 import sql

from ioc.config.system import RetentionSection, StorageSection
from ioc.db import Connection
from ioc.localtime import LOCAL_TZ

# Local midnight (ioc.localtime: Asia/Ho_Chi_Minh, UTC+7, no DST): the origin of daily buckets.
DAY_ORIGIN = dt.datetime(2000, 1, 1, tzinfo=LOCAL_TZ).isoformat(sep=" ")

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
CREATE TABLE IF NOT EXISTS rollup_invalidations (
    lo timestamptz NOT NULL, hi timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION ioc_log_readings_invalidation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_invalidations (lo, hi)
    SELECT min(ts), max(ts) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER readings_invalidate AFTER INSERT ON readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION ioc_log_readings_invalidation();
CREATE INDEX IF NOT EXISTS camera_metrics_ts_brin ON camera_metrics USING brin (ts);
"""


def setup(conn: Connection, storage: StorageSection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename IN ('readings_hourly', 'readings_daily', 'rollup_invalidations')"
        )
        row = cur.fetchone()
        had = row[0] if row else 0
        if had == 3:
            return []
        cur.execute(SETUP_SQL)
    return ["roll-up tables readings_hourly, readings_daily with invalidation log"]


def _merge(ranges: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Merge overlapping or adjacent (within an hour) time ranges."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + dt.timedelta(hours=1):
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def refresh_rollups(
    conn: Connection, *, lookback_hours: int = 6, now: dt.datetime | None = None
) -> dict[str, int]:
    """Re-aggregate the hours touched since the last run (invalidation log) and the last
    ``lookback_hours`` up to ``now``; then the local days containing them.

    Idempotent and safe to run concurrently (a transaction-level advisory lock serialises it).
    Returns the number of rows written per view.
    """
    now = now or dt.datetime.now(dt.UTC)
    written = {"readings_hourly": 0, "readings_daily": 0}
    lookback = dt.timedelta(hours=lookback_hours)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('ioc.refresh_rollups'))")
        cur.execute("DELETE FROM rollup_invalidations RETURNING lo, hi")
        ranges = [(lo, hi) for lo, hi in cur.fetchall() if lo <= now]
        ranges.append((now - lookback, now))
        for lo, hi in _merge([(lo, min(hi, now)) for lo, hi in ranges]):
            cur.execute(
                "SELECT date_trunc('hour', %(lo)s::timestamptz),"
                " date_trunc('hour', %(hi)s::timestamptz) + INTERVAL '1 hour',"
                " date_bin(INTERVAL '1 day', %(lo)s::timestamptz, %(origin)s::timestamptz),"
                " date_bin(INTERVAL '1 day', %(hi)s::timestamptz, %(origin)s::timestamptz)"
                " + INTERVAL '1 day'",
                {"lo": lo, "hi": hi, "origin": DAY_ORIGIN},
            )
            h_start, h_end, d_start, d_end = cur.fetchone() or (lo, hi, lo, hi)
            cur.execute(
                "DELETE FROM readings_hourly WHERE bucket >= %s AND bucket < %s",
                (h_start, h_end),
            )
            cur.execute(
                """
                INSERT INTO readings_hourly (bucket, ward_code, metric, n, sum, avg, min, max)
                SELECT date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
                       ward_code, metric, count(*), sum(value), avg(value), min(value),
                       max(value)
                FROM readings WHERE ts >= %s AND ts < %s AND ts <= %s
                GROUP BY 1, 2, 3
                """,
                (h_start, h_end, now),
            )
            written["readings_hourly"] += cur.rowcount
            cur.execute(
                "DELETE FROM readings_daily WHERE bucket >= %s AND bucket < %s", (d_start, d_end)
            )
            cur.execute(
                """
                INSERT INTO readings_daily (bucket, ward_code, metric, n, sum, avg, min, max)
                SELECT date_bin(INTERVAL '1 day', bucket, %s::timestamptz), ward_code, metric,
                       sum(n), sum(sum), sum(sum) / NULLIF(sum(n), 0), min(min), max(max)
                FROM readings_hourly WHERE bucket >= %s AND bucket < %s
                GROUP BY 1, 2, 3
                """,
                (DAY_ORIGIN, d_start, d_end),
            )
            written["readings_daily"] += cur.rowcount
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
