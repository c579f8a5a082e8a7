"""Database access for the dashboard: a thread-safe connection pool, and a short-TTL cache.

Callbacks borrow a connection for one request (``with pool.conn() as conn``); connections are
read-write only where a callback writes (acknowledging alerts) and every statement has a
timeout, so one slow query cannot hang a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg2
from psycopg2.pool import ThreadedConnectionPool

from ioc.db import Connection, connect
from ioc.settings import redact_db_url

T = TypeVar("T")

STATEMENT_TIMEOUT_MS = 15_000


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
                connect(self.url).close()  # one-line error if unreachable
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
        """A pooled connection; committed at the end, rolled back on error, dropped if broken."""
        pool = self._get_pool()
        conn = pool.getconn()
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

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None

    def __repr__(self) -> str:
        return f"Pool({redact_db_url(self.url)})"


class TTLCache:
    """Results of heavy queries for a few seconds, keyed by query name and parameters.

    The server is one process with several threads (waitress), so one cache serves all its
    workers; entries hold only query results (never per-user state) and expire after ``ttl``.
    Concurrent misses of the same key compute once (a per-key lock).
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
