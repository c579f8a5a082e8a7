"""The dashboard's SQL: keyword-only functions taking a connection.

What pages read row by row comes as typed rows (frozen dataclasses below, one per shape:
:class:`Alert`, :class:`Device`, :class:`Camera`, ...; :mod:`ioc.db.rows`); what feeds a
figure or a computation over columns (KPI values and their history, the applications' daily
trend) comes as a DataFrame. ``wards=None`` means every ward; a list restricts rows to those
wards (ward leaders). Every parameter is bound, never formatted into the SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ioc.db import Connection
from ioc.db.rows import fetch
from ioc.kpi.queries import DUE_DAY_END_SQL, overdue_at_sql
from ioc.localtime import TZ_NAME
from ioc.missing import is_missing
from ioc.workdays import Holidays, HolidaysLike, working_days_between

# The KPIs' rule (ioc/kpi/queries.py, Decision 766), measured at ``%(now)s`` (bound: the
# clock is the caller's, injectable): an application waiting for the citizen's supplements
# (returned once) is not overdue; it is overdue when not ended by then and past the end of
# its due date (local day), or returned more than once. Completed on time = before the end of
# the due date and returned at most once; a completion recorded after ``now`` has not happened.
_OVERDUE_NOW = f"({overdue_at_sql('%(now)s')})"
_DONE_ON_TIME = f"(return_count < 2 AND completed_at < {DUE_DAY_END_SQL})"
_COMPLETED = "(status = 'completed' AND completed_at < %(now)s)"
# until when an application has been late: its completion, or now if not completed by now
_UNTIL = "LEAST(coalesce(completed_at, %(now)s::timestamptz), %(now)s::timestamptz)"

WardScope = Sequence[str] | None


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    rule_id: str
    subject: str | None
    ward_code: str | None  # None: a city-wide alert
    severity: str
    state: str
    title: str
    value: float | None
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None
    details: dict[str, Any] | None
    escalation_level: int | None  # levels of notifications.yaml told so far (None: no chain)
    reminders: int | None  # reminders sent so far


@dataclass(frozen=True, slots=True)
class DeviceCount:
    """How many devices of one ward, type and status; the last time one was heard."""

    ward_code: str | None
    device_type: str
    status: str
    n: int
    last_seen: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    device_type: str
    status: str
    last_seen: dt.datetime | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class Camera:
    camera_id: str
    ward_code: str | None
    name: str | None
    status: str
    last_seen: dt.datetime | None
    issues: str | None  # the open health events' kinds, comma-separated; None: healthy
    count_1h: float | None  # objects across the counting lines in the last hour
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class OverdueApplication:
    id: str
    ward_code: str | None
    procedure: str | None
    channel: str | None
    received_at: dt.datetime
    due_at: dt.datetime | None
    status: str
    days_late: float | None  # working days since the due time


@dataclass(frozen=True, slots=True)
class ApplicationStats:
    """One group's (ward, procedure or channel) applications: see :func:`application_stats`."""

    grp: str
    received: int
    on_time: int
    late: int
    overdue: int
    returned: int
    online: int


@dataclass(frozen=True, slots=True)
class ProcedureLateness:
    procedure: str
    late: int
    total: int
    avg_days_late: float | None


@dataclass(frozen=True, slots=True)
class WardEnvironment:
    ward_code: str
    water_level_max: float | None
    rain_24h: float | None
    pm25_avg: float | None


@dataclass(frozen=True, slots=True)
class ReportFile:
    """A report file written by a scheduled report (``report_files``)."""

    id: int
    name: str
    schedule: str | None
    format: str
    path: str
    period_from: dt.datetime | None
    period_to: dt.datetime | None
    created_at: dt.datetime


def _frame(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params or {})
        cols = [d[0] for d in cur.description or ()]
        rows = cur.fetchall()
    return pd.DataFrame.from_records(rows, columns=cols)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def _scope(wards: WardScope) -> list[str] | None:
    return None if wards is None else list(wards)


# The KPI names in kpi_values, read by skipping through the primary key (kpi first) instead of
# scanning the table: kpi_values holds ~800k rows (hourly values of 94 wards), and a filter on
# ward or period alone does not use the key, so both queries below start from these names (as
# an array: joined to the names, the planner may still pick a sequential scan).
_KPI_NAMES_CTE = """
    ks AS (
        (SELECT kpi FROM kpi_values ORDER BY kpi LIMIT 1)
        UNION ALL
        SELECT (SELECT k.kpi FROM kpi_values k WHERE k.kpi > ks.kpi ORDER BY k.kpi LIMIT 1)
        FROM ks WHERE ks.kpi IS NOT NULL
    )"""


# Two steps, so the plan does not hang on the table's statistics: each KPI's latest and
# previous period of the city (a few index probes per KPI), then those periods' rows by index.
# As one query with the periods in CTEs, the planner either ran the previous period's
# subquery once per ward and day of history (without fresh statistics: 0.84 s over 155k rows)
# or read the whole table (with them). bench/kpi_latest.py compares the two forms.
_KPI_PERIODS_SQL = f"""
    WITH RECURSIVE {_KPI_NAMES_CTE}
    SELECT ks.kpi, l.ps,
           (SELECT max(q.period_start) FROM kpi_values q
             WHERE q.kpi = ks.kpi AND q.ward_code = 'city' AND q.period = %(p)s
               AND q.period_start < l.ps) AS prev_ps
    FROM ks, LATERAL (SELECT max(m.period_start) AS ps FROM kpi_values m
                      WHERE m.kpi = ks.kpi AND m.ward_code = 'city' AND m.period = %(p)s) l
    WHERE ks.kpi IS NOT NULL AND l.ps IS NOT NULL
    """
_KPI_AT_PERIODS_SQL = """
    SELECT v.kpi, v.ward_code, v.period_start, v.value, pv.value AS prev_value, v.computed_at
    FROM unnest(%(kpi)s::text[], %(ps)s::timestamptz[], %(prev)s::timestamptz[])
         AS l(kpi, ps, prev_ps)
    JOIN kpi_values v ON v.kpi = l.kpi AND v.period = %(p)s AND v.period_start = l.ps
    LEFT JOIN kpi_values pv ON pv.kpi = l.kpi AND pv.period = %(p)s
         AND pv.period_start = l.prev_ps AND pv.ward_code = v.ward_code
    """


def kpi_latest(conn: Connection, *, period: str = "day") -> pd.DataFrame:
    """Per KPI, its latest ``period`` values (every ward and 'city') with the previous period's.

    Columns: kpi, ward_code, period_start, value, prev_value, computed_at.
    """
    with conn.cursor() as cur:
        cur.execute(_KPI_PERIODS_SQL, {"p": period})
        periods = cur.fetchall()
    return _frame(
        conn,
        _KPI_AT_PERIODS_SQL,
        {
            "p": period,
            "kpi": [r[0] for r in periods],
            "ps": [r[1] for r in periods],
            "prev": [r[2] for r in periods],
        },
    )


def kpi_history(
    conn: Connection,
    *,
    wards: Sequence[str],
    since: dt.datetime,
    period: str = "day",
    kpis: Sequence[str] | None = None,
) -> pd.DataFrame:
    """KPI values of the given wards (may include 'city') since ``since``."""
    return _frame(
        conn,
        f"""
        WITH RECURSIVE {_KPI_NAMES_CTE}
        SELECT v.kpi, v.ward_code, v.period_start, v.value
        FROM kpi_values v
        WHERE v.kpi = ANY(ARRAY(SELECT kpi FROM ks WHERE kpi IS NOT NULL))
          AND v.period = %(p)s AND v.ward_code = ANY(%(wards)s) AND v.period_start >= %(since)s
          AND (%(kpis)s::text[] IS NULL OR v.kpi = ANY(%(kpis)s))
        ORDER BY v.kpi, v.ward_code, v.period_start
        """,
        {"p": period, "wards": list(wards), "since": since, "kpis": _scope(kpis)},
    )


def kpi_ward_median(
    conn: Connection, *, kpis: Sequence[str], since: dt.datetime, period: str = "day"
) -> pd.DataFrame:
    """Per KPI and period, the median of the wards' values (not the city total): what one
    ward's count is compared with. Columns: kpi, period_start, value."""
    return _frame(
        conn,
        """
        SELECT kpi, period_start,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS value
        FROM kpi_values
        WHERE kpi = ANY(%(kpis)s) AND period = %(p)s AND period_start >= %(since)s
          AND ward_code <> 'city' AND value IS NOT NULL
        GROUP BY kpi, period_start
        ORDER BY kpi, period_start
        """,
        {"kpis": list(kpis), "p": period, "since": since},
    )


def freshness(conn: Connection) -> dict[str, dt.datetime | None]:
    """When data last arrived: KPIs computed, devices heard from, cameras seen."""
    out: dict[str, dt.datetime | None] = {}
    with conn.cursor() as cur:
        cur.execute(
            f"WITH RECURSIVE {_KPI_NAMES_CTE}"
            " SELECT max(computed_at) FROM kpi_values"
            " WHERE kpi = ANY(ARRAY(SELECT kpi FROM ks WHERE kpi IS NOT NULL))"
            "   AND period = 'day' AND ward_code = 'city'"
            "   AND period_start >= now() - interval '3 days'"
        )
        out["kpi"] = (cur.fetchone() or (None,))[0]
        cur.execute("SELECT max(last_seen) FROM devices")
        out["devices"] = (cur.fetchone() or (None,))[0]
        cur.execute("SELECT max(last_seen) FROM cameras")
        out["cameras"] = (cur.fetchone() or (None,))[0]
    return out


def alerts(
    conn: Connection,
    *,
    wards: WardScope = None,
    states: Sequence[str] = ("open", "acknowledged"),
    severities: Sequence[str] | None = None,
    limit: int = 500,
) -> list[Alert]:
    """Alerts, most severe and newest first. Ward leaders see only their wards' alerts."""
    return fetch(
        conn,
        Alert,
        """
        SELECT a.id, a.rule_id, a.subject, a.ward_code, a.severity, a.state, a.title, a.value,
               a.opened_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.resolved_by,
               a.details, e.level AS escalation_level, e.reminders
        FROM alerts a
        LEFT JOIN notification_escalations e ON e.ref_kind = 'alert' AND e.ref_id = a.id::text
        WHERE a.state = ANY(%(states)s)
          AND (%(sev)s::text[] IS NULL OR a.severity = ANY(%(sev)s))
          AND (%(wards)s::text[] IS NULL OR a.ward_code = ANY(%(wards)s))
        ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                 a.opened_at DESC
        LIMIT %(limit)s
        """,
        {
            "states": list(states),
            "sev": _scope(severities),
            "wards": _scope(wards),
            "limit": limit,
        },
    )


def alert_wards(conn: Connection, *, ids: Sequence[int]) -> dict[int, str | None]:
    """Ward of each alert id (to check a user's right to act on it)."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, ward_code FROM alerts WHERE id = ANY(%s)", (list(ids),))
        return {int(r[0]): r[1] for r in cur.fetchall()}


def device_status(conn: Connection, *, wards: WardScope = None) -> list[DeviceCount]:
    """Device counts per ward, type and status."""
    return fetch(
        conn,
        DeviceCount,
        """
        SELECT ward_code, device_type, status, count(*) AS n, max(last_seen) AS last_seen
        FROM devices
        WHERE (%(wards)s::text[] IS NULL OR ward_code = ANY(%(wards)s))
        GROUP BY ward_code, device_type, status
        """,
        {"wards": _scope(wards)},
    )


def ward_devices(conn: Connection, *, ward: str, limit: int = 2000) -> list[Device]:
    """Every device of one ward, those not online first."""
    return fetch(
        conn,
        Device,
        """
        SELECT device_id, device_type, status, last_seen, lat, lon FROM devices
        WHERE ward_code = %(w)s
        ORDER BY status = 'online', device_type, device_id LIMIT %(limit)s
        """,
        {"w": ward, "limit": limit},
    )


def cameras(conn: Connection, *, wards: WardScope = None) -> list[Camera]:
    """Cameras with status, open health events, the last hour's counts (objects that crossed
    the counting lines, both directions: ``line_<name>_in`` + ``line_<name>_out``) and position
    (lat, lon; NULL when not configured)."""
    return fetch(
        conn,
        Camera,
        """
        SELECT c.camera_id, c.ward_code, c.name, c.status, c.last_seen,
               ev.kinds AS issues, m.count_1h, c.lat, c.lon
        FROM cameras c
        LEFT JOIN LATERAL (
            SELECT string_agg(kind, ', ' ORDER BY kind) AS kinds FROM camera_events e
            WHERE e.camera_id = c.camera_id AND e.ended_at IS NULL
        ) ev ON true
        LEFT JOIN LATERAL (
            SELECT sum(value) AS count_1h FROM camera_metrics cm
            WHERE cm.camera_id = c.camera_id AND cm.ts > now() - interval '1 hour'
              AND (cm.metric LIKE 'line\\_%%\\_in' OR cm.metric LIKE 'line\\_%%\\_out')
        ) m ON true
        WHERE (%(wards)s::text[] IS NULL OR c.ward_code = ANY(%(wards)s))
        ORDER BY c.ward_code, c.camera_id
        """,
        {"wards": _scope(wards)},
    )


def working_days_late(
    due: Sequence[Any], until: Sequence[Any], holidays: HolidaysLike = None
) -> list[float | None]:
    """Working days (weekends and holidays.yaml's days off not counted, as the legal time
    limits) from each due time to its ``until`` time; 0 when not past due, None without a
    due time. Fractional: a working day counts 24 h (``ioc.workdays``)."""
    cal = Holidays.of(holidays)
    out: list[float | None] = []
    for d, u in zip(due, until, strict=True):
        if is_missing(d) or is_missing(u):
            out.append(None)
            continue
        d_ = d.to_pydatetime() if isinstance(d, pd.Timestamp) else d
        u_ = u.to_pydatetime() if isinstance(u, pd.Timestamp) else u
        out.append(max(working_days_between(d_, u_, cal), 0.0))
    return out


def overdue_applications(
    conn: Connection,
    *,
    wards: WardScope = None,
    limit: int = 200,
    holidays: HolidaysLike = None,
    now: dt.datetime | None = None,
) -> list[OverdueApplication]:
    """Open applications past due at ``now`` (default: the current time), as the
    overdue_applications KPI counts them: procedure and days late (working days since the due
    time, as of ``now``; :func:`working_days_late`)."""
    at = _now(now)
    rows = fetch(
        conn,
        OverdueApplication,
        f"""
        SELECT id, ward_code, procedure, channel, received_at, due_at, status,
               NULL::float8 AS days_late
        FROM applications
        WHERE {_OVERDUE_NOW}
          AND (%(wards)s::text[] IS NULL OR ward_code = ANY(%(wards)s))
        ORDER BY due_at LIMIT %(limit)s
        """,
        {"wards": _scope(wards), "limit": limit, "tz": TZ_NAME, "now": at},
    )
    late = working_days_late([r.due_at for r in rows], [at] * len(rows), holidays)
    return [replace(r, days_late=d) for r, d in zip(rows, late, strict=True)]


APP_GROUPS = {"ward_code", "procedure", "channel"}


def application_stats(
    conn: Connection,
    *,
    since: dt.datetime,
    group_by: str,
    wards: WardScope = None,
    now: dt.datetime | None = None,
) -> list[ApplicationStats]:
    """Received / completed on time / late / open overdue / returned, grouped, as of ``now``
    (default: the current time).

    Applications received since ``since`` or completed since then. ``group_by`` is one of
    ward_code, procedure, channel.
    """
    if group_by not in APP_GROUPS:
        raise ValueError(f"cannot group applications by {group_by!r}")
    col = {"ward_code": "ward_code", "procedure": "procedure", "channel": "channel"}[group_by]
    return fetch(
        conn,
        ApplicationStats,
        f"""
        SELECT coalesce({col}, '?') AS grp,
               count(*) FILTER (WHERE received_at >= %(since)s) AS received,
               count(*) FILTER (WHERE {_COMPLETED} AND completed_at >= %(since)s
                                AND {_DONE_ON_TIME}) AS on_time,
               count(*) FILTER (WHERE {_COMPLETED} AND completed_at >= %(since)s
                                AND NOT {_DONE_ON_TIME}) AS late,
               count(*) FILTER (WHERE {_OVERDUE_NOW}) AS overdue,
               count(*) FILTER (WHERE return_count > 0 AND received_at >= %(since)s)
                   AS returned,
               count(*) FILTER (WHERE channel = 'online' AND received_at >= %(since)s)
                   AS online
        FROM applications
        WHERE (received_at >= %(since)s OR completed_at >= %(since)s
               OR status IN ('received', 'returned'))
          AND (%(wards)s::text[] IS NULL OR ward_code = ANY(%(wards)s))
        GROUP BY 1 ORDER BY received DESC
        """,
        {"since": since, "wards": _scope(wards), "tz": TZ_NAME, "now": _now(now)},
    )


def application_trend(
    conn: Connection, *, since: dt.datetime, wards: WardScope = None
) -> pd.DataFrame:
    """Per local day: received, completed, completed late."""
    return _frame(
        conn,
        f"""
        WITH r AS (
            SELECT (received_at AT TIME ZONE %(tz)s)::date AS day,
                   count(*) AS received
            FROM applications
            WHERE received_at >= %(since)s
              AND (%(wards)s::text[] IS NULL OR ward_code = ANY(%(wards)s))
            GROUP BY 1
        ), c AS (
            SELECT (completed_at AT TIME ZONE %(tz)s)::date AS day,
                   count(*) AS completed, count(*) FILTER (WHERE NOT {_DONE_ON_TIME}) AS late
            FROM applications
            WHERE status = 'completed' AND completed_at >= %(since)s
              AND (%(wards)s::text[] IS NULL OR ward_code = ANY(%(wards)s))
            GROUP BY 1
        )
        SELECT coalesce(r.day, c.day) AS day, coalesce(received, 0) AS received,
               coalesce(completed, 0) AS completed, coalesce(late, 0) AS late
        FROM r FULL JOIN c ON r.day = c.day ORDER BY 1
        """,
        {"since": since, "wards": _scope(wards), "tz": TZ_NAME},
    )


def worst_procedures(
    conn: Connection,
    *,
    since: dt.datetime,
    wards: WardScope = None,
    limit: int = 10,
    holidays: HolidaysLike = None,
    now: dt.datetime | None = None,
    min_total: int = 5,
) -> list[ProcedureLateness]:
    """Procedures by share late (completed late + open overdue) among those ended or due,
    ranked by the share's 95 % Wilson lower bound; procedures with fewer than ``min_total``
    applications in the period are left out.

    ``avg_days_late``: the mean, over applications completed after their due time or still
    open past it, of the working days from the due time to completion (or now)."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
        SELECT * FROM (
            SELECT procedure,
                   count(*) FILTER (WHERE ({_COMPLETED} AND NOT {_DONE_ON_TIME})
                                    OR {_OVERDUE_NOW})
                       AS late,
                   count(*) AS total,
                   array_agg(due_at) FILTER (WHERE {_UNTIL} > due_at) AS late_due,
                   array_agg({_UNTIL}) FILTER (WHERE {_UNTIL} > due_at) AS late_until
            FROM applications
            WHERE (received_at >= %(since)s OR completed_at >= %(since)s)
              AND status <> 'cancelled' AND procedure IS NOT NULL
              AND (%(wards)s::text[] IS NULL OR ward_code = ANY(%(wards)s))
            GROUP BY procedure
        ) p
        WHERE late > 0 AND total >= %(min_total)s
        -- the lower bound of the late share's 95 %% Wilson interval: 1 late of 1 does not
        -- outrank 30 of 100 (a small count says little)
        ORDER BY ((late::float / total) + 1.9208 / total
                  - 1.96 * sqrt((late::float / total) * (1 - late::float / total) / total
                                + 0.9604 / (total::float * total)))
                 / (1 + 3.8416 / total) DESC,
                 late DESC
        LIMIT %(limit)s
        """,
            {
                "since": since,
                "wards": _scope(wards),
                "limit": limit,
                "tz": TZ_NAME,
                "now": _now(now),
                "min_total": min_total,
            },
        )
        rows = cur.fetchall()
    cal = Holidays.of(holidays)
    out: list[ProcedureLateness] = []
    for procedure, late, total, late_due, late_until in rows:
        days = [
            x for x in working_days_late(late_due or [], late_until or [], cal) if x is not None
        ]
        avg = sum(days) / len(days) if days else None
        out.append(ProcedureLateness(procedure, int(late), int(total), avg))
    return out


def environment(conn: Connection, *, wards: WardScope = None) -> list[WardEnvironment]:
    """Per ward over the last 24 h (roll-ups): highest water level (the highest hourly mean
    of the ward's stations, as the flood_risk KPI: one gauge spike is not a flood) and total
    rainfall."""
    return fetch(
        conn,
        WardEnvironment,
        """
        SELECT ward_code,
               max(avg) FILTER (WHERE metric = 'water_level_cm') AS water_level_max,
               sum(sum) FILTER (WHERE metric = 'rain_mm') AS rain_24h,
               avg(avg) FILTER (WHERE metric = 'pm25') AS pm25_avg
        FROM readings_hourly
        WHERE bucket >= now() - interval '24 hours'
          AND metric IN ('water_level_cm', 'rain_mm', 'pm25')
          AND (%(wards)s::text[] IS NULL OR ward_code = ANY(%(wards)s))
        GROUP BY ward_code
        """,
        {"wards": _scope(wards)},
    )


def reports(conn: Connection, *, limit: int = 200) -> list[ReportFile]:
    """The report files written, newest first."""
    return fetch(
        conn,
        ReportFile,
        """
        SELECT id, name, schedule, format, path, period_from, period_to, created_at
        FROM report_files ORDER BY created_at DESC LIMIT %(limit)s
        """,
        {"limit": limit},
    )


def report(conn: Connection, *, report_id: int) -> ReportFile | None:
    rows = fetch(
        conn,
        ReportFile,
        """
        SELECT id, name, schedule, format, path, period_from, period_to, created_at
        FROM report_files WHERE id = %(id)s
        """,
        {"id": report_id},
    )
    return rows[0] if rows else None
