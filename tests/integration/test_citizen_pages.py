"""/reports, the report sections of the overview and the ward page, on the real server and
database: every callback and download scoped on the server (replayed as a ward leader with
another ward's codes and report ids), contact masked except for admins, analysts read-only,
anonymous refused."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_fixtures import PASSWORD
from dash_seed import add_users

from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import store_events
from ioc.config import Config
from ioc.db import connect
from ioc.settings import Settings

pytestmark = pytest.mark.filterwarnings(
    r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning"
)
ORIGIN = {"Origin": "http://localhost"}
PHONE_A = "0905 123 456"


@pytest.fixture
def site(config: Config, fresh_db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from dashboards.app import create_app

    codes = sorted(config.ward_codes)
    a, b = codes[0], codes[1]  # the ward leader has a
    rules = Rules.from_config(config)
    now = dt.datetime.now(dt.UTC)
    items = [
        ("A-1", a, "received", now - dt.timedelta(days=3), {"contact": PHONE_A, "lat": 16.0,
                                                             "lon": 108.2}),
        ("A-2", a, "received", now - dt.timedelta(hours=1), {}),
        ("B-1", b, "received", now - dt.timedelta(days=3), {"contact": "0905 999 000"}),
    ]  # fmt: skip
    events = []
    for rid, ward, event, ts, extra in items:
        data = {"id": rid, "event": event, "ts": ts.isoformat(), "category": "flooding",
                "summary": f"Ngập {rid}", **extra}  # fmt: skip
        events.append(event_from_mapping(data, ward, rules))
    conn = connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            store_events(cur, events, rules, door="api")
        conn.commit()
        add_users(conn, config, PASSWORD)
    finally:
        conn.close()
    settings = Settings(secret_key="s" * 40, var_dir=tmp_path / "var")
    app = create_app(config, fresh_db_url, settings)
    yield {"app": app, "a": a, "b": b, "db": fresh_db_url}


def client_for(site: dict[str, Any], user: str | None) -> Any:
    c = site["app"].server.test_client()
    if user:
        form = {"username": user, "password": PASSWORD, "next": "/"}
        assert c.post("/login", data=form, headers=ORIGIN).status_code == 302
    return c


def list_body(wards: list[str] | None = None, status: list[str] | None = None) -> dict[str, Any]:
    outs = [("rep-table", "data"), ("rep-table", "selected_rows"), ("rep-count", "children")]
    return {
        "output": ".." + "...".join(f"{a}.{b}" for a, b in outs) + "..",
        "outputs": [{"id": a, "property": b} for a, b in outs],
        "inputs": [
            {"id": "rep-interval", "property": "n_intervals", "value": 1},
            {"id": "rep-ward", "property": "value", "value": wards},
            {"id": "rep-category", "property": "value", "value": None},
            {"id": "rep-status", "property": "value", "value": status},
            {"id": "rep-sla", "property": "value", "value": None},
            {"id": "rep-version", "property": "data", "value": 0},
        ],
        "changedPropIds": ["rep-interval.n_intervals"],
    }


def download_body(wards: list[str] | None = None) -> dict[str, Any]:
    return {
        "output": "rep-download.data",
        "outputs": {"id": "rep-download", "property": "data"},
        "inputs": [{"id": "rep-csv", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["rep-csv.n_clicks"],
        "state": [
            {"id": "rep-ward", "property": "value", "value": wards},
            {"id": "rep-category", "property": "value", "value": None},
            {"id": "rep-status", "property": "value", "value": None},
            {"id": "rep-sla", "property": "value", "value": None},
        ],
    }


def act_body(action: str, ids: list[str]) -> dict[str, Any]:
    actions = ("assigned", "in_progress", "resolved", "rejected")
    return {
        "output": "..rep-msg.children...rep-version.data..",
        "outputs": [
            {"id": "rep-msg", "property": "children"},
            {"id": "rep-version", "property": "data"},
        ],
        "inputs": [
            {"id": f"rep-act-{a}", "property": "n_clicks", "value": 1 if a == action else 0}
            for a in actions
        ],
        "changedPropIds": [f"rep-act-{action}.n_clicks"],
        "state": [
            {"id": "rep-table", "property": "selected_row_ids", "value": ids},
            {"id": "rep-result", "property": "value", "value": "Đã xử lý"},
            {"id": "rep-version", "property": "data", "value": 0},
        ],
    }


def call(c: Any, body: dict[str, Any]) -> tuple[int, Any]:
    resp = c.post("/_dash-update-component", json=body, headers=ORIGIN)
    if resp.status_code != 200:
        return resp.status_code, None
    return 200, json.loads(resp.data)["response"]


def rows_of(resp: Any) -> list[dict[str, Any]]:
    return list(resp["rep-table"]["data"])


def test_list_is_scoped_on_the_server(site: dict[str, Any]) -> None:
    a, b = site["a"], site["b"]
    leader = client_for(site, "ward_leader")
    code, resp = call(leader, list_body())
    assert code == 200
    assert sorted(r["code"] for r in rows_of(resp)) == ["A-1", "A-2"]
    # another ward's code in the request: refused (guard) — never B's rows
    code, resp = call(leader, list_body([b]))
    assert code == 403 or all(r["code"].startswith("A") for r in rows_of(resp))
    # operators see every ward, contact masked; admins see it in full
    code, resp = call(client_for(site, "operator"), list_body())
    assert sorted(r["code"] for r in rows_of(resp)) == ["A-1", "A-2", "B-1"]
    contacts = {r["code"]: r["contact"] for r in rows_of(resp)}
    assert contacts["A-1"] == "09********56" and PHONE_A not in json.dumps(resp)
    code, resp = call(client_for(site, "admin"), list_body([a]))
    assert {r["code"]: r["contact"] for r in rows_of(resp)}["A-1"] == PHONE_A
    # anonymous: refused
    assert call(client_for(site, None), list_body())[0] in (401, 403)
    # the page itself
    assert client_for(site, "analyst").get("/reports").status_code == 200
    anon = client_for(site, None).get("/reports")
    assert anon.status_code in (302, 401)


def test_download_is_scoped_and_masked(site: dict[str, Any]) -> None:
    code, resp = call(client_for(site, "admin"), download_body())
    assert code == 200
    content = resp["rep-download"]["data"]["content"]
    assert "A-1" in content and "B-1" in content
    assert PHONE_A not in content and "0905 999 000" not in content  # exports: masked
    code, resp = call(client_for(site, "ward_leader"), download_body())
    content = resp["rep-download"]["data"]["content"]
    assert "A-1" in content and "B-1" not in content
    code, resp = call(client_for(site, "ward_leader"), download_body([site["b"]]))
    assert code == 403 or "B-1" not in resp["rep-download"]["data"]["content"]


def test_actions_roles_and_wards(site: dict[str, Any]) -> None:
    from ingest_helpers import query_all

    db = site["db"]
    # analysts read only
    code, resp = call(client_for(site, "analyst"), act_body("assigned", ["A-1"]))
    assert code in (200, 403)
    # a ward leader on another ward's report: nothing happens
    leader = client_for(site, "ward_leader")
    code, resp = call(leader, act_body("assigned", ["B-1"]))
    assert code == 200 and "0" in resp["rep-msg"]["children"]
    # ... on their own: stored through the web door, with who did it
    code, resp = call(leader, act_body("resolved", ["A-1"]))
    assert code == 200 and "1" in resp["rep-msg"]["children"]
    rows = query_all(db, "SELECT report_id, event, door, actor FROM report_events"
                     " WHERE door = 'web'")  # fmt: skip
    assert rows == [("A-1", "resolved", "web", "user:ward_leader")]
    assert query_all(db, "SELECT status, result FROM reports WHERE id = 'A-1'") == [
        ("resolved", "Đã xử lý")
    ]
    assert query_all(db, "SELECT status FROM reports WHERE id = 'B-1'") == [("received",)]


def ward_reports_body(code: str) -> dict[str, Any]:
    return {
        "output": "ward-reports.children",
        "outputs": {"id": "ward-reports", "property": "children"},
        "inputs": [{"id": "ward-interval", "property": "n_intervals", "value": 1}],
        "changedPropIds": ["ward-interval.n_intervals"],
        "state": [{"id": "ward-code", "property": "data", "value": code}],
    }


def overview_reports_body() -> dict[str, Any]:
    return {
        "output": "ov-reports.children",
        "outputs": {"id": "ov-reports", "property": "children"},
        "inputs": [{"id": "ov-interval", "property": "n_intervals", "value": 1}],
        "changedPropIds": ["ov-interval.n_intervals"],
    }


def _tile(resp: Any, out: str, tile_id: str) -> str:
    text = json.dumps(resp[out]["children"], ensure_ascii=False)
    i = text.index(f'"id": "{tile_id}"')
    return text[i : i + 600]


def test_overview_and_ward_sections(site: dict[str, Any]) -> None:
    a, b = site["a"], site["b"]
    leader = client_for(site, "ward_leader")
    code, resp = call(leader, ward_reports_body(a))
    assert code == 200
    assert '"2"' in _tile(resp, "ward-reports", "ward-rep-received")
    assert "ward-rep-map" in json.dumps(resp)
    assert call(leader, ward_reports_body(b))[0] == 403
    code, resp = call(client_for(site, "operator"), overview_reports_body())
    assert code == 200 and '"3"' in _tile(resp, "ov-reports", "ov-rep-received")
    # a ward leader's overview counts only their ward
    code, resp = call(leader, overview_reports_body())
    assert code == 200 and '"2"' in _tile(resp, "ov-reports", "ov-rep-received")
    assert "0905" not in json.dumps(resp)
