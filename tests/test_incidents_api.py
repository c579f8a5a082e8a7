"""The incidents API for field systems (Flask server, real PostgreSQL) and the simulator's
ward staff working incidents through it over real HTTP."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from ioc.citizen.tokens import add_token
from ioc.config import Config
from ioc.db import connect
from ioc.incidents import core, rules
from ioc.incidents.tokens import add_staff_token
from ioc.settings import Settings
from sensors.incident_staff import IncidentStaff, plan, ward_speed


@pytest.fixture
def app(config: Config, fresh_db_url: str, tmp_path: Path) -> Any:
    from dashboards.app import create_app

    settings = Settings(secret_key="s" * 40, var_dir=tmp_path / "var")
    return create_app(config, fresh_db_url, settings)


def _new(db_url: str, config: Config, ward: str, category: str, ago_h: float = 0) -> int:
    c = connect(db_url)
    try:
        iid = core.create(
            c, config, ward_code=ward, category=category, title=f"{category} {ward}",
            actor="op", source="web",
            now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=ago_h),
        )  # fmt: skip
        c.commit()
        return iid
    finally:
        c.close()


def test_api_actions_name_the_bad_field(app: Any, config: Config, fresh_db_url: str) -> None:
    client = app.server.test_client()
    ward = sorted(config.ward_codes)[0]
    iid = _new(fresh_db_url, config, ward, "flooding")
    c = connect(fresh_db_url)
    staff, intake = add_staff_token(c, "field-app"), add_token(c, "hotline")
    c.close()
    auth = {"Authorization": f"Bearer {staff}"}
    url = f"/api/v1/incidents/{iid}/actions"
    # tokens: none, another scope's, revoked-looking garbage
    assert client.get("/api/v1/incidents").status_code == 401
    assert (
        client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {intake}"}).status_code
        == 401
    )
    assert (
        client.post(
            url, json={"action": "start"}, headers={"Authorization": "Bearer x"}
        ).status_code
        == 401
    )
    # the list: open incidents with their SOP steps
    res = client.get(f"/api/v1/incidents?ward={ward}", headers=auth)
    assert res.status_code == 200
    [item] = res.get_json()["incidents"]
    assert item["id"] == iid and [s["id"] for s in item["steps"]] == [
        s.id for s in rules.sop_steps(config, "flooding")
    ]
    assert (
        client.get("/api/v1/incidents?ward=99999", headers=auth)
        .get_json()["error"]
        .startswith("ward:")
    )
    assert client.get("/api/v1/incidents?status=x", headers=auth).status_code == 400
    for body, field in (
        ({"action": "fly", "actor": "a"}, "action"),
        ({"action": "start"}, "actor"),
        ({"action": "start", "actor": 5}, "actor"),
        ({"action": "assign", "actor": "a", "assignee": "nowhere"}, "assignee"),
    ):
        res = client.post(url, json=body, headers=auth)
        assert res.status_code == 400 and res.get_json()["error"].startswith(f"{field}:"), body
    assert client.post(url, data=b"{not json", headers=auth).get_json()["error"].startswith("body:")
    assert client.post(url, json=[1], headers=auth).status_code == 400
    assert (
        client.post(
            "/api/v1/incidents/999999/actions", json={"action": "start", "actor": "a"}, headers=auth
        ).status_code
        == 404
    )
    res = client.post(url, json={"action": "start", "actor": "a"}, headers=auth)
    assert res.status_code == 409 and res.get_json()["code"] == "bad_state"  # not assigned yet
    # the whole way through
    ok = [
        {"action": "acknowledge", "actor": "anh.tuan"},
        {"action": "assign", "actor": "anh.tuan", "assignee": ward},
        {"action": "start", "actor": "anh.tuan"},
    ]
    for body in ok:
        assert client.post(url, json=body, headers=auth).status_code == 200, body
    res = client.post(url, json={"action": "step", "actor": "a", "step": "verify"}, headers=auth)
    assert res.status_code == 400 and res.get_json()["error"].startswith("photo_ref:")
    for s in rules.sop_steps(config, "flooding"):
        body = {"action": "step", "actor": "anh.tuan", "step": s.id, "note": "x", "photo_ref": "p"}
        assert client.post(url, json=body, headers=auth).status_code == 200
    res = client.post(url, json={"action": "resolve", "actor": "anh.tuan"}, headers=auth)
    assert res.status_code == 400 and res.get_json()["error"].startswith("text:")
    res = client.post(
        url, json={"action": "resolve", "actor": "anh.tuan", "text": "Xong"}, headers=auth
    )
    assert res.get_json() == {"id": iid, "status": "resolved"}
    c = connect(fresh_db_url)
    try:
        trail = core.events(c, iid)
    finally:
        c.close()
    api = [e for e in trail if e["source"] == "api"]
    assert api and all(e["actor"] == "field-app/anh.tuan" for e in api)
    assert [e["action"] for e in api][:3] == ["acknowledged", "assigned", "started"]


def test_simulated_ward_staff_work_incidents_over_http(
    app: Any, config: Config, fresh_db_url: str
) -> None:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api-test", daemon=True)
    thread.start()
    try:
        codes = sorted(config.ward_codes)
        ids = [
            _new(
                fresh_db_url,
                config,
                codes[i % len(codes)],
                ("flooding", "traffic", "waste")[i % 3],
                30,
            )
            for i in range(40)
        ]
        c = connect(fresh_db_url)
        token = add_staff_token(c, "sim-staff")
        c.close()
        staff = IncidentStaff(f"http://127.0.0.1:{server.server_port}", token, seed=7)
        now = dt.datetime.now(dt.UTC)
        later = now + dt.timedelta(days=30)  # every plan's time has come
        n = staff.work(later)
        assert staff.failures == 0, staff.last_error
        assert n > 0
        assert staff.work(later) == 0  # done is done: nothing twice
        c = connect(fresh_db_url)
        try:
            states = {iid: core.get(c, iid)["status"] for iid in ids}  # type: ignore[index]
            left = [iid for iid in ids if states[iid] == "new"]
            assert set(states.values()) == {"resolved", "new"}
            assert 0 < len(left) <= 6  # the few left alone (about 5 %) stay new
            iid = next(i for i in ids if states[i] == "resolved")
            steps = core.steps_done(c, iid)
            assert steps and all(
                s["done_by"].startswith("sim-staff/can-bo-") for s in steps.values()
            )
        finally:
            c.close()
        # at the opening time nothing is due yet
        fresh = _new(fresh_db_url, config, codes[0], "waste")
        staff.work(now - dt.timedelta(hours=1))
        c = connect(fresh_db_url)
        try:
            assert core.get(c, fresh)["status"] == "new"  # type: ignore[index]
        finally:
            c.close()
    finally:
        server.shutdown()
        thread.join(10)


def test_staff_plans_make_every_sla_state(config: Config) -> None:
    speeds = [ward_speed(0, w) for w in sorted(config.ward_codes)]
    assert {0.35, 0.9, 1.5} <= set(speeds)  # quick, close to the limits, slow
    opened = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)
    inc = {
        "id": 1,
        "ward": "x",
        "opened_at": opened.isoformat(),
        "response_due_at": (opened + dt.timedelta(hours=1)).isoformat(),
        "due_at": (opened + dt.timedelta(hours=8)).isoformat(),
        "steps": [{"id": "a"}, {"id": "b"}],
    }
    late = on_time = 0
    for i in range(1, 400):
        p = plan(3, {**inc, "id": i, "ward": f"w{i % 40}"})
        if p.resolve_at is None:
            continue
        assert (
            p.ack_at is not None and p.ack_at <= p.step_times[0] <= p.step_times[1] <= p.resolve_at
        )
        if p.resolve_at > opened + dt.timedelta(hours=8):
            late += 1
        else:
            on_time += 1
    assert late > 0 and on_time > late
