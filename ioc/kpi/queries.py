"""SQL-backed KPI query functions, one per KPI definition in ``config/kpis.yaml``.

Each is a plain keyword-only function ``(conn, *, wards, start, end, env, params) -> DataFrame``
returning one row per ward that has data, with columns ``ward_code``, ``value`` and ``weight``
(the KPI's own volume, e.g. the applications counted; used by ``weight: volume`` roll-ups).
A ward missing from the frame, or with ``value`` NaN, has **no data** (never 0).

``start``/``end`` bound the period; ``end`` is the instant the period is measured at (the end
of a closed period, or "now" for the current one). SQL parameters are always bound.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ioc.db import Connection
from ioc.kpi import aqi as aqi_math
from ioc.localtime import TZ_NAME
from ioc.workdays import OFFICE_HOURS, Holidays, WorkCalendar, working_days_between
from ioc.workdays import working_hours_between as _working_hours_between

COLUMNS = ["ward_code", "value", "weight"]


@dataclass(frozen=True)
class KpiEnv:
    """What the queries need from the configuration."""

    timezone: str = TZ_NAME
    holidays: Holidays = field(default_factory=Holidays)
    device_intervals: Mapping[str, float] = field(default_factory=dict)
    metric_intervals: Mapping[str, float] = field(default_factory=dict)
    default_interval_s: float = 300.0
    offline_factor: float = 3.0
    camera_interval_s: float = 10.0
    # office hours of a working day (categories.yaml working_hours): citizen-report limits
    office_hours: tuple[tuple[dt.time, dt.time], ...] = OFFICE_HOURS
    # incidents.yaml (ioc.config.incidents.IncidentsFile): each incident's own SLA clock
    incidents: Any = None


QueryFn = Callable[..., pd.DataFrame]
QUERIES: dict[str, QueryFn] = {}
# The keys each query reads from its ``params`` (checked by ``ioc config check``).
QUERY_PARAMS: dict[str, frozenset[str]] = {}


def query(*params: str) -> Callable[[QueryFn], QueryFn]:
    """Register a query function under its name, with the ``params`` keys it reads."""

    def register(fn: QueryFn) -> QueryFn:
        QUERIES[fn.__name__] = fn
        QUERY_PARAMS[fn.__name__] = frozenset(params)
        return fn

    return register


def _frame(rows: Sequence[tuple[Any, ...]], cols: Sequence[str] = COLUMNS) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(cols))
    for c in cols[1:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def _fetch(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


# --------------------------------------------------------------------------- applications

# The end of an application (Decision 766 / portal rule): the first of completed (decided,
# result returned) and cancelled (refused, stopped, withdrawn); an application whose only
# supplement request has nothing after it ends at the request date. On time = ended before
# the end of its due date (local day). SQL expressions over an ``applications`` row, shared
# with the dashboards so that their lists count what the KPIs count (``%(tz)s`` bound).
ENDED_AT_SQL = (
    "LEAST(completed_at, cancelled_at,"
    " CASE WHEN status = 'returned' AND return_count = 1 THEN returned_at END)"
)
DUE_DAY_END_SQL = (
    "((date_trunc('day', due_at AT TIME ZONE %(tz)s) + INTERVAL '1 day') AT TIME ZONE %(tz)s)"
)


def overdue_at_sql(
    at: str, *, ended_at: str = ENDED_AT_SQL, due_day_end: str = DUE_DAY_END_SQL
) -> str:
    """The one overdue rule (KPI-REFERENCE: an application that has not ended is measured at
    the end of the period, overdue if past due then), as an SQL condition on an
    ``applications`` row measured at the instant ``at`` (an SQL expression, e.g. a bound
    ``%(end)s``): not ended by ``at`` (an end recorded after ``at`` has not happened yet at
    ``at``), and ``at`` is past the end of its due date (local day) or it was returned more
    than once. The overdue KPI measures at the end of its period, the dashboards at now."""
    return (
        f"(({ended_at}) IS NULL OR ({ended_at}) >= {at})"
        f" AND (return_count >= 2 OR {at} >= {due_day_end})"
    )


_APPS_CTE = f"""
WITH a AS (
    SELECT id, ward_code, channel, received_at, due_at, return_count, paused_seconds,
           {ENDED_AT_SQL} AS ended_at,
           {DUE_DAY_END_SQL} AS due_day_end
    FROM applications
    WHERE ward_code = ANY(%(wards)s::text[]) AND received_at < %(end)s
)
"""


@query()
def on_time_rate(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Decision 766: (ended on or before due + open and not yet due) ÷ all applications
    received or processed in the period, %.

    In the period = received before ``end`` and not ended before ``start``. On time = ended
    (or, if still open, measured at ``end``) before the end of its due date (local day);
    more than one supplement request counts as overdue.
    """
    sql = (
        _APPS_CTE
        + """
    SELECT ward_code, 100.0 * count(*) FILTER (
               WHERE return_count < 2 AND (due_day_end IS NULL
                     OR LEAST(COALESCE(ended_at, %(end)s), %(end)s) < due_day_end))
               / count(*),
           count(*)
    FROM a WHERE ended_at IS NULL OR ended_at >= %(start)s
    GROUP BY ward_code
    """
    )
    rows = _fetch(conn, sql, {"wards": list(wards), "start": start, "end": end, "tz": env.timezone})
    return _frame(rows)


@query()
def overdue_applications(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Applications still open at ``end`` and past their due date (or returned more than once).

    No data (NULL) for a ward that has never received an application before ``end``.
    """
    overdue = overdue_at_sql("%(end)s", ended_at="ended_at", due_day_end="due_day_end")
    sql = (
        _APPS_CTE
        + f"""
    SELECT ward_code, count(*) FILTER (WHERE {overdue}),
           count(*) FILTER (WHERE ended_at IS NULL OR ended_at >= %(end)s)
    FROM a GROUP BY ward_code
    """
    )
    rows = _fetch(conn, sql, {"wards": list(wards), "start": start, "end": end, "tz": env.timezone})
    return _frame(rows)


@query()
def online_share(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Applications received online ÷ all received in the period, %."""
    sql = """
    SELECT ward_code, 100.0 * count(*) FILTER (WHERE channel = 'online') / count(*), count(*)
    FROM applications
    WHERE ward_code = ANY(%(wards)s::text[]) AND received_at >= %(start)s AND received_at < %(end)s
    GROUP BY ward_code
    """
    return _frame(_fetch(conn, sql, {"wards": list(wards), "start": start, "end": end}))


@query()
def applications_received(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Applications received in the period (0 only for a ward that has received some before;
    a ward that has never received one has no data)."""
    sql = """
    SELECT ward_code, count(*) FILTER (WHERE received_at >= %(start)s), count(*)
    FROM applications
    WHERE ward_code = ANY(%(wards)s::text[]) AND received_at < %(end)s
    GROUP BY ward_code
    """
    rows = _fetch(conn, sql, {"wards": list(wards), "start": start, "end": end})
    return _frame([(w, v, v) for w, v, _ in rows])


@query()
def avg_processing_days(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Mean processing time, in working days (weekends and holidays excluded), of the
    applications that ended in the period, not counting time paused for supplements.

    Pauses come from ``application_events`` (``returned`` → next ``received``); for an
    application without events, ``paused_seconds`` is subtracted as calendar time.
    """
    sql = (
        _APPS_CTE
        + """
    SELECT a.id, a.ward_code, a.received_at, a.ended_at, a.paused_seconds,
           COALESCE((SELECT array_agg(e.event ORDER BY e.ts, e.event) FROM application_events e
                     WHERE e.app_id = a.id AND e.ts <= a.ended_at), '{}'),
           COALESCE((SELECT array_agg(e.ts ORDER BY e.ts, e.event) FROM application_events e
                     WHERE e.app_id = a.id AND e.ts <= a.ended_at), '{}')
    FROM a WHERE a.ended_at >= %(start)s AND a.ended_at < %(end)s
    """
    )
    rows = _fetch(conn, sql, {"wards": list(wards), "start": start, "end": end, "tz": env.timezone})
    per_ward: dict[str, list[float]] = {}
    for _id, ward, received, ended, paused_s, events, times in rows:
        total = working_days_between(received, ended, env.holidays)
        paused = _paused_working_days(list(events), list(times), ended, env.holidays)
        if paused is None:
            paused = min(float(paused_s or 0) / 86400.0, total)
        per_ward.setdefault(ward, []).append(max(0.0, total - paused))
    return _frame([(w, sum(v) / len(v), len(v)) for w, v in per_ward.items()])


def _paused_working_days(
    events: list[str], times: list[dt.datetime], ended: dt.datetime, holidays: Holidays
) -> float | None:
    """Working days between each ``returned`` event and the next ``received``; None when the
    application has no ``returned`` event recorded (caller falls back to paused_seconds)."""
    if "returned" not in events:
        return None
    paused = 0.0
    pause_start: dt.datetime | None = None
    for ev, ts in zip(events, times, strict=True):
        if ev == "returned" and pause_start is None:
            pause_start = ts
        elif ev == "received" and pause_start is not None:
            paused += working_days_between(pause_start, ts, holidays)
            pause_start = None
    if pause_start is not None and pause_start < ended:
        paused += working_days_between(pause_start, ended, holidays)
    return paused


# --------------------------------------------------------------------------- citizen reports

# The same rule as on_time_rate (Decision 766), applied to citizen reports and their due times
# (exact instants, from the category's limit in working time): in the period = received before
# ``end`` and not ended (resolved or rejected) before ``start``; on time = ended on or before
# ``due_at``, or still open at ``end`` and not yet due then. A report ended after ``end`` is
# measured as open at ``end``.
_REPORTS_CTE = """
WITH r AS (
    SELECT ward_code, received_at, due_at, resolved_at,
           CASE WHEN resolved_at < %(end)s THEN resolved_at END AS ended_at
    FROM reports
    WHERE ward_code = ANY(%(wards)s::text[]) AND received_at < %(end)s
)
"""


@query()
def reports_on_time_rate(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """(Reports ended on or before due + open and not yet due) ÷ reports received or handled
    in the period, % (the rule of ``on_time_rate``)."""
    sql = (
        _REPORTS_CTE
        + """
    SELECT ward_code, 100.0 * count(*) FILTER (
               WHERE due_at IS NULL OR COALESCE(ended_at, %(end)s) <= due_at) / count(*),
           count(*)
    FROM r WHERE ended_at IS NULL OR ended_at >= %(start)s
    GROUP BY ward_code
    """
    )
    return _frame(_fetch(conn, sql, {"wards": list(wards), "start": start, "end": end}))


@query()
def reports_overdue(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Reports still open at ``end`` and past their due time (no data for a ward that has
    never received a report before ``end``)."""
    sql = (
        _REPORTS_CTE
        + """
    SELECT ward_code, count(*) FILTER (WHERE ended_at IS NULL AND due_at < %(end)s),
           count(*) FILTER (WHERE ended_at IS NULL)
    FROM r GROUP BY ward_code
    """
    )
    return _frame(_fetch(conn, sql, {"wards": list(wards), "start": start, "end": end}))


@query()
def reports_received(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Citizen reports received in the period (no data for a ward that has never received one
    before ``end``)."""
    sql = """
    SELECT ward_code, count(*) FILTER (WHERE received_at >= %(start)s)
    FROM reports
    WHERE ward_code = ANY(%(wards)s::text[]) AND received_at < %(end)s
    GROUP BY ward_code
    """
    rows = _fetch(conn, sql, {"wards": list(wards), "start": start, "end": end})
    return _frame([(w, v, v) for w, v in rows])


@query()
def avg_report_handling_hours(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Mean handling time, in working hours (office hours of working days), from receipt to
    resolution or rejection, of the reports that ended in the period."""
    sql = """
    SELECT ward_code, received_at, resolved_at FROM reports
    WHERE ward_code = ANY(%(wards)s::text[])
      AND resolved_at >= %(start)s AND resolved_at < %(end)s
    """
    cal = WorkCalendar(env.holidays, env.office_hours)
    per_ward: dict[str, list[float]] = {}
    for ward, received, ended in _fetch(
        conn, sql, {"wards": list(wards), "start": start, "end": end}
    ):
        hours = max(0.0, _working_hours_between(received, ended, cal))
        per_ward.setdefault(ward, []).append(hours)
    return _frame([(w, sum(v) / len(v), len(v)) for w, v in per_ward.items()])


# --------------------------------------------------------------------------- sensors


def _hourly(
    conn: Connection,
    *,
    wards: Sequence[str],
    metrics: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
) -> pd.DataFrame:
    sql = """
    SELECT bucket, ward_code, metric, n, sum, avg, min, max FROM readings_hourly
    WHERE ward_code = ANY(%(wards)s::text[]) AND metric = ANY(%(metrics)s::text[])
      AND bucket >= %(start)s AND bucket < %(end)s
    """
    rows = _fetch(
        conn, sql, {"wards": list(wards), "metrics": list(metrics), "start": start, "end": end}
    )
    cols = ["bucket", "ward_code", "metric", "n", "sum", "avg", "min", "max"]
    df = pd.DataFrame(rows, columns=cols)
    for c in cols[3:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["bucket"] = pd.to_datetime(df["bucket"], utc=True)
    return df


@query()
def aqi(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """VN_AQI (Decision 1459) of each ward from its hourly means (all stations of the ward).

    A period of up to one hour: the hourly AQI (NowCast for PM). One day: the daily AQI
    (24-h mean for PM, largest 1-h mean for gases). Longer: the mean of the daily AQIs.
    """
    hours = (end - start).total_seconds() / 3600.0
    if hours <= 1.0 + 1e-9:
        return _aqi_hourly(conn, wards=wards, hour=start, env=env)
    # per ward, local day and pollutant: the day's mean (PM) and largest hourly mean (gases)
    sql = """
    SELECT ward_code, (bucket AT TIME ZONE %(tz)s)::date AS day, metric,
           sum(sum) / NULLIF(sum(n), 0), max(avg)
    FROM readings_hourly
    WHERE ward_code = ANY(%(wards)s::text[]) AND metric = ANY(%(metrics)s::text[])
      AND bucket >= %(start)s AND bucket < %(end)s
    GROUP BY 1, 2, 3
    ORDER BY 1, 2
    """
    rows = _fetch(
        conn,
        sql,
        {
            "wards": list(wards),
            "metrics": list(aqi_math.POLLUTANTS),
            "start": start,
            "end": end,
            "tz": env.timezone,
        },
    )
    days: dict[tuple[str, dt.date], tuple[dict[str, float | None], dict[str, float | None]]] = {}
    for ward, day, metric, mean, max_1h in rows:
        pm, gases = days.setdefault((ward, day), ({}, {}))
        if metric in aqi_math.PM:
            pm[metric] = None if mean is None else float(mean)
        else:
            gases[metric] = None if max_1h is None else float(max_1h)
    per_ward: dict[str, list[int]] = {}
    for (ward, _day), (pm, gases) in days.items():
        value, _ = aqi_math.daily_aqi(pm, gases)
        if value is not None:
            per_ward.setdefault(ward, []).append(value)
    return _frame([(w, sum(v) / len(v), len(v)) for w, v in per_ward.items()])


def _aqi_hourly(
    conn: Connection, *, wards: Sequence[str], hour: dt.datetime, env: KpiEnv
) -> pd.DataFrame:
    df = _hourly(
        conn,
        wards=wards,
        metrics=aqi_math.POLLUTANTS,
        start=hour - dt.timedelta(hours=11),
        end=hour + dt.timedelta(hours=1),
    )
    out = []
    h0 = pd.Timestamp(hour).tz_convert("UTC")
    for ward, wdf in df.groupby("ward_code"):
        pm_hours: dict[str, list[float | None]] = {}
        gases: dict[str, float | None] = {}
        for metric, mdf in wdf.groupby("metric"):
            by_bucket = dict(zip(mdf["bucket"], mdf["avg"], strict=True))
            if metric in aqi_math.PM:
                pm_hours[str(metric)] = [
                    by_bucket.get(h0 - pd.Timedelta(hours=i)) for i in range(12)
                ]
            else:
                gases[str(metric)] = by_bucket.get(h0)
        value, _ = aqi_math.hourly_aqi(pm_hours, gases)
        if value is not None:
            out.append((ward, float(value), 1.0))
    return _frame(out)


@query("metric", "threshold_cm", "thresholds")
def flood_risk(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Highest hourly mean water level of the ward's stations in the period ÷ the ward's
    flood threshold, % (100 = at threshold). The hourly mean, not the raw maximum: one spike
    of a faulty gauge (the simulator sends some) would otherwise set the ward's — and, worst
    ward, the city's — flood risk for the whole day (the demo showed 1.351 % on a dry day).

    ``params``: ``metric`` (default water_level_cm), ``threshold_cm`` (default for every ward),
    ``thresholds`` (ward code → cm, overrides).
    """
    metric = str(params.get("metric", "water_level_cm"))
    default = float(params.get("threshold_cm", 100.0))
    per_ward = {str(k): float(v) for k, v in dict(params.get("thresholds") or {}).items()}
    sql = """
    SELECT ward_code, max(avg), sum(n) FROM readings_hourly
    WHERE ward_code = ANY(%(wards)s::text[]) AND metric = %(metric)s
      AND bucket >= %(start)s AND bucket < %(end)s
    GROUP BY ward_code
    """
    rows = _fetch(conn, sql, {"wards": list(wards), "metric": metric, "start": start, "end": end})
    return _frame([(w, 100.0 * float(m) / per_ward.get(w, default), n) for w, m, n in rows])


@query("metric", "volume_metric")
def traffic_congestion(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Mean congestion index (0-100 %) of the ward's traffic sensors over the period; the
    weight (volume) is the number of vehicles counted, for the city's weighted mean."""
    metric = str(params.get("metric", "congestion"))
    volume = str(params.get("volume_metric", "vehicle_count"))
    sql = """
    SELECT ward_code,
           sum(sum) FILTER (WHERE metric = %(metric)s)
               / NULLIF(sum(n) FILTER (WHERE metric = %(metric)s), 0),
           sum(sum) FILTER (WHERE metric = %(volume)s)
    FROM readings_hourly
    WHERE ward_code = ANY(%(wards)s::text[]) AND metric IN (%(metric)s, %(volume)s)
      AND bucket >= %(start)s AND bucket < %(end)s
    GROUP BY ward_code
    """
    rows = _fetch(
        conn,
        sql,
        {"wards": list(wards), "metric": metric, "volume": volume, "start": start, "end": end},
    )
    return _frame([r for r in rows if r[1] is not None])


# --------------------------------------------------------------------------- health


def sample_instants(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Instants an uptime is sampled at: every hour boundary in (start, end] (every 6 hours
    for periods longer than 2 days), plus ``end`` itself."""
    step = dt.timedelta(hours=1 if end - start <= dt.timedelta(days=2) else 6)
    first = start.replace(minute=0, second=0, microsecond=0) + step
    out = []
    t = first
    while t < end:
        out.append(t)
        t += step
    out.append(end)
    return out


@query("offline_factor")
def sensor_uptime(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Share of registered devices that reported within N × their type's expected interval,
    sampled at every hour end of the period (and at ``end``), %."""
    factor = float(params.get("offline_factor", env.offline_factor))
    metrics = list(env.metric_intervals)
    # per metric, the window of its device type: readings are found through the
    # (ward_code, metric, ts) index, only inside each sample's window
    sql = """
    WITH s AS (SELECT unnest(%(samples)s::timestamptz[]) AS tau),
    mw AS (SELECT * FROM unnest(%(metrics)s::text[], %(windows)s::float8[]) AS mw(metric, win)),
    slots AS (
        SELECT d.device_id, d.ward_code, s.tau FROM devices d JOIN s ON d.first_seen <= s.tau
        WHERE d.ward_code = ANY(%(wards)s::text[])
    ),
    seen AS (
        -- OFFSET 0 keeps the lateral subquery a per-(instant, metric) index range scan
        SELECT DISTINCT s.tau, r.device_id
        FROM s CROSS JOIN mw CROSS JOIN LATERAL (
            SELECT device_id FROM readings r
            WHERE r.metric = mw.metric AND r.ward_code = ANY(%(wards)s::text[])
              AND r.ts > s.tau - make_interval(secs => mw.win) AND r.ts <= s.tau
            OFFSET 0
        ) r
    )
    SELECT slots.ward_code,
           100.0 * count(seen.device_id) / count(*), count(*)
    FROM slots LEFT JOIN seen ON seen.tau = slots.tau AND seen.device_id = slots.device_id
    GROUP BY slots.ward_code
    """
    rows = _fetch(
        conn,
        sql,
        {
            "samples": sample_instants(start, end),
            "metrics": metrics,
            "windows": [factor * env.metric_intervals[m] for m in metrics],
            "wards": list(wards),
        },
    )
    return _frame(rows)


@query("offline_factor", "interval_s")
def camera_uptime(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Share of the ward's cameras that were up, sampled like sensor_uptime, %: up = a camera
    metric row within N × the camera interval before the instant (and, when the camera
    reports ``online``, that value > 0), and no open ``offline`` health event. A camera counts
    from its first ``online`` interval or health episode on (like a device from ``first_seen``):
    the hours before the ingester first watched it are no data, not downtime."""
    factor = float(params.get("offline_factor", env.offline_factor))
    win = factor * float(params.get("interval_s", env.camera_interval_s))
    sql = """
    WITH s AS (SELECT unnest(%(samples)s::timestamptz[]) AS tau),
    cams AS (
        -- watched since its first interval or health episode (before that, not "down")
        SELECT c.camera_id, c.ward_code, LEAST(
            (SELECT min(m.ts) FROM camera_metrics m
             WHERE m.camera_id = c.camera_id AND m.metric = 'online'),
            (SELECT min(e.started_at) FROM camera_events e WHERE e.camera_id = c.camera_id)
        ) AS since
        FROM cameras c WHERE c.ward_code = ANY(%(wards)s::text[])
    ),
    slots AS (SELECT cams.camera_id, cams.ward_code, s.tau FROM cams JOIN s ON cams.since <= s.tau),
    seen AS (
        SELECT s.tau, m.camera_id
        FROM s CROSS JOIN LATERAL (
            SELECT camera_id, metric, value FROM camera_metrics m
            WHERE m.ward_code = ANY(%(wards)s::text[])
              AND m.ts > s.tau - make_interval(secs => %(win)s) AND m.ts <= s.tau
            OFFSET 0
        ) m
        GROUP BY s.tau, m.camera_id
        HAVING COALESCE(bool_or(m.value > 0) FILTER (WHERE m.metric = 'online'), true)
    ),
    down AS (
        SELECT DISTINCT s.tau, e.camera_id FROM s JOIN camera_events e
          ON e.kind = 'offline' AND e.started_at <= s.tau
             AND (e.ended_at IS NULL OR e.ended_at > s.tau)
        WHERE e.ward_code = ANY(%(wards)s::text[])
    )
    SELECT slots.ward_code,
           100.0 * count(*) FILTER (WHERE seen.camera_id IS NOT NULL AND down.camera_id IS NULL)
               / count(*),
           count(*)
    FROM slots
    LEFT JOIN seen ON seen.tau = slots.tau AND seen.camera_id = slots.camera_id
    LEFT JOIN down ON down.tau = slots.tau AND down.camera_id = slots.camera_id
    GROUP BY slots.ward_code
    """
    rows = _fetch(
        conn,
        sql,
        {"samples": sample_instants(start, end), "win": win, "wards": list(wards)},
    )
    return _frame(rows)


@query()
def open_alerts(
    conn: Connection,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Alerts open or acknowledged (not resolved) at ``end`` per ward. Alerts are IOC's own
    records, so a ward without any has a true 0."""
    sql = """
    SELECT w.code,
           (SELECT count(*) FROM alerts a
            WHERE a.ward_code = w.code AND a.opened_at < %(end)s
              AND (a.resolved_at IS NULL OR a.resolved_at >= %(end)s)),
           1
    FROM unnest(%(wards)s::text[]) AS w(code)
    """
    return _frame(_fetch(conn, sql, {"wards": list(wards), "end": end}))


# --------------------------------------------------------------------------- incidents
# (defined in ioc/incidents/kpis.py: their SQL reads the incidents' audit trail)
from ioc.incidents import kpis as _incident_kpis  # noqa: E402

query("state")(_incident_kpis.incidents_in_state)
query()(_incident_kpis.incident_sla_breaches)
query()(_incident_kpis.incident_resolve_hours_median)
