"""The read side of citizen reports: tracking, lists and figures (plain query functions).

Every function takes the wards the caller may see (``wards=None``: all) and scopes its SQL with
them, so a page or an API cannot read another ward's reports by passing other codes. The
contact is selected only by :func:`report_list` with ``with_contact=True`` (admins); everything
else masks it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ioc.db import Connection

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
    limit: int = 500,
) -> pd.DataFrame:
    """Reports the caller may see, newest first, filtered; ``contact`` masked (``09*****56``)
    unless ``with_contact`` (admins, on screen only)."""
    contact = "contact" if with_contact else MASKED_CONTACT_SQL
    sql = f"""
    SELECT * FROM (
        SELECT id, ward_code, channel, category, summary, address, unit,
               {contact} AS contact, contact IS NOT NULL AS has_contact, status,
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
        return pd.DataFrame(list(cur.fetchall()), columns=cols)


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
