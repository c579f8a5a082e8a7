"""Incidents in every state and SLA state, for the browser tests (through ioc.incidents.core,
with opening times in the past so that the clocks have run)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ioc.config import Config
from ioc.db import Connection
from ioc.incidents import core, sla


def seed_incidents(conn: Connection, cfg: Config, own: str, other: str) -> dict[str, Any]:
    """Incidents in ``own`` (the ward leader's ward) and ``other``; returns their ids."""
    now = dt.datetime.now(dt.UTC)
    ids: dict[str, int] = {}

    def make(key: str, ward: str, category: str, severity: str, title: str, ago_h: float) -> int:
        iid = core.create(
            conn,
            cfg,
            ward_code=ward,
            category=category,
            severity=severity,
            title=title,
            actor="operator",
            source="web",
            now=now - dt.timedelta(hours=ago_h),
        )
        ids[key] = iid
        return iid

    who: dict[str, Any] = {"actor": "operator", "source": "web"}
    # a critical flood (round-the-clock clock: 0.5 h to respond, 4 h to resolve)
    flood = make("flood_ok", own, "flooding", "critical", "Ngập sâu đường Núi Thành", 0.1)
    core.assign(conn, cfg, flood, own, now=now - dt.timedelta(minutes=5), **who)
    core.start(conn, flood, now=now - dt.timedelta(minutes=4), **who)
    core.tick_step(conn, cfg, flood, "verify", photo_ref="IMG_2041.jpg", now=now, **who)
    # 3.2 h of 4: past the 75 % warning
    warn = make("flood_warning", own, "flooding", "critical", "Ngập cục bộ Hoàng Diệu", 3.2)
    core.assign(conn, cfg, warn, own, now=now - dt.timedelta(hours=3.1), **who)
    core.acknowledge(conn, warn, now=now - dt.timedelta(hours=3.1), **who)
    # 6 h: past due, never acknowledged, escalated
    late = make("flood_breached", own, "flooding", "critical", "Ngập nặng Ông Ích Khiêm", 6)
    # traffic, working clock, opened two weeks ago: breached
    make("traffic_breached", own, "traffic", "warning", "Đèn tín hiệu hỏng", 24 * 14)
    # done on time, and done late
    met = make("lighting_met", own, "lighting", "warning", "Đèn đường tắt", 2)
    core.assign(conn, cfg, met, "do_thi", now=now - dt.timedelta(hours=1.9), **who)
    core.start(conn, met, now=now - dt.timedelta(hours=1.8), **who)
    from ioc.incidents import rules

    for step in rules.sop_steps(cfg, "lighting"):
        core.tick_step(
            conn,
            cfg,
            met,
            step.id,
            note="xong",
            photo_ref="IMG_1.jpg",
            now=now - dt.timedelta(hours=1),
            **who,
        )
    core.resolve(conn, cfg, met, "Đã thay bóng", now=now - dt.timedelta(hours=1), **who)
    core.close(conn, met, now=now - dt.timedelta(minutes=30), **who)
    # the other ward's: a ward leader of `own` must not see or touch these
    other_id = make("other", other, "waste", "warning", "Rác tồn đọng chợ Cồn", 1)
    make("other_breached", other, "flooding", "critical", "Ngập phường bên", 8)
    # alerts linked to incidents of each ward
    with conn.cursor() as cur:
        for key, ward, subject in (
            ("alert_own", own, "wl-own-1"),
            ("alert_other", other, "wl-oth-1"),
        ):
            cur.execute(
                "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title,"
                " opened_at) VALUES ('water_level_high', %s, %s, 'critical', 'open', %s, %s)"
                " RETURNING id",
                (
                    subject,
                    ward,
                    f"Mực nước vượt ngưỡng ngập: {subject}",
                    now - dt.timedelta(hours=1),
                ),
            )
            row = cur.fetchone()
            assert row is not None
            ids[key] = int(row[0])
    core.link(conn, late, "alert", str(ids["alert_own"]), now=now, **who)
    core.link(conn, other_id, "alert", str(ids["alert_other"]), now=now, **who)
    conn.commit()
    sla.sweep(conn, cfg, now=now)  # warnings, breaches, escalations (commits)
    return ids
