"""MQTT clients for tests that honour the broker URL, and what the broker under test can do.

The session broker is ``IOC_MQTT_URL`` or, when that is unset, the embedded broker of
``ioc.demo.embedded`` (Mosquitto when installed, else amqtt; ``IOC_EMBEDDED_BROKER`` forces one).
Its URL carries generated credentials, and amqtt 0.12 speaks MQTT 3.1.1 only, has no
``$share/`` subscriptions and does not redeliver an unacknowledged QoS-1 message to a
reconnecting persistent session (docs/demo.md). So test clients:

- log in with the URL's user name and password (and TLS for ``mqtts://``);
- speak MQTT 5 when the broker does, else MQTT 3.1.1 (persistent session = clean_session off);
- and a test that needs a feature the broker lacks skips with the reason (``lacks``).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ioc.settings import parse_mqtt_url

_EMBEDDED: dict[str, str] = {}  # URL of an embedded broker started by conftest -> its engine


def register_embedded(url: str, engine: str) -> None:
    """conftest: the session's embedded broker at ``url`` is ``engine`` (amqtt | mosquitto)."""
    _EMBEDDED[url] = engine
    features.cache_clear()


@dataclasses.dataclass(frozen=True)
class BrokerFeatures:
    name: str
    mqtt5: bool
    shared_subscriptions: bool
    redelivery: bool  # an unacknowledged QoS-1 message is redelivered after a reconnect


MISSING = {
    "mqtt5": "does not speak MQTT 5",
    "shared_subscriptions": "has no $share/GROUP/... shared subscriptions",
    "redelivery": (
        "does not redeliver an unacknowledged QoS-1 message to a reconnecting persistent session"
    ),
}


@functools.cache
def features(url: str) -> BrokerFeatures:
    engine = _EMBEDDED.get(url)
    if engine == "amqtt":
        return BrokerFeatures("the embedded amqtt broker", False, False, False)
    if engine == "mosquitto":
        return BrokerFeatures("the embedded Mosquitto", True, True, True)
    target = parse_mqtt_url(url)
    v5 = _speaks_mqtt5(url)
    # $share/ is an MQTT 5 feature (Mosquitto also offers it to 3.1.1 clients); redelivery is
    # required by both MQTT 3.1.1 and 5, so a broker without it fails the tests that need it
    return BrokerFeatures(f"the broker at {target.host}:{target.port}", v5, v5, True)


def lacks(url: str, feature: str) -> str | None:
    """Why the broker at ``url`` cannot serve a test that needs ``feature`` (see ``MISSING``),
    or None when it has it. Use: ``if reason := lacks(url, f): pytest.skip(reason + ...)``."""
    found = features(url)
    return None if getattr(found, feature) else f"{found.name} {MISSING[feature]}"


def _speaks_mqtt5(url: str, timeout: float = 10.0) -> bool:
    """Whether the broker accepts an MQTT 5 CONNECT (amqtt refuses it or closes the socket)."""
    target = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    _login(client, url)
    answer: list[bool] = []
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        answer.append(not rc.is_failure)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *args: done.set()
    try:
        client.connect(target.host, target.port)
    except OSError:
        return False
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return bool(answer and answer[0])


def _login(client: mqtt.Client, url: str) -> None:
    target = parse_mqtt_url(url)
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set()


def new_client(
    url: str, client_id: str = "", *, persistent: bool = False, **kwargs: Any
) -> mqtt.Client:
    """A paho 2.x client for ``url``: its credentials, MQTT 5 when the broker speaks it."""
    if features(url).mqtt5:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, **kwargs
        )
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
            **kwargs,
        )
    _login(client, url)
    return client


def connect(
    client: mqtt.Client, url: str, *, persistent: bool = False, timeout: float = 10.0
) -> mqtt.Client:
    """Connect ``client`` (from ``new_client``), start its loop, wait for a successful CONNACK.

    ``persistent``: an MQTT 5 session that outlives the connection by an hour (with MQTT 3.1.1
    pass the same ``persistent`` to ``new_client``)."""
    target = parse_mqtt_url(url)
    connected = threading.Event()
    codes: list[Any] = []
    user_on_connect = client.on_connect

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        codes.append(rc)
        connected.set()
        if user_on_connect is not None:
            user_on_connect(c, u, flags, rc, props)

    client.on_connect = on_connect
    if features(url).mqtt5:
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        client.connect(target.host, target.port, clean_start=not persistent, properties=props)
    else:
        client.connect(target.host, target.port)
    client.loop_start()
    if not connected.wait(timeout):
        client.loop_stop()
        raise TimeoutError(f"no CONNACK from {target.host}:{target.port} within {timeout:.0f} s")
    if codes[0].is_failure:
        client.loop_stop()
        raise ConnectionError(f"{target.host}:{target.port} refused the connection: {codes[0]}")
    return client


def subscribe(client: mqtt.Client, topic: str, qos: int = 1, timeout: float = 10.0) -> None:
    """Subscribe and wait for the SUBACK (the subscription is then in place)."""
    acks: dict[int, Any] = {}
    got = threading.Condition()
    user_on_subscribe = client.on_subscribe

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, codes: Any, props: Any) -> None:
        with got:
            acks[mid] = codes
            got.notify_all()
        if user_on_subscribe is not None:
            user_on_subscribe(c, u, mid, codes, props)

    client.on_subscribe = on_subscribe
    try:
        rc, mid = client.subscribe(topic, qos=qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {mqtt.error_string(rc)}"
        with got:
            assert got.wait_for(lambda: mid in acks, timeout), f"no SUBACK for {topic}"
        assert not any(c.is_failure for c in acks[mid]), f"{topic}: {acks[mid]}"
    finally:
        client.on_subscribe = user_on_subscribe
