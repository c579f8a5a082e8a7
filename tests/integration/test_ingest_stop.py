"""SIGTERM while PostgreSQL is unreachable: the ingester tries to flush for its grace period
(``IOC_INGEST_STOP_GRACE_S``), then exits non-zero with one line saying how many messages it
left unacknowledged; restarted with the database back, every reading is stored exactly once.
Real Mosquitto; real PostgreSQL behind a TCP relay the test stops (refused, connections cut)."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ingest_helpers import (
    IngesterProcess,
    Mosquitto,
    Publisher,
    TcpProxy,
    free_port,
    make_config_dir,
    query_all,
    reading_messages,
    unique_prefix,
    wait_for_count,
)

WARD = "20197"
GRACE_S = 3.0


def _metric(metrics_port: int, name: str) -> float:
    """Sum of the samples of ``name`` (all labels) on the ingester's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


def _received(metrics_port: int) -> float:
    return _metric(metrics_port, "ioc_ingest_messages_received_total")


def _wait_received(metrics_port: int, expected: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    got = 0.0
    while time.monotonic() < deadline:
        got = _received(metrics_port)
        if got >= expected:
            break
        time.sleep(0.2)
    return got


def test_sigterm_with_the_database_away_exits_after_the_grace_period(
    tmp_path: Path, fresh_db_url: str
) -> None:
    broker = Mosquitto(tmp_path / "broker").start()
    db = urlsplit(fresh_db_url)
    proxy = TcpProxy(db.port or 5432, db.hostname or "127.0.0.1").start()
    auth = db.username or ""
    if db.password:
        auth += f":{db.password}"
    proxied = urlunsplit(db._replace(netloc=f"{auth}@127.0.0.1:{proxy.port}"))
    prefix = unique_prefix()
    cfg = make_config_dir(tmp_path / "cfg", prefix)
    metrics_port = free_port()
    ing = IngesterProcess(
        proxied,
        broker.url,
        cfg,
        "stop-grace",
        log=tmp_path / "ingester.log",
        extra_args=["--metrics-port", str(metrics_port)],
        env={"IOC_INGEST_STOP_GRACE_S": str(GRACE_S)},
    )
    again_port = free_port()
    again = IngesterProcess(
        proxied,
        broker.url,
        cfg,
        "stop-grace",
        log=tmp_path / "again.log",
        extra_args=["--metrics-port", str(again_port)],
    )
    msgs = reading_messages(prefix, WARD, 300, t0=int(time.time() * 1000) - 600_000)
    pub = Publisher(broker.url)
    count = "SELECT count(*) FROM readings"
    try:
        ing.start()
        for topic, payload in msgs[:100]:
            pub.publish(topic, payload)
        assert wait_for_count(fresh_db_url, count, 200, 30) == 200
        time.sleep(0.5)  # their PUBACKs
        proxy.stop()  # PostgreSQL unreachable for the ingester
        for topic, payload in msgs[100:]:
            pub.publish(topic, payload)
        pub.wait_all(30)
        assert _wait_received(metrics_port, 300, 30) == 300
        time.sleep(1.0)  # the writer has met the dead connection and is retrying
        assert ing.proc is not None and ing.proc.poll() is None
        t0 = time.monotonic()
        ing.proc.send_signal(signal.SIGTERM)
        rc = ing.proc.wait(GRACE_S + 30)
        elapsed = time.monotonic() - t0
        print(f"\nSIGTERM, database away, grace {GRACE_S:g} s: exit {rc} after {elapsed:.2f} s")
        log = ing.log_text().strip().splitlines()
        assert rc != 0, log[-5:]
        assert GRACE_S - 0.5 <= elapsed <= GRACE_S + 10, elapsed
        assert log[-1] == (
            "ioc: error: stopped with 200 message(s) not stored and left unacknowledged for the"
            " broker to redeliver: the database took nothing for the 3 s grace period"
        ), log[-5:]
        assert query_all(fresh_db_url, count) == [(200,)]

        proxy.start()  # the database is back: the broker redelivers the 200
        again.start()
        assert wait_for_count(fresh_db_url, count, 600, 60) == 600
        # the 200 came again from the broker, flagged as redeliveries
        assert _metric(again_port, "ioc_ingest_messages_redelivered_total") == 200
        time.sleep(0.5)
        assert again.terminate() == 0, again.log_text()[-2000:]
        assert query_all(
            fresh_db_url,
            "SELECT count(*), count(DISTINCT (device_id, metric, ts)) FROM readings",
        ) == [(600, 600)]
    finally:
        pub.close()
        ing.ensure_stopped()
        again.ensure_stopped()
        proxy.stop()
        broker.stop()
