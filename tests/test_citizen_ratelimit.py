"""Rate limits of the citizen-report API shared by every server (issue 11): an `ioc serve`
process and a second app in the test's own process, on one database, first without Redis (the
buckets in PostgreSQL), then with the real Redis (IOC_REDIS_URL): the per-token limit of
POST /api/v1/reports and the per-address limit of public tracking hold across both processes —
a per-process limit would let twice as much through."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from dash_fixtures import free_port, start_server, stop_server, wait_http

from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import store_events
from ioc.citizen.tokens import add_token
from ioc.config import Config, load_config
from ioc.db import connect
from ioc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
W = "20195"
Reply = tuple[int, dict[str, str], bytes]
BURST = 10  # events a token may push at once; refilled at 0.01/s (one per 100 s)
TRACK_PER_MINUTE = 30


def small_limits(tmp: Path) -> Path:
    """The shipped configuration with small intake limits."""
    folder = tmp / "config"
    shutil.copytree(ROOT / "config", folder)
    path = folder / "categories.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["intake"].update(rate_per_s=0.01, burst=BURST, track_per_minute=TRACK_PER_MINUTE)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture(scope="module", params=["postgresql", "redis"])
def two_servers(
    request: Any, pg_server_url: str, config: Config, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    from conftest import create_database, drop_database, init_schema

    backend = request.param
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    tmp = tmp_path_factory.mktemp(f"rl-{backend}")
    db = create_database(pg_server_url)
    init_schema(db, config)
    rules = Rules.from_config(config)
    c = connect(db)
    try:
        token = add_token(c, "crm")
        ev = {"id": "PA-RL-1", "event": "received", "ts": dt.datetime.now(dt.UTC).isoformat(),
              "category": "waste", "summary": "Rác tồn đọng", "contact": "0905 0111"}  # fmt: skip
        with c.cursor() as cur:
            store_events(cur, [event_from_mapping(ev, W, rules)], rules, door="api")
        c.commit()
    finally:
        c.close()
    # without Redis even when the environment names one (empty = unset)
    folder = small_limits(tmp)
    extra = {"IOC_CONFIG_DIR": str(folder), "IOC_REDIS_URL": redis_url or ""}
    port = free_port()
    proc = start_server(
        db, tmp / "var-a", port, tmp / "a.log", workers=1, threads=2, env_extra=extra
    )
    try:
        from dashboards.app import create_app

        settings = Settings(secret_key="s" * 40, var_dir=tmp / "var-b", redis_url=redis_url)
        other = create_app(load_config(folder), db, settings).server.test_client()
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/track", 120)
        hosts = (Served(url), InProcess(other))
        yield {"hosts": hosts, "db": db, "token": token, "backend": backend}
    finally:
        stop_server(proc)
        drop_database(pg_server_url, db)


class Served:
    """The `ioc serve` process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, path: str, body: Any = None, token: str | None = None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method="GET" if data is None else "POST"
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


class InProcess:
    """The second app, in this process (Flask's test client)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, path: str, body: Any = None, token: str | None = None) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is None:
            resp = self.client.get(path, headers=headers)
        else:
            resp = self.client.post(path, json=body, headers=headers)
        return resp.status_code, dict(resp.headers), resp.get_data()


def events(prefix: str, n: int) -> list[dict[str, Any]]:
    ts = dt.datetime.now(dt.UTC).isoformat()
    return [
        {"id": f"{prefix}-{i}", "event": "received", "ts": ts, "ward": W, "category": "waste",
         "summary": "Rác tồn đọng"}
        for i in range(n)
    ]  # fmt: skip


def test_intake_limit_per_token_holds_across_servers(two_servers: dict[str, Any]) -> None:
    a, b = two_servers["hosts"]
    token = two_servers["token"]
    api = "/api/v1/reports"
    assert a.call(api, events("X1", 4), token)[0] == 202
    assert b.call(api, events("X2", 4), token)[0] == 202
    # 8 of the bucket's 10 taken, on two servers: 4 more are refused on either
    for host in (a, b):
        code, headers, raw = host.call(api, events("X3", 4), token)
        assert code == 429, raw
        assert json.loads(raw) == {"error": "rate limit of token 'crm' exceeded"}
        assert int(headers["Retry-After"]) >= 150  # (4 - 2) events at 0.01/s
    # the 2 left pass, then nothing more (a per-process bucket would still hold 6 and 10)
    assert b.call(api, events("X4", 2), token)[0] == 202
    assert a.call(api, events("X5", 1), token)[0] == 429
    c = connect(two_servers["db"])
    try:
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM reports WHERE id LIKE 'X%%'")
            assert (cur.fetchone() or [0])[0] == 10
            cur.execute("SELECT count(*) FROM rate_limits")
            rows = (cur.fetchone() or [0])[0]
    finally:
        c.close()
    # the buckets live where the backend says: PostgreSQL rows only without Redis
    assert (rows > 0) == (two_servers["backend"] == "postgresql")


def test_tracking_limit_per_address_holds_across_servers(two_servers: dict[str, Any]) -> None:
    a, b = two_servers["hosts"]
    t0 = time.monotonic()
    got: list[tuple[Any, int]] = []
    for i in range(2 * TRACK_PER_MINUTE):
        host = (a, b)[i % 2]
        code, headers, raw = host.call("/api/v1/track/PA-RL-1" if i % 3 else "/track?id=PA-RL-1")
        got.append((host, code))
        assert code in (200, 429), raw
        assert b"0111" not in raw  # never the contact
        if code == 429:
            assert int(headers["Retry-After"]) >= 1
    refill = int((time.monotonic() - t0) * TRACK_PER_MINUTE / 60) + 1
    ok = [code for _, code in got].count(200)
    # 30 a minute in all (a per-process limit would let all 60 through)
    assert TRACK_PER_MINUTE <= ok <= TRACK_PER_MINUTE + refill, got
    assert {base for base, code in got if code == 429} == {a, b}
    code, _, raw = a.call("/api/v1/track/PA-RL-1")
    assert code == 429 and json.loads(raw) == {"error": "too many requests: try again later"}
