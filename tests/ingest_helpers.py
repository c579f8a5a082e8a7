"""Helpers of the MQTT ingest tests: a test-owned Mosquitto, a config folder with a unique topic
prefix, the ingester as a subprocess, and a robust QoS-1 publisher."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import mqtt_support
import paho.mqtt.client as mqtt
import psycopg2
import pytest

from ioc.demo.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
DEPLOY_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
METRICS = ("pm25", "pm10", "no2", "so2", "co")


def delivery_settings() -> list[str]:
    """The lines between 'BEGIN delivery' and 'END delivery' of deploy/mosquitto.conf."""
    lines, inside = [], False
    for line in DEPLOY_CONF.read_text().splitlines():
        if "BEGIN delivery" in line:
            inside = True
        elif "END delivery" in line:
            inside = False
        elif inside and line.strip() and not line.startswith("#"):
            lines.append(line)
    assert lines, "deploy/mosquitto/mosquitto.conf lost its delivery section"
    return lines


class Mosquitto:
    """A broker owned by the test: recommended delivery settings, its own port and folder."""

    def __init__(
        self, folder: Path, *, settings: list[str] | None = None, extra: Iterable[str] = ()
    ) -> None:
        if not os.access(MOSQUITTO, os.X_OK):  # e.g. a fresh machine running the suite embedded
            pytest.skip("needs the mosquitto binary to run a broker of its own")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o777)  # mosquitto drops root privileges to user 'mosquitto'
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        body = list(delivery_settings() if settings is None else settings)
        body += [
            f"persistence_location {folder}/",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # as root, stay root: the test folder is not readable by user 'mosquitto'
            *(["user root"] if os.geteuid() == 0 else []),
            *extra,
        ]
        self.conf.write_text("\n".join(body) + "\n")
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        logf = self.log.open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=logf)
        logf.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistence file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def make_config_dir(folder: Path, prefix: str, **ingest: Any) -> Path:
    """A config folder like ./config with its own topic prefix (and ingest overrides)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("wards.yaml", "sensors.yaml"):
        shutil.copy(CONFIG_DIR / name, folder / name)
    system = yaml.safe_load((CONFIG_DIR / "ioc.yaml").read_text()) or {}
    system.setdefault("mqtt", {})["topic_prefix"] = prefix
    system.setdefault("ingest", {}).update(ingest)
    (folder / "ioc.yaml").write_text(yaml.safe_dump(system))
    return folder


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}/ioc"


class IngesterProcess:
    """``python -m ioc.cli ingest mqtt`` as a child process."""

    def __init__(
        self,
        db_url: str,
        mqtt_url: str,
        config_dir: Path,
        client_id: str,
        *,
        shared: str | None = None,
        log: Path,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.db_url, self.mqtt_url, self.config_dir = db_url, mqtt_url, config_dir
        self.client_id, self.shared, self.log_path = client_id, shared, log
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_connected: bool = True) -> IngesterProcess:
        env = dict(os.environ)
        env.update(
            IOC_DATABASE_URL=self.db_url,
            IOC_MQTT_URL=self.mqtt_url,
            IOC_CONFIG_DIR=str(self.config_dir),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        args = [sys.executable, "-m", "ioc.cli", "ingest", "mqtt", "--client-id", self.client_id]
        if self.shared:
            args += ["--shared", self.shared]
        args += self.extra_args
        logf = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, env=env, stdout=logf, stderr=logf, cwd=ROOT)
        logf.close()
        if wait_connected:
            self.wait_for("ingesting ", 30)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        start_len = 0
        while time.monotonic() < deadline:
            if text in self.log_text()[start_len:]:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ingester exited {self.proc.returncode}: {self.log_text()}")
            time.sleep(0.1)
        raise TimeoutError(f"ingester did not log {text!r}: {self.log_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def mqtt_host_port(url: str) -> tuple[str, int]:
    from ioc.settings import parse_mqtt_url

    t = parse_mqtt_url(url)
    return t.host, t.port


class Publisher:
    """A QoS-1 publisher with a persistent session: survives broker restarts (paho resends
    unacknowledged messages on reconnect) and waits until every message is acknowledged."""

    def __init__(self, url: str, client_id: str | None = None, max_inflight: int = 200) -> None:
        # the URL's credentials; MQTT 5 when the broker speaks it, else 3.1.1 (amqtt)
        cid = client_id or f"pub-{uuid.uuid4().hex[:8]}"
        self.client = mqtt_support.new_client(url, cid, persistent=True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 2)
        mqtt_support.connect(self.client, url, persistent=True)
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=qos))

    def wait_all(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for info in self.infos:
            # not is_published(): it raises for a message published while disconnected, which
            # paho still keeps and sends after reconnecting
            while not info._published:
                if time.monotonic() > deadline:
                    pending = sum(1 for i in self.infos if not i._published)
                    raise TimeoutError(f"{pending} messages not acknowledged by the broker")
                time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def reading_messages(
    prefix: str, ward: str, n_messages: int, *, devices: int = 10, metrics: int = 2, t0: int
) -> list[tuple[str, bytes]]:
    """n distinct {"ts","values"} messages spread over ``devices`` air-quality devices."""
    out = []
    names = METRICS[:metrics]
    for i in range(n_messages):
        dev = f"dev{i % devices:03d}"
        ts = t0 + (i // devices)
        values = {m: float((i * 7 + k) % 500) for k, m in enumerate(names)}
        out.append(
            (
                f"{prefix}/{ward}/air_quality/{dev}/telemetry",
                json.dumps({"ts": ts, "values": values}).encode(),
            )
        )
    return out


def wait_for_count(
    db_url: str, sql: str, expected: int, timeout: float, params: tuple[Any, ...] = ()
) -> int:
    """Poll ``sql`` (a count) until it reaches ``expected``; returns the last value."""
    deadline = time.monotonic() + timeout
    value = -1
    while time.monotonic() < deadline:
        value = query_one(db_url, sql, params)
        if value >= expected:
            return value
        time.sleep(0.25)
    return value


def query_one(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def query_all(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def terminate_backends(db_url: str, app_prefix: str = "ioc-ingest-mqtt") -> int:
    """pg_terminate_backend every connection of the ingester to this database."""
    dbname = db_url.rsplit("/", 1)[1]
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name LIKE %s AND pid <> pg_backend_pid()",
                (dbname, app_prefix + "%"),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def run_in_thread(fn: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class TcpProxy:
    """A TCP relay owned by the test, between a client (the ingester) and a real server
    (Mosquitto, PostgreSQL), to make faults the server itself cannot make:

    * ``swallow_upstream = True``: bytes from the client are read and dropped (e.g. the
      ingester's PUBACKs never reach the broker), the other way still flows;
    * ``stop()``: the port refuses connections and every relayed connection is cut (the
      server is unreachable); ``start()`` listens again on the same port.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.swallow_upstream = False
        self.swallowed = 0  # bytes dropped
        self.pubacks_forwarded = 0  # upstream reads that began with a PUBACK (client -> broker)
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def url(self, template: str) -> str:
        """``template`` with ``{port}`` replaced by the proxy's port."""
        return template.format(port=self.port)

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        run_in_thread(lambda: self._accept(listener))
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                server = socket.create_connection(self.target, 5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            run_in_thread(lambda c=client, s=server: self._pump(c, s, upstream=True))
            run_in_thread(lambda c=client, s=server: self._pump(s, c, upstream=False))

    def _pump(self, src: socket.socket, dst: socket.socket, *, upstream: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream and self.swallow_upstream:
                    self.swallowed += len(data)
                    continue
                dst.sendall(data)
                if upstream and data[0] == 0x40:
                    self.pubacks_forwarded += 1
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
