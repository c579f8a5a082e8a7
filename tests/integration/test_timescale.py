"""The TimescaleDB path, against a real TimescaleDB server (not available in CI).

Set ``IOC_TIMESCALE_URL`` to a server with timescaledb in ``shared_preload_libraries``
(e.g. a second cluster on port 5433) to run these; they are skipped otherwise. The plain path's
twin assertions are in test_db.py and always run.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from db_support import create_database, drop_database

from ioc.config import Config
from ioc.db import connect, storage_mode, timescale
from ioc.db.migrate import init_db

TS_URL = os.environ.get("IOC_TIMESCALE_URL")
needs_timescale = pytest.mark.skipif(
    not TS_URL, reason="IOC_TIMESCALE_URL not set (no TimescaleDB)"
)


@pytest.fixture
def ts_db(config: Config) -> Iterator[str]:
    assert TS_URL
    url = create_database(TS_URL)
    yield url
    drop_database(TS_URL, url)


def test_extension_installed_but_not_preloaded_counts_as_absent(pg_server_url: str) -> None:
    """On the ordinary server, timescaledb may be installed, but it is not preloaded."""
    conn = connect(pg_server_url)
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('shared_preload_libraries', true)")
        row = cur.fetchone()
    preload = row[0] if row else ""
    if "timescaledb" in (preload or ""):
        pytest.skip("the ordinary test server preloads timescaledb")
    assert timescale.available(conn) is False
    conn.close()


@needs_timescale
def test_timescale_path(ts_db: str, config: Config) -> None:
    conn = connect(ts_db)
    first = init_db(conn, config)
    assert first.mode == "timescaledb"
    assert storage_mode(conn) == "timescaledb"
    assert not init_db(conn, config).changed
    with conn.cursor() as cur:
        cur.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        assert {r[0] for r in cur.fetchall()} >= {"readings", "camera_metrics", "ingest_rejects"}
        cur.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates")
        assert {r[0] for r in cur.fetchall()} == {"readings_hourly", "readings_daily"}
        cur.execute(
            "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs"
            " WHERE hypertable_name IS NOT NULL"
        )
        jobs = set(cur.fetchall())
    assert ("policy_compression", "readings") in jobs
    assert ("policy_retention", "readings") in jobs
    assert ("policy_refresh_continuous_aggregate", "readings_hourly") in jobs

    base = dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.UTC)
    with conn.cursor() as cur:
        for minutes, v in ((0, 1.0), (20, 3.0), (40, 10.0)):
            cur.execute(
                "INSERT INTO readings VALUES (%s, '20194', 'd', 'pm25', %s)",
                (base + dt.timedelta(minutes=minutes), v),
            )
    conn.commit()
    with conn.cursor() as cur:  # real-time aggregation: visible before any refresh
        cur.execute("SELECT extract(hour from bucket), n, avg FROM readings_hourly ORDER BY 1")
        assert cur.fetchall() == [(16, 2, 2.0), (17, 1, 10.0)]
        cur.execute(
            "SELECT (bucket AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, n, avg FROM readings_daily"
            " ORDER BY 1"
        )
        assert cur.fetchall() == [(dt.date(2026, 3, 1), 2, 2.0), (dt.date(2026, 3, 2), 1, 10.0)]
        # A redelivered reading into a compressed chunk is still a no-op.
        cur.execute("SELECT compress_chunk(c) FROM show_chunks('readings') c")
        cur.execute(
            "INSERT INTO readings VALUES (%s, '20194', 'd', 'pm25', 99) ON CONFLICT DO NOTHING",
            (base,),
        )
        assert cur.rowcount == 0
        cur.execute("SELECT count(*) FROM readings")
        assert cur.fetchone() == (3,)
    conn.commit()
    conn.close()
