"""Which closed KPI periods are stale because data for them arrived after they were computed.

The KPI watermark moves forward with the clock, and closed periods are recomputed only within
``rollup_lookback_hours``. Data that arrives later for an older period — the demo's backfill
landing after the scheduler's first run, a gateway's queue after a long outage, ``ioc import
applications`` of last month — would otherwise never reach ``kpi_values`` (the dashboards'
history and the scheduled reports would show "no data" for days that have data).

A period's **data signature** is (readings counted in the roll-ups, application and
citizen-report events) with a timestamp inside it: cheap aggregates over ``readings_hourly`` /
``readings_daily`` (the same relations on both storage paths, kept current for late data by
their invalidation logs), ``application_events`` and ``report_events``.
:class:`DataSignatures` remembers the signature each period had when
its KPIs were computed; a later, different signature marks the period stale. On the first run
of a scheduler process (nothing remembered) a period is stale when it has data but none of its
data-driven KPIs has a city value (it was computed before its data arrived).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from psycopg2 import sql

from ioc.config import Config
from ioc.db import Connection
from ioc.kpi import periods
from ioc.kpi.compute import CITY

Signature = tuple[int, int]  # (readings, application events)
EMPTY: Signature = (0, 0)

# KPI query functions whose value comes from readings or applications (NULL without data);
# camera uptime and open alerts have values with no readings or applications at all.
DATA_QUERIES = frozenset(
    {
        "on_time_rate",
        "overdue_applications",
        "online_share",
        "avg_processing_days",
        "applications_received",
        "aqi",
        "flood_risk",
        "traffic_congestion",
        "sensor_uptime",
        "reports_received",
        "reports_on_time_rate",
        "reports_overdue",
        "avg_report_handling_hours",
    }
)


@dataclass
class DataSignatures:
    """Per period kind: period start → the signature its stored KPIs were computed from."""

    seen: dict[str, dict[dt.datetime, Signature]] = field(default_factory=dict)
    # closed periods recomputed by the last run because their data changed (period kind →
    # starts): what was derived from them before (scheduled reports) is out of date
    recomputed: dict[str, list[dt.datetime]] = field(default_factory=dict)

    def known(self, period: str) -> bool:
        return period in self.seen

    def remember(self, period: str, sigs: dict[dt.datetime, Signature]) -> None:
        self.seen[period] = dict(sigs)

    def changed(self, period: str, sigs: dict[dt.datetime, Signature]) -> list[dt.datetime]:
        old = self.seen.get(period, {})
        keys = set(old) | set(sigs)
        return sorted(k for k in keys if old.get(k, EMPTY) != sigs.get(k, EMPTY))


def signatures(
    conn: Connection, cfg: Config, period: str, lo: dt.datetime, hi: dt.datetime
) -> dict[dt.datetime, Signature]:
    """Data signature of every period of kind ``period`` starting in [lo, hi) that has data."""
    tz = ZoneInfo(cfg.system.timezone)
    unit = "hour" if period == "hour" else "day"
    table = "readings_hourly" if unit == "hour" else "readings_daily"
    out: dict[dt.datetime, list[int]] = {}
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT bucket, sum(n)::bigint FROM {} WHERE bucket >= %s AND bucket < %s"
                " GROUP BY bucket"
            ).format(sql.Identifier(table)),
            (lo, hi),
        )
        for bucket, n in cur.fetchall():
            out.setdefault(periods.floor(bucket, period, tz), [0, 0])[0] += int(n or 0)
        cur.execute(
            "SELECT date_trunc(%s, ts AT TIME ZONE %s), count(*) FROM application_events"
            " WHERE ts >= %s AND ts < %s GROUP BY 1",
            (unit, cfg.system.timezone, lo, hi),
        )
        for local, n in cur.fetchall():
            start = periods.floor(local.replace(tzinfo=tz), period, tz)
            out.setdefault(start, [0, 0])[1] += int(n)
        # citizen-report events count with the application events (late reports, imports)
        cur.execute(
            "SELECT date_trunc(%s, ts AT TIME ZONE %s), count(*) FROM report_events"
            " WHERE ts >= %s AND ts < %s GROUP BY 1",
            (unit, cfg.system.timezone, lo, hi),
        )
        for local, n in cur.fetchall():
            start = periods.floor(local.replace(tzinfo=tz), period, tz)
            out.setdefault(start, [0, 0])[1] += int(n)
    conn.commit()
    return {k: (v[0], v[1]) for k, v in out.items() if k >= lo and v != [0, 0]}


def computed_without_data(
    conn: Connection, cfg: Config, period: str, starts: list[dt.datetime]
) -> list[dt.datetime]:
    """The periods among ``starts`` whose stored data-driven city values are all NULL."""
    kpis = [name for name, k in cfg.kpis.kpis.items() if k.query in DATA_QUERIES]
    if not starts or not kpis:
        return []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT s FROM unnest(%s::timestamptz[]) AS s WHERE NOT EXISTS ("
            " SELECT 1 FROM kpi_values v WHERE v.kpi = ANY(%s::text[]) AND v.ward_code = %s"
            " AND v.period = %s AND v.period_start = s AND v.value IS NOT NULL)",
            (starts, kpis, CITY, period),
        )
        rows = [r[0] for r in cur.fetchall()]
    conn.commit()
    return sorted(rows)


def stale_periods(
    conn: Connection,
    cfg: Config,
    memory: DataSignatures,
    period: str,
    *,
    lo: dt.datetime,
    hi: dt.datetime,
) -> tuple[list[dt.datetime], dict[dt.datetime, Signature]]:
    """(starts of the periods in [lo, hi) to recompute, the signatures read now)."""
    sigs = signatures(conn, cfg, period, lo, hi)
    if memory.known(period):
        stale = [s for s in memory.changed(period, sigs) if lo <= s < hi]
    else:
        stale = computed_without_data(conn, cfg, period, sorted(sigs))
    return stale, sigs
