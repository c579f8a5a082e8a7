"""The dashboard's query cache in Redis (IOC_REDIS_URL), as several hosts share it: one
computation per key across hosts, a clear seen by every host, expiry, and Redis away."""

from __future__ import annotations

import threading
import time
import uuid

from dashboards.db import RedisTTLCache


def _pair(url: str, ttl: float = 30.0) -> tuple[RedisTTLCache, RedisTTLCache]:
    prefix = f"ioc:test:{uuid.uuid4().hex[:8]}:"
    # two clients of their own: what two hosts have
    return RedisTTLCache(url, ttl=ttl, prefix=prefix), RedisTTLCache(url, ttl=ttl, prefix=prefix)


def test_a_value_computed_on_one_host_serves_the_other(redis_url: str) -> None:
    a, b = _pair(redis_url)
    calls: list[str] = []
    assert a.get_or_compute(("q", 1), lambda: calls.append("a") or {"v": 1}) == {"v": 1}
    assert b.get_or_compute(("q", 1), lambda: calls.append("b") or {"v": 2}) == {"v": 1}
    assert calls == ["a"] and (a.misses, b.hits) == (1, 1)
    # a result of None is cached too (not taken for a miss)
    assert a.get_or_compute(("none",), lambda: calls.append("n")) is None
    assert b.get_or_compute(("none",), lambda: calls.append("m")) is None
    assert calls == ["a", "n"]


def test_a_clear_on_one_host_is_seen_by_the_other(redis_url: str) -> None:
    a, b = _pair(redis_url)
    assert a.get_or_compute("k", lambda: 1) == 1
    assert b.get_or_compute("k", lambda: 2) == 1
    b.clear()
    assert a.get_or_compute("k", lambda: 3) == 3  # at its very next read
    assert b.get_or_compute("k", lambda: 4) == 3


def test_concurrent_misses_compute_once_across_hosts(redis_url: str) -> None:
    a, b = _pair(redis_url)
    calls: list[int] = []
    lock = threading.Lock()
    results: list[int] = []

    def slow() -> int:
        with lock:
            calls.append(1)
        time.sleep(0.5)
        return 42

    def ask(cache: RedisTTLCache) -> None:
        v = cache.get_or_compute(("slow",), slow)
        with lock:
            results.append(v)

    threads = [threading.Thread(target=ask, args=(c,)) for c in (a, b) * 4]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert results == [42] * 8
    assert len(calls) == 1  # one computation for 8 callers on two "hosts"


def test_entries_expire_after_the_ttl(redis_url: str) -> None:
    a, b = _pair(redis_url, ttl=1.0)
    assert a.get_or_compute("e", lambda: "old") == "old"
    assert b.get_or_compute("e", lambda: "new") == "old"
    deadline = time.monotonic() + 10
    while b.get_or_compute("e", lambda: "new") == "old":
        assert time.monotonic() < deadline, "the entry never expired"
        time.sleep(0.2)
    assert a.get_or_compute("e", lambda: "newer") == "new"


def test_redis_away_serves_uncached_never_an_error() -> None:
    cache = RedisTTLCache("redis://127.0.0.1:1/0", ttl=30.0)  # nothing listens there
    calls: list[int] = []
    assert cache.get_or_compute("k", lambda: calls.append(1) or 7) == 7
    assert cache.get_or_compute("k", lambda: calls.append(1) or 7) == 7
    assert len(calls) == 2 and cache.errors == 2
    cache.clear()  # logged, not raised


def test_ttl_zero_turns_caching_off(redis_url: str) -> None:
    a, _ = _pair(redis_url, ttl=0)
    calls: list[int] = []
    for _ in range(3):
        a.get_or_compute("z", lambda: calls.append(1))
    assert len(calls) == 3
