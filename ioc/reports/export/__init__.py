"""``ioc export``: KPI values or readings roll-ups to CSV or XLSX, streamed.

Reusable: :func:`write_export` writes to a path or a binary file object; the dashboard's
/export page runs the same :func:`write_request` as a job (see "jobs" below: progress in
``export_jobs``, the file stored in the database). Rows come in period order:

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

The package: :mod:`.request` (what is asked, validated), :mod:`.rows` (the queries producing
the rows), :mod:`.writers` (CSV and XLSX) and :mod:`.jobs` (the /export page's jobs, run by the
scheduler's export worker); every public name is importable from ``ioc.reports.export``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ioc.context import Context
from ioc.db import connect
from ioc.errors import UsageError

from .jobs import (
    CHUNK_BYTES,
    JOB_CHANNEL,
    JOB_KEEP,
    JOB_MAX_ACTIVE_PER_USER,
    JOB_STALE_AFTER,
    JOBS_DIR,
    ExportWorker,
    Job,
    TooManyJobs,
    create_job,
    get_job,
    job_chunk,
    job_chunks,
    job_file,
    jobs_folder,
    next_queued,
    run_job,
    sweep_jobs,
)
from .request import (
    CONTENT_TYPES,
    ExportRequest,
    make_request,
    request_args,
    request_from_args,
)
from .rows import STATUS_WORDS, ProgressHook, count_rows, kpi_rows, metric_rows
from .writers import XLSX_MAX_ROWS, write_export, write_request

__all__ = [
    "CHUNK_BYTES",
    "CONTENT_TYPES",
    "JOBS_DIR",
    "JOB_CHANNEL",
    "JOB_KEEP",
    "JOB_MAX_ACTIVE_PER_USER",
    "JOB_STALE_AFTER",
    "STATUS_WORDS",
    "XLSX_MAX_ROWS",
    "ExportRequest",
    "ExportWorker",
    "Job",
    "ProgressHook",
    "TooManyJobs",
    "count_rows",
    "create_job",
    "get_job",
    "job_chunk",
    "job_chunks",
    "job_file",
    "jobs_folder",
    "kpi_rows",
    "main",
    "make_request",
    "metric_rows",
    "next_queued",
    "request_args",
    "request_from_args",
    "run_job",
    "sweep_jobs",
    "write_export",
    "write_request",
]


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
