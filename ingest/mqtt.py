"""``ioc ingest mqtt``: the MQTT client of the ingester, and nothing else.

Delivery guarantees (see docs/ingest.md):

* MQTT 5 (3.1.1 accepted) with a persistent session: ``clean_start=False`` plus a session
  expiry, QoS 1 subscriptions, so the broker keeps our messages while we are away;
* ``manual_ack``: a message's PUBACK is sent by the writer thread only after the transaction
  holding its rows (or its reject) is committed — the PUBACKs of a group of messages as one
  buffer (:meth:`ingest.mqtt_client.FastClient.ack_many`). A crash before that means the
  broker redelivers, and the idempotent writer turns the redelivery into no new rows;
* Receive Maximum (``mqtt.max_inflight``) bounds unacknowledged messages: when the database is
  slow or away, the broker holds the rest instead of this process growing without bound;
* acks are tagged with the connection they came from and never sent on a later connection.

Each message (``_on_publish``, from :class:`~ingest.mqtt_client.FastClient`'s fast path or
paho's ``on_message``) never blocks long and never dies: decode, validate (``ingest.parse``),
add a small record to the open group; every 5 ms or 200 messages the group becomes one
:class:`~ingest.writer.Work` for the :class:`~ingest.writer.BatchWriter`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import psycopg2
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.metrics import IngestStats, make_registry
from ingest.mqtt_client import FastClient
from ingest.parse import Parsed, Parser, Problem, clean_topic, truncate_payload
from ingest.writer import (
    DEVICES_SEEN,
    INGEST_REJECTS,
    READINGS,
    BatchWriter,
    Cursor,
    Row,
    TableSpec,
    Work,
    execute_reject,
    reject_key,
)
from ioc.applications import AppEvent, store_event
from ioc.citizen.events import ReportEvent
from ioc.citizen.store import store_events as store_report_events
from ioc.config import Config
from ioc.context import Context
from ioc.db.service_status import record_service_status
from ioc.errors import IOCError, UsageError
from ioc.settings import MqttTarget

log = logging.getLogger(__name__)

SERVICE = "mqtt-ingest"
UTC = dt.UTC
# CONNACK / DISCONNECT reason codes after which retrying cannot help.
FATAL_CONNACK = {0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C, 0x95, 0x9A}
SESSION_TAKEN_OVER = 0x8E
LAST_SEEN_EVERY_S = 1.0  # a device's last_seen is written at most this often
GROUP_MAX = 200  # messages merged into one writer unit at most
GROUP_AFTER_S = 0.005  # ... or after this long
SWITCH_INTERVAL_S = 0.0005
PROTOCOLS: dict[str, tuple[MQTTProtocolVersion, ...]] = {
    "auto": (mqtt.MQTTv5, mqtt.MQTTv311),
    "5": (mqtt.MQTTv5,),
    "3.1.1": (mqtt.MQTTv311,),
}
GROUP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_STATUS_SQL = """
INSERT INTO devices (device_id, ward_code, device_type, status, first_seen, last_seen,
                     status_changed_at)
VALUES (%(id)s, %(ward)s, %(type)s, %(status)s, %(at)s,
        CASE WHEN %(status)s = 'online' THEN %(at)s::timestamptz END, %(at)s)
ON CONFLICT (device_id) DO UPDATE SET
    status = EXCLUDED.status,
    status_changed_at = CASE WHEN devices.status IS DISTINCT FROM EXCLUDED.status
                             THEN EXCLUDED.status_changed_at ELSE devices.status_changed_at END,
    last_seen = CASE WHEN EXCLUDED.status = 'online'
                     THEN GREATEST(devices.last_seen, EXCLUDED.status_changed_at)
                     ELSE devices.last_seen END
"""


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, UTC)


def _topic_text(topic: bytes) -> str:
    try:
        return topic.decode("utf-8")
    except UnicodeDecodeError:
        return topic.decode("utf-8", errors="backslashreplace")


class _Pending:
    """One received message between parsing and its PUBACK: what it writes, how to ack it."""

    __slots__ = (
        "apply",
        "dup",
        "gen",
        "identified",
        "lines",
        "mid",
        "payload",
        "qos",
        "received",
        "rejects",
        "report",
        "seen",
        "topic",
    )

    def __init__(
        self, topic: bytes, payload: bytes, received: float, mid: int = 0, dup: bool = False
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.received = received
        self.mid = mid
        self.dup = dup  # the broker's DUP flag: this message was sent to us before, unacked
        # its payload carries its own identity (Parser.identified; asked for rejects only)
        self.identified: bool | None = None
        self.qos = 0
        self.gen = 0
        self.lines: list[str] | None = None
        self.seen: Row | None = None
        self.rejects: list[Row] | None = None
        self.apply: Callable[[Cursor], None] | None = None
        self.report: ReportEvent | None = None  # a citizen report event (stored per group)


def default_client_id(base: str, shared: str | None) -> str:
    """``ioc-ingest`` alone; ``ioc-ingest-{group}-{host}`` in a shared group (several hosts)."""
    if not shared:
        return base
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]
    return f"{base}-{shared}-{host}"


class MqttIngester:
    """Broker session → parser → batched writer → acks. ``start()`` then ``stop()``."""

    def __init__(
        self,
        config: Config,
        database_url: str,
        target: MqttTarget,
        *,
        client_id: str | None = None,
        shared: str | None = None,
        metrics_port: int | None = None,
        status_interval_s: float = 5.0,
        connect_timeout_s: float = 15.0,
        fast_client: bool = True,
        stop_grace_s: float = 10.0,
        protocol: str = "auto",
    ) -> None:
        if shared is not None and not GROUP_NAME.match(shared):
            raise UsageError(f"--shared {shared!r}: a group name is 1-64 of A-Z a-z 0-9 _ . -")
        self.config = config
        self.mq = config.system.mqtt
        self.ing = config.system.ingest
        self.database_url = database_url
        self.target = target
        self.shared = shared
        self.client_id = client_id or default_client_id(self.mq.client_id, shared)
        self.metrics_port = metrics_port
        self.status_interval_s = status_interval_s
        self.connect_timeout_s = connect_timeout_s
        # "auto": MQTT 5, then 3.1.1 if the broker refuses it; "5" or "3.1.1": that one only
        if protocol not in PROTOCOLS:
            raise UsageError(
                f"MQTT protocol must be one of {', '.join(PROTOCOLS)} (got {protocol!r})"
            )
        self.protocols = PROTOCOLS[protocol]
        # stop(): how long the writer may try to commit what was received (database away)
        self.stop_grace_s = stop_grace_s
        self.stop_error: str | None = None  # set by stop() when it gave up on unstored messages
        self._late = 0  # messages that arrived after stop() began (never acked)
        # ingest.mqtt_client.FastClient's receive fast path and bulk PUBACKs (off: stock paho)
        self.fast_client = fast_client
        self.prefix = config.topic_prefix
        self.status_topic = f"{self.prefix}/_ingest/{self.client_id}/status"
        self.parser = Parser(config)
        self.stats = IngestStats()
        self.late_rejects: Counter[str] = Counter()  # counted by the writer thread
        self.writer = BatchWriter(
            database_url,
            max_rows=self.ing.batch_max_rows,
            max_delay_s=self.ing.batch_max_delay_s,
            # Unbounded: the broker's Receive Maximum already bounds what is in flight, and
            # submit() runs on the network thread's path (under _acc_lock): if it blocked on a
            # full queue, paho could not answer keep-alives, the broker would drop the
            # connection and redeliver everything, and the backlog would only grow (seen in
            # a 30-day back-fill: a disconnect every ~50 s, hours of redundant rewriting).
            max_pending=0,
            name="ioc-ingest-writer",
            application_name=f"ioc-ingest-mqtt {self.client_id}"[:63],
            on_batch=lambda rows, secs: self.stats.observe_batch(secs),
        )
        self._devices: dict[str, tuple[str, str]] = {}
        self._last_seen_sent: dict[str, float] = {}
        self._first_seen_sent: dict[str, float] = {}  # oldest reading time sent per device
        self._accepting = False
        self._gen = 0  # connection generation: acks never cross connections
        self._connack = threading.Event()
        self._closed_before_connack = False  # this connection attempt ended without a CONNACK
        self._fatal: str | None = None
        self._protocol: MQTTProtocolVersion = mqtt.MQTTv5
        self._client: mqtt.Client | None = None
        self._status_stop = threading.Event()
        self._status_thread: threading.Thread | None = None
        self._metrics_server: Any = None
        self.fatal_event = threading.Event()
        self._started = False
        self._acc: list[_Pending] = []
        self._acc_t0 = 0.0
        self._acc_lock = threading.Lock()
        self._flush_stop = threading.Event()
        self._flush_thread = threading.Thread(
            target=self._flush_loop, name="ioc-ingest-flush", daemon=True
        )

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> MqttIngester:
        """Database check and device registry, writer, metrics, broker session, status."""
        from ioc.db import connect

        conn = connect(self.database_url, application_name="ioc-ingest-mqtt-init")
        try:
            self._load_devices(conn)
        finally:
            conn.close()
        self.writer.start()
        if self.metrics_port is not None:
            from prometheus_client import start_http_server

            registry = make_registry(
                self.stats, self.writer.stats, self.client_id, self.writer.pending
            )
            try:
                self._metrics_server, _ = start_http_server(self.metrics_port, registry=registry)
            except OSError as exc:
                self.writer.stop()
                raise IOCError(f"--metrics-port {self.metrics_port}: {exc.strerror}") from None
        self._started = True
        self._accepting = True
        self._flush_thread.start()
        try:
            self._connect()
        except BaseException:
            self._started = False
            self._accepting = False
            self._flush_stop.set()
            self.writer.stop()
            self._stop_metrics()
            raise
        self._status_thread = threading.Thread(
            target=self._status_loop, name="ioc-ingest-status", daemon=True
        )
        self._status_thread.start()
        return self

    def stop(self) -> None:
        """Flush and acknowledge what was received, say offline, disconnect, in that order.

        The flush gets ``stop_grace_s``: if the database cannot take it by then, what is not
        committed stays unacknowledged (the broker redelivers it to the next session) and
        :attr:`stop_error` says how many messages that is."""
        if not self._started:
            return
        self._started = False
        self._accepting = False
        self._flush_stop.set()
        self._flush_thread.join(5)
        with self._acc_lock:
            self._flush_locked()
        # commits queued work; its done callbacks queue the PUBACKs
        if not self.writer.stop(timeout=self.stop_grace_s):
            left = self.stats.received_total - self.stats.acked + self._late
            self.stop_error = (
                f"stopped with {left} message(s) not stored and left unacknowledged for the"
                f" broker to redeliver: the database took nothing for the"
                f" {self.stop_grace_s:g} s grace period"
            )
            log.warning("%s", self.stop_error)
        client = self._client
        if client is not None:
            if self.stats.broker_connected:
                try:
                    info = client.publish(self.status_topic, "offline", qos=1, retain=True)
                    info.wait_for_publish(timeout=5)
                except (RuntimeError, ValueError):
                    pass
            client.disconnect()
            client.loop_stop()
            self._client = None
        self.stats.broker_connected = False
        self._status_stop.set()
        if self._status_thread is not None:
            self._status_thread.join(10)
        self._write_service_status(final=True)
        self._stop_metrics()

    def _stop_metrics(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    @property
    def fatal(self) -> str | None:
        return self._fatal

    # -- broker session ---------------------------------------------------------------------
    def _make_client(self, protocol: MQTTProtocolVersion) -> mqtt.Client:
        v5 = protocol == mqtt.MQTTv5
        client = FastClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            clean_session=None if v5 else False,
            manual_ack=True,
            fast=self.fast_client,
        )
        if self.target.username:
            client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            client.tls_set()
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish_raw = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _connect(self) -> None:
        for protocol in self.protocols:
            self._protocol = protocol
            self._connack.clear()
            self._closed_before_connack = False
            self._fatal = None
            client = self._make_client(protocol)
            self._client = client
            kwargs: dict[str, Any] = {}
            if protocol == mqtt.MQTTv5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.mq.session_expiry_s
                props.ReceiveMaximum = self.mq.max_inflight
                kwargs = {"clean_start": False, "properties": props}
            try:
                client.connect(
                    self.target.host, self.target.port, keepalive=self.mq.keepalive_s, **kwargs
                )
            except (OSError, ValueError) as exc:
                self._client = None
                raise IOCError(
                    f"cannot connect to broker {self.target.redacted()}: "
                    f"{getattr(exc, 'strerror', None) or exc}"
                ) from None
            client.loop_start()
            got = self._connack.wait(self.connect_timeout_s)
            if got and self._fatal is None and self.stats.broker_connected:
                log.info(
                    "connected to %s as %s (MQTT %s)",
                    self.target.redacted(),
                    self.client_id,
                    "5" if protocol == mqtt.MQTTv5 else "3.1.1",
                )
                return
            client.disconnect()
            client.loop_stop()
            self._client = None
            if self._fatal and "Unsupported protocol version" in self._fatal:
                log.info("broker does not speak MQTT 5; retrying with MQTT 3.1.1")
                continue
            if self._closed_before_connack and protocol == mqtt.MQTTv5:
                # what an MQTT 3.1.1-only broker does with an MQTT 5 CONNECT it cannot parse
                # (amqtt): fall back at once instead of waiting connect_timeout_s for a CONNACK
                log.info(
                    "broker closed the connection without answering MQTT 5; retrying with"
                    " MQTT 3.1.1"
                )
                continue
            if self._fatal:
                raise IOCError(self._fatal)
            if not got and protocol == mqtt.MQTTv5:
                log.info("no CONNACK for MQTT 5; retrying with MQTT 3.1.1")
                continue
            raise IOCError(
                f"broker {self.target.redacted()} did not accept the connection within "
                f"{self.connect_timeout_s:.0f} s"
            )
        tried = " nor ".join("5" if p == mqtt.MQTTv5 else "3.1.1" for p in self.protocols)
        raise IOCError(f"broker {self.target.redacted()} accepts neither MQTT {tried}")

    def _topics(self) -> list[str]:
        p = self.prefix
        topics = [f"{p}/+/+/+/telemetry", f"{p}/+/+/+/status", f"{p}/+/applications"]
        topics.append(f"{p}/+/reports")
        if self.shared:
            topics = [f"$share/{self.shared}/{t}" for t in topics]
        return topics

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.stats.broker_connected = False
            message = f"broker {self.target.redacted()} refused the connection: {reason_code}"
            if reason_code.value in FATAL_CONNACK or (
                self._protocol == mqtt.MQTTv311 and reason_code.value in (0x84, 0x85, 0x86, 0x87)
            ):
                self._set_fatal(message, client)
            else:
                log.warning("%s; retrying with backoff", message)
            self._connack.set()
            return
        self._gen += 1
        self.stats.connects += 1
        self.stats.broker_connected = True
        if not flags.session_present and self.stats.connects > 1:
            log.warning(
                "the broker had no session for %s: messages published while disconnected may"
                " be lost (broker restarted without persistence, or session expired)",
                self.client_id,
            )
        if self._protocol == mqtt.MQTTv5:
            opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            client.subscribe([(t, opts) for t in self._topics()])
        else:
            client.subscribe([(t, 1) for t in self._topics()])
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self._connack.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        bad = [str(rc) for rc in reason_codes if rc.is_failure]
        if bad:
            self._set_fatal(
                f"broker refused the subscription(s) {', '.join(self._topics())}: "
                f"{', '.join(bad)} (check the ACL for {self.client_id})",
                client,
            )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self.stats.broker_connected
        self.stats.broker_connected = False
        self._gen += 1  # pending acks belong to the old connection: drop them
        if not was and not self._connack.is_set() and self._protocol == mqtt.MQTTv5:
            # closed before any CONNACK while _connect() waits: tell it now (no timeout), and
            # end paho's network thread before its reconnect back-off sleep (>= 1 s), which
            # _connect()'s loop_stop() would otherwise wait out (from this thread, loop_stop
            # only flags the loop to end)
            self._closed_before_connack = True
            self._connack.set()
            client.loop_stop()
            return
        if reason_code.value == SESSION_TAKEN_OVER:
            self._set_fatal(
                f"another client connected with client id {self.client_id!r} and took over the"
                " session; give each ingester its own --client-id",
                client,
            )
        elif was and self._accepting:
            log.warning("disconnected from broker (%s); reconnecting with backoff", reason_code)

    def _set_fatal(self, message: str, client: mqtt.Client) -> None:
        if self._fatal is None:
            self._fatal = message
            log.error("%s", message)
        self.fatal_event.set()
        self._connack.set()
        client.disconnect()  # stops paho's reconnect loop

    # -- messages ---------------------------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """paho's own path: a PUBLISH with MQTT 5 properties, or the fast path switched off."""
        self._on_publish(bytes(msg._topic), bytes(msg.payload), msg.mid, msg.qos, bool(msg.dup))

    def _on_publish(
        self, topic_b: bytes, payload: bytes, mid: int, qos: int, dup: bool | None = None
    ) -> None:
        """Every message, on the network thread: parse, validate, add to the open group."""
        received = time.time()
        if not self._accepting:
            self.stats.dropped += 1  # not acked: the broker redelivers it next session
            self._late += 1
            return
        gen = self._gen
        if dup is None:  # FastClient's fast path: the flag of the packet being handled
            dup = bool(getattr(self._client, "raw_dup", False))
        if dup:
            self.stats.redelivered += 1
        try:
            m = self._pending_for(topic_b, payload, received, mid, dup)
        except Exception as exc:  # a bug must not stop ingestion: store it as a reject
            log.exception("unexpected error on a message")
            m = _Pending(topic_b, payload, received, mid, dup)
            m.rejects = [self._reject_row(m, "internal_error", repr(exc)[:200])]
            self.stats.rejects["internal_error"] += 1
        m.qos, m.gen = qos, gen
        with self._acc_lock:
            acc = self._acc
            if not acc:
                self._acc_t0 = received
            acc.append(m)
            if len(acc) >= GROUP_MAX or received - self._acc_t0 >= GROUP_AFTER_S:
                self._flush_locked()

    # -- grouping: one writer unit per few milliseconds of messages, not per message ----------
    def _flush_locked(self) -> None:
        group, self._acc = self._acc, []
        if not group:
            return
        try:
            self.writer.submit(self._merge(group))
        except RuntimeError:  # writer stopping: not acked, the broker redelivers
            self.stats.dropped += len(group)

    def _flush_loop(self) -> None:
        while not self._flush_stop.wait(GROUP_AFTER_S):
            with self._acc_lock:
                if self._acc and time.time() - self._acc_t0 >= GROUP_AFTER_S:
                    self._flush_locked()

    def _merge(self, group: list[_Pending]) -> Work:
        """One unit for many messages, acknowledged together after its COMMIT; if the database
        refuses it, its messages are resubmitted one by one (each with its own ack and reject
        path)."""
        lines: list[str] = []
        seen: list[Row] = []
        rejects: list[Row] = []
        applies: list[Callable[[Cursor], None]] = []
        reports: list[_Pending] = []
        for m in group:
            if m.lines:
                lines += m.lines
            if m.seen is not None:
                seen.append(m.seen)
            if m.rejects:
                rejects += m.rejects
            if m.report is not None:
                reports.append(m)  # one store_events call for the group's reports
            elif m.apply is not None:
                applies.append(m.apply)
        if reports:
            applies.append(self._reports_apply(reports))
        rows: dict[TableSpec, list[Row]] = {}
        if rejects:
            rows[INGEST_REJECTS] = rejects
        if seen:
            rows[DEVICES_SEEN] = seen
        split = False

        def done() -> None:
            if not split:
                self._ack(group)

        def apply(cur: Cursor) -> None:
            for fn in applies:
                fn(cur)

        def on_fail(exc: Exception) -> Work:
            nonlocal split
            split = True
            for m in group:
                try:
                    self.writer.submit(self._work_of(m))
                except RuntimeError:
                    self.stats.dropped += 1
            return Work()

        return Work(
            rows=rows,
            lines={READINGS: lines} if lines else {},
            apply=apply if applies else None,
            done=done,
            on_fail=on_fail,
            steps=len(applies),
        )

    def _work_of(self, m: _Pending) -> Work:
        """One message alone (after its group was refused): its own ack and reject path."""
        rows: dict[TableSpec, list[Row]] = {}
        if m.rejects:
            rows[INGEST_REJECTS] = list(m.rejects)
        if m.seen is not None:
            rows[DEVICES_SEEN] = [m.seen]
        return Work(
            rows=rows,
            lines={READINGS: m.lines} if m.lines else {},
            apply=m.apply,
            steps=1 if m.apply is not None else 0,
            done=lambda: self._ack([m]),
            on_fail=lambda exc: Work(
                rows={INGEST_REJECTS: [self._reject_row(m, "db_refused", str(exc).strip()[:300])]}
            ),
        )

    def _ack(self, group: list[_Pending]) -> None:
        """Writer thread, after COMMIT: PUBACK the group's QoS-1 messages in one buffer. Acks
        of an earlier connection are dropped (the broker redelivers those messages)."""
        stats = self.stats
        stats.acked += len(group)
        stats.last_lag_s = time.time() - group[-1].received
        client = self._client
        if client is None:
            return
        gen = self._gen
        mids = [m.mid for m in group if m.qos == 1 and m.gen == gen]
        if mids:
            if isinstance(client, FastClient):
                client.ack_many(mids)
            else:
                for mid in mids:
                    client.ack(mid, 1)
        for m in group:
            if m.qos == 2 and m.gen == gen:
                client.ack(m.mid, 2)

    def _reject_row(self, m: _Pending, code: str, detail: str) -> Row:
        return self._reject_rows(m, [Problem(code, detail)], count=False)[0]

    def _pending_for(
        self, topic_b: bytes, payload: bytes, received: float, mid: int, dup: bool
    ) -> _Pending:
        topic = _topic_text(topic_b)
        parsed = self.parser.parse(topic, payload, received)
        self.stats.received[parsed.kind] += 1
        m = _Pending(topic_b, payload, received, mid, dup)
        if parsed.kind == "telemetry" or parsed.kind == "status":
            problem = self._check_device(parsed, received, m)
            if problem is not None:
                parsed.problems = [problem]
                parsed.lines = []
                parsed.kind = "invalid"
        if parsed.lines:
            m.lines = parsed.lines
            self.stats.readings += len(parsed.lines)
            if parsed.newest_ts is not None and parsed.newest_ts > self.stats.newest_reading_ts:
                self.stats.newest_reading_ts = parsed.newest_ts
        if parsed.kind == "status" and parsed.status is not None:
            m.apply = self._status_apply(parsed, received)
        elif parsed.kind == "application" and parsed.event is not None:
            m.apply = self._event_apply(parsed.event, m)
        elif parsed.kind == "report" and parsed.report is not None:
            m.report = parsed.report
            m.apply = self._report_apply(parsed.report, m)  # when the message goes alone
        if parsed.problems:
            m.rejects = self._reject_rows(m, parsed.problems)
        return m

    def _reject_rows(self, m: _Pending, problems: list[Problem], count: bool = True) -> list[Row]:
        """``ingest_rejects`` rows of one message (writer.INGEST_REJECTS). Identity: topic,
        payload and reason, plus — for a payload without an identity of its own — the MQTT
        packet id; a redelivery (DUP) or an identified payload matches an earlier row of the
        same key, any other message is new (docs/ingest.md, "Rejects are stored once")."""
        at = _utc(m.received)
        topic = _topic_text(m.topic)
        if m.identified is None:
            m.identified = self.parser.identified(topic, m.payload)
        topic = clean_topic(topic)
        text = truncate_payload(m.payload, self.ing.reject_payload_chars)
        mid = None if m.identified else m.mid
        match = m.identified or m.dup
        rejects = self.stats.rejects
        rows = []
        for p in problems:
            if count:
                rejects[p.code] += 1
            reason = p.reason
            key = reject_key(m.topic, m.payload, reason, mid)
            rows.append((at, topic, reason, text, key, match))
        return rows

    def _check_device(self, parsed: Parsed, received: float, m: _Pending) -> Problem | None:
        device = parsed.device_id or ""
        home = (parsed.ward or "", parsed.device_type or "")
        known = self._devices.get(device)
        if known is None:
            if not self.ing.auto_register:
                return Problem(
                    "unknown_device",
                    f"device {device} is not registered (ingest.auto_register is false)",
                )
            self._devices[device] = home
        elif known != home:
            return Problem(
                "device_conflict",
                f"device {device} is registered as {known[1]} in ward {known[0]}",
            )
        if parsed.kind == "telemetry" and parsed.lines:
            # last_seen at most every LAST_SEEN_EVERY_S; first_seen whenever a reading is older
            # than any sent before (back-filled history: its oldest reading, not its arrival)
            last = self._last_seen_sent.get(device, 0.0)
            first = self._first_seen_sent.get(device, received)
            oldest = min(received, parsed.oldest_ts or received)
            if received - last >= LAST_SEEN_EVERY_S or oldest < first:
                self._last_seen_sent[device] = received
                self._first_seen_sent[device] = min(oldest, first)
                m.seen = (device, home[0], home[1], _utc(oldest), _utc(received))
        return None

    def _status_apply(self, parsed: Parsed, received: float) -> Callable[[Cursor], None]:
        params = {
            "id": parsed.device_id,
            "ward": parsed.ward,
            "type": parsed.device_type,
            "status": parsed.status,
            "at": _utc(received),
        }

        def apply(cur: Cursor) -> None:
            cur.execute(_STATUS_SQL, params)

        return apply

    def _event_apply(self, event: AppEvent, m: _Pending) -> Callable[[Cursor], None]:
        def apply(cur: Cursor) -> None:
            cur.execute("SAVEPOINT ioc_app_event")
            result = store_event(cur, event)
            if result.accepted:
                cur.execute("RELEASE SAVEPOINT ioc_app_event")
                return
            cur.execute("ROLLBACK TO SAVEPOINT ioc_app_event")
            code, _, detail = (result.reason or "rejected: ").partition(": ")
            execute_reject(cur, self._reject_row(m, code, detail))
            self.late_rejects[code] += 1

        return apply

    def _report_apply(self, event: ReportEvent, m: _Pending) -> Callable[[Cursor], None]:
        rules = self.parser.report_rules
        assert rules is not None

        def apply(cur: Cursor) -> None:
            cur.execute("SAVEPOINT ioc_report_event")
            (result,) = store_report_events(cur, [event], rules, door="mqtt")
            if result.accepted:
                cur.execute("RELEASE SAVEPOINT ioc_report_event")
                return
            cur.execute("ROLLBACK TO SAVEPOINT ioc_report_event")
            code, _, detail = (result.reason or "rejected: ").partition(": ")
            execute_reject(cur, self._reject_row(m, code, detail))
            self.late_rejects[code] += 1

        return apply

    def _reports_apply(self, group: list[_Pending]) -> Callable[[Cursor], None]:
        """The report events of a group of messages, stored together (the lifecycle refuses
        some: each of those becomes its message's reject)."""
        rules = self.parser.report_rules
        assert rules is not None

        def apply(cur: Cursor) -> None:
            events = [m.report for m in group if m.report is not None]
            outcomes = store_report_events(cur, events, rules, door="mqtt")
            for m, result in zip(group, outcomes, strict=True):
                if not result.accepted:
                    code, _, detail = (result.reason or "rejected: ").partition(": ")
                    execute_reject(cur, self._reject_row(m, code, detail))
                    self.late_rejects[code] += 1

        return apply

    # -- registry and service status --------------------------------------------------------
    def _load_devices(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT device_id, ward_code, device_type FROM devices")
            rows = cur.fetchall()
        conn.commit()
        self._devices.update({r[0]: (r[1], r[2]) for r in rows})

    def _status_loop(self) -> None:
        conn: Any = None
        last_refresh = time.monotonic()
        while not self._status_stop.wait(self.status_interval_s):
            try:
                if conn is None or conn.closed:
                    conn = psycopg2.connect(
                        self.database_url,
                        application_name=f"ioc-ingest-mqtt-status {self.client_id}"[:63],
                        connect_timeout=5,
                    )
                self._write_service_status(conn=conn)
                if time.monotonic() - last_refresh > 30:
                    self._load_devices(conn)
                    last_refresh = time.monotonic()
            except psycopg2.Error as exc:
                log.debug("service status not written: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def summary(self) -> dict[str, Any]:
        details = self.stats.summary(self.writer.stats)
        if self.late_rejects:
            by = Counter(details["rejected_by_reason"])
            by.update(self.late_rejects)
            details["rejected_by_reason"] = dict(by)
            details["rejected"] = sum(by.values())
        details.update(
            client_id=self.client_id,
            shared_group=self.shared,
            broker=self.target.redacted(),
            writer_queue=self.writer.pending(),
        )
        if self._fatal or self.stop_error:
            details["error"] = self._fatal or self.stop_error
        return details

    def _write_service_status(self, conn: Any = None, final: bool = False) -> None:
        if final:
            status = "error" if self._fatal or self.stop_error else "stopped"
        elif self.stats.broker_connected and self.writer.stats.connected:
            status = "running"
        else:
            status = "degraded"
        own = conn is None
        try:
            if own:
                conn = psycopg2.connect(self.database_url, connect_timeout=5)
            with conn.cursor() as cur:
                record_service_status(cur, SERVICE, self.client_id, status, self.summary())
            conn.commit()
        except psycopg2.Error as exc:
            if own:
                log.warning("could not record the service status: %s", str(exc).strip())
            else:
                raise
        finally:
            if own and conn is not None:
                conn.close()


def main(args: argparse.Namespace, ctx: Context) -> int:
    """Run until SIGTERM/SIGINT; exit 1 on a fatal broker error (refused, taken over)."""
    config = ctx.config()
    # The network thread is busy with messages; a shorter GIL switch interval lets the writer
    # thread (COPY, COMMIT, acks) get back in quickly after each database round trip.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    ingester = MqttIngester(
        config,
        ctx.database_url(),
        ctx.mqtt(),
        client_id=getattr(args, "client_id", None),
        shared=getattr(args, "shared", None),
        metrics_port=getattr(args, "metrics_port", None),
        stop_grace_s=ctx.settings.ingest_stop_grace_s,
        protocol=ctx.settings.mqtt_protocol,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        ingester.start()
        log.info(
            "ingesting %s (client id %s%s)",
            ", ".join(ingester._topics()),
            ingester.client_id,
            f", shared group {ingester.shared}" if ingester.shared else "",
        )
        while not stop.wait(0.5):
            if ingester.fatal_event.is_set():
                break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        ingester.stop()
    if ingester.fatal:
        raise IOCError(ingester.fatal)
    if ingester.stop_error:
        raise IOCError(ingester.stop_error)
    log.info("stopped cleanly: %s", json.dumps(ingester.summary(), default=str))
    return 0
