"""``ioc export``: KPI values or readings roll-ups to CSV or XLSX, streamed.

Reusable: :func:`write_export` writes to a path or a binary file object; the dashboard's
/export page runs the same :func:`write_request` as a job (see "jobs" below: progress in
``export_jobs``, the file under the var dir). Rows come in period order:

* KPIs (``--kpi``): one row per period × ward (× KPI), values from ``kpi_values`` when the
  scheduler stored them (read through a server-side cursor), otherwise computed on the fly;
  the city roll-up (``city``) follows the wards when no ``--ward`` is given (or ``city`` is
  asked for). An empty value means **no data**, never 0.
* Readings (``--metric``): count, mean, min and max per period × ward × metric from
  ``readings_hourly`` / ``readings_daily``.

CSV: UTF-8 with BOM (Excel opens it right; pandas reads it as is), ``.`` decimal point,
ISO-8601 period starts with the +07:00 offset. XLSX (xlsxwriter ``constant_memory``): a first
sheet saying what, when, which wards, which period and how numbers are formatted, then the
data sheet with dates and per-KPI number formats. Column titles in Vietnamese unless
``lang='en'``. A period is included when its start lies between ``start`` (rounded down to the
period) and ``end``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from psycopg2 import sql as psql

from ioc.config import Config
from ioc.context import Context
from ioc.db import Connection, connect
from ioc.errors import IOCError, UsageError
from ioc.i18n import (
    DATE_FORMAT,
    DEFINITION_COLUMNS,
    EXCEL_DATE_FORMAT,
    columns,
    lang_or_default,
    localized,
    tr,
)
from ioc.kpi import periods
from ioc.kpi.compute import CITY, compute_period
from ioc.localtime import OFFSET_LABEL

XLSX_MAX_ROWS = 1_048_576
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# progress(rows_done, rows_total)
ProgressHook = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportRequest:
    kpis: tuple[str, ...]
    metrics: tuple[str, ...]
    wards: tuple[str, ...]
    include_city: bool
    all_wards: bool
    start: dt.datetime
    end: dt.datetime
    every: str
    fmt: str
    lang: str


def make_request(
    cfg: Config,
    *,
    kpis: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    wards: Sequence[str] | None = None,
    start: dt.datetime,
    end: dt.datetime,
    every: str = "day",
    fmt: str = "csv",
    lang: str = "vi",
) -> ExportRequest:
    """Validate an export request; a bad one raises UsageError (one line, exit code 2)."""
    if bool(kpis) == bool(metrics):
        raise UsageError("export: give either --kpi or --metric (one of them)")
    for k in kpis or ():
        if k not in cfg.kpis.kpis:
            raise UsageError(f"export: unknown KPI {k!r} (known: {', '.join(cfg.kpis.kpis)})")
    known_metrics = cfg.sensors.all_metric_names()
    for m in metrics or ():
        if m not in known_metrics:
            raise UsageError(f"export: unknown metric {m!r}")
    codes = [w.code for w in cfg.wards]
    if wards:
        for w in wards:
            if w != CITY and w not in cfg.ward_codes:
                raise UsageError(f"export: unknown ward {w!r} (codes are in config/wards.yaml)")
        chosen = [w for w in dict.fromkeys(wards) if w != CITY]
        include_city = CITY in wards
    else:
        chosen, include_city = codes, True
    if every not in periods.PERIODS:
        raise UsageError(f"export: --every must be one of {', '.join(periods.PERIODS)}")
    if fmt not in ("csv", "xlsx"):
        raise UsageError("export: --format must be csv or xlsx")
    if start.tzinfo is None or end.tzinfo is None:
        raise UsageError("export: --from/--to need a time zone")
    if start > end:
        raise UsageError(
            f"export: --from ({start.date().isoformat()}) is after --to ({end.date().isoformat()})"
        )
    return ExportRequest(
        kpis=tuple(dict.fromkeys(kpis or ())),
        metrics=tuple(dict.fromkeys(metrics or ())),
        wards=tuple(chosen),
        include_city=include_city if kpis else False,
        all_wards=not wards,
        start=start,
        end=end,
        every=every,
        fmt=fmt,
        lang=lang_or_default(lang),
    )


# --------------------------------------------------------------------------- rows


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


class _Progress:
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


# --------------------------------------------------------------------------- writers


def _ward_name(cfg: Config, code: str, lang: str) -> str:
    if code == CITY:
        return tr("city", lang)
    w = cfg.ward(code)
    return w.name if w else code


def _metric_unit(cfg: Config, metric: str) -> str:
    for dtype in cfg.sensors.device_types.values():
        m = dtype.metric(metric)
        if m is not None:
            return m.unit
    return ""


def _table(
    conn: Connection, cfg: Config, req: ExportRequest, now: dt.datetime | None
) -> Iterator[list[Any]]:
    """Data rows (period start as an aware datetime) in the column order of ioc.i18n.COLUMNS."""
    lang = req.lang
    names = {c: _ward_name(cfg, c, lang) for c in (*req.wards, CITY)}
    if req.kpis:
        labels = {k: localized(cfg.kpis.kpis[k], "label", lang) for k in req.kpis}
        units = {k: cfg.kpis.kpis[k].unit for k in req.kpis}
        digits = {k: cfg.kpis.kpis[k].decimals for k in req.kpis}
        for p, ward, k, v in kpi_rows(conn, cfg, req, now=now):
            value = None if v is None else round(float(v), digits[k])
            yield [p, ward, names[ward], k, labels[k], value, units[k]]
    else:
        units = {m: _metric_unit(cfg, m) for m in req.metrics}
        for p, ward, m, n, mean, lo, hi in metric_rows(conn, cfg, req):
            yield [p, ward, names.get(ward, ward), m, n, mean, lo, hi, units[m]]


def _write_csv(
    rows: Iterator[list[Any]], titles: list[str], out: IO[bytes], tz: ZoneInfo, every: str
) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=False)
    n = 0
    try:
        w = csv.writer(text)
        w.writerow(titles)
        for row in rows:
            row[0] = row[0].astimezone(tz).isoformat()
            w.writerow(["" if x is None else x for x in row])
            n += 1
        text.flush()
    finally:
        text.detach()
    return n


def _write_xlsx(
    rows: Iterator[list[Any]],
    titles: list[str],
    out: str | IO[bytes],
    cfg: Config,
    req: ExportRequest,
    tz: ZoneInfo,
    created: dt.datetime,
) -> int:
    import xlsxwriter

    lang = req.lang
    wb = xlsxwriter.Workbook(out, {"constant_memory": True})
    # the file's creation time is the export's "now": the same request and now, the same bytes
    wb.set_properties({"created": created.astimezone(dt.UTC).replace(tzinfo=None)})
    bold = wb.add_format({"bold": True})
    title_fmt = wb.add_format({"bold": True, "font_size": 14})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    date_code = EXCEL_DATE_FORMAT[lang] + (" hh:mm" if req.every == "hour" else "")
    date_fmt = wb.add_format({"num_format": date_code})
    int_fmt = wb.add_format({"num_format": "#,##0"})
    dec_fmt = {
        d: wb.add_format({"num_format": "#,##0" + ("." + "0" * d if d else "")}) for d in range(7)
    }

    # --- header sheet: what, when, which wards, which period, number formats
    info = wb.add_worksheet(tr("sheet_about", lang))
    info.set_column(0, 0, 28)
    info.set_column(1, 1, 90)
    now_local = created.astimezone(tz)
    first = periods.floor(req.start, req.every, tz)
    if req.all_wards:
        wards_txt = tr("all_wards", lang, n=len(req.wards))
    else:
        wards_txt = ", ".join(f"{c} {_ward_name(cfg, c, lang)}" for c in req.wards)
    if req.include_city:
        wards_txt += " + " + tr("city", lang)
    dfmt = DATE_FORMAT[lang]
    every_txt = tr(f"every_{req.every}", lang)
    if req.kpis:
        what = ", ".join(localized(cfg.kpis.kpis[k], "label", lang) for k in req.kpis)
    else:
        what = ", ".join(req.metrics)
    lines: list[tuple[str, str]] = [
        (
            tr("report", lang),
            tr("report_kpis" if req.kpis else "report_metrics", lang, what=what),
        ),
        (tr("created", lang), now_local.strftime(dfmt + " %H:%M") + f" ({OFFSET_LABEL})"),
        (tr("wards", lang), wards_txt),
        (
            tr("period", lang),
            f"{first.strftime(dfmt)} – {req.end.astimezone(tz).strftime(dfmt)}, "
            + tr("per_every", lang, every=every_txt),
        ),
        (tr("source", lang), "IOC Đà Nẵng (kpi_values / readings)"),
        (tr("time_zone", lang), cfg.system.timezone),
        (tr("empty_cell", lang), tr("empty_cell_means", lang)),
        (tr("number_format", lang), tr("number_format_means", lang)),
    ]
    info.write(0, 0, tr("report_title", lang), title_fmt)
    r = 2
    for key, val in lines:
        info.write(r, 0, key, bold)
        info.write(r, 1, val, wrap)
        r += 1
    if req.kpis:
        r += 1
        cols = [tr(k, lang) for k in DEFINITION_COLUMNS]
        info.set_column(2, 5, 18)
        for c, name in enumerate(cols):
            info.write(r, c, name, head)
        r += 1
        for k in req.kpis:
            kd = cfg.kpis.kpis[k]
            rollup = kd.rollup + (f" ({kd.weight})" if kd.weight else "")
            info.write_row(
                r,
                0,
                [
                    k,
                    localized(kd, "label", lang),
                    kd.unit,
                    kd.decimals,
                    rollup,
                    localized(kd, "description", lang),
                ],
            )
            r += 1

    # --- data sheet(s)
    n = 0
    sheet_no = 0
    ws: Any = None
    row_i = XLSX_MAX_ROWS
    kpi_digits = {k: cfg.kpis.kpis[k].decimals for k in req.kpis}
    for row in rows:
        if row_i >= XLSX_MAX_ROWS:
            sheet_no += 1
            base = tr("sheet_data", lang)
            ws = wb.add_worksheet(base if sheet_no == 1 else f"{base} {sheet_no}")
            ws.set_column(0, 0, 17 if req.every == "hour" else 12)
            ws.set_column(1, 1, 10)
            ws.set_column(2, 2, 26)
            ws.set_column(3, 3, 22)
            ws.set_column(4, 4, 36 if req.kpis else 10)
            ws.set_column(5, len(titles) - 1, 12)
            ws.freeze_panes(1, 0)
            ws.write_row(0, 0, titles, head)
            row_i = 1
        ws.write_datetime(row_i, 0, row[0].astimezone(tz).replace(tzinfo=None), date_fmt)
        ws.write_string(row_i, 1, row[1])
        ws.write_string(row_i, 2, row[2])
        ws.write_string(row_i, 3, row[3])
        if req.kpis:
            ws.write_string(row_i, 4, row[4])
            if row[5] is not None:
                ws.write_number(row_i, 5, row[5], dec_fmt[kpi_digits[row[3]]])
            ws.write_string(row_i, 6, row[6])
        else:
            ws.write_number(row_i, 4, row[4], int_fmt)
            for c in (5, 6, 7):
                if row[c] is not None:
                    ws.write_number(row_i, c, float(row[c]), dec_fmt[2])
            ws.write_string(row_i, 8, row[8])
        row_i += 1
        n += 1
    if ws is None:
        ws = wb.add_worksheet(tr("sheet_data", lang))
        ws.write_row(0, 0, titles, head)
    wb.close()
    return n


def write_export(
    conn: Connection,
    cfg: Config,
    *,
    kpis: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    wards: Sequence[str] | None = None,
    start: dt.datetime,
    end: dt.datetime,
    every: str = "day",
    fmt: str = "csv",
    out: str | os.PathLike[str] | IO[bytes],
    lang: str = "vi",
    now: dt.datetime | None = None,
    progress: ProgressHook | None = None,
) -> int:
    """Write a KPI or readings export to ``out`` (a path or a binary file); returns the number
    of data rows. Raises UsageError on a bad request. ``progress`` as in write_request."""
    req = make_request(
        cfg,
        kpis=kpis,
        metrics=metrics,
        wards=wards,
        start=start,
        end=end,
        every=every,
        fmt=fmt,
        lang=lang,
    )
    return write_request(conn, cfg, req, out=out, now=now, progress=progress)


def write_request(
    conn: Connection,
    cfg: Config,
    req: ExportRequest,
    *,
    out: str | os.PathLike[str] | IO[bytes],
    now: dt.datetime | None = None,
    progress: ProgressHook | None = None,
    progress_every_s: float = 0.5,
) -> int:
    """Write a validated request (``ioc export`` and the /export page's jobs both come here).

    ``now`` (default: the clock) bounds the last period and is the file's creation time: the
    same request with the same ``now`` writes the same bytes. ``progress(done, total)`` is
    called with 0 rows first (the total counted from the plan, or by a count query for
    readings), then at most every ``progress_every_s`` seconds while rows are written, and with
    (rows, rows) at the end."""
    tz = ZoneInfo(cfg.system.timezone)
    now = now or dt.datetime.now(dt.UTC)
    titles = columns("kpi" if req.kpis else "metric", req.lang)
    try:
        rows = _table(conn, cfg, req, now)
        if progress is not None:
            rows = _Progress(progress, count_rows(conn, cfg, req, now=now), progress_every_s).count(
                rows
            )
        if req.fmt == "xlsx":
            target: str | IO[bytes] = os.fspath(out) if isinstance(out, (str, os.PathLike)) else out
            n = _write_xlsx(rows, titles, target, cfg, req, tz, now)
        elif isinstance(out, (str, os.PathLike)):
            with open(out, "wb") as fh:
                n = _write_csv(rows, titles, fh, tz, req.every)
        else:
            n = _write_csv(rows, titles, out, tz, req.every)
        if progress is not None:
            progress(n, n)
        return n
    finally:
        if not conn.autocommit:
            conn.rollback()  # end the read transaction (and its named cursors)


# --------------------------------------------------------------------------- jobs
#
# The /export page runs an export as a job: a row in ``export_jobs`` (request, owner, status,
# rows done of the total). The click only records it (and NOTIFYs ``ioc_export_jobs``); an
# :class:`ExportWorker` (a thread of every ``ioc scheduler``, on any host) claims it, writes
# the file to a temporary file of its own and stores it in ``export_file_chunks`` in the same
# transaction that marks the job done. Whichever dashboard host answers reads progress from
# the row and streams the file from the database. No state lives in a web process: a job whose
# worker died (its pid gone on this host, or no heartbeat for JOB_STALE_AFTER) is marked failed
# by the next sweep; files are deleted after JOB_KEEP.

JOB_KEEP = dt.timedelta(hours=24)
JOB_STALE_AFTER = dt.timedelta(minutes=10)
JOB_MAX_ACTIVE_PER_USER = 2
JOBS_DIR = "exports"
JOB_CHANNEL = "ioc_export_jobs"
CHUNK_BYTES = 1 << 20
_HOST = socket.gethostname()

log = logging.getLogger("ioc.export")


def request_args(req: ExportRequest) -> dict[str, Any]:
    """make_request's arguments for ``req``, as JSON (stored with the job)."""
    wards: list[str] | None = None
    if not req.all_wards:
        wards = list(req.wards) + ([CITY] if req.include_city else [])
    return {
        "kpis": list(req.kpis),
        "metrics": list(req.metrics),
        "wards": wards,
        "start": req.start.isoformat(),
        "end": req.end.isoformat(),
        "every": req.every,
        "fmt": req.fmt,
        "lang": req.lang,
    }


def request_from_args(cfg: Config, args: dict[str, Any]) -> ExportRequest:
    return make_request(
        cfg,
        kpis=args.get("kpis") or None,
        metrics=args.get("metrics") or None,
        wards=args.get("wards") or None,
        start=dt.datetime.fromisoformat(args["start"]),
        end=dt.datetime.fromisoformat(args["end"]),
        every=args["every"],
        fmt=args["fmt"],
        lang=args.get("lang", "vi"),
    )


class TooManyJobs(UsageError):
    """The user already has JOB_MAX_ACTIVE_PER_USER exports under way."""


def create_job(conn: Connection, req: ExportRequest, *, user: str, file_name: str) -> int:
    """Record a queued job for ``user`` and wake the workers. Raises UsageError when the user
    already has JOB_MAX_ACTIVE_PER_USER jobs under way."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM export_jobs WHERE user_name = %s"
            " AND status IN ('queued', 'running')",
            (user,),
        )
        row = cur.fetchone()
        if row and int(row[0]) >= JOB_MAX_ACTIVE_PER_USER:
            raise TooManyJobs(
                f"export: {JOB_MAX_ACTIVE_PER_USER} exports already under way; wait for one"
            )
        cur.execute(
            """
            INSERT INTO export_jobs (user_name, request, file_path, file_name, content_type)
            VALUES (%s, %s::jsonb, '', %s, %s) RETURNING id
            """,
            (user, json.dumps(request_args(req)), file_name, CONTENT_TYPES[req.fmt]),
        )
        job_id = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(psql.SQL("NOTIFY {}").format(psql.Identifier(JOB_CHANNEL)))
    conn.commit()
    return job_id


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, IOCError):
        text = f"{type(exc).__name__}: {text}"
    return text[:300]


def run_job(
    db_url: str,
    cfg: Config,
    job_id: int,
    *,
    now: dt.datetime | None = None,
    progress_every_s: float = 0.5,
    work_dir: Path | None = None,
) -> str:
    """Claim a queued job and run it to its end (in the caller's thread); returns its final
    status ('gone' when another worker claimed it first). Progress goes to the job's row at
    most every ``progress_every_s`` seconds; the file is written under ``work_dir`` (default:
    the system's temporary folder), stored in the database, then removed."""
    upd = connect(db_url, application_name="ioc-export-job", autocommit=True)
    tmp: Path | None = None
    try:
        with upd.cursor() as cur:
            cur.execute(
                """
                UPDATE export_jobs SET status = 'running', started_at = now(),
                    heartbeat_at = now(), host = %s, pid = %s
                WHERE id = %s AND status = 'queued' RETURNING request
                """,
                (_HOST, os.getpid(), job_id),
            )
            row = cur.fetchone()
        if row is None:
            return "gone"
        args = row[0]

        def hook(done: int, total: int) -> None:
            if done and done >= total:
                return  # the end: the 'done' update follows at once
            with upd.cursor() as cur:
                cur.execute(
                    "UPDATE export_jobs SET rows_done = %s, rows_total = %s, heartbeat_at = now()"
                    " WHERE id = %s AND status = 'running'",
                    (done, total, job_id),
                )

        try:
            req = request_from_args(cfg, args)
            folder = Path(work_dir or tempfile.gettempdir())
            folder.mkdir(parents=True, exist_ok=True)
            # the id in the name, plus a random part: the folder may be shared by workers
            tmp = folder / f"job-{job_id}-{secrets.token_hex(8)}.{req.fmt}.part"
            conn = connect(db_url, application_name="ioc-export-job")
            try:
                n = write_request(
                    conn,
                    cfg,
                    req,
                    out=tmp,
                    now=now,
                    progress=hook,
                    progress_every_s=progress_every_s,
                )
            finally:
                conn.close()
            return _store_file(db_url, job_id, tmp, n)
        except Exception as exc:
            if not isinstance(exc, IOCError):
                log.exception("export job %s failed", job_id)
            with upd.cursor() as cur:
                cur.execute(
                    "UPDATE export_jobs SET status = 'failed', error = %s, finished_at = now()"
                    " WHERE id = %s",
                    (_one_line(exc), job_id),
                )
            return "failed"
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    finally:
        upd.close()


def _store_file(db_url: str, job_id: int, path: Path, rows: int) -> str:
    """The file into ``export_file_chunks`` and the job 'done', in one transaction."""
    conn = connect(db_url, application_name="ioc-export-job")
    try:
        size = 0
        with conn.cursor() as cur, open(path, "rb") as fh:
            for seq in range(1 << 31):
                data = fh.read(CHUNK_BYTES)
                if not data:
                    break
                size += len(data)
                cur.execute(
                    "INSERT INTO export_file_chunks (job_id, seq, data) VALUES (%s, %s, %s)",
                    (job_id, seq, data),
                )
            cur.execute(
                """
                UPDATE export_jobs SET status = 'done', rows_done = %s, rows_total = %s,
                    size_bytes = %s, finished_at = now(), heartbeat_at = now()
                WHERE id = %s AND status = 'running'
                """,
                (rows, rows, size, job_id),
            )
            if cur.rowcount == 0:  # marked failed meanwhile (thought dead): not served
                conn.rollback()
                return "failed"
        conn.commit()
        return "done"
    finally:
        conn.close()


def job_chunk(conn: Connection, job_id: int, seq: int) -> bytes | None:
    """Chunk ``seq`` (from 0) of a job's stored file; None past the end."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT data FROM export_file_chunks WHERE job_id = %s AND seq = %s", (job_id, seq)
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else bytes(row[0])


def job_chunks(conn: Connection, job_id: int) -> Iterator[bytes]:
    """The stored file of a job, chunk by chunk (one short query per chunk)."""
    for seq in range(1 << 31):
        data = job_chunk(conn, job_id, seq)
        if data is None:
            return
        yield data


def job_file(conn: Connection, job_id: int) -> bytes:
    """The stored file of a job, whole (tests and small files)."""
    return b"".join(job_chunks(conn, job_id))


def next_queued(conn: Connection) -> int | None:
    """The oldest queued job, if any (a worker then claims it with :func:`run_job`)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM export_jobs WHERE status = 'queued' ORDER BY id LIMIT 1"
            " FOR UPDATE SKIP LOCKED"
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else int(row[0])


class ExportWorker:
    """Runs queued export jobs: ``threads`` named threads, each waiting on LISTEN
    ``ioc_export_jobs`` (with a poll every ``poll_s`` in case a notification was missed),
    claiming the oldest queued job and running it. Any number of workers, on any hosts, may
    run side by side: a job is claimed by exactly one (``UPDATE ... WHERE status = 'queued'``).
    """

    def __init__(
        self,
        db_url: str,
        cfg: Config,
        *,
        threads: int = 2,
        poll_s: float = 2.0,
        work_dir: Path | None = None,
    ) -> None:
        self.db_url = db_url
        self.cfg = cfg
        self.poll_s = poll_s
        self.work_dir = work_dir
        self.stop_event = threading.Event()
        self.done = 0
        self._threads = [
            threading.Thread(target=self._loop, name=f"ioc-export-worker-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> ExportWorker:
        for th in self._threads:
            th.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; a job under way runs to its end (bounded by ``timeout``)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for th in self._threads:
            th.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        import select

        listen: Connection | None = None
        while not self.stop_event.is_set():
            try:
                if listen is None or listen.closed:
                    listen = connect(
                        self.db_url, application_name="ioc-export-worker", autocommit=True
                    )
                    with listen.cursor() as cur:
                        cur.execute(psql.SQL("LISTEN {}").format(psql.Identifier(JOB_CHANNEL)))
                while not self.stop_event.is_set():
                    job_id = next_queued(listen)
                    if job_id is None:
                        break
                    status = run_job(self.db_url, self.cfg, job_id, work_dir=self.work_dir)
                    if status != "gone":
                        self.done += 1
                        log.info("export job %s: %s", job_id, status)
                if self.stop_event.is_set():
                    break
                # wait for a NOTIFY (or the poll), in slices so a stop is prompt
                waited = 0.0
                while waited < self.poll_s and not self.stop_event.is_set():
                    ready, _, _ = select.select([listen], [], [], 0.5)
                    waited += 0.5
                    if ready:
                        listen.poll()
                        listen.notifies.clear()
                        break
            except Exception as exc:  # the database went away: retry after a pause
                log.warning("export worker: %s", _one_line(exc))
                if listen is not None and not listen.closed:
                    listen.close()
                listen = None
                self.stop_event.wait(self.poll_s)
        if listen is not None and not listen.closed:
            listen.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Job:
    id: int
    user_name: str
    status: str
    rows_done: int
    rows_total: int | None
    error: str | None
    file_path: str
    file_name: str
    content_type: str
    size_bytes: int | None = None

    @property
    def percent(self) -> float | None:
        if not self.rows_total:
            return 100.0 if self.status == "done" else None
        return min(100.0, 100.0 * self.rows_done / self.rows_total)


def get_job(conn: Connection, job_id: int) -> Job | None:
    """The job, after marking it failed if it is under way in a process that is gone (or
    expired, its file deleted, if it finished more than JOB_KEEP ago)."""
    sweep_jobs(conn, only=job_id)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, user_name, status, rows_done, rows_total, error, file_path, file_name,"
            " content_type, size_bytes FROM export_jobs WHERE id = %s",
            (job_id,),
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else Job(*row)


def sweep_jobs(
    conn: Connection,
    *,
    only: int | None = None,
    keep: dt.timedelta = JOB_KEEP,
    stale_after: dt.timedelta = JOB_STALE_AFTER,
    folder: Path | None = None,
) -> tuple[int, int]:
    """Mark failed the jobs whose process is gone (its pid, on this host) or silent for
    ``stale_after``; delete the files of jobs finished more than ``keep`` ago (and, in
    ``folder``, a worker's stray temporary files that old). Returns (jobs marked failed,
    files removed)."""
    failed = 0
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, host, pid, heartbeat_at < now() - %s FROM export_jobs"
            " WHERE status IN ('queued', 'running') AND (%s::bigint IS NULL OR id = %s)",
            (stale_after, only, only),
        )
        dead = [
            r[0]
            for r in cur.fetchall()
            if r[3] or (r[1] == _HOST and r[2] is not None and not _pid_alive(int(r[2])))
        ]
        if dead:
            cur.execute(
                "UPDATE export_jobs SET status = 'failed', finished_at = now(),"
                " error = 'export interrupted: the server process stopped'"
                " WHERE id = ANY(%s) AND status IN ('queued', 'running')",
                (dead,),
            )
            failed = cur.rowcount
        cur.execute(
            "UPDATE export_jobs SET status = 'expired' WHERE status IN ('done', 'failed')"
            " AND coalesce(finished_at, created_at) < now() - %s"
            " AND (%s::bigint IS NULL OR id = %s) RETURNING id",
            (keep, only, only),
        )
        expired = [r[0] for r in cur.fetchall()]
        removed = 0
        if expired:
            cur.execute(
                "WITH d AS (DELETE FROM export_file_chunks WHERE job_id = ANY(%s)"
                " RETURNING job_id) SELECT count(DISTINCT job_id) FROM d",
                (expired,),
            )
            removed = int(cur.fetchone()[0])  # type: ignore[index]
    conn.commit()
    if folder is not None and only is None and folder.is_dir():
        cutoff = time.time() - keep.total_seconds()
        for p in folder.glob("job-*"):
            try:
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
    return failed, removed


def jobs_folder(var_dir: str | os.PathLike[str]) -> Path:
    """Where a worker writes its temporary files: ``exports/`` under its var dir."""
    return Path(var_dir).resolve() / JOBS_DIR


def main(args: argparse.Namespace, ctx: Context) -> int:
    """``ioc export``: validate, then write to a temporary file renamed over ``--out``."""
    cfg = ctx.config()
    req = make_request(
        cfg,
        kpis=args.kpi,
        metrics=args.metric,
        wards=args.ward,
        start=args.start,
        end=args.end,
        every=args.every,
        fmt=args.format,
        lang=args.lang,
    )
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise UsageError(f"export: folder {out.parent} does not exist")
    conn = connect(ctx.database_url(), application_name="ioc-export")
    fd, tmp = tempfile.mkstemp(prefix=".ioc-export-", suffix="." + req.fmt, dir=out.parent)
    os.close(fd)
    try:
        n = write_request(conn, cfg, req, out=tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    print(f"wrote {n} rows to {out}")
    return 0
