"""Nothing lost, nothing twice through POST /api/v1/incidents: N reports taken up as incidents
over real HTTP by an `ioc serve` process while (a) its database connections are ended with
pg_terminate_backend and (b) the server (master and workers) is killed with SIGKILL and started
again. Clients retry until answered, with the same body: the report's code is what makes a
retry safe (a report linked to an incident opens nothing: ``"outcome": "exists"``).

Then: every acknowledged incident exists exactly once (one incident, one link, one "opened"
event per report), and every request sent again opens nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from dash_fixtures import free_port, start_server, wait_http
from ingest_helpers import query_all, query_one, terminate_backends, wait_until

from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import store_events
from ioc.config import Config
from ioc.db import connect
from ioc.incidents.tokens import add_staff_token

N = 200
CLIENTS = 4
CATEGORIES = ("traffic", "waste", "lighting", "environment")  # (ward, category) never repeats


def _seed_reports(db: str, config: Config) -> list[tuple[str, str]]:
    """N received reports, each of its own ward and category (so none merges with another)."""
    rules = Rules.from_config(config)
    wards = sorted(config.ward_codes)
    assert len(wards) * len(CATEGORIES) >= N
    ts = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    out = [(f"PA-KILL-{i:04d}", wards[i % len(wards)]) for i in range(N)]
    events = [
        event_from_mapping(
            {"id": rid, "event": "received", "ts": ts, "channel": "app",
             "category": CATEGORIES[i // len(wards)], "summary": f"Phản ánh {i}"},
            ward, rules,
        )
        for i, (rid, ward) in enumerate(out)
    ]  # fmt: skip
    c = connect(db)
    try:
        with c.cursor() as cur:
            store_events(cur, events, rules, door="api")
        c.commit()
    finally:
        c.close()
    return out


class Clients:
    """CLIENTS threads taking up the reports, each request retried (same body) until the server
    answers 200/201; connection errors and 503 are retried, anything else is recorded."""

    def __init__(self, token: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/api/v1/incidents"
        self.token = token
        self.acks: dict[str, tuple[int, str]] = {}  # report -> (incident id, outcome)
        self.errors: list[str] = []
        self.retries = 0
        self.lock = threading.Lock()

    def post(self, rid: str, ward: str) -> tuple[int, dict[str, Any]]:
        body = json.dumps({"report": rid, "ward": ward, "actor": "ops"}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {"error": exc.read()[:300].decode(errors="replace")}

    def take_up(self, rid: str, ward: str) -> tuple[int, str]:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, f"{rid}: no answer within 60 s"
            try:
                status, body = self.post(rid, ward)
            except OSError:  # refused, reset, closed without an answer: the server is down
                status, body = 0, {}
            if status in (200, 201):
                assert (status == 201) == (body["outcome"] == "opened"), body
                return int(body["id"]), body["outcome"]
            if status not in (0, 503):
                with self.lock:
                    self.errors.append(f"{rid}: HTTP {status} {body}")
            with self.lock:
                self.retries += 1
            time.sleep(0.05)  # back off before the retry

    def run(self, work: list[tuple[str, str]]) -> list[threading.Thread]:
        todo: queue.Queue[tuple[str, str]] = queue.Queue()
        for item in work:
            todo.put(item)

        def loop() -> None:
            while True:
                try:
                    rid, ward = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    ack = self.take_up(rid, ward)
                except AssertionError as exc:
                    with self.lock:
                        self.errors.append(str(exc))
                    continue
                with self.lock:
                    self.acks[rid] = ack

        threads = [threading.Thread(target=loop, daemon=True) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        return threads


def _kill9(proc: Any) -> None:
    """SIGKILL the gunicorn master and its workers at once (nothing shuts down cleanly)."""
    victims = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in victims:
        os.kill(p.pid, signal.SIGKILL)
    proc.wait(10)

    def dead(p: psutil.Process) -> bool:  # a zombie holds no socket any more
        try:
            return p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(lambda: all(dead(p) for p in victims), 10, "the killed server's processes")


def test_incidents_api_nothing_lost_nothing_twice_through_faults(
    config: Config, fresh_db_url: str, tmp_path: Path
) -> None:
    db = fresh_db_url
    reports = _seed_reports(db, config)
    c = connect(db)
    token = add_staff_token(c, "ops-centre")
    c.close()
    port = free_port()
    log = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"

    def serve() -> Any:
        return start_server(db, tmp_path / "var", port, log, workers=2, threads=4)

    proc = serve()
    try:
        wait_http(base + "/healthz", 60)
        clients = Clients(token, port)
        threads = clients.run(reports)
        done = lambda: len(clients.acks)  # noqa: E731
        # (a) every connection of the server's pools ended mid-stream
        wait_until(lambda: done() >= N // 4, 60, "a quarter of the incidents")
        at_terminate = done()
        assert terminate_backends(db, "ioc-dashboard") >= 1, "no server connection found"
        # (b) the server killed mid-stream, then started again on the same port
        wait_until(lambda: done() >= N // 2, 60, "half of the incidents")
        _kill9(proc)
        at_kill = done()
        proc = serve()
        wait_http(base + "/healthz", 60)
        for t in threads:
            t.join(120)
        assert max(at_terminate, at_kill) < N, "the faults came after the stream: test too small"
        assert clients.errors == [], clients.errors[:5]
        assert len(clients.acks) == N
        ids = {rid: iid for rid, (iid, _) in clients.acks.items()}
        assert len(set(ids.values())) == N, "two reports acknowledged with one incident"

        def check_rows() -> None:
            # one incident per report, linked to it, opened once: the acknowledged one
            assert query_one(db, "SELECT count(*) FROM incidents") == N
            links = query_all(
                db,
                "SELECT ref, incident_id FROM incident_links"
                " WHERE kind = 'report' AND unlinked_at IS NULL",
            )
            assert len(links) == N and dict(links) == ids
            assert query_one(db, "SELECT count(*) FROM incident_links") == N
            opened = query_all(
                db, "SELECT incident_id, count(*) FROM incident_events"
                " WHERE action = 'opened' GROUP BY 1",
            )  # fmt: skip
            assert dict(opened) == {iid: 1 for iid in ids.values()}

        check_rows()
        # every request again (as a client that never saw its answers would): nothing new
        again = Clients(token, port)
        for t in again.run(reports):
            t.join(120)
        assert again.errors == [] and again.retries == 0, again.errors[:5]
        assert again.acks == {rid: (iid, "exists") for rid, iid in ids.items()}
        check_rows()
        exists = sum(o == "exists" for _, o in clients.acks.values())
        print(
            f"\n{N} incidents; at terminate {at_terminate}, at kill {at_kill};"
            f" retries {clients.retries}; answered 'exists' in the stream {exists}"
        )
    finally:  # no graceful stop needed (seconds of CI time): the test is over
        if proc.poll() is None:
            _kill9(proc)
