"""Writing an export: :func:`write_request` streams a validated request's rows into a CSV
(:func:`write_csv`) or an XLSX file (:func:`write_xlsx`: an "about" sheet saying what, when,
which wards, which period and how numbers are formatted, then the data sheet(s));
:func:`write_export` validates and writes in one call."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any
from zoneinfo import ZoneInfo

from ioc.config import Config
from ioc.db import Connection
from ioc.i18n import (
    DATE_FORMAT,
    DEFINITION_COLUMNS,
    EXCEL_DATE_FORMAT,
    columns,
    localized,
    tr,
)
from ioc.kpi import periods
from ioc.localtime import OFFSET_LABEL

from .request import ExportRequest, make_request
from .rows import Progress, ProgressHook, count_rows, table_rows, ward_name

XLSX_MAX_ROWS = 1_048_576


def write_csv(
    rows: Iterator[list[Any]], titles: list[str], out: IO[bytes], tz: ZoneInfo, every: str
) -> int:
    """UTF-8 with BOM, ``.`` decimal point, ISO-8601 period starts with the zone's offset."""
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


# --------------------------------------------------------------------------- XLSX


@dataclass(frozen=True)
class _Formats:
    """The workbook's cell formats (added in a fixed order: the same request, the same bytes)."""

    bold: Any
    title: Any
    wrap: Any
    head: Any
    date: Any
    integer: Any
    decimals: dict[int, Any]  # by number of decimals, 0-6


def _formats(wb: Any, req: ExportRequest) -> _Formats:
    bold = wb.add_format({"bold": True})
    title = wb.add_format({"bold": True, "font_size": 14})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    date_code = EXCEL_DATE_FORMAT[req.lang] + (" hh:mm" if req.every == "hour" else "")
    date = wb.add_format({"num_format": date_code})
    integer = wb.add_format({"num_format": "#,##0"})
    decimals = {
        d: wb.add_format({"num_format": "#,##0" + ("." + "0" * d if d else "")}) for d in range(7)
    }
    return _Formats(bold, title, wrap, head, date, integer, decimals)


def _wards_text(cfg: Config, req: ExportRequest) -> str:
    lang = req.lang
    if req.all_wards:
        text = tr("all_wards", lang, n=len(req.wards))
    else:
        text = ", ".join(f"{c} {ward_name(cfg, c, lang)}" for c in req.wards)
    if req.include_city:
        text += " + " + tr("city", lang)
    return text


def _about_lines(
    cfg: Config, req: ExportRequest, tz: ZoneInfo, created: dt.datetime
) -> list[tuple[str, str]]:
    """(title, text) lines of the about sheet: what, when, which wards and period, formats."""
    lang = req.lang
    dfmt = DATE_FORMAT[lang]
    first = periods.floor(req.start, req.every, tz)
    every_txt = tr(f"every_{req.every}", lang)
    if req.kpis:
        what = ", ".join(localized(cfg.kpis.kpis[k], "label", lang) for k in req.kpis)
    else:
        what = ", ".join(req.metrics)
    return [
        (
            tr("report", lang),
            tr("report_kpis" if req.kpis else "report_metrics", lang, what=what),
        ),
        (
            tr("created", lang),
            created.astimezone(tz).strftime(dfmt + " %H:%M") + f" ({OFFSET_LABEL})",
        ),
        (tr("wards", lang), _wards_text(cfg, req)),
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


def _write_definitions(info: Any, r: int, fm: _Formats, cfg: Config, req: ExportRequest) -> None:
    """The KPIs' definitions (label, unit, decimals, roll-up, description) from row ``r``."""
    lang = req.lang
    info.set_column(2, 5, 18)
    for c, name in enumerate(tr(k, lang) for k in DEFINITION_COLUMNS):
        info.write(r, c, name, fm.head)
    for i, k in enumerate(req.kpis, start=r + 1):
        kd = cfg.kpis.kpis[k]
        rollup = kd.rollup + (f" ({kd.weight})" if kd.weight else "")
        info.write_row(
            i,
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


def _write_about(
    wb: Any, fm: _Formats, cfg: Config, req: ExportRequest, tz: ZoneInfo, created: dt.datetime
) -> None:
    info = wb.add_worksheet(tr("sheet_about", req.lang))
    info.set_column(0, 0, 28)
    info.set_column(1, 1, 90)
    info.write(0, 0, tr("report_title", req.lang), fm.title)
    lines = _about_lines(cfg, req, tz, created)
    for r, (key, val) in enumerate(lines, start=2):
        info.write(r, 0, key, fm.bold)
        info.write(r, 1, val, fm.wrap)
    if req.kpis:
        _write_definitions(info, 2 + len(lines) + 1, fm, cfg, req)


def _data_sheet(wb: Any, fm: _Formats, titles: list[str], req: ExportRequest, sheet_no: int) -> Any:
    """Data sheet number ``sheet_no`` (from 1; a new one every XLSX_MAX_ROWS rows), with its
    column widths and the column titles in a frozen first row."""
    base = tr("sheet_data", req.lang)
    ws = wb.add_worksheet(base if sheet_no == 1 else f"{base} {sheet_no}")
    ws.set_column(0, 0, 17 if req.every == "hour" else 12)
    ws.set_column(1, 1, 10)
    ws.set_column(2, 2, 26)
    ws.set_column(3, 3, 22)
    ws.set_column(4, 4, 36 if req.kpis else 10)
    ws.set_column(5, len(titles) - 1, 12)
    ws.freeze_panes(1, 0)
    ws.write_row(0, 0, titles, fm.head)
    return ws


def _write_kpi_cells(ws: Any, i: int, row: list[Any], fm: _Formats, digits: int) -> None:
    """label, value (number format of the KPI's decimals; empty = no data), unit, status."""
    ws.write_string(i, 4, row[4])
    if row[5] is not None:
        ws.write_number(i, 5, row[5], fm.decimals[digits])
    ws.write_string(i, 6, row[6])
    if row[7]:
        ws.write_string(i, 7, row[7])


def _write_metric_cells(ws: Any, i: int, row: list[Any], fm: _Formats) -> None:
    """count, mean, min, max (empty = no data), unit."""
    ws.write_number(i, 4, row[4], fm.integer)
    for c in (5, 6, 7):
        if row[c] is not None:
            ws.write_number(i, c, float(row[c]), fm.decimals[2])
    ws.write_string(i, 8, row[8])


def _write_data(
    wb: Any,
    fm: _Formats,
    rows: Iterator[list[Any]],
    titles: list[str],
    cfg: Config,
    req: ExportRequest,
    tz: ZoneInfo,
) -> int:
    """The data rows, on as many sheets as XLSX's row limit needs (one, empty, for none)."""
    n = 0
    sheet_no = 0
    ws: Any = None
    row_i = XLSX_MAX_ROWS
    kpi_digits = {k: cfg.kpis.kpis[k].decimals for k in req.kpis}
    for row in rows:
        if row_i >= XLSX_MAX_ROWS:
            sheet_no += 1
            ws = _data_sheet(wb, fm, titles, req, sheet_no)
            row_i = 1
        ws.write_datetime(row_i, 0, row[0].astimezone(tz).replace(tzinfo=None), fm.date)
        ws.write_string(row_i, 1, row[1])
        ws.write_string(row_i, 2, row[2])
        ws.write_string(row_i, 3, row[3])
        if req.kpis:
            _write_kpi_cells(ws, row_i, row, fm, kpi_digits[row[3]])
        else:
            _write_metric_cells(ws, row_i, row, fm)
        row_i += 1
        n += 1
    if ws is None:
        ws = wb.add_worksheet(tr("sheet_data", req.lang))
        ws.write_row(0, 0, titles, fm.head)
    return n


def write_xlsx(
    rows: Iterator[list[Any]],
    titles: list[str],
    out: str | IO[bytes],
    cfg: Config,
    req: ExportRequest,
    tz: ZoneInfo,
    created: dt.datetime,
) -> int:
    """xlsxwriter in ``constant_memory`` mode: the about sheet, then the data; returns the
    number of data rows."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(out, {"constant_memory": True})
    # the file's creation time is the export's "now": the same request and now, the same bytes
    wb.set_properties({"created": created.astimezone(dt.UTC).replace(tzinfo=None)})
    fm = _formats(wb, req)
    _write_about(wb, fm, cfg, req, tz, created)
    n = _write_data(wb, fm, rows, titles, cfg, req, tz)
    wb.close()
    return n


# --------------------------------------------------------------------------- entry points


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
        rows = table_rows(conn, cfg, req, now)
        if progress is not None:
            rows = Progress(progress, count_rows(conn, cfg, req, now=now), progress_every_s).count(
                rows
            )
        if req.fmt == "xlsx":
            target: str | IO[bytes] = os.fspath(out) if isinstance(out, (str, os.PathLike)) else out
            n = write_xlsx(rows, titles, target, cfg, req, tz, now)
        elif isinstance(out, (str, os.PathLike)):
            with open(out, "wb") as fh:
                n = write_csv(rows, titles, fh, tz, req.every)
        else:
            n = write_csv(rows, titles, out, tz, req.every)
        if progress is not None:
            progress(n, n)
        return n
    finally:
        if not conn.autocommit:
            conn.rollback()  # end the read transaction (and its named cursors)
