"""The database lost or refusing, between requests of a real `ioc serve`: never a 500.

Requests of each kind — an incident action (not idempotent), the report intake (idempotent),
public tracking (API and page), the incidents list, a signed-in page and a Dash callback — are
sent (a) after the server's connections were ended with pg_terminate_backend (a pooled
connection found ended is replaced: answered, or 503), and (b) while the database refuses
connections (ALTER DATABASE ... ALLOW_CONNECTIONS false) and the server's connections are
ended: 503 with Retry-After, JSON for the API and callbacks, a short page for a browser. Once
the database is back the same requests succeed, and nothing was stored twice or done by a 503.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from dash_fixtures import (
    PASSWORD,
    free_port,
    http_request,
    login_cookie,
    start_server,
    stop_server,
    wait_http,
    ward_body,
)
from ingest_helpers import query_one, terminate_backends

from dashboards.db import DatabaseUnavailable, Pool, connection_lost
from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import store_events
from ioc.citizen.tokens import add_token
from ioc.config import Config
from ioc.db import connect
from ioc.incidents import core
from ioc.incidents.tokens import add_staff_token
from ioc.users import add_user

REPORT = "PA-DBLOSS-0001"
SENT = "PA-DBLOSS-0002"  # sent through the intake API


def _seed(db: str, config: Config) -> tuple[str, str, int, str]:
    rules = Rules.from_config(config)
    ward = sorted(config.ward_codes)[0]
    ts = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    event = {"id": REPORT, "event": "received", "ts": ts, "channel": "app",
             "category": "traffic", "summary": "Đèn tín hiệu hỏng"}  # fmt: skip
    c = connect(db)
    try:
        with c.cursor() as cur:
            store_events(cur, [event_from_mapping(event, ward, rules)], rules, door="api")
        iid, _ = core.open_from_report(c, config, REPORT, actor="test", source="api")
        c.commit()
        add_user(c, "operator", PASSWORD, "operator", [], replace=True)
        c.commit()
        staff = add_staff_token(c, "field-app")
        intake = add_token(c, "crm", "intake")
    finally:
        c.close()
    return staff, intake, iid, ward


def _allow_connections(server_url: str, dbname: str, allow: bool) -> None:
    c = psycopg2.connect(server_url)
    c.autocommit = True
    try:
        with c.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allow).lower()}')
            if not allow:  # the server's pooled connections ended too
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND application_name = 'ioc-dashboard'",
                    (dbname,),
                )
    finally:
        c.close()


def test_lost_database_answers_503_then_the_same_requests_succeed(
    config: Config, fresh_db_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    db = fresh_db_url
    dbname = db.rsplit("/", 1)[1]
    staff, intake, iid, ward = _seed(db, config)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = start_server(db, tmp_path / "var", port, log, workers=1, threads=2)
    refused = False
    try:
        wait_http(base + "/healthz", 60)
        cookie = login_cookie(base, "operator")
        ts = dt.datetime.now(dt.UTC).isoformat()
        sent = {"id": SENT, "event": "received", "ts": ts, "channel": "web",
                "category": "waste", "summary": "Rác chưa thu gom", "ward": ward}  # fmt: skip
        html = {"Accept": "text/html"}
        signed_in = {"Cookie": f"ioc_session={cookie}", "Origin": base}
        # name -> (method, path, body, headers, success status, JSON error expected)
        calls: dict[str, tuple[str, str, Any, dict[str, str], int, bool]] = {
            "action": ("POST", f"/api/v1/incidents/{iid}/actions",
                       {"action": "comment", "text": "đã kiểm tra", "actor": "tổ 1"},
                       {"Authorization": f"Bearer {staff}"}, 200, True),
            "intake": ("POST", "/api/v1/reports", sent,
                       {"Authorization": f"Bearer {intake}"}, 202, True),
            "list": ("GET", "/api/v1/incidents", None,
                     {"Authorization": f"Bearer {staff}"}, 200, True),
            "track_api": ("GET", f"/api/v1/track/{REPORT}", None, {}, 200, True),
            "track_page": ("GET", f"/track?id={REPORT}", None, html, 200, False),
            "page": ("GET", "/alerts", None, {**html, **signed_in}, 200, False),
            "callback": ("POST", "/_dash-update-component", ward_body(ward),
                         signed_in, 200, True),
        }  # fmt: skip
        done = {"action": 0}

        def send(name: str) -> tuple[int, dict[str, str], str]:
            method, path, body, headers, ok, _ = calls[name]
            status, hdrs, text = http_request(base + path, method, body, headers)
            assert status != 500, f"{name}: HTTP 500 {text[:300]}"
            if status == ok and name == "action":
                done["action"] += 1
            return status, hdrs, text

        # (a) the server's pooled connections ended between requests: answered, or 503
        for name, (_, _, _, _, ok, _) in calls.items():
            assert terminate_backends(db, "ioc-dashboard") >= 0
            status, hdrs, text = send(name)
            assert status in (ok, 503), f"{name}: HTTP {status} {text[:300]}"
            if status == 503:
                assert int(hdrs["Retry-After"]) > 0
        # (b) the database refuses connections: 503 with Retry-After for every kind
        _allow_connections(pg_server_url, dbname, False)
        refused = True
        for name, (_, _, _, _, _, want_json) in calls.items():
            status, hdrs, text = send(name)
            assert status == 503, f"{name}: HTTP {status} {text[:300]}"
            assert int(hdrs["Retry-After"]) > 0, name
            if want_json:
                assert hdrs["Content-Type"].startswith("application/json"), name
                assert json.loads(text) == {"error": "database unavailable: try again later"}
                assert text.count("\n") == 1, name  # one line
            else:
                assert hdrs["Content-Type"].startswith("text/html"), name
                assert "db-unavailable" in text and "Traceback" not in text, name
        # back: the same requests succeed at once
        _allow_connections(pg_server_url, dbname, True)
        refused = False
        for name, (_, _, _, _, ok, _) in calls.items():
            status, _, text = send(name)
            assert status == ok, f"{name}: HTTP {status} {text[:300]}"
        status, _, text = send("intake")  # the client's resend of its 202: stored once
        assert status == 202 and json.loads(text)["stored"] == 1
    finally:
        if refused:
            _allow_connections(pg_server_url, dbname, True)
        stop_server(proc)
    # nothing twice: the report sent (and resent) stored once; each comment answered 200 is
    # there once, and none of those answered 503 was done
    assert query_one(db, "SELECT count(*) FROM reports WHERE id = %s", (SENT,)) == 1
    assert query_one(db, "SELECT count(*) FROM report_events WHERE report_id = %s", (SENT,)) == 1
    comments = query_one(
        db,
        "SELECT count(*) FROM incident_events WHERE incident_id = %s AND action = 'comment'",
        (iid,),
    )
    assert comments == done["action"] >= 1
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert "database unavailable: POST /api/v1/incidents/<int:incident_id>/actions" in text


def test_what_a_lost_connection_is(fresh_db_url: str) -> None:
    """connection_lost: a terminated backend and a refused connection are; a statement
    timeout (QueryCanceled, an OperationalError too) and a bad query are not."""
    conn = psycopg2.connect(fresh_db_url, application_name="ioc-dbloss-probe")
    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = 50")
            with pytest.raises(psycopg2.errors.QueryCanceled) as timeout:
                cur.execute("SELECT pg_sleep(1)")
        assert isinstance(timeout.value, psycopg2.OperationalError)
        assert not connection_lost(timeout.value)
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(psycopg2.ProgrammingError) as bad:
            cur.execute("SELECT no_such_column FROM reports")
        assert not connection_lost(bad.value)
        conn.rollback()
        assert terminate_backends(fresh_db_url, "ioc-dbloss-probe") == 1
        with conn.cursor() as cur, pytest.raises(psycopg2.OperationalError) as lost:
            cur.execute("SELECT 1")
        assert connection_lost(lost.value)
        with pytest.raises(psycopg2.InterfaceError) as closed:
            conn.cursor()
        assert connection_lost(closed.value)
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(fresh_db_url.rsplit("/", 1)[0] + "/no_such_database_here")
    assert connection_lost(refused.value)


def test_an_exhausted_pool_is_busy_not_a_fault(fresh_db_url: str) -> None:
    """Every connection of the pool in use: DatabaseUnavailable (a 503 with Retry-After: busy,
    try again), not psycopg2's PoolError (a 500); the next request gets one again."""
    pool = Pool(fresh_db_url, maxconn=1)
    try:
        with pool.conn():
            with (
                pytest.raises(DatabaseUnavailable, match="1 database connections") as busy,
                pool.conn(),
            ):
                pass
            assert connection_lost(busy.value)  # what the 503 handler answers
        with pool.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        pool.close()
