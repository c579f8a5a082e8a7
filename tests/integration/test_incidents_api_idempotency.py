"""``Idempotency-Key`` on ``POST /api/v1/incidents/{id}/actions`` against a real ``ioc serve``:
a repeat of a key acts once and answers the first answer; another body under the key is 422, a
bad key 400; requests of one key at once act once; a request that got a 503 (its connection
ended mid-request, or the database refusing) is sent again under its key until it succeeds, and
the comment is there once."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from dash_fixtures import free_port, http_request, start_server, stop_server, wait_http
from ingest_helpers import query_one

from ioc.config import Config
from ioc.db import connect
from ioc.incidents import core
from ioc.incidents.idempotency import prune
from ioc.incidents.tokens import add_staff_token


@dataclass
class Api:
    base: str
    db: str
    staff: str
    other: str  # a second client's token
    log: Path

    def new_incident(self, config: Config) -> int:
        c = connect(self.db)
        try:
            ward = sorted(config.ward_codes)[0]
            iid = core.create(c, config, ward_code=ward, category="flooding", title="Ngập",
                              actor="op", source="web")  # fmt: skip
            c.commit()
            return iid
        finally:
            c.close()

    def post(
        self, iid: int, body: Any, key: str | None = None, token: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        headers = {"Authorization": f"Bearer {token or self.staff}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        url = f"{self.base}/api/v1/incidents/{iid}/actions"
        return http_request(url, "POST", body, headers, timeout=30)

    def count(self, iid: int, action: str) -> int:
        return int(
            query_one(
                self.db,
                "SELECT count(*) FROM incident_events WHERE incident_id = %s AND action = %s",
                (iid, action),
            )
        )


@pytest.fixture
def api(fresh_db_url: str, tmp_path: Path) -> Iterator[Api]:
    c = connect(fresh_db_url)
    try:
        staff, other = add_staff_token(c, "field-app"), add_staff_token(c, "other-app")
    finally:
        c.close()
    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_server(fresh_db_url, tmp_path / "var", port, log, workers=1, threads=8)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        yield Api(f"http://127.0.0.1:{port}", fresh_db_url, staff, other, log)
    finally:
        stop_server(proc)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


def _waiting_on_locks(db: str) -> int:
    return int(
        query_one(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = 'ioc-dashboard' AND wait_event_type = 'Lock'",
            (db.rsplit("/", 1)[1],),
        )
    )


def _until(cond: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _row_lock(db: str, iid: int) -> Any:
    """A connection holding the incident's row lock (as another operator's action would)."""
    holder = psycopg2.connect(db, application_name="test-holder")
    with holder.cursor() as cur:
        cur.execute("SELECT id FROM incidents WHERE id = %s FOR UPDATE", (iid,))
    return holder


def test_a_repeated_key_acts_once(api: Api, config: Config) -> None:
    iid = api.new_incident(config)
    comment = {"action": "comment", "actor": "tổ 1", "text": "đã kiểm tra"}
    # comment twice under one key: one comment, the same answer, the second marked replayed
    s1, h1, t1 = api.post(iid, comment, "c-1")
    s2, h2, t2 = api.post(iid, dict(reversed(comment.items())), "c-1")  # key order: same body
    assert (s1, s2) == (200, 200) and t1 == t2 == json.dumps({"id": iid, "status": "new"})
    assert "Idempotent-Replayed" not in h1 and h2["Idempotent-Replayed"] == "true"
    assert api.count(iid, "comment") == 1
    # the same key for another body or another incident: 422 naming the key, nothing done
    s, _, t = api.post(iid, {**comment, "text": "khác"}, "c-1")
    assert s == 422 and json.loads(t) == {
        "error": "Idempotency-Key: 'c-1' was used for another request"
    }
    assert t.count("\n") == 0
    assert api.post(api.new_incident(config), comment, "c-1")[0] == 422
    # keys are per client: another token's c-1 is its own
    s, h, _ = api.post(iid, comment, "c-1", token=api.other)
    assert s == 200 and "Idempotent-Replayed" not in h and api.count(iid, "comment") == 2
    # without a key as before: each comment is one more
    assert api.post(iid, comment)[0] == 200 and api.count(iid, "comment") == 3
    # acknowledge twice under one key: one event
    ack = {"action": "acknowledge", "actor": "tổ 1"}
    assert api.post(iid, ack, "a-1")[0] == 200
    s, h, _ = api.post(iid, ack, "a-1")
    assert s == 200 and h["Idempotent-Replayed"] == "true" and api.count(iid, "acknowledged") == 1
    # a refusal is the key's answer too, and stays it (here: start before assign, 409)
    start = {"action": "start", "actor": "tổ 1"}
    s1, _, t1 = api.post(iid, start, "s-1")
    assert s1 == 409 and json.loads(t1)["code"] == "bad_state"
    ward = sorted(config.ward_codes)[0]
    assert api.post(iid, {"action": "assign", "actor": "tổ 1", "assignee": ward})[0] == 200
    s2, h2, t2 = api.post(iid, start, "s-1")
    assert (s2, t2, h2["Idempotent-Replayed"]) == (409, t1, "true")
    assert api.post(iid, start, "s-2")[0] == 200
    # bad keys: 400 naming the header, nothing done
    for bad in ("", "x" * 201, "tô-1", "a\tb"):
        s, _, t = api.post(iid, comment, bad)
        assert s == 400 and json.loads(t)["error"].startswith("Idempotency-Key:"), bad
    assert api.post(iid, comment, "k" * 200)[0] == 200
    assert api.count(iid, "comment") == 4
    # kept 7 days: the scheduler's retention job prunes older keys
    c = connect(api.db)
    try:
        assert prune(c, now=dt.datetime.now(dt.UTC)) == 0
        assert prune(c, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=8)) == 6
        c.commit()
    finally:
        c.close()


def test_requests_of_one_key_at_once_act_once(api: Api, config: Config) -> None:
    iid = api.new_incident(config)
    body = {"action": "comment", "actor": "tổ 2", "text": "cùng lúc"}
    n = 5
    holder = _row_lock(api.db, iid)  # the first to claim the key waits here; the rest on it
    try:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(api.post, iid, body, "same") for _ in range(n)]
            _until(lambda: _waiting_on_locks(api.db) == n, "all requests waiting")
            holder.rollback()
            answers = [f.result() for f in futures]
    finally:
        holder.close()
    assert {(s, t) for s, _, t in answers} == {(200, json.dumps({"id": iid, "status": "new"}))}
    assert sorted(h.get("Idempotent-Replayed", "-") for _, h, _ in answers) == ["-"] + ["true"] * (
        n - 1
    )
    assert api.count(iid, "comment") == 1


def test_after_a_503_the_same_key_comments_once(
    api: Api, config: Config, pg_server_url: str
) -> None:
    iid = api.new_incident(config)
    body = {"action": "comment", "actor": "tổ 3", "text": "gửi lại"}
    dbname = api.db.rsplit("/", 1)[1]
    answers: list[tuple[int, dict[str, str], str]] = []
    # (a) the connection ended mid-request: the key claimed, the comment not yet written
    holder = _row_lock(api.db, iid)
    try:
        thread = threading.Thread(target=lambda: answers.append(api.post(iid, body, "r-1")))
        thread.start()
        _until(lambda: _waiting_on_locks(api.db) == 1, "the request waiting")
        admin = psycopg2.connect(pg_server_url)
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND application_name = 'ioc-dashboard'"
                    " AND wait_event_type = 'Lock'",
                    (dbname,),
                )
                assert cur.fetchone() == (1,)
                thread.join(30)
                # (b) the database refusing connections: 503 again, nothing done
                cur.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
                try:
                    cur.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = %s AND application_name = 'ioc-dashboard'",
                        (dbname,),
                    )
                    answers.append(api.post(iid, body, "r-1"))
                finally:
                    cur.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        finally:
            admin.close()
    finally:
        holder.close()
    assert [s for s, _, _ in answers] == [503, 503]
    assert all(int(h["Retry-After"]) > 0 for _, h, _ in answers)
    # the client sends it again under its key until it succeeds, and once more (its answer lost)
    for _ in range(20):
        status, headers, text = api.post(iid, body, "r-1")
        if status != 503:
            break
        time.sleep(0.2)
    assert status == 200 and "Idempotent-Replayed" not in headers
    s, h, t = api.post(iid, body, "r-1")
    assert (s, t, h["Idempotent-Replayed"]) == (200, text, "true")
    assert api.count(iid, "comment") == 1
