"""``ioc notify``: the delivery worker (several may run side by side).

Loop: claim a batch of due messages (leased, ``FOR UPDATE SKIP LOCKED``), send them on a few
threads, record each outcome as soon as it is known; every ``housekeeping_s``: move
escalations along and write due digests. It sleeps on ``LISTEN ioc_notify`` (``enqueue``
notifies at commit), so a message goes out within moments of its event, and polls every
``poll_s`` besides.

Guarantees: a message is marked sent only after the channel accepted it, so nothing is lost.
A worker killed between the channel's acceptance and the mark leaves that message leased;
``lease_s`` later another worker sends it again: at most one duplicate per message in flight
(``threads``), carrying the same Message-ID / Idempotency-Key. When the mail server is down
the messages wait (their attempts are not counted) and the channel is retried with back-off;
a recipient's own failures are retried with exponential back-off and dead-lettered after
``max_attempts``; a permanent refusal (5xx, webhook 4xx) is dead-lettered at once. One bad
address fails only its own message.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from ioc.config import Config
from ioc.context import Context
from ioc.db import Connection, connect
from ioc.db.service_status import record_service_status
from ioc.errors import IOCError
from ioc.notify import escalation, outbox
from ioc.notify.channels import (
    Channel,
    ChannelDown,
    EmailChannel,
    Message,
    MqttChannel,
    PermanentError,
    TransientError,
    WebhookChannel,
    parse_smtp_url,
)
from ioc.notify.destinations import networks
from ioc.notify.links import make_file_token, make_token, secret_key
from ioc.notify.offline import offline_digest
from ioc.notify.render import ACK_URL, FILE_URL, PUBLIC_URL
from ioc.settings import Settings

log = logging.getLogger("ioc.notify")

SERVICE = "notify"
# a message due this long ago and not yet sent: the worker reports a backlog (/healthz degraded)
BACKLOG_S = 600.0

ChannelFactory = Callable[[], Channel]


def channel_factories(cfg: Config, settings: Settings, key: str) -> dict[str, ChannelFactory]:
    """One factory per configured channel (each sending thread makes its own instance)."""
    d = cfg.notifications.delivery
    out: dict[str, ChannelFactory] = {}
    smtp_url = settings.secret("smtp_url")
    if smtp_url:
        target = parse_smtp_url(smtp_url)
        sender = settings.smtp_from
        out["email"] = lambda: EmailChannel(target, sender, timeout=d.smtp_timeout_s)
    secrets = {}
    for hook in cfg.notifications.webhooks.values():
        if hook.secret_env and os.environ.get(hook.secret_env):
            secrets[hook.url] = os.environ[hook.secret_env].encode()
    trusted = [hook.url for hook in cfg.notifications.webhooks.values()]
    allow = networks(d.user_webhook_networks)
    out["webhook"] = lambda: WebhookChannel(
        secrets, key.encode(), timeout=d.webhook_timeout_s, trusted=trusted, allow=allow
    )
    if settings.mqtt_url:
        from ioc.alerts import MqttPublisher
        from ioc.settings import parse_mqtt_url

        mqtt_target = parse_mqtt_url(str(settings.mqtt_url))
        out["mqtt"] = lambda: MqttChannel(MqttPublisher(cfg, mqtt_target), timeout=10.0)
    return out


@dataclass
class Stats:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0  # channel down: back in the queue, not counted
    batches: int = 0
    last_error: str | None = None


@dataclass
class Worker:
    cfg: Config
    db_url: str
    settings: Settings
    factories: dict[str, ChannelFactory] | None = None
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.key = secret_key(self.settings)
        if self.factories is None:
            self.factories = channel_factories(self.cfg, self.settings, self.key)
        d = self.cfg.notifications.delivery
        self.pool = ThreadPoolExecutor(d.threads, thread_name_prefix="notify-send")
        self._local = threading.local()
        self._channels: list[Channel] = []
        self._lock = threading.Lock()  # the shared connection and the channel list
        self.conn: Connection | None = None
        self.down_until: dict[str, float] = {}
        self.down_streak: dict[str, int] = {}
        self.public = self.settings.public_url.rstrip("/")
        self._last_housekeeping = 0.0
        self._last_prune = 0.0

    # -- database

    def db(self) -> Connection:
        if self.conn is None or self.conn.closed:
            self.conn = connect(self.db_url, application_name="ioc-notify")
            with self.conn.cursor() as cur:
                # a state change lost in a database crash only makes a message go twice
                # (same idempotency key), never lost: not worth a disk flush per message
                cur.execute("SET synchronous_commit = off")
            self.conn.commit()
        return self.conn

    # -- channels

    def channel(self, name: str) -> Channel | None:
        chans: dict[str, Channel] = getattr(self._local, "chans", None) or {}
        self._local.chans = chans
        if name not in chans:
            assert self.factories is not None
            factory = self.factories.get(name)
            if factory is None:
                return None
            chans[name] = factory()
            with self._lock:
                self._channels.append(chans[name])
        return chans[name]

    # -- one batch

    def message(self, c: outbox.Claimed) -> Message:
        ack = f"{self.public}/alerts"
        if c.user_name and c.ref_kind in ("alert", "incident") and c.ref_id:
            token = make_token(
                self.key,
                notification_id=c.id,
                user=c.user_name,
                ref_kind=c.ref_kind,
                ref_id=c.ref_id,
            )
            ack = f"{self.public}/notify/ack/{token}"

        payload = dict(c.payload or {})
        attachments = [Path(p) for p in payload.pop("attachments", []) or []]
        file_url = ""
        if c.kind == "scheduled_report" and not attachments and payload.get("path"):
            token = make_file_token(self.key, path=str(payload["path"]), recipient=c.recipient)
            file_url = f"{self.public}/notify/file/{token}"

        def fill(s: str) -> str:
            return (
                s.replace(ACK_URL, ack).replace(FILE_URL, file_url).replace(PUBLIC_URL, self.public)
            )

        payload["ack_url"] = ack if ack.startswith(f"{self.public}/notify/") else None
        return Message(
            id=c.id,
            idem_key=c.idem_key,
            channel=c.channel,
            recipient=c.recipient,
            subject=fill(c.subject),
            body_text=fill(c.body_text),
            body_html=fill(c.body_html) if c.body_html else None,
            payload=payload,
            attachments=attachments,
        )

    def _send(self, c: outbox.Claimed) -> tuple[str, str]:
        """('sent'|'down'|'transient'|'permanent', error) for one message."""
        if self.down_until.get(c.channel, 0) > time.monotonic():
            return "down", "channel down"
        try:
            chan = self.channel(c.channel)
            if chan is None:  # e.g. IOC_SMTP_URL unset: no e-mail (contract), nothing waits
                what = (
                    "IOC_SMTP_URL is not set" if c.channel == "email" else "IOC_MQTT_URL is not set"
                )
                return "cancel", f"{what}: not sent"
            msg = self.message(c)
            for p in msg.attachments:
                if not p.is_file():
                    return "permanent", f"attachment gone: {p.name}"
            chan.send(msg)
        except ChannelDown as exc:
            # the rest of the batch does not wait on the same dead server (each try may take
            # smtp_timeout_s); the back-off proper is set when the batch ends
            self.down_until[c.channel] = (
                time.monotonic() + self.cfg.notifications.delivery.backoff_s
            )
            return "down", str(exc)
        except PermanentError as exc:
            return "permanent", str(exc)
        except TransientError as exc:
            return "transient", str(exc)
        except Exception as exc:  # a bug or an unexpected library error: retried, counted
            log.exception("notification %s: unexpected error", c.id)
            return "transient", f"{type(exc).__name__}: {exc}"
        # recorded at once: the window for a duplicate is this one message
        with self._lock:
            outbox.mark_sent(self.db(), [c.id])
        return "sent", ""

    def run_once(self, now: dt.datetime | None = None) -> int:
        """Claim and send one batch; the number of messages claimed."""
        d = self.cfg.notifications.delivery
        with self._lock:
            batch = outbox.claim(self.db(), self.cfg, owner=self.owner, limit=d.batch, now=now)
        if not batch:
            return 0
        self.stats.batches += 1
        results = list(self.pool.map(self._send, batch))
        down: dict[str, list[int]] = {}
        for c, (outcome, error) in zip(batch, results, strict=True):
            if outcome == "sent":
                self.stats.sent += 1
                self.down_streak.pop(c.channel, None)
            elif outcome == "cancel":
                with self._lock:
                    outbox.cancel(self.db(), [c.id], reason=error)
            elif outcome == "down":
                down.setdefault(c.channel, []).append(c.id)
                self.stats.last_error = error if error != "channel down" else self.stats.last_error
            else:
                with self._lock:
                    res = outbox.mark_failed(
                        self.db(),
                        self.cfg,
                        c.id,
                        error,
                        permanent=outcome == "permanent",
                        attempts=c.attempts,
                    )
                self.stats.last_error = error
                if res == "dead":
                    self.stats.dead += 1
                    log.warning("notification %s to %s dead-lettered: %s", c.id, c.recipient, error)
                else:
                    self.stats.retried += 1
        for chan, ids in down.items():
            streak = self.down_streak.get(chan, 0) + 1
            self.down_streak[chan] = streak
            wait = outbox.backoff(self.cfg.notifications, streak)
            self.down_until[chan] = time.monotonic() + wait
            at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            with self._lock:
                outbox.release(self.db(), ids, at=at, error=self.stats.last_error or "channel down")
            self.stats.deferred += len(ids)
            log.warning(
                "%s channel down (%s); %d message(s) wait %.0f s",
                chan,
                self.stats.last_error,
                len(ids),
                wait,
            )
        return len(batch)

    def housekeeping(self, now: dt.datetime | None = None) -> dict[str, int]:
        with self._lock:
            conn = self.db()
            done = escalation.tick(conn, self.cfg, now=now)
            done["digests"] = outbox.flush_digests(conn, self.cfg, now=now)
            done["offline_digests"] = offline_digest(conn, self.cfg, now=now)
            if time.monotonic() - self._last_prune >= 3600:
                done["pruned"] = outbox.prune(conn, self.cfg, now=now)
                self._last_prune = time.monotonic()
            self.heartbeat(conn)
        self._last_housekeeping = time.monotonic()
        return done

    def heartbeat(self, conn: Connection, status: str | None = None) -> None:
        """This worker's state in ``service_status`` (service ``notify``; /healthz reads it):
        ``running``, or ``backlog`` when a message due to go has waited longer than
        BACKLOG_S (a channel down, too few workers), with the queue and the counters."""
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), extract(epoch FROM now() - min(next_attempt_at))"
                " FROM notifications WHERE status IN ('pending', 'sending')"
                " AND next_attempt_at <= now()"
            )
            row = cur.fetchone()
            due, oldest = (int(row[0]), float(row[1] or 0)) if row else (0, 0.0)
            if status is None:
                status = "backlog" if oldest > BACKLOG_S else "running"
            details = {
                **asdict(self.stats),
                "due": due,
                "oldest_due_s": round(oldest, 1),
                "channels_down": sorted(
                    c for c, t in self.down_until.items() if t > time.monotonic()
                ),
            }
            record_service_status(cur, SERVICE, self.owner, status, details)
        conn.commit()

    def drain(self, *, max_batches: int = 1000) -> int:
        """Send everything due now (tests, ``--once``)."""
        total = 0
        for _ in range(max_batches):
            n = self.run_once()
            total += n
            if n == 0:
                break
        return total

    # -- the loop

    def run(self, stop: threading.Event) -> None:
        d = self.cfg.notifications.delivery
        listen: Connection | None = None
        while not stop.is_set():
            try:
                if listen is None or listen.closed:
                    listen = connect(
                        self.db_url, application_name="ioc-notify-listen", autocommit=True
                    )
                    with listen.cursor() as cur:
                        cur.execute(f"LISTEN {outbox.CHANNEL_NOTIFY}")
                if time.monotonic() - self._last_housekeeping >= d.housekeeping_s:
                    self.housekeeping()
                while not stop.is_set() and self.run_once() >= d.batch:
                    pass
                # sleep until notified, the poll interval, or a stop
                deadline = time.monotonic() + d.poll_s
                while not stop.is_set() and time.monotonic() < deadline:
                    ready, _, _ = select.select([listen], [], [], min(0.25, d.poll_s))
                    if ready:
                        listen.poll()
                        if listen.notifies:
                            listen.notifies.clear()
                            break
            except (psycopg2.Error, OSError) as exc:
                log.warning(
                    "notify worker: %s", str(exc).strip().splitlines()[0] if str(exc) else exc
                )
                for c in (listen, self.conn):
                    if c is not None and not c.closed:
                        c.close()
                listen = None
                stop.wait(d.poll_s)
            except Exception as exc:  # keep the worker alive; the message stays queued
                log.exception("notify worker: %s", exc)
                stop.wait(d.poll_s)
        if listen is not None and not listen.closed:
            listen.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        with contextlib.suppress(psycopg2.Error, OSError):
            self.heartbeat(self.db(), "stopped")
        for chan in self._channels:
            with contextlib.suppress(Exception):
                chan.close()
        if self.conn is not None and not self.conn.closed:
            self.conn.close()


def start_thread(
    cfg: Config, db_url: str, settings: Settings, stop: threading.Event
) -> threading.Thread:
    """A delivery worker on a thread of another process (``ioc scheduler``), until ``stop``."""

    def run() -> None:
        try:
            worker = Worker(cfg, db_url, settings)
        except Exception as exc:  # e.g. a malformed IOC_SMTP_URL: the scheduler goes on
            log.error("notifications: no delivery worker: %s", exc)
            return
        try:
            worker.run(stop)
        finally:
            worker.close()

    thread = threading.Thread(target=run, name="notify-worker", daemon=True)
    thread.start()
    return thread


def main(args: argparse.Namespace, ctx: Context) -> int:
    """``ioc notify``: deliver notifications until SIGINT/SIGTERM (``--once``: what is due)."""
    cfg = ctx.config()
    db_url = ctx.database_url()
    check = connect(db_url, application_name="ioc-notify-check")  # one-line error if down
    try:
        with check.cursor() as cur:
            cur.execute("SELECT to_regclass('notification_escalations') IS NOT NULL")
            row = cur.fetchone()
    finally:
        check.close()
    if not row or not row[0]:
        raise IOCError("the database has no notification tables yet: run `ioc db init` first")
    settings = ctx.settings
    smtp_url = settings.secret("smtp_url")
    if smtp_url:
        target = parse_smtp_url(smtp_url)
        print(f"ioc notify: e-mail through {target.redacted()} as {settings.smtp_from}", flush=True)
    else:
        print("ioc notify: IOC_SMTP_URL is not set: no e-mail (webhooks and MQTT only)", flush=True)
    worker = Worker(cfg, db_url, settings)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("notify: signal %d, stopping", signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    try:
        if getattr(args, "once", False):
            worker.housekeeping()
            n = worker.drain()
            print(f"ioc notify: {n} message(s) handled, {worker.stats.sent} sent", flush=True)
        else:
            worker.run(stop)
    finally:
        worker.close()
    return 0
