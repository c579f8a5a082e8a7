"""Escalation of unacknowledged alerts, and reminders until someone acknowledges.

An alert whose severity escalates gets a row in ``notification_escalations`` in the
transaction that opens it (``outbox.alert_opened``). ``tick`` (run by ``ioc notify`` every
``delivery.housekeeping_s``) moves every due row along:

* the alert is no longer open (acknowledged on the dashboard, by a link, or resolved): the
  escalation stops, and its reminders not yet sent are cancelled;
* ``levels[i].after_min`` minutes after the alert opened, level ``i + 1`` is told (kind
  ``escalation``): ward leader → city duty officer → director by default;
* between levels and after the last one, every ``reminder_every_min`` minutes, everyone told
  so far gets a reminder (kind ``alert_unacknowledged``), at most ``max_reminders``.

Routes of notifications.yaml for the kinds ``escalation`` and ``alert_unacknowledged`` add their
recipients (a duty chat's webhook, say) to the chain's.

Each message's idempotency key includes the level and the reminder's number, so a tick run
twice (two workers, a crash between) sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ioc.config import Config
from ioc.config.notifications import Recipients
from ioc.db import Connection
from ioc.notify.outbox import enqueue, matching_routes


def merge(specs: list[Recipients]) -> Recipients:
    def u(attr: str) -> list[Any]:
        return sorted({x for s in specs for x in getattr(s, attr)})

    return Recipients(
        roles=u("roles"),
        users=u("users"),
        emails=u("emails"),
        webhooks=u("webhooks"),
        mqtt=u("mqtt"),
    )


def tick(
    conn: Connection, cfg: Config, *, now: dt.datetime | None = None, limit: int = 500
) -> dict[str, int]:
    """Move every due escalation along; returns counts of what it did."""
    esc = cfg.notifications.escalation
    now = now or dt.datetime.now(dt.UTC)
    out = {"stopped": 0, "escalated": 0, "reminders": 0}
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT e.ref_kind, e.ref_id, e.ward_code, e.severity, e.started_at, e.level,
                   e.reminders, e.last_sent_at, e.params, a.state
            FROM notification_escalations e
            LEFT JOIN alerts a ON e.ref_kind = 'alert' AND a.id::text = e.ref_id
            WHERE e.stopped_at IS NULL AND e.next_at <= %s
            ORDER BY e.next_at LIMIT %s
            FOR UPDATE OF e SKIP LOCKED
            """,
            (now, limit),
        )
        rows = cur.fetchall()
        for ref_kind, ref_id, ward, sev, started, level, reminders, last, params, state in rows:
            if state != "open" or not esc.levels:
                stop(cur, ref_kind, ref_id, state or "gone", now)
                out["stopped"] += 1
                continue
            elapsed_min = (now - started).total_seconds() / 60
            due = sum(1 for lv in esc.levels if lv.after_min <= elapsed_min + 1e-9)
            p = dict(params or {})

            def routed(kind: str, ward: Any = ward, sev: Any = sev, p: Any = p) -> list[Recipients]:
                """Routes of notifications.yaml for this kind too (besides the chain)."""
                return matching_routes(
                    cfg.notifications, kind, severity=sev, ward=ward, category=p.get("category")
                )

            common: dict[str, Any] = {
                "ward_code": ward,
                "severity": sev,
                "category": p.get("category"),
                "ref_kind": ref_kind,
                "ref_id": ref_id,
                "cfg": cfg,
                "now": now,
            }
            if due > level:
                for lv in range(level + 1, due + 1):
                    spec = esc.levels[lv - 1]
                    enqueue(
                        cur,
                        "escalation",
                        recipients=[spec.to, *routed("escalation")],
                        level=lv,
                        params={**p, "level_name": spec.name, "minutes": spec.after_min},
                        **common,
                    )
                    out["escalated"] += 1
                level, last = due, now
            elif level > 0 and now >= last + dt.timedelta(minutes=esc.reminder_every_min):
                if esc.max_reminders is not None and reminders >= esc.max_reminders:
                    stop(cur, ref_kind, ref_id, "max reminders", now)
                    out["stopped"] += 1
                    continue
                reminders += 1
                told = merge([lv.to for lv in esc.levels[:level]])
                enqueue(
                    cur,
                    "alert_unacknowledged",
                    recipients=[told, *routed("alert_unacknowledged")],
                    level=level,
                    seq=reminders,
                    params={**p, "reminder": reminders},
                    **common,
                )
                out["reminders"] += 1
                last = now
            nxt = last + dt.timedelta(minutes=esc.reminder_every_min) if level > 0 else None
            if level < len(esc.levels):
                lv_at = started + dt.timedelta(minutes=esc.levels[level].after_min)
                nxt = lv_at if nxt is None else min(nxt, lv_at)
            assert nxt is not None
            cur.execute(
                "UPDATE notification_escalations SET level = %s, reminders = %s,"
                " last_sent_at = %s, next_at = %s WHERE ref_kind = %s AND ref_id = %s",
                (level, reminders, last, nxt, ref_kind, ref_id),
            )
    conn.commit()
    return out


def stop(cur: Any, ref_kind: str, ref_id: str, reason: str, now: dt.datetime) -> None:
    """End an alert's escalation and cancel its reminders and escalations not yet sent (the
    tick, and the acknowledge link at once)."""
    cur.execute(
        "UPDATE notification_escalations SET stopped_at = %s, stop_reason = %s"
        " WHERE ref_kind = %s AND ref_id = %s",
        (now, reason, ref_kind, ref_id),
    )
    cur.execute(
        "UPDATE notifications SET status = 'cancelled', last_error = %s"
        " WHERE ref_kind = %s AND ref_id = %s AND kind IN ('alert_unacknowledged', 'escalation')"
        " AND status IN ('pending', 'digest')",
        (f"stopped: {reason}", ref_kind, ref_id),
    )


def active(conn: Connection) -> list[dict[str, Any]]:
    """Escalations not stopped (for pages and tests)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ref_kind, ref_id, level, reminders, next_at FROM notification_escalations"
            " WHERE stopped_at IS NULL ORDER BY started_at"
        )
        rows = [
            dict(zip(("ref_kind", "ref_id", "level", "reminders", "next_at"), r, strict=True))
            for r in cur.fetchall()
        ]
    conn.commit()
    return rows
