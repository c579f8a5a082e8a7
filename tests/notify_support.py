"""Real receivers for the notification tests: an SMTP server (aiosmtpd) and an HTTP receiver,
both in the test process; and helpers to make users and a configuration folder."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller

from ioc.config import Config, load_config
from ioc.db import Connection
from ioc.demo.embedded import free_port as free_port  # re-exported for the notify tests

ROOT = Path(__file__).resolve().parent.parent


def wait_until(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, opts: Any
    ) -> str:
        if address in self.sink.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay_s:
            import asyncio

            await asyncio.sleep(self.sink.delay_s)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            for rcpt in envelope.rcpt_tos:
                self.sink.messages.append((rcpt, msg))  # type: ignore[arg-type]
        return "250 OK"


class MailSink:
    """aiosmtpd on a fixed port that can be stopped ("down") and started again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[tuple[str, EmailMessage]] = []
        self.refuse: set[str] = set()
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> MailSink:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def to(self, rcpt: str) -> list[EmailMessage]:
        with self.lock:
            return [m for r, m in self.messages if r == rcpt]

    def wait(self, n: int, timeout: float = 30.0) -> None:
        wait_until(lambda: self.count() >= n, timeout, f"{n} e-mails (got {self.count()})")


class HookSink:
    """A local HTTP server recording each POST (headers, body); answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, str]] = []
        self.status = 200
        self.lock = threading.Lock()
        sink = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.lock:
                    sink.requests.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body, self.path)
                    )
                    status = sink.status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> HookSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for _, b, _ in self.requests]


def config_dir(tmp: Path, notifications: dict[str, Any] | None = None, **alerts: Any) -> Path:
    """A copy of config/ with ``notifications.yaml`` replaced (deep-merged over the shipped one)."""
    dest = tmp / "config"
    shutil.copytree(ROOT / "config", dest)
    if notifications is not None:
        base = yaml.safe_load((dest / "notifications.yaml").read_text(encoding="utf-8"))
        for key, value in notifications.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        (dest / "notifications.yaml").write_text(
            yaml.safe_dump(base, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
    return dest


def load(tmp: Path, notifications: dict[str, Any] | None = None) -> Config:
    return load_config(config_dir(tmp, notifications))


def add_user(
    conn: Connection,
    name: str,
    role: str,
    *,
    wards: list[str] | None = None,
    email_addr: str | None = None,
    disabled: bool = False,
) -> None:
    """A user row (the hash is a placeholder: these users never sign in with a password)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (name, password_hash, role, wards, email, disabled)"
            " VALUES (%s, 'x', %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET role ="
            " EXCLUDED.role, wards = EXCLUDED.wards, email = EXCLUDED.email,"
            " disabled = EXCLUDED.disabled",
            (name, role, wards or [], email_addr, disabled),
        )
    conn.commit()


def rows(conn: Connection, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        out = list(cur.fetchall())
    conn.commit()
    return out
