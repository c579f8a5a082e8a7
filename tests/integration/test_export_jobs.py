"""/export jobs on real PostgreSQL: progress rows rise to the total, the file (stored in the
database by the worker) is what ``ioc export`` writes for the same request, dead and old jobs are
cleaned, and only the job's owner (or an admin) downloads its file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

# ruff: noqa: F811 - the fixture imported from test_export is used as a parameter
from test_export import data  # noqa: F401 - the same applications and stored value
from test_kpi_helpers import add_readings, execute, t

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.db.migrate import refresh_rollups
from ioc.reports.export import (
    CONTENT_TYPES,
    ExportWorker,
    create_job,
    get_job,
    job_file,
    jobs_folder,
    make_request,
    run_job,
    sweep_jobs,
    write_export,
    write_request,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "export-jobs-pass-1"
ICT = dt.timezone(dt.timedelta(hours=7))


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def _req(cfg: Config, fmt: str, d0: str, d1: str, **kw: Any) -> Any:
    return make_request(
        cfg,
        kpis=kw.pop("kpis", ["on_time_rate"]),
        start=dt.datetime.fromisoformat(d0).replace(tzinfo=ICT),
        end=dt.datetime.fromisoformat(d1).replace(hour=23, minute=59, second=59, tzinfo=ICT),
        every="day",
        fmt=fmt,
        **kw,
    )


def _log_updates(conn: Connection) -> None:
    """Every change of an export_jobs row, as the database saw it (a trigger, not sampling)."""
    execute(
        conn,
        """
        CREATE TABLE job_log (at timestamptz, status text, rows_done bigint, rows_total bigint);
        CREATE FUNCTION log_job() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO job_log VALUES (clock_timestamp(), NEW.status, NEW.rows_done,
                                        NEW.rows_total);
            RETURN NEW;
        END $$;
        CREATE TRIGGER job_log AFTER UPDATE ON export_jobs FOR EACH ROW EXECUTE FUNCTION log_job();
        """,
    )


def test_progress_rises_monotonically_to_the_total(
    conn: Connection, fresh_db_url: str, config: Config, tmp_path: Path
) -> None:
    # a year of two daily KPIs for 94 wards + the city, computed on the fly: long enough
    # (seconds) to report progress several times
    req = _req(config, "csv", "2025-01-01", "2025-12-31", kpis=["on_time_rate", "online_share"])
    total = 365 * 95 * 2
    every = 0.25
    job = create_job(conn, req, user="ana", file_name="x.csv")
    _log_updates(conn)
    assert get_job(conn, job).status == "queued"  # type: ignore[union-attr]
    work = jobs_folder(tmp_path)
    t0 = time.monotonic()
    assert run_job(fresh_db_url, config, job, progress_every_s=every, work_dir=work) == "done"
    took = time.monotonic() - t0
    with conn.cursor() as cur:
        cur.execute("SELECT at, status, rows_done, rows_total FROM job_log ORDER BY at")
        log = cur.fetchall()
    conn.commit()
    assert log[0][1:] == ("running", 0, None)  # claimed
    assert log[-1][1:] == ("done", total, total)
    progress = [r for r in log if r[1] == "running" and r[3] is not None]
    assert progress[0][2:] == (0, total)  # the total is known before the first row
    done = [r[2] for r in log]
    assert done == sorted(done), done  # never goes back
    middle = [d for d in done if 0 < d < total]
    assert len(middle) >= 3, (took, done)  # progress seen while it ran, not only at the ends
    # not more often than asked: the row is not rewritten for every row of the file
    times = [r[0] for r in progress]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= every * 0.95, gaps
    assert len(progress) <= took / every + 2
    j = get_job(conn, job)
    assert j is not None and j.status == "done" and j.percent == 100.0
    data = job_file(conn, job)
    assert j.size_bytes == len(data) > 1 << 20  # more than one chunk
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert len(rows) == 1 + total
    assert work.is_dir() and not list(work.iterdir())  # the worker's temporary file is gone


@pytest.mark.parametrize(("every", "rows"), [("day", 2), ("hour", 3), ("month", 1)])
def test_readings_export_knows_its_total_first(
    conn: Connection, config: Config, every: str, rows: int
) -> None:
    a, b = config.wards[0].code, config.wards[1].code
    for ward, dev in ((a, "aq1"), (b, "aq2")):
        add_readings(
            conn,
            ward,
            dev,
            "pm25",
            [("2025-03-10 01:00", 10), ("2025-03-10 02:30", 30), ("2025-03-11 01:00", 5)],
        )
    refresh_rollups(conn, config, now=t("2025-03-12 00:00"))
    calls: list[tuple[int, int]] = []
    n = write_export(
        conn,
        config,
        metrics=["pm25"],
        wards=[a, b],
        start=t("2025-03-10 00:00"),
        end=t("2025-03-11 23:00"),
        every=every,
        fmt="csv",
        out=io.BytesIO(),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert n == 2 * rows  # two wards
    assert calls[0] == (0, n) and calls[-1] == (n, n)


def _cli(db_url: str, out: Path, fmt: str, *extra: str) -> None:
    env = dict(os.environ, IOC_DATABASE_URL=db_url, IOC_CONFIG_DIR=str(ROOT / "config"))
    r = subprocess.run(
        [
            *(sys.executable, "-m", "ioc.cli", "export", "--kpi", "on_time_rate", "online_share"),
            *("--from", "2025-03-09", "--to", "2025-03-11", "--every", "day"),
            *("--format", fmt, "--out", str(out), *extra),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


# the two places where an XLSX says when it was made
CREATED = [
    (re.compile(rb"\d\d/\d\d/\d{4} \d\d:\d\d \(GMT\+7\)"), b"<created>"),
    (re.compile(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:\1>"), b"<created>"),
]


def _xlsx_parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    for name, body in parts.items():
        for pattern, repl in CREATED:
            body = pattern.sub(repl, body)
        parts[name] = body
    return parts


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_job_file_is_what_ioc_export_writes(
    conn: Connection,
    fresh_db_url: str,
    config: Config,
    data: tuple[str, str],
    tmp_path: Path,
    fmt: str,
) -> None:
    cli_out = tmp_path / f"cli.{fmt}"
    _cli(fresh_db_url, cli_out, fmt)
    req = _req(config, fmt, "2025-03-09", "2025-03-11", kpis=["on_time_rate", "online_share"])
    job = create_job(conn, req, user="ana", file_name=f"j.{fmt}")
    assert run_job(fresh_db_url, config, job) == "done"
    j = get_job(conn, job)
    assert j is not None and j.rows_done == j.rows_total == 3 * 95 * 2
    assert j.content_type == CONTENT_TYPES[fmt]
    got, want = job_file(conn, job), cli_out.read_bytes()
    if fmt == "csv":
        assert got == want
    else:
        # the same bytes but for the minute it was written (the CLI ran a moment earlier)
        g, w = _xlsx_parts(got), _xlsx_parts(want)
        assert sorted(g) == sorted(w)
        assert [n for n in g if g[n] != w[n]] == []
        wb = openpyxl.load_workbook(io.BytesIO(got), read_only=True)
        try:
            rows = list(wb["Dữ liệu"].iter_rows(values_only=True))
        finally:
            wb.close()
        assert len(rows) == 1 + 3 * 95 * 2
        assert (rows[1][1], rows[1][3], rows[1][5]) == (data[0], "on_time_rate", 12.3)


def test_same_request_and_now_same_bytes(
    conn: Connection, fresh_db_url: str, config: Config, data: tuple[str, str], tmp_path: Path
) -> None:
    now = dt.datetime(2025, 4, 1, 9, 30, tzinfo=dt.UTC)
    req = _req(config, "xlsx", "2025-03-09", "2025-03-11")
    buf = io.BytesIO()
    write_request(conn, config, req, out=buf, now=now)
    job = create_job(conn, req, user="ana", file_name="j.xlsx")
    assert run_job(fresh_db_url, config, job, now=now) == "done"
    j = get_job(conn, job)
    assert j is not None and job_file(conn, job) == buf.getvalue()


def test_failed_job_keeps_a_one_line_error(
    conn: Connection, fresh_db_url: str, config: Config, tmp_path: Path
) -> None:
    req = _req(config, "csv", "2025-03-09", "2025-03-11")
    job = create_job(conn, req, user="ana", file_name="j.csv")
    # the KPI was removed from the configuration between the click and the run
    execute(
        conn,
        "UPDATE export_jobs SET request = jsonb_set(request, '{kpis}', '[\"gone_kpi\"]')"
        " WHERE id = %s",
        job,
    )
    work = jobs_folder(tmp_path)
    assert run_job(fresh_db_url, config, job, work_dir=work) == "failed"
    j = get_job(conn, job)
    assert j is not None and j.status == "failed"
    assert j.error is not None and "gone_kpi" in j.error and "\n" not in j.error
    assert job_file(conn, job) == b"" and j.size_bytes is None  # nothing stored
    assert not work.exists() or not list(work.iterdir())  # no temporary file left


def test_a_user_runs_at_most_two_exports_at_once(
    conn: Connection, config: Config, tmp_path: Path
) -> None:
    from ioc.errors import UsageError

    req = _req(config, "csv", "2025-03-09", "2025-03-11")
    for _ in range(2):
        create_job(conn, req, user="ana", file_name="j.csv")
    with pytest.raises(UsageError, match="already under way"):
        create_job(conn, req, user="ana", file_name="j.csv")
    create_job(conn, req, user="bob", file_name="j.csv")  # others may


def test_jobs_of_dead_processes_fail_and_old_files_go(
    conn: Connection, config: Config, tmp_path: Path
) -> None:
    folder = jobs_folder(tmp_path)
    req = _req(config, "csv", "2025-03-09", "2025-03-11")
    ids = [create_job(conn, req, user=f"u{i}", file_name="j.csv") for i in range(5)]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    folder.mkdir(parents=True)
    # the stored files of jobs 3 and 4
    for i in ids[3:]:
        execute(conn, "INSERT INTO export_file_chunks VALUES (%s, 0, 'x')", i)
    stray = folder / "job-999-abc.csv.part"
    stray.write_text("x")
    os.utime(stray, (time.time() - 2 * 86400,) * 2)
    fresh_stray = folder / "job-998-abc.csv.part"
    fresh_stray.write_text("x")
    with conn.cursor() as cur:
        # 0: running in a process of this host that is gone (the server was killed)
        cur.execute(
            "UPDATE export_jobs SET status='running', host=%s, pid=%s WHERE id=%s",
            (host, dead.pid, ids[0]),
        )
        # 1: running elsewhere, silent for an hour
        cur.execute(
            "UPDATE export_jobs SET status='running', host='other-host', pid=1,"
            " heartbeat_at = now() - interval '1 hour' WHERE id=%s",
            (ids[1],),
        )
        # 2: running here, alive and recent: left alone
        cur.execute(
            "UPDATE export_jobs SET status='running', host=%s, pid=%s WHERE id=%s",
            (host, os.getpid(), ids[2]),
        )
        # 3: done 25 h ago, its file still there; 4: done an hour ago
        cur.execute(
            "UPDATE export_jobs SET status='done',"
            " finished_at = now() - interval '25 hours' WHERE id=%s",
            (ids[3],),
        )
        cur.execute(
            "UPDATE export_jobs SET status='done', finished_at = now() - interval '1 hour'"
            " WHERE id=%s",
            (ids[4],),
        )
    conn.commit()
    failed, removed = sweep_jobs(conn, folder=folder)
    assert (failed, removed) == (2, 2)
    status = {i: get_job(conn, i) for i in ids}
    assert [status[i].status for i in ids] == [  # type: ignore[union-attr]
        "failed",
        "failed",
        "running",
        "expired",
        "done",
    ]
    assert "interrupted" in (status[ids[0]].error or "")  # type: ignore[union-attr]
    assert job_file(conn, ids[3]) == b"" and job_file(conn, ids[4]) == b"x"
    assert not stray.exists() and fresh_stray.exists()
    assert sweep_jobs(conn, folder=folder) == (0, 0)


# --------------------------------------------------------------------------- web


@pytest.fixture
def web(
    fresh_db_url: str, config: Config, tmp_path: Path
) -> Iterator[tuple[Any, str, dict[str, str]]]:
    from dashboards.app import create_app
    from ioc.settings import Settings
    from ioc.users import add_user

    c = connect(fresh_db_url)
    leader_ward = sorted(config.ward_codes)[0]
    for name, role, wards in (
        ("analyst", "analyst", []),
        ("analyst2", "analyst", []),
        ("admin", "admin", []),
        ("leader", "ward_leader", [leader_ward]),
    ):
        add_user(c, name, PASSWORD, role, wards)
    c.close()
    app = create_app(
        config,
        fresh_db_url,
        Settings(secret_key="export-jobs-secret-0123456789", var_dir=tmp_path / "var"),
    )
    # what `ioc scheduler` runs: the jobs are not run by the web process
    worker = ExportWorker(fresh_db_url, config, poll_s=0.5, work_dir=tmp_path / "work").start()
    yield app, fresh_db_url, {"leader_ward": leader_ward}
    worker.stop()
    app.server.config["IOC_STATE"].pool.close()


def _client(app: Any, user: str | None) -> Any:
    client = app.server.test_client()
    if user is not None:
        r = client.post("/login", data={"username": user, "password": PASSWORD, "next": "/"})
        assert r.status_code == 302, r.data[:300]
    return client


def _callback(client: Any, ticks: int, clicks: int, job: int | None, **state: Any) -> Any:
    values = {
        "kpis": ["on_time_rate"],
        "wards": None,
        "start": "2025-03-01",
        "end": "2025-03-31",
        "every": "day",
        "fmt": "xlsx",
    } | state
    outs = ["export-job.data", "export-poll.disabled", "export-progress.children"]
    outs += ["export-msg.children", "export-result.children", "export-ready.data"]
    outs += ["export-go.disabled"]
    body = {
        "output": ".." + "...".join(outs) + "..",
        "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in outs],
        "inputs": [
            {"id": "export-go", "property": "n_clicks", "value": clicks},
            {"id": "export-poll", "property": "n_intervals", "value": ticks},
        ],
        "changedPropIds": ["export-poll.n_intervals" if ticks else "export-go.n_clicks"],
        "state": [
            {"id": "export-kpis", "property": "value", "value": values["kpis"]},
            {"id": "export-wards", "property": "value", "value": values["wards"]},
            {"id": "export-range", "property": "start_date", "value": values["start"]},
            {"id": "export-range", "property": "end_date", "value": values["end"]},
            {"id": "export-every", "property": "value", "value": values["every"]},
            {"id": "export-format", "property": "value", "value": values["fmt"]},
            {"id": "export-job", "property": "data", "value": job},
        ],
    }
    return client.post("/_dash-update-component", json=body)


def test_page_runs_a_job_and_only_its_owner_downloads_it(
    web: tuple[Any, str, dict[str, str]],
) -> None:
    app, db_url, facts = web
    analyst = _client(app, "analyst")
    assert analyst.get("/export").status_code == 200
    r = _callback(analyst, 0, 1, None)
    assert r.status_code == 200, r.data[:500]
    resp = json.loads(r.data)["response"]
    job = resp["export-job"]["data"]
    assert isinstance(job, int) and resp["export-poll"]["disabled"] is False
    assert resp["export-go"]["disabled"] is True  # no second click while it runs
    # poll until done (any process could answer: all it reads is the job's row)
    deadline = time.monotonic() + 60
    ticks = 0
    while True:
        ticks += 1
        r = _callback(analyst, ticks, 1, job)
        assert r.status_code == 200, r.data[:500]
        resp = json.loads(r.data)["response"]
        if resp["export-poll"]["disabled"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert resp["export-go"]["disabled"] is False
    text = json.dumps(resp["export-progress"], ensure_ascii=False)
    assert "100 %" in text and "2.945 / 2.945 dòng" in text  # 31 days × 95
    assert resp["export-ready"]["data"] == f"/export/job/{job}"

    url = f"/export/job/{job}"
    r = _client(app, None).get(url, headers={"Accept": "text/html"})
    assert r.status_code == 401  # a link, not a page: no redirect to the sign-in
    assert _client(app, "analyst2").get(url).status_code == 403
    assert _client(app, "leader").get(url).status_code == 403
    r = analyst.get(url)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == CONTENT_TYPES["xlsx"]
    assert "ioc_kpis_2025-03-01_2025-03-31_day.xlsx" in r.headers["Content-Disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.data), read_only=True)
    try:
        assert len(list(wb["Dữ liệu"].iter_rows(values_only=True))) == 1 + 31 * 95
    finally:
        wb.close()
    r.close()
    r = _client(app, "admin").get(url)
    assert r.status_code == 200
    r.close()
    assert analyst.get("/export/job/987654").status_code == 404
    # another analyst cannot poll someone else's job either
    r = _callback(_client(app, "analyst2"), 1, 1, job)
    assert r.status_code == 204  # PreventUpdate: nothing for them

    # a day later the file is gone: 410
    c = connect(db_url)
    try:
        execute(
            c,
            "UPDATE export_jobs SET finished_at = now() - interval '25 hours' WHERE id = %s",
            job,
        )
        assert len(job_file(c, job)) > 0
        assert analyst.get(url).status_code == 410
        assert job_file(c, job) == b""
    finally:
        c.close()

    # the ward leader is refused at the page, its callbacks and the file
    leader = _client(app, "leader")
    assert leader.get("/export", headers={"Accept": "text/html"}).status_code == 403
    r = _callback(leader, 0, 1, None, wards=[facts["leader_ward"]])
    assert r.status_code == 403


def test_page_shows_a_bad_request_and_a_failed_job(web: tuple[Any, str, dict[str, str]]) -> None:
    app, db_url, _ = web
    analyst = _client(app, "analyst")
    r = _callback(analyst, 0, 1, None, start="2025-03-31", end="2025-03-01")
    resp = json.loads(r.data)["response"]
    assert "is after" in json.dumps(resp["export-msg"]) and resp["export-job"]["data"] is None
    r = _callback(analyst, 0, 1, None, kpis=["no_such_kpi"])
    assert "unknown KPI" in json.dumps(json.loads(r.data)["response"]["export-msg"])
    # a job that failed: its one-line error on the page
    c = connect(db_url)
    try:
        execute(
            c,
            "INSERT INTO export_jobs (user_name, request, status, error, file_path, file_name,"
            " content_type) VALUES ('analyst', '{}', 'failed', 'export: disk full', '', 'x', 'y')",
        )
        with c.cursor() as cur:
            cur.execute("SELECT max(id) FROM export_jobs")
            job = cur.fetchone()[0]  # type: ignore[index]
        c.commit()
    finally:
        c.close()
    resp = json.loads(_callback(analyst, 3, 1, job).data)["response"]
    assert "Xuất dữ liệu thất bại: export: disk full" in json.dumps(
        resp["export-msg"], ensure_ascii=False
    )
    assert resp["export-poll"]["disabled"] is True
    # two exports under way (in this live process): a third is refused, in Vietnamese
    c = connect(db_url)
    try:
        for _ in range(2):
            execute(
                c,
                "INSERT INTO export_jobs (user_name, request, status, file_path, file_name,"
                " content_type, host, pid) VALUES ('analyst', '{}', 'running', '', 'x', 'y',"
                " %s, %s)",
                socket.gethostname(),
                os.getpid(),
            )
    finally:
        c.close()
    resp = json.loads(_callback(analyst, 0, 2, None).data)["response"]
    assert "Bạn đang có 2 lần xuất dữ liệu chưa xong" in json.dumps(
        resp["export-msg"], ensure_ascii=False
    )
    assert resp["export-job"]["data"] is None
