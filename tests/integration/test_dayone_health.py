"""/healthz on a running system: the broker as the MQTT ingester sees it (real Mosquitto, real
PostgreSQL), and failed TimescaleDB background jobs (the query run on plain PostgreSQL against
stand-in views of ``timescaledb_information``: CI has no TimescaleDB).

With ``IOC_DATABASE_URL`` on a TimescaleDB server the same tests run on the Timescale path;
there the upstream background jobs may be failing ("cannot drop portal" on PostgreSQL 15), and
/healthz must then say degraded and name them: :func:`_status_ok` expects exactly that."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest
from ingest_helpers import Publisher, unique_prefix

from dashboards.db import Pool
from dashboards.ops import health_report
from dashboards.state import AppState
from ingest.mqtt import MqttIngester
from ioc.config import Config
from ioc.db import storage_mode, timescale
from ioc.settings import parse_mqtt_url


def _state(cfg: Config, url: str) -> AppState:
    return AppState(cfg=cfg, pool=Pool(url), secret_key="x" * 40)


def _on_timescale(url: str) -> bool:
    conn = psycopg2.connect(url)
    try:
        return storage_mode(conn) == "timescaledb"
    finally:
        conn.close()


def _status_ok(body: dict[str, Any], timescale_path: bool) -> bool:
    """Healthy but for TimescaleDB's own failing jobs: on the plain path 'ok' and no jobs; on
    the Timescale path 'ok', or 'degraded' naming the failing jobs (never hidden)."""
    if not timescale_path:
        return body["status"] == "ok" and "jobs" not in body
    failing = body.get("jobs", {}).get("failed", 0)
    return body["status"] == ("degraded" if failing else "ok")


def _until(cond: Callable[[], Any], timeout: float = 30.0, what: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out: {what() if what else cond}")


def test_healthz_broker_ok_while_the_ingester_is_connected(
    config: Config, fresh_db_url: str, mqtt_url: str
) -> None:
    p = unique_prefix()
    system = config.system.model_copy(
        update={"mqtt": config.system.mqtt.model_copy(update={"topic_prefix": p})}
    )
    cfg = dataclasses.replace(config, system=system)
    ing = MqttIngester(
        cfg,
        fresh_db_url,
        parse_mqtt_url(mqtt_url),
        client_id=f"t-health-{uuid.uuid4().hex[:6]}",
        status_interval_s=0.2,
    )
    ing.start()
    st = _state(cfg, fresh_db_url)
    pub = Publisher(mqtt_url)
    try:  # one reading, so the writer has its database connection too
        pub.publish(f"{p}/20195/rainfall/r1/telemetry", b'{"rain_mm": 2.5}')
        pub.wait_all(60)
    finally:
        pub.close()
    try:
        seen: list[Any] = []
        body = _until(
            lambda: (
                seen.append(r := health_report(st)[0])
                or (r["services"].get("mqtt-ingest") == "ok" and r)
            ),
            what=lambda: seen[-1],
        )
        # details.broker is the broker's URL; it is not a state
        assert body["broker"] == "ok", body
        assert _status_ok(body, _on_timescale(fresh_db_url)), body
        assert body["ingest"] == {"mqtt-ingest": "ok"}
    finally:
        ing.stop()
    body, code = health_report(st)
    assert code == 200
    assert body["broker"] == "down" and body["status"] == "degraded"  # stopped: not connected
    st.pool.close()


_STAND_IN = """
CREATE SCHEMA timescaledb_information;
CREATE TABLE timescaledb_information.jobs (job_id int, application_name text, proc_name text,
    hypertable_name text);
CREATE TABLE timescaledb_information.job_stats (job_id int, last_run_status text,
    last_run_started_at timestamptz, total_runs bigint, total_failures bigint);
CREATE TABLE timescaledb_information.job_errors (job_id int, start_time timestamptz,
    err_message text);
INSERT INTO timescaledb_information.jobs VALUES
    (1000, 'Columnstore Policy [1000]', 'policy_compression', 'readings'),
    (1001, 'Retention Policy [1001]', 'policy_retention', 'readings'),
    (1002, 'Refresh Continuous Aggregate Policy [1002]', 'policy_refresh_continuous_aggregate',
     'readings_hourly');
INSERT INTO timescaledb_information.job_stats VALUES
    (1000, 'Failed', now() - interval '5 minutes', 12, 12),
    (1001, 'Success', now() - interval '1 hour', 3, 0),
    (1002, 'Failed', now() - interval '1 minute', 40, 2);
INSERT INTO timescaledb_information.job_errors VALUES
    (1000, now() - interval '1 hour', 'old error'),
    (1000, now() - interval '5 minutes', 'cannot drop portal'),
    (1002, now() - interval '1 minute', 'cannot drop portal');
"""


def test_failed_timescale_jobs_in_healthz(config: Config, fresh_db_url: str) -> None:
    if _on_timescale(fresh_db_url):
        pytest.skip("stand-in views for plain PostgreSQL; on TimescaleDB the real jobs count")
    st = _state(config, fresh_db_url)
    conn = psycopg2.connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(_STAND_IN)
        conn.commit()
        jobs = timescale.failed_jobs(conn)
        assert [(j["job_id"], j["total_failures"], j["error"]) for j in jobs] == [
            (1000, 12, "cannot drop portal"),
            (1002, 2, "cannot drop portal"),
        ]
        # the plain path does not look at jobs at all
        body, _ = health_report(st)
        assert "jobs" not in body
        with conn.cursor() as cur:
            cur.execute("UPDATE ioc_meta SET value = 'timescaledb' WHERE key = 'storage_mode'")
            assert cur.rowcount == 1
        conn.commit()
        st.cache.clear() if hasattr(st.cache, "clear") else None
        body, code = health_report(st)
        assert code == 200
        assert body["jobs"] == {
            "failed": 2,
            "failing": [
                "Columnstore Policy [1000]",
                "Refresh Continuous Aggregate Policy [1002]",
            ],
        }
        assert body["status"] == "degraded"
        # a server without job_errors (TimescaleDB < 2.9) still lists the failures
        with conn.cursor() as cur:
            cur.execute("DROP TABLE timescaledb_information.job_errors")
        conn.commit()
        assert [j["error"] for j in timescale.failed_jobs(conn)] == [None, None]
    finally:
        conn.close()
        st.pool.close()


def test_a_scheduler_leader_or_standby_is_healthy(config: Config, fresh_db_url: str) -> None:
    """The scheduler reports ``leader`` / ``standby`` (not ``running``): both are well, so
    /healthz stays ok (it said degraded for every demo); ``stopped`` is not."""
    from ioc.db.service_status import record_service_status

    st = _state(config, fresh_db_url)
    ts_path = _on_timescale(fresh_db_url)
    conn = psycopg2.connect(fresh_db_url)
    try:
        for instance, status in (("h1", "leader"), ("h2", "standby")):
            with conn.cursor() as cur:
                record_service_status(cur, "scheduler", instance, status)
            conn.commit()
            body, _ = health_report(st)
            assert body["services"] == {"scheduler": "ok"} and _status_ok(body, ts_path), body
        with conn.cursor() as cur:
            cur.execute("DELETE FROM service_status")
            record_service_status(cur, "scheduler", "h1", "stopped")
        conn.commit()
        body, _ = health_report(st)
        assert body["services"] == {"scheduler": "stopped"} and body["status"] == "degraded"
    finally:
        conn.close()
        st.pool.close()
