"""``ioc demo``: the whole system on one machine, with no set-up.

Uses ``IOC_DATABASE_URL`` / ``IOC_MQTT_URL`` when set, otherwise starts the embedded PostgreSQL
(data in ``./var/pg``) and the embedded MQTT broker. Then, in order: ``ioc db init``, the demo
user, the MQTT ingester, the camera ingester, a local mail catcher (unless ``IOC_SMTP_URL`` is
set; its inbox page is announced), the scheduler, the notification worker (``ioc notify``), the
simulator (a backfill of history once, then live) and the dashboard, each as its own
``python -m ioc.cli ...`` subprocess with the URLs in its environment. Every output line is
prefixed with the child's name.

A supervisor restarts a child that dies (at most ``MAX_RESTARTS`` per ``RESTART_WINDOW_S``,
recording why), and skips a command that answers "not available yet" (exit 2). Ctrl-C or
SIGTERM stops everything in reverse order: children get SIGTERM, then SIGKILL after
``STOP_TIMEOUT_S``; then the broker and the database stop.

This module and ``ioc/cli.py`` are the only places that know every package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import importlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ioc.context import Context
from ioc.errors import IOCError
from ioc.settings import redact_db_url

from .embedded import EmbeddedBroker, EmbeddedPostgres, FreshMessageWatch, die_with_parent

NOT_AVAILABLE = "not available yet"
EXIT_NOT_AVAILABLE = 2
MAX_RESTARTS = 5  # per window, then the child is given up (and said so)
RESTART_WINDOW_S = 60.0
STOP_TIMEOUT_S = 10.0  # SIGTERM, then SIGKILL after this
SETTLE_S = 1.5  # a command that is not available exits within this; then we go on
PORT_WAIT_S = 10.0  # how long the dashboard port may stay taken before the demo refuses
SUBSCRIBER_WAIT_S = 30.0  # how long to wait for the ingester's subscription before history
LOGIN_FILE = "demo-login.txt"
ENV_FILE = "demo.env"
BACKFILL_MARK = "backfill.done"
BACKFILL_SETTLE_MAX_S = 180.0  # at most this long waiting for the ingester to drain
INCIDENT_HISTORY_WAIT_S = 900.0  # the incident history waits at most this for the MQTT reports
DEMO_USER = "demo"
DEMO_EMAIL = "demo@localhost"
MAIL_SMTP_PORT = 1025  # the mail catcher's, or a free one when taken
MAIL_HTTP_PORT = 8025


# --- output -----------------------------------------------------------------------------------


class Output:
    """Lines from the demo and its children, each prefixed with its source's name."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        with self._lock:
            try:
                self.stream.write(f"{name:<14}| {text}\n")
                self.stream.flush()
            except (OSError, ValueError):  # stdout closed: keep running, nothing to show
                pass

    def say(self, text: str) -> None:
        self.line("demo", text)


# --- children ---------------------------------------------------------------------------------


@dataclass
class Child:
    """One ``ioc`` sub-command run as a subprocess in its own session (own process group)."""

    name: str
    args: list[str]
    env: dict[str, str]
    out: Output
    long_running: bool = True
    stdin_text: str | None = None
    then: Callable[[Child], None] | None = None  # called once when a one-shot child exits
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "ioc.cli"])
    proc: subprocess.Popen[bytes] | None = None
    unavailable: bool = False
    given_up: bool = False
    finished: bool = False  # a one-shot child that has exited, or a child we no longer run
    last_lines: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    restarts: deque[float] = field(default_factory=deque)
    restart_at: float | None = None
    _reader: threading.Thread | None = None

    def start(self) -> None:
        self.last_lines.clear()
        self.proc = subprocess.Popen(
            [*self.program, *self.args],
            stdin=subprocess.PIPE if self.stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # Ctrl-C reaches only the demo, which stops us in order
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        if self.stdin_text is not None:
            assert self.proc.stdin is not None
            with suppress(BrokenPipeError):
                self.proc.stdin.write(self.stdin_text.encode())
            with suppress(BrokenPipeError):
                self.proc.stdin.close()
        self._reader = threading.Thread(
            target=self._read, args=(self.proc,), name=f"out-{self.name}", daemon=True
        )
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                text = raw.decode("utf-8", "replace").rstrip()
                if text:
                    self.last_lines.append(text)
                    self.out.line(self.name, text)

    def poll(self) -> int | None:
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is not None and self._reader is not None:
            self._reader.join(5)  # all its output is shown before we act on its exit
        return rc

    def wait(self, timeout: float | None = None) -> int | None:
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll()

    def exit_reason(self, rc: int) -> str:
        last = self.last_lines[-1] if self.last_lines else "no output"
        if rc < 0:
            with suppress(ValueError):
                return f"killed by {signal.Signals(-rc).name} ({last})"
        return f"exit code {rc} ({last})"

    def said_not_available(self, rc: int) -> bool:
        return rc == EXIT_NOT_AVAILABLE and any(NOT_AVAILABLE in line for line in self.last_lines)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float, hurry: threading.Event | None = None) -> None:
        """SIGTERM to the child's process group, SIGKILL after ``timeout`` (or on ``hurry``)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.out.say(f"stopping {self.name}")
            _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if hurry is not None and hurry.wait(0.05):
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                self.out.say(f"{self.name} did not stop in {timeout:.0f} s: SIGKILL")
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # whatever it left behind in its group
        if self._reader is not None:
            self._reader.join(5)
        self.finished = True


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Supervisor:
    """Watches the children: restarts a dead one (capped), skips what is not available."""

    def __init__(
        self,
        out: Output,
        *,
        max_restarts: int = MAX_RESTARTS,
        window_s: float = RESTART_WINDOW_S,
        first_delay_s: float = 1.0,
    ) -> None:
        self.out = out
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.first_delay_s = first_delay_s
        self.children: list[Child] = []

    def add(self, child: Child, *, after: Child | None = None) -> Child:
        """Start ``child``; it stops in reverse order of this list (``after`` = its slot)."""
        if after is not None and after in self.children:
            self.children.insert(self.children.index(after) + 1, child)
        else:
            self.children.append(child)
        child.start()
        return child

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for child in list(self.children):
            if child.finished or child.given_up or child.unavailable:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    self.out.say(f"restarting {child.name}")
                    child.start()
                continue
            rc = child.poll()
            if rc is None:
                continue
            self._exited(child, rc, now)

    def _exited(self, child: Child, rc: int, now: float) -> None:
        if child.said_not_available(rc):
            child.unavailable = True
            self.out.say(
                f"skipped {child.name}: `ioc {' '.join(child.args[:2])}` is {NOT_AVAILABLE}"
            )
            return
        if not child.long_running:
            child.finished = True
            if rc == 0:
                self.out.say(f"{child.name} finished")
                if child.then is not None:
                    child.then(child)
            else:
                self.out.say(f"{child.name} failed: {child.exit_reason(rc)}")
                if child.then is not None:
                    child.then(child)
            return
        reason = child.exit_reason(rc)
        if rc == EXIT_NOT_AVAILABLE:  # a usage error: restarting cannot help
            child.given_up = True
            self.out.say(f"{child.name} refused to start: {reason}; not restarted")
            return
        while child.restarts and now - child.restarts[0] > self.window_s:
            child.restarts.popleft()
        if len(child.restarts) >= self.max_restarts:
            child.given_up = True
            self.out.say(
                f"{child.name} died: {reason}; restarted {self.max_restarts} times in"
                f" {self.window_s:.0f} s, giving up on it (the rest keeps running)"
            )
            return
        child.restarts.append(now)
        delay = min(self.first_delay_s * 2.0 ** (len(child.restarts) - 1), 30.0)
        child.restart_at = now + delay
        self.out.say(f"{child.name} died: {reason}; restarting in {delay:.0f} s")

    def stop_all(self, timeout: float, hurry: threading.Event | None = None) -> None:
        """Stop the children in reverse order of their start."""
        for child in reversed(self.children):
            child.stop(timeout, hurry)


# --- signals ----------------------------------------------------------------------------------


class StopRequest(threading.Event):
    """Set by the first SIGINT/SIGTERM; ``hurry`` by the second (stop without waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.hurry = threading.Event()


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """SIGINT/SIGTERM set the returned event (a second one makes the shutdown quick)."""
    stop = StopRequest()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            stop.hurry.set()
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --- the demo ---------------------------------------------------------------------------------


class Demo:
    """Starts the services as an ordered list; ``stop()`` undoes them in reverse order."""

    def __init__(self, args: argparse.Namespace, ctx: Context, out: Output) -> None:
        self.args = args
        self.ctx = ctx
        self.out = out
        self.var_dir = Path(ctx.settings.var_dir).resolve()
        self.config_dir = Path(ctx.settings.config_dir).resolve()
        self.supervisor = Supervisor(out)
        self.database_url: str = ""
        self.mqtt_url: str = ""
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.login: tuple[str, str] | None = None
        self.kiosk_token: str = ""
        self.intake_token: str = ""  # the simulator's POST /api/v1/reports token
        self.incidents_token: str = ""  # the simulator's ward staff (incidents API)
        self.smtp_url: str = ""  # the local mail catcher's, unless IOC_SMTP_URL is set
        self.inbox_url: str = ""
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self.began = time.monotonic()
        self._stop = threading.Event()

    # -- startup: read top to bottom

    def start(self, stop: threading.Event) -> None:
        """Each step may register its undo; ``stop()`` runs those in reverse."""
        self.began = time.monotonic()
        self._stop = stop
        steps: list[tuple[str, Callable[[], None]]] = [
            ("configuration", self.check_config),
            ("dashboard port", self.check_port),
            ("database", self.start_database),
            ("broker", self.start_broker),
            ("environment file", self.write_env_file),
            ("schema", self.init_schema),
            ("demo user", self.ensure_demo_user),
            ("kiosk token", self.ensure_kiosk_token),
            ("intake token", self.ensure_intake_token),
            ("incidents token", self.ensure_incidents_token),
            ("MQTT ingester", self.start_mqtt_ingester),
            ("camera ingester", self.start_camera_ingester),
            ("mail catcher", self.start_mail_catcher),
            ("scheduler", self.start_scheduler),
            ("notifications", self.start_notify),
            ("simulator", self.start_simulator),
            ("dashboard", self.start_dashboard),
        ]
        for _name, step in steps:
            if stop.is_set():
                return
            step()
        self.announce()

    def check_config(self) -> None:
        cfg = self.ctx.config()  # a bad configuration stops here, with file/line/key
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.out.say(
            f"configuration {self.config_dir}: {len(cfg.wards)} wards; data in {self.var_dir}"
        )

    def check_port(self) -> None:
        """Fail now, in one line, rather than after everything started and serve died 5 times."""
        host = self.args.host or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # A server that has just stopped (a demo restarted at once) may hold the port for a
        # moment: try for PORT_WAIT_S, as gunicorn itself retries its bind, before refusing.
        deadline = time.monotonic() + PORT_WAIT_S
        while True:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, self.args.port))
                    return
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                        raise IOCError(
                            f"cannot serve the dashboard on {host}:{self.args.port}: "
                            f"{exc.strerror} (another `ioc demo` or server? choose another "
                            "with --port)"
                        ) from None
            time.sleep(0.25)

    def start_database(self) -> None:
        url = self.ctx.settings.database_url
        if url:
            self.database_url = self.ctx.database_url()
            self.out.say(f"database: {redact_db_url(self.database_url)} (IOC_DATABASE_URL)")
            return
        self.postgres = EmbeddedPostgres(self.var_dir / "pg")
        self.out.say(f"starting the embedded PostgreSQL in {self.postgres.data_dir}")
        self.database_url = self.postgres.start()
        self._undo.append(("stopping the embedded PostgreSQL", self.postgres.stop))
        how = "new cluster" if self.postgres.initialised else "existing data"
        self.out.say(
            f"embedded PostgreSQL ready in {self.postgres.start_seconds:.1f} s ({how}):"
            f" {redact_db_url(self.database_url)}"
        )

    def start_broker(self) -> None:
        if self.ctx.settings.mqtt_url:
            self.mqtt_url = str(self.ctx.settings.mqtt_url)
            self.out.say(f"broker: {self.ctx.mqtt().redacted()} (IOC_MQTT_URL)")
            return
        self.broker = EmbeddedBroker(
            data_dir=self.var_dir / "mqtt", engine=self.ctx.settings.embedded_broker
        )
        self.mqtt_url = self.broker.start()
        self._undo.append(("stopping the embedded MQTT broker", self.broker.stop))
        what = {
            "amqtt": "amqtt, MQTT 3.1.1 only",
            "mosquitto": f"mosquitto, {self.var_dir / 'mqtt'}",
        }
        self.out.say(
            f"embedded MQTT broker ({what.get(self.broker.engine, self.broker.engine)})"
            f" on 127.0.0.1:{self.broker.port}"
        )

    def write_env_file(self) -> None:
        """``var/demo.env``: the URLs, so other ``ioc`` commands can reach the running demo."""
        path = self.var_dir / ENV_FILE
        path.write_text(
            "# valid while `ioc demo` runs; use: set -a; . var/demo.env; set +a\n"
            f"IOC_DATABASE_URL='{self.database_url}'\nIOC_MQTT_URL='{self.mqtt_url}'\n"
            + (
                "IOC_MQTT_PROTOCOL='3.1.1'\n"
                if self.broker is not None and self.broker.engine == "amqtt"
                else ""
            ),
            encoding="utf-8",
        )
        path.chmod(0o600)
        self._undo.append((f"removing {path}", lambda: path.unlink(missing_ok=True)))

    def init_schema(self) -> None:
        rc, child = self.run_once("db-init", ["db", "init"])
        if rc != 0:
            raise IOCError(f"`ioc db init` failed: {child.exit_reason(rc)}")

    def ensure_demo_user(self) -> None:
        login_file = self.var_dir / LOGIN_FILE
        password = _saved_password(login_file)
        if password is not None and self._user_exists(DEMO_USER):
            self.login = (DEMO_USER, password)
            return
        password = password or secrets.token_urlsafe(12)
        rc, child = self.run_once(
            "users-add", ["users", "add", DEMO_USER, "--role", "admin"], stdin_text=password + "\n"
        )
        if child.said_not_available(rc):
            self.out.say(f"no demo user: `ioc users add` is {NOT_AVAILABLE}")
            return
        if rc != 0:
            self.out.say(f"no demo user: `ioc users add` failed: {child.exit_reason(rc)}")
            return
        self.login = (DEMO_USER, password)
        self._write_login_file()

    def ensure_kiosk_token(self) -> None:
        """The wall display's read-only token (``/wall?token=``): ``IOC_KIOSK_TOKEN`` when set,
        else the one saved in ``var/demo-login.txt``, else a new one saved there."""
        login_file = self.var_dir / LOGIN_FILE
        token = self.ctx.settings.secret("kiosk_token") or _saved_value(login_file, "kiosk")
        self.kiosk_token = token or secrets.token_urlsafe(16)
        if _saved_value(login_file, "kiosk") != self.kiosk_token:
            self._write_login_file()

    def ensure_intake_token(self) -> None:
        """A fresh intake token for the simulator, which pushes the reports of the Góp ý Đà
        Nẵng app and portal through ``POST /api/v1/reports`` (kept in memory only; the one of
        a previous run is replaced)."""
        from ioc.citizen.tokens import add_token
        from ioc.db import connect

        try:
            conn = connect(self.database_url, application_name="ioc-demo")
        except IOCError as exc:
            self.out.say(f"no intake token (reports go over MQTT only): {exc}")
            return
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM api_tokens WHERE name = 'demo-simulator'")
            conn.commit()
            self.intake_token = add_token(conn, "demo-simulator", "intake")
        except Exception as exc:  # the rest of the demo is still worth running
            self.out.say(f"no intake token (reports go over MQTT only): {exc}")
        finally:
            conn.close()

    def ensure_incidents_token(self) -> None:
        """A fresh token of scope incidents for the simulator's ward staff, who work incidents
        through the incidents API (kept in memory only; a previous run's is replaced)."""
        from ioc.db import connect
        from ioc.incidents.tokens import add_staff_token

        try:
            conn = connect(self.database_url, application_name="ioc-demo")
        except IOCError as exc:
            self.out.say(f"no incidents token (nobody works incidents): {exc}")
            return
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM api_tokens WHERE name = 'demo-ward-staff'")
            conn.commit()
            self.incidents_token = add_staff_token(conn, "demo-ward-staff")
        except Exception as exc:  # the rest of the demo is still worth running
            self.out.say(f"no incidents token (nobody works incidents): {exc}")
        finally:
            conn.close()

    def _write_login_file(self) -> None:
        lines = [f"URL: {self.url}"]
        if self.login is not None:
            lines += [f"user: {self.login[0]}", f"password: {self.login[1]}"]
        if self.kiosk_token:
            lines += [f"kiosk: {self.kiosk_token}", f"wall: {self.wall_url}"]
        if self.inbox_url:
            lines += [f"mail: {self.inbox_url}"]
        login_file = self.var_dir / LOGIN_FILE
        login_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        login_file.chmod(0o600)

    def start_mqtt_ingester(self) -> None:
        # history published before the ingester subscribes would be lost: wait for the
        # ingester's "online" (published once it has subscribed) on the embedded broker
        watch: FreshMessageWatch | None = None
        if self.broker is not None and self.mqtt_url:
            try:
                watch = FreshMessageWatch(
                    self.mqtt_url, f"{self.ctx.config().topic_prefix}/_ingest/+/status"
                )
                if not watch.ready(SUBSCRIBER_WAIT_S):
                    watch.close()
                    watch = None
            except OSError:
                watch = None
        try:
            child = self.start_child("ingest-mqtt", ["ingest", "mqtt"])
            if child.running() and watch is not None:
                deadline = time.monotonic() + SUBSCRIBER_WAIT_S
                while not watch.wait(0.2) and time.monotonic() < deadline:
                    if child.poll() is not None or self._stop.is_set():
                        break
        finally:
            if watch is not None:
                watch.close()

    def start_camera_ingester(self) -> None:
        try:
            synth = importlib.import_module("sensors.camera_synth")
        except ModuleNotFoundError:
            synth = None
        ensure = getattr(synth, "ensure_demo_videos", None)
        if ensure is not None:
            self.out.say("preparing the demo camera videos (rendered on the first start only)")
            began = time.monotonic()
            result: list[object] = []

            def render() -> None:
                try:
                    result.extend(ensure(self.ctx.config(), self.var_dir))
                except Exception as exc:  # the rest of the demo is still worth running
                    self.out.say(f"could not prepare the demo videos: {type(exc).__name__}: {exc}")

            # in a thread, so that Ctrl-C need not wait for the rendering (each video is
            # written to a .part file and renamed: an abandoned one is redone next time)
            worker = threading.Thread(target=render, name="demo-videos", daemon=True)
            worker.start()
            while worker.is_alive():
                if self._stop.wait(0.2):
                    self.out.say("video rendering abandoned")
                    return
            if result:
                self.out.say(
                    f"rendered {len(result)} demo camera video(s) in"
                    f" {time.monotonic() - began:.0f} s (once; kept in {self.var_dir})"
                )
        self.start_child("ingest-cameras", ["ingest", "cameras"])

    def start_scheduler(self) -> None:
        self.start_child("scheduler", ["scheduler"])

    def start_mail_catcher(self) -> None:
        """Without IOC_SMTP_URL: a local mail catcher (SMTP + an inbox page) receives the
        notifications, and the demo user gets an address there."""
        if self.ctx.settings.smtp_url:
            self.out.say("notifications by e-mail through IOC_SMTP_URL")
            return
        if importlib.util.find_spec("aiosmtpd") is None:
            self.out.say("no mail catcher: aiosmtpd is not installed (pip install -e '.[demo]')")
            return
        smtp_port, http_port = _free_port(MAIL_SMTP_PORT), _free_port(MAIL_HTTP_PORT)
        child = Child(
            "mail",
            ["--smtp-port", str(smtp_port), "--http-port", str(http_port),
             "--dir", str(self.var_dir / "mail")],
            self.child_env(),
            self.out,
            program=[sys.executable, "-m", "ioc.demo.catcher"],
        )  # fmt: skip
        self.supervisor.add(child)
        self.smtp_url = f"smtp://127.0.0.1:{smtp_port}"
        self.inbox_url = f"http://127.0.0.1:{http_port}/"
        self._set_demo_email()

    def _set_demo_email(self) -> None:
        from ioc.db import connection

        with (
            connection(self.database_url, application_name="ioc-demo") as conn,
            conn.cursor() as cur,
        ):
            cur.execute(
                "UPDATE users SET email = %s WHERE name = %s AND email IS NULL",
                (DEMO_EMAIL, DEMO_USER),
            )

    def start_notify(self) -> None:
        self.start_child("notify", ["notify"])

    def start_simulator(self) -> None:
        live = ["simulate", "--rate", str(self.args.rate), "--seed", str(self.args.seed)]
        mark = self.var_dir / BACKFILL_MARK
        days = int(self.args.backfill)
        if days <= 0 or mark.exists():
            self._backfill_state("done")
            self.start_child("simulate", live)
            return

        def then_live(backfill: Child) -> None:
            if backfill.proc is not None and backfill.proc.returncode == 0:
                mark.write_text(f"{days} days, seed {self.args.seed}\n", encoding="utf-8")
            self.start_child("simulate", live, settle=False, after=backfill)
            threading.Thread(
                target=self._after_backfill, name="demo-backfill-landed", daemon=True
            ).start()
            threading.Thread(
                target=self._incident_history, name="demo-incident-history", daemon=True
            ).start()

        self._backfill_state("running")  # the pages say that data is still arriving

        self.out.say(f"simulating {days} days of history first, then live readings")
        backfill = ["simulate", "--backfill", str(days), "--seed", str(self.args.seed)]
        self.start_child("backfill", backfill, long_running=False, then=then_live)

    def _backfill_state(self, value: str) -> None:
        from ioc import jobrequests
        from ioc.db import connection

        try:
            with connection(self.database_url, application_name="ioc-demo") as conn:
                jobrequests.set_backfill(conn, value)
        except Exception as exc:  # the pages only lose their "data arriving" note
            self.out.say(f"could not record the back-fill state: {exc}")

    def _after_backfill(self) -> None:
        """Once the ingester has written what the back-fill published, the KPIs are computed
        at once (not at the scheduler's next tick, minutes later)."""
        from ioc import jobrequests
        from ioc.db import connection

        ended = dt.datetime.now(dt.UTC)
        deadline = time.monotonic() + BACKFILL_SETTLE_MAX_S
        try:
            with connection(self.database_url, application_name="ioc-demo") as conn:
                last: int | None = None
                while time.monotonic() < deadline:
                    now = jobrequests.ingest_snapshot(conn, ended)
                    if now is not None and now == last:
                        break
                    last = now
                    if self._stop.wait(2.0):
                        return
                jobrequests.set_backfill(conn, "done")
                jobrequests.request_run(conn, "kpis", "demo: back-filled history ingested")
                self._device_positions(conn)
            self.out.say("history ingested: computing the KPIs now")
        except Exception as exc:
            self.out.say(f"could not ask for the KPIs after the back-fill: {exc}")

    def _incident_history(self) -> None:
        """The back-filled reports' incidents (sensors/incident_ops.py): taken up by the
        operations centre and worked by the ward staff in the past through ioc.incidents, so
        the incident pages start with every SLA state and a complete audit trail. Written at
        once for the reports stored so far (those pushed through the API are), and again for
        the rest once the ingester has drained the back-fill (the MQTT reports come last)."""
        from ioc.db import connection
        from sensors.incident_ops import write_history

        ended = dt.datetime.now(dt.UTC)

        def write(conn: Any, what: str) -> None:
            from ioc import jobrequests

            res = write_history(
                conn,
                self.ctx.config(),
                seed=int(self.args.seed),
                since=ended - dt.timedelta(days=int(self.args.backfill)),
                until=dt.datetime.now(dt.UTC),
                received_before=ended,
            )
            self.out.say(f"incident history ({what}): {res.summary()}")
            jobrequests.request_run(conn, "kpis", "demo: incident history written")

        try:
            with connection(self.database_url, application_name="ioc-demo") as conn:
                write(conn, "reports stored so far")
                deadline, drained = time.monotonic() + INCIDENT_HISTORY_WAIT_S, 0
                while time.monotonic() < deadline and drained < 2:
                    if self._stop.wait(5.0):
                        return
                    drained = drained + 1 if _ingest_drained(conn, ended) else 0
                write(conn, "every back-filled report")
        except Exception as exc:  # the rest of the demo is still worth running
            self.out.say(f"incident history: {type(exc).__name__}: {exc}")

    def _device_positions(self, conn: Any) -> None:
        """The simulated devices' positions (sensors/fleet.py) on their rows, for the pins
        of the ward maps: a real fleet's come from its inventory."""
        from sensors.fleet import build_fleet
        from sensors.settings import load_simulator_settings

        cfg = self.ctx.config()
        _, fleet = build_fleet(cfg, load_simulator_settings(self.config_dir))
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE devices SET lat = %s, lon = %s WHERE device_id = %s AND lat IS NULL",
                [(d.lat, d.lon, d.id) for d in fleet],
            )
        conn.commit()

    def start_dashboard(self) -> None:
        self.start_child(
            "serve", ["serve", "--host", self.args.host, "--port", str(self.args.port)]
        )

    def announce(self) -> None:
        serve = next((c for c in self.supervisor.children if c.name == "serve"), None)
        note = (
            "" if serve is None or not serve.unavailable else f" (the dashboard is {NOT_AVAILABLE})"
        )
        self.out.say(f"ready in {time.monotonic() - self.began:.0f} s")
        self.out.say(f"URL: {self.url}{note}")
        if self.login is not None:
            user, password = self.login
            self.out.say(f"login: {user} / {password}   (saved in {self.var_dir / LOGIN_FILE})")
        else:
            self.out.say("login: no demo user could be created (see above)")
        if self.kiosk_token:
            self.out.say(f"wall display (no sign-in): {self.wall_url}")
        if self.inbox_url:
            self.out.say(f"mail inbox (notifications to {DEMO_EMAIL}): {self.inbox_url}")
        self.out.say("press Ctrl-C to stop everything")

    # -- running

    def run(self, stop: threading.Event) -> int:
        """Supervise until asked to stop; 1 if an embedded server died under us."""
        while not stop.wait(0.5):
            self.supervisor.check()
            if self.postgres is not None and not self.postgres.alive():
                self.out.say(f"the embedded PostgreSQL died (see {self.postgres.log_path})")
                return 1
            if self.broker is not None and not self.broker.alive():
                self.out.say("the embedded MQTT broker died")
                return 1
        return 0

    # -- shutdown: the reverse of start()

    def stop(self, hurry: threading.Event | None = None) -> None:
        self.out.say("stopping")
        self.supervisor.stop_all(STOP_TIMEOUT_S, hurry)
        while self._undo:
            what, undo = self._undo.pop()
            self.out.say(what)
            try:
                undo()
            except Exception as exc:  # keep stopping the rest
                self.out.say(f"{what} failed: {exc}")
        if self.broker is not None and self.broker.puback_timeouts:
            self.out.say(
                f"note: {self.broker.puback_timeouts} QoS-1 deliveries waited more than 5 s for"
                " their PUBACK (amqtt then stops tracking them; see docs/demo.md)"
            )
        self.out.say("stopped")

    # -- helpers

    @property
    def url(self) -> str:
        host = self.args.host if self.args.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.args.port}/"

    @property
    def wall_url(self) -> str:
        return f"{self.url}wall?token={self.kiosk_token}"

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.kiosk_token:
            env["IOC_KIOSK_TOKEN"] = self.kiosk_token  # read-only: opens /wall only
        if self.intake_token:  # the simulator pushes app/portal reports to the dashboard
            env["IOC_INTAKE_URL"] = self.url
            env["IOC_INTAKE_TOKEN"] = self.intake_token
        if self.incidents_token:  # the simulator's ward staff work incidents over the API
            env["IOC_INTAKE_URL"] = self.url
            env["IOC_INCIDENTS_TOKEN"] = self.incidents_token
        if self.smtp_url:
            env["IOC_SMTP_URL"] = self.smtp_url  # the local mail catcher
        if self.inbox_url:  # linked from the dashboard's menu bar
            env["IOC_DEMO_INBOX_URL"] = self.inbox_url
        env.setdefault("IOC_PUBLIC_URL", self.url.rstrip("/"))  # links inside messages
        env.update(
            IOC_DATABASE_URL=self.database_url,
            IOC_MQTT_URL=self.mqtt_url,
            IOC_CONFIG_DIR=str(self.config_dir),
            IOC_VAR_DIR=str(self.var_dir),
            IOC_DEMO="1",  # placeholder passwords are accepted in the demo only
            PYTHONUNBUFFERED="1",
        )
        if self.broker is not None and self.broker.engine == "amqtt":
            env["IOC_MQTT_PROTOCOL"] = "3.1.1"  # amqtt speaks nothing else
        return env

    def _cli_args(self, args: list[str]) -> list[str]:
        return (["--debug"] if self.ctx.debug else []) + args

    def start_child(
        self,
        name: str,
        args: list[str],
        *,
        long_running: bool = True,
        then: Callable[[Child], None] | None = None,
        settle: bool = True,
        after: Child | None = None,
    ) -> Child:
        child = Child(
            name,
            self._cli_args(args),
            self.child_env(),
            self.out,
            long_running=long_running,
            then=then,
        )
        self.supervisor.add(child, after=after)
        if settle:  # a command that is not available says so at once: note it in order
            child.wait(SETTLE_S)
            self.supervisor.check()
        return child

    def run_once(
        self, name: str, args: list[str], *, stdin_text: str | None = None
    ) -> tuple[int, Child]:
        child = Child(
            name,
            self._cli_args(args),
            self.child_env(),
            self.out,
            long_running=False,
            stdin_text=stdin_text,
        )
        child.start()
        assert child.proc is not None
        try:
            child.proc.wait()
        except BaseException:
            child.stop(1.0)
            raise
        rc = child.poll()
        assert rc is not None
        return rc, child

    def _user_exists(self, name: str) -> bool:
        from ioc.db import connection

        with (
            connection(self.database_url, application_name="ioc-demo") as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT to_regclass('users') IS NOT NULL")
            row = cur.fetchone()
            if not row or not row[0]:
                return False
            cur.execute("SELECT 1 FROM users WHERE name = %s", (name,))
            return cur.fetchone() is not None

    def _a_ward(self) -> str:
        wards = self.ctx.config().wards
        return wards[0].code if wards else "0"


def _ingest_drained(conn: Any, since: dt.datetime) -> bool:
    """Every MQTT ingester reported after ``since`` with what it received written (the live
    messages never stop, so the count of messages is no guide: the receive-to-commit lag is)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), bool_and(updated_at > %s"
            " AND coalesce((details->>'writer_queue')::bigint, 0) = 0"
            " AND coalesce((details->>'inflight')::bigint, 0) < 200"
            " AND coalesce((details->>'lag_s')::float, 0) < 5)"
            " FROM service_status WHERE service = 'mqtt-ingest' AND status = 'running'",
            (since,),
        )
        row = cur.fetchone()
    conn.commit()
    return bool(row and row[0] and row[1])


def _free_port(preferred: int) -> int:
    """``preferred`` when free on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise IOCError("no free port for the mail catcher")


def _saved_password(path: Path) -> str | None:
    return _saved_value(path, "password")


def _saved_value(path: Path, name: str) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == name and value.strip():
            return value.strip()
    return None


def main(args: argparse.Namespace, ctx: Context) -> int:
    out = Output(sys.stdout)
    ctx.settings.demo = True
    demo = Demo(args, ctx, out)
    with stop_signals() as stop:
        rc = 0
        try:
            demo.start(stop)
            if not stop.is_set():
                rc = demo.run(stop)
        finally:
            demo.stop(stop.hurry)
    return rc
