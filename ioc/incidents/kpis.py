"""Incident KPIs (registered in ioc/kpi/queries.py, defined in config/kpis.yaml).

Each is ``(conn, *, wards, start, end, env, params) -> DataFrame[ward_code, value, weight]``.
Incidents are IOC's own records, so a ward without any has a true 0 (not "no data"), except
the median, which has no value without a resolved incident.

* ``incidents_in_state`` (``params.state``: new | assigned | in_progress | open): incidents in
  that state at ``end``, from the audit trail (the last state-changing event before ``end``),
  so a closed period keeps its figure however the incidents move on;
* ``incident_sla_breaches``: response and resolution clocks that ran out in the period;
* ``incident_resolve_hours_median``: median hours on each incident's own SLA clock (the
  incidents.yaml rule of its category and severity: office hours of working days, or round
  the clock for a ``clock: continuous`` rule such as critical flooding) from opening, or the
  last reopening, to resolution, of the incidents resolved in the period; the city row is the
  median of every ward's incidents together (``rollup: query``).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ioc.db import Connection
from ioc.incidents.clock import Clock
from ioc.incidents.rules import DEFAULTS
from ioc.workdays import WorkCalendar

COLUMNS = ["ward_code", "value", "weight"]
STATES = ("new", "assigned", "in_progress", "open")

# the state an incident is in after each state-changing event
STATE_OF_EVENT_SQL = """
CASE e.action WHEN 'opened' THEN 'new' WHEN 'assigned' THEN 'assigned'
              WHEN 'started' THEN 'in_progress' WHEN 'resolved' THEN 'resolved'
              WHEN 'closed' THEN 'closed' WHEN 'rejected' THEN 'rejected'
              WHEN 'merged' THEN 'rejected'
              ELSE e.details->>'status' END
"""
STATE_EVENTS = (
    "opened",
    "assigned",
    "started",
    "resolved",
    "closed",
    "rejected",
    "merged",
    "reopened",
    "unmerged",
)


def _frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=COLUMNS)
    for c in COLUMNS[1:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def incidents_in_state(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: Any,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    state = str(params.get("state", "open"))
    if state not in STATES:
        raise ValueError(f"incidents_in_state: unknown state {state!r}")
    wanted = ["new", "assigned", "in_progress"] if state == "open" else [state]
    sql = f"""
    WITH cand AS (
        -- those that may have been open at `end`: all but the ones whose present cycle (a
        -- reopening clears resolved_at / rejected_at) had ended before it
        SELECT i.id, i.ward_code FROM incidents i
        WHERE i.ward_code = ANY(%(wards)s::text[]) AND i.opened_at < %(end)s
          AND NOT (i.status IN ('resolved', 'closed', 'rejected')
                   AND LEAST(i.resolved_at, i.rejected_at) < %(end)s)
    ),
    last AS (
        SELECT DISTINCT ON (e.incident_id) e.incident_id, {STATE_OF_EVENT_SQL} AS state
        FROM incident_events e JOIN cand ON cand.id = e.incident_id
        WHERE e.ts < %(end)s AND e.action = ANY(%(actions)s::text[])
        ORDER BY e.incident_id, e.ts DESC, e.id DESC
    )
    SELECT w.code,
           count(last.incident_id) FILTER (WHERE last.state = ANY(%(wanted)s::text[])), 1
    FROM unnest(%(wards)s::text[]) AS w(code)
    LEFT JOIN cand ON cand.ward_code = w.code
    LEFT JOIN last ON last.incident_id = cand.id
    GROUP BY w.code
    """
    with conn.cursor() as cur:
        cur.execute(
            sql,
            {"wards": list(wards), "end": end, "actions": list(STATE_EVENTS), "wanted": wanted},
        )
        return _frame(cur.fetchall())


def incident_sla_breaches(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: Any,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Clocks (response or resolution) whose due time fell in the period and that ran out
    (recorded by the scheduler's sweep, at or after the due time)."""
    sql = """
    WITH b AS (
        SELECT i.ward_code, count(*) AS n
        FROM incident_events e JOIN incidents i ON i.id = e.incident_id
        WHERE e.action = 'sla_breached' AND e.ts >= %(start)s
          AND e.ts < %(end)s + interval '7 days'
          AND (e.details->>'due_at')::timestamptz >= %(start)s
          AND (e.details->>'due_at')::timestamptz < %(end)s
          AND i.ward_code = ANY(%(wards)s::text[])
        GROUP BY i.ward_code
    )
    SELECT w.code, COALESCE(b.n, 0), 1
    FROM unnest(%(wards)s::text[]) AS w(code) LEFT JOIN b ON b.ward_code = w.code
    """
    with conn.cursor() as cur:
        cur.execute(sql, {"wards": list(wards), "start": start, "end": end})
        return _frame(cur.fetchall())


def incident_resolve_hours_median(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: Any,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    sql = """
    SELECT i.ward_code, i.category, i.severity, e.ts,
           (SELECT max(o.ts) FROM incident_events o
            WHERE o.incident_id = e.incident_id AND o.action IN ('opened', 'reopened')
              AND o.ts <= e.ts) AS since
    FROM incident_events e JOIN incidents i ON i.id = e.incident_id
    WHERE e.action = 'resolved' AND e.ts >= %(start)s AND e.ts < %(end)s
      AND i.ward_code = ANY(%(wards)s::text[])
    """
    with conn.cursor() as cur:
        cur.execute(sql, {"wards": list(wards), "start": start, "end": end})
        rows = cur.fetchall()
    cal = WorkCalendar(
        holidays=getattr(env, "holidays", None) or WorkCalendar().holidays,
        periods=getattr(env, "office_hours", None) or WorkCalendar().periods,
    )
    sla = getattr(env, "incidents", None) or DEFAULTS
    by_ward: dict[str, list[float]] = {}
    for ward, category, severity, resolved, since in rows:
        if since is None:
            continue
        clock = Clock(cal, continuous=sla.sla_for(category, severity).clock == "continuous")
        by_ward.setdefault(ward, []).append(clock.hours_between(since, resolved))
    out = [(w, statistics.median(v), len(v)) for w, v in sorted(by_ward.items())]
    every = [h for v in by_ward.values() for h in v]
    if every:
        out.append(("city", statistics.median(every), len(every)))
    return _frame(out)
