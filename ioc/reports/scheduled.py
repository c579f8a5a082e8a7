"""Scheduled daily, weekly and monthly reports (``reports:`` in ``config/kpis.yaml``).

Each completed period gets one file in the reports folder (``reports/`` under ``IOC_VAR_DIR`` by default),
e.g. ``daily_kpis_2025-03-10.xlsx``, and one row in ``report_files`` (name, schedule, format, path,
period) that the dashboard lists. Idempotent: a period that already has its row is skipped
(unique index on name × period). The watermark ``job_watermarks.report:{name}`` remembers the
last period written: the first run writes only the last completed period, and after downtime
every missed period is written (at most ``catch_up``). Nothing is written for a period that
ends before the first data (a fresh install writes no empty reports; the report's first file
comes once data exists, and only for its latest completed period), and ``stop`` is checked
between files so that a stopping scheduler is not held up by a long catch-up.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from ioc.config import Config
from ioc.config.kpis import ReportDef
from ioc.db import Connection
from ioc.kpi import periods
from ioc.kpi.compute import get_watermark, set_watermark
from ioc.notify import reports as notify_reports
from ioc.reports.export import make_request, write_request

log = logging.getLogger("ioc.reports")

UNIT = {"daily": "day", "weekly": "week", "monthly": "month"}


def report_file_name(rep: ReportDef, start: dt.datetime, tz: ZoneInfo) -> str:
    local = start.astimezone(tz)
    if rep.schedule == "monthly":
        stamp = local.strftime("%Y-%m")
    elif rep.schedule == "weekly":
        iso = local.isocalendar()
        stamp = f"{iso.year}-W{iso.week:02d}"
    else:
        stamp = local.strftime("%Y-%m-%d")
    return f"{rep.name}_{stamp}.{rep.format}"


def due_periods(
    rep: ReportDef, now: dt.datetime, tz: ZoneInfo, since: dt.datetime | None = None
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Completed periods a report owes, oldest first: those starting at or after ``since``
    (the report's watermark; None = first run: only the last completed period), at most
    ``catch_up`` (at least 1) of the most recent."""
    unit = UNIT[rep.schedule]
    current = periods.floor(now, unit, tz)
    out: list[tuple[dt.datetime, dt.datetime]] = []
    start = current
    for _ in range(max(1, rep.catch_up)):
        start = periods.prev_start(start, unit, tz)
        if out and (since is None or start < since):
            break
        out.append((start, periods.next_start(start, unit, tz)))
    return out[::-1]


def has_data_before(conn: Connection, end: dt.datetime) -> bool:
    """Whether any reading or application exists before ``end``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM readings WHERE ts < %(end)s)"
            " OR EXISTS (SELECT 1 FROM applications WHERE received_at < %(end)s)",
            {"end": end},
        )
        row = cur.fetchone()
    conn.commit()
    return bool(row and row[0])


def invalidate_reports(
    conn: Connection, cfg: Config, recomputed: Mapping[str, Sequence[dt.datetime]]
) -> int:
    """Forget the written reports whose rows come from KPI periods that were recomputed
    because their data changed (``recomputed``: period kind → starts), so that the next run
    writes them again (the watermark goes back to the earliest; ``catch_up`` still applies).
    Returns how many reports will be written again."""
    tz = ZoneInfo(cfg.system.timezone)
    n = 0
    for rep in cfg.kpis.reports:
        starts = {periods.floor(s, UNIT[rep.schedule], tz) for s in recomputed.get(rep.every, ())}
        if not starts:
            continue
        with conn.cursor() as cur:
            cur.execute(
                "DELETE FROM report_files WHERE name = %s AND schedule IS NOT NULL"
                " AND period_from = ANY(%s::timestamptz[]) RETURNING period_from",
                (rep.name, sorted(starts)),
            )
            gone = [r[0] for r in cur.fetchall()]
        if gone:
            job = f"report:{rep.name}"
            wm = get_watermark(conn, job)
            first = min(gone)
            if wm is None or first < wm:
                set_watermark(conn, job, first)
            n += len(gone)
        conn.commit()
    return n


def run_due_reports(
    conn: Connection,
    cfg: Config,
    *,
    now: dt.datetime | None = None,
    reports_dir: Path | str | None = None,
    stop: threading.Event | None = None,
) -> list[Path]:
    """Write every report period that is due and not yet written; returns the new files."""
    now = now or dt.datetime.now(dt.UTC)
    tz = ZoneInfo(cfg.system.timezone)
    folder = Path(reports_dir or cfg.kpis.scheduler.reports_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for rep in cfg.kpis.reports:
        job = f"report:{rep.name}"
        since = get_watermark(conn, job)
        conn.commit()
        for start, end in due_periods(rep, now, tz, since):
            if stop is not None and stop.is_set():
                return written
            if not has_data_before(conn, end):
                continue  # no data yet: no report (nor watermark) for this period
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT 1 FROM report_files WHERE name = %s AND period_from = %s"
                    " AND schedule IS NOT NULL",
                    (rep.name, start),
                )
                done = cur.fetchone() is not None
            conn.commit()
            if done:
                continue
            path = folder / report_file_name(rep, start, tz)
            req = make_request(
                cfg,
                kpis=rep.kpis,
                start=start,
                end=end - dt.timedelta(microseconds=1),
                every=rep.every,
                fmt=rep.format,
                lang=rep.lang,
            )
            fd, tmp = tempfile.mkstemp(prefix=".report-", suffix="." + rep.format, dir=folder)
            os.close(fd)
            try:
                rows = write_request(conn, cfg, req, out=tmp, now=now)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            # e-mailed to subscribers: ward leaders' own files first (each export ends its
            # transaction), then the messages in the transaction that records the report
            deliveries = notify_reports.prepare(
                conn, cfg, rep, path=path, start=start, end=end, now=now
            )
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO report_files"
                    " (name, schedule, format, path, period_from, period_to)"
                    " VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (name, period_from) WHERE schedule IS NOT NULL DO NOTHING",
                    (rep.name, rep.schedule, rep.format, str(path), start, end),
                )
                notify_reports.enqueue_reports(cur, cfg, deliveries, start=start, end=end, now=now)
            set_watermark(conn, job, end)
            conn.commit()
            log.info("report %s: %d rows", path, rows)
            written.append(path)
    return written
