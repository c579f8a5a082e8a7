"""Incidents against the real PostgreSQL: lifecycle, SOP, clocks, escalation, merge and split,
automatic opening from an alert rule, the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg2
import pytest

from ioc import alerts
from ioc.config import Config
from ioc.db import Connection, connect
from ioc.incidents import core, rules, sla
from ioc.incidents.core import IncidentError
from ioc.workdays import LOCAL_TZ

T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=LOCAL_TZ)  # a Wednesday, office hours


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[misc]


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    c = connect(db_url)
    yield c
    c.rollback()
    c.close()


def ward(config: Config, i: int) -> str:
    return sorted(config.ward_codes)[i]


def actions(conn: Connection, iid: int) -> list[str]:
    return [e["action"] for e in core.events(conn, iid)]


def new(conn: Connection, config: Config, w: str, category: str = "waste", **kw: object) -> int:
    args: dict[str, object] = {"severity": "warning", "title": "Rác tồn đọng", "now": T0}
    args.update(kw)
    iid = core.create(
        conn,
        config,
        ward_code=w,
        category=category,
        actor="op1",
        source="web",
        **args,  # type: ignore[arg-type]
    )
    conn.commit()
    return iid


# --------------------------------------------------------------------------- clocks


def test_clocks_run_in_working_hours_across_a_weekend_and_public_holidays(config: Config) -> None:
    # Wednesday 29/04/2026 16:00; 30/04 and 01/05 are public holidays, then the weekend
    c = rules.clocks(config, "waste", "warning", local(2026, 4, 29, 16, 0))
    # 4 working hours: 1 h on Wednesday, 3 h on Monday 04/05 from 07:30
    assert c.response_due_at == local(2026, 5, 4, 10, 30)
    # 24 working hours: 1 + 7.5 (Mon) + 7.5 (Tue) + 7.5 (Wed) + 0.5 (Thu 07/05)
    assert c.due_at == local(2026, 5, 7, 8, 0)
    # warning at 75 % of 4 h = 3 h: 1 h Wed + 2 h Monday
    assert c.response_warn_at == local(2026, 5, 4, 9, 30)
    # opened on a Saturday: the clock starts on Monday's first office hour
    sat = rules.clocks(config, "waste", "warning", local(2026, 12, 5, 20, 0))
    assert sat.response_due_at == local(2026, 12, 7, 11, 30)
    # a critical flood runs round the clock (incidents.yaml: clock continuous)
    flood = rules.clocks(config, "flooding", "critical", local(2026, 12, 5, 20, 0))
    assert flood.response_due_at == local(2026, 12, 5, 20, 30)
    assert flood.due_at == local(2026, 12, 6, 0, 0)


# --------------------------------------------------------------------------- lifecycle + SOP


def test_lifecycle_sop_and_audit_trail(conn: Connection, config: Config) -> None:
    w = ward(config, 1)
    iid = new(conn, config, w, "flooding", title="Ngập sâu đường Trưng Nữ Vương")
    inc = core.get(conn, iid)
    assert inc is not None and inc["status"] == "new" and inc["ward_code"] == w
    assert (inc["lat"], inc["lon"]) == (config.ward(w).lat, config.ward(w).lon)  # type: ignore[union-attr]
    # not before it is assigned
    with pytest.raises(IncidentError) as e:
        core.start(conn, iid, actor="op1", source="web", now=T0)
    assert e.value.code == "bad_state"
    conn.rollback()
    with pytest.raises(IncidentError):
        core.assign(conn, config, iid, "nowhere", actor="op1", source="web", now=T0)
    conn.rollback()
    core.assign(conn, config, iid, "pctt", actor="op1", source="web", now=T0)
    core.assign(conn, config, iid, w, actor="op1", source="web", now=T0)
    inc = core.get(conn, iid)
    assert inc and (inc["status"], inc["assignee"], inc["assignee_kind"]) == ("assigned", w, "ward")
    core.start(conn, iid, actor="lead1", source="web", now=T0 + dt.timedelta(minutes=5))
    inc = core.get(conn, iid)
    assert inc and inc["status"] == "in_progress"
    assert inc["acknowledged_by"] == "lead1"
    conn.commit()
    # SOP: verify needs a photo, barrier a note, pump nothing, report_back a note
    steps = [s.id for s in rules.sop_steps(config, "flooding")]
    assert steps == ["verify", "barrier", "pump", "report_back"]
    for step, kw, code in (
        ("verify", {}, "needs_photo"),
        ("verify", {"note": "đã đến"}, "needs_photo"),
        ("barrier", {"photo_ref": "x.jpg"}, "needs_note"),
        ("barrier", {"note": "   "}, "needs_note"),
        ("nope", {}, "bad_step"),
    ):
        with pytest.raises(IncidentError) as e:
            core.tick_step(conn, config, iid, step, actor="lead1", source="web", **kw)  # type: ignore[arg-type]
        assert e.value.code == code
        conn.rollback()
    t1 = T0 + dt.timedelta(minutes=20)
    assert core.tick_step(
        conn, config, iid, "verify", photo_ref="IMG_0042.jpg", actor="lead1", source="web", now=t1
    )
    assert not core.tick_step(
        conn, config, iid, "verify", photo_ref="again.jpg", actor="lead1", source="web", now=t1
    )
    core.tick_step(
        conn, config, iid, "barrier", note="Rào 2 đầu", actor="lead1", source="api", now=t1
    )
    core.tick_step(conn, config, iid, "pump", actor="lead1", source="web", now=t1)
    done = core.steps_done(conn, iid)
    assert done["verify"]["done_by"] == "lead1" and done["verify"]["done_at"] == t1
    assert done["verify"]["photo_ref"] == "IMG_0042.jpg" and done["barrier"]["note"] == "Rào 2 đầu"
    conn.commit()
    # resolving needs every step
    with pytest.raises(IncidentError) as e:
        core.resolve(conn, config, iid, "Đã bơm", actor="lead1", source="web", now=t1)
    assert e.value.code == "sop_incomplete" and "report_back" in str(e.value)
    conn.rollback()
    core.tick_step(
        conn, config, iid, "report_back", note="Hết ngập", actor="lead1", source="web", now=t1
    )
    core.comment(conn, iid, "Nước rút lúc 10:00", actor="op1", source="web", now=t1)
    conn.commit()
    with pytest.raises(IncidentError):
        core.resolve(conn, config, iid, "", actor="lead1", source="web", now=t1)
    conn.rollback()
    core.resolve(conn, config, iid, "Đã bơm hết nước", actor="lead1", source="web", now=t1)
    core.close(conn, iid, actor="op1", source="web", now=t1 + dt.timedelta(hours=1))
    inc = core.get(conn, iid)
    assert inc and inc["status"] == "closed" and inc["resolved_at"] == t1
    assert sla.sla_state(inc, t1) == "met"
    # reopen: clocks start again, the SOP stays ticked, state back to assigned
    t2 = T0 + dt.timedelta(days=1)
    core.reopen(conn, config, iid, "Ngập lại", actor="op1", source="web", now=t2)
    inc = core.get(conn, iid)
    assert inc and inc["status"] == "assigned" and inc["resolved_at"] is None
    assert inc["clock_start"] == t2 and inc["due_at"] > t2 and inc["acknowledged_at"] is None
    core.reject(conn, iid, "Trùng phản ánh khác", actor="op1", source="cli", now=t2)
    conn.commit()
    trail = core.events(conn, iid)
    assert [e["action"] for e in trail] == [
        "opened",
        "assigned",
        "assigned",
        "started",
        "step_done",
        "step_done",
        "step_done",
        "step_done",
        "comment",
        "resolved",
        "closed",
        "reopened",
        "rejected",
    ]
    assert all(e["actor"] and e["source"] in core.SOURCES and e["ts"] for e in trail)
    assert trail[1]["details"] == {"assignee": "pctt", "kind": "department", "previous": None}
    assert trail[5]["source"] == "api" and trail[5]["details"]["note"] == "Rào 2 đầu"
    assert trail[-1]["source"] == "cli" and trail[-1]["details"]["reason"] == "Trùng phản ánh khác"
    # the trail cannot be rewritten
    with conn.cursor() as cur, pytest.raises(psycopg2.Error, match="append-only"):
        cur.execute("UPDATE incident_events SET actor = 'x' WHERE incident_id = %s", (iid,))
    conn.rollback()
    with conn.cursor() as cur, pytest.raises(psycopg2.Error, match="append-only"):
        cur.execute("DELETE FROM incident_events WHERE incident_id = %s", (iid,))
    conn.rollback()


def test_bad_input_is_refused_by_name(conn: Connection, config: Config) -> None:
    w = ward(config, 2)
    for kw, code in (
        ({"ward_code": "99999"}, "bad_ward"),
        ({"category": "nope"}, "bad_category"),
        ({"severity": "huge"}, "bad_severity"),
        ({"title": "  "}, "needs_title"),
        ({"title": "x" * 5000}, "too_long"),
    ):
        args: dict[str, object] = {"ward_code": w, "category": "waste", "title": "t"}
        args.update(kw)
        with pytest.raises(IncidentError) as e:
            core.create(conn, config, actor="op", source="web", **args)  # type: ignore[arg-type]
        assert e.value.code == code
        conn.rollback()


# --------------------------------------------------------------------------- SLA + escalation


def test_escalation_fires_once_per_step_and_stops_on_acknowledgement(
    conn: Connection, config: Config
) -> None:
    w = ward(config, 3)
    # traffic (incidents.yaml): respond in 1, resolve in 8 working hours; chain: duty officer
    # at the breach, director 2 working hours later
    a = new(conn, config, w, "traffic", title="Ùn tắc A")
    b = new(conn, config, w, "traffic", title="Ùn tắc B")
    inc = core.get(conn, a)
    assert inc and inc["response_due_at"] == T0 + dt.timedelta(hours=1)
    # 8 h: Wed 9:00-11:30 (2.5) + 13:30-17:00 (3.5) + Thu 7:30-9:30 (2)
    assert inc["due_at"] == local(2026, 12, 3, 9, 30)

    def sweep(at: dt.datetime) -> sla.SweepResult:
        res = sla.sweep(conn, config, now=at)
        return res

    def mine(res: sla.SweepResult) -> list[tuple[int, int]]:
        return [x for x in res.escalated if x[0] in (a, b)]

    assert mine(sweep(T0 + dt.timedelta(minutes=30))) == []
    assert actions(conn, a) == ["opened"]
    sweep(T0 + dt.timedelta(minutes=46))  # 75 % of the hour
    assert actions(conn, a) == ["opened", "sla_warning"]
    sweep(T0 + dt.timedelta(minutes=50))  # once
    assert actions(conn, a) == ["opened", "sla_warning"]
    # at the due time itself the clock has not run out yet (done then is on time) ...
    assert mine(sweep(T0 + dt.timedelta(hours=1))) == []
    assert actions(conn, a) == ["opened", "sla_warning"]
    # ... just after, it has: breach and step 1 (after 0 h), for both
    res = sweep(T0 + dt.timedelta(hours=1, seconds=1))
    assert sorted(mine(res)) == [(a, 1), (b, 1)]
    assert actions(conn, a) == ["opened", "sla_warning", "sla_breached", "escalated"]
    assert core.events(conn, a)[-1]["details"] == {"level": 1, "to": "city_duty_officer"}
    assert mine(sweep(T0 + dt.timedelta(hours=1, minutes=30))) == []  # once per step
    # the duty officer acknowledges b: its chain stops
    core.acknowledge(conn, b, actor="duty", source="web", now=T0 + dt.timedelta(hours=2))
    conn.commit()
    # 2 working hours after the breach (10:00 + 1.5 h to 11:30, + 0.5 h from 13:30) = 14:00
    assert mine(sweep(local(2026, 12, 2, 13, 59))) == []
    res = sweep(local(2026, 12, 2, 14, 0))
    assert mine(res) == [(a, 2)]
    assert core.events(conn, a)[-1]["details"] == {"level": 2, "to": "director"}
    # Friday: a is at the end of the chain (nothing more, ever); b was acknowledged, so no
    # response breach any more, but its resolution clock ran out on Thursday 09:30: that
    # breach re-arms the chain, and step 2 is due 2 working hours later
    assert mine(sweep(local(2026, 12, 4, 14, 0))) == [(b, 2)]
    assert mine(sweep(local(2026, 12, 4, 15, 0))) == []
    inc_a = core.get(conn, a)
    assert inc_a and inc_a["escalation_level"] == 2
    assert actions(conn, a).count("escalated") == 2
    inc_b = core.get(conn, b)
    assert inc_b and inc_b["escalation_level"] == 2
    assert sla.sla_state(inc_b, local(2026, 12, 4, 14, 0)) == "breached"
    assert "sla_breached" in actions(conn, b)
    breaches = [
        e["details"]["clock"] for e in core.events(conn, b) if e["action"] == "sla_breached"
    ]
    assert breaches == ["response", "resolution"]
    assert [
        e["details"].get("level") for e in core.events(conn, b) if e["action"] == "escalated"
    ] == [1, 2]


def test_sla_state_of_open_and_done(conn: Connection, config: Config) -> None:
    w = ward(config, 4)
    iid = new(conn, config, w)
    inc = core.get(conn, iid)
    assert inc is not None
    assert sla.sla_state(inc, T0) == "ok"
    assert sla.sla_state(inc, inc["response_warn_at"]) == "warning"
    assert sla.sla_state(inc, inc["response_due_at"]) == "warning"  # on time at the due time
    second = dt.timedelta(seconds=1)
    assert sla.sla_state(inc, inc["response_due_at"] + second) == "breached"
    core.acknowledge(conn, iid, actor="x", source="web", now=T0)
    inc = core.get(conn, iid)
    assert inc and sla.sla_state(inc, inc["response_due_at"] + second) == "ok"
    assert sla.sla_state(inc, inc["warn_at"]) == "warning"
    assert sla.sla_state(inc, inc["due_at"] + second) == "breached"
    conn.rollback()


# --------------------------------------------------------------------------- merge, split


def _alert(conn: Connection, w: str, subject: str, rule: str = "congestion_high") -> int:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, opened_at)"
            " VALUES (%s, %s, %s, 'warning', 'open', %s, %s) RETURNING id",
            (rule, subject, w, f"Ùn tắc: {subject}", T0),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def test_merge_and_split(conn: Connection, config: Config) -> None:
    w = ward(config, 5)
    alerts_ = [_alert(conn, w, f"merge-dev-{i}") for i in range(3)]
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO reports (id, ward_code, channel, category, summary, status,"
            " received_at, last_event_at) VALUES ('PA-T-1', %s, 'app', 'traffic',"
            " 'Kẹt xe ngã tư', 'received', %s, %s)",
            (w, T0, T0),
        )
    ids = [core.from_alert(conn, config, a, actor="op", source="web", now=T0) for a in alerts_]
    rep = core.from_report(conn, config, "PA-T-1", actor="op", source="web", now=T0)
    conn.commit()
    r = core.get(conn, rep)
    assert r and (r["category"], r["origin"], r["title"]) == ("traffic", "report", "Kẹt xe ngã tư")
    first = core.get(conn, ids[0])
    assert first and first["category"] == "other" and first["origin"] == "alert"
    # a report or alert belongs to one incident at a time: linking moves it
    assert core.merge(conn, ids[0], [ids[1], ids[2], rep], actor="op", source="web", now=T0) == 3
    conn.commit()
    refs = {(lk["kind"], lk["ref"]) for lk in core.links(conn, ids[0])}
    assert refs == {("alert", str(a)) for a in alerts_} | {("report", "PA-T-1")}
    for sid in (ids[1], ids[2], rep):
        s = core.get(conn, sid)
        assert s and s["status"] == "rejected" and s["merged_into"] == ids[0]
        assert core.links(conn, sid) == []
    with pytest.raises(IncidentError):  # a merged incident is split, not reopened
        core.reopen(conn, config, ids[1], "x", actor="op", source="web")
    conn.rollback()
    # split the report back out: the incident it came from takes it again
    back = core.split(conn, config, ids[0], [("report", "PA-T-1")], actor="op", source="web")
    assert back == rep
    conn.commit()
    r = core.get(conn, rep)
    assert r and r["status"] == "new" and r["merged_into"] is None
    assert [(lk["kind"], lk["ref"]) for lk in core.links(conn, rep)] == [("report", "PA-T-1")]
    # split an alert that did not come by a merge: a new incident
    with pytest.raises(IncidentError):  # not linked here
        core.split(conn, config, ids[0], [("alert", "999999")], actor="op", source="web")
    conn.rollback()
    new_id = core.split(
        conn, config, ids[0], [("alert", str(alerts_[0]))], actor="op", source="web"
    )
    assert new_id not in ids and new_id != rep
    conn.commit()
    n = core.get(conn, new_id)
    assert n and n["origin"] == "split" and n["ward_code"] == w
    with pytest.raises(IncidentError):  # the last link stays
        core.split(conn, config, new_id, [("alert", str(alerts_[0]))], actor="op", source="web")
    conn.rollback()
    assert "merged_from" in actions(conn, ids[0]) and "split" in actions(conn, ids[0])
    assert actions(conn, rep)[-3:] == ["merged", "unmerged", "linked"]


# --------------------------------------------------------------------------- auto-open


def test_critical_flood_alerts_open_one_incident_per_ward(
    fresh_db_url: str, config: Config
) -> None:
    rule = next(r for r in config.alerts.rules if r.id == "water_level_high")
    assert rule.severity == "critical"
    w1, w2 = ward(config, 6), ward(config, 7)
    c = connect(fresh_db_url)
    try:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)

        def reading(dev: str, w: str, value: float, at: dt.datetime) -> None:
            with c.cursor() as cur:
                cur.execute(
                    "INSERT INTO readings (ts, ward_code, device_id, metric, value)"
                    " VALUES (%s, %s, %s, 'water_level_cm', %s)",
                    (at, w, dev, value),
                )
            c.commit()

        for dev, w in (("wl-a", w1), ("wl-b", w1), ("wl-c", w2)):
            reading(dev, w, 62.0, now)
        alerts.evaluate(c, config, now=now, rules=[rule])
        res = alerts.evaluate(c, config, now=now + dt.timedelta(seconds=rule.for_s), rules=[rule])
        assert res.opened == 3
        with c.cursor() as cur:
            cur.execute(
                "SELECT ward_code, category, severity, origin, auto_rule, id FROM incidents"
                " ORDER BY ward_code"
            )
            rows = cur.fetchall()
        assert [r[:5] for r in rows] == [
            (w1, "flooding", "critical", "rule", "water_level_high"),
            (w2, "flooding", "critical", "rule", "water_level_high"),
        ]
        assert len(core.links(c, rows[0][5])) == 2  # both gauges of w1 on one incident
        # evaluated again (and again): nothing new
        for k in range(2, 4):
            reading("wl-a", w1, 70.0 + k, now + dt.timedelta(seconds=k * rule.for_s))
            alerts.evaluate(c, config, now=now + dt.timedelta(seconds=k * rule.for_s), rules=[rule])
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM incidents")
            assert cur.fetchone() == (2,)
        # a warning-level rule not marked in incidents.yaml opens none
        pm = next(r for r in config.alerts.rules if r.id == "pm25_high")
        with c.cursor() as cur:
            cur.execute(
                "INSERT INTO readings (ts, ward_code, device_id, metric, value)"
                " VALUES (%s, %s, 'aq-1', 'pm25', 300)",
                (now, w1),
            )
        c.commit()
        alerts.evaluate(c, config, now=now, rules=[pm])
        alerts.evaluate(c, config, now=now + dt.timedelta(seconds=pm.for_s), rules=[pm])
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM alerts WHERE rule_id = 'pm25_high'")
            assert cur.fetchone() == (1,)
            cur.execute("SELECT count(*) FROM incidents")
            assert cur.fetchone() == (2,)
        # an incident that cannot be opened (a ward the configuration does not know) does
        # not cost the alert: it is stored, the evaluation goes on
        reading("wl-x", "00000", 90.0, now)
        alerts.evaluate(c, config, now=now, rules=[rule])
        res = alerts.evaluate(c, config, now=now + dt.timedelta(seconds=rule.for_s), rules=[rule])
        assert res.opened == 1
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM alerts WHERE subject = 'wl-x'")
            assert cur.fetchone() == (1,)
            cur.execute("SELECT count(*) FROM incidents")
            assert cur.fetchone() == (2,)
        # once w1's incident is resolved, a new flood alert there opens a new one
        iid = rows[0][5]
        core.reject(c, iid, "Đã xử lý", actor="op", source="web")
        c.commit()
        later = now + dt.timedelta(hours=1)
        reading("wl-a", w1, 10.0, later)
        reading("wl-b", w1, 10.0, later)
        alerts.evaluate(c, config, now=later, rules=[rule])  # both resolve (clear 40)
        reading("wl-a", w1, 80.0, later + dt.timedelta(seconds=1))
        alerts.evaluate(c, config, now=later + dt.timedelta(seconds=1), rules=[rule])
        alerts.evaluate(c, config, now=later + dt.timedelta(seconds=1 + rule.for_s), rules=[rule])
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM incidents WHERE ward_code = %s", (w1,))
            assert cur.fetchone() == (2,)
    finally:
        c.close()


def test_queue_filters_order_and_capped_count(conn: Connection, config: Config) -> None:
    from ioc.incidents import queries as iq

    w = ward(config, 8)
    ids = [new(conn, config, w, "waste", title=f"q{i}") for i in range(4)]
    core.acknowledge(conn, ids[0], actor="x", source="web", now=T0)
    conn.commit()
    late = T0 + dt.timedelta(days=3)  # every response clock but the acknowledged one is out
    found, total = iq.queue(conn, now=late, wards=[w], statuses=list(core.OPEN))
    assert total == 4 and [r.id for r in found] == ids  # same due time: by id
    found, total = iq.queue(conn, now=late, wards=[w], sla=["breached"])
    assert {r.id for r in found} == set(ids[1:]) and total == 3
    found, total = iq.queue(conn, now=late, wards=[w], sla=["breached"], limit=1, count_up_to=2)
    assert len(found) == 1 and total == 3  # 2 counted, and "more"
    found, _ = iq.queue(conn, now=late, wards=[ward(config, 9)])
    assert found == []
