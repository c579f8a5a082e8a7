"""Schema creation on the real PostgreSQL: idempotent init, plain-path roll-ups and retention."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg2
import pytest

from ioc.config import Config
from ioc.db import connect, storage_mode, timescale
from ioc.db.migrate import apply_retention, init_db, migration_files, refresh_rollups

# Runs in CI's smoke subset on the embedded PostgreSQL too.
pytestmark = pytest.mark.embedded

CONTRACT_COLUMNS = {
    "readings": {"ts", "ward_code", "device_id", "metric", "value"},
    "ingest_rejects": {"received_at", "topic", "reason", "payload"},
    "applications": {
        "id", "ward_code", "procedure", "channel", "received_at", "due_at", "completed_at",
        "status",
    },
}  # fmt: skip


def _columns(url: str, table: str) -> set[str]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        )
        return {r[0] for r in cur.fetchall()}


def test_init_twice_is_a_noop(empty_db_url: str, config: Config) -> None:
    conn = connect(empty_db_url)
    first = init_db(conn, config)
    assert first.changed and first.applied == [name for _, name, _ in migration_files()]
    expected = "timescaledb" if timescale.available(conn) else "postgresql"
    assert first.mode == expected
    second = init_db(conn, config)
    assert not second.changed, second.summary()
    assert "nothing to do" in second.summary()
    assert storage_mode(conn) == expected
    conn.close()
    for table, cols in CONTRACT_COLUMNS.items():
        assert cols <= _columns(empty_db_url, table), table
    assert {"bucket", "ward_code", "metric", "n", "avg", "min", "max"} <= _columns(
        empty_db_url, "readings_hourly"
    )


def test_concurrent_inits_do_not_collide(empty_db_url: str, config: Config) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            c = connect(empty_db_url)
            init_db(c, config)
            c.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with connect(empty_db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM schema_migrations")
        assert cur.fetchone() == (len(migration_files()),)
        cur.execute("SELECT count(*) FROM wards")
        assert cur.fetchone() == (94,)


def test_readings_unique_key(fresh_db_url: str) -> None:
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with connect(fresh_db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings VALUES (%s, 'w', 'd1', 'pm25', 1.0) ON CONFLICT DO NOTHING",
            (ts,),
        )
        cur.execute(
            "INSERT INTO readings VALUES (%s, 'w', 'd1', 'pm25', 2.0) ON CONFLICT DO NOTHING",
            (ts,),
        )
        cur.execute("SELECT count(*), max(value) FROM readings")
        assert cur.fetchone() == (1, 1.0)


def test_plain_rollups_hourly_and_local_daily(fresh_db_url: str, config: Config) -> None:
    base = dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.UTC)  # 23:30 in Da Nang
    rows = [
        (base, 1.0),  # local day 2026-03-01
        (base + dt.timedelta(minutes=20), 3.0),  # 16:50Z, same hour, local 23:50
        (base + dt.timedelta(minutes=40), 10.0),  # 17:10Z = 00:10 local, next local day
    ]
    conn = connect(fresh_db_url)
    with conn.cursor() as cur:
        for ts, v in rows:
            cur.execute("INSERT INTO readings VALUES (%s, '20194', 'd', 'pm25', %s)", (ts, v))
    conn.commit()
    now = base + dt.timedelta(hours=2)
    refresh_rollups(conn, config, now=now)
    with conn.cursor() as cur:
        cur.execute("SELECT bucket, n, avg, min, max FROM readings_hourly ORDER BY bucket")
        hourly = cur.fetchall()
        cur.execute(
            "SELECT (bucket AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, n, avg FROM readings_daily"
            " ORDER BY bucket"
        )
        daily = cur.fetchall()
    assert [(h[0].hour, h[1], h[2]) for h in hourly] == [(16, 2, 2.0), (17, 1, 10.0)]
    assert daily == [(dt.date(2026, 3, 1), 2, 2.0), (dt.date(2026, 3, 2), 1, 10.0)]
    # Late data inside the look-back window is picked up by the next refresh.
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings VALUES (%s, '20194', 'd2', 'pm25', 5.0)",
            (base + dt.timedelta(minutes=1),),
        )
    conn.commit()
    refresh_rollups(conn, config, now=now + dt.timedelta(minutes=5))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n, avg FROM readings_hourly WHERE bucket = %s", (base.replace(minute=0),)
        )
        assert cur.fetchone() == (3, 3.0)
    conn.close()


def test_backfilled_history_reaches_the_rollups(fresh_db_url: str, config: Config) -> None:
    """Data far older than the look-back window, inserted after a refresh, is aggregated."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    conn = connect(fresh_db_url)
    refresh_rollups(conn, config, now=now)
    old = now - dt.timedelta(days=20)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings SELECT %s + make_interval(mins => g), '20194', 'd', 'pm25', g"
            " FROM generate_series(0, 119) g",
            (old.replace(minute=0, second=0),),
        )
    conn.commit()
    refresh_rollups(conn, config, now=now + dt.timedelta(minutes=1))
    with conn.cursor() as cur:
        cur.execute("SELECT sum(n), sum(sum) FROM readings_hourly WHERE bucket < %s", (now,))
        assert cur.fetchone() == (120, sum(range(120)))
        cur.execute("SELECT sum(n) FROM readings_daily")
        assert cur.fetchone() == (120,)
    conn.close()


def test_plain_retention(fresh_db_url: str, config: Config) -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    keep = config.system.storage.retention.readings_days
    conn = connect(fresh_db_url)
    if storage_mode(conn) == "timescaledb":
        conn.close()
        pytest.skip("TimescaleDB path: retention is a TimescaleDB policy (test_timescale.py)")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings VALUES (%s, 'w', 'd', 'm', 1), (%s, 'w', 'd', 'm', 2)",
            (now - dt.timedelta(days=keep + 1), now - dt.timedelta(days=keep - 1)),
        )
    conn.commit()
    deleted = apply_retention(conn, config, now=now)
    assert deleted["readings"] == 1
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM readings")
        assert cur.fetchall() == [(2.0,)]
    conn.close()


def test_unreachable_database_is_one_line() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "db", "init"],
        env={"IOC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none", "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ioc: error: cannot connect to database")


def test_psycopg2_available() -> None:
    assert psycopg2.__version__
