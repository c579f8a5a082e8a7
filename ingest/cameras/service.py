"""``ioc ingest cameras``: the camera ingester for the cameras of ``config/cameras.yaml``.

Start-up, top to bottom: select the cameras, check the database and register them in
``cameras``, read their open health episodes, start the batched writer, start the supervisor
(one worker per camera). Shutdown (SIGTERM / Ctrl-C) in reverse: workers stop and flush their
partial interval, the writer commits what is queued, ``service_status`` says 'stopped'.

``--shared``: several ingesters, on any hosts, split the cameras by leases in PostgreSQL
(ingest/cameras/leases.py); each starts workers only for the cameras it holds. Either way,
``cameras.yaml`` is read again when it changes: added cameras are picked up, removed ones
stopped, changed ones restarted, without a restart of the ingester.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import psycopg2

from ingest.cameras.leases import Leases
from ingest.cameras.store import (
    SQL_OPEN_EVENTS,
    SQL_REGISTER,
    event_work,
    metrics_work,
    service_status_work,
    status_work,
)
from ingest.cameras.supervisor import RestartPolicy, Supervisor
from ingest.cameras.worker import CameraSpec, Event, Message, Metrics, Status, WorkerOptions
from ingest.writer import BatchWriter
from ioc.config import Config, load_config
from ioc.context import Context
from ioc.db import connect
from ioc.errors import IOCError

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
RELOAD_EVERY_S = 5.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def camera_specs(cfg: Config, only: Sequence[str] | None = None) -> list[CameraSpec]:
    """The enabled cameras of the configuration (or exactly ``only``), as worker specs."""
    d = cfg.cameras.defaults
    by_id = {c.id: c for c in cfg.cameras.cameras}
    if only:
        unknown = [c for c in only if c not in by_id]
        if unknown:
            raise IOCError(f"unknown camera id(s) in --camera: {', '.join(unknown)}")
        chosen = [by_id[c] for c in dict.fromkeys(only)]
    else:
        chosen = [c for c in cfg.cameras.cameras if c.enabled]
    specs = []
    for c in chosen:
        specs.append(
            CameraSpec(
                id=c.id,
                ward=c.ward,
                name=c.name,
                lat=c.lat,
                lon=c.lon,
                source=c.source,
                loop=c.loop,
                analysis_fps=c.analysis_fps or d.analysis_fps,
                interval_s=c.interval_s or d.interval_s,
                width=d.width,
                lines={
                    ln.name: (
                        (float(ln.points[0][0]), float(ln.points[0][1])),
                        (float(ln.points[1][0]), float(ln.points[1][1])),
                    )
                    for ln in c.lines
                },
            )
        )
    return specs


class CameraService:
    """The whole ingester, usable from the CLI, the demo and tests."""

    def __init__(
        self,
        specs: list[CameraSpec],
        dsn: str,
        *,
        mode: str = "threads",
        options: WorkerOptions | None = None,
        policy: RestartPolicy | None = None,
        instance: str | None = None,
        writer_delay_s: float = 0.5,
        leases: Leases | None = None,
        reload: Callable[[], list[CameraSpec]] | None = None,
    ) -> None:
        self.specs = specs
        self.leases = leases  # --shared: only the cameras whose lease this ingester holds
        self.reload = reload  # the cameras of the configuration as it is now
        self._next_lease = 0.0
        self._next_reload = time.monotonic() + RELOAD_EVERY_S
        self.dsn = dsn
        self.mode = mode
        self.options = options or WorkerOptions()
        self.policy = policy or RestartPolicy()
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self.writer = BatchWriter(
            dsn,
            max_delay_s=writer_delay_s,
            name="cameras-writer",
            application_name="ioc-ingest-cameras",
        )
        self.supervisor: Supervisor | None = None
        self.counts: dict[str, int] = {"metrics": 0, "events": 0}
        self._last_status = 0.0
        self._started = False

    # -- start / stop ----------------------------------------------------------------------
    def start(self) -> None:
        initial = self._register()
        self.writer.start()
        self.supervisor = Supervisor(
            [] if self.leases is not None else self.specs,
            self._handle,
            mode=self.mode,
            options=self.options,
            policy=self.policy,
            initial=initial,
        )
        self.supervisor.start()
        self._started = True
        if self.leases is not None:
            self._lease_step()
        self._write_status("running")
        log.info(
            "camera ingester started: %d camera(s), %s, instance %s",
            len(self.specs),
            self.mode,
            self.instance,
        )

    def step(self) -> None:
        """Supervise once; refresh ``service_status`` every few seconds."""
        assert self.supervisor is not None
        self.supervisor.check()
        now = time.monotonic()
        if self.reload is not None and now >= self._next_reload:
            self._next_reload = now + RELOAD_EVERY_S
            self._reload()
        if self.leases is not None and time.monotonic() >= self._next_lease:
            self._lease_step()
        if time.monotonic() - self._last_status >= STATUS_EVERY_S:
            self._write_status("running")

    # -- cameras added, removed, changed; leases ------------------------------------------
    def _by_id(self) -> dict[str, CameraSpec]:
        return {s.id: s for s in self.specs}

    def _reload(self) -> None:
        """Apply the configuration as it is now (an invalid one is logged and ignored)."""
        assert self.reload is not None and self.supervisor is not None
        try:
            specs = self.reload()
        except Exception as exc:
            log.error("cameras.yaml not reloaded: %s", _first_line(exc))
            return
        old, new = self._by_id(), {s.id: s for s in specs}
        if old == new:
            return
        added = [s for k, s in new.items() if k not in old or old[k] != s]
        removed = [k for k in old if k not in new or old[k] != new[k]]
        log.info(
            "cameras.yaml changed: %d added or changed, %d removed or changed",
            len(added),
            len(removed),
        )
        if added:
            try:
                self._register_specs(added)
            except Exception as exc:  # the database is away: try again at the next check
                log.warning("cameras.yaml change not applied yet: %s", _first_line(exc))
                return
        self.specs = specs
        running = self.supervisor.camera_ids()
        stopped = [k for k in removed if k in running]
        for cam in stopped:
            self.supervisor.remove(cam)
        if self.leases is not None:
            try:
                self.leases.release(stopped)  # the next lease step takes the new ones
            except Exception as exc:  # they expire instead
                log.warning("camera leases not released: %s", _first_line(exc))
                self.leases.held -= set(stopped)
            self._next_lease = 0.0
            return
        try:
            initial = self._open_episodes({s.id for s in added})
        except Exception as exc:
            log.warning("open camera episodes not read: %s", _first_line(exc))
            initial = {}
        for spec in added:
            self.supervisor.add(spec, initial.get(spec.id))

    def _lease_step(self) -> None:
        assert self.leases is not None and self.supervisor is not None
        self._next_lease = time.monotonic() + self.leases.every_s
        try:
            plan = self.leases.step(list(self._by_id()))
        except Exception as exc:
            log.warning("camera leases not renewed: %s", _first_line(exc))
            self.leases.close()
            if self.leases.expired_locally():  # others may take them now: stop first
                running = self.supervisor.camera_ids()
                if running:
                    log.error("camera leases lost: stopping %d camera(s)", len(running))
                for cam in running:
                    self.supervisor.remove(cam)
                self.leases.held = set()
            return
        for cam in plan.lost:
            log.warning("camera %s: lease lost, stopping its worker", cam)
            self.supervisor.remove(cam)
        if plan.surplus:
            for cam in plan.surplus:
                self.supervisor.remove(cam)
            try:
                self.leases.release(plan.surplus)
            except Exception as exc:  # they expire instead (and are not watched meanwhile)
                log.warning("camera leases not released: %s", _first_line(exc))
                self.leases.held -= set(plan.surplus)
        # reconcile: a worker for every camera whose lease this ingester holds, no other
        specs = self._by_id()
        running = self.supervisor.camera_ids()
        for cam in sorted(running - self.leases.held):
            self.supervisor.remove(cam)
        to_start = sorted((self.leases.held & specs.keys()) - running)
        if to_start:
            try:
                initial = self._open_episodes(set(to_start))
            except Exception as exc:  # episodes are continued from the messages instead
                log.warning("open camera episodes not read: %s", _first_line(exc))
                initial = {}
            for cam in to_start:
                self.supervisor.add(specs[cam], initial.get(cam))
        if plan.start or plan.surplus or plan.lost:
            log.info(
                "camera leases: %d held (share %d of %d ingester(s)); +%d -%d",
                len(self.supervisor.camera_ids()),
                plan.share,
                plan.members,
                len(plan.start),
                len(plan.surplus) + len(plan.lost),
            )

    def run(self, stop: threading.Event, tick_s: float = 0.5) -> None:
        while not stop.wait(tick_s):
            self.step()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._started:
            return
        t0 = time.monotonic()
        assert self.supervisor is not None
        self.supervisor.stop(timeout=min(3.0, timeout / 2))
        if self.leases is not None:
            self.leases.leave()
        self._write_status("stopped")
        self.writer.stop(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        self._started = False
        log.info("camera ingester stopped in %.1fs", time.monotonic() - t0)

    # -- internals -----------------------------------------------------------------------
    def _register(self) -> dict[str, dict[str, float]]:
        """Upsert the cameras; return their open episodes (continued by the new workers)."""
        self._register_specs(self.specs)
        return self._open_episodes({s.id for s in self.specs})

    def _register_specs(self, specs: list[CameraSpec]) -> None:
        conn = connect(self.dsn, application_name="ioc-ingest-cameras")
        try:
            with conn.cursor() as cur:
                for s in specs:
                    cur.execute(SQL_REGISTER, (s.id, s.ward, s.name, s.lat, s.lon))
            conn.commit()
        except psycopg2.errors.UndefinedTable:
            raise IOCError("the database has no IOC schema: run `ioc db init` first") from None
        finally:
            conn.close()

    def _open_episodes(self, ids: set[str]) -> dict[str, dict[str, float]]:
        initial: dict[str, dict[str, float]] = {}
        conn = connect(self.dsn, application_name="ioc-ingest-cameras")
        try:
            with conn.cursor() as cur:
                cur.execute(SQL_OPEN_EVENTS)
                for cam, kind, started in cur.fetchall():
                    if cam in ids and kind != "worker_crash":
                        initial.setdefault(cam, {})[kind] = started.timestamp()
            conn.commit()
        finally:
            conn.close()
        return initial

    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Metrics):
            self.counts["metrics"] += 1
            self.writer.submit(metrics_work(msg))
        elif isinstance(msg, Event):
            self.counts["events"] += 1
            self.writer.submit(event_work(msg))
        elif isinstance(msg, Status):
            self.writer.submit(status_work(msg))

    def _write_status(self, status: str) -> None:
        self._last_status = time.monotonic()
        details: dict[str, Any] = {}
        if self.supervisor is not None:
            details = self.supervisor.stats()
        if self.supervisor is not None and self.leases is not None:
            details["cameras_held"] = sorted(self.supervisor.camera_ids())
        details["writer_pending"] = self.writer.pending()
        details["db_connected"] = self.writer.stats.connected
        if self.writer.alive():
            self.writer.submit(service_status_work(self.instance, status, details))


def config_reloader(cfg: Config, only: Sequence[str] | None) -> Callable[[], list[CameraSpec]]:
    """The cameras of the configuration folder as it is now: read again only when a file of
    it changed (validated whole, as at start-up)."""
    state: dict[str, Any] = {"stamp": None, "specs": camera_specs(cfg, only)}

    def stamp() -> tuple[tuple[str, int, int], ...]:
        out = []
        for p in sorted(Path(cfg.dir).glob("*.yaml")):
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                out.append((p.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    state["stamp"] = stamp()

    def reload() -> list[CameraSpec]:
        now = stamp()
        if now != state["stamp"]:
            state["specs"] = camera_specs(load_config(cfg.dir), only)
            state["stamp"] = now
        specs: list[CameraSpec] = state["specs"]
        return specs

    return reload


def main(args: argparse.Namespace, ctx: Context) -> int:
    cfg = ctx.config()
    only = getattr(args, "camera", None)
    specs = camera_specs(cfg, only)
    shared = bool(getattr(args, "shared", False))
    if not specs and not shared:
        raise IOCError("no enabled cameras in cameras.yaml (nothing to ingest)")
    dsn = ctx.database_url()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # we report cameras down
    options = WorkerOptions(var_dir=str(ctx.settings.var_dir))
    instance = f"{socket.gethostname()}:{os.getpid()}"
    service = CameraService(
        specs,
        dsn,
        mode=getattr(args, "workers", "threads"),
        options=options,
        instance=instance,
        leases=Leases(dsn, instance) if shared else None,
        reload=config_reloader(cfg, only),
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    try:
        service.run(stop)
    finally:
        service.stop()
    return 0
