"""Two dashboard hosts (``ioc serve`` with different var folders, one Redis, one database, the
same IOC_SECRET_KEY) and one ``ioc scheduler`` running the export jobs: a user signs in on one
host and goes on on the other, an export started on one downloads from the other, and a cache
clear made on one is seen by both."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from dash_fixtures import (
    NoRedirect,
    free_port,
    login_cookie,
    overview_body,
    post_json,
    start_server,
    stop_server,
    wait_http,
)
from test_scheduler import fast_config

from ioc.db import connect
from ioc.users import add_user

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "multihost-pass-1"


@pytest.fixture
def two_hosts(fresh_db_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    c = connect(fresh_db_url)
    try:
        add_user(c, "analyst", PASSWORD, "analyst", [])
        add_user(c, "operator", PASSWORD, "operator", [])
    finally:
        c.close()
    extra = {"IOC_REDIS_URL": redis_url, "IOC_DASH_CACHE_TTL": "600"}  # only a clear refreshes
    hosts = []
    procs: list[subprocess.Popen[Any]] = []
    try:
        for name in ("a", "b"):
            port = free_port()
            procs.append(
                start_server(
                    fresh_db_url,
                    tmp_path / f"var-{name}",
                    port,
                    tmp_path / f"serve-{name}.log",
                    workers=1,
                    env_extra=extra,
                )
            )
            hosts.append(f"http://127.0.0.1:{port}")
        for base in hosts:
            wait_http(base + "/healthz", 90)
        # the export worker: `ioc scheduler` on a third "host"
        env = dict(os.environ, IOC_DATABASE_URL=fresh_db_url)
        env.update(IOC_CONFIG_DIR=str(fast_config(tmp_path)), IOC_VAR_DIR=str(tmp_path / "var-s"))
        env.pop("IOC_MQTT_URL", None)
        log = open(tmp_path / "scheduler.log", "wb")  # noqa: SIM115 - closed below
        sched = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "scheduler"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield {"a": hosts[0], "b": hosts[1], "db": fresh_db_url}
        finally:
            sched.send_signal(signal.SIGTERM)
            try:
                sched.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sched.kill()
                sched.wait()
            log.close()
    finally:
        for p in procs:
            stop_server(p)


def get(base: str, path: str, cookie: str | None) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(base + path, headers={"Accept": "text/html"})
    if cookie:
        req.add_header("Cookie", f"ioc_session={cookie}")
    opener = urllib.request.build_opener(NoRedirect())
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, body, exc.headers


def callback(base: str, body: dict[str, Any], cookie: str) -> dict[str, Any]:
    status, text = post_json(base + "/_dash-update-component", body, cookie)
    assert status == 200, text[:500]
    return json.loads(text)["response"]  # type: ignore[no-any-return]


def export_body(ticks: int, job: int | None) -> dict[str, Any]:
    outs = ["export-job.data", "export-poll.disabled", "export-progress.children"]
    outs += ["export-msg.children", "export-result.children", "export-ready.data"]
    outs += ["export-go.disabled"]
    state = {
        ("export-kpis", "value"): ["on_time_rate"],
        ("export-wards", "value"): None,
        ("export-range", "start_date"): "2025-03-01",
        ("export-range", "end_date"): "2025-03-31",
        ("export-every", "value"): "day",
        ("export-format", "value"): "xlsx",
        ("export-job", "data"): job,
    }
    return {
        "output": ".." + "...".join(outs) + "..",
        "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in outs],
        "inputs": [
            {"id": "export-go", "property": "n_clicks", "value": 1},
            {"id": "export-poll", "property": "n_intervals", "value": ticks},
        ],
        "changedPropIds": ["export-poll.n_intervals" if ticks else "export-go.n_clicks"],
        "state": [{"id": i, "property": p, "value": v} for (i, p), v in state.items()],
    }


def ack_body(alert_id: int) -> dict[str, Any]:
    return {
        "output": "..alerts-msg.children...alerts-version.data..",
        "outputs": [
            {"id": "alerts-msg", "property": "children"},
            {"id": "alerts-version", "property": "data"},
        ],
        "inputs": [
            {"id": "alerts-ack", "property": "n_clicks", "value": 1},
            {"id": "alerts-resolve", "property": "n_clicks", "value": 0},
        ],
        "changedPropIds": ["alerts-ack.n_clicks"],
        "state": [
            {"id": "alerts-table", "property": "selected_row_ids", "value": [alert_id]},
            {"id": "alerts-version", "property": "data", "value": 0},
        ],
    }


def add_alert(db: str, title: str) -> int:
    c = connect(db)
    try:
        with c.cursor() as cur:
            cur.execute(
                "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title,"
                " opened_at) VALUES ('test', %s, NULL, 'warning', 'open', %s, now())"
                " RETURNING id",
                (title, title),
            )
            alert_id = int(cur.fetchone()[0])  # type: ignore[index]
        c.commit()
    finally:
        c.close()
    return alert_id


def open_alerts_shown(base: str, cookie: str) -> str:
    return json.dumps(callback(base, overview_body(), cookie)["ov-alerts"], ensure_ascii=False)


@pytest.mark.timeout(300)
def test_two_hosts_share_sessions_exports_and_cache(two_hosts: dict[str, Any]) -> None:
    a, b, db = two_hosts["a"], two_hosts["b"], two_hosts["db"]

    # signed in on A, the same session goes on on B (same IOC_SECRET_KEY; no sign-in there)
    analyst = login_cookie(a, "analyst", PASSWORD)
    assert get(b, "/export", None)[0] == 302  # B without the session: the sign-in page
    status, page, _ = get(b, "/export", analyst)
    assert status == 200 and b"_dash-config" in page

    # an export started on A: polled on B, downloaded from B (the file lives in the database)
    job = callback(a, export_body(0, None), analyst)["export-job"]["data"]
    assert isinstance(job, int)
    deadline = time.monotonic() + 120
    ticks = 0
    while True:
        ticks += 1
        resp = callback(b, export_body(ticks, job), analyst)
        if resp["export-poll"]["disabled"]:
            break
        assert time.monotonic() < deadline, "the export worker never finished the job"
        time.sleep(0.5)
    assert resp["export-ready"]["data"] == f"/export/job/{job}"
    status, data, headers = get(b, f"/export/job/{job}", analyst)
    assert status == 200, data[:300]
    assert "ioc_kpis_2025-03-01_2025-03-31_day.xlsx" in headers["Content-Disposition"]
    assert int(headers["Content-Length"]) == len(data)
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        assert len(list(wb["Dữ liệu"].iter_rows(values_only=True))) == 1 + 31 * 95
    finally:
        wb.close()
    assert get(a, f"/export/job/{job}", analyst)[1] == data  # and from A, the same bytes

    # the cache is one for both hosts: computed on A, served on B
    operator = login_cookie(b, "operator", PASSWORD)
    first = add_alert(db, "Cảnh báo một")
    assert "Cảnh báo một" in open_alerts_shown(a, operator)
    add_alert(db, "Cảnh báo hai")  # straight into the database: no cache clear
    assert "Cảnh báo hai" not in open_alerts_shown(b, operator)  # B reads A's cached entry
    assert "Cảnh báo hai" not in open_alerts_shown(a, operator)
    # acknowledged on B (the page clears the cache): A and B both show it at once
    resp = callback(b, ack_body(first), operator)
    assert resp["alerts-version"]["data"] == 1
    for host in (a, b):
        shown = open_alerts_shown(host, operator)
        assert "Cảnh báo hai" in shown and "Cảnh báo một" not in shown
