"""A paho-mqtt ``Client`` with a cheaper receive path and bulk PUBACKs, for the ingester.

Measured on this project's 2-core box (``py-spy``, ``bench/ingest.py``): about 60 % of the
stock client's network thread per QoS-1 message is paho's own work: a ``select`` and three
``recv`` system calls per packet (command byte, length byte(s), body), an MQTT 5
``Properties`` object built even when the packet carries none (~5 µs), an ``MQTTMessage``
with its ``MQTTMessageInfo`` and ``threading.Condition`` (~3 µs), the topic matcher of
``message_callback_add``; and one ``send`` system call (one TCP segment) per PUBACK.

:class:`FastClient` keeps paho's connection handling, keep-alive, reconnect and every other
packet type, and changes three private hooks of paho 2.x (checked at import; without them it
behaves exactly as the stock client):

* ``_sock_recv`` reads up to 64 KiB at a time into a buffer and serves paho's small reads from
  it; ``loop_read`` handles every complete packet already buffered (at most
  :data:`MAX_PACKETS_PER_READ`, then it wakes its own ``select`` through paho's socket pair so
  nothing buffered waits for the next network event);
* ``_handle_publish``: a PUBLISH of QoS 0/1 **without MQTT 5 properties** is decoded in place
  and handed to :attr:`FastClient.on_publish_raw` as ``(topic bytes, payload, mid, qos)``, its
  DUP flag (a redelivery) readable as :attr:`FastClient.raw_dup` inside that callback; any
  other PUBLISH (properties present, QoS 2, malformed) goes through paho's own code and
  ``on_message``;
* :meth:`FastClient.ack_many` queues the PUBACKs of many messages as ONE outgoing packet
  buffer (one ``send``), through the same ``_packet_queue`` that ``Client.ack`` uses. Like
  ``ack`` (which takes no lock: paho's outgoing queue is a ``deque`` whose ``append`` is
  atomic, and a byte on the socket pair wakes the network thread), it may be called from any
  thread.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger(__name__)

RECV_CHUNK = 65536
MAX_PACKETS_PER_READ = 2000
_PUBACK = struct.Struct("!BBH")
_PUBACK_CMD = 0x40
_PUBLISH_CMD = 0x30

# The paho-mqtt minor releases this fast path is verified on: tests/test_mqtt_client.py and
# tests/test_mqtt_client_fallback.py (fast and stock paths, redelivery, MQTT 3.1.1 and 5, TLS),
# test_ingest_mqtt.py and test_ingest_rejects.py pass on paho-mqtt 2.1.0 and 2.2.0. Another
# minor release may change what these private names mean, so there the stock client is used
# (slower, same behaviour) until the tests pass on it too.
VERIFIED_PAHO = ("2.1", "2.2")

# Every private paho name FastClient uses, each in one of these two tuples. If any is
# missing, FastClient is exactly the stock client: each override below calls paho's own code.
PRIVATE_METHODS = (
    "_sock_recv",  # overridden: buffered reads
    "_sock_close",  # overridden: drop the buffer with the connection
    "_packet_read",  # called: read and dispatch one packet
    "_loop_rc_handle",  # called: paho's handling of a read error
    "_handle_publish",  # overridden: PUBLISH without properties
    "_send_puback",  # called: automatic PUBACK (manual_ack off)
    "_packet_queue",  # called: queue the bulk PUBACK buffer
)
PRIVATE_ATTRS = (
    "_sock",  # the connection's socket (None when disconnected)
    "_sockpairW",  # the socket pair that wakes paho's select()
    "_in_packet",  # the packet being read: {"command": int, "packet": bytes, ...}
    "_protocol",  # MQTTv311 / MQTTv5
    "_manual_ack",  # Client(manual_ack=...)
)


def paho_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("paho-mqtt")
    except PackageNotFoundError:  # pragma: no cover - paho imported from a source tree
        return str(getattr(mqtt, "__version__", "?"))


def missing_private_names(client: mqtt.Client | None = None) -> list[str]:
    """The private paho names FastClient needs that this paho lacks (methods on the class;
    instance attributes on ``client``, once paho's ``__init__`` has run)."""
    missing = [name for name in PRIVATE_METHODS if not callable(getattr(mqtt.Client, name, None))]
    if client is not None:
        missing += [name for name in PRIVATE_ATTRS if not hasattr(client, name)]
        packet = getattr(client, "_in_packet", None)
        if "_in_packet" not in missing and not (
            isinstance(packet, dict) and {"command", "packet"} <= packet.keys()
        ):
            missing.append("_in_packet")
    return missing


def _verified(v: str) -> bool:
    return ".".join(v.split(".")[:2]) in VERIFIED_PAHO


FAST_PATH_AVAILABLE = _verified(paho_version()) and not missing_private_names()
_warned = False


def _fallback_warning(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("paho-mqtt %s: %s; the ingester uses the stock client", paho_version(), reason)


RawHandler = Callable[[bytes, bytes, int, int], None]


class FastClient(mqtt.Client):
    """``paho.mqtt.client.Client`` with the fast paths described in the module docstring."""

    def __init__(self, *args: Any, fast: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast = False
        if fast:
            missing = missing_private_names(self)
            if missing:
                _fallback_warning(f"no {', '.join(missing)} (private names the fast path uses)")
            elif not _verified(paho_version()):
                _fallback_warning(f"fast path verified on {' / '.join(VERIFIED_PAHO)} only")
            else:
                self.fast = True
        self.on_publish_raw: RawHandler | None = None
        self._rbuf = b""
        self._rpos = 0
        self.raw_dup = False  # DUP flag of the PUBLISH being handed to on_publish_raw
        self.fast_publishes = 0  # PUBLISH packets that took the fast path (for tests)

    # -- buffered reads -------------------------------------------------------------------
    def _sock_recv(self, bufsize: int) -> bytes:
        if not self.fast:
            return super()._sock_recv(bufsize)
        buf, pos = self._rbuf, self._rpos
        avail = len(buf) - pos
        if avail <= 0:
            data = super()._sock_recv(RECV_CHUNK)
            if not data:
                return data  # connection closed
            if len(data) <= bufsize:
                self._rbuf, self._rpos = b"", 0
                return data
            buf, pos, avail = data, 0, len(data)
        n = bufsize if bufsize < avail else avail
        self._rbuf, self._rpos = buf, pos + n
        return buf[pos : pos + n]

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0  # bytes of a dead connection never reach a new one
        close = getattr(super(), "_sock_close", None)  # None: a paho without it (stock path)
        if close is not None:
            close()

    def _buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if not self.fast:
            return super().loop_read(max_packets)
        for _ in range(MAX_PACKETS_PER_READ):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        if self._buffered() and self._sockpairW is not None:
            # bytes left in our buffer are invisible to select(): make the next select()
            # return at once; loop_misc (end of every loop iteration) reads them
            with contextlib.suppress(BlockingIOError):
                self._sockpairW.send(b"0")
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_misc(self) -> MQTTErrorCode:
        if self.fast and self._sock is not None and self._buffered():
            rc = self.loop_read()
            if rc:
                return rc
        return super().loop_misc()

    # -- PUBLISH without properties ---------------------------------------------------------
    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_raw
        if not self.fast or handler is None:
            return super()._handle_publish()
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        size = len(packet)
        if qos > 1 or size < 2:
            return super()._handle_publish()
        pos = 2 + ((packet[0] << 8) | packet[1])
        if pos > size or pos == 2:
            return super()._handle_publish()  # malformed or empty topic: paho decides
        topic = bytes(packet[2:pos])
        mid = 0
        if qos:
            if pos + 2 > size:
                return super()._handle_publish()
            mid = (packet[pos] << 8) | packet[pos + 1]
            pos += 2
        if self._protocol == mqtt.MQTTv5:
            if pos >= size or packet[pos] != 0:
                return super()._handle_publish()  # properties present: paho decodes them
            pos += 1
        self.fast_publishes += 1
        self.raw_dup = bool(header & 0x08)
        try:
            handler(topic, bytes(packet[pos:]), mid, qos)
        except Exception:  # paho logs and continues (suppress_exceptions); so do we
            log.exception("on_publish_raw failed")
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- acknowledgements -------------------------------------------------------------------
    def ack_many(self, mids: Iterable[int]) -> None:
        """PUBACK (QoS 1) every ``mid``, as one outgoing buffer. Thread-safe like ``ack``."""
        if not self._manual_ack:
            return
        if not self.fast:
            for mid in mids:
                self.ack(mid, 1)
            return
        pack = _PUBACK.pack
        blob = b"".join([pack(_PUBACK_CMD, 2, mid) for mid in mids])
        if blob:
            self._packet_queue(_PUBACK_CMD, blob, 0, 0)
