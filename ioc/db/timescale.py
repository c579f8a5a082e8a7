"""Every TimescaleDB-specific statement lives here: hypertables, continuous aggregates,
columnstore (compression) and retention policies. The plain-PostgreSQL twin is ioc/db/plain.py;
both produce the same relation names and columns, so no caller needs to know which is in use.
"""

from __future__ import annotations

import datetime as dt
import time

import psycopg2.errors
from psycopg2 import sql

from ioc.config.system import StorageSection
from ioc.db import Connection
from ioc.localtime import TZ_NAME

# hypertable -> (time column, columnstore segmentby, retention setting)
HYPERTABLES: dict[str, tuple[str, str | None, str]] = {
    "readings": ("ts", "device_id, metric", "readings_days"),
    "camera_metrics": ("ts", "camera_id, metric", "camera_metrics_days"),
    "ingest_rejects": ("received_at", None, "ingest_rejects_days"),
}


def available(conn: Connection) -> bool:
    """True when the extension is installed AND preloaded (a non-preloaded one cannot work)."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        if cur.fetchone() is None:
            return False
        cur.execute("SELECT current_setting('shared_preload_libraries', true)")
        row = cur.fetchone()
    preload = (row[0] or "") if row else ""
    return "timescaledb" in [p.strip() for p in preload.split(",")]


def setup(conn: Connection, storage: StorageSection) -> list[str]:
    """Create the extension, hypertables, continuous aggregates and policies (idempotent)."""
    done: list[str] = []
    retention = storage.retention
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for table, (tcol, segmentby, keep) in HYPERTABLES.items():
            cur.execute(
                "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
                (table,),
            )
            if cur.fetchone() is None:
                cur.execute(
                    "SELECT create_hypertable(%s::regclass, by_range(%s, %s::interval),"
                    " if_not_exists => TRUE, migrate_data => TRUE)",
                    (table, tcol, storage.chunk_interval),
                )
                done.append(f"hypertable {table}")
                if segmentby:
                    cur.execute(
                        sql.SQL(
                            "ALTER TABLE {} SET (timescaledb.enable_columnstore = true,"
                            " timescaledb.segmentby = %s, timescaledb.orderby = %s)"
                        ).format(sql.Identifier(table)),
                        (segmentby, f"{tcol} DESC"),
                    )
                    cur.execute(
                        "CALL add_columnstore_policy(%s::regclass, after => %s::interval,"
                        " if_not_exists => TRUE)",
                        (table, storage.compress_after),
                    )
                cur.execute(
                    "SELECT add_retention_policy(%s::regclass, drop_after => %s::interval,"
                    " if_not_exists => TRUE)",
                    (table, f"{getattr(retention, keep)} days"),
                )
        cur.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name IN ('readings_hourly', 'readings_daily')"
        )
        have = {r[0] for r in cur.fetchall()}
        if "readings_hourly" not in have:
            cur.execute(
                """
                CREATE MATERIALIZED VIEW readings_hourly
                WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
                SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, ward_code, metric,
                       count(*) AS n, sum(value) AS sum, avg(value) AS avg,
                       min(value) AS min, max(value) AS max
                FROM readings
                GROUP BY 1, 2, 3
                WITH NO DATA
                """
            )
            # start_offset NULL: the whole history, of which TimescaleDB re-materialises only
            # the buckets its invalidation log marks, so late or back-filled data of any age
            # appears (the plain path does the same with its own invalidation log).
            cur.execute(
                "SELECT add_continuous_aggregate_policy('readings_hourly',"
                " start_offset => NULL, end_offset => INTERVAL '1 minute',"
                " schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE)"
            )
            cur.execute(
                "SELECT add_retention_policy('readings_hourly', drop_after => %s::interval,"
                " if_not_exists => TRUE)",
                (f"{retention.hourly_days} days",),
            )
            done.append("continuous aggregate readings_hourly")
        if "readings_daily" not in have:
            # Hierarchical aggregate; days are local (ioc.localtime.TZ_NAME) days.
            cur.execute(
                """
                CREATE MATERIALIZED VIEW readings_daily
                WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
                SELECT time_bucket(INTERVAL '1 day', bucket, %s) AS bucket,
                       ward_code, metric, sum(n)::bigint AS n, sum(sum) AS sum,
                       sum(sum) / NULLIF(sum(n), 0) AS avg, min(min) AS min, max(max) AS max
                FROM readings_hourly
                GROUP BY 1, 2, 3
                WITH NO DATA
                """,
                (TZ_NAME,),
            )
            cur.execute(
                "SELECT add_continuous_aggregate_policy('readings_daily',"
                " start_offset => NULL, end_offset => INTERVAL '1 hour',"
                " schedule_interval => INTERVAL '5 minutes', if_not_exists => TRUE)"
            )
            done.append("continuous aggregate readings_daily")
    return done


def refresh(conn: Connection, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Materialise both aggregates up to ``now`` at once (the policies do it in the background;
    this is for callers that need back-filled history visible immediately)."""
    end = now or dt.datetime.now(dt.UTC)
    was = conn.autocommit
    conn.commit()
    conn.autocommit = True  # CALL refresh_continuous_aggregate cannot run in a transaction
    try:
        with conn.cursor() as cur:
            for view in ("readings_hourly", "readings_daily"):
                for attempt in range(50):  # a policy run may hold the window: wait for it
                    try:
                        cur.execute("CALL refresh_continuous_aggregate(%s, NULL, %s)", (view, end))
                        break
                    except psycopg2.errors.LockNotAvailable:
                        if attempt == 49:
                            raise
                        time.sleep(0.2)
    finally:
        conn.autocommit = was
    return {}
