"""Rate limits shared by every server process and host (``ioc serve --workers N``, several hosts).

The intake API (``POST /api/v1/reports``, per token) and public tracking (``/track`` and
``GET /api/v1/track/{id}``, per client address) allow ``rate`` units a second with bursts of up
to ``burst``: a token bucket, kept as GCRA does (the generic cell rate algorithm): one number per
key, its *theoretical arrival time* ``tat``. A request of ``n`` units at ``now`` is allowed when
``max(tat, now) + n / rate - now <= burst / rate``, and then moves ``tat`` there; otherwise it
waits ``max(tat, now) + n / rate - burst / rate - now`` seconds (the Retry-After). A ``tat`` in
the past is a full bucket, the same as no entry at all. No window boundary lets through twice
the burst, and there is no window to reset.

Where the ``tat`` lives:

- Redis when ``IOC_REDIS_URL`` is set: one key per limit, read and moved by one Lua script
  (atomic; the clock is Redis's ``TIME``, one clock for every host), expiring when the bucket
  is full again;
- else PostgreSQL: ``rate_limits(key, tat)``, one ``INSERT ... ON CONFLICT DO UPDATE ...
  WHERE allowed RETURNING`` per request (the row lock serialises concurrent requests of one key;
  the clock is the database's), rows in the past pruned once a minute per process.

Redis unreachable: the limit falls back to PostgreSQL (logged once a minute), never an error.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ioc.db import Connection

log = logging.getLogger("ioc.citizen.ratelimit")

TOO_BIG_RETRY_S = 60.0  # a request larger than the burst can never pass: retry (smaller) later
PRUNE_EVERY_S = 60.0
LOG_EVERY_S = 60.0

# KEYS[1] = the bucket; ARGV = cost (s), tolerance (s). Returns "0" when allowed, else the
# seconds to wait, as a string (a Lua number would be truncated to an integer reply).
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + cost
if new - now > tol then
  return string.format('%.6f', new - tol - now)
end
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 1000)
return '0'
"""

_UPSERT = """
INSERT INTO rate_limits AS r (key, tat)
SELECT %(key)s, now() + make_interval(secs => %(cost)s) WHERE %(cost)s <= %(tol)s
ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => %(cost)s)
WHERE greatest(r.tat, now()) + make_interval(secs => %(cost)s)
      <= now() + make_interval(secs => %(tol)s)
RETURNING 1
"""
_WAIT = """
SELECT extract(epoch FROM greatest(tat, now()) + make_interval(secs => %(cost)s)
                         - make_interval(secs => %(tol)s) - now())
FROM rate_limits WHERE key = %(key)s
"""


class RateLimiter:
    """Token buckets shared through Redis (``redis_url``) or PostgreSQL (the caller's
    connection). ``namespace`` separates deployments (or test databases) sharing one Redis."""

    def __init__(self, redis_url: str | None = None, *, namespace: str = "") -> None:
        self.redis_url = redis_url
        digest = hashlib.sha256(namespace.encode()).hexdigest()[:12]
        self.prefix = f"ioc:rl:{digest}:"
        self._script: Any = None
        self._errors: tuple[type[Exception], ...] = ()
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self._last_log = 0.0
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
            self._script = client.register_script(_LUA)
            self._errors = (redis.RedisError, OSError)

    @property
    def backend(self) -> str:
        return "redis" if self._script is not None else "postgresql"

    def take(self, conn: Connection, key: str, n: float, *, rate: float, burst: float) -> float:
        """Take ``n`` units from ``key``'s bucket: 0.0 when allowed, else the seconds to wait.

        ``conn`` is used (and committed) only without Redis, or when Redis fails."""
        cost, tol = n / rate, burst / rate
        if n > burst:
            return TOO_BIG_RETRY_S
        if self._script is not None:
            try:
                wait = float(self._script(keys=[self.prefix + key], args=[repr(cost), repr(tol)]))
                return max(wait, 0.0)
            except self._errors as exc:
                self._failed(exc)
        return self._take_pg(conn, key, cost, tol)

    def _take_pg(self, conn: Connection, key: str, cost: float, tol: float) -> float:
        params = {"key": key, "cost": cost, "tol": tol}
        with conn.cursor() as cur:
            cur.execute(_UPSERT, params)
            allowed = cur.fetchone() is not None
            wait = 0.0
            if not allowed:
                cur.execute(_WAIT, params)
                row = cur.fetchone()
                wait = max(float(row[0]), 0.001) if row and row[0] is not None else 1.0
            now = time.monotonic()
            with self._lock:
                prune = now - self._last_prune >= PRUNE_EVERY_S
                if prune:
                    self._last_prune = now
            if prune:  # a tat in the past is a full bucket: the row says nothing
                cur.execute("DELETE FROM rate_limits WHERE tat < now()")
        conn.commit()
        return wait

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_log < LOG_EVERY_S:
                return
            self._last_log = now
        log.warning("rate limits: Redis unavailable, counting in PostgreSQL (%s)", exc)


def retry_after(wait: float) -> str:
    """The Retry-After header (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(wait)))
