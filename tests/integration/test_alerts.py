"""Alert rules: minimum duration, hysteresis, dedup, states, offline detection, MQTT."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import queue
import uuid
from collections.abc import Iterator

import mqtt_support
import pytest
from test_kpi_helpers import add_device, add_readings, execute, t

from ioc.alerts import MqttPublisher, acknowledge, detect_offline, evaluate, resolve
from ioc.config import AlertRule, Config
from ioc.db import Connection, connect
from ioc.settings import parse_mqtt_url

T0 = t("2025-03-10 10:00")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return at(seconds).astimezone(t("2025-01-01 00:00").tzinfo).strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


@pytest.fixture
def ward(config: Config) -> str:
    return config.wards[0].code


PM = AlertRule(
    id="pm_high",
    kind="reading",
    metric="pm25",
    op=">",
    threshold=100,
    clear=80,
    for_s=120,
    severity="critical",
    label_vi="Bụi cao",
    label_en="High dust",
)


def alerts(conn: Connection) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT rule_id, subject, state, value, acknowledged_by, resolved_by FROM alerts"
            " ORDER BY id"
        )
        return list(cur.fetchall())


def test_reading_rule_for_s_hysteresis_and_dedup(
    conn: Connection, config: Config, ward: str
) -> None:
    steps = [  # (seconds after T0, reading, expected states of the alerts afterwards)
        (0, 120, []),  # condition starts: pending
        (60, 130, []),  # held 60 s < 120 s
        (130, 110, ["open"]),  # held 130 s: opens
        (190, 90, ["open"]),  # below threshold, above clear: stays open (hysteresis)
        (250, 120, ["open"]),  # up again: still one alert (dedup)
        (310, 79, ["resolved"]),  # past clear: resolved
        (370, 95, ["resolved"]),  # not above threshold: nothing new
    ]
    for sec, value, expected in steps:
        add_readings(conn, ward, "aq1", "pm25", [(stamp(sec), value)])
        evaluate(conn, config, now=at(sec), rules=[PM])
        evaluate(conn, config, now=at(sec), rules=[PM])  # evaluating twice changes nothing
        assert [a[2] for a in alerts(conn)] == expected, f"at +{sec}s"
    rows = alerts(conn)
    assert rows[0][:2] == ("pm_high", "aq1") and rows[0][5] == "system"
    assert rows[0][3] == 79  # last value


def test_spike_shorter_than_for_s_opens_nothing(
    conn: Connection, config: Config, ward: str
) -> None:
    for sec, value in ((0, 500), (60, 50), (130, 500), (190, 50), (260, 500)):
        add_readings(conn, ward, "aq1", "pm25", [(stamp(sec), value)])
        evaluate(conn, config, now=at(sec), rules=[PM])
    assert alerts(conn) == []


def test_acknowledge_and_resolve_record_who_and_when(
    conn: Connection, config: Config, ward: str
) -> None:
    rule = PM.model_copy(update={"for_s": 0})
    add_readings(conn, ward, "aq1", "pm25", [(stamp(0), 200)])
    res = evaluate(conn, config, now=at(0), rules=[rule])
    assert res.opened == 1
    aid = res.transitions[0].alert_id
    assert acknowledge(conn, aid, "op1") is True
    assert acknowledge(conn, aid, "op1") is False  # only an open alert can be acknowledged
    evaluate(conn, config, now=at(10), rules=[rule])  # still high: stays acknowledged, no dup
    assert [a[2] for a in alerts(conn)] == ["acknowledged"]
    assert resolve(conn, aid, "op2") is True
    assert resolve(conn, aid, "op2") is False
    with conn.cursor() as cur:
        cur.execute(
            "SELECT state, acknowledged_by, acknowledged_at IS NOT NULL, resolved_by,"
            " resolved_at IS NOT NULL FROM alerts WHERE id = %s",
            (aid,),
        )
        assert cur.fetchone() == ("resolved", "op1", True, "op2", True)


def test_kpi_rule(conn: Connection, config: Config, ward: str) -> None:
    rule = AlertRule(
        id="otr_low",
        kind="kpi",
        kpi="on_time_rate",
        period="day",
        op="<",
        threshold=80,
        clear=85,
        label_vi="x",
        label_en="x",
    )
    day = t("2025-03-10 00:00")
    ins = (
        "INSERT INTO kpi_values (kpi, ward_code, period, period_start, value)"
        " VALUES ('on_time_rate', %s, 'day', %s, %s) ON CONFLICT (kpi, ward_code, period,"
        " period_start) DO UPDATE SET value = EXCLUDED.value"
    )
    execute(conn, ins, ward, day, 70.0)
    execute(conn, ins, "city", day, 10.0)  # the city is not watched unless city: true
    evaluate(conn, config, now=at(0), rules=[rule])
    assert [(a[1], a[2]) for a in alerts(conn)] == [(ward, "open")]
    execute(conn, ins, ward, day, 82.0)
    evaluate(conn, config, now=at(60), rules=[rule])
    assert [a[2] for a in alerts(conn)] == ["open"]
    execute(conn, ins, ward, day, None)  # no data: no change
    evaluate(conn, config, now=at(90), rules=[rule])
    assert [a[2] for a in alerts(conn)] == ["open"]
    execute(conn, ins, ward, day, 90.0)
    evaluate(conn, config, now=at(120), rules=[rule])
    assert [a[2] for a in alerts(conn)] == ["resolved"]


def test_camera_health_rule(conn: Connection, config: Config, ward: str) -> None:
    rule = AlertRule(
        id="cam_frozen", kind="camera", event="frozen", for_s=120, label_vi="x", label_en="x"
    )
    execute(conn, "INSERT INTO cameras (camera_id, ward_code) VALUES ('cam1', %s)", ward)
    execute(
        conn,
        "INSERT INTO camera_events (camera_id, ward_code, kind, started_at)"
        " VALUES ('cam1', %s, 'frozen', %s)",
        ward,
        at(0),
    )
    evaluate(conn, config, now=at(60), rules=[rule])
    assert alerts(conn) == []  # frozen for 60 s < 120 s
    evaluate(conn, config, now=at(130), rules=[rule])
    assert [(a[1], a[2]) for a in alerts(conn)] == [("cam1", "open")]
    execute(conn, "UPDATE camera_events SET ended_at = %s", at(200))
    evaluate(conn, config, now=at(210), rules=[rule])
    assert [a[2] for a in alerts(conn)] == ["resolved"]


def test_offline_detection_and_device_alert(conn: Connection, config: Config, ward: str) -> None:
    now = at(0)
    # air_quality: 60 s interval × 3 → offline after 180 s of silence
    add_device(
        conn, "aq-silent", ward, "air_quality", first_seen="2025-03-01 00:00", last_seen=stamp(-200)
    )
    add_device(
        conn, "aq-ok", ward, "air_quality", first_seen="2025-03-01 00:00", last_seen=stamp(-100)
    )
    # rainfall: 300 s × 3 = 900 s
    add_device(
        conn, "rg-ok", ward, "rainfall", first_seen="2025-03-01 00:00", last_seen=stamp(-800)
    )
    add_device(conn, "aq-never", ward, "air_quality", first_seen=stamp(-1000), status="unknown")
    # marked offline earlier, data came back since
    add_device(
        conn,
        "aq-back",
        ward,
        "air_quality",
        first_seen="2025-03-01 00:00",
        last_seen=stamp(-5),
        status="offline",
    )
    execute(conn, "UPDATE devices SET status_changed_at = %s WHERE device_id = 'aq-back'", at(-600))
    for cam in ("cam-ok", "cam-dark", "cam-none"):
        execute(
            conn,
            "INSERT INTO cameras (camera_id, ward_code, status) VALUES (%s, %s, 'online')",
            cam,
            ward,
        )
    execute(
        conn,
        "INSERT INTO camera_metrics (ts, ward_code, camera_id, metric, value) VALUES"
        " (%s, %s, 'cam-ok', 'online', 1), (%s, %s, 'cam-dark', 'online', 0)",
        at(-10),
        ward,
        at(-10),
        ward,
    )

    res = detect_offline(conn, config, now=now)
    assert sorted(res.devices_offline) == ["aq-never", "aq-silent"]
    assert res.devices_online == ["aq-back"]
    assert sorted(res.cameras_offline) == ["cam-dark", "cam-none"]
    again = detect_offline(conn, config, now=now)  # idempotent
    assert again.devices_offline == [] and again.cameras_offline == []

    rule = AlertRule(id="dev_off", kind="device", label_vi="x", label_en="x")
    cam_rule = AlertRule(id="cam_off", kind="camera", event="offline", label_vi="x", label_en="x")
    evaluate(conn, config, now=now, rules=[rule, cam_rule])
    assert sorted((a[0], a[1], a[2]) for a in alerts(conn)) == [
        ("cam_off", "cam-dark", "open"),
        ("cam_off", "cam-none", "open"),
        ("dev_off", "aq-never", "open"),
        ("dev_off", "aq-silent", "open"),
    ]
    # aq-silent reports again → online → its alert resolves
    execute(conn, "UPDATE devices SET last_seen = %s WHERE device_id = 'aq-silent'", at(50))
    detect_offline(conn, config, now=at(60))
    evaluate(conn, config, now=at(60), rules=[rule])
    states = {a[1]: a[2] for a in alerts(conn) if a[0] == "dev_off"}
    assert states == {"aq-silent": "resolved", "aq-never": "open"}


def test_publish_to_mqtt(conn: Connection, config: Config, ward: str, mqtt_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    cfg = dataclasses.replace(
        config,
        system=config.system.model_copy(
            update={"mqtt": config.system.mqtt.model_copy(update={"topic_prefix": prefix})}
        ),
    )
    target = parse_mqtt_url(mqtt_url)
    got: queue.Queue[tuple[str, dict]] = queue.Queue()
    sub = mqtt_support.new_client(mqtt_url)  # the URL's credentials and protocol
    sub.on_message = lambda c, u, m: got.put((m.topic, json.loads(m.payload)))
    mqtt_support.connect(sub, mqtt_url)
    mqtt_support.subscribe(sub, f"{prefix}/alerts/#", qos=1)  # in place once this returns
    pub = MqttPublisher(cfg, target)
    try:
        rule = PM.model_copy(update={"for_s": 0})
        add_readings(conn, ward, "aq1", "pm25", [(stamp(0), 200)])
        res = evaluate(conn, cfg, now=at(0), rules=[rule])
        assert pub.publish(res.transitions) == 1
        topic, payload = got.get(timeout=5)
        assert topic == f"{prefix}/alerts/{ward}"
        assert payload["state"] == "open" and payload["subject"] == "aq1"
        assert payload["severity"] == "critical" and payload["value"] == 200
    finally:
        pub.close()
        sub.loop_stop()
        sub.disconnect()
