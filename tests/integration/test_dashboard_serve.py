"""``ioc serve --workers N``: several processes answer, a session works on each, and the
short-TTL query cache is one cache for all of them (real processes, real PostgreSQL)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from dash_fixtures import login_cookie, post_json, served, ward_body

from dashboards.db import SharedTTLCache


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, config: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """``ioc serve --workers 2 --threads 2`` on a small seeded database."""
    tmp = tmp_path_factory.mktemp("serve")
    seed_args = {"days": 7, "devices_per_ward": 3, "readings_hours": 2, "hourly_hours": 48}
    with served(pg_server_url, config, tmp, workers=2, threads=2, **seed_args) as srv:
        yield srv


def _workers(pid: int, n: int = 2, timeout: float = 30.0) -> list[psutil.Process]:
    """The master's worker processes once all ``n`` are forked (gunicorn forks them one after
    the other: /healthz can answer before the last one exists)."""
    master = psutil.Process(pid)
    deadline = time.monotonic() + timeout
    while len(children := master.children()) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return children


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def test_two_worker_processes_answer_and_share_the_session(server: Any, config: Any) -> None:
    base, proc, var = server.url, server.proc, server.facts["var"]
    codes = sorted(config.ward_codes)
    workers = _workers(proc.pid)
    assert len(workers) == 2, [w.cmdline() for w in workers]
    cookie = login_cookie(base, "admin")
    url = base + "/_dash-update-component"
    bodies = [ward_body(codes[i % len(codes)]) for i in range(8)]
    for serving in workers:
        # only this process can take connections while the other one is stopped
        others = [w for w in workers if w.pid != serving.pid]
        before = _cpu(serving)
        for w in others:
            w.suspend()
        try:
            with cf.ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda b: post_json(url, b, cookie), bodies))
            anonymous = post_json(url, bodies[0], None)[0]
        finally:
            for w in others:
                w.resume()
        # the session signed in once is good in each process (one key for all of them)
        assert [status for status, _ in answers] == [200] * len(bodies)
        assert all('"ward-kpis"' in text for _, text in answers)
        assert anonymous == 401
        assert _cpu(serving) - before > 0.02  # it did the work
    # the processes share one cache folder under var/
    assert (var / "dashboard-cache" / "generation").exists()
    assert list((var / "dashboard-cache").glob("*.pkl"))


def _callbacks_counted(base: str) -> float:
    """The 200-answered callbacks ``/metrics`` reports (open: no metrics token in the test)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base + "/metrics", timeout=20) as resp:
        text = resp.read().decode()
    return sum(
        sample.value
        for fam in text_string_to_metric_families(text)
        for sample in fam.samples
        if sample.name == "ioc_dashboard_requests_total"
        and sample.labels == {"kind": "callback", "code": "200"}
    )


def test_metrics_count_the_requests_of_every_worker_process(server: Any, config: Any) -> None:
    base, proc = server.url, server.proc
    a, b = _workers(proc.pid)
    cookie = login_cookie(base, "admin")
    url = base + "/_dash-update-component"

    def alone(serving: psutil.Process, other: psutil.Process, fn: Any) -> Any:
        other.suspend()
        try:
            return fn()
        finally:
            other.resume()

    before = alone(b, a, lambda: _callbacks_counted(base))  # scraped from b
    codes = sorted(config.ward_codes)
    answers = alone(a, b, lambda: [post_json(url, ward_body(c), cookie)[0] for c in codes[:5]])
    assert answers == [200] * 5
    after = alone(b, a, lambda: _callbacks_counted(base))  # b reports a's requests too
    assert after >= before + 5, (before, after)


def test_workers_option_is_checked(tmp_path: Path) -> None:
    env = dict(os.environ, IOC_VAR_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "serve", "--workers", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode != 0
    assert "--workers must be 1-32" in out.stderr + out.stdout


# --------------------------------------------------------------------------- the shared cache


def _get(directory: str, key: str, value: str, delay: float, log: str, ttl: float) -> str:
    """In a child process: the cache's value for ``key``; compute writes to ``log``."""

    def compute() -> str:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(delay)
        return value

    got: str = SharedTTLCache(directory, ttl=ttl).get_or_compute(("q", key), compute)
    return got


@pytest.fixture
def ctx() -> Any:
    return mp.get_context("spawn")


def test_shared_cache_serves_a_second_process(tmp_path: Path, ctx: Any) -> None:
    d, log = str(tmp_path / "cache"), str(tmp_path / "computed.log")
    with (
        cf.ProcessPoolExecutor(1, mp_context=ctx) as a,
        cf.ProcessPoolExecutor(1, mp_context=ctx) as b,
    ):
        assert a.submit(_get, d, "k", "from-a", 0.0, log, 30.0).result() == "from-a"
        # process B misses nothing: it gets A's value and never computes
        assert b.submit(_get, d, "k", "from-b", 0.0, log, 30.0).result() == "from-a"
        assert len(Path(log).read_text().split()) == 1
        # another key is computed by B
        assert b.submit(_get, d, "k2", "from-b", 0.0, log, 30.0).result() == "from-b"
        # clear() in this process is seen by both (a new generation): A computes again
        SharedTTLCache(d, ttl=30.0).clear()
        assert a.submit(_get, d, "k", "again", 0.0, log, 30.0).result() == "again"
        assert b.submit(_get, d, "k", "from-b", 0.0, log, 30.0).result() == "again"
    assert len(Path(log).read_text().split()) == 3


def test_concurrent_misses_in_several_processes_compute_once(tmp_path: Path, ctx: Any) -> None:
    d, log = str(tmp_path / "cache"), str(tmp_path / "computed.log")
    with cf.ProcessPoolExecutor(4, mp_context=ctx) as pool:
        pool.submit(_get, d, "warm", "x", 0.0, log, 30.0).result()  # start the processes
        futs = [pool.submit(_get, d, "slow", f"v{i}", 0.5, log, 30.0) for i in range(4)]
        values = [f.result() for f in futs]
    assert len(set(values)) == 1, values
    assert len(Path(log).read_text().split()) == 2  # 'warm' once, 'slow' once


def test_entries_expire_after_the_ttl(tmp_path: Path) -> None:
    cache = SharedTTLCache(tmp_path / "cache", ttl=0.3)
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_compute("k", compute) == 1
    assert cache.get_or_compute("k", compute) == 1
    other = SharedTTLCache(tmp_path / "cache", ttl=0.3)  # like another process
    assert other.get_or_compute("k", compute) == 1
    time.sleep(0.4)
    assert other.get_or_compute("k", compute) == 2
    assert cache.get_or_compute("k", compute) == 2
    off = SharedTTLCache(tmp_path / "cache", ttl=0)
    assert off.get_or_compute("k", compute) == 3  # TTL 0: no caching at all
    assert off.get_or_compute("k", compute) == 4


def test_cache_folder_open_to_others_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "cache"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(PermissionError):
        SharedTTLCache(d)
    d.chmod(0o700)
    SharedTTLCache(d)  # fine once closed


def test_a_value_pickle_cannot_take_is_served_uncached(tmp_path: Path) -> None:
    cache = SharedTTLCache(tmp_path / "cache", ttl=30.0)
    calls: list[int] = []

    def compute() -> Any:
        calls.append(1)
        return lambda: len(calls)  # no pickle for a lambda

    assert cache.get_or_compute("k", compute)() == 1
    assert cache.get_or_compute("k", compute)() == 2  # computed again, not an error
    assert not list((tmp_path / "cache").glob("*.pkl")) and not list(
        (tmp_path / "cache").glob(".*.tmp")
    )


def test_ward_polygons_as_arrays_serialize_to_the_same_json() -> None:
    """The maps' GeoJSON is held as numpy rings (fast to serialize); the JSON Dash sends is
    the same as from the plain lists."""
    import copy
    import json

    from dash._utils import to_json

    from dashboards.state import rewind_for_d3, rings_as_arrays

    root = Path(__file__).resolve().parents[2]
    plain = rewind_for_d3(json.loads((root / "config" / "wards.geojson").read_text("utf-8")))
    arrays = rings_as_arrays(copy.deepcopy(plain))
    assert to_json({"geojson": arrays}) == to_json({"geojson": plain})
    assert json.loads(to_json(arrays)) == plain
