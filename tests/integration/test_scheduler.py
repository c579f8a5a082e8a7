"""The scheduler: watermark catch-up, scheduled reports, and two `ioc scheduler` processes
against one database (one leader runs the jobs; the other takes over when it dies)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
import yaml
from test_kpi_helpers import add_app, t

from ioc.config import Config, load_config
from ioc.db import Connection, connect
from ioc.reports.scheduled import run_due_reports
from ioc.scheduler import compute_kpis, get_watermark

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def with_scheduler(cfg: Config, lookback_h: int = 1, **kw: object) -> Config:
    sched = cfg.kpis.scheduler.model_copy(update=kw)
    storage = cfg.system.storage.model_copy(update={"rollup_lookback_hours": lookback_h})
    return dataclasses.replace(
        cfg,
        kpis=cfg.kpis.model_copy(update={"scheduler": sched}),
        system=cfg.system.model_copy(update={"storage": storage}),
    )


def hour_values(conn: Connection, kpi: str, ward: str) -> dict[str, float | None]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT to_char(period_start AT TIME ZONE 'Asia/Ho_Chi_Minh', 'HH24:MI'), value"
            " FROM kpi_values WHERE kpi = %s AND ward_code = %s AND period = 'hour'"
            " ORDER BY period_start",
            (kpi, ward),
        )
        return dict(cur.fetchall())


def test_stopped_scheduler_catches_up_from_the_watermark(conn: Connection, config: Config) -> None:
    cfg = with_scheduler(
        config,
        periods=["hour"],
        backfill=config.kpis.scheduler.backfill.model_copy(update={"hour": 2}),
    )
    a = config.wards[0].code
    add_app(conn, "x1", a, "2025-03-10 09:10", "2025-03-12 17:00")
    add_app(conn, "x2", a, "2025-03-10 11:30", "2025-03-12 17:00")
    add_app(conn, "x3", a, "2025-03-10 12:15", "2025-03-12 17:00")
    add_app(conn, "x4", a, "2025-03-10 13:05", "2025-03-12 17:00")

    # first run at 10:20: backfill of 2 hours (09:00, 10:00)
    assert compute_kpis(conn, cfg, now=t("2025-03-10 10:20")) == {"hour": 2}
    assert get_watermark(conn, "kpi:hour") == t("2025-03-10 10:00")
    assert hour_values(conn, "applications_received", a) == {"09:00": 1, "10:00": 0}

    # down from 10:20 to 13:20: the next run computes every missed hour, 10:00 to 13:00
    assert compute_kpis(conn, cfg, now=t("2025-03-10 13:20")) == {"hour": 4}
    assert hour_values(conn, "applications_received", a) == {
        "09:00": 1,
        "10:00": 0,
        "11:00": 1,
        "12:00": 1,
        "13:00": 1,
    }
    assert get_watermark(conn, "kpi:hour") == t("2025-03-10 13:00")
    # the city row of every hour, once; running again changes nothing
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM kpi_values WHERE period = 'hour'")
        before = cur.fetchone()
    compute_kpis(conn, cfg, now=t("2025-03-10 13:20"))
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM kpi_values WHERE period = 'hour'")
        assert cur.fetchone() == before == (5 * 95 * len(cfg.kpis.kpis),)


def test_scheduled_reports_once_per_period_and_catch_up(
    conn: Connection, config: Config, tmp_path: Path
) -> None:
    a = config.wards[0].code
    add_app(
        conn,
        "r1",
        a,
        "2025-03-10 08:00",
        "2025-03-12 17:00",
        status="completed",
        completed="2025-03-10 09:00",
    )
    rep = config.kpis.reports[0].model_copy(
        update={"kpis": ["on_time_rate", "applications_received"], "every": "day", "catch_up": 3}
    )
    cfg = dataclasses.replace(config, kpis=config.kpis.model_copy(update={"reports": [rep]}))
    # first run: only the last completed day
    files = run_due_reports(conn, cfg, now=t("2025-03-11 01:00"), reports_dir=tmp_path)
    assert [f.name for f in files] == [f"{rep.name}_2025-03-10.xlsx"]
    assert run_due_reports(conn, cfg, now=t("2025-03-11 05:00"), reports_dir=tmp_path) == []
    # down for two days: both missed days are written, in order
    files = run_due_reports(conn, cfg, now=t("2025-03-13 00:30"), reports_dir=tmp_path)
    assert [f.name for f in files] == [f"{rep.name}_2025-03-11.xlsx", f"{rep.name}_2025-03-12.xlsx"]
    # down for longer than catch_up (3 days): only the 3 most recent
    files = run_due_reports(conn, cfg, now=t("2025-03-20 00:30"), reports_dir=tmp_path)
    assert [f.name[-10:-5] for f in files] == ["03-17", "03-18", "03-19"]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT period_from) FROM report_files")
        assert cur.fetchone() == (6, 6)
        cur.execute(
            "SELECT path FROM report_files WHERE period_from = %s", (t("2025-03-10 00:00"),)
        )
        (path,) = cur.fetchone()
    rows = list(openpyxl.load_workbook(path)["Dữ liệu"].iter_rows(values_only=True))
    got = {(r[1], r[3]): r[5] for r in rows[1:]}
    assert got[(a, "on_time_rate")] == 100.0 and got[(a, "applications_received")] == 1
    assert got[("city", "applications_received")] == 1


# --------------------------------------------------------------------------- two processes


def fast_config(tmp: Path) -> Path:
    cdir = tmp / "config"
    shutil.copytree(ROOT / "config", cdir)
    doc = yaml.safe_load((cdir / "kpis.yaml").read_text(encoding="utf-8"))
    doc["scheduler"].update(
        rollups_every_s=2,
        kpis_every_s=2,
        alerts_every_s=2,
        offline_every_s=2,
        reports_every_s=3600,
        retention_every_s=3600,
        heartbeat_every_s=0.5,
        leader_retry_s=0.5,
        periods=["hour", "day"],
        backfill={"hour": 2, "day": 1},
        reports_dir=str(tmp / "reports"),
    )
    doc["reports"] = []
    (cdir / "kpis.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    load_config(cdir)  # still valid
    return cdir


def statuses(conn: Connection) -> dict[str, tuple[str, dict]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT instance, status, details FROM service_status WHERE service = 'scheduler'"
        )
        rows = cur.fetchall()
    conn.commit()
    return {i: (s, d if isinstance(d, dict) else json.loads(d)) for i, s, d in rows}


def wait_for(pred, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError("timed out")


def kpi_runs(details: dict) -> int:
    return int(details.get("jobs", {}).get("kpis", {}).get("runs", 0))


def test_two_schedulers_one_leader_and_takeover(
    fresh_db_url: str, conn: Connection, config: Config, tmp_path: Path
) -> None:
    cdir = fast_config(tmp_path)
    add_app(conn, "s1", config.wards[0].code, "2025-03-10 08:00", "2025-03-12 17:00")
    env = dict(os.environ, IOC_DATABASE_URL=fresh_db_url, IOC_CONFIG_DIR=str(cdir))
    env.pop("IOC_MQTT_URL", None)
    logs = [open(tmp_path / f"s{i}.log", "w") for i in range(2)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "scheduler"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=logs[i],
        )
        for i in range(2)
    ]
    try:
        by_pid = {p.pid: p for p in procs}

        def leader_ran_twice():  # type: ignore[no-untyped-def]
            st = statuses(conn)
            leaders = [i for i, (s, d) in st.items() if s == "leader" and kpi_runs(d) >= 2]
            standby = [i for i, (s, _) in st.items() if s == "standby"]
            return (leaders, standby) if len(leaders) == 1 and len(standby) == 1 else None

        (leader,), (standby,) = wait_for(leader_ran_twice)
        st = statuses(conn)
        assert kpi_runs(st[standby][1]) == 0  # the stand-by ran nothing
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(DISTINCT (kpi, ward_code, period, period_start))"
                " FROM kpi_values"
            )
            total, distinct = cur.fetchone()
        assert total == distinct > 0

        # kill the leader without a chance to clean up: the stand-by takes over
        leader_pid = int(leader.rsplit(":", 1)[1])
        by_pid[leader_pid].send_signal(signal.SIGKILL)
        by_pid[leader_pid].wait(timeout=10)

        def took_over():  # type: ignore[no-untyped-def]
            s, d = statuses(conn)[standby]
            return s == "leader" and kpi_runs(d) >= 1

        wait_for(took_over)
        other = by_pid[int(standby.rsplit(":", 1)[1])]
        other.send_signal(signal.SIGTERM)
        assert other.wait(timeout=30) == 0
        assert statuses(conn)[standby][0] == "stopped"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
