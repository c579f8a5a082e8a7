"""The embedded PostgreSQL and MQTT broker that `ioc demo` (and the suite, without servers) use."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg2
import pytest

from ioc.demo.embedded import EmbeddedBroker, EmbeddedPostgres, mosquitto_binary
from ioc.errors import IOCError
from ioc.settings import parse_mqtt_url

pytestmark = pytest.mark.embedded


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_postgres_starts_queries_stops_and_keeps_its_data(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start()
    try:
        assert url.startswith("postgresql://postgres:")
        assert server.initialised
        pid = server.pid
        assert pid is not None and _pid_alive(pid)
        if os.geteuid() == 0:  # PostgreSQL refuses root: it must run as the service account
            owner = Path(f"/proc/{pid}/status").read_text()
            uid_line = next(line for line in owner.splitlines() if line.startswith("Uid:"))
            assert uid_line.split()[1] != "0"
        _query(url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('Hải Châu')")
    finally:
        server.stop()
    assert not _pid_alive(pid)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=2).close()

    again = EmbeddedPostgres(tmp_path / "pg")
    url2 = again.start()
    try:
        assert not again.initialised
        assert _query(url2, "SELECT v FROM kept") == [("Hải Châu",)]
    finally:
        again.stop()


def test_postgres_refuses_a_second_server_on_the_same_data(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as first:
        with pytest.raises(IOCError, match="already runs"):
            EmbeddedPostgres(tmp_path / "pg").start()
        assert first.url is not None and _query(first.url, "SELECT 1") == [(1,)]


def test_postgres_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from ioc.demo.embedded import EmbeddedPostgres\n"
        "s = EmbeddedPostgres(Path(sys.argv[1])); s.start()\n"
        "print(s.pid, flush=True); time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "pg")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        pg_pid = int(proc.stdout.readline())
        assert _pid_alive(pg_pid)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    deadline = time.monotonic() + 20
    while _pid_alive(pg_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pg_pid), "the embedded PostgreSQL outlived its parent"
    # and the data is still usable afterwards
    with EmbeddedPostgres(tmp_path / "pg") as again:
        assert again.url is not None and _query(again.url, "SELECT 1") == [(1,)]


def _client(url: str, client_id: str, *, clean: bool) -> mqtt.Client:
    target = parse_mqtt_url(url)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    return client


def _connect(client: mqtt.Client, url: str) -> None:
    target = parse_mqtt_url(url)
    connected = threading.Event()
    codes: list[object] = []

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: object, props: object) -> None:
        codes.append(rc)
        connected.set()

    client.on_connect = on_connect
    client.connect(target.host, target.port)
    client.loop_start()
    assert connected.wait(10), "no CONNACK"
    assert not getattr(codes[0], "is_failure", True), f"connection refused: {codes[0]}"


def _subscribe(client: mqtt.Client, topic: str) -> None:
    """Subscribe with QoS 1 and wait for the broker's SUBACK (the subscription is in place)."""
    acked = threading.Event()
    client.on_subscribe = lambda *args: acked.set()
    result, _mid = client.subscribe(topic, qos=1)
    assert result == mqtt.MQTT_ERR_SUCCESS
    assert acked.wait(10), "no SUBACK"


def _stop(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


ENGINES = [
    "amqtt",
    pytest.param(
        "mosquitto",
        marks=pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_broker_qos1_round_trip_and_persistent_session(engine: str) -> None:
    prefix = f"ioc-test-{uuid.uuid4().hex[:8]}"
    received: list[tuple[str, bytes, int]] = []
    got = threading.Condition()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with got:
            received.append((msg.topic, msg.payload, msg.qos))
            got.notify_all()

    def wait_for(n: int) -> None:
        with got:
            assert got.wait_for(lambda: len(received) >= n, timeout=10), received

    with EmbeddedBroker(engine=engine) as broker:
        assert broker.engine == engine
        url = broker.url
        assert url is not None and url.startswith("mqtt://")
        assert parse_mqtt_url(url).port != 0

        sub = _client(url, f"{prefix}-sub", clean=False)
        sub.on_message = on_message
        _connect(sub, url)
        _subscribe(sub, f"{prefix}/#")

        pub = _client(url, f"{prefix}-pub", clean=True)
        _connect(pub, url)
        pub.publish(f"{prefix}/79/air/1/telemetry", b'{"pm25": 12.5}', qos=1).wait_for_publish(10)
        wait_for(1)
        assert received[0] == (f"{prefix}/79/air/1/telemetry", b'{"pm25": 12.5}', 1)

        # persistent session: QoS-1 messages sent while the subscriber is away are kept for it
        _stop(sub)
        time.sleep(1.0)  # let the broker see the disconnect (in-flight messages: see below)
        for i in range(3):
            pub.publish(f"{prefix}/79/air/1/telemetry", str(i).encode(), qos=1).wait_for_publish(10)
        back = _client(url, f"{prefix}-sub", clean=False)
        back.on_message = on_message
        _connect(back, url)
        wait_for(4)
        assert sorted(p for _, p, _ in received[1:]) == [b"0", b"1", b"2"]
        _stop(back)
        _stop(pub)


def _connack(url: str, protocol: int, password: str | None) -> object:
    """The CONNACK reason (or "no CONNACK" when the broker just closes the connection)."""
    target = parse_mqtt_url(url)
    result: list[object] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
    client.username_pw_set(target.username, password)

    def on_connect(c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        result.append(rc)
        done.set()

    def on_disconnect(c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        result.append("no CONNACK")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect(target.host, target.port)
    client.loop_start()
    done.wait(10)
    client.disconnect()
    client.loop_stop()
    return result[0] if result else "timeout"


@pytest.mark.parametrize("engine", ENGINES)
def test_broker_refuses_wrong_password_and_speaks_its_protocols(engine: str) -> None:
    with EmbeddedBroker(engine=engine) as broker:
        assert broker.url is not None
        good = parse_mqtt_url(broker.url).password
        ok = _connack(broker.url, mqtt.MQTTv311, good)
        assert not getattr(ok, "is_failure", True), ok
        bad = _connack(broker.url, mqtt.MQTTv311, "wrong")
        assert getattr(bad, "is_failure", False) and "authorized" in str(bad), bad
        v5 = _connack(broker.url, mqtt.MQTTv5, good)
        if engine == "amqtt":
            # MQTT 3.1.1 only: an MQTT 5 CONNECT is refused ("Unsupported protocol version", or
            # the connection is closed before any CONNACK): MQTT 5 clients must fall back
            assert v5 == "no CONNACK" or "protocol" in str(v5).lower(), v5
        else:
            assert not getattr(v5, "is_failure", True), v5


@pytest.mark.parametrize("engine", ENGINES)
def test_broker_port_in_use_is_one_clear_error(engine: str) -> None:
    with EmbeddedBroker(engine=engine) as first, pytest.raises(IOCError, match="did not start"):
        EmbeddedBroker(port=first.port, engine=engine).start()


def _redelivered(url: str, prefix: str) -> list[tuple[bytes, bool]]:
    """Receive one QoS-1 message without acknowledging it, drop the connection, reconnect:
    what arrives again (payload, dup flag)."""
    target = parse_mqtt_url(url)
    got: list[tuple[bytes, bool]] = []

    def subscriber() -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{prefix}-sub",
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,  # like the ingester: PUBACK only after the COMMIT
        )
        c.on_message = lambda c, u, m: got.append((m.payload, bool(m.dup)))
        if target.username:
            c.username_pw_set(target.username, target.password)
        return c

    sub = subscriber()
    _connect(sub, url)
    sub.subscribe(f"{prefix}/#", qos=1)
    time.sleep(0.5)
    pub = _client(url, f"{prefix}-pub", clean=True)
    _connect(pub, url)
    pub.publish(f"{prefix}/79/applications", b"not yet committed", qos=1).wait_for_publish(10)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == [(b"not yet committed", False)]
    _stop(sub)  # "crash" before the PUBACK
    got.clear()
    back = subscriber()
    _connect(back, url)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    _stop(back)
    _stop(pub)
    return got


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(
            "amqtt",
            marks=pytest.mark.xfail(
                strict=True, reason="amqtt 0.12 drops unacknowledged in-flight QoS-1 messages"
            ),
        ),
        ENGINES[1],
    ],
)
def test_broker_redelivers_unacknowledged_messages(engine: str) -> None:
    with EmbeddedBroker(engine=engine) as broker:
        assert broker.url is not None
        again = _redelivered(broker.url, f"ioc-test-{uuid.uuid4().hex[:8]}")
    assert again == [(b"not yet committed", True)]


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")
def test_mosquitto_keeps_queued_messages_across_restarts(tmp_path: Path) -> None:
    prefix = f"ioc-test-{uuid.uuid4().hex[:8]}"
    got: list[bytes] = []
    with EmbeddedBroker(engine="mosquitto", data_dir=tmp_path / "mqtt") as broker:
        assert broker.url is not None
        sub = _client(broker.url, f"{prefix}-sub", clean=False)
        _connect(sub, broker.url)
        _subscribe(sub, f"{prefix}/#")
        _stop(sub)
        pub = _client(broker.url, f"{prefix}-pub", clean=True)
        _connect(pub, broker.url)
        pub.publish(f"{prefix}/79/applications", b"queued", qos=1).wait_for_publish(10)
        _stop(pub)
    with EmbeddedBroker(engine="mosquitto", data_dir=tmp_path / "mqtt") as broker:
        assert broker.url is not None
        back = _client(broker.url, f"{prefix}-sub", clean=False)
        back.on_message = lambda c, u, m: got.append(m.payload)
        _connect(back, broker.url)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        _stop(back)
    assert got == [b"queued"]


def test_unknown_broker_engine_is_one_clear_error() -> None:
    with pytest.raises(IOCError, match="IOC_EMBEDDED_BROKER must be one of"):
        EmbeddedBroker(engine="hivemq")


def test_server_is_outside_our_process_group(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to the foreground group; the server has its own session, so the
    caller can stop it last, after the processes that use it."""
    with EmbeddedPostgres(tmp_path / "pg") as server:
        pid = server.pid
        assert pid is not None
        assert os.getsid(pid) == pid
        assert os.getpgid(pid) != os.getpgid(0)
    assert not _pid_alive(pid)
