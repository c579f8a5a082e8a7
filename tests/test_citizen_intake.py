"""Citizen reports in (issue 11): one validated, idempotent write path behind three doors —
the MQTT topic (real Mosquitto), POST /api/v1/reports (the Flask server) and
`ioc import reports` — on real PostgreSQL; the lifecycle with events out of order; tokens;
public tracking never shows personal data; the contact retention job."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from ioc.applications import EventError
from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import remove_old_contacts, store_events
from ioc.citizen.tokens import add_token, revoke_token
from ioc.config import Config
from ioc.db import Connection, connect
from ioc.settings import Settings
from ioc.workdays import LOCAL_TZ

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_helpers import Publisher, query_all, query_one, unique_prefix

W = "20195"
W2 = "20197"


@pytest.fixture(scope="module")
def rules(config: Config) -> Rules:
    return Rules.from_config(config)


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def L(*args: int) -> dt.datetime:  # a local time
    return dt.datetime(*args, tzinfo=LOCAL_TZ)


def ev(rid: str, event: str, ts: dt.datetime, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "event": event, "ts": ts.isoformat()}
    if event == "received":
        out.setdefault("category", "flooding")
        out.setdefault("summary", "Ngập sâu 40 cm trước chợ")
    out.update(kw)
    return out


# -- validation (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"event": "received"}, "id"),
        ({"id": "a/b", "event": "received"}, "id"),
        ({"id": "A1", "event": "opened", "ts": 1}, "event"),
        ({"id": "A1", "event": "received"}, "ts"),
        ({"id": "A1", "event": "received", "ts": "2026-12-05T10:00"}, "ts"),  # no offset
        ({"id": "A1", "event": "received", "ts": 1, "summary": "x"}, "category"),
        ({"id": "A1", "event": "received", "ts": 1, "category": "ufo", "summary": "x"}, "category"),
        ({"id": "A1", "event": "received", "ts": 1, "category": "waste"}, "summary"),
        ({"id": "A1", "event": "assigned", "ts": 1, "channel": "fax"}, "channel"),
        ({"id": "A1", "event": "assigned", "ts": 1, "lat": 95, "lon": 108}, "lat"),
        ({"id": "A1", "event": "assigned", "ts": 1, "lat": 16}, "lon"),
        ({"id": "A1", "event": "assigned", "ts": 1, "contact": ["x"]}, "contact"),
        ({"id": "A1", "event": "assigned", "ts": 1, "summary": "x" * 3000}, "summary"),
    ],
)
def test_validation_names_the_field(rules: Rules, data: dict[str, Any], field: str) -> None:
    with pytest.raises(EventError) as err:
        event_from_mapping(data, W, rules)
    assert getattr(err.value, "field", None) == field
    assert err.value.message.startswith(f"{field}:")


def test_due_time_from_category(rules: Rules) -> None:
    # flooding: 4 working hours; Friday 16:00 → Monday 10:30
    e = event_from_mapping(ev("F1", "received", L(2026, 12, 4, 16, 0)), W, rules)
    assert rules.due("flooding", e.ts) == L(2026, 12, 7, 10, 30)
    # lighting: 2 working days; Wednesday 29/4/2026 10:00 over 30/4, 1/5 and a weekend:
    # the limit runs out Tuesday 5/5 10:00, due at that day's closing time
    assert rules.due("lighting", L(2026, 4, 29, 10, 0)) == L(2026, 5, 5, 17, 0)
    # received on Sunday with 3 working days: Monday to Wednesday
    assert rules.due("environment", L(2026, 12, 6, 15, 0)) == L(2026, 12, 9, 17, 0)
    # the ward's name in a handling unit "UBND {ward}"
    assert rules.default_unit("flooding", W) == "Ban Chỉ huy PCTT&TKCN"


# -- the lifecycle on the database ---------------------------------------------------------


def _store(conn: Connection, rules: Rules, items: list[dict[str, Any]], door: str = "mqtt"):
    events = [event_from_mapping(i, i.pop("ward", W), rules) for i in items]
    with conn.cursor() as cur:
        out = store_events(cur, events, rules, door=door)
    conn.commit()
    return [o.status if o.accepted else o.code for o in out]


def _row(conn: Connection, rid: str) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM reports WHERE id = %s", (rid,))
        cols = [d[0] for d in cur.description or []]
        row = cur.fetchone()
    return dict(zip(cols, row, strict=True)) if row else {}


def test_lifecycle_out_of_order_and_reopen(
    conn: Connection, rules: Rules, fresh_db_url: str
) -> None:
    t0 = L(2026, 12, 7, 8, 0)  # Monday
    h = dt.timedelta(hours=1)
    # resolved and assigned arrive before received (out of order): they wait
    assert _store(conn, rules, [ev("R1", "resolved", t0 + 3 * h, result="Đã bơm thoát nước")]) == [
        "stored"
    ]
    assert _row(conn, "R1") == {}
    assert _store(conn, rules, [ev("R1", "assigned", t0 + h, unit="UBND phường")]) == ["stored"]
    assert _store(conn, rules, [ev("R1", "received", t0, contact="0905123456")]) == ["stored"]
    r = _row(conn, "R1")
    assert r["status"] == "resolved" and r["resolved_at"] == t0 + 3 * h
    assert r["assigned_at"] == t0 + h and r["unit"] == "UBND phường"
    assert r["due_at"] == L(2026, 12, 7, 14, 0)  # 8:00 + 4 working hours: 3.5 + 0.5 after lunch
    assert r["result"] == "Đã bơm thoát nước" and r["contact"] == "0905123456"
    # a redelivery changes nothing; an in_progress after resolved is impossible
    assert _store(conn, rules, [ev("R1", "assigned", t0 + h)]) == ["duplicate"]
    assert _store(conn, rules, [ev("R1", "in_progress", t0 + 4 * h)]) == ["impossible_transition"]
    # a late in_progress with an earlier time fits (between assigned and resolved)
    assert _store(conn, rules, [ev("R1", "in_progress", t0 + 2 * h)]) == ["stored"]
    # a late 'rejected' before the stored 'resolved' would make that impossible: refused
    assert _store(conn, rules, [ev("R1", "rejected", t0 + 2.5 * h)]) == ["impossible_transition"]
    # the same report from another ward is refused
    assert _store(conn, rules, [ev("R1", "assigned", t0 + 5 * h, ward=W2)]) == ["ward_mismatch"]
    # reopened by the citizen → received again, with a new due time
    assert _store(conn, rules, [ev("R1", "reopened", t0 + 24 * h)]) == ["stored"]
    r = _row(conn, "R1")
    assert r["status"] == "received" and r["resolved_at"] is None and r["reopen_count"] == 1
    assert r["due_at"] == rules.due("flooding", t0 + 24 * h)
    # a second 'received' of an open report: the same report sent again
    assert _store(conn, rules, [ev("R1", "received", t0 + 25 * h)]) == ["duplicate"]
    hist = query_all(
        fresh_db_url, "SELECT event, door FROM report_events WHERE report_id = 'R1' ORDER BY ts"
    )
    assert [e for e, _ in hist] == [
        "received",
        "assigned",
        "in_progress",
        "resolved",
        "reopened",
    ]
    # the contact is personal data: never in the event history
    assert (
        query_one(
            fresh_db_url,
            "SELECT count(*) FROM report_events WHERE strpos(details::text, '0905') > 0",
        )
        == 0
    )


def test_contact_retention(conn: Connection, rules: Rules) -> None:
    now = dt.datetime.now(dt.UTC)
    old, recent = now - dt.timedelta(days=100), now - dt.timedelta(days=10)
    _store(
        conn,
        rules,
        [
            ev("OLD", "received", old - dt.timedelta(days=1), contact="Nguyễn Văn A"),
            ev("OLD", "resolved", old),
            ev("NEW", "received", recent - dt.timedelta(days=1), contact="0905000111"),
            ev("NEW", "resolved", recent),
            ev("OPEN", "received", old, contact="0905000222"),
        ],
    )
    with conn.cursor() as cur:
        assert remove_old_contacts(cur, retention_days=90, now=now) == 1
    conn.commit()
    assert _row(conn, "OLD")["contact"] is None and _row(conn, "OLD")["contact_removed_at"]
    assert _row(conn, "NEW")["contact"] == "0905000111"
    assert _row(conn, "OPEN")["contact"] == "0905000222"  # still being handled
    # a redelivered 'received' does not bring the removed contact back
    _store(conn, rules, [ev("OLD", "received", old - dt.timedelta(days=1), contact="Nguyễn Văn A")])
    assert _row(conn, "OLD")["contact"] is None


# -- the three doors -----------------------------------------------------------------------


@pytest.fixture
def app_client(config: Config, fresh_db_url: str, tmp_path: Path) -> Any:
    from dashboards.app import create_app

    settings = Settings(secret_key="s" * 40, var_dir=tmp_path / "var")
    return create_app(config, fresh_db_url, settings).server.test_client()


def _token(db_url: str, name: str = "hotline") -> str:
    c = connect(db_url)
    try:
        return add_token(c, name)
    finally:
        c.close()


def test_three_doors_store_the_same_event_once(
    config: Config, fresh_db_url: str, mqtt_url: str, app_client: Any, tmp_path: Path, rules: Rules
) -> None:
    from ingest.mqtt import MqttIngester
    from ioc.citizen.importer import import_file
    from ioc.settings import parse_mqtt_url

    prefix = unique_prefix()
    system = config.system.model_copy(
        update={"mqtt": config.system.mqtt.model_copy(update={"topic_prefix": prefix})}
    )
    ing = MqttIngester(
        dataclasses.replace(config, system=system),
        fresh_db_url,
        parse_mqtt_url(mqtt_url),
        client_id=f"t-{uuid.uuid4().hex[:8]}",
    )
    ing.start()
    try:
        t0 = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
        received = ev("PA-20261203-0001", "received", t0, channel="hotline_1022",
                      contact="0905 111 222", lat=16.06, lon=108.22)  # fmt: skip
        assigned = ev("PA-20261203-0001", "assigned", t0 + dt.timedelta(minutes=30))
        bad = {"id": "PA-BAD", "event": "received", "ts": t0.isoformat(), "summary": "x"}
        pub = Publisher(mqtt_url)
        try:
            reopen = ev("PA-20261203-0001", "reopened", t0 + dt.timedelta(minutes=40))
            for item in (received, assigned, bad, received, reopen):  # 4th: a redelivery
                pub.infos.append(pub.client.publish(f"{prefix}/{W}/reports", json.dumps(item), 1))
            pub.wait_all(60)
        finally:
            pub.close()
        deadline = time.monotonic() + 30
        while ing.stats.acked < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ing.stats.acked >= 5
    finally:
        ing.stop()
    assert query_one(fresh_db_url, "SELECT count(*) FROM report_events") == 2
    reasons = sorted(r[0] for r in query_all(fresh_db_url, "SELECT reason FROM ingest_rejects"))
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("impossible_transition: reopened of PA-20261203-0001")
    assert reasons[1].startswith("missing_field: category:"), reasons

    # the same events through the HTTP API: stored once (202, counted as stored)
    token = _token(fresh_db_url)
    auth = {"Authorization": f"Bearer {token}"}
    body = [{**received, "ward": W}, {**assigned, "ward": W}]
    resp = app_client.post("/api/v1/reports", json=body, headers=auth)
    assert resp.status_code == 202, resp.data
    assert resp.get_json() == {"stored": 2}
    # ... and a new one, alone (an object)
    in_prog = {**ev("PA-20261203-0001", "in_progress", t0 + dt.timedelta(hours=1)), "ward": W}
    resp = app_client.post("/api/v1/reports", json=in_prog, headers=auth)
    assert resp.status_code == 202 and resp.get_json() == {"stored": 1}

    # ... and through a file (CSV): the three stored rows are already present
    csv_path = tmp_path / "reports.csv"
    csv_path.write_text(
        "id,event,ts,ward,category,summary,channel,contact\n"
        f"PA-20261203-0001,received,{t0.isoformat()},{W},flooding,Ngập sâu 40 cm trước chợ,"
        "hotline_1022,0905 111 222\n"
        f"PA-20261203-0001,in_progress,{(t0 + dt.timedelta(hours=1)).isoformat()},{W},,,,\n"
        f"PA-20261203-0002,received,2026-12-03 10:00,{W},lighting,Đèn đường tắt,web,\n"
        f"PA-20261203-0003,received,2026-12-03 10:00,{W},,Thiếu lĩnh vực,web,\n"
        f"PA-20261203-0004,received,2026-12-03 10:00,99999,waste,Rác,web,\n",
        encoding="utf-8",
    )
    c = connect(fresh_db_url)
    try:
        rep = import_file(c, csv_path, rules, actor="test")
    finally:
        c.close()
    assert (rep.rows, rep.imported, rep.duplicates) == (5, 1, 2)
    assert [(n, r.split(":")[0]) for n, r in rep.bad] == [(5, "category"), (6, "ward")]
    assert query_one(fresh_db_url, "SELECT count(*) FROM report_events") == 4
    doors = query_all(
        fresh_db_url, "SELECT event, door, actor FROM report_events ORDER BY ts, event"
    )
    assert [(e, d) for e, d, _ in doors] == [
        ("received", "mqtt"),
        ("assigned", "mqtt"),
        ("in_progress", "api"),
        ("received", "import"),
    ]
    assert doors[2][2] == "token:hotline"
    row = query_all(
        fresh_db_url,
        "SELECT status, channel, category, contact, due_at FROM reports"
        " WHERE id = 'PA-20261203-0001'",
    )
    # 09:00 local Thursday + 4 working hours (2.5 + 1.5 after lunch) → 15:00 local
    assert row == [
        ("in_progress", "hotline_1022", "flooding", "0905 111 222", L(2026, 12, 3, 15, 0))
    ]
    # the 2nd file row's local time (no offset) is Asia/Ho_Chi_Minh
    assert query_one(
        fresh_db_url, "SELECT received_at FROM reports WHERE id = 'PA-20261203-0002'"
    ) == L(2026, 12, 3, 10, 0)


def test_api_refuses_bad_requests(app_client: Any, fresh_db_url: str) -> None:
    token = _token(fresh_db_url)
    auth = {"Authorization": f"Bearer {token}"}
    good = {**ev("A-1", "received", L(2026, 12, 3, 9, 0)), "ward": W}
    # no token / a wrong one / a revoked one: 401
    assert app_client.post("/api/v1/reports", json=good).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert app_client.post("/api/v1/reports", json=good, headers=wrong).status_code == 401
    # 400 naming the first bad field; nothing of the request is stored
    bad = [good, {**good, "id": "A-2", "category": "ufo"}]
    resp = app_client.post("/api/v1/reports", json=bad, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["error"].startswith("[1].category: unknown category 'ufo'")
    assert query_one(fresh_db_url, "SELECT count(*) FROM reports") == 0
    for body, field in (
        ({**good, "ward": "99999"}, "ward"),
        ({k: v for k, v in good.items() if k != "ward"}, "ward"),
        ({**good, "ts": "yesterday"}, "ts"),
        ({**good, "lat": "north"}, "lat"),
        ("not an object", "event"),
    ):
        resp = app_client.post("/api/v1/reports", json=body, headers=auth)
        assert resp.status_code == 400, body
        assert resp.get_json()["error"].startswith(f"{field}:"), resp.get_json()
    resp = app_client.post(
        "/api/v1/reports", data=b"{nope", headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and resp.get_json()["error"].startswith("body:")
    # too large a body: 413, too many events: 400
    big = [good] * 1001
    resp = app_client.post("/api/v1/reports", json=big, headers=auth)
    assert resp.status_code in (400, 413) and resp.get_json()["error"].startswith("body:")
    # an impossible transition is refused alone: recorded as a reject, the rest stored
    resp = app_client.post(
        "/api/v1/reports",
        json=[good, {**ev("A-9", "assigned", L(2026, 12, 3, 9, 0)), "ward": W}],
        headers=auth,
    )
    assert resp.status_code == 202
    assert resp.get_json()["stored"] == 2  # an event before its 'received' waits: stored
    resp = app_client.post(
        "/api/v1/reports",
        json=[{**ev("A-1", "reopened", L(2026, 12, 3, 10, 0)), "ward": W}],
        headers=auth,
    )
    body = resp.get_json()
    assert resp.status_code == 202 and body["stored"] == 0
    assert body["rejected"][0]["error"].startswith("impossible_transition: reopened")
    assert (
        query_one(
            fresh_db_url, "SELECT count(*) FROM ingest_rejects WHERE starts_with(topic, 'api:')"
        )
        == 1
    )
    # revoked: refused at once
    c = connect(fresh_db_url)
    try:
        revoke_token(c, "hotline")
    finally:
        c.close()
    assert app_client.post("/api/v1/reports", json=good, headers=auth).status_code == 401
    # the token is kept hashed only
    stored = query_one(fresh_db_url, "SELECT token_hash FROM api_tokens WHERE name = 'hotline'")
    assert token not in stored and len(stored) == 64


def test_api_rate_limit(
    app_client: Any, fresh_db_url: str, monkeypatch: Any, config: Config
) -> None:
    from dashboards import intake

    token = _token(fresh_db_url, "portal")
    auth = {"Authorization": f"Bearer {token}"}
    rules = Rules.from_config(config)
    small = rules.categories.intake.model_copy(update={"rate_per_s": 0.01, "burst": 3})
    cats = rules.categories.model_copy(update={"intake": small})
    monkeypatch.setattr(intake, "_rules", lambda: dataclasses.replace(rules, categories=cats))
    body = [{**ev(f"RL-{i}", "received", L(2026, 12, 3, 9, 0)), "ward": W} for i in range(3)]
    assert app_client.post("/api/v1/reports", json=body, headers=auth).status_code == 202
    resp = app_client.post("/api/v1/reports", json=body[:1], headers=auth)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    # another token has its own budget
    other = {"Authorization": f"Bearer {_token(fresh_db_url, 'crm')}"}
    assert app_client.post("/api/v1/reports", json=body[:1], headers=other).status_code == 202


def test_tracking_is_public_and_never_personal(
    app_client: Any, fresh_db_url: str, rules: Rules
) -> None:
    c = connect(fresh_db_url)
    try:
        t0 = L(2026, 12, 3, 9, 0)
        _store(
            c,
            rules,
            [
                ev(
                    "PA-T-1",
                    "received",
                    t0,
                    contact="Trần Thị B 0905999888",
                    address="12 Lê Duẩn",
                    summary="Ngập trước nhà bà B",
                ),
                ev("PA-T-1", "resolved", t0 + dt.timedelta(hours=2), result="Đã khơi thông cống"),
            ],
        )
    finally:
        c.close()
    resp = app_client.get("/api/v1/track/PA-T-1")
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == {"id", "status", "received_at", "due_at", "resolved_at", "unit"}
    assert body["status"] == "resolved" and body["unit"] == "Ban Chỉ huy PCTT&TKCN"
    assert dt.datetime.fromisoformat(body["received_at"]) == t0
    assert dt.datetime.fromisoformat(body["due_at"]) == L(2026, 12, 3, 15, 0)
    assert app_client.get("/api/v1/track/NOPE-1").status_code == 404
    assert app_client.get("/api/v1/track/..%2F..%2Fetc").status_code == 404
    page = app_client.get("/track?id=PA-T-1")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Đã xử lý xong" in text and "Đã khơi thông cống" in text and "Đúng hạn" in text
    for secret in ("0905999888", "Trần Thị B", "Lê Duẩn", "bà B"):
        assert secret not in text and secret not in resp.get_data(as_text=True)
    en = app_client.get("/track?id=PA-T-1&lang=en").get_data(as_text=True)
    assert "Resolved" in en and "On time" in en
    assert app_client.get("/track?id=NOPE-1").status_code == 404
    assert app_client.get("/track").status_code == 200  # the form, no sign-in
    # rate-limited per client address: 30 a minute (a bucket of 30, refilled at 0.5/s)
    c = connect(fresh_db_url)
    try:
        with c.cursor() as cur:
            cur.execute("DELETE FROM rate_limits")  # the look-ups above counted too
        c.commit()
    finally:
        c.close()
    t0 = time.monotonic()
    codes = [app_client.get("/api/v1/track/PA-T-1").status_code for _ in range(40)]
    refill = int((time.monotonic() - t0) * 0.5) + 1
    assert 30 <= codes.count(200) <= 30 + refill and codes[-1] == 429
    assert codes[:30] == [200] * 30


def test_tokens_cli(fresh_db_url: str, capsys: Any, monkeypatch: Any) -> None:
    from ioc.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", fresh_db_url)
    assert main(["tokens", "add", "hotline1022", "--scope", "intake"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ioc_") and len(token) > 40
    assert main(["tokens", "add", "hotline1022", "--scope", "intake"]) != 0
    assert "exists" in capsys.readouterr().err
    assert main(["tokens", "list"]) == 0
    out = capsys.readouterr().out
    assert "hotline1022\tintake" in out and "active" in out and token not in out
    assert main(["tokens", "revoke", "hotline1022"]) == 0
    capsys.readouterr()
    assert main(["tokens", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["tokens", "revoke", "nobody"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err
    assert main(["tokens", "add", "x", "--scope", "admin"]) != 0
    # the field staff API's scope (incidents) is made the same way
    capsys.readouterr()
    assert main(["tokens", "add", "ward-staff", "--scope", "incidents"]) == 0
    capsys.readouterr()
    assert main(["tokens", "list"]) == 0
    assert "ward-staff\tincidents" in capsys.readouterr().out


def test_import_cli_reports_lines(fresh_db_url: str, tmp_path: Path, capsys: Any, monkeypatch: Any):
    from openpyxl import Workbook

    from ioc.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", fresh_db_url)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["id", "event", "ts", "ward", "category", "summary", "contact"])
    ws.append(["X-1", "received", dt.datetime(2026, 12, 3, 9, 0), W, "waste", "Rác", 905123456])
    ws.append(["X-2", "received", dt.datetime(2026, 12, 3, 9, 0), W, "waste", None, None])
    ws.append(["X-1", "resolved", dt.datetime(2026, 12, 3, 11, 0), W, None, None, None])
    path = tmp_path / "r.xlsx"
    wb.save(path)
    assert main(["import", "reports", str(path)]) == 1
    cap = capsys.readouterr()
    assert "2 report event(s) imported" in cap.out
    assert f"{path}: line 3: summary: is required" in cap.err
    assert query_all(fresh_db_url, "SELECT id, status, contact FROM reports") == [
        ("X-1", "resolved", "905123456")
    ]
    assert main(["import", "reports", str(tmp_path / "missing.csv")]) != 0


def test_migration_renames_the_old_reports_table(empty_db_url: str, config: Config) -> None:
    from ioc.db.migrate import init_db

    c = psycopg2.connect(empty_db_url)
    with c.cursor() as cur:  # a database of before 0011 with a written report file
        cur.execute(
            "CREATE TABLE reports (id bigserial PRIMARY KEY, name text NOT NULL, schedule text,"
            " format text NOT NULL, path text NOT NULL, period_from timestamptz,"
            " period_to timestamptz, created_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("INSERT INTO reports (name, format, path) VALUES ('daily', 'csv', '/x.csv')")
    c.commit()
    c.close()
    conn = connect(empty_db_url)
    try:
        init_db(conn, config)
        init_db(conn, config)  # idempotent
    finally:
        conn.close()
    assert query_all(empty_db_url, "SELECT name, path FROM report_files") == [("daily", "/x.csv")]
    assert query_one(empty_db_url, "SELECT count(*) FROM reports") == 0
    cols = {r[0] for r in query_all(
        empty_db_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'reports'",
    )}  # fmt: skip
    assert {"ward_code", "category", "due_at", "resolved_at", "status", "contact"} <= cols


_ = Callable


def test_scheduler_retention_job_removes_contacts(
    config: Config, fresh_db_url: str, conn: Connection, rules: Rules
) -> None:
    from ioc.scheduler import Jobs

    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(
        days=config.report_categories().contact_retention_days + 5
    )
    _store(
        conn,
        rules,
        [
            ev("RET-1", "received", long_ago, contact="0905 000 333"),
            ev("RET-1", "rejected", long_ago + dt.timedelta(hours=1)),
        ],
    )
    result = Jobs(cfg=config, db_url=fresh_db_url).retention()
    assert result["report_contacts_removed"] == 1
    assert query_one(fresh_db_url, "SELECT contact FROM reports WHERE id = 'RET-1'") is None


def test_concurrent_writers_of_one_report(fresh_db_url: str, rules: Rules) -> None:
    """Several connections (ingesters, API workers) storing events of the same reports at once:
    each report's row ends as its whole history says, nothing lost or doubled."""
    import threading

    t0 = L(2026, 12, 7, 8, 0)
    ids = [f"C-{i}" for i in range(30)]
    plan = {
        "received": dt.timedelta(0),
        "assigned": dt.timedelta(minutes=10),
        "in_progress": dt.timedelta(minutes=20),
        "resolved": dt.timedelta(minutes=30),
    }
    errors: list[BaseException] = []

    def worker(event: str) -> None:
        try:
            c = connect(fresh_db_url)
            try:
                for rid in ids:
                    _store(c, rules, [ev(rid, event, t0 + plan[event])])
            finally:
                c.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(e,)) for e in reversed(list(plan))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    assert query_one(fresh_db_url, "SELECT count(*) FROM report_events") == 4 * len(ids)
    rows = query_all(fresh_db_url, "SELECT DISTINCT status, resolved_at FROM reports")
    assert rows == [("resolved", t0 + plan["resolved"])]
