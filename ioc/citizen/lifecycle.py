"""The lifecycle of a report, replayed from its events (pure: no I/O).

A report's ``reports`` row is never edited in place by an event: every accepted event is kept
in ``report_events`` and the row is recomputed by replaying the report's events in time order,
so arrival order does not matter and a redelivered event changes nothing::

    (none) --received--> received --assigned--> assigned --in_progress--> in_progress
    received | assigned | in_progress --resolved | rejected--> resolved | rejected
    resolved | rejected --reopened--> received (a new due time from the reopening)

``assigned`` may also come again (reassigned to another unit) or after ``in_progress``;
``in_progress`` may come straight from ``received``. A second ``received`` of an open report is
the same report sent again (a duplicate: accepted, nothing changes). Anything else (an event
after the report ended other than ``reopened``, ``reopened`` of an open report) is an
impossible transition: the event is refused. An event that would make an event already applied
impossible (it arrives late, with an earlier time) is refused too, so late events never corrupt
the stored history. Events of a report whose ``received`` has not arrived yet are kept and
wait for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ioc.applications import EventError
from ioc.citizen.events import ReportEvent, Rules

OPEN = ("received", "assigned", "in_progress")
ENDED = ("resolved", "rejected")


@dataclass
class ReportState:
    """The ``reports`` row computed from a report's events (without the contact)."""

    id: str
    ward_code: str
    channel: str | None
    category: str
    summary: str | None
    lat: float | None
    lon: float | None
    address: str | None
    unit: str | None
    status: str
    received_at: dt.datetime
    due_at: dt.datetime | None
    assigned_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    result: str | None = None
    reopen_count: int = 0
    last_event_at: dt.datetime | None = None


@dataclass
class Replay:
    state: ReportState | None
    applied: list[ReportEvent] = field(default_factory=list)
    skipped: list[tuple[ReportEvent, str]] = field(default_factory=list)
    pending: list[ReportEvent] = field(default_factory=list)
    duplicates: list[ReportEvent] = field(default_factory=list)


def _impossible(message: str) -> EventError:
    return EventError("impossible_transition", message)


def transition(state: ReportState | None, ev: ReportEvent, rules: Rules) -> ReportState | None:
    """The state after ``ev`` (``None``: a duplicate ``received``, nothing changes)."""
    if state is None:
        if ev.event != "received":
            raise _impossible(f"{ev.event} before received")
        assert ev.category is not None  # validation requires it on received
        return ReportState(
            id=ev.id,
            ward_code=ev.ward_code,
            channel=ev.channel,
            category=ev.category,
            summary=ev.summary,
            lat=ev.lat,
            lon=ev.lon,
            address=ev.address,
            unit=ev.unit or rules.default_unit(ev.category, ev.ward_code),
            status="received",
            received_at=ev.ts,
            due_at=rules.due(ev.category, ev.ts),
            last_event_at=ev.ts,
        )
    cur = state.status
    new = replace(state, last_event_at=ev.ts)
    if ev.unit:
        new.unit = ev.unit
    if ev.event == "received":
        if cur in ENDED:
            raise _impossible(f"received after {cur} (send reopened)")
        return None
    if ev.event == "reopened":
        if cur not in ENDED:
            raise _impossible(f"reopened while {cur}")
        new.status = "received"
        new.resolved_at = None
        new.result = None
        new.reopen_count = state.reopen_count + 1
        new.due_at = rules.due(state.category, ev.ts)
        return new
    if cur in ENDED:
        raise _impossible(f"{ev.event} after {cur}")
    if ev.event == "assigned":
        new.status = "assigned"
        if state.assigned_at is None:
            new.assigned_at = ev.ts
    elif ev.event == "in_progress":
        new.status = "in_progress"
        if state.assigned_at is None:
            new.assigned_at = ev.ts
    else:  # resolved | rejected
        new.status = ev.event
        new.resolved_at = ev.ts
        new.result = ev.result
    return new


def replay(events: Iterable[ReportEvent], rules: Rules) -> Replay:
    """Apply events in time order (same key once); impossible ones are skipped."""
    unique = {ev.key: ev for ev in events}
    ordered = sorted(unique.values(), key=ReportEvent.sort_key)
    if not any(ev.event == "received" for ev in ordered):
        return Replay(state=None, pending=ordered)
    out = Replay(state=None)
    for ev in ordered:
        try:
            nxt = transition(out.state, ev, rules)
        except EventError as exc:
            out.skipped.append((ev, exc.message))
            continue
        if nxt is None:
            out.duplicates.append(ev)
        else:
            out.state = nxt
            out.applied.append(ev)
    return out


def try_add(
    history: list[ReportEvent], ev: ReportEvent, rules: Rules
) -> tuple[str, Replay | None, str | None]:
    """Whether ``ev`` may join ``history`` (the report's accepted events).

    Returns ``("stored", replay, None)``, ``("duplicate", None, None)`` (the same event, or a
    ``received`` of a report already received) or ``("refused", None, reason)``.
    """
    if any(h.key == ev.key for h in history):
        return "duplicate", None, None
    wards = {h.ward_code for h in history}
    if wards and ev.ward_code not in wards:
        return "refused", None, f"ward_mismatch: report {ev.id} belongs to ward {min(wards)}"
    before = replay(history, rules)
    after = replay([*history, ev], rules)
    for skipped, why in after.skipped:
        if skipped.key == ev.key:
            return (
                "refused",
                None,
                f"impossible_transition: {ev.event} of {ev.id} at {ev.ts.isoformat()}: {why}",
            )
    was = {e.key for e in before.applied}
    broken = [e for e, _ in after.skipped if e.key in was]
    if broken:
        e = broken[0]
        return (
            "refused",
            None,
            f"impossible_transition: {ev.event} of {ev.id} at {ev.ts.isoformat()} conflicts"
            f" with the {e.event} at {e.ts.isoformat()} already stored",
        )
    if any(d.key == ev.key for d in after.duplicates):
        return "duplicate", None, None
    return "stored", after, None
