"""The read side of citizen reports: tracking, lists and figures (plain query functions).

Every function takes the wards the caller may see (``wards=None``: all) and scopes its SQL with
them, so a page or an API cannot read another ward's reports by passing other codes. The
contact is selected only by :func:`report_list`, for the rows its ``reveal`` allows (admins,
members of the report's handling unit); everything else masks it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ioc.db import Connection
from ioc.db.rows import from_tuples

# The SLA state of a report at an instant ``%(now)s`` (shared with the KPI queries' rule):
# ended on time / ended late / open and not yet due / open and overdue.
SLA_SQL = """CASE
    WHEN status IN ('resolved', 'rejected') THEN
        CASE WHEN due_at IS NULL OR resolved_at <= due_at THEN 'on_time' ELSE 'late' END
    WHEN due_at IS NOT NULL AND due_at < %(now)s THEN 'overdue'
    ELSE 'open' END"""
SLA_STATES = ("open", "overdue", "on_time", "late")
MASKED_CONTACT_SQL = """CASE WHEN contact IS NULL THEN NULL
    ELSE left(contact, 2) || repeat('*', greatest(length(contact) - 4, 3))
         || CASE WHEN length(contact) > 6 THEN right(contact, 2) ELSE '' END END"""
TRACK_KEYS = ("id", "status", "received_at", "due_at", "resolved_at", "unit")


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One citizen report of :func:`report_list`: ``contact`` masked unless revealed."""

    id: str
    ward_code: str | None
    channel: str
    category: str | None
    summary: str | None
    address: str | None
    unit: str | None
    contact: str | None
    has_contact: bool
    status: str
    received_at: dt.datetime
    due_at: dt.datetime | None
    assigned_at: dt.datetime | None
    resolved_at: dt.datetime | None
    result: str | None
    lat: float | None
    lon: float | None
    sla: str  # one of SLA_STATES


def _scope(wards: Sequence[str] | None) -> list[str] | None:
    return None if wards is None else sorted(set(wards))


def track(conn: Connection, report_id: str) -> dict[str, Any] | None:
    """The public view of one report (no personal data) or None when unknown."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, status, received_at, due_at, resolved_at, unit, category, result"
            " FROM reports WHERE id = %s",
            (report_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip((*TRACK_KEYS, "category", "result"), row, strict=True))
        cur.execute(
            "SELECT event, ts FROM report_events WHERE report_id = %s ORDER BY ts, stored_at",
            (report_id,),
        )
        out["history"] = [{"event": e, "ts": ts} for e, ts in cur.fetchall()]
    return out


def report_list(
    conn: Connection,
    *,
    wards: Sequence[str] | None,
    now: dt.datetime,
    ward: Sequence[str] | None = None,
    category: Sequence[str] | None = None,
    status: Sequence[str] | None = None,
    sla: Sequence[str] | None = None,
    with_contact: bool = False,
    reveal: Callable[[str, str | None], bool] | None = None,
    limit: int = 500,
) -> list[ReportRow]:
    """Reports the caller may see, newest first, filtered; ``contact`` masked (``09*****56``)
    unless ``with_contact`` (every row), or ``reveal(ward_code, unit)`` says so for the row (the
    members of its handling unit, :class:`ioc.citizen.units.Revealer`; on screen only)."""
    contact = "contact" if with_contact else MASKED_CONTACT_SQL
    full = "contact" if reveal is not None and not with_contact else "NULL::text"
    sql = f"""
    SELECT * FROM (
        SELECT id, ward_code, channel, category, summary, address, unit,
               {contact} AS contact, {full} AS contact_full,
               contact IS NOT NULL AS has_contact, status,
               received_at, due_at, assigned_at, resolved_at, result, lat, lon,
               {SLA_SQL} AS sla
        FROM reports
        WHERE (%(scope)s::text[] IS NULL OR ward_code = ANY(%(scope)s))
          AND (%(ward)s::text[] IS NULL OR ward_code = ANY(%(ward)s))
          AND (%(category)s::text[] IS NULL OR category = ANY(%(category)s))
          AND (%(status)s::text[] IS NULL OR status = ANY(%(status)s))
    ) r
    WHERE (%(sla)s::text[] IS NULL OR sla = ANY(%(sla)s))
    ORDER BY received_at DESC, id LIMIT %(limit)s
    """
    params = {
        "scope": _scope(wards),
        "ward": list(ward) if ward else None,
        "category": list(category) if category else None,
        "status": list(status) if status else None,
        "sla": list(sla) if sla else None,
        "now": now,
        "limit": limit,
    }
    with conn.cursor() as cur:
        cur.execute(sql, params)
        cols = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    i_contact, i_full = cols.index("contact"), cols.index("contact_full")
    i_ward, i_unit = cols.index("ward_code"), cols.index("unit")
    out = []
    for got in rows:
        row = list(got)
        if reveal is not None and row[i_full] is not None and reveal(row[i_ward], row[i_unit]):
            row[i_contact] = row[i_full]
        del row[i_full]  # the full contact never leaves this function unless revealed
        out.append(row)
    return from_tuples(ReportRow, [c for c in cols if c != "contact_full"], out)


def summary(
    conn: Connection,
    *,
    wards: Sequence[str] | None,
    start: dt.datetime,
    now: dt.datetime,
) -> pd.DataFrame:
    """Per ward and category since ``start``: received, open, overdue, ended on time, ended."""
    sql = f"""
    SELECT ward_code, category,
           count(*) FILTER (WHERE received_at >= %(start)s) AS received,
           count(*) FILTER (WHERE status NOT IN ('resolved', 'rejected')) AS open,
           count(*) FILTER (WHERE sla = 'overdue') AS overdue,
           count(*) FILTER (WHERE sla IN ('on_time', 'open')) AS on_time,
           count(*) AS counted
    FROM (SELECT ward_code, category, status, received_at, resolved_at, {SLA_SQL} AS sla
          FROM reports
          WHERE (%(scope)s::text[] IS NULL OR ward_code = ANY(%(scope)s))
            AND received_at < %(now)s
            AND (resolved_at IS NULL OR resolved_at >= %(start)s)) r
    GROUP BY ward_code, category
    """
    with conn.cursor() as cur:
        cur.execute(sql, {"scope": _scope(wards), "start": start, "now": now})
        cols = [d[0] for d in cur.description or []]
        return pd.DataFrame(list(cur.fetchall()), columns=cols)
