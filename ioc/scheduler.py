"""``ioc scheduler``: roll-ups, KPIs, alerts, offline detection, reports and retention.

APScheduler 3.x ``BackgroundScheduler`` runs the jobs (interval triggers, ``coalesce``,
``max_instances=1``, ``misfire_grace_time``). Only one scheduler runs jobs at a time: the
leader holds a PostgreSQL session advisory lock on its control connection; any other
``ioc scheduler`` stands by, retrying the lock, and takes over when the leader's session ends
(process killed, connection lost; TCP keepalives on both sides end the session of a host that
vanished within about 25 s). Each run of a job also holds an advisory lock of its own for its
length, so a run that a former leader is still finishing is never run a second time at once.
Liveness goes to ``service_status`` (service ``scheduler``, status ``leader`` / ``standby`` /
``stopped``) on every heartbeat.

Every job is idempotent. ``compute_kpis`` works from a watermark in ``job_watermarks``
(``kpi:{period}`` = start of the first period not yet final), so after downtime it computes
every missed period; closed periods are recomputed while late data may still arrive
(``storage.rollup_lookback_hours``).

Every ``ioc scheduler`` (leader or stand-by) also runs an export worker: the /export page's
jobs, claimed one by one from ``export_jobs`` (see ioc/reports/export/jobs.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2

from ioc import alerts, device_rollup, jobrequests
from ioc.config import Config
from ioc.context import Context
from ioc.db import KEEPALIVES, Connection, connect
from ioc.db.migrate import apply_retention, refresh_rollups
from ioc.db.service_status import record_service_status
from ioc.incidents import idempotency
from ioc.kpi import periods
from ioc.kpi.compute import (
    compute_period,
    get_watermark,
    refresh_current,
    set_watermark,
    store,
)
from ioc.kpi.staleness import DataSignatures, stale_periods
from ioc.reports.export import ExportWorker, jobs_folder
from ioc.reports.scheduled import invalidate_reports, run_due_reports

log = logging.getLogger("ioc.scheduler")

SERVICE = "scheduler"
LOCK_KEY = 7_140_2026  # the leader's session advisory lock
JOB_LOCK_CLASS = 7_140  # with hashtext(job name): held by the connection running that job


# --------------------------------------------------------------------------- KPI job


def compute_kpis(
    conn: Connection,
    cfg: Config,
    *,
    now: dt.datetime | None = None,
    memory: DataSignatures | None = None,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """Compute every KPI for every configured period from the watermark up to ``now``.

    With ``memory`` (the scheduler's), closed periods of the backfill window whose data
    changed since they were computed are recomputed too (see ioc/kpi/staleness.py). ``stop``
    is checked between periods: a stopping scheduler leaves after the period at hand (the
    watermark says where to go on). Returns the number of periods computed per period kind.
    Idempotent (upserts).
    """
    now = now or dt.datetime.now(dt.UTC)
    tz = ZoneInfo(cfg.system.timezone)
    sched = cfg.kpis.scheduler
    late = dt.timedelta(hours=cfg.system.storage.rollup_lookback_hours)
    names = list(cfg.kpis.kpis)
    done: dict[str, int] = {}
    for period in sched.periods:
        if stop is not None and stop.is_set():
            break
        job = f"kpi:{period}"
        wm = get_watermark(conn, job)
        conn.commit()
        window = periods.back(now, period, getattr(sched.backfill, period) - 1, tz)
        # closed periods that late data may still change are recomputed
        first = window if wm is None else min(wm, periods.floor(now - late, period, tz))
        current = periods.floor(now, period, tz)
        todo = [start for start, _ in periods.iter_periods(first, now, period, tz)]
        sigs: dict[dt.datetime, Any] = {}
        if memory is not None:
            stale, sigs = stale_periods(conn, cfg, memory, period, lo=window, hi=current)
            todo = sorted(set(todo) | set(stale))
            memory.recomputed[period] = stale
        n = 0
        for start in todo:
            if stop is not None and stop.is_set():
                break
            end = periods.next_start(start, period, tz)
            values = compute_period(
                conn, cfg, kpis=names, period=period, start=start, end=end, now=now
            )
            store(conn, values, commit=False)
            if first <= start < current:  # a stale older period leaves the watermark be
                set_watermark(conn, job, end)
            conn.commit()
            n += 1
        else:
            if wm is None or wm < current:
                set_watermark(conn, job, current)
                conn.commit()
            if memory is not None:
                memory.remember(period, sigs)
        done[period] = n
    return done


# --------------------------------------------------------------------------- jobs


def _try_job_lock(conn: Connection, name: str) -> bool:
    """The job's session advisory lock on ``conn`` (released when it closes), if free."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (JOB_LOCK_CLASS, name))
        row = cur.fetchone()
    conn.commit()
    return bool(row and row[0])


@dataclass
class JobStats:
    runs: int = 0
    skipped: int = 0
    failures: int = 0
    last_ok: str | None = None
    last_error: str | None = None
    last_result: Any = None
    last_duration_s: float | None = None  # of the last successful run


@dataclass
class Jobs:
    """The scheduler's jobs, each on its own short-lived connection."""

    cfg: Config
    db_url: str
    publisher: alerts.MqttPublisher | None = None
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    stats: dict[str, JobStats] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)  # long jobs check it
    memory: DataSignatures = field(default_factory=DataSignatures)  # what KPIs were made from
    _lock: threading.Lock = field(default_factory=threading.Lock)
    running: set[str] = field(default_factory=set)  # jobs under way now

    def _run(self, name: str, fn: Callable[[Connection, dt.datetime], Any]) -> Any:
        self.running.add(name)
        try:
            return self._run_once(name, fn)
        finally:
            self.running.discard(name)

    def _run_once(self, name: str, fn: Callable[[Connection, dt.datetime], Any]) -> Any:
        st = self.stats.setdefault(name, JobStats())
        if self.stop.is_set():  # a run that fired while the scheduler stops: not started
            return None
        t0 = time.monotonic()
        try:
            conn = connect(
                self.db_url,
                application_name=f"ioc-scheduler-{name}-{os.getpid()}",  # job and process
                **KEEPALIVES,
            )
            try:
                # one run of a job at a time across schedulers: a leader that lost its lock
                # may still be finishing a run when the stand-by takes over
                if not _try_job_lock(conn, name):
                    with self._lock:
                        st.skipped += 1
                    log.warning("job %s: a run is still under way elsewhere; skipped", name)
                    return None
                result = fn(conn, self.now())
            finally:
                conn.close()
        except Exception as exc:
            with self._lock:
                st.runs += 1
                st.failures += 1
                st.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            log.error("job %s failed: %s", name, st.last_error)
            log.debug("%s", traceback.format_exc())
            return None
        with self._lock:
            st.runs += 1
            st.last_ok = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            st.last_result = _jsonable(result)
            st.last_duration_s = round(time.monotonic() - t0, 3)
        log.info("job %s done in %.2f s: %s", name, time.monotonic() - t0, st.last_result)
        return result

    def rollups(self) -> Any:
        def job(c: Connection, now: dt.datetime) -> Any:
            out = refresh_rollups(c, self.cfg, now=now)
            days = device_rollup.refresh(c, self.cfg, now=now)  # device pages over months
            return {**out, "device_days": days} if isinstance(out, dict) and days else out

        return self._run("rollups", job)

    def kpis(self) -> Any:
        def job(c: Connection, now: dt.datetime) -> Any:
            asked = jobrequests.mark_served(c, "kpis")  # a run now serves every request
            refresh_rollups(c, self.cfg, now=now)  # KPIs read the roll-ups: bring them current
            self.memory.recomputed.clear()
            done = compute_kpis(c, self.cfg, now=now, memory=self.memory, stop=self.stop)
            # reports already written from the periods whose data changed are written again
            redo = invalidate_reports(c, self.cfg, self.memory.recomputed)
            out: dict[str, Any] = {**done, "reports_to_redo": redo} if redo else dict(done)
            if asked:  # asked for (back-fill landed, a page found no KPI): reports follow now
                out["asked"] = True
                out["reports"] = len(run_due_reports(c, self.cfg, now=now, stop=self.stop))
            return out

        return self._run("kpis", job)

    def offline(self) -> Any:
        def job(c: Connection, now: dt.datetime) -> Any:
            res = alerts.detect_offline(c, self.cfg, now=now)
            return {
                "devices_offline": len(res.devices_offline),
                "devices_online": len(res.devices_online),
                "cameras_offline": len(res.cameras_offline),
                "cameras_online": len(res.cameras_online),
            }

        return self._run("offline", job)

    def alerts(self) -> Any:
        def job(c: Connection, now: dt.datetime) -> Any:
            res = alerts.evaluate(c, self.cfg, now=now)
            if self.publisher is not None and res.transitions:
                self.publisher.publish(res.transitions)
            # the open-alerts KPI follows at once (also acknowledgements and resolutions made
            # on the dashboard), not at the next KPI run: the tile agrees with the list
            # measured just after this run: alerts it opened at `now` count (opened_at < end)
            after = now + dt.timedelta(microseconds=1)
            refresh_current(c, self.cfg, queries=["open_alerts"], now=after)
            return {"opened": res.opened, "resolved": res.resolved, "pending": res.pending}

        return self._run("alerts", job)

    def incidents(self) -> Any:
        from ioc.incidents.sla import sweep

        return self._run("incidents", lambda c, now: sweep(c, self.cfg, now=now).as_dict())

    def reports(self) -> Any:
        return self._run(
            "reports",
            lambda c, now: [str(p) for p in run_due_reports(c, self.cfg, now=now, stop=self.stop)],
        )

    def retention(self) -> Any:
        def job(c: Connection, now: dt.datetime) -> Any:
            out = apply_retention(c, self.cfg, now=now)
            if self.cfg.categories is not None:  # citizen reports: contacts (Decree 13/2023)
                from ioc.citizen.store import remove_old_contacts

                with c.cursor() as cur:
                    days = self.cfg.categories.contact_retention_days
                    removed = remove_old_contacts(cur, retention_days=days, now=now)
                c.commit()
                out = {**out, "report_contacts_removed": removed}
            keys = idempotency.prune(c, now=now)  # the incidents API's keys, after 7 days
            c.commit()
            return {**out, "idempotency_keys_removed": keys} if keys else out

        return self._run("retention", job)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {k: vars(v).copy() for k, v in self.stats.items()}


def _jsonable(x: Any) -> Any:
    try:
        json.dumps(x)
        return x
    except TypeError:
        return str(x)


def build_scheduler(jobs: Jobs) -> Any:
    """A BackgroundScheduler with every job, each first run right away."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    s = jobs.cfg.kpis.scheduler
    tz = ZoneInfo(jobs.cfg.system.timezone)
    sched = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": s.misfire_grace_s,
        },
        timezone=tz,
    )
    start = dt.datetime.now(tz)
    plan: list[tuple[str, Callable[[], Any], float, float]] = [
        ("rollups", jobs.rollups, s.rollups_every_s, 0),
        ("kpis", jobs.kpis, s.kpis_every_s, 1),
        ("offline", jobs.offline, s.offline_every_s, 0),
        ("alerts", jobs.alerts, s.alerts_every_s, 2),
        ("incidents", jobs.incidents, s.alerts_every_s, 3),  # SLA clocks, escalation
        ("reports", jobs.reports, s.reports_every_s, 5),
        ("retention", jobs.retention, s.retention_every_s, 10),
    ]
    for name, fn, every, delay in plan:
        sched.add_job(
            fn,
            "interval",
            seconds=every,
            id=name,
            name=name,
            next_run_time=start + dt.timedelta(seconds=delay),
        )
    return sched


# --------------------------------------------------------------------------- leadership


class Control:
    """The control connection: holds the leader lock and writes the heartbeat."""

    def __init__(self, db_url: str, instance: str) -> None:
        self.db_url = db_url
        self.instance = instance
        self.conn: Connection | None = None
        self.leader = False

    def _conn(self) -> Connection:
        if self.conn is None or self.conn.closed:
            self.conn = connect(
                self.db_url, application_name="ioc-scheduler", autocommit=True, **KEEPALIVES
            )
            # the server ends the session (and frees the leader lock) of a host that vanished
            # within about 25 s, instead of waiting for the kernel's TCP timeout
            with self.conn.cursor() as cur:
                cur.execute(
                    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5;"
                    " SET tcp_keepalives_count = 3; SET tcp_user_timeout = 25000"
                )
            self.leader = False  # a new session holds no lock
        return self.conn

    def try_lead(self) -> bool:
        with self._conn().cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
            row = cur.fetchone()
        self.leader = bool(row and row[0])
        return self.leader

    def still_leader(self) -> bool:
        """False when the control session died (the lock went with it)."""
        if not self.leader or self.conn is None or self.conn.closed:
            return False
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted AND objid = %s",
                    (LOCK_KEY % (1 << 32),),
                )
                row = cur.fetchone()
            return bool(row and row[0])
        except psycopg2.Error:
            self.close()
            return False

    def heartbeat(self, status: str, details: dict[str, Any]) -> None:
        with self._conn().cursor() as cur:
            record_service_status(cur, SERVICE, self.instance, status, details)

    def pending(self, job: str) -> bool:
        """Is a run of ``job`` asked for (``ioc.jobrequests``)?"""
        return jobrequests.pending(self._conn(), job) is not None

    def resign(self) -> None:
        if self.conn is not None and not self.conn.closed and self.leader:
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            except psycopg2.Error:
                pass
        self.leader = False

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close()
        self.conn = None
        self.leader = False


REQUEST_POLL_S = 2.0  # how often the leader looks for runs asked for (job_requests)


def _serve_requests(
    control: Control, jobs: Jobs, sched: Any, stop: threading.Event, span: float
) -> bool:
    """Wait ``span`` seconds, starting the KPI job at once whenever a run of it is asked for
    (``ioc.jobrequests``); True when ``stop`` was set."""
    deadline = time.monotonic() + span
    while True:
        try:
            asked = control.pending("kpis")
        except psycopg2.Error:
            asked = False  # the leader check that follows sees a broken connection
        job = sched.get_job("kpis") if asked and "kpis" not in jobs.running else None
        if job is not None:
            now = dt.datetime.now(job.next_run_time.tzinfo if job.next_run_time else dt.UTC)
            if job.next_run_time is None or job.next_run_time > now:
                job.modify(next_run_time=now)  # a run already under way: max_instances=1
        left = deadline - time.monotonic()
        if left <= 0:
            return stop.is_set()
        if stop.wait(min(REQUEST_POLL_S, left)):
            return True


def run(
    cfg: Config,
    db_url: str,
    *,
    stop: threading.Event,
    publisher: alerts.MqttPublisher | None = None,
    instance: str | None = None,
) -> None:
    """Stand by until leader, run the jobs while leader, until ``stop`` is set."""
    s = cfg.kpis.scheduler
    instance = instance or f"{socket.gethostname()}:{os.getpid()}"
    control = Control(db_url, instance)
    jobs = Jobs(cfg, db_url, publisher=publisher, stop=stop)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        while not stop.is_set():
            try:
                if not control.try_lead():
                    control.heartbeat("standby", {"since": started})
                    stop.wait(s.leader_retry_s)
                    continue
            except Exception as exc:  # database unreachable: keep trying
                log.warning("scheduler: %s", str(exc).splitlines()[0] if str(exc) else exc)
                control.close()
                stop.wait(s.leader_retry_s)
                continue
            log.info("scheduler %s is the leader", instance)
            sched = build_scheduler(jobs)
            sched.start()
            try:
                while True:
                    if not control.still_leader():
                        log.warning("scheduler %s lost the leader lock; standing by", instance)
                        break
                    try:
                        control.heartbeat("leader", {"since": started, "jobs": jobs.snapshot()})
                    except psycopg2.Error:
                        control.close()
                        break
                    if _serve_requests(control, jobs, sched, stop, s.heartbeat_every_s):
                        break
            finally:
                sched.shutdown(wait=True)
                control.resign()
    finally:
        with contextlib.suppress(Exception):
            control.heartbeat("stopped", {"since": started, "jobs": jobs.snapshot()})
        control.close()


def with_reports_under(cfg: Config, var_dir: Path) -> Config:
    """``cfg`` with a relative ``reports_dir`` (kpis.yaml) placed under ``var_dir``
    (IOC_VAR_DIR), as every other file a host writes; an absolute one as it is."""
    sched = cfg.kpis.scheduler
    if Path(sched.reports_dir).is_absolute():
        return cfg
    where = str(Path(var_dir) / sched.reports_dir)
    kpis = cfg.kpis.model_copy(
        update={"scheduler": sched.model_copy(update={"reports_dir": where})}
    )
    return dataclasses.replace(cfg, kpis=kpis)


def main(args: argparse.Namespace, ctx: Context) -> int:
    """``ioc scheduler``: runs until SIGINT/SIGTERM."""
    cfg = with_reports_under(ctx.config(), ctx.settings.var_dir)
    db_url = ctx.database_url()
    if not ctx.debug:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    connect(db_url, application_name="ioc-scheduler-check").close()  # one-line error if down
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("scheduler: signal %d, stopping", signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    publisher = alerts.MqttPublisher(cfg, ctx.mqtt()) if cfg.alerts.publish_mqtt else None
    # /export jobs: every scheduler runs them, leader or stand-by (a job is claimed by one)
    exports = ExportWorker(db_url, cfg, work_dir=jobs_folder(ctx.settings.var_dir)).start()
    notifier = None
    if cfg.notifications.delivery.in_scheduler:  # notifications go out with no other process
        from ioc.notify.worker import start_thread

        notifier = start_thread(cfg, db_url, ctx.settings, stop)
    try:
        run(cfg, db_url, stop=stop, publisher=publisher)
    finally:
        exports.stop()
        if publisher is not None:
            publisher.close()
        if notifier is not None:
            notifier.join(15)
    return 0
