"""The MQTT ingester end to end (real Mosquitto, real PostgreSQL): readings, rejects, device
registry and status, application events, its own status topic, metrics and /healthz summary,
refused connections, and the shipped ACL."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mqtt_support
import paho.mqtt.client as mqtt
import psycopg2
import pytest
from ingest_helpers import (
    CONFIG_DIR,
    ROOT,
    Mosquitto,
    Publisher,
    free_port,
    query_all,
    query_one,
    unique_prefix,
)
from paho.mqtt.enums import CallbackAPIVersion

from ingest.mqtt import MqttIngester
from ioc.config import Config
from ioc.errors import IOCError
from ioc.settings import parse_mqtt_url

W = "20195"
W2 = "20197"


def with_prefix(config: Config, prefix: str, **ingest: Any) -> Config:
    system = config.system.model_copy(
        update={
            "mqtt": config.system.mqtt.model_copy(update={"topic_prefix": prefix}),
            "ingest": config.system.ingest.model_copy(update=ingest),
        }
    )
    return dataclasses.replace(config, system=system)


def wait_until(cond: Callable[[], bool], timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or cond}")


@pytest.fixture
def ingester_factory(
    config: Config, fresh_db_url: str, mqtt_url: str
) -> Iterator[Callable[..., MqttIngester]]:
    started: list[MqttIngester] = []

    def make(prefix: str, url: str | None = None, **kw: Any) -> MqttIngester:
        ingest = kw.pop("ingest", {})
        ing = MqttIngester(
            with_prefix(config, prefix, **ingest),
            fresh_db_url,
            parse_mqtt_url(url or mqtt_url),
            client_id=kw.pop("client_id", f"t-{uuid.uuid4().hex[:8]}"),
            **kw,
        )
        ing.start()
        started.append(ing)
        return ing

    yield make
    for ing in started:
        ing.stop()


def publish_all(url: str, messages: list[tuple[str, bytes | str]], retain: bool = False) -> None:
    pub = Publisher(url)
    try:
        for topic, payload in messages:
            pub.infos.append(pub.client.publish(topic, payload, qos=1, retain=retain))
        pub.wait_all(60)
    finally:
        pub.close()


@pytest.mark.embedded
def test_readings_rejects_devices_and_status(
    ingester_factory: Callable[..., MqttIngester], mqtt_url: str, fresh_db_url: str
) -> None:
    p = unique_prefix()
    ing = ingester_factory(p)
    now_ms = int(time.time() * 1000)
    t = f"{p}/{W}/air_quality/aq1/telemetry"
    msgs: list[tuple[str, bytes | str]] = [
        (t, b'{"pm25": 10, "pm10": 20}'),
        (t, json.dumps({"ts": now_ms - 1000, "values": {"pm25": 11}})),
        (
            t,
            json.dumps(
                [
                    {"ts": now_ms - 3000, "values": {"pm25": 1}},
                    {"ts": now_ms - 2000, "values": {"pm25": -5}},
                ]
            ),
        ),
        (t, b"\xff\xfe"),
        (f"{p}/{W}/air_quality/aq1/status", b"online"),
        (f"{p}/99999/air_quality/aq9/telemetry", b'{"pm25": 1}'),
        (f"{p}/{W}/noise/n1/status", b"offline"),
    ]
    publish_all(mqtt_url, msgs)
    wait_until(lambda: ing.stats.acked >= len(msgs), what="all messages acked")
    assert query_one(fresh_db_url, "SELECT count(*) FROM readings") == 4
    rejects = query_all(
        fresh_db_url, "SELECT topic, reason, payload FROM ingest_rejects ORDER BY 2"
    )
    assert [(r[0].rsplit("/", 3)[-3], r[1].split(":")[0]) for r in rejects] == [
        ("air_quality", "bad_utf8"),
        ("air_quality", "out_of_range"),
        ("air_quality", "unknown_ward"),
    ]
    assert "[1]: pm25=-5" in rejects[1][1]
    assert rejects[0][2] == "\\xff\\xfe"
    devices = query_all(
        fresh_db_url,
        "SELECT device_id, ward_code, device_type, status, last_seen IS NOT NULL"
        " FROM devices ORDER BY 1",
    )
    assert devices == [
        ("aq1", W, "air_quality", "online", True),
        ("n1", W, "noise", "offline", False),
    ]
    assert ing.stats.rejects == {"bad_utf8": 1, "out_of_range": 1, "unknown_ward": 1}
    assert ing.stats.inflight() == 0


def test_back_filled_history_moves_first_seen_back(
    ingester_factory: Callable[..., MqttIngester], mqtt_url: str, fresh_db_url: str
) -> None:
    """A device heard live, then its history (a back-fill: readings two days old arriving now,
    within a second of the live one): first_seen is its oldest reading, last_seen when a
    message last arrived."""
    p = unique_prefix()
    ing = ingester_factory(p)
    t = f"{p}/{W}/air_quality/aq1/telemetry"
    now_ms = int(time.time() * 1000)
    old = now_ms - 2 * 86_400_000
    history = [
        (t, json.dumps({"ts": old + k * 900_000, "values": {"pm25": 5 + k}})) for k in range(3)
    ]
    publish_all(mqtt_url, [(t, b'{"pm25": 10}'), *history])
    wait_until(lambda: ing.stats.acked >= 4, what="all messages acked")
    ((first, last),) = query_all(
        fresh_db_url,
        "SELECT extract(epoch FROM first_seen) * 1000, extract(epoch FROM last_seen) * 1000"
        " FROM devices",
    )
    assert float(first) == pytest.approx(old, abs=1)
    assert float(last) >= now_ms - 1000  # an arrival, not a reading's time


def test_auto_register_false_and_device_conflict(
    ingester_factory: Callable[..., MqttIngester], mqtt_url: str, fresh_db_url: str
) -> None:
    conn = psycopg2.connect(fresh_db_url)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO devices (device_id, ward_code, device_type) VALUES"
            " ('known', %s, 'noise'), ('moved', %s, 'noise')",
            (W, W2),
        )
    conn.commit()
    conn.close()
    p = unique_prefix()
    ing = ingester_factory(p, ingest={"auto_register": False})
    msgs: list[tuple[str, bytes | str]] = [
        (f"{p}/{W}/noise/known/telemetry", b'{"noise_db": 55}'),
        (f"{p}/{W}/noise/stranger/telemetry", b'{"noise_db": 56}'),
        (f"{p}/{W}/noise/stranger/status", b"online"),
        (f"{p}/{W}/noise/moved/telemetry", b'{"noise_db": 57}'),
    ]
    publish_all(mqtt_url, msgs)
    wait_until(lambda: ing.stats.acked >= len(msgs), what="acks")
    assert query_all(fresh_db_url, "SELECT device_id, value FROM readings") == [("known", 55.0)]
    reasons = [
        r[0].split(":")[0] for r in query_all(fresh_db_url, "SELECT reason FROM ingest_rejects")
    ]
    assert sorted(reasons) == ["device_conflict", "unknown_device", "unknown_device"]
    assert query_one(fresh_db_url, "SELECT count(*) FROM devices") == 2


def test_application_events_out_of_order_duplicates_and_impossible(
    ingester_factory: Callable[..., MqttIngester], mqtt_url: str, fresh_db_url: str
) -> None:
    p = unique_prefix()
    ing = ingester_factory(p)
    topic = f"{p}/{W}/applications"
    base = int(time.time() * 1000) - 10 * 86_400_000
    h = 3_600_000
    events = [
        {"id": "HS-1", "event": "completed", "ts": base + 50 * h},  # early arrival
        {"id": "HS-1", "event": "returned", "ts": base + 10 * h},
        {
            "id": "HS-1",
            "event": "received",
            "ts": base,
            "due": base + 100 * h,
            "channel": "counter",
            "procedure": "1.0001",
        },
        {"id": "HS-1", "event": "received", "ts": base + 20 * h, "due": base + 120 * h},
        {"id": "HS-1", "event": "returned", "ts": base + 10 * h},  # duplicate
        {"id": "HS-1", "event": "cancelled", "ts": base + 60 * h},  # after completed
        {"id": "HS-2", "event": "received", "ts": base},  # no due
    ]
    publish_all(mqtt_url, [(topic, json.dumps(e)) for e in events])
    wait_until(lambda: ing.stats.acked >= len(events), what="acks")
    row = query_all(
        fresh_db_url,
        "SELECT status, channel, return_count, paused_seconds,"
        " extract(epoch FROM due_at) * 1000, extract(epoch FROM completed_at) * 1000"
        " FROM applications",
    )
    assert row == [("completed", "counter", 1, 36000.0, base + 120 * h, base + 50 * h)]
    reasons = sorted(
        r[0].split(":")[0] for r in query_all(fresh_db_url, "SELECT reason FROM ingest_rejects")
    )
    assert reasons == ["impossible_transition", "missing_field"]
    assert query_one(fresh_db_url, "SELECT count(*) FROM application_events") == 4
    assert ing.summary()["rejected_by_reason"] == {"impossible_transition": 1, "missing_field": 1}


def test_own_status_topic_service_status_and_metrics(
    ingester_factory: Callable[..., MqttIngester], mqtt_url: str, fresh_db_url: str
) -> None:
    p = unique_prefix()
    port = free_port()
    cid = f"t-own-{uuid.uuid4().hex[:6]}"
    ing = ingester_factory(p, client_id=cid, metrics_port=port, status_interval_s=0.2)
    publish_all(mqtt_url, [(f"{p}/{W}/rainfall/r1/telemetry", b'{"rain_mm": 2.5}')])
    wait_until(lambda: ing.stats.acked >= 1, what="ack")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert f'ioc_ingest_messages_received_total{{instance="{cid}",kind="telemetry"}} 1.0' in body
    assert "ioc_ingest_batch_seconds_bucket" in body and "ioc_ingest_lag_seconds" in body
    wait_until(
        lambda: (
            query_one(
                fresh_db_url,
                "SELECT (details->>'acked')::int FROM service_status WHERE instance = %s",
                (cid,),
            )
            == 1
        ),
        what="service_status",
    )
    assert (
        query_one(fresh_db_url, "SELECT status FROM service_status WHERE instance = %s", (cid,))
        == "running"
    )
    assert retained(mqtt_url, f"{p}/_ingest/{cid}/status") == "online"
    ing.stop()
    assert retained(mqtt_url, f"{p}/_ingest/{cid}/status") == "offline"
    assert (
        query_one(fresh_db_url, "SELECT status FROM service_status WHERE instance = %s", (cid,))
        == "stopped"
    )


def retained(url: str, topic: str) -> str | None:
    got: list[str] = []
    c = mqtt_support.new_client(url)  # the URL's credentials and protocol
    c.on_message = lambda cl, ud, msg: got.append(msg.payload.decode())
    mqtt_support.connect(c, url)
    c.subscribe(topic, qos=1)
    deadline = time.monotonic() + 3
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    return got[0] if got else None


def test_unreachable_broker_is_a_one_line_error(config: Config, fresh_db_url: str) -> None:
    ing = MqttIngester(config, fresh_db_url, parse_mqtt_url(f"mqtt://127.0.0.1:{free_port()}"))
    with pytest.raises(IOCError, match="cannot connect to broker"):
        ing.start()
    assert not ing.writer.alive()


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A test-owned broker with a password file and the shipped ACL (deploy/mosquitto/acl)."""
    passwd = tmp_path / "passwd"
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        pytest.skip("needs mosquitto_passwd and mosquitto to run a secured broker")
    for i, (user, pw) in enumerate([("ioc-ingest", "s3cret-i"), (W, "gw-pass")]):
        flags = ["-c"] if i == 0 else []
        subprocess.run([tool, *flags, "-b", str(passwd), user, pw], check=True, timeout=10)
    acl = tmp_path / "acl"
    shutil.copy(ROOT / "deploy" / "mosquitto" / "acl", acl)
    os.chmod(passwd, 0o644)
    broker = Mosquitto(
        tmp_path / "broker",
        extra=[f"password_file {passwd}", f"acl_file {acl}", "allow_anonymous false"],
    )
    # the ACL names topics under 'ioc/': this test uses the default prefix on its own broker
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true\n", ""))
    broker.start()
    yield broker
    broker.stop()


def test_bad_credentials_fail_clearly(secured_broker: Mosquitto, fresh_db_url: str) -> None:
    env = {
        **os.environ,
        "IOC_DATABASE_URL": fresh_db_url,
        "IOC_MQTT_URL": f"mqtt://ioc-ingest:wrong@127.0.0.1:{secured_broker.port}",
        "IOC_CONFIG_DIR": str(CONFIG_DIR),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "ingest", "mqtt", "--client-id", "t-badpw"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ioc: error: broker mqtt://ioc-ingest:***@127.0.0.1")
    assert "refused the connection" in last and "wrong" not in proc.stderr
    assert "connected to" not in proc.stderr


def test_acl_scopes_gateways_to_their_ward(
    secured_broker: Mosquitto, config: Config, fresh_db_url: str
) -> None:
    """Gateway user 20195 may publish under ioc/20195/ only; the ingester reads via $share."""
    ing = MqttIngester(
        config,
        fresh_db_url,
        parse_mqtt_url(f"mqtt://ioc-ingest:s3cret-i@127.0.0.1:{secured_broker.port}"),
        client_id="t-acl",
        shared="acl",
    )
    ing.start()
    try:
        gw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw", protocol=mqtt.MQTTv5)
        gw.username_pw_set(W, "gw-pass")
        gw.connect("127.0.0.1", secured_broker.port)
        gw.loop_start()
        infos = [
            gw.publish(f"ioc/{W}/noise/gw-n1/telemetry", b'{"noise_db": 40}', qos=1),
            gw.publish(f"ioc/{W2}/noise/gw-n2/telemetry", b'{"noise_db": 41}', qos=1),
        ]
        for info in infos:
            info.wait_for_publish(10)
        wait_until(lambda: ing.stats.acked >= 1, what="the allowed reading")
        time.sleep(0.5)
        gw.disconnect()
        gw.loop_stop()
    finally:
        ing.stop()
    assert query_all(fresh_db_url, "SELECT ward_code, device_id FROM readings") == [(W, "gw-n1")]
    assert ing.stats.received_total == 1
