"""``ioc simulate`` end to end against the real broker (unique topic prefixes per test)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.parse import Parser
from ioc.config import load_config
from ioc.settings import parse_mqtt_url
from sensors.mqttio import Net
from tests.conftest import CONFIG_DIR

WARDS = ["20242", "20944"]


class Collector:
    """A QoS-1 subscriber that keeps every message under a prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        target = parse_mqtt_url(url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-collector-{uuid.uuid4().hex[:8]}",
        )
        if target.username:
            self.client.username_pw_set(target.username, target.password)

        def on_connect(c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
            c.subscribe(f"{prefix}/#", qos=1)

        def on_subscribe(c: mqtt.Client, u: object, mid: object, rc: object, p: object) -> None:
            self.ready.set()

        def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def wait_quiet(self, quiet: float = 1.5, timeout: float = 60) -> None:
        end = time.time() + timeout
        last = -1
        while time.time() < end:
            with self.lock:
                n = len(self.messages)
            if n == last:
                return
            last = n
            time.sleep(quiet)

    def close(self) -> None:
        """Clear the retained statuses left under the test prefix, then disconnect."""
        topics = {t for t, _, _ in self.messages if t.endswith("/status")}
        infos = [self.client.publish(t, b"", qos=1, retain=True) for t in topics]
        for info in infos:
            info.wait_for_publish(5)
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def prefixed(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the config folder with a unique topic prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    cfg_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, cfg_dir)
    ioc_yaml = cfg_dir / "ioc.yaml"
    text = ioc_yaml.read_text(encoding="utf-8")
    ioc_yaml.write_text(text.replace("topic_prefix: ioc", f"topic_prefix: {prefix}"), "utf-8")
    assert load_config(cfg_dir).topic_prefix == prefix
    return cfg_dir, prefix


@pytest.fixture
def collector(mqtt_url: str, prefixed: tuple[Path, str]) -> Iterator[Collector]:
    c = Collector(mqtt_url, prefixed[1])
    yield c
    c.close()


def run_ioc(mqtt_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IOC_MQTT_URL=mqtt_url)
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def summary_count(stderr: str, what: str) -> int:
    m = re.search(rf"(\d+) {what}", stderr)
    assert m, stderr
    return int(m.group(1))


def test_simulate_two_wards_end_to_end(
    mqtt_url: str, prefixed: tuple[Path, str], collector: Collector
) -> None:
    cfg_dir, prefix = prefixed
    res = run_ioc(
        mqtt_url, "--config-dir", str(cfg_dir), "simulate", "--duration", "5",
        "--wards", *WARDS, "--seed", "3",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    collector.wait_quiet()
    published = summary_count(res.stderr, "messages")
    got = collector.messages
    assert published > 20
    assert len(got) == published
    parser = Parser(load_config(cfg_dir))
    wards = set()
    for topic, payload, _ in got:
        assert topic.startswith(prefix + "/")
        parsed = parser.parse(topic, payload)
        wards.add(parsed.ward)
        if "malformed" not in res.stderr and "out_of_range" not in res.stderr:
            assert not parsed.problems, (topic, payload, parsed.problems)
    assert wards == set(WARDS)
    statuses = [p for t, p, _ in got if t.endswith("/status")]
    assert statuses and set(statuses) <= {b"online", b"offline"}


def test_backfill_one_day_through_the_broker(
    mqtt_url: str, prefixed: tuple[Path, str], collector: Collector
) -> None:
    cfg_dir, _ = prefixed
    res = run_ioc(
        mqtt_url, "--config-dir", str(cfg_dir), "simulate", "--backfill", "1",
        "--wards", "20944", "--seed", "3",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    collector.wait_quiet()
    assert len(collector.messages) == summary_count(res.stderr.splitlines()[-1], "messages")
    parser = Parser(load_config(cfg_dir))
    readings = apps = 0
    for topic, payload, _ in collector.messages:
        parsed = parser.parse(topic, payload)
        if parsed.kind == "telemetry":
            readings += payload.count(b'"ts"')
        elif parsed.kind == "application":
            apps += 1
    last = res.stderr.splitlines()[-1]
    assert readings > 500
    assert readings == summary_count(last, "readings")
    assert apps == summary_count(res.stderr.splitlines()[-1], "application events")


def test_last_will_on_abrupt_drop(
    mqtt_url: str, prefixed: tuple[Path, str], collector: Collector
) -> None:
    _, prefix = prefixed
    net = Net(parse_mqtt_url(mqtt_url), tag=prefix)
    status = f"{prefix}/20242/air_quality/aq-20242-01/status"
    try:
        net.publish("aq-20242-01", status, b"online", retain=True, will=status)
        net.check_connected("aq-20242-01")
        assert net.flush(10) == 0
        net.drop("aq-20242-01")
        end = time.time() + 10
        while time.time() < end and (status, b"offline", False) not in collector.messages:
            time.sleep(0.1)
    finally:
        net.close()
    assert (status, b"online", False) in collector.messages
    assert (status, b"offline", False) in collector.messages  # the broker sent the will


def test_runs_until_sigterm_and_exits_cleanly(mqtt_url: str, prefixed: tuple[Path, str]) -> None:
    cfg_dir, _ = prefixed
    env = dict(os.environ, IOC_MQTT_URL=mqtt_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ioc.cli", "--config-dir", str(cfg_dir), "simulate",
         "--rate", "1", "--wards", "20944"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(4)
        assert proc.poll() is None  # still running: no duration means until stopped
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped:" in err


def test_bad_arguments_are_one_line(mqtt_url: str) -> None:
    res = run_ioc(mqtt_url, "simulate", "--wards", "99999", "--duration", "1")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "ioc: error: ioc simulate: unknown ward code(s): 99999"
    ]
    res = run_ioc("mqtt://127.0.0.1:1", "simulate", "--wards", "20944", "--duration", "1")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the MQTT broker" in lines[0], lines
