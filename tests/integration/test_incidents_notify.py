"""Incident notifications go to the outbox (ioc.notify) in the same transaction as the change,
to the people who may see the ward, once per event (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest

from ioc.config import Config
from ioc.db import connect
from ioc.incidents import core, sla
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
