"""A run asked for is a run now: the demo (back-fill landed) or a page (a KPI never computed)
asks through ``job_requests`` and the leading scheduler computes the KPIs within seconds,
not at its next 5-minute tick."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from test_kpi_helpers import add_app

from ioc import jobrequests
from ioc.config import Config
from ioc.db import connect
from ioc.scheduler import run


def _until(cond: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_requested_kpi_run_starts_at_once(config: Config, fresh_db_url: str) -> None:
    sched = config.kpis.scheduler.model_copy(
        update={
            "kpis_every_s": 3600.0,  # after the first run, none for an hour unless asked
            "rollups_every_s": 3600.0,
            "alerts_every_s": 3600.0,
            "offline_every_s": 3600.0,
            "reports_every_s": 3600.0,
            "retention_every_s": 3600.0,
            "heartbeat_every_s": 5.0,
            "periods": ["day"],
            "backfill": config.kpis.scheduler.backfill.model_copy(update={"day": 2}),
        }
    )
    cfg = dataclasses.replace(config, kpis=config.kpis.model_copy(update={"scheduler": sched}))
    conn = connect(fresh_db_url)
    stop = threading.Event()
    th = threading.Thread(target=run, args=(cfg, fresh_db_url), kwargs={"stop": stop})

    def count() -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM kpi_values WHERE kpi = 'applications_received'")
            n = int(cur.fetchone()[0])
        conn.commit()
        return n

    try:
        th.start()
        _until(lambda: count() > 0)  # the first run, right at start
        with conn.cursor() as cur:
            cur.execute("DELETE FROM kpi_values")
        conn.commit()
        add_app(conn, "dayone-1", config.wards[0].code, "2026-12-01 08:00", "2026-12-03 17:00")
        assert jobrequests.pending(conn, "kpis") is None
        assert jobrequests.request_run(conn, "kpis", "test: back-fill landed")
        assert not jobrequests.request_run(conn, "kpis", "again")  # one pending is enough
        assert jobrequests.pending(conn, "kpis") is not None
        t0 = time.monotonic()
        _until(lambda: count() > 0, timeout=30)
        assert time.monotonic() - t0 < 30  # the next tick was an hour away
        _until(lambda: jobrequests.pending(conn, "kpis") is None, timeout=10)
        # a page asking again right after a run is told no (no run per page refresh)
        assert not jobrequests.request_run(conn, "kpis", "page", min_gap_s=60)
        assert jobrequests.request_run(conn, "kpis", "page", min_gap_s=0)
    finally:
        stop.set()
        th.join(timeout=60)
        conn.close()
    assert not th.is_alive()


def test_ingest_snapshot_says_when_published_history_has_landed(fresh_db_url: str) -> None:
    import datetime as dt
    import json

    conn = connect(fresh_db_url)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)

    def report(instance: str, inflight: int, queue: int, received: int) -> None:
        details = {"inflight": inflight, "writer_queue": queue, "received": received}
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO service_status (service, instance, status, updated_at, details)"
                " VALUES ('mqtt-ingest', %s, 'running', now(), %s) ON CONFLICT (service, instance)"
                " DO UPDATE SET details = EXCLUDED.details, updated_at = now()",
                (instance, json.dumps(details)),
            )
        conn.commit()

    try:
        assert jobrequests.ingest_snapshot(conn, since) is None  # no ingester reported yet
        report("a", 120, 0, 5000)
        assert jobrequests.ingest_snapshot(conn, since) is None  # still in flight
        report("a", 0, 3000, 5000)
        assert jobrequests.ingest_snapshot(conn, since) is None  # queued for the database
        report("a", 0, 0, 5000)
        report("b", 0, 0, 7)
        assert jobrequests.ingest_snapshot(conn, since) == 5007
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert jobrequests.ingest_snapshot(conn, later) is None  # no report since then
    finally:
        conn.close()
