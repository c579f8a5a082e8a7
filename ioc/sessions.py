"""Server-side sessions: in PostgreSQL (``sessions``), or in Redis when ``IOC_REDIS_URL`` is set.

A session is a random id (the browser holds it in a signed cookie; only its SHA-256 is
stored). It ends when the user signs out, when an admin or ``ioc users passwd/disable/remove``
ends the user's sessions, after ``IOC_SESSION_IDLE_S`` without a request (default 1 h) and at the
latest ``IOC_SESSION_MAX_AGE_S`` after sign-in (default 12 h). Every dashboard host of one
deployment shares the store (the database, or the Redis), so a session ended on one host is
ended on all of them at the next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from ioc.db import Connection
from ioc.errors import IOCError
from ioc.settings import Settings

IDLE_TIMEOUT_S = 3600.0
MAX_AGE_S = 12 * 3600.0
TOUCH_EVERY_S = 30.0  # last_seen is written at most this often per session
REDIS_PREFIX = "ioc:session:"
REDIS_USER_PREFIX = "ioc:user-sessions:"


@dataclass(frozen=True)
class Timeouts:
    idle_s: float = IDLE_TIMEOUT_S
    max_age_s: float = MAX_AGE_S

    @classmethod
    def of(cls, settings: Settings) -> Timeouts:
        """IOC_SESSION_IDLE_S and IOC_SESSION_MAX_AGE_S (checked by Settings)."""
        return cls(idle_s=settings.session_idle_s, max_age_s=settings.session_max_age_s)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Create, look up and end sessions; the database flavour (see :class:`RedisSessions`)."""

    def __init__(
        self,
        conn: Callable[[], AbstractContextManager[Connection]],
        timeouts: Timeouts | None = None,
    ) -> None:
        self._conn = conn
        self.timeouts = timeouts or Timeouts()

    def create(self, user_name: str, *, addr: str | None = None, user_agent: str = "") -> str:
        token = secrets.token_urlsafe(32)
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO sessions (id_hash, user_name, expires_at, addr, user_agent)"
                " VALUES (%s, %s, now() + %s * interval '1 second', %s, %s)",
                (token_hash(token), user_name, self.timeouts.max_age_s, addr, user_agent[:200]),
            )
            # sessions past their end are of no use: drop a few on the way
            cur.execute(
                "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions"
                " WHERE expires_at < now() OR last_seen < now() - %s * interval '1 second'"
                " LIMIT 100)",
                (self.timeouts.idle_s,),
            )
            conn.commit()
        return token

    def lookup(self, token: str) -> str | None:
        """The user of a live session (and it counts as activity), or None."""
        h = token_hash(token)
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT user_name, extract(epoch FROM now() - last_seen) FROM sessions"
                " WHERE id_hash = %s AND expires_at > now()"
                " AND last_seen > now() - %s * interval '1 second'",
                (h, self.timeouts.idle_s),
            )
            row = cur.fetchone()
            if row is not None and float(row[1]) > TOUCH_EVERY_S:
                cur.execute("UPDATE sessions SET last_seen = now() WHERE id_hash = %s", (h,))
            conn.commit()
        return None if row is None else str(row[0])

    def end(self, token: str) -> None:
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM sessions WHERE id_hash = %s", (token_hash(token),))
            conn.commit()

    def end_user(self, user_name: str) -> int:
        with self._conn() as conn:
            n = end_user_sessions(conn, user_name)
            conn.commit()
        return n


class RedisSessions(SessionStore):
    """Sessions in Redis: one hash per session (expiring after the idle timeout, never past
    the absolute end) and one set per user of their session ids. An unreachable Redis is an
    IOCError (the request is refused: 503), never a signed-in guess."""

    def __init__(self, client: Any, timeouts: Timeouts | None = None) -> None:
        self.r = client
        self.timeouts = timeouts or Timeouts()

    def create(self, user_name: str, *, addr: str | None = None, user_agent: str = "") -> str:
        return _redis_call(self._create, user_name, addr=addr, user_agent=user_agent)

    def lookup(self, token: str) -> str | None:
        return _redis_call(self._lookup, token)

    def end(self, token: str) -> None:
        _redis_call(self.r.delete, REDIS_PREFIX + token_hash(token))

    def end_user(self, user_name: str) -> int:
        return _redis_call(_redis_end_user, self.r, user_name)

    def _create(self, user_name: str, *, addr: str | None = None, user_agent: str = "") -> str:
        token = secrets.token_urlsafe(32)
        h = token_hash(token)
        now = dt.datetime.now(dt.UTC).timestamp()
        ttl = int(min(self.timeouts.idle_s, self.timeouts.max_age_s))
        pipe = self.r.pipeline()
        pipe.hset(
            REDIS_PREFIX + h,
            mapping={
                "user": user_name,
                "created": now,
                "expires": now + self.timeouts.max_age_s,
                "touched": now,
                "addr": addr or "",
            },
        )
        pipe.expire(REDIS_PREFIX + h, ttl)
        pipe.sadd(REDIS_USER_PREFIX + user_name, h)
        pipe.expire(REDIS_USER_PREFIX + user_name, int(self.timeouts.max_age_s) + 60)
        pipe.execute()
        return token

    def _lookup(self, token: str) -> str | None:
        key = REDIS_PREFIX + token_hash(token)
        data = self.r.hgetall(key)
        if not data:
            return None
        now = dt.datetime.now(dt.UTC).timestamp()
        user = _text(data.get(b"user"))
        expires = float(_text(data.get(b"expires")) or 0)
        touched = float(_text(data.get(b"touched")) or 0)
        if not user or now >= expires or now - touched > self.timeouts.idle_s:
            self.r.delete(key)
            return None
        if now - touched > TOUCH_EVERY_S:
            pipe = self.r.pipeline()
            pipe.hset(key, "touched", now)
            pipe.expire(key, max(1, int(min(self.timeouts.idle_s, expires - now))))
            pipe.execute()
        return user


T = TypeVar("T")


def _redis_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    import redis

    try:
        return fn(*args, **kwargs)
    except redis.RedisError as exc:
        raise IOCError(f"the session store (Redis) is unreachable: {exc}") from None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _redis_end_user(client: Any, user_name: str) -> int:
    members = client.smembers(REDIS_USER_PREFIX + user_name) or set()
    keys = [REDIS_PREFIX + _text(m) for m in members]
    n = int(client.delete(*keys)) if keys else 0
    client.delete(REDIS_USER_PREFIX + user_name)
    return n


def redis_client(url: str) -> Any:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    except ValueError as exc:
        raise IOCError(f"IOC_REDIS_URL is not a valid Redis URL: {exc}") from None
    return client


def end_user_sessions(conn: Connection, user_name: str, *, redis_url: str | None = None) -> int:
    """End every session of ``user_name``: database rows (in the caller's transaction) and,
    with ``redis_url`` (IOC_REDIS_URL), the Redis ones too. How many were ended."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sessions WHERE user_name = %s", (user_name,))
        n = cur.rowcount
    url = redis_url
    if url:
        import redis

        try:
            n += _redis_end_user(redis_client(url), user_name)
        except redis.RedisError as exc:
            raise IOCError(f"cannot end the sessions in Redis ({exc})") from None
    return n


def make_store(
    conn: Callable[[], AbstractContextManager[Connection]], settings: Settings
) -> SessionStore:
    """Redis sessions when IOC_REDIS_URL is set, else database sessions."""
    timeouts = Timeouts.of(settings)
    url = settings.secret("redis_url")
    if url:
        return RedisSessions(redis_client(url), timeouts)
    return SessionStore(conn, timeouts)
