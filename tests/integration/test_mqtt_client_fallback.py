"""FastClient's guard: every private paho name it uses is checked when a client is built, and
when any is missing (a paho release renamed it) or paho is not a verified release, the client
is the stock paho client (``fast`` off), and messages still arrive and are acknowledged."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from ingest_helpers import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion
from test_mqtt_client import Sub, publish

from ingest import mqtt_client
from ingest.mqtt_client import PRIVATE_ATTRS, PRIVATE_METHODS, FastClient


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def _client() -> FastClient:
    return FastClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)


def test_twelve_private_names_all_present_on_the_verified_paho() -> None:
    assert len(PRIVATE_METHODS) + len(PRIVATE_ATTRS) == 12
    assert mqtt_client.paho_version().startswith(mqtt_client.VERIFIED_PAHO)
    assert mqtt_client.FAST_PATH_AVAILABLE
    c = _client()
    assert mqtt_client.missing_private_names(c) == []
    assert c.fast


@pytest.mark.parametrize("name", PRIVATE_METHODS)
def test_a_missing_private_method_means_the_stock_client(
    name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(mqtt.Client, name)
    monkeypatch.setattr(mqtt_client, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="ingest.mqtt_client"):
        c = _client()
    assert not c.fast
    assert mqtt_client.missing_private_names(c) == [name]
    assert name in caplog.text and "stock client" in caplog.text


@pytest.mark.parametrize("name", PRIVATE_ATTRS)
def test_a_missing_private_attribute_means_the_stock_client(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    init = mqtt.Client.__init__
    removed: dict[str, Any] = {}

    def init_without(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        removed[name] = getattr(self, name)
        delattr(self, name)

    monkeypatch.setattr(mqtt.Client, "__init__", init_without)
    c = _client()
    assert not c.fast
    assert mqtt_client.missing_private_names(c) == [name]
    setattr(c, name, removed[name])  # paho's own clean-up (__del__) needs it back


def test_a_changed_packet_structure_means_the_stock_client(monkeypatch: pytest.MonkeyPatch) -> None:
    init = mqtt.Client.__init__

    def init_other(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._in_packet = object()  # a paho that keeps the name but changes what it holds

    monkeypatch.setattr(mqtt.Client, "__init__", init_other)
    c = _client()
    assert not c.fast
    assert mqtt_client.missing_private_names(c) == ["_in_packet"]


@pytest.mark.parametrize("cause", ["missing name", "unverified paho"])
def test_fallback_receives_and_acknowledges_everything(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch, cause: str
) -> None:
    if cause == "missing name":  # as if a paho release had renamed one of them
        monkeypatch.setattr(mqtt_client, "PRIVATE_ATTRS", (*PRIVATE_ATTRS, "_renamed_in_paho_9"))
    else:
        monkeypatch.setattr(mqtt_client, "paho_version", lambda: "2.9.0")
    cid = f"fb-{uuid.uuid4().hex[:8]}"
    n = 200
    sub = Sub(broker.port, cid, fast=True, receive_max=n)
    assert not sub.c.fast
    publish(broker.port, [(f"fc/d/{i}", f"v{i}".encode(), 1, None) for i in range(n)])
    sub.wait(n)
    assert sub.c.fast_publishes == 0 and {g[4] for g in sub.got} == {"paho"}
    assert [g[1] for g in sub.got] == [f"v{i}".encode() for i in range(n)]
    sub.ack_all()  # ack_many through paho's public ack()
    sub.close()
    again = Sub(broker.port, cid, fast=True)
    assert again.nothing_redelivered(broker.port)  # every message was acknowledged
    again.close()
