"""One worker per camera, as a thread or a process, restarted when it dies or gets stuck.

Restarts back off exponentially (``backoff_min_s`` doubling up to ``backoff_max_s``; reset after
``healthy_after_s`` of good running) and are capped at ``max_restarts`` per ``window_s``; past the
cap the camera waits for the window to free up. Every death is logged with its reason and stored
as a ``worker_crash`` episode (from the death to the restart). One camera's failures never touch
the others: each worker has its own capture, detector, stop flag and heartbeat.

A stuck worker (no heartbeat for ``stuck_s``, e.g. a capture blocked in a read that never times
out) is replaced: a process is terminated; a thread cannot be killed in Python, so it is told to
stop and abandoned (it is a daemon thread) while a fresh one takes over.

Open health episodes are followed through the messages, so a restarted worker continues them
instead of opening duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ingest.cameras.worker import (
    Beat,
    CameraSpec,
    Crash,
    Event,
    Finished,
    Message,
    SimpleBeat,
    Status,
    WorkerOptions,
    run_worker,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    max_restarts: int = 5
    window_s: float = 300.0
    stuck_s: float = 45.0
    healthy_after_s: float = 60.0


@dataclass
class _Slot:
    spec: CameraSpec
    handle: Any = None  # threading.Thread | multiprocessing.Process
    stop: Any = None
    beat: Any = None
    started: float = 0.0  # monotonic
    restarts: deque[float] = field(default_factory=deque)
    backoff: float = 0.0
    next_start: float | None = None
    crash_reason: str | None = None
    down_since: float | None = None  # wall clock of the death
    finished: bool = False
    total_restarts: int = 0


def _process_entry(
    spec: CameraSpec,
    q: Any,
    stop: Any,
    beat: Any,
    options: WorkerOptions,
    initial: dict[str, float],
    log_level: int,
) -> None:
    """A worker process: Ctrl-C is the parent's business; SIGTERM asks for a clean stop."""
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run_worker(spec, q.put, stop, beat, options, initial)


class Supervisor:
    def __init__(
        self,
        specs: list[CameraSpec],
        on_message: Callable[[Message], None],
        *,
        mode: str = "threads",
        options: WorkerOptions | None = None,
        policy: RestartPolicy | None = None,
        initial: dict[str, dict[str, float]] | None = None,
    ) -> None:
        if mode not in ("threads", "processes"):
            raise ValueError(f"unknown worker mode {mode!r}")
        self.mode = mode
        self.options = options or WorkerOptions()
        self.policy = policy or RestartPolicy()
        self._on_message = on_message
        self._slots = {s.id: _Slot(s) for s in specs}
        self._open: dict[str, dict[str, float]] = {k: dict(v) for k, v in (initial or {}).items()}
        self._lock = threading.Lock()
        self._abandoned: list[threading.Thread] = []
        self._ctx = mp.get_context("spawn")
        self._queue: Any = self._ctx.Queue() if mode == "processes" else None
        self._pump: threading.Thread | None = None
        self._pump_stop = threading.Event()

    # -- messages ------------------------------------------------------------------------
    def deliver(self, msg: Message) -> None:
        """Called by workers (threads) or the pump (processes) for every message."""
        with self._lock:
            slot = self._slots.get(msg.camera_id)
            if isinstance(msg, Crash) and slot is not None:
                slot.crash_reason = msg.reason
                return
            if isinstance(msg, Finished) and slot is not None:
                slot.finished = True
                log.info("camera %s: worker finished (%s)", msg.camera_id, msg.reason)
                msg = Status(msg.camera_id, slot.spec.ward, "offline", None)
            if isinstance(msg, Event):
                opened = self._open.setdefault(msg.camera_id, {})
                if msg.action == "open":
                    opened[msg.kind] = msg.started_at
                else:
                    opened.pop(msg.kind, None)
        self._on_message(msg)

    def _pump_loop(self) -> None:
        while True:
            try:
                msg = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._pump_stop.is_set():
                    return
                continue
            try:
                self.deliver(msg)
            except Exception:
                log.exception("camera message handling failed")

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self.mode == "processes":
            self._pump = threading.Thread(target=self._pump_loop, name="cameras-pump", daemon=True)
            self._pump.start()
        for slot in self._slots.values():
            self._start(slot)

    def add(self, spec: CameraSpec, initial: dict[str, float] | None = None) -> None:
        """Start watching one more camera (a lease taken, a camera added to the config)."""
        with self._lock:
            if spec.id in self._slots:
                return
            slot = _Slot(spec)
            self._slots[spec.id] = slot
            if initial:
                self._open[spec.id] = dict(initial)
        self._start(slot)

    def remove(self, camera_id: str, timeout: float = 5.0) -> bool:
        """Stop watching a camera: its worker stops and flushes its partial interval before
        this returns (within ``timeout``; a process that does not is terminated). True when
        the worker is known to be gone (a thread that hangs past the timeout is not)."""
        with self._lock:
            slot = self._slots.pop(camera_id, None)
            self._open.pop(camera_id, None)
        if slot is None or slot.handle is None:
            return True
        slot.stop.set()
        slot.handle.join(timeout)
        if slot.handle.is_alive() and self.mode == "processes":
            slot.handle.terminate()
            slot.handle.join(1.0)
            if slot.handle.is_alive():
                slot.handle.kill()
                slot.handle.join(1.0)
        if slot.handle.is_alive():
            log.error("camera %s: worker did not stop within %.0fs", camera_id, timeout)
            return False
        return True

    def camera_ids(self) -> set[str]:
        with self._lock:
            return set(self._slots)

    def _start(self, slot: _Slot) -> None:
        spec = slot.spec
        initial = dict(self._open.get(spec.id, {}))
        initial.pop("worker_crash", None)
        slot.crash_reason = None
        slot.finished = False
        slot.started = time.monotonic()
        slot.next_start = None
        if self.mode == "threads":
            slot.stop = threading.Event()
            slot.beat = SimpleBeat()
            slot.handle = threading.Thread(
                target=self._thread_entry,
                args=(spec, slot.stop, slot.beat, initial),
                name=f"camera-{spec.id}",
                daemon=True,
            )
        else:
            slot.stop = self._ctx.Event()
            slot.beat = self._ctx.Value("d", time.monotonic(), lock=False)
            slot.handle = self._ctx.Process(
                target=_process_entry,
                args=(
                    spec,
                    self._queue,
                    slot.stop,
                    slot.beat,
                    self.options,
                    initial,
                    logging.getLogger().getEffectiveLevel(),
                ),
                name=f"camera-{spec.id}",
                daemon=True,
            )
        slot.handle.start()
        if slot.down_since is not None:
            # close the worker_crash episode: the camera is being watched again
            self.deliver(
                Event(spec.id, spec.ward, "worker_crash", "close", slot.down_since, time.time(), {})
            )
            slot.down_since = None

    def _thread_entry(
        self, spec: CameraSpec, stop: threading.Event, beat: Beat, initial: dict[str, float]
    ) -> None:
        with contextlib.suppress(SystemExit):  # run_worker reports the crash, then exits
            run_worker(spec, self.deliver, stop, beat, self.options, initial)

    def check(self) -> None:
        """Find dead or stuck workers; restart those whose backoff has elapsed."""
        now = time.monotonic()
        for slot in list(self._slots.values()):
            if slot.next_start is not None:
                if now >= slot.next_start:
                    self._restart(slot, now)
                continue
            if slot.handle is None or slot.finished:
                continue
            alive = slot.handle.is_alive()
            if alive and now - slot.beat.value > self.policy.stuck_s:
                self._kill_stuck(slot, now - slot.beat.value)
                self._died(slot, f"stuck: no heartbeat for {now - slot.beat.value:.0f}s", now)
            elif not alive:
                if self.mode == "processes":
                    slot.handle.join(0.1)
                    time.sleep(0.05)  # let the pump deliver a final Crash/Finished message
                    if slot.finished:
                        continue
                    code = slot.handle.exitcode
                    reason = slot.crash_reason or (
                        f"killed by signal {-code}" if code and code < 0 else f"exit code {code}"
                    )
                else:
                    if slot.finished:
                        continue
                    reason = slot.crash_reason or "thread exited"
                self._died(slot, reason, now)

    def _kill_stuck(self, slot: _Slot, silent_s: float) -> None:
        slot.stop.set()
        if self.mode == "processes":
            slot.handle.terminate()
            slot.handle.join(2.0)
            if slot.handle.is_alive():
                slot.handle.kill()
                slot.handle.join(1.0)
        else:
            self._abandoned.append(slot.handle)

    def _died(self, slot: _Slot, reason: str, now: float) -> None:
        p = self.policy
        if now - slot.started >= p.healthy_after_s:
            slot.backoff = 0.0
        slot.backoff = (
            p.backoff_min_s if slot.backoff == 0 else min(2 * slot.backoff, p.backoff_max_s)
        )
        while slot.restarts and now - slot.restarts[0] > p.window_s:
            slot.restarts.popleft()
        when = now + slot.backoff
        capped = len(slot.restarts) >= p.max_restarts
        if capped:
            when = max(when, slot.restarts[0] + p.window_s)
        log.error(
            "camera %s: worker died (%s); restart in %.0fs%s",
            slot.spec.id,
            reason,
            when - now,
            f" (cap of {p.max_restarts} restarts per {p.window_s:.0f}s reached)" if capped else "",
        )
        slot.handle = None
        slot.next_start = when
        if slot.down_since is None:
            slot.down_since = time.time()
            self.deliver(
                Event(
                    slot.spec.id,
                    slot.spec.ward,
                    "worker_crash",
                    "open",
                    slot.down_since,
                    None,
                    {"reason": reason, "restarts": slot.total_restarts, "capped": capped},
                )
            )

    def _restart(self, slot: _Slot, now: float) -> None:
        slot.restarts.append(now)
        slot.total_restarts += 1
        log.info("camera %s: restarting worker (restart #%d)", slot.spec.id, slot.total_restarts)
        self._start(slot)

    def stop(self, timeout: float = 3.0) -> None:
        """Ask every worker to stop (they flush their partial interval), wait, then clean up."""
        for slot in self._slots.values():
            if slot.stop is not None:
                slot.stop.set()
        deadline = time.monotonic() + timeout
        for slot in self._slots.values():
            if slot.handle is not None:
                slot.handle.join(max(0.0, deadline - time.monotonic()))
        for slot in self._slots.values():
            h = slot.handle
            if h is not None and h.is_alive():
                log.warning("camera %s: worker did not stop in time", slot.spec.id)
                if self.mode == "processes":
                    h.terminate()
                    h.join(1.0)
        if self.mode == "processes":
            self._pump_stop.set()
            if self._pump is not None:
                self._pump.join(2.0)
            # anything left after the pump stopped
            while True:
                try:
                    self.deliver(self._queue.get_nowait())
                except (queue.Empty, OSError, ValueError):
                    break
            self._queue.close()
            self._queue.join_thread()

    # -- introspection -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        running = sum(
            1 for s in self._slots.values() if s.handle is not None and s.handle.is_alive()
        )
        return {
            "mode": self.mode,
            "cameras": len(self._slots),
            "running": running,
            "restarts": sum(s.total_restarts for s in self._slots.values()),
            "waiting_restart": sorted(k for k, s in self._slots.items() if s.next_start),
        }

    def pid_of(self, camera_id: str) -> int | None:
        h = self._slots[camera_id].handle
        return getattr(h, "pid", None) if h is not None else None

    def restarts_of(self, camera_id: str) -> int:
        return self._slots[camera_id].total_restarts
