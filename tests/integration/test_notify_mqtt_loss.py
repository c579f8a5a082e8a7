"""The notification MQTT channel through a broker restart: alerts open in a stream while the
worker publishes their messages (QoS 1) to a test-owned Mosquitto with the project's delivery
settings; the broker stops for a second mid-stream. Every message reaches a durable subscriber
(MQTT's at-least-once: a repeat carries the same ``id``), and every outbox row ends 'sent'."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import Mosquitto
from mqtt_support import connect as mqtt_connect
from mqtt_support import new_client, subscribe
from notify_support import load, rows, wait_until
from test_notify import FAST, open_alert, worker

from ioc.db import connect

pytestmark = pytest.mark.timeout(180)

N_ALERTS = 300
WARDS = ("20195", "20197", "20200")


def test_broker_restart_mid_stream_loses_no_notification(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IOC_SMTP_URL", raising=False)
    broker = Mosquitto(tmp_path / "broker").start()
    cfg = load(
        tmp_path,
        {
            **FAST,
            "routes": [
                {"name": "m", "events": ["alert_opened"], "to": {"mqtt": ["ioc/notify/{ward}"]}}
            ],
        },
    )
    got: list[str] = []
    lock = threading.Lock()

    def on_message(c: Any, u: Any, m: Any) -> None:
        with lock:
            got.append(str(json.loads(m.payload)["id"]))

    sub = new_client(broker.url, "notify-loss-sub", persistent=True)
    sub.on_message = on_message
    sub.reconnect_delay_set(0.2, 1)
    mqtt_connect(sub, broker.url, persistent=True)
    subscribe(sub, "ioc/notify/#", qos=1)
    conn = connect(fresh_db_url)
    w = worker(cfg, fresh_db_url, tmp_path, None, mqtt_url=broker.url)
    stop = threading.Event()
    run = threading.Thread(target=w.run, args=(stop,), daemon=True)
    run.start()
    produced: list[int] = []

    def produce() -> None:
        pconn = connect(fresh_db_url)
        try:
            for i in range(N_ALERTS):
                produced.append(open_alert(pconn, cfg, WARDS[i % 3], subject=f"mq{i}"))
                time.sleep(0.01)
        finally:
            pconn.close()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        wait_until(lambda: len(got) >= N_ALERTS // 4, 60, "the first quarter received")
        received_at_stop = len(got)
        broker.restart(down_s=1.0)  # mid-stream: alerts keep opening meanwhile
        producer.join(120)
        assert len(produced) == N_ALERTS
        assert received_at_stop < N_ALERTS, "the stream ended before the restart"
        wait_until(
            lambda: (
                rows(conn, "SELECT count(*) FROM notifications WHERE status <> 'sent'") == [(0,)]
            ),
            90,
            "every notification sent",
        )
        keys = {r[0] for r in rows(conn, "SELECT idem_key FROM notifications")}
        assert len(keys) == N_ALERTS
        wait_until(lambda: keys <= set(got), 60, "every message at the subscriber")
    finally:
        stop.set()
        run.join(15)
        w.close()
        sub.loop_stop()
        sub.disconnect()
        conn.close()
        broker.stop()
    assert set(got) == keys  # nothing lost
    print(f"restart after {received_at_stop} received; repeats (QoS 1): {len(got) - len(keys)}")
