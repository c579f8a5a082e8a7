"""Database access for the dashboard: a thread-safe connection pool, and a short-TTL cache.

Callbacks borrow a connection for one request (``with pool.conn() as conn``); connections are
read-write only where a callback writes (acknowledging alerts) and every statement has a
timeout, so one slow query cannot hang a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import select
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
from psycopg2.pool import PoolError, ThreadedConnectionPool

from ioc.db import Connection, connect
from ioc.errors import IOCError
from ioc.settings import redact_db_url

T = TypeVar("T")
log = logging.getLogger("ioc.dashboard")

STATEMENT_TIMEOUT_MS = 15_000

# SQLSTATEs of a connection that is gone, whatever the statement was: class 08 (connection
# exception) and 57P (the server shut down or restarted, the backend was terminated, the
# database dropped). Not 57014 (query_canceled: a statement timeout, the query's own failure).
_LOST_PREFIXES = ("08", "57P")


class DatabaseUnavailable(IOCError):
    """No connection to the database could be had (a one-line message, no SQLSTATE)."""


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the database connection is lost or cannot be had (the server
    is down, restarting or refusing, the backend was terminated): the request may be tried
    again later. False for the query's own failures — a statement timeout
    (``psycopg2.errors.QueryCanceled``, an OperationalError too), a syntax or permission
    error (ProgrammingError), a constraint (IntegrityError)."""
    if isinstance(exc, DatabaseUnavailable | psycopg2.InterfaceError):
        return True  # used after the connection closed, or no connection at all
    if not isinstance(exc, psycopg2.OperationalError):
        return False
    # no SQLSTATE: the socket closed or the connection was refused
    return not exc.pgcode or exc.pgcode.startswith(_LOST_PREFIXES)


def _ended(conn: Connection) -> bool:
    """True for a pooled connection the server has ended while it sat idle: closed, in an
    unknown state, or with something to read (an idle connection of this pool is sent
    nothing, except the FATAL message and end of stream of a terminated backend or a server
    shutting down). No round trip."""
    from psycopg2.extensions import TRANSACTION_STATUS_UNKNOWN

    if conn.closed or conn.info.transaction_status == TRANSACTION_STATUS_UNKNOWN:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([conn.fileno()], [], [], 0)[0])  # pragma: no cover
    except (OSError, ValueError, psycopg2.Error):
        return True


class Pool:
    """A bounded pool of PostgreSQL connections shared by the server's worker threads."""

    def __init__(self, url: str, *, maxconn: int = 8) -> None:
        self.url = url
        self.maxconn = maxconn
        self._pool: ThreadedConnectionPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                try:
                    connect(self.url).close()  # one-line error if unreachable
                except IOCError as exc:
                    raise DatabaseUnavailable(str(exc)) from None
                self._pool = ThreadedConnectionPool(
                    1,
                    self.maxconn,
                    self.url,
                    application_name="ioc-dashboard",
                    connect_timeout=5,
                    options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c TimeZone=UTC",
                )
            return self._pool

    @contextmanager
    def conn(self) -> Iterator[Connection]:
        """A pooled connection; committed at the end, rolled back on error, dropped if broken.

        Idle connections the server ended meanwhile (a restart, pg_terminate_backend) are
        dropped on the way out of the pool, so a request after the database came back gets a
        live one; a connection lost during the request raises (psycopg2.OperationalError or
        InterfaceError: :func:`connection_lost`) and is dropped too."""
        pool = self._get_pool()
        try:
            conn = pool.getconn()
            for _ in range(self.maxconn):
                if not _ended(conn):
                    break
                pool.putconn(conn, close=True)
                conn = pool.getconn()
        except PoolError:  # every connection in use: busy, not broken (503)
            raise DatabaseUnavailable(
                f"all {self.maxconn} database connections of this process are in use"
            ) from None
        broken = False
        try:
            yield conn
            conn.commit()
        except psycopg2.Error:
            broken = True
            raise
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        finally:
            if broken or conn.closed:
                pool.putconn(conn, close=True)
            else:
                pool.putconn(conn)

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in one transaction of a pooled connection, done again on another
        connection when the connection is lost meanwhile (the backend terminated, the database
        restarted: the pool may hold several such dead connections, each dropped once it
        fails). Only for idempotent work: a lost COMMIT may have taken effect."""
        for attempt in range(self.maxconn + 1):
            conn: Connection | None = None
            try:
                with self.conn() as conn:
                    return work(conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                # lost: no SQLSTATE (the socket closed), connection exception or shut down
                if conn is None or not connection_lost(exc) or attempt == self.maxconn:
                    raise  # no connection to be had, or the work's own failure (a timeout)
                log.warning("database connection lost; doing the work again on another one")
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None

    def __repr__(self) -> str:
        return f"Pool({redact_db_url(self.url)})"


class TTLCache:
    """Results of heavy queries for a few seconds, keyed by query name and parameters.

    One process's cache, shared by its threads (and by tests that build the app in-process);
    ``ioc serve`` with several processes uses :class:`SharedTTLCache` instead. Entries hold only
    query results (never per-user state) and expire after ``ttl``. Concurrent misses of the
    same key compute once (a per-key lock).
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 512) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[0] > now:
                self.hits += 1
                return item[1]  # type: ignore[no-any-return,unused-ignore]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                item = self._data.get(key)
                if item is not None and item[0] > time.monotonic():
                    self.hits += 1
                    return item[1]  # type: ignore[no-any-return,unused-ignore]
            value = compute()
            with self._lock:
                self.misses += 1
                self._data[key] = (time.monotonic() + self.ttl, value)
                self._data.move_to_end(key)
                while len(self._data) > self.max_entries:
                    old, _ = self._data.popitem(last=False)
                    self._key_locks.pop(old, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class SharedTTLCache:
    """:class:`TTLCache` shared by every process of ``ioc serve``: a file cache in a private
    folder (``var/dashboard-cache``).

    An entry is a pickle file named by a hash of (generation, key) that holds its expiry (wall
    clock) and value; it is written to a temporary file and renamed, so readers never see half
    of one. A process keeps what it read in memory until that same expiry, so every process
    shows the same entry. Misses of one key compute once across processes and threads: a
    thread lock, then an ``flock`` on one of ``LOCK_STRIPES`` lock files, then the file is
    read again. :meth:`clear` (after a user acts, e.g. acknowledges alerts) starts a new
    generation that every process sees at its next read (one ``stat`` of the generation file).

    The folder must be owned by this user and closed to others (pickles are code): the cache
    refuses to start otherwise. ``ttl <= 0`` turns caching off (every call computes).
    """

    LOCK_STRIPES = 64
    SWEEP_EVERY_S = 60.0

    def __init__(self, directory: Path | str, ttl: float = 5.0, max_entries: int = 512) -> None:
        self.dir = Path(directory)
        self.ttl = ttl
        self.max_entries = max_entries
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(self.dir)
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PermissionError(
                f"{self.dir}: the dashboard cache folder must belong to this user and not be "
                "writable by others"
            )
        self._gen_path = self.dir / "generation"
        if not self._gen_path.exists():
            self._write_atomic(self._gen_path, os.urandom(8).hex().encode())
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._local: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._gen_stamp: tuple[int, int] | None = None
        self._gen = ""
        self._next_sweep = time.monotonic() + self.SWEEP_EVERY_S
        self.hits = 0
        self.misses = 0

    # -- files ------------------------------------------------------------------------------
    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _generation(self) -> str:
        """The current generation (re-read only when the file changed); drops the memory
        layer of an older generation."""
        try:
            st = os.stat(self._gen_path)
            stamp = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._gen_stamp:
                try:
                    self._gen = self._gen_path.read_text(encoding="ascii").strip()
                except FileNotFoundError:
                    self._gen = ""
                self._gen_stamp = stamp
                self._local.clear()
            return self._gen

    def _name(self, gen: str, key: Hashable) -> str:
        return hashlib.sha256(f"{gen}\0{key!r}".encode()).hexdigest()[:40]

    def _read(self, name: str) -> tuple[float, Any] | None:
        try:
            with open(self.dir / f"{name}.pkl", "rb") as fh:
                item = pickle.load(fh)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return None
        if not (isinstance(item, tuple) and len(item) == 2 and item[0] > time.time()):
            return None
        return item

    def _remember(self, name: str, item: tuple[float, Any]) -> None:
        with self._lock:
            self._local[name] = item
            self._local.move_to_end(name)
            while len(self._local) > self.max_entries:
                self._local.popitem(last=False)

    # -- API ------------------------------------------------------------------------------
    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        if self.ttl <= 0:
            return compute()
        gen = self._generation()
        name = self._name(gen, key)
        with self._lock:
            item = self._local.get(name)
        if item is not None and item[0] > time.time():
            self.hits += 1
            return item[1]  # type: ignore[no-any-return,unused-ignore]
        item = self._read(name)
        if item is not None:
            self._remember(name, item)
            self.hits += 1
            return item[1]  # type: ignore[no-any-return,unused-ignore]
        with self._lock:
            key_lock = self._key_locks.setdefault(name, threading.Lock())
        stripe = int(name[:8], 16) % self.LOCK_STRIPES
        with key_lock, open(self.dir / f"lock-{stripe:02d}", "a+b") as lock_fh:
            fcntl.flock(lock_fh, fcntl.LOCK_EX)  # released when the file closes
            item = self._read(name)  # another process may have computed it meanwhile
            if item is not None:
                self._remember(name, item)
                self.hits += 1
                return item[1]  # type: ignore[no-any-return,unused-ignore]
            value = compute()
            item = (time.time() + self.ttl, value)
            try:
                self._write_atomic(self.dir / f"{name}.pkl", pickle.dumps(item, protocol=5))
            except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
                # a full disk or a value pickle cannot take: served uncached, never an error
                log.warning("dashboard cache: %r not stored (%s)", key, exc)
            else:
                self._remember(name, item)
            self.misses += 1
        with self._lock:
            self._key_locks.pop(name, None)
        self._maybe_sweep()
        return value

    def clear(self) -> None:
        """Forget every entry, in every process (a new generation)."""
        self._write_atomic(self._gen_path, os.urandom(8).hex().encode())
        self._generation()

    def _maybe_sweep(self) -> None:
        """Now and then, delete entry files that expired a while ago (any process's)."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + self.SWEEP_EVERY_S
        cutoff = time.time() - max(self.SWEEP_EVERY_S, 10 * self.ttl)
        for path in self.dir.glob("*.pkl"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


class RedisTTLCache:
    """The query cache shared by every dashboard host (``IOC_REDIS_URL``): the values live in
    Redis through flask-caching's ``RedisCache`` (pickled, expiring after ``ttl``, at least 1 s:
    Redis expiries are whole seconds here), so a query computed by one host serves all.

    Same semantics as :class:`SharedTTLCache`:

    - misses of one key compute once across hosts, processes and threads: a thread lock, then
      a Redis lock (redis-py's ``Lock``: ``SET NX`` with an expiry, so a holder that died frees
      it after ``LOCK_TIMEOUT_S``), then the cache is read again; a waiter that gives up after
      ``LOCK_WAIT_S`` computes for itself rather than fail;
    - :meth:`clear` starts a new generation (``INCR`` of one key that is part of every entry's
      name): every host sees it at its next read; old entries just expire;
    - Redis unreachable: the callback computes and answers, never an error (logged once a
      minute).

    Redis must be private to the deployment (password, network): its values are pickles.
    """

    LOCK_TIMEOUT_S = 60.0
    LOCK_WAIT_S = 30.0
    LOG_EVERY_S = 60.0

    def __init__(self, url: str, ttl: float = 5.0, *, prefix: str = "ioc:dash:") -> None:
        import redis
        from flask_caching.backends import RedisCache

        self.url = url
        self.ttl = ttl
        self.client = redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
        )
        self.prefix = prefix
        self._gen_key = f"{prefix}generation"
        self._store = RedisCache(host=self.client, key_prefix=f"{prefix}v:", default_timeout=5)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._store_errors = (*self._errors, pickle.PicklingError, TypeError, AttributeError)
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._last_log = 0.0
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def _timeout(self) -> int:
        return max(1, int(-(-self.ttl // 1)))  # whole seconds, rounded up

    def _generation(self) -> str:
        raw = self.client.get(self._gen_key)
        return raw.decode("ascii") if isinstance(raw, bytes) else str(raw or 0)

    def _name(self, gen: str, key: Hashable) -> str:
        return f"{gen}:" + hashlib.sha256(f"{key!r}".encode()).hexdigest()[:40]

    def _get(self, name: str) -> tuple[Any] | None:
        item = self._store.get(name)
        return item if isinstance(item, tuple) and len(item) == 1 else None

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            now = time.monotonic()
            if now - self._last_log < self.LOG_EVERY_S:
                return
            self._last_log = now
        log.warning(
            "dashboard cache: Redis %s unavailable, serving uncached (%s)",
            redact_db_url(self.url),
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        if self.ttl <= 0:
            return compute()
        try:
            name = self._name(self._generation(), key)
            item = self._get(name)
        except self._errors as exc:
            self._failed(exc)
            return compute()
        if item is not None:
            self.hits += 1
            return item[0]  # type: ignore[no-any-return,unused-ignore]
        with self._lock:
            key_lock = self._key_locks.setdefault(name, threading.Lock())
        try:
            with key_lock:
                return self._compute_once(name, key, compute)
        finally:
            with self._lock:
                self._key_locks.pop(name, None)

    def _compute_once(self, name: str, key: Hashable, compute: Callable[[], T]) -> T:
        import redis

        try:
            lock = self.client.lock(
                f"{self.prefix}lock:{name}",
                timeout=self.LOCK_TIMEOUT_S,
                blocking_timeout=self.LOCK_WAIT_S,
            )
            held = bool(lock.acquire())
            if held:
                item = self._get(name)  # another host may have computed it meanwhile
                if item is not None:
                    self.hits += 1
                    with contextlib.suppress(redis.exceptions.LockError, *self._errors):
                        lock.release()
                    return item[0]  # type: ignore[no-any-return,unused-ignore]
        except self._errors as exc:
            self._failed(exc)
            return compute()
        try:
            value = compute()
            self.misses += 1
            try:
                self._store.set(name, (value,), timeout=self._timeout())
            except self._store_errors as exc:
                log.warning("dashboard cache: %r not stored (%s)", key, exc)
            return value
        finally:
            if held:
                with contextlib.suppress(redis.exceptions.LockError, *self._errors):
                    lock.release()

    def clear(self) -> None:
        """Forget every entry, on every host (a new generation)."""
        try:
            self.client.incr(self._gen_key)
        except self._errors as exc:
            self._failed(exc)

    def close(self) -> None:
        self.client.close()
