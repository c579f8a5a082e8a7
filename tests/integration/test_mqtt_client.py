"""ingest.mqtt_client.FastClient against a real Mosquitto: every message arrives once, in order,
through the fast path or paho's own (properties, big payloads, QoS 0), and ``ack_many`` really
acknowledges: a new session with the same client id gets nothing redelivered, while messages
left unacknowledged are redelivered."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from ingest_helpers import Mosquitto, free_port
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest import mqtt_client
from ingest.mqtt_client import FAST_PATH_AVAILABLE, FastClient


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


class Sub:
    """A FastClient subscriber that records (topic, payload, mid, qos, path) and acks in bulk."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        fast: bool,
        receive_max: int = 1000,
        loop_after_s: float = 0.0,
        manual_ack: bool = True,
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        self.got: list[tuple[bytes, bytes, int, int, str]] = []
        self.lock = threading.Lock()
        self.c = FastClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else False,
            manual_ack=manual_ack,
            fast=fast,
        )
        self.c.on_publish_raw = self._raw
        self.c.on_message = self._msg
        if protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
            props.ReceiveMaximum = receive_max
            self.c.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.c.connect("127.0.0.1", port)
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *args: subscribed.set()
        self.c.subscribe("fc/#", qos=1)
        time.sleep(loop_after_s)  # the broker's packets pile up in the socket meanwhile
        self.c.loop_start()
        assert subscribed.wait(10), "no SUBACK"

    def _raw(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        with self.lock:
            self.got.append((topic, payload, mid, qos, "fast"))

    def _msg(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic.encode(), bytes(msg.payload), msg.mid, msg.qos, "paho"))

    def wait(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.got) >= n, f"received {len(self.got)} of {n}"

    def ack_all(self) -> None:
        with self.lock:
            mids = [g[2] for g in self.got if g[3] == 1]
        self.c.ack_many(mids)

    def before_marker(self, port: int) -> list[tuple[bytes, bytes, int, int, str]]:
        """What this session received before a marker published now (the marker stays in
        ``got``, to be acknowledged). The broker delivers a session's messages in order, and
        sends what it queued for a reconnecting session first, so waiting for the marker waits
        for any late duplicate or redelivery, where a fixed sleep could end before it."""
        marker = f"fc/marker/{uuid.uuid4().hex[:8]}".encode()
        publish(port, [(marker.decode(), b"marker", 1, None)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with self.lock:
                at = next((i for i, g in enumerate(self.got) if g[0] == marker), None)
                if at is not None:
                    return list(self.got[:at])
            time.sleep(0.01)
        raise AssertionError("the marker message never arrived")

    def nothing_redelivered(self, port: int) -> bool:
        return self.before_marker(port) == []

    def close(self) -> None:
        time.sleep(0.3)  # let the PUBACK buffer go out before DISCONNECT
        self.c.disconnect()
        self.c.loop_stop()


def publish(port: int, msgs: list[tuple[str, bytes, int, Properties | None]]) -> None:
    p = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    p.max_inflight_messages_set(0)
    p.connect("127.0.0.1", port)
    p.loop_start()
    infos = [p.publish(t, b, qos=q, properties=props) for t, b, q, props in msgs]
    for info in infos:
        info.wait_for_publish(30)
    p.disconnect()
    p.loop_stop()


def mixed_messages(n: int) -> list[tuple[str, bytes, int, Properties | None]]:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    out: list[tuple[str, bytes, int, Properties | None]] = []
    for i in range(n):
        body = f"m{i}".encode()
        if i % 97 == 5:
            out.append((f"fc/big/{i}", body + b"x" * 200_000, 1, None))  # > 3 recv chunks
        elif i % 50 == 7:
            out.append((f"fc/props/{i}", body, 1, props))  # paho's own path
        elif i % 40 == 3:
            out.append((f"fc/q0/{i}", body, 0, None))
        else:
            out.append((f"fc/d/{i % 7}", body, 1, None))
    return out


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "stock"])
def test_every_message_once_in_order_and_acks_stick(broker: Mosquitto, fast: bool) -> None:
    cid = f"fc-{uuid.uuid4().hex[:8]}"
    n = 3000
    msgs = mixed_messages(n)
    sub = Sub(broker.port, cid, fast=fast, receive_max=n)
    publish(broker.port, msgs)
    sub.wait(n)
    got = sub.before_marker(broker.port)  # no late duplicate either
    assert [(g[0].decode(), g[1]) for g in got] == [(t, b) for t, b, _, _ in msgs]
    assert [g[3] for g in got] == [q for _, _, q, _ in msgs]
    paths = {g[4] for g in got}
    if fast and FAST_PATH_AVAILABLE:
        # + 1: the marker
        assert sub.c.fast_publishes == n - sum(1 for m in msgs if m[3] is not None) + 1
        assert paths == {"fast", "paho"}
    else:
        assert sub.c.fast_publishes == 0 and paths == {"paho"}
    sub.ack_all()
    sub.close()
    # the same session again: everything was acknowledged, nothing comes back
    again = Sub(broker.port, cid, fast=fast)
    assert again.nothing_redelivered(broker.port)
    again.close()


def test_unacked_messages_are_redelivered(broker: Mosquitto) -> None:
    """The control: without ack_many the broker redelivers, so the test above can fail."""
    cid = f"fc-{uuid.uuid4().hex[:8]}"
    sub = Sub(broker.port, cid, fast=True)
    publish(broker.port, [(f"fc/d/{i}", b"v", 1, None) for i in range(50)])
    sub.wait(50)
    with sub.lock:
        first = [g[2] for g in sub.got[:20]]
    sub.c.ack_many(first)
    sub.close()
    again = Sub(broker.port, cid, fast=True)
    again.wait(30)
    got = again.before_marker(broker.port)
    assert sorted(g[0] for g in got) == sorted(f"fc/d/{i}".encode() for i in range(20, 50))
    again.ack_all()
    again.close()


def test_buffered_packets_never_wait_for_the_next_network_event(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 messages queued for a session are already in the socket when the client's loop
    starts, so one recv() buffers them all; with a per-read limit of 2 packets, most stay in
    the buffer after loop_read: they must still be handled at once (loop_misc + socket-pair
    wake-up), not at the next network event (there is none: nothing more is sent)."""
    monkeypatch.setattr(mqtt_client, "MAX_PACKETS_PER_READ", 2)
    cid = f"fc-{uuid.uuid4().hex[:8]}"
    Sub(broker.port, cid, fast=True).close()  # the session and its subscription
    publish(broker.port, [(f"fc/d/{i}", b"v" * 10, 1, None) for i in range(500)])
    sub = Sub(broker.port, cid, fast=True, loop_after_s=1.0)
    sub.wait(500, timeout=5)
    assert sub.c.fast_publishes == 500
    sub.ack_all()
    sub.close()


def test_automatic_acks_on_the_fast_path(broker: Mosquitto) -> None:
    """Without manual_ack the fast path acknowledges each message itself, as paho does."""
    cid = f"fc-{uuid.uuid4().hex[:8]}"
    sub = Sub(broker.port, cid, fast=True, manual_ack=False)
    publish(broker.port, [(f"fc/d/{i}", b"v", 1, None) for i in range(200)])
    sub.wait(200)
    assert sub.c.fast_publishes == 200
    sub.close()
    again = Sub(broker.port, cid, fast=True)
    assert again.nothing_redelivered(broker.port)
    again.close()


def test_mqtt_311_session(broker: Mosquitto) -> None:
    """MQTT 3.1.1 has no properties byte: the fast path takes every QoS 0/1 PUBLISH."""
    cid = f"fc-{uuid.uuid4().hex[:8]}"
    msgs: list[tuple[str, bytes, int, Properties | None]] = [
        (f"fc/d/{i}", f"m{i}".encode() * (1 + i % 3), 1 if i % 10 else 0, None) for i in range(400)
    ]
    sub = Sub(broker.port, cid, fast=True, protocol=mqtt.MQTTv311)
    publish(broker.port, msgs)
    sub.wait(400)
    assert [(g[0].decode(), g[1], g[3]) for g in sub.got] == [(t, b, q) for t, b, q, _ in msgs]
    assert sub.c.fast_publishes == 400
    sub.ack_all()
    sub.close()
    again = Sub(broker.port, cid, fast=True, protocol=mqtt.MQTTv311)
    assert again.nothing_redelivered(broker.port)
    again.close()


def test_tls_listener(tmp_path: Path) -> None:
    """Through TLS (ssl sockets return at most one record per recv and keep bytes of their own:
    paho's pending() check and our buffer must work together)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs openssl to make a test certificate")
    ca_key, ca, key, csr, crt = (
        tmp_path / n for n in ("ca.key", "ca.crt", "s.key", "s.csr", "s.crt")
    )
    run = [openssl]
    subprocess.run(
        [
            *run,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        check=True,
        capture_output=True,
    )
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(
        [
            *run,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    for f in (ca, key, crt):
        f.chmod(0o644)
    tls_port = free_port()
    broker = Mosquitto(
        tmp_path / "broker",
        extra=[
            f"listener {tls_port} 127.0.0.1",
            f"certfile {crt}",
            f"keyfile {key}",
            f"cafile {ca}",
        ],
    ).start()
    try:
        got: list[bytes] = []
        c = FastClient(
            CallbackAPIVersion.VERSION2,
            client_id=f"fc-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        c.tls_set(ca_certs=str(ca))
        c.on_publish_raw = lambda t, p, mid, q: (got.append(p), c.ack_many([mid]))
        c.connect("127.0.0.1", tls_port)
        c.subscribe("fc/#", qos=1)
        c.loop_start()
        time.sleep(0.5)
        msgs = [(f"fc/t/{i}", f"m{i}".encode() * (1 + (i % 5) * 2000), 1, None) for i in range(300)]
        publish(broker.port, msgs)  # plain listener in, TLS listener out
        deadline = time.monotonic() + 20
        while len(got) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        c.disconnect()
        c.loop_stop()
        assert got == [b for _, b, _, _ in msgs]
        assert c.fast_publishes == 300
    finally:
        broker.stop()
