"""Incident notifications go to the outbox (ioc.notify) in the same transaction as the change,
to the people who may see the ward, once per event (real PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from notify_support import MailSink, load, rows
from notify_support import add_user as add_plain_user

from ioc.config import Config
from ioc.config.incidents import IncidentsFile
from ioc.db import connect
from ioc.incidents import core, sla
from ioc.notify import links
from ioc.notify.worker import Worker
from ioc.settings import Settings
from ioc.users import add_user
from ioc.workdays import LOCAL_TZ

T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=LOCAL_TZ)  # a Wednesday


def test_assignment_breach_and_escalation_notify_once(
    fresh_db_url: str, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:2525")  # e-mail is configured
    w, other = sorted(config.ward_codes)[:2]
    conn = connect(fresh_db_url)
    try:
        for name, role, wards in (
            ("op1", "operator", []),
            ("boss", "admin", []),
            ("lead_w", "ward_leader", [w]),
            ("lead_other", "ward_leader", [other]),
        ):
            add_user(conn, name, "lantern-orbit-7719", role, wards)
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE users SET email = %s WHERE name = %s", (f"{name}@example.vn", name)
                )
        conn.commit()
        who = {"actor": "op1", "source": "web"}
        iid = core.create(
            conn, config, ward_code=w, category="traffic", title="Đèn tín hiệu hỏng", now=T0, **who
        )
        conn.commit()
        core.assign(conn, config, iid, w, now=T0 + dt.timedelta(minutes=1), **who)
        conn.rollback()  # an assignment rolled back leaves no message behind

        def rows(kind: str) -> list[tuple[str, int]]:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT user_name, level FROM notifications WHERE kind = %s AND ref_kind ="
                    " 'incident' AND ref_id = %s ORDER BY user_name",
                    (kind, str(iid)),
                )
                out = [(str(r[0]), int(r[1])) for r in cur.fetchall()]
            conn.rollback()
            return out

        assert rows("incident_assigned") == []
        core.assign(conn, config, iid, w, now=T0 + dt.timedelta(minutes=2), **who)
        conn.commit()
        assigned = rows("incident_assigned")
        names = {n for n, _ in assigned}
        assert "lead_w" in names and "op1" in names and "lead_other" not in names
        # the response clock (1 working hour) runs out: breach + escalation step 1
        for m in (46, 61, 62, 90):
            sla.sweep(conn, config, now=T0 + dt.timedelta(minutes=m))
        assert {n for n, _ in rows("sla_warning")} == names
        assert {n for n, _ in rows("sla_breached")} == names
        esc = rows("escalation")
        assert esc and {lvl for _, lvl in esc} == {1}
        assert {n for n, _ in esc} == {"op1"}  # the chain's notify_roles: operator
        # 2 working hours later: the director (admin), once
        for h in (14, 14.5, 16):
            sla.sweep(
                conn,
                config,
                now=dt.datetime(2026, 12, 2, 0, tzinfo=LOCAL_TZ) + dt.timedelta(hours=h),
            )
        esc = rows("escalation")
        assert ("boss", 2) in esc and len(esc) == 2
        with conn.cursor() as cur:
            cur.execute(
                "SELECT subject FROM notifications WHERE ref_id = %s AND kind = 'escalation'",
                (str(iid),),
            )
            subjects = [r[0] for r in cur.fetchall()]
        assert all(str(iid) in s or "Đèn tín hiệu hỏng" in s for s in subjects), subjects
    finally:
        conn.close()


# --------------------------------------------------------------------------- reminders

KEY = "reminder-test-key-" + "x" * 32
# the breach goes to the ward's leader only (notifications.yaml), so a reminder reaching an
# operator or an admin can only come from the escalation chain's notify_roles
BREACH_TO_WARD = {
    "routes": [{"name": "breach", "events": ["sla_breached"], "to": {"roles": ["ward_leader"]}}],
    "delivery": {"poll_s": 0.2, "backoff_s": 0.2, "backoff_max_s": 1},
    "rate_limit": {"per_hour": 1000},
}


def reminder_config(tmp_path: Path, **incidents: Any) -> Config:
    """Duty officer (operators) 1 hour after the breach, director (admins) 2 hours after; a
    reminder every 30 min; ``incidents`` overrides keys of incidents.yaml."""
    cfg = load(tmp_path, BREACH_TO_WARD)
    assert cfg.incidents is not None
    chain = [
        {
            "to": "city_duty_officer",
            "after_hours": 1,
            "label_vi": "Trực ban",
            "label_en": "Duty officer",
            "notify_roles": ["operator"],
        },
        {
            "to": "director",
            "after_hours": 2,
            "label_vi": "Giám đốc",
            "label_en": "Director",
            "notify_roles": ["admin"],
        },
    ]
    data = {**cfg.incidents.model_dump(), "escalation": chain, "reminder_every_min": 30}
    return dataclasses.replace(cfg, incidents=IncidentsFile.model_validate({**data, **incidents}))


def reminder_users(conn: Any, ward: str, other: str) -> None:
    for name, role, wards in (
        ("lead_w", "ward_leader", [ward]),
        ("lead_other", "ward_leader", [other]),
        ("op1", "operator", []),
        ("boss", "admin", []),
    ):
        add_plain_user(conn, name, role, wards=wards, email_addr=f"{name}@example.vn")


def reminders(conn: Any, iid: int, status: str | None = None) -> list[tuple[str, int]]:
    """(user, reminder number) of the incident's reminders, in order."""
    got = rows(
        conn,
        "SELECT user_name, level FROM notifications WHERE kind = 'sla_breached'"
        " AND ref_kind = 'incident' AND ref_id = %s AND payload ? 'reminder'"
        " AND (%s::text IS NULL OR status = %s) ORDER BY level, user_name, id",
        (str(iid), status, status),
    )
    return [(str(u), int(n)) for u, n in got]


def test_reminders_repeat_to_everyone_told_until_the_link_acknowledges(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail = MailSink().start()
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    conn = connect(fresh_db_url)
    try:
        cfg = reminder_config(tmp_path)
        w, other = "20195", "20197"
        reminder_users(conn, w, other)
        # flooding, critical: respond within 0.5 h, round the clock
        iid = core.create(
            conn,
            cfg,
            ward_code=w,
            category="flooding",
            severity="critical",
            title="Ngập sâu đường Nguyễn Tất Thành",
            actor="op1",
            source="web",
            now=T0,
        )
        conn.commit()
        due = T0 + dt.timedelta(minutes=30)
        assert core.get(conn, iid)["response_due_at"] == due  # type: ignore[index]

        def sweep(minutes_past_due: float) -> sla.SweepResult:
            return sla.sweep(conn, cfg, now=due + dt.timedelta(minutes=minutes_past_due))

        assert sweep(1).breaches == 1  # the breach itself, no reminder yet
        assert sweep(29).reminders == 0
        assert reminders(conn, iid) == []
        # 30 min past due: reminder 1, to the ward's leader (the breach's route) only
        assert sweep(30).reminded == [(iid, 1)]
        assert reminders(conn, iid) == [("lead_w", 1)]
        assert sweep(30).reminders == 0 and sweep(45).reminders == 0  # nothing twice
        assert reminders(conn, iid) == [("lead_w", 1)]
        # 60 min past due: the duty officer's step (after 1 h) is reached (its own message to
        # the operators), and reminder 2 goes to the ward's leader
        res = sweep(60)
        assert res.escalated == [(iid, 1)] and res.reminded == [(iid, 2)]
        assert reminders(conn, iid) == [("lead_w", 1), ("lead_w", 2)]
        assert sweep(60).reminders == 0 and sweep(75).reminders == 0
        # delivered by e-mail (aiosmtpd), each with the incident's acknowledge link
        worker = Worker(
            cfg,
            fresh_db_url,
            Settings(
                database_url=fresh_db_url,
                smtp_url=mail.url,
                var_dir=tmp_path / "var",
                secret_key=KEY,
                public_url="http://ioc.example:8050",
            ),
        )
        try:
            worker.drain()
        finally:
            worker.close()
        subjects = [str(m["Subject"]) for m in mail.to("lead_w@example.vn")]
        assert any(
            f"Nhắc lại lần 2: sự vụ chưa được tiếp nhận, quá hạn 60 phút – #{iid}" in s
            for s in subjects
        ), subjects
        second = next(m for m in mail.to("lead_w@example.vn") if "lần 2" in str(m["Subject"]))
        text = second.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        found = re.search(r"http://ioc\.example:8050/notify/ack/(\S+)", text)
        assert found, text
        assert not mail.to("lead_other@example.vn") and not mail.to("boss@example.vn")
        # 90 min past due: reminder 3 to everyone told so far, the step's operators too;
        # queued, not yet sent ...
        assert sweep(90).reminded == [(iid, 3)]
        assert reminders(conn, iid, "pending") == [("lead_w", 3), ("op1", 3)]
        # ... when the ward's leader acknowledges with the link of reminder 2: it is cancelled
        claim = links.read_token(KEY, found.group(1), max_age_s=3600)
        assert links.use(conn, claim) == "acknowledged"
        inc = core.get(conn, iid)
        assert inc is not None and inc["acknowledged_by"] == "lead_w"
        conn.commit()
        assert reminders(conn, iid, "pending") == []
        assert reminders(conn, iid, "cancelled") == [("lead_w", 3), ("op1", 3)]
        why = rows(
            conn,
            "SELECT DISTINCT last_error FROM notifications WHERE ref_id = %s AND status ="
            " 'cancelled'",
            (str(iid),),
        )
        assert why == [("stopped: incident acknowledged",)]
        # and nothing more, ever
        for m in (120, 150, 600):
            assert sweep(m).reminders == 0
        assert len(reminders(conn, iid)) == 4
    finally:
        conn.close()
        mail.stop()


def test_reminders_stop_at_acknowledgement_respect_max_and_restart_after_reopening(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:2525")  # e-mail is configured
    conn = connect(fresh_db_url)
    try:
        cfg = reminder_config(tmp_path, max_reminders=2)
        w, other = "20195", "20197"
        reminder_users(conn, w, other)
        who = {"actor": "op1", "source": "web"}
        iid = core.create(
            conn,
            cfg,
            ward_code=w,
            category="flooding",
            severity="critical",
            title="Ngập",
            now=T0,
            **who,
        )
        conn.commit()

        def sweep(at: dt.datetime) -> sla.SweepResult:
            return sla.sweep(conn, cfg, now=at)

        due = T0 + dt.timedelta(minutes=30)
        # reminders 1 and 2, then max_reminders (2) holds: nothing at 90 min past due, nor to
        # the operators (duty officer at 60 min) or the admins (director at 120) reached since
        for m in (30, 60, 90, 120, 180):
            sweep(due + dt.timedelta(minutes=m, seconds=1))
        inc = core.get(conn, iid)
        assert inc is not None and inc["escalation_level"] == 2
        assert reminders(conn, iid) == [("lead_w", 1), ("lead_w", 2)]
        # acknowledged on the dashboard (core.acknowledge): the pending ones are cancelled
        core.acknowledge(conn, iid, actor="op1", source="web", now=due + dt.timedelta(hours=3))
        conn.commit()
        assert reminders(conn, iid, "pending") == []
        assert reminders(conn, iid, "cancelled") == [("lead_w", 1), ("lead_w", 2)]
        # rejected, then reopened 5 hours later: a new clock, reminders again with new keys
        core.reject(conn, iid, "nhầm", now=T0 + dt.timedelta(hours=4), **who)
        t1 = T0 + dt.timedelta(hours=5)
        core.reopen(conn, cfg, iid, "vẫn còn ngập", now=t1, **who)
        conn.commit()
        due1 = t1 + dt.timedelta(minutes=30)
        res = sweep(due1 + dt.timedelta(minutes=30))
        assert res.reminded == [(iid, 1)]
        # the escalation started again too: the operators are not told before the step
        assert reminders(conn, iid, "pending") == [("lead_w", 1)]
        keys = rows(
            conn,
            "SELECT count(DISTINCT idem_key) FROM notifications WHERE ref_id = %s"
            " AND payload ? 'reminder' AND level = 1 AND user_name = 'lead_w'",
            (str(iid),),
        )
        assert keys == [(2,)]
        pending = [
            r[0]
            for r in rows(
                conn,
                "SELECT id FROM notifications WHERE ref_id = %s AND payload ? 'reminder'"
                " AND status = 'pending'",
                (str(iid),),
            )
        ]
        assert len(pending) == 1
        # the delivery worker checks again when it claims one: acknowledged meanwhile without
        # this module (a bare UPDATE), the reminder is cancelled, not sent
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE incidents SET acknowledged_at = %s, acknowledged_by = 'lead_w'"
                " WHERE id = %s",
                (due1 + dt.timedelta(minutes=40), iid),
            )
        conn.commit()
        worker = Worker(
            cfg,
            fresh_db_url,
            Settings(
                database_url=fresh_db_url,
                smtp_url=None,
                var_dir=tmp_path / "var",
                secret_key=KEY,
                public_url="http://ioc.example:8050",
            ),
        )
        try:
            worker.drain()
        finally:
            worker.close()
        got = rows(
            conn, "SELECT status, last_error FROM notifications WHERE id = ANY(%s)", (pending,)
        )
        assert got == [("cancelled", "stopped: incident acknowledged")]
    finally:
        conn.close()


def test_reminders_count_the_minutes_of_the_incidents_clock(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A working-hours clock: no reminders pile up overnight."""
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:2525")
    conn = connect(fresh_db_url)
    try:
        cfg = reminder_config(tmp_path)
        reminder_users(conn, "20195", "20197")
        # traffic: respond within 1 working hour; opened Wednesday 15:30, due 16:30
        opened = dt.datetime(2026, 12, 2, 15, 30, tzinfo=LOCAL_TZ)
        iid = core.create(
            conn,
            cfg,
            ward_code="20195",
            category="traffic",
            title="Kẹt xe",
            actor="op1",
            source="web",
            now=opened,
        )
        conn.commit()
        inc = core.get(conn, iid)
        assert inc and inc["response_due_at"] == opened + dt.timedelta(hours=1)
        numbers = []
        for at in (
            dt.datetime(2026, 12, 2, 16, 59, tzinfo=LOCAL_TZ),  # 29 min past due
            dt.datetime(2026, 12, 2, 22, 0, tzinfo=LOCAL_TZ),  # office closed at 17:00: 30
            dt.datetime(2026, 12, 3, 7, 59, tzinfo=LOCAL_TZ),  # Thursday 7:30: 59
            dt.datetime(2026, 12, 3, 8, 0, tzinfo=LOCAL_TZ),  # 60
        ):
            numbers.append(sla.reminder_number(cfg, inc, at))
            sla.sweep(conn, cfg, now=at)
        assert numbers == [0, 1, 1, 2]
        assert [n for _, n in reminders(conn, iid)] == [1, 2]
    finally:
        conn.close()


def test_an_escalation_held_by_quiet_hours_is_cancelled_by_an_acknowledgement(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warning incident's escalation at night waits for the end of the quiet hours; if the
    incident is acknowledged on the dashboard meanwhile, the held message never goes (as an
    alert's escalation and the acknowledge link already behave)."""
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:2525")  # e-mail rows are written
    base = reminder_config(tmp_path)
    quiet = base.notifications.quiet_hours.model_copy(
        update={"enabled": True, "start": "00:00", "end": "23:59"}
    )
    cfg = dataclasses.replace(
        base, notifications=base.notifications.model_copy(update={"quiet_hours": quiet})
    )
    ward, other = sorted(cfg.ward_codes)[:2]
    conn = connect(fresh_db_url)
    try:
        reminder_users(conn, ward, other)
        iid = core.create(
            conn, cfg, ward_code=ward, category="traffic", title="Cây đổ", actor="op1",
            source="web", severity="warning", now=T0,
        )  # fmt: skip
        conn.commit()
        # response due 10:00 (1 working hour); the duty officer's step 1 hour after the breach
        sla.sweep(conn, cfg, now=T0 + dt.timedelta(hours=2, minutes=1))
        held = rows(
            conn,
            "SELECT user_name, status, next_attempt_at > %s FROM notifications"
            " WHERE kind = 'escalation' AND ref_id = %s",
            (T0 + dt.timedelta(hours=2, minutes=1), str(iid)),
        )
        assert held == [("op1", "pending", True)]  # held until the quiet hours end
        core.acknowledge(
            conn, iid, actor="lead_w", source="web", now=T0 + dt.timedelta(hours=2, minutes=5)
        )
        conn.commit()
        assert rows(
            conn,
            "SELECT status, last_error FROM notifications WHERE kind = 'escalation'"
            " AND ref_id = %s",
            (str(iid),),
        ) == [("cancelled", "stopped: incident acknowledged")]
    finally:
        conn.close()


def test_pruning_keeps_the_last_reminder_of_an_open_incident(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With max_reminders set, an incident unacknowledged past delivery.keep_days is not
    reminded again once the old messages are pruned; a closed (rejected) incident's go."""
    from ioc.notify import outbox

    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:2525")
    conn = connect(fresh_db_url)
    try:
        cfg = reminder_config(tmp_path, max_reminders=2)
        w, other = "20195", "20197"
        reminder_users(conn, w, other)
        who = {"actor": "op1", "source": "web"}
        ids = [
            core.create(
                conn,
                cfg,
                ward_code=w,
                category="flooding",
                severity="critical",
                title=f"Ngập {k}",
                now=T0,
                **who,
            )
            for k in (1, 2)
        ]
        conn.commit()
        due = T0 + dt.timedelta(minutes=30)
        for m in (30, 60, 90, 180):
            sla.sweep(conn, cfg, now=due + dt.timedelta(minutes=m, seconds=1))
        assert reminders(conn, ids[0]) == reminders(conn, ids[1]) == [("lead_w", 1), ("lead_w", 2)]
        core.reject(conn, ids[1], "nhầm", now=due + dt.timedelta(hours=4), **who)
        with conn.cursor() as cur:  # delivered long ago
            cur.execute("UPDATE notifications SET status = 'sent' WHERE status = 'pending'")
        conn.commit()
        later = T0 + dt.timedelta(days=cfg.notifications.delivery.keep_days + 5)
        assert outbox.prune(conn, cfg, now=later) > 0
        # the open incident keeps its last reminder, the rejected one keeps none
        assert reminders(conn, ids[0]) == [("lead_w", 2)]
        assert reminders(conn, ids[1]) == []
        res = sla.sweep(conn, cfg, now=later)
        assert res.reminded == []
        assert reminders(conn, ids[0]) == [("lead_w", 2)]
        # a second prune as late keeps it still
        outbox.prune(conn, cfg, now=later + dt.timedelta(days=60))
        sla.sweep(conn, cfg, now=later + dt.timedelta(days=60))
        assert reminders(conn, ids[0]) == [("lead_w", 2)]
    finally:
        conn.close()
