"""The one write path of citizen reports, used by every door (MQTT, HTTP API, file import).

:func:`store_events` writes a batch of validated events inside the caller's transaction:

1. lock the batch's reports (rows of ``report_locks``, one upsert in id order: concurrent
   writers of the same report wait for each other, different reports do not);
2. read the events already stored for them (one query);
3. decide each new event with :func:`ioc.citizen.lifecycle.try_add` (stored, duplicate or
   refused with a reason);
4. insert the stored events into ``report_events`` (``ON CONFLICT DO NOTHING``: redelivery is a
   no-op) and upsert the recomputed ``reports`` rows (two statements for the whole batch).

The contact (personal data) goes only to ``reports.contact``, never into ``report_events``; it
is kept until :func:`remove_old_contacts` (the scheduler's retention job) removes it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg2.extras import execute_values

from ioc.citizen.events import ReportEvent, Rules
from ioc.citizen.lifecycle import try_add

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as Cursor


@dataclass(frozen=True)
class Outcome:
    """What happened to one event: ``stored``, ``duplicate`` or ``refused`` (with ``reason``,
    ``"<code>: <message>"``)."""

    status: str
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status != "refused"

    @property
    def code(self) -> str | None:
        return self.reason.split(":", 1)[0] if self.reason else None


_ROW_COLS = (
    "id",
    "ward_code",
    "channel",
    "category",
    "summary",
    "lat",
    "lon",
    "address",
    "unit",
    "contact",
    "status",
    "received_at",
    "due_at",
    "assigned_at",
    "resolved_at",
    "result",
    "reopen_count",
    "last_event_at",
)
_UPSERT = f"""
INSERT INTO reports ({", ".join(_ROW_COLS)}) VALUES %s
ON CONFLICT (id) DO UPDATE SET
    ward_code = EXCLUDED.ward_code, channel = EXCLUDED.channel, category = EXCLUDED.category,
    summary = EXCLUDED.summary, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
    address = EXCLUDED.address, unit = EXCLUDED.unit,
    contact = CASE WHEN reports.contact_removed_at IS NULL
                   THEN COALESCE(EXCLUDED.contact, reports.contact) END,
    status = EXCLUDED.status, received_at = EXCLUDED.received_at, due_at = EXCLUDED.due_at,
    assigned_at = EXCLUDED.assigned_at, resolved_at = EXCLUDED.resolved_at,
    result = EXCLUDED.result, reopen_count = EXCLUDED.reopen_count,
    last_event_at = EXCLUDED.last_event_at, updated_at = now()
"""


def store_events(
    cur: Cursor, events: Sequence[ReportEvent], rules: Rules, *, door: str
) -> list[Outcome]:
    """Store ``events`` (validated) through ``door``; one :class:`Outcome` per event, in order.

    Runs in the caller's transaction; nothing is committed here.
    """
    if not events:
        return []
    ids = sorted({ev.id for ev in events})
    # one statement locks every report of the batch, in id order (no deadlock between two
    # batches): a new id is inserted (locked until COMMIT), an existing one is "updated"
    cur.execute(
        "INSERT INTO report_locks (report_id) SELECT unnest(%s::text[]) ORDER BY 1"
        " ON CONFLICT (report_id) DO UPDATE SET report_id = EXCLUDED.report_id",
        (ids,),
    )
    cur.execute(
        "SELECT report_id, event, ts, ward_code, details FROM report_events"
        " WHERE report_id = ANY(%s::text[])",
        (ids,),
    )
    history: dict[str, list[ReportEvent]] = defaultdict(list)
    for rid, event, ts, ward, details in cur.fetchall():
        history[rid].append(ReportEvent.from_stored(rid, event, ts, ward, details or {}))

    outcomes: list[Outcome | None] = [None] * len(events)
    order = sorted(range(len(events)), key=lambda i: events[i].sort_key())
    new_rows: list[tuple[Any, ...]] = []
    states: dict[str, Any] = {}
    contacts: dict[str, str] = {}
    for i in order:
        ev = events[i]
        verdict, result, reason = try_add(history[ev.id], ev, rules)
        if verdict == "refused":
            outcomes[i] = Outcome("refused", reason)
            continue
        if ev.contact and ev.event in ("received", "reopened"):
            contacts[ev.id] = ev.contact  # a duplicate may still bring a contact
        if verdict == "duplicate":
            outcomes[i] = Outcome("duplicate")
            continue
        history[ev.id].append(ev)
        outcomes[i] = Outcome("stored")
        new_rows.append(
            (
                ev.id,
                ev.event,
                ev.ts,
                ev.ward_code,
                door,
                ev.actor,
                json.dumps(ev.details(), ensure_ascii=False),
            )
        )
        if result is not None and result.state is not None:
            states[ev.id] = result.state
    if new_rows:
        execute_values(
            cur,
            "INSERT INTO report_events (report_id, event, ts, ward_code, door, actor, details)"
            " VALUES %s ON CONFLICT DO NOTHING",
            new_rows,
            page_size=1000,
        )
    if states:
        rows = []
        for rid, st in states.items():
            values = vars(st)
            rows.append(
                tuple(contacts.get(rid) if c == "contact" else values[c] for c in _ROW_COLS)
            )
        execute_values(cur, _UPSERT, rows, page_size=1000)
    late = {rid: c for rid, c in contacts.items() if rid not in states}
    if late:  # a contact arriving with a duplicate of a report stored earlier
        execute_values(
            cur,
            "UPDATE reports r SET contact = v.contact FROM (VALUES %s) AS v(id, contact)"
            " WHERE r.id = v.id AND r.contact IS NULL AND r.contact_removed_at IS NULL",
            list(late.items()),
        )
    return [o if o is not None else Outcome("refused", "internal: no verdict") for o in outcomes]


def remove_old_contacts(cur: Cursor, *, retention_days: int, now: dt.datetime | None = None) -> int:
    """Remove the contact of reports that ended more than ``retention_days`` ago (Decree 13/2023:
    kept only as long as handling needs). Returns how many were removed."""
    now = now or dt.datetime.now(dt.UTC)
    cur.execute(
        "UPDATE reports SET contact = NULL, contact_removed_at = %(now)s, updated_at = now()"
        " WHERE contact IS NOT NULL AND status IN ('resolved', 'rejected')"
        " AND resolved_at < %(cut)s",
        {"now": now, "cut": now - dt.timedelta(days=retention_days)},
    )
    return int(cur.rowcount)
