"""Citizen reports taken up as incidents (POST /api/v1/incidents, the simulated operations
centre of sensors/incident_ops.py) and the demo's incident history: real PostgreSQL, the real
Flask server over HTTP."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import store_events
from ioc.citizen.tokens import add_token
from ioc.config import Config
from ioc.db import connect
from ioc.incidents import core, queries, rules
from ioc.incidents.tokens import add_staff_token
from ioc.settings import Settings
from sensors.fleet import build_fleet
from sensors.incident_ops import OpsCentre, takes_up, write_history
from sensors.reports import RepEvent, ReportModel, events_between
from sensors.settings import load_simulator_settings

LOCAL = dt.timezone(dt.timedelta(hours=7))


def _store(db_url: str, config: Config, events: list[Any]) -> None:
    rules = Rules.from_config(config)
    c = connect(db_url)
    try:
        with c.cursor() as cur:
            evs = [event_from_mapping(e.payload(), e.ward, rules) for e in events]
            out = store_events(cur, evs, rules, door="mqtt")
        assert all(o.status == "stored" for o in out), [o for o in out if o.status != "stored"]
        c.commit()
    finally:
        c.close()


def _report(ward: str, rid: str, cat: str, lat: float, lon: float, ts: dt.datetime) -> RepEvent:
    data = (("channel", "hotline_1022"), ("category", cat), ("summary", f"{cat} {rid}"),
            ("lat", lat), ("lon", lon))  # fmt: skip
    return RepEvent(ward, rid, "received", ts, "hotline_1022", data)


@pytest.fixture
def server(config: Config, fresh_db_url: str, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    from werkzeug.serving import make_server

    from dashboards.app import create_app

    app = create_app(config, fresh_db_url, Settings(secret_key="s" * 40, var_dir=tmp_path / "v"))
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, name="ops-api-test", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(10)


def test_reports_taken_up_once_and_merged(
    server: tuple[Any, str], config: Config, fresh_db_url: str
) -> None:
    app, base = server
    client = app.server.test_client()
    a, b = sorted(config.ward_codes)[:2]
    wa = config.ward(a)
    assert wa is not None
    t0 = dt.datetime.now(LOCAL) - dt.timedelta(hours=1)
    far = wa.lat + 0.02  # ~2.2 km north: another problem
    _store(fresh_db_url, config, [
        _report(a, "R-1", "traffic", wa.lat, wa.lon, t0),
        _report(a, "R-2", "traffic", wa.lat + 0.0002, wa.lon, t0 + dt.timedelta(minutes=9)),
        _report(a, "R-3", "traffic", far, wa.lon, t0 + dt.timedelta(minutes=10)),
        _report(a, "R-4", "lighting", wa.lat, wa.lon, t0 + dt.timedelta(minutes=11)),
        _report(b, "R-5", "traffic", wa.lat, wa.lon, t0 + dt.timedelta(minutes=12)),
    ])  # fmt: skip
    c = connect(fresh_db_url)
    staff, intake = add_staff_token(c, "ops-app"), add_token(c, "hotline")
    c.close()
    auth = {"Authorization": f"Bearer {staff}"}

    def take(body: dict[str, Any], headers: dict[str, str] = auth) -> tuple[int, Any]:
        res = client.post("/api/v1/incidents", json=body, headers=headers)
        return res.status_code, res.get_json()

    # refused: no token, another scope's token, bad fields, another ward's report
    assert take({"report": "R-1", "actor": "x"}, {})[0] == 401
    assert take({"report": "R-1", "actor": "x"}, {"Authorization": f"Bearer {intake}"})[0] == 401
    for body, field in (
        ({"actor": "x"}, "report"),
        ({"report": 5, "actor": "x"}, "report"),
        ({"report": "R-1"}, "actor"),
        ({"report": "R-1", "actor": "x", "ward": "99999"}, "ward"),
        ({"report": "R-5", "actor": "x", "ward": a}, "ward"),  # R-5 is of ward b
    ):
        code, out = take(body)
        assert code == 400 and out["error"].startswith(f"{field}:"), (body, out)
    code, out = take({"report": "nope", "actor": "x"})
    assert code == 404 and out["error"].startswith("report:")
    # opened once; again: the same incident; a duplicate nearby joins it; further away, or
    # another category or ward: an incident of its own
    code, first = take({"report": "R-1", "actor": "truc-ban", "ward": a})
    assert code == 201 and first["outcome"] == "opened" and first["status"] == "new"
    code, again = take({"report": "R-1", "actor": "truc-ban"})
    assert code == 200 and again == {**first, "outcome": "exists"}
    code, dup = take({"report": "R-2", "actor": "truc-ban"})
    assert code == 200 and dup["outcome"] == "merged" and dup["id"] == first["id"]
    others = [take({"report": r, "actor": "truc-ban"}) for r in ("R-3", "R-4", "R-5")]
    assert [o[0] for o in others] == [201, 201, 201]
    assert len({first["id"], *(o[1]["id"] for o in others)}) == 4
    c = connect(fresh_db_url)
    try:
        links = {lk["ref"] for lk in core.links(c, first["id"])}
        assert links == {"R-1", "R-2"}
        trail = core.events(c, first["id"])
        assert [e["action"] for e in trail] == ["opened", "linked", "linked"]
        assert {(e["actor"], e["source"]) for e in trail} == {("ops-app/truc-ban", "api")}
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM incidents")
            assert cur.fetchone() == (4,)
        # nearby sensors: by distance from the incident's place, nearest first
        with c.cursor() as cur:
            cur.execute(
                "INSERT INTO devices (device_id, ward_code, device_type, status, lat, lon)"
                " VALUES ('near', %s, 'air', 'online', %s, %s), ('mid', %s, 'air', 'online', %s,"
                " %s), ('far', %s, 'air', 'online', %s, %s), ('nopos', %s, 'air', 'online',"
                " NULL, NULL)",
                (b, wa.lat + 0.001, wa.lon, a, wa.lat + 0.005, wa.lon, a, far, wa.lon, a),
            )
        c.commit()
        inc = core.get(c, first["id"])
        assert inc is not None
        _, devs = queries.nearby(c, ward_code=a, lat=inc["lat"], lon=inc["lon"])
        assert [d.device_id for d in devs] == ["near", "mid", "nopos"]  # 'far' is 2.2 km away
        near, mid, nopos = (d.distance_m for d in devs)
        assert near is not None and 100 < near < 120
        assert mid is not None and 540 < mid < 570 and nopos is None
    finally:
        c.close()

    # the simulated operations centre does the same over HTTP, once; closes what is resolved
    ops = OpsCentre(base, staff, seed=3)
    ev = _report(a, "R-6", "flooding", wa.lat, wa.lon, t0 + dt.timedelta(minutes=20))
    _store(fresh_db_url, config, [ev])
    ops.see([ev, ev])  # seen twice (a replayed batch): still one incident
    if not takes_up(3, a, "flooding", wa.lat, wa.lon):
        ops.pending = [(t0, "R-6", a)]  # this seed leaves it: take it up anyway for the test
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    ops.work(later)
    ops.work(later)
    assert ops.failures == 0, ops.last_error
    assert ops.outcomes["opened"] == 1 and ops.outcomes["exists"] <= 1 and not ops.pending
    # a resolved incident is closed once checked (hours later), over the API
    c = connect(fresh_db_url)
    try:
        iid = first["id"]
        ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=10)
        core.assign(c, config, iid, a, actor="x", source="web", now=ago)
        for step in rules.sop_steps(config, "traffic"):
            core.tick_step(c, config, iid, step.id, actor="x", source="web", note="n",
                           photo_ref="p", now=ago)  # fmt: skip
        core.resolve(c, config, iid, "Xong", actor="x", source="web", now=ago)
        c.commit()
        ops.work(dt.datetime.now(dt.UTC))
        assert ops.failures == 0, ops.last_error
        inc = core.get(c, iid)
        assert inc is not None and inc["status"] == "closed"
        assert core.events(c, iid)[-1]["actor"] == "ops-app/truc-ban-ioc"
    finally:
        c.close()


def _sim_reports(config: Config, until: dt.datetime, days: int, n_wards: int) -> list[Any]:
    profiles, _ = build_fleet(config, load_simulator_settings(config.dir))
    big = sorted(profiles.values(), key=lambda p: -p.population)[:n_wards]
    model = ReportModel.build(config, big, 7)
    assert model is not None
    t1 = until.timestamp()
    t0 = t1 - days * 86400
    return events_between(model, [p.code for p in big], t0, t1, received_since=t0)


def test_demo_history_shows_every_sla_state(config: Config, fresh_db_url: str) -> None:
    until = dt.datetime(2026, 12, 2, 16, 0, tzinfo=LOCAL)  # a Wednesday afternoon
    since = until - dt.timedelta(days=2)
    events = _sim_reports(config, until, 2, 94)
    _store(fresh_db_url, config, events)
    c = connect(fresh_db_url)
    try:
        res = write_history(c, config, seed=7, since=since, until=until)
        counts = res.counts
        assert counts["opened"] > 50 and counts["merged"] > 0, counts
        with c.cursor() as cur:
            cur.execute(
                f"SELECT ({queries.SLA_STATE_SQL}) AS sla, status, escalation_level, ward_code"
                " FROM incidents i",
                {"now": until},
            )
            rows = cur.fetchall()
            assert len(rows) == counts["opened"]
            sla = collections.Counter(r[0] for r in rows)
            status = collections.Counter(r[1] for r in rows)
            assert set(sla) == {"ok", "warning", "breached", "met", "missed", "none"}, sla
            assert set(status) == set(core.STATUSES), status
            assert any(r[2] >= 1 for r in rows) and any(r[2] >= 2 for r in rows)  # escalated
            assert len({r[3] for r in rows}) >= 10
            # the audit trail: every change at its time, nothing in the future, no notification
            cur.execute(
                "SELECT count(*) FILTER (WHERE ts > %s), count(DISTINCT action) FROM"
                " incident_events",
                (until,),
            )
            future, actions = cur.fetchone()  # type: ignore[misc]
            assert future == 0 and actions >= 12
            cur.execute("SELECT i.id FROM incidents i WHERE status = 'closed' ORDER BY id LIMIT 1")
            closed = int(cur.fetchone()[0])  # type: ignore[index]
            cur.execute("SELECT count(*) FROM notifications")
            assert cur.fetchone() == (0,)
        trail = [e["action"] for e in core.events(c, closed)]
        assert trail[0] == "opened" and trail[-2:] == ["resolved", "closed"]
        assert {"acknowledged", "assigned", "started", "step_done"} <= set(trail)
        # written again (a demo restarted): nothing twice
        again = write_history(c, config, seed=7, since=since, until=until)
        assert (
            again.counts["opened"] == 0
            and again.counts["exists"] == counts["opened"] + (counts["merged"])
        )
    finally:
        c.close()
