"""The scheduler on a fresh install: data that lands after the first KPI run (the demo's
backfill, an import of last month) reaches kpi_values; no empty reports before any data; a
long KPI job or report catch-up stops promptly on SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_kpi_helpers import add_app, add_readings, t

from ioc.config import Config, load_config
from ioc.db import Connection, connect
from ioc.db.migrate import refresh_rollups
from ioc.kpi.staleness import DataSignatures
from ioc.reports.scheduled import run_due_reports
from ioc.scheduler import compute_kpis, get_watermark

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def day_only(cfg: Config, days: int = 5) -> Config:
    sched = cfg.kpis.scheduler.model_copy(
        update={
            "periods": ["day"],
            "backfill": cfg.kpis.scheduler.backfill.model_copy(update={"day": days}),
        }
    )
    storage = cfg.system.storage.model_copy(update={"rollup_lookback_hours": 1})
    return dataclasses.replace(
        cfg,
        kpis=cfg.kpis.model_copy(update={"scheduler": sched}),
        system=cfg.system.model_copy(update={"storage": storage}),
    )


def city_day(conn: Connection, kpi: str, day: str) -> float | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT value FROM kpi_values WHERE kpi = %s AND ward_code = 'city'"
            " AND period = 'day' AND period_start = %s",
            (kpi, t(day + " 00:00")),
        )
        row = cur.fetchone()
    conn.commit()
    return row[0] if row else None


def backfill_arrives(conn: Connection, ward: str) -> None:
    """Two days ago: one application (received and completed) and PM2.5 readings."""
    add_app(
        conn,
        "late-1",
        ward,
        "2025-03-08 09:00",
        "2025-03-12 17:00",
        status="completed",
        completed="2025-03-08 15:00",
        events=[("received", "2025-03-08 09:00"), ("completed", "2025-03-08 15:00")],
    )
    add_readings(
        conn, ward, "aq-late-1", "pm25", [(f"2025-03-08 {h:02d}:10", 30.0) for h in range(8, 20)]
    )


def test_backfill_after_the_first_run_reaches_the_kpis(conn: Connection, config: Config) -> None:
    cfg = day_only(config)
    ward = config.wards[0].code
    memory = DataSignatures()
    # first run on an empty database: every day of the window computed as "no data"
    assert compute_kpis(conn, cfg, now=t("2025-03-10 10:00"), memory=memory) == {"day": 5}
    assert city_day(conn, "applications_received", "2025-03-08") is None
    assert get_watermark(conn, "kpi:day") == t("2025-03-10 00:00")

    backfill_arrives(conn, ward)  # history published with old timestamps, stored now
    refresh_rollups(conn, cfg, now=t("2025-03-10 10:04"))
    # next run: today (current) plus the day whose data changed, nothing else
    assert compute_kpis(conn, cfg, now=t("2025-03-10 10:05"), memory=memory) == {"day": 2}
    assert city_day(conn, "applications_received", "2025-03-08") == 1
    assert city_day(conn, "on_time_rate", "2025-03-08") == 100.0
    assert city_day(conn, "aqi", "2025-03-08") is not None
    assert get_watermark(conn, "kpi:day") == t("2025-03-10 00:00")  # unchanged
    # nothing new: only today again
    assert compute_kpis(conn, cfg, now=t("2025-03-10 10:10"), memory=memory) == {"day": 1}


def test_without_memory_the_late_day_stays_empty(conn: Connection, config: Config) -> None:
    """What `compute_kpis` alone does (and the scheduler did before): the watermark has
    passed the day, so its KPIs stay "no data" although the data is there."""
    cfg = day_only(config)
    compute_kpis(conn, cfg, now=t("2025-03-10 10:00"))
    backfill_arrives(conn, config.wards[0].code)
    refresh_rollups(conn, cfg, now=t("2025-03-10 10:04"))
    assert compute_kpis(conn, cfg, now=t("2025-03-10 10:05")) == {"day": 1}
    assert city_day(conn, "applications_received", "2025-03-08") is None


def test_a_restarted_scheduler_fills_days_computed_before_their_data(
    conn: Connection, config: Config
) -> None:
    cfg = day_only(config)
    compute_kpis(conn, cfg, now=t("2025-03-10 10:00"), memory=DataSignatures())
    backfill_arrives(conn, config.wards[0].code)
    refresh_rollups(conn, cfg, now=t("2025-03-10 10:04"))
    # a new process remembers nothing: it finds the day with data but no values
    assert compute_kpis(conn, cfg, now=t("2025-03-10 10:05"), memory=DataSignatures()) == {"day": 2}
    assert city_day(conn, "applications_received", "2025-03-08") == 1


def test_stop_flag_ends_the_kpi_job_between_periods(conn: Connection, config: Config) -> None:
    cfg = day_only(config, days=20)
    stop = threading.Event()
    calls = 0
    import ioc.scheduler as sched_mod

    real = sched_mod.compute_period

    def counting(*a, **kw):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()  # SIGTERM arrives while the third day is computed
        return real(*a, **kw)

    sched_mod.compute_period = counting  # type: ignore[assignment]
    try:
        done = compute_kpis(conn, cfg, now=t("2025-03-10 10:00"), stop=stop)
    finally:
        sched_mod.compute_period = real  # type: ignore[assignment]
    assert done == {"day": 3}
    # the watermark says where to go on: after the third day of the window
    assert get_watermark(conn, "kpi:day") == t("2025-02-22 00:00")


def test_no_reports_before_any_data(conn: Connection, config: Config, tmp_path: Path) -> None:
    assert run_due_reports(conn, config, now=t("2025-03-11 01:00"), reports_dir=tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    assert get_watermark(conn, "report:daily_kpis") is None
    add_app(conn, "r1", config.wards[0].code, "2025-03-10 08:00", "2025-03-12 17:00")
    files = run_due_reports(conn, config, now=t("2025-03-11 01:05"), reports_dir=tmp_path)
    # daily and weekly have data before their last period's end; the month (February) not
    assert sorted(f.name for f in files) == ["daily_kpis_2025-03-10.xlsx"]


def test_report_catch_up_stops_on_the_stop_flag(
    conn: Connection, config: Config, tmp_path: Path
) -> None:
    add_app(conn, "r1", config.wards[0].code, "2025-03-01 08:00", "2025-03-12 17:00")
    rep = config.kpis.reports[0].model_copy(
        update={"kpis": ["applications_received"], "every": "day", "catch_up": 5}
    )
    cfg = dataclasses.replace(config, kpis=config.kpis.model_copy(update={"reports": [rep]}))
    run_due_reports(conn, cfg, now=t("2025-03-05 01:00"), reports_dir=tmp_path)
    stop = threading.Event()
    stop.set()
    assert (
        run_due_reports(conn, cfg, now=t("2025-03-10 01:00"), reports_dir=tmp_path, stop=stop) == []
    )
    assert len(run_due_reports(conn, cfg, now=t("2025-03-10 01:00"), reports_dir=tmp_path)) == 5


def slow_config(tmp: Path) -> Path:
    """A KPI job of many hours on the first run: long enough to be busy when SIGTERM comes."""
    cdir = tmp / "config"
    shutil.copytree(ROOT / "config", cdir)
    doc = yaml.safe_load((cdir / "kpis.yaml").read_text(encoding="utf-8"))
    doc["scheduler"].update(
        periods=["hour"],
        backfill={"hour": 2000, "day": 1, "week": 1, "month": 1},
        reports_dir=str(tmp / "reports"),
        heartbeat_every_s=0.5,
    )
    (cdir / "kpis.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    load_config(cdir)
    return cdir


def test_scheduler_stops_within_10_s_of_sigterm_during_a_long_job(
    fresh_db_url: str, conn: Connection, tmp_path: Path
) -> None:
    cdir = slow_config(tmp_path)
    env = dict(os.environ, IOC_DATABASE_URL=fresh_db_url, IOC_CONFIG_DIR=str(cdir))
    env.pop("IOC_MQTT_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    with open(tmp_path / "s.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "scheduler"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            # wait until the KPI job has stored a few hours (it is running now)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with conn.cursor() as cur:
                    cur.execute("SELECT count(DISTINCT period_start) FROM kpi_values")
                    n = cur.fetchone()[0]
                conn.commit()
                if n >= 3:
                    break
                time.sleep(0.2)
            assert n >= 3, (tmp_path / "s.log").read_text()
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
            took = time.monotonic() - began
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0
    assert took < 10, f"stopped {took:.1f} s after SIGTERM"
    with conn.cursor() as cur:
        cur.execute("SELECT count(DISTINCT period_start) FROM kpi_values")
        assert cur.fetchone()[0] < 2000  # it did leave in the middle of the job


def test_report_written_before_the_backfill_landed_is_written_again(
    fresh_db_url: str, conn: Connection, config: Config, tmp_path: Path
) -> None:
    """The demo's first start: the report job ran while the backfill was arriving and wrote
    yesterday's report from KPIs computed before the data; once the KPI job recomputes that
    day, the report is written again."""
    import openpyxl

    from ioc.scheduler import Jobs

    cfg = day_only(config)
    rep = config.kpis.reports[0].model_copy(
        update={"kpis": ["applications_received"], "every": "day"}
    )
    sched = cfg.kpis.scheduler.model_copy(update={"reports_dir": str(tmp_path)})
    cfg = dataclasses.replace(
        cfg, kpis=cfg.kpis.model_copy(update={"reports": [rep], "scheduler": sched})
    )
    ward = config.wards[0].code
    jobs = Jobs(cfg, fresh_db_url, now=lambda: t("2025-03-10 01:00"))
    jobs.kpis()
    assert jobs.reports() == []  # no data at all: no report
    # the first readings of the backfill arrive, the applications not yet
    add_readings(conn, ward, "aq-1", "pm25", [("2025-03-09 08:00", 20.0)])
    (path,) = jobs.reports()
    assert path.endswith("daily_kpis_2025-03-09.xlsx")

    def received_in_report() -> object:
        rows = list(openpyxl.load_workbook(path)["Dữ liệu"].iter_rows(values_only=True))
        return {(r[1], r[3]): r[5] for r in rows[1:]}[("city", "applications_received")]

    assert received_in_report() is None  # written from KPIs computed before the data
    add_app(
        conn,
        "b1",
        ward,
        "2025-03-09 09:00",
        "2025-03-12 17:00",
        events=[("received", "2025-03-09 09:00")],
    )
    assert jobs.kpis()["reports_to_redo"] == 1
    assert jobs.reports() == [path]
    assert received_in_report() == 1
    assert jobs.reports() == []  # once
