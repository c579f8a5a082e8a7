"""The simulator's MQTT connections, driven from one thread (no thread per connection).

Connections by name: a direct station's id (its own connection, with its last will ``offline``
retained on its status topic) or ``gw-{ward}`` (the ward gateway that carries the other devices
and the one-stop-shop events). Every paho client runs without its own thread: ``poll()`` selects
over all sockets, reads acknowledgements, flushes writes and keeps the sessions alive. Publishing
is QoS 1. ``drop(name)`` closes a connection abruptly, without DISCONNECT, so the broker publishes
its will — the "offline with last will" fault.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ioc.errors import IOCError
from ioc.settings import MqttTarget

log = logging.getLogger("ioc.simulate.mqtt")


@dataclass
class _Conn:
    client: mqtt.Client
    will_topic: str | None
    pending: list[mqtt.MQTTMessageInfo] = field(default_factory=list)
    lost_at: float | None = None
    refused: str | None = None


def _acked(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether a QoS-1 message is acknowledged; also for one queued while disconnected."""
    if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
        return info.is_published()
    # Published while the connection was down: paho keeps it and sends it after reconnecting,
    # but is_published() raises for such a message; read the flag it sets on PUBACK.
    return bool(getattr(info, "_published", False))


class Net:
    """Named MQTT connections over one broker, serviced by :meth:`poll`."""

    def __init__(self, target: MqttTarget, *, tag: str, keepalive: int = 60, inflight: int = 200):
        self.target = target
        self.tag = tag
        self.keepalive = keepalive
        self.inflight = inflight
        self.conns: dict[str, _Conn] = {}
        self.published = 0
        self._last_misc = 0.0
        self._suffix = f"{os.getpid() % 100000:05d}"

    # -- connections -------------------------------------------------------------------------
    def _new_client(self, name: str, will_topic: str | None) -> _Conn:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{self.tag}-{name}-{self._suffix}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self.target.username:
            client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        if will_topic:
            client.will_set(will_topic, b"offline", qos=1, retain=True)
        client.max_inflight_messages_set(self.inflight)
        client.max_queued_messages_set(0)
        conn = _Conn(client, will_topic)

        def on_connect(
            c: mqtt.Client, ud: object, flags: object, rc: object, props: object
        ) -> None:
            if getattr(rc, "is_failure", False):
                conn.refused = str(rc)

        client.on_connect = on_connect
        try:
            client.connect(self.target.host, self.target.port, keepalive=self.keepalive)
        except (OSError, ssl.SSLError) as exc:
            raise IOCError(
                f"cannot reach the MQTT broker {self.target.redacted()}: {exc}"
            ) from None
        return conn

    def ensure(self, name: str, will_topic: str | None = None) -> _Conn:
        conn = self.conns.get(name)
        if conn is None:
            conn = self._new_client(name, will_topic)
            self.conns[name] = conn
        return conn

    def check_connected(self, name: str, timeout: float = 10.0) -> None:
        """Wait for the CONNACK of ``name``; one-line error if refused or silent."""
        conn = self.ensure(name)
        end = time.monotonic() + timeout
        while not conn.client.is_connected():
            if conn.refused:
                raise IOCError(
                    f"the MQTT broker {self.target.redacted()} refused the connection:"
                    f" {conn.refused}"
                )
            if time.monotonic() > end:
                raise IOCError(f"no answer from the MQTT broker {self.target.redacted()}")
            self.poll(0.05)

    def publish(
        self,
        name: str,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        will: str | None = None,
    ) -> None:
        conn = self.ensure(name, will)
        info = conn.client.publish(topic, payload, qos=1, retain=retain)
        conn.pending.append(info)
        self.published += 1

    def drop(self, name: str) -> None:
        """Close ``name`` abruptly (no DISCONNECT): the broker publishes its last will."""
        conn = self.conns.pop(name, None)
        if conn is None:
            return
        sock = conn.client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError, ssl.SSLError):
            conn.client.loop_read()  # sees the closed socket and releases it
        self._release(conn.client)

    @staticmethod
    def _release(client: mqtt.Client) -> None:
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        for attr in ("_sockpairR", "_sockpairW"):
            sp = getattr(client, attr, None)
            if sp is not None:
                sp.close()
                setattr(client, attr, None)

    # -- servicing ---------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> None:
        """Read, write and keep alive every connection; wait at most ``timeout`` seconds."""
        socks: dict[Any, _Conn] = {}
        writers: list[Any] = []
        for conn in self.conns.values():
            s = conn.client.socket()
            if s is None:
                continue
            socks[s] = conn
            if conn.client.want_write():
                writers.append(s)
        if socks:
            try:
                readable, writable, _ = select.select(list(socks), writers, [], timeout)
            except (OSError, ValueError):
                readable, writable = [], []
            for s in readable:
                socks[s].client.loop_read()
            for s in writable:
                socks[s].client.loop_write()
        elif timeout > 0:
            time.sleep(timeout)
        now = time.monotonic()
        if now - self._last_misc >= 1.0:
            self._last_misc = now
            for name, conn in self.conns.items():
                conn.client.loop_misc()
                if conn.client.socket() is None:
                    self._reconnect(name, conn, now)
                conn.pending = [i for i in conn.pending if not _acked(i)]

    def _reconnect(self, name: str, conn: _Conn, now: float) -> None:
        if conn.lost_at is None:
            conn.lost_at = now
            log.warning("connection %s lost; reconnecting", name)
            return
        if now - conn.lost_at < 2.0:
            return
        try:
            conn.client.reconnect()
            conn.lost_at = None
        except (OSError, ssl.SSLError):
            conn.lost_at = now

    def unacked(self) -> int:
        n = 0
        for conn in self.conns.values():
            conn.pending = [i for i in conn.pending if not _acked(i)]
            n += len(conn.pending)
        return n

    def flush(self, timeout: float) -> int:
        """Wait until every QoS-1 message is acknowledged; return how many are still not."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.unacked() == 0:
                return 0
            self.poll(0.05)
            self._last_misc = 0.0
        return self.unacked()

    def close(self) -> None:
        for conn in self.conns.values():
            try:
                conn.client.disconnect()
                conn.client.loop_write()
            except (OSError, ssl.SSLError):
                pass
            self._release(conn.client)
        self.conns.clear()
