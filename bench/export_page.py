"""Benchmark: a long export through the /export page of a real ``ioc serve`` (export jobs).

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/export_page.py \
        [--kpis 1] [--format xlsx|csv]

Seeds a scratch database with 94 wards + city × 1 year of daily values of ``--kpis`` KPIs,
starts ``ioc serve``, signs in as an analyst, posts the page's Export callback and then polls
it every 0.6 s as the page does, until the job is done; downloads the file. Prints the time
from the click to "done" and to the downloaded file, the progress states the page saw, and
the job row's updates (counted by a trigger). Baseline in the same run: ``write_request``
called directly (the code behind ``ioc export``) for the same request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from _scratch import scratch_database, seed_daily_kpis  # noqa: E402
from dash_fixtures import free_port, login_cookie, start_server, stop_server, wait_http  # noqa: E402

from ioc.db import connect  # noqa: E402
from ioc.reports.export import ExportWorker, make_request, write_request  # noqa: E402
from ioc.users import add_user  # noqa: E402

PASSWORD = "bench-pass-123"
OUTPUTS = [
    "export-job.data",
    "export-poll.disabled",
    "export-progress.children",
    "export-msg.children",
    "export-result.children",
    "export-ready.data",
    "export-go.disabled",
]
LOG_SQL = """
CREATE TABLE bench_job_log (at timestamptz, rows_done bigint, rows_total bigint, status text);
CREATE FUNCTION bench_log_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO bench_job_log VALUES (clock_timestamp(), NEW.rows_done, NEW.rows_total, NEW.status);
  RETURN NEW; END $$;
CREATE TRIGGER bench_job_log AFTER UPDATE ON export_jobs
  FOR EACH ROW EXECUTE FUNCTION bench_log_job();
"""


def callback(
    base: str, cookie: str, state: dict[tuple[str, str], Any], ticks: int, job: Any
) -> Any:
    body = {
        "output": ".." + "...".join(OUTPUTS) + "..",
        "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in OUTPUTS],
        "inputs": [
            {"id": "export-go", "property": "n_clicks", "value": 1},
            {"id": "export-poll", "property": "n_intervals", "value": ticks},
        ],
        "changedPropIds": ["export-poll.n_intervals" if ticks else "export-go.n_clicks"],
        "state": [
            *({"id": i, "property": p, "value": v} for (i, p), v in state.items()),
            {"id": "export-job", "property": "data", "value": job},
        ],
    }
    req = urllib.request.Request(
        base + "/_dash-update-component",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Cookie": f"ioc_session={cookie}",
            "Origin": base,
        },
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["response"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kpis", type=int, default=1, help="how many KPIs (default 1)")
    ap.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    a = ap.parse_args()
    with scratch_database("export_page") as (url, cfg), tempfile.TemporaryDirectory() as tmp:
        conn = connect(url)
        kpis = list(cfg.kpis.kpis)[: a.kpis]
        tz = dt.timezone(dt.timedelta(hours=7))
        first = dt.datetime(2025, 1, 1, tzinfo=tz)
        seed_daily_kpis(conn, cfg, kpis, first, 365)
        with conn.cursor() as cur:
            cur.execute(LOG_SQL)
        add_user(conn, "analyst", PASSWORD, "analyst", [])
        conn.commit()

        # baseline: the same request written directly, as `ioc export` does
        req = make_request(
            cfg,
            kpis=kpis,
            wards=None,
            start=first,
            end=first + dt.timedelta(days=364),
            every="day",
            fmt=a.format,
        )
        t0 = time.perf_counter()
        n = write_request(conn, cfg, req, out=Path(tmp) / f"direct.{a.format}")
        direct = time.perf_counter() - t0
        print(f"write_request directly: {n:,} rows in {direct:.2f} s")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(url, Path(tmp) / "var", port, Path(tmp) / "serve.log")
        # the jobs' worker, as `ioc scheduler` runs it
        exports = ExportWorker(url, cfg, poll_s=0.5, work_dir=Path(tmp) / "exports").start()
        try:
            wait_http(base + "/healthz", 60)
            cookie = login_cookie(base, "analyst", PASSWORD)
            state = {
                ("export-kpis", "value"): kpis,
                ("export-wards", "value"): None,
                ("export-range", "start_date"): "2025-01-01",
                ("export-range", "end_date"): "2025-12-31",
                ("export-every", "value"): "day",
                ("export-format", "value"): a.format,
            }
            t0 = time.perf_counter()
            resp = callback(base, cookie, state, 0, None)
            job = resp["export-job"]["data"]
            seen: list[str] = []
            ticks = 0
            while True:
                time.sleep(0.6)
                ticks += 1
                resp = callback(base, cookie, state, ticks, job)
                text = json.dumps(resp["export-progress"], ensure_ascii=False)
                m = re.search(r"(\d+) %", text)
                if m and (not seen or seen[-1] != m.group(0)):
                    seen.append(m.group(0))
                if resp["export-poll"]["disabled"]:
                    break
            t_done = time.perf_counter() - t0
            link = resp["export-ready"]["data"]
            dl = urllib.request.Request(base + link, headers={"Cookie": f"ioc_session={cookie}"})
            with urllib.request.urlopen(dl, timeout=60) as r:
                size = len(r.read())
            t_file = time.perf_counter() - t0
        finally:
            exports.stop()
            stop_server(proc)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE status = 'running' AND rows_total IS NOT NULL)"
                " FROM bench_job_log"
            )
            (updates,) = cur.fetchone() or (0,)
            cur.execute(
                "SELECT rows_done, extract(epoch FROM finished_at - started_at) FROM export_jobs"
                " WHERE id = %s",
                (job,),
            )
            done_rows, job_s = cur.fetchone() or (0, 0)
        conn.close()
        print(
            f"/export page, {a.format}, {len(kpis)} KPI(s): {done_rows:,} rows; job ran "
            f"{float(job_s):.1f} s; click -> done seen by the page {t_done:.1f} s, -> file "
            f"downloaded {t_file:.1f} s ({size / 1e6:.2f} MB); {ticks} polls; progress states "
            f"seen: {', '.join(seen) or 'none'}; progress updates of the job row: {updates}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
