"""Delivery channels: each a small class with ``send(message)`` and ``close()``.

A channel raises :class:`ChannelDown` when the channel itself cannot be reached (the mail
server refuses connections: nothing is wrong with the message, every message waits),
:class:`TransientError` when this one message failed but may go later (a 4xx reply, a webhook
that timed out or answered 5xx/429) and :class:`PermanentError` when it never will (a 5xx reply
to this recipient, a webhook answering 4xx). Every message carries an idempotency key: the
e-mail ``Message-ID`` and the webhook ``Idempotency-Key`` header, so a receiver can drop the
duplicate a worker killed between sending and recording may cause.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ioc.errors import IOCError
from ioc.notify.destinations import Address as Addr
from ioc.notify.destinations import Network, Refused, resolve_checked

log = logging.getLogger("ioc.notify")

SIGNATURE_HEADER = "X-IOC-Signature"
TIMESTAMP_HEADER = "X-IOC-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryError(Exception):
    """A message was not delivered."""


class ChannelDown(DeliveryError):
    """The channel is unreachable: nothing wrong with the message; retry later, uncounted."""


class TransientError(DeliveryError):
    """This message failed but may succeed later (counted towards dead-lettering)."""


class PermanentError(DeliveryError):
    """This message will never be delivered (dead-lettered at once)."""


@dataclass
class Message:
    """One outbox row ready to send."""

    id: int
    idem_key: str
    channel: str
    recipient: str
    subject: str
    body_text: str
    body_html: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    attachments: list[Path] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)


class Channel(Protocol):
    name: str

    def send(self, msg: Message) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- e-mail


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool  # smtps:// (TLS from the first byte)
    starttls: str  # 'auto' (when offered), 'require', 'never'
    username: str | None = None
    password: str | None = None

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'smtps' if self.tls else 'smtp'}://{user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://user:pass@host:port`` (STARTTLS when the server offers it; ``?starttls=require``
    or ``never``) or ``smtps://`` (TLS); a one-line error when malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise IOCError(f"IOC_SMTP_URL is not a valid URL: {exc}") from None
    if parts.scheme not in ("smtp", "smtps"):
        raise IOCError(
            f"IOC_SMTP_URL must start with smtp:// or smtps:// (got {parts.scheme or 'no'} scheme)"
        )
    if not parts.hostname:
        raise IOCError("IOC_SMTP_URL has no host name")
    query = parse_qs(parts.query)
    starttls = (query.get("starttls") or ["auto"])[0]
    if starttls not in ("auto", "require", "never"):
        raise IOCError("IOC_SMTP_URL: starttls must be auto, require or never")
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if tls else 25),
        tls=tls,
        starttls="never" if tls else starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_email(msg: Message, sender: str) -> EmailMessage:
    """A UTF-8 message, plain text plus HTML, with the idempotency key as its Message-ID."""
    em = EmailMessage()
    em["From"] = sender
    em["To"] = msg.recipient
    em["Subject"] = msg.subject
    em["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "localhost"
    em["Message-ID"] = f"<{msg.idem_key}@{domain}>"
    em["X-IOC-Notification"] = str(msg.id)
    em["Auto-Submitted"] = "auto-generated"
    em.set_content(msg.body_text, charset="utf-8")
    if msg.body_html:
        em.add_alternative(msg.body_html, subtype="html", charset="utf-8")
    for path in msg.attachments:
        data = path.read_bytes()
        maintype, subtype = _mime(path)
        em.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return em


def _mime(path: Path) -> tuple[str, str]:
    if path.suffix == ".xlsx":
        return "application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if path.suffix == ".csv":
        return "text", "csv"
    return "application", "octet-stream"


class EmailChannel:
    """SMTP with smtplib: one connection reused while it works (per thread), STARTTLS when
    offered (or required), TLS for smtps://, AUTH when the URL has a user."""

    name = "email"

    def __init__(self, target: SmtpTarget, sender: str, *, timeout: float = 20.0) -> None:
        self.target = target
        self.sender = sender
        self.timeout = timeout
        self._conn: smtplib.SMTP | None = None
        self.ssl_context = ssl.create_default_context()
        Address(addr_spec=sender)  # a malformed sender fails at start, not per message

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        conn: smtplib.SMTP | None = None
        try:
            if t.tls:
                conn = smtplib.SMTP_SSL(
                    t.host, t.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                conn = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
            conn.ehlo()
            if t.starttls == "require" or (t.starttls == "auto" and conn.has_extn("starttls")):
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if t.username:
                conn.login(t.username, t.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close(conn)
            raise ChannelDown(f"SMTP authentication refused: {exc.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as exc:
            _close(conn)
            raise ChannelDown(f"SMTP {t.host}:{t.port} unreachable: {exc}") from None
        return conn

    def send(self, msg: Message) -> None:
        em = build_email(msg, self.sender)
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                refused = self._conn.send_message(
                    em, from_addr=self.sender, to_addrs=[msg.recipient]
                )
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()), (550, b""))
                raise _by_code(int(code), _txt(text)) from None
            except smtplib.SMTPSenderRefused as exc:  # IOC_SMTP_FROM refused: every message
                self._drop()
                raise ChannelDown(f"SMTP refused the sender: {exc.smtp_code}") from None
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421 and attempt == 1:  # server closing: reconnect once
                    self._drop()
                    continue
                raise _by_code(exc.smtp_code, _txt(exc.smtp_error)) from None
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if attempt == 1:  # a connection kept from earlier went stale: once more
                    continue
                raise ChannelDown(f"SMTP connection lost: {exc}") from None
            if refused:
                code, text = next(iter(refused.values()))
                raise _by_code(int(code), _txt(text))
            return

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.quit()
        self._drop()


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _txt(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _by_code(code: int, text: str) -> DeliveryError:
    if 500 <= code < 600:
        return PermanentError(f"SMTP {code}: {text}"[:300])
    return TransientError(f"SMTP {code}: {text}"[:300])


# --------------------------------------------------------------------------- webhook


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 over ``timestamp + "." + body``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, max_age_s: float = 300
) -> bool:
    """What a receiver checks: the signature, and a timestamp no older than ``max_age_s``."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to ``host`` that connects to ``addresses`` (already checked, tried
    in turn) instead of looking ``host`` up again; None: an ordinary lookup (a trusted
    endpoint). The Host header still names ``host``."""

    def __init__(
        self, host: str, port: int, addresses: Sequence[Addr] | None, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = None if addresses is None else tuple(addresses)

    def connect(self) -> None:
        if self.addresses is None:
            self.sock = socket.create_connection((self.host, self.port), self.timeout)
        else:
            self.sock = _connect_first(self.addresses, self.port, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS: SNI and the certificate check use ``host``, not the address."""

    default_port = http.client.HTTPS_PORT

    def __init__(
        self,
        host: str,
        port: int,
        addresses: Sequence[Addr] | None,
        timeout: float,
        tls: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, addresses, timeout)
        self.tls = tls

    def connect(self) -> None:
        super().connect()
        self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host)


def _connect_first(addresses: Sequence[Addr], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that accepts one (the last error when
    none does)."""
    error: OSError = OSError("no address to connect to")
    for addr in addresses:
        try:
            return socket.create_connection((str(addr), port), timeout)
        except OSError as exc:
            error = exc
    raise error


class WebhookChannel:
    """JSON POST, signed: ``X-IOC-Timestamp`` (Unix seconds), ``X-IOC-Signature``
    (``sha256=`` HMAC over ``timestamp.body``), ``Idempotency-Key``.

    A user's own webhook is resolved once and checked (ioc.notify.destinations), and the
    request goes to one of exactly the checked addresses (DNS rebinding cannot lead it
    inside); the Host header, TLS SNI and the certificate check use the URL's name. No
    redirect is followed (a 3xx answer is a permanent failure: a redirect could lead a
    checked, public address to an internal one)."""

    name = "webhook"

    def __init__(
        self,
        secrets: dict[str, bytes],
        default_secret: bytes,
        *,
        timeout: float = 10.0,
        trusted: Iterable[str] = (),
        allow: Sequence[Network] = (),
        tls: ssl.SSLContext | None = None,
    ):
        self.secrets = secrets  # url -> key
        self.default_secret = default_secret
        self.timeout = timeout
        # the endpoints an administrator configured; any other (a user's own) must be public
        # or in ``allow`` (ioc.notify.destinations)
        self.trusted = frozenset(trusted) | frozenset(secrets)
        self.allow = tuple(allow)
        # https: the system's CAs, the certificate must name the URL's host
        self.tls = tls if tls is not None else ssl.create_default_context()

    def send(self, msg: Message) -> None:
        body = json.dumps(
            {
                **msg.payload,
                "id": msg.idem_key,
                "subject": msg.subject,
                "text": msg.body_text,
            },
            ensure_ascii=False,
            default=str,
        ).encode()
        parts = urlsplit(msg.recipient)
        try:
            port = parts.port
        except ValueError:
            raise PermanentError("webhook address has a bad port") from None
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise PermanentError("webhook address is not an http:// or https:// URL")
        if port is None:  # explicit: http.client would read "::1" as host ":" port 1
            port = 443 if parts.scheme == "https" else 80
        addresses: list[Addr] | None = None  # trusted: looked up when connecting
        if msg.recipient not in self.trusted:
            try:
                addresses = resolve_checked(msg.recipient, self.allow)
            except Refused as exc:
                raise PermanentError(f"webhook address refused: {exc}") from None
            if not addresses:
                raise TransientError(f"webhook unreachable: {host} does not resolve")
        ts = str(int(time.time()))
        secret = self.secrets.get(msg.recipient, self.default_secret)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "ioc-notify/1",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(secret, ts, body),
            IDEMPOTENCY_HEADER: msg.idem_key,
        }
        conn: _PinnedHTTPConnection
        if parts.scheme == "https":
            conn = _PinnedHTTPSConnection(host, port, addresses, self.timeout, self.tls)
        else:
            conn = _PinnedHTTPConnection(host, port, addresses, self.timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("POST", target, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read(1024)
            status = resp.status
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            # one endpoint down is this recipient's problem, not the channel's
            raise TransientError(f"webhook unreachable: {exc}") from None
        finally:
            conn.close()
        if 200 <= status < 300:
            return
        if status in (408, 425, 429) or status >= 500:
            raise TransientError(f"webhook HTTP {status}")
        raise PermanentError(f"webhook HTTP {status}")

    def close(self) -> None:
        return None


# --------------------------------------------------------------------------- MQTT


class MqttChannel:
    """Publishes the message as JSON (QoS 1) through the alerts' MQTT publisher."""

    name = "mqtt"

    def __init__(self, publisher: Any, *, timeout: float = 10.0) -> None:
        self.publisher = publisher  # ioc.alerts.MqttPublisher
        self.timeout = timeout

    def send(self, msg: Message) -> None:
        # the publisher connects in the background: the first message waits for it
        deadline = time.monotonic() + self.timeout
        client = getattr(self.publisher, "client", None)
        while client is not None and not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        payload = {**msg.payload, "id": msg.idem_key, "subject": msg.subject, "text": msg.body_text}
        if not self.publisher.publish_json(msg.recipient, payload, timeout=self.timeout):
            raise ChannelDown("MQTT broker did not acknowledge the message")

    def close(self) -> None:
        self.publisher.close()
