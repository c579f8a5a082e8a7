"""SLA clocks over time: warnings, breaches and escalation (the scheduler's ``incidents`` job).

``sweep(conn, cfg, now=...)`` is idempotent and runs in one transaction:

* ``sla_warning`` once per clock when ``warn_share`` of it is used (response: while nobody
  acknowledged; resolution: while not resolved);
* ``sla_breached`` once per clock when it runs out;
* escalation: while a clock is breached (response: not acknowledged by its due time;
  resolution: not resolved by its due time), the incident goes one level up the chain of
  incidents.yaml ``escalation`` when that step's ``after_hours`` (on the incident's clock) have
  run since the breach — each step once — unless someone acknowledged the incident after the
  breach and after the last step (acknowledging stops the chain; a later breach re-arms it);
* reminders: while an open incident is not acknowledged past its response due time, every
  ``reminder_every_min`` minutes of its clock (at most ``max_reminders``), everyone told so
  far gets one (kind ``sla_breached`` with ``reminder: n``): the recipients of the breach
  (routes of notifications.yaml) and the ``notify_roles`` of the escalation steps reached
  before the reminder was due. Stateless: reminder n is due ``n * reminder_every_min`` clock
  minutes after the response due time, and its idempotency key holds n and the clock cycle,
  so a sweep run twice sends nothing twice. Acknowledging cancels those not yet sent
  (core.cancel_reminders); the delivery worker checks again when it claims one.

Each but the reminders writes an ``incident_events`` row (source ``scheduler``); each writes a
notification (outbox). Reopening an incident starts its clocks, its escalation and its
reminders again (see core.reopen).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from ioc.config import Config
from ioc.db import Connection
from ioc.incidents import core, rules

ACTOR = "system"


@dataclass
class SweepResult:
    warnings: int = 0
    breaches: int = 0
    escalations: int = 0
    reminders: int = 0  # reminders queued (one per incident and reminder number)
    escalated: list[tuple[int, int]] = field(default_factory=list)  # (incident, level)
    reminded: list[tuple[int, int]] = field(default_factory=list)  # (incident, reminder n)

    def as_dict(self) -> dict[str, int]:
        return {
            "warnings": self.warnings,
            "breaches": self.breaches,
            "escalations": self.escalations,
            "reminders": self.reminders,
        }


# (flag column, due column, condition while the clock runs, clock name, event)
_MARKS = (
    (
        "response_warned_at",
        "response_warn_at",
        "response_due_at",
        "acknowledged_at IS NULL",
        "response",
        "sla_warning",
    ),
    (
        "response_breached_at",
        "response_due_at",
        None,
        "acknowledged_at IS NULL",
        "response",
        "sla_breached",
    ),
    ("warned_at", "warn_at", "due_at", "TRUE", "resolution", "sla_warning"),
    ("breached_at", "due_at", None, "TRUE", "resolution", "sla_breached"),
)


def sweep(
    conn: Connection, cfg: Config, *, now: dt.datetime | None = None, commit: bool = True
) -> SweepResult:
    """One pass at ``now``; ``commit=False``: in the caller's transaction (a history being
    written in one transaction, sensors/incident_ops.py), neither committed nor rolled back."""
    now = now or dt.datetime.now(dt.UTC)
    res = SweepResult()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('ioc.incidents.sweep'))")
        for flag, at, before, running, clock, kind in _MARKS:
            # a warning is not sent once the clock has run out (the breach says more); a
            # clock runs out after its due time (done at the due time is on time)
            not_past = f" AND {before} >= %(now)s" if before else ""
            reached = f"{at} <= %(now)s" if before else f"{at} < %(now)s"
            with conn.cursor() as cur:
                cur.execute(
                    f"UPDATE incidents SET {flag} = %(now)s, updated_at = %(now)s"
                    f" WHERE status IN ('new', 'assigned', 'in_progress') AND {flag} IS NULL"
                    f" AND {reached} AND {running}{not_past}"
                    f" RETURNING {core.COLUMNS}",
                    {"now": now},
                )
                rows = [dict(zip(core._NAMES, r, strict=True)) for r in cur.fetchall()]
            for inc in rows:
                due = inc["response_due_at" if clock == "response" else "due_at"]
                core.event(
                    conn,
                    inc["id"],
                    kind,
                    actor=ACTOR,
                    source="scheduler",
                    now=now,
                    clock=clock,
                    due_at=due.isoformat(),
                )
                core.notify(
                    conn,
                    cfg,
                    kind,
                    inc,
                    seq=core.clock_seq(inc, 0 if clock == "response" else 1),
                    now=now,
                    clock=clock,
                    due_at=due.isoformat(),
                )
                if kind == "sla_warning":
                    res.warnings += 1
                else:
                    res.breaches += 1
        _escalate(conn, cfg, now, res)
        _remind(conn, cfg, now, res)  # after the escalation: the steps due are reached
        if commit:
            conn.commit()
    except BaseException:
        if commit:
            conn.rollback()
        raise
    return res


def breach_time(inc: dict[str, Any], now: dt.datetime) -> dt.datetime | None:
    """When the earliest clock that is breached now ran out, or None if none is."""
    times = []
    if inc["acknowledged_at"] is None and inc["response_due_at"] < now:
        times.append(inc["response_due_at"])
    if inc["resolved_at"] is None and inc["due_at"] < now:
        times.append(inc["due_at"])
    return min(times) if times else None


def next_step_due(cfg: Config, inc: dict[str, Any], now: dt.datetime) -> dt.datetime | None:
    """When the incident's next escalation step fires (None: no step pending)."""
    chain = rules.settings(cfg).escalation
    level = int(inc["escalation_level"])
    if level >= len(chain) or inc["status"] not in core.OPEN:
        return None
    b = breach_time(inc, now)
    if b is None:
        return None
    since = max(b, inc["escalated_at"]) if inc["escalated_at"] is not None else b
    acks = [x for x in (inc["last_ack_at"], inc["acknowledged_at"]) if x is not None]
    if acks and max(acks) >= since:
        return None  # acknowledged after the breach and the last step: stopped
    rule = rules.settings(cfg).sla_for(inc["category"], inc["severity"])
    return rules.clock_of(cfg, rule).add_hours(b, chain[level].after_hours)


def _escalate(conn: Connection, cfg: Config, now: dt.datetime, res: SweepResult) -> None:
    chain = rules.settings(cfg).escalation
    if not chain:
        return
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {core.COLUMNS} FROM incidents"
            " WHERE status IN ('new', 'assigned', 'in_progress') AND escalation_level < %(n)s"
            " AND ((acknowledged_at IS NULL AND response_due_at < %(now)s)"
            "      OR due_at < %(now)s)"
            " ORDER BY id FOR UPDATE",
            {"n": len(chain), "now": now},
        )
        rows = [dict(zip(core._NAMES, r, strict=True)) for r in cur.fetchall()]
    for inc in rows:
        due = next_step_due(cfg, inc, now)
        if due is None or due > now:
            continue
        level = int(inc["escalation_level"]) + 1
        step = chain[level - 1]
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE incidents SET escalation_level = %s, escalated_at = %s, updated_at = %s"
                " WHERE id = %s AND escalation_level = %s",
                (level, now, now, inc["id"], level - 1),
            )
            if cur.rowcount != 1:
                continue
        core.event(
            conn,
            inc["id"],
            "escalated",
            actor=ACTOR,
            source="scheduler",
            now=now,
            level=level,
            to=step.to,
        )
        core.notify(
            conn,
            cfg,
            "escalation",
            inc,
            level=level,
            seq=core.clock_seq(inc),
            now=now,
            roles=step.notify_roles,
            escalated_to=step.to,
            level_name=step.label_vi,
            due_at=inc["due_at"].isoformat(),
        )
        res.escalations += 1
        res.escalated.append((int(inc["id"]), level))


def reminder_number(cfg: Config, inc: dict[str, Any], now: dt.datetime) -> int:
    """The number of the reminder due at ``now`` for an open incident nobody acknowledged
    (0: none yet): whole ``reminder_every_min`` periods of its clock since its response due
    time, at most ``max_reminders``."""
    s = rules.settings(cfg)
    if inc["status"] not in core.OPEN or inc["acknowledged_at"] is not None:
        return 0
    if inc["response_due_at"] >= now:
        return 0
    rule = s.sla_for(inc["category"], inc["severity"])
    minutes = rules.clock_of(cfg, rule).hours_between(inc["response_due_at"], now) * 60
    n = math.floor(minutes / s.reminder_every_min + 1e-9)
    return max(0, n if s.max_reminders is None else min(n, s.max_reminders))


def reminder_roles(cfg: Config, inc: dict[str, Any], n: int) -> list[str]:
    """The ``notify_roles`` of the escalation steps reminder ``n`` goes to: those the incident
    has reached that were due before the reminder (a step's ``after_hours`` since the breach
    less than n periods): a step reached later was told by its own message, and its roles get
    the reminders after it (and a sweep run again after a step adds nobody to reminder n)."""
    s = rules.settings(cfg)
    level = min(int(inc["escalation_level"]), len(s.escalation))
    reached = [
        step
        for step in s.escalation[:level]
        if step.after_hours * 60 < n * s.reminder_every_min - 1e-9
    ]
    return sorted({r for step in reached for r in step.notify_roles})


def _remind(conn: Connection, cfg: Config, now: dt.datetime, res: SweepResult) -> None:
    if core._HISTORY.get():
        return  # a history being written: no message would go anyway
    s = rules.settings(cfg)
    if s.max_reminders == 0:
        return
    with conn.cursor() as cur:
        # FOR UPDATE: an acknowledgement committed meanwhile is seen (the row is re-checked),
        # and one made while this runs waits, then cancels what this queued
        cur.execute(
            f"SELECT {core.COLUMNS} FROM incidents"
            " WHERE status IN ('new', 'assigned', 'in_progress') AND acknowledged_at IS NULL"
            " AND response_due_at < %(now)s ORDER BY id FOR UPDATE",
            {"now": now},
        )
        rows = [dict(zip(core._NAMES, r, strict=True)) for r in cur.fetchall()]
    due = [(inc, n) for inc in rows if (n := reminder_number(cfg, inc, now)) >= 1]
    sent = _reminders_queued(conn, [inc["id"] for inc, _ in due])
    for inc, n in due:
        if (str(inc["id"]), n, inc["clock_start"].isoformat()) in sent:
            continue  # queued by an earlier sweep: nothing to render again
        queued = core.notify(
            conn,
            cfg,
            "sla_breached",
            inc,
            # level = the reminder's number (the breach itself is level 0) and offset 2 of the
            # clock cycle (the warnings and breaches use 0 and 1): a key of its own per
            # reminder and per cycle (a reopened incident is reminded again)
            level=n,
            seq=core.clock_seq(inc, 2),
            roles=reminder_roles(cfg, inc, n),
            routes=True,
            now=now,
            reminder=n,
            minutes=n * s.reminder_every_min,  # of the incident's clock, past due
            clock="response",
            due_at=inc["response_due_at"].isoformat(),
            clock_start=inc["clock_start"].isoformat(),
            escalation_level=int(inc["escalation_level"]),
        )
        if queued:
            res.reminders += 1
            res.reminded.append((int(inc["id"]), n))


def _reminders_queued(conn: Connection, ids: list[int]) -> set[tuple[str, int, str]]:
    """(incident, reminder number, clock start) of the reminders already in the outbox, so a
    sweep renders only new ones (the idempotency keys would drop the rest anyway)."""
    if not ids:
        return set()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT ref_id, level, payload->>'clock_start' FROM notifications"
            " WHERE ref_kind = 'incident' AND ref_id = ANY(%s) AND kind = 'sla_breached'"
            " AND level > 0",
            ([str(i) for i in ids],),
        )
        return {(str(r[0]), int(r[1]), str(r[2])) for r in cur.fetchall()}


def sla_state(inc: dict[str, Any], now: dt.datetime) -> str:
    """ok | warning | breached (open); met | missed (resolved/closed); none (rejected).
    The same rule as :data:`ioc.incidents.queries.SLA_STATE_SQL`."""
    if inc["status"] == "rejected":
        return "none"
    if inc["status"] in core.DONE:
        return "met" if inc["resolved_at"] <= inc["due_at"] else "missed"
    if inc["due_at"] < now or (inc["acknowledged_at"] is None and inc["response_due_at"] < now):
        return "breached"
    if inc["warn_at"] <= now or (inc["acknowledged_at"] is None and inc["response_warn_at"] <= now):
        return "warning"
    return "ok"
