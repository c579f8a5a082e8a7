"""The rows of an export, in period order: :func:`kpi_rows` (stored KPI values through a
server-side cursor, missing periods computed), :func:`metric_rows` (readings roll-ups),
:func:`count_rows` (how many there will be, for progress) and :func:`table_rows` (either, as the
data sheet's columns: ward names, labels, rounded values, status in words)."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

from psycopg2 import sql as psql

from ioc.config import Config
from ioc.db import Connection
from ioc.i18n import localized, tr
from ioc.kpi import periods
from ioc.kpi.compute import CITY, compute_period

from .request import ExportRequest

# progress(rows_done, rows_total)
ProgressHook = Callable[[int, int], None]


# Kpi.status in words: the same rule as the dashboards' colours
STATUS_WORDS = {
    "vi": {
        "green": "đạt mục tiêu",
        "amber": "chưa đạt mục tiêu",
        "red": "vượt ngưỡng đỏ",
        "neutral": "không có mục tiêu",
        "none": "",
    },
    "en": {
        "green": "meets target",
        "amber": "below target",
        "red": "past red threshold",
        "neutral": "no target",
        "none": "",
    },
}


def kpi_rows(
    conn: Connection, cfg: Config, req: ExportRequest, *, now: dt.datetime | None = None
) -> Iterator[tuple[dt.datetime, str, str, float | None]]:
    """(period_start, ward_code, kpi, value) in period order, wards in config order then
    the city; stored values streamed from a server-side cursor, missing periods computed."""
    tz = ZoneInfo(cfg.system.timezone)
    now = now or dt.datetime.now(dt.UTC)
    first = periods.floor(req.start, req.every, tz)
    last = min(req.end, now)
    want = list(req.wards) + ([CITY] if req.include_city else [])
    cur = conn.cursor(name=f"ioc_export_{os.getpid()}_{id(req)}")
    cur.itersize = 5000
    try:
        cur.execute(
            """
            SELECT period_start, kpi, ward_code, value FROM kpi_values
            WHERE kpi = ANY(%(kpis)s::text[]) AND period = %(every)s
              AND period_start >= %(first)s AND period_start <= %(last)s
              AND ward_code = ANY(%(wards)s::text[])
            ORDER BY period_start
            """,
            {
                "kpis": list(req.kpis),
                "every": req.every,
                "first": first,
                "last": last,
                "wards": want,
            },
        )
        pending: tuple[Any, ...] | None = next(cur, None)
        for p_start, p_end in periods.iter_periods(first, last, req.every, tz):
            stored: dict[str, dict[str, float | None]] = {}
            while pending is not None and pending[0] <= p_start:
                if pending[0] == p_start:
                    stored.setdefault(pending[1], {})[pending[2]] = pending[3]
                pending = next(cur, None)
            missing = [k for k in req.kpis if k not in stored]
            if missing:
                for v in compute_period(
                    conn,
                    cfg,
                    kpis=missing,
                    period=req.every,
                    start=p_start,
                    end=p_end,
                    now=now,
                    wards=list(req.wards),
                    city=req.include_city,
                ):
                    stored.setdefault(v.kpi, {})[v.ward_code] = v.value
            for ward in want:
                for k in req.kpis:
                    yield p_start, ward, k, stored[k].get(ward)
    finally:
        cur.close()


def _metric_query(cfg: Config, req: ExportRequest) -> tuple[psql.Composable, dict[str, Any]]:
    tz = ZoneInfo(cfg.system.timezone)
    first = periods.floor(req.start, req.every, tz)
    params = {
        "metrics": list(req.metrics),
        "wards": list(req.wards),
        "first": first,
        "last": req.end,
        "tz": cfg.system.timezone,
        "unit": req.every,
    }
    if req.every in ("hour", "day"):
        table = "readings_hourly" if req.every == "hour" else "readings_daily"
        query: psql.Composable = psql.SQL("""
            SELECT bucket, ward_code, metric, n, avg, min, max FROM {}
            WHERE metric = ANY(%(metrics)s::text[]) AND ward_code = ANY(%(wards)s::text[])
              AND bucket >= %(first)s AND bucket <= %(last)s
            ORDER BY bucket, ward_code, metric
        """).format(psql.Identifier(table))
    else:
        query = psql.SQL("""
            SELECT (date_trunc(%(unit)s, bucket AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s) AS p,
                   ward_code, metric, sum(n), sum(sum) / NULLIF(sum(n), 0), min(min), max(max)
            FROM readings_daily
            WHERE metric = ANY(%(metrics)s::text[]) AND ward_code = ANY(%(wards)s::text[])
              AND bucket >= %(first)s
              AND (date_trunc(%(unit)s, bucket AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s)
                  <= %(last)s
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """)
    return query, params


def metric_rows(
    conn: Connection, cfg: Config, req: ExportRequest
) -> Iterator[tuple[dt.datetime, str, str, int, float | None, float | None, float | None]]:
    """(period_start, ward, metric, n, mean, min, max) from the roll-ups, server-side cursor."""
    query, params = _metric_query(cfg, req)
    cur = conn.cursor(name=f"ioc_export_m_{os.getpid()}_{id(req)}")
    cur.itersize = 5000
    try:
        cur.execute(query, params)
        for row in cur:
            yield row[0], row[1], row[2], int(row[3]), row[4], row[5], row[6]
    finally:
        cur.close()


def count_rows(
    conn: Connection, cfg: Config, req: ExportRequest, *, now: dt.datetime | None = None
) -> int:
    """How many data rows the export will write: from the period × ward × KPI plan for KPIs
    (every cell is written, empty or not), from a count of the roll-up query for readings."""
    if req.kpis:
        tz = ZoneInfo(cfg.system.timezone)
        now = now or dt.datetime.now(dt.UTC)
        first = periods.floor(req.start, req.every, tz)
        n_periods = sum(1 for _ in periods.iter_periods(first, min(req.end, now), req.every, tz))
        return n_periods * (len(req.wards) + int(req.include_city)) * len(req.kpis)
    query, params = _metric_query(cfg, req)
    with conn.cursor() as cur:
        cur.execute(psql.SQL("SELECT count(*) FROM ({}) AS q").format(query), params)
        row = cur.fetchone()
    return int(row[0]) if row else 0


class Progress:
    """Counts rows as they pass and reports (done, total) at most every ``every_s`` seconds,
    plus once at the start and once at the end."""

    def __init__(self, hook: ProgressHook, total: int, every_s: float) -> None:
        self.hook = hook
        self.total = total
        self.every_s = every_s
        self.done = 0
        self.last = time.monotonic()
        hook(0, total)

    def count(self, rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
        for row in rows:
            yield row
            self.done += 1
            now = time.monotonic()
            if now - self.last >= self.every_s:
                self.last = now
                self.hook(self.done, max(self.total, self.done))


def ward_name(cfg: Config, code: str, lang: str) -> str:
    if code == CITY:
        return tr("city", lang)
    w = cfg.ward(code)
    return w.name if w else code


def metric_unit(cfg: Config, metric: str) -> str:
    for dtype in cfg.sensors.device_types.values():
        m = dtype.metric(metric)
        if m is not None:
            return m.unit
    return ""


def table_rows(
    conn: Connection, cfg: Config, req: ExportRequest, now: dt.datetime | None
) -> Iterator[list[Any]]:
    """Data rows (period start as an aware datetime) in the column order of ioc.i18n.COLUMNS."""
    lang = req.lang
    names = {c: ward_name(cfg, c, lang) for c in (*req.wards, CITY)}
    if req.kpis:
        labels = {k: localized(cfg.kpis.kpis[k], "label", lang) for k in req.kpis}
        units = {k: cfg.kpis.kpis[k].unit for k in req.kpis}
        digits = {k: cfg.kpis.kpis[k].decimals for k in req.kpis}
        words = STATUS_WORDS[lang]
        kdefs = {k: cfg.kpis.kpis[k] for k in req.kpis}
        for p, ward, k, v in kpi_rows(conn, cfg, req, now=now):
            value = None if v is None else round(float(v), digits[k])
            # the dashboards' status rule (Kpi.status), in words
            state = words[kdefs[k].status(None if v is None else float(v))]
            yield [p, ward, names[ward], k, labels[k], value, units[k], state]
    else:
        units = {m: metric_unit(cfg, m) for m in req.metrics}
        for p, ward, m, n, mean, lo, hi in metric_rows(conn, cfg, req):
            yield [p, ward, names.get(ward, ward), m, n, mean, lo, hi, units[m]]
