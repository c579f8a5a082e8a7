"""Scheduler high availability: two ``ioc scheduler`` processes, the leader killed with
SIGKILL, the stand-by taking over within a minute, and no KPI period ever computed by two
sessions at once (each job run also holds a lock of its own)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_kpi_helpers import add_app
from test_scheduler import fast_config, kpi_runs, statuses, wait_for

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.scheduler import JOB_LOCK_CLASS, Jobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def test_a_job_run_under_way_elsewhere_is_skipped(
    conn: Connection, fresh_db_url: str, config: Config
) -> None:
    jobs = Jobs(config, fresh_db_url)
    holder = connect(fresh_db_url)  # another scheduler, in the middle of a roll-up run
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, hashtext('rollups'))", (JOB_LOCK_CLASS,))
        holder.commit()
        assert jobs.rollups() is None
        st = jobs.snapshot()["rollups"]
        assert (st["runs"], st["skipped"]) == (0, 1)
    finally:
        holder.close()  # its session ends: the lock goes with it
    jobs.rollups()
    st = jobs.snapshot()["rollups"]
    assert (st["runs"], st["skipped"], st["failures"]) == (1, 1, 0)


LOG_SQL = """
CREATE TABLE kpi_write_log (pid int, app text, xact_start timestamptz, at timestamptz,
                            kpi text, period text, period_start timestamptz);
CREATE FUNCTION log_kpi_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kpi_write_log
    SELECT DISTINCT pg_backend_pid(), current_setting('application_name'), now(),
                    clock_timestamp(), kpi, period, period_start
    FROM new;
    RETURN NULL;
END $$;
CREATE TRIGGER kpi_ins AFTER INSERT ON kpi_values REFERENCING NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION log_kpi_write();
CREATE TRIGGER kpi_upd AFTER UPDATE ON kpi_values REFERENCING NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION log_kpi_write();
"""


@pytest.mark.timeout(240)
def test_killed_leader_is_replaced_and_no_period_is_computed_twice_at_once(
    fresh_db_url: str, conn: Connection, config: Config, tmp_path: Path
) -> None:
    cdir = fast_config(tmp_path)
    add_app(conn, "s1", config.wards[0].code, "2025-03-10 08:00", "2025-03-12 17:00")
    with conn.cursor() as cur:
        cur.execute(LOG_SQL)
    conn.commit()
    env = dict(os.environ, IOC_DATABASE_URL=fresh_db_url, IOC_CONFIG_DIR=str(cdir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("IOC_MQTT_URL", None)
    logs = [open(tmp_path / f"s{i}.log", "w") for i in range(2)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "scheduler"],
            env=dict(env, IOC_VAR_DIR=str(tmp_path / f"var{i}")),
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

        (leader,), (standby,) = wait_for(leader_ran_twice, 90)
        by_pid[int(leader.rsplit(":", 1)[1])].send_signal(signal.SIGKILL)
        killed = time.monotonic()

        def took_over():  # type: ignore[no-untyped-def]
            s, d = statuses(conn)[standby]
            return s == "leader" and kpi_runs(d) >= 2

        wait_for(took_over, 60)
        took = time.monotonic() - killed
        assert took < 60
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
    with conn.cursor() as cur:
        cur.execute("SELECT pid, app, xact_start, at, kpi, period, period_start FROM kpi_write_log")
        rows = cur.fetchall()
    conn.commit()
    # one computation of a KPI's period = one transaction of one session: [its start, its last
    # write]. The session's application_name says which job of which scheduler process it is.
    # Two of them overlapping in time = computed twice at once, when they come from two
    # schedulers, or from two runs of the same job. (Within one scheduler, the alerts job
    # refreshes the current period of open_alerts while the KPI job may be computing it too:
    # two different jobs, by design, and the row locks serialise their writes.)
    Key = tuple[str, str, dt.datetime]
    spans: dict[Key, dict[tuple[int, str, dt.datetime], list[dt.datetime]]] = defaultdict(dict)
    for pid, app, x0, at, kpi, period, start in rows:
        span = spans[(kpi, period, start)].setdefault((pid, app, x0), [x0, at])
        span[1] = max(span[1], at)
    schedulers = {app.rsplit("-", 1)[1] for _, app, *_ in rows}
    assert len(schedulers) == 2  # both computed (before and after the kill)
    overlaps = []
    for key, runs in spans.items():
        items = list(runs.items())
        for i, (a, (a0, a1)) in enumerate(items):
            for b, (b0, b1) in items[i + 1 :]:
                job_a, proc_a = a[1].rsplit("-", 1)
                job_b, proc_b = b[1].rsplit("-", 1)
                if (proc_a != proc_b or job_a == job_b) and a0 < b1 and b0 < a1:
                    overlaps.append((key, a, b))
    assert overlaps == []
    print(f"\nstand-by took over {took:.1f} s after kill -9; {len(rows)} KPI writes checked")
