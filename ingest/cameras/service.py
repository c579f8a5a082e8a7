"""``ioc ingest cameras``: the camera ingester for the cameras of ``config/cameras.yaml``.

Start-up, top to bottom: select the cameras, check the database and register them in
``cameras``, read their open health episodes, start the batched writer, start the supervisor
(one worker per camera). Shutdown (SIGTERM / Ctrl-C) in reverse: workers stop and flush their
partial interval, the writer commits what is queued, ``service_status`` says 'stopped'.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import cv2
import psycopg2

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
from ioc.config import Config
from ioc.context import Context
from ioc.db import connect
from ioc.errors import IOCError

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0


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
    ) -> None:
        self.specs = specs
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
            self.specs,
            self._handle,
            mode=self.mode,
            options=self.options,
            policy=self.policy,
            initial=initial,
        )
        self.supervisor.start()
        self._started = True
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
        if time.monotonic() - self._last_status >= STATUS_EVERY_S:
            self._write_status("running")

    def run(self, stop: threading.Event, tick_s: float = 0.5) -> None:
        while not stop.wait(tick_s):
            self.step()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._started:
            return
        t0 = time.monotonic()
        assert self.supervisor is not None
        self.supervisor.stop(timeout=min(3.0, timeout / 2))
        self._write_status("stopped")
        self.writer.stop(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        self._started = False
        log.info("camera ingester stopped in %.1fs", time.monotonic() - t0)

    # -- internals -----------------------------------------------------------------------
    def _register(self) -> dict[str, dict[str, float]]:
        """Upsert the cameras; return their open episodes (continued by the new workers)."""
        conn = connect(self.dsn, application_name="ioc-ingest-cameras")
        initial: dict[str, dict[str, float]] = {}
        try:
            with conn.cursor() as cur:
                for s in self.specs:
                    cur.execute(SQL_REGISTER, (s.id, s.ward, s.name))
                cur.execute(SQL_OPEN_EVENTS)
                ids = {s.id for s in self.specs}
                for cam, kind, started in cur.fetchall():
                    if cam in ids and kind != "worker_crash":
                        initial.setdefault(cam, {})[kind] = started.timestamp()
            conn.commit()
        except psycopg2.errors.UndefinedTable:
            raise IOCError("the database has no IOC schema: run `ioc db init` first") from None
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
        details["writer_pending"] = self.writer.pending()
        details["db_connected"] = self.writer.stats.connected
        if self.writer.alive():
            self.writer.submit(service_status_work(self.instance, status, details))


def main(args: argparse.Namespace, ctx: Context) -> int:
    cfg = ctx.config()
    specs = camera_specs(cfg, getattr(args, "camera", None))
    if not specs:
        raise IOCError("no enabled cameras in cameras.yaml (nothing to ingest)")
    dsn = ctx.database_url()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # we report cameras down
    options = WorkerOptions(var_dir=str(ctx.settings.var_dir))
    service = CameraService(specs, dsn, mode=getattr(args, "workers", "threads"), options=options)
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
