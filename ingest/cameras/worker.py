"""One camera's loop: read frames, sample them at the analysis rate, analyse, report.

The worker knows nothing about the database or about threads vs processes: it sends picklable
messages (:class:`Metrics`, :class:`Event`, :class:`Status`, :class:`Crash`, :class:`Finished`)
to a ``sink`` callable and updates a ``heartbeat`` (anything with a ``.value`` float) on every
turn, so the supervisor can tell a stuck worker from a busy one.

Time. Live sources (URLs, devices) are stamped with the wall clock. A video FILE is a stand-in
for a live camera: with ``speed=1`` it is read at its own frame rate in wall-clock time (so a
2 fps analysis drops most frames, as with a real stream); ``speed=k`` plays it k times faster;
``speed=0`` reads as fast as possible. When ``speed != 1`` the frame's video time
(``CAP_PROP_POS_MSEC``) is the clock: ``ts = base_ts + video time`` — that is how tests run
minutes of footage in seconds through the same code path.

Dropping. Every frame is grabbed (decoded) — a live stream cannot be skipped — but only frames
due at the analysis rate are retrieved and analysed; the rest are counted as dropped. When the
worker falls behind the source's clock by more than ``max_lag_s`` a due frame is dropped too
(``frames_late``) instead of being analysed late.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ingest.cameras.analysis import (
    CentroidTracker,
    Detector,
    MotionDetector,
    Segment,
    frame_stats,
    occupancy,
)
from ingest.cameras.health import PICTURE_FAULTS, HealthConfig, HealthEvent, HealthMonitor
from ingest.cameras.source import Source, open_capture, resolve_source
from ioc.localtime import TZ

log = logging.getLogger(__name__)

BEAT_EVERY_S = 5.0  # heartbeat period while waiting to reconnect (supervisor: stuck after 45 s)


# -- messages -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metrics:
    camera_id: str
    ward: str
    ts: float  # interval start, Unix seconds
    values: dict[str, float]


@dataclass(frozen=True)
class Event:
    camera_id: str
    ward: str
    kind: str
    action: str  # open | close
    started_at: float
    ended_at: float | None
    details: dict[str, Any]


@dataclass(frozen=True)
class Status:
    camera_id: str
    ward: str
    status: str  # online | offline
    last_seen: float | None


@dataclass(frozen=True)
class Crash:
    camera_id: str
    reason: str


@dataclass(frozen=True)
class Finished:
    camera_id: str
    reason: str


Message = Metrics | Event | Status | Crash | Finished
Sink = Callable[[Message], None]


class Beat(Protocol):
    value: float


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SimpleBeat:
    """The thread-mode heartbeat (process mode uses a ``multiprocessing.Value``)."""

    def __init__(self) -> None:
        self.value = time.monotonic()


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraSpec:
    """Everything a worker needs about its camera (picklable, built from cameras.yaml)."""

    id: str
    ward: str
    source: str
    loop: bool = False
    analysis_fps: float = 2.0
    interval_s: float = 10.0
    width: int = 640
    lines: dict[str, Segment] = field(default_factory=dict)
    name: str | None = None
    lat: float | None = None  # position (cameras.yaml), the pin on the ward map
    lon: float | None = None
    detector: str | None = None  # overrides WorkerOptions.detector for this camera


@dataclass(frozen=True)
class WorkerOptions:
    speed: float = 1.0  # 1 = real time; k = k× faster; 0 = as fast as possible (files)
    base_ts: float | None = None  # clock origin when speed != 1 (default: start time)
    var_dir: str = "var"
    detector: str = "motion"  # or "package.module:factory" returning a Detector
    health: HealthConfig = field(default_factory=HealthConfig)
    offline_grace_s: float = 5.0  # a failure lasting this long opens an 'offline' episode
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 60.0  # a camera down for long is retried once a minute
    max_lag_s: float = 1.0
    open_timeout_ms: int = 10_000
    read_timeout_ms: int = 10_000
    decode_threads: int = 1


def make_detector(name: str) -> Detector:
    if name == "motion":
        return MotionDetector()
    module, _, attr = name.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    det: Detector = factory()
    return det


# -- interval accumulator --------------------------------------------------------------------
class IntervalStats:
    """Sums over one metrics interval; ``emit`` turns them into metric → value."""

    def __init__(self, lines: list[str], interval_s: float) -> None:
        self.lines = lines
        self.interval_s = interval_s
        self.start: float | None = None
        self.end: float = 0.0
        self._clear()

    def _clear(self) -> None:
        self.received = 0
        self.analysed = 0
        self.late = 0
        self.motion = 0.0
        self.occ = 0.0
        self.objects = 0.0
        self.bright = 0.0
        self.sharp = 0.0
        self.cost = 0.0
        self.counts: dict[str, int] = {}
        for n in self.lines:
            for s in ("in", "out", "vehicles", "people"):
                self.counts[f"line_{n}_{s}"] = 0

    def begin(self, ts: float) -> None:
        """Start the first interval at ``ts`` (not aligned), ending at the next boundary."""
        self.start = ts
        self.end = (math.floor(ts / self.interval_s) + 1) * self.interval_s

    def advance(self, ts: float) -> list[tuple[float, dict[str, float]]]:
        """Close every interval that ended at or before ``ts``."""
        if self.start is None:
            self.begin(ts)
            return []
        out: list[tuple[float, dict[str, float]]] = []
        if ts - self.end > 1000 * self.interval_s:  # a long gap: do not emit thousands
            out.append((self.start, self.emit(self.end - self.start)))
            self.begin(ts)
            return out
        while ts >= self.end:
            out.append((self.start, self.emit(self.end - self.start)))
            self.start, self.end = self.end, self.end + self.interval_s
        return out

    def flush(self, ts: float) -> list[tuple[float, dict[str, float]]]:
        """Emit the current (partial) interval, e.g. on shutdown."""
        if self.start is None or (self.received == 0 and ts - self.start < 1.0):
            return []
        out = [(self.start, self.emit(max(ts - self.start, 1e-3)))]
        self.start = None
        return out

    def emit(self, duration: float) -> dict[str, float]:
        v: dict[str, float] = {
            "online": 1.0 if self.received else 0.0,
            "frames_received": float(self.received),
            "frames_analysed": float(self.analysed),
            "frames_dropped": float(self.received - self.analysed),
            "frames_late": float(self.late),
            "fps_effective": round(self.analysed / duration, 3) if duration > 0 else 0.0,
        }
        if self.analysed:
            n = self.analysed
            v["motion_ratio"] = round(self.motion / n, 5)
            v["occupancy"] = round(self.occ / n, 5)
            v["objects"] = round(self.objects / n, 3)
            v["brightness"] = round(self.bright / n, 2)
            v["sharpness"] = round(self.sharp / n, 1)
            v["analysis_ms"] = round(1000 * self.cost / n, 3)
            v.update({k: float(c) for k, c in self.counts.items()})
        self._clear()
        return v


# -- the worker --------------------------------------------------------------------------------
class CameraWorker:
    def __init__(
        self,
        spec: CameraSpec,
        sink: Sink,
        stop: StopFlag,
        heartbeat: Beat | None = None,
        *,
        options: WorkerOptions | None = None,
        initial: dict[str, float] | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.stop = stop
        self.beat = heartbeat or SimpleBeat()
        self.opt = options or WorkerOptions()
        self.source: Source = resolve_source(spec.source, self.opt.var_dir)
        self.health = HealthMonitor(self.opt.health, initial)
        self.detector = detector or make_detector(spec.detector or self.opt.detector)
        self.tracker = CentroidTracker(spec.lines, aspect=16 / 9)
        self.acc = IntervalStats(list(spec.lines), spec.interval_s)
        self.period = 1.0 / spec.analysis_fps
        self._cap: cv2.VideoCapture | None = None
        self._prev_gray: np.ndarray | None = None
        self._next_due = -math.inf
        self._last_frame_ts: float | None = None
        self._failed_since: float | None = None
        self._status: str | None = None
        self._delay = self.opt.reconnect_min_s
        # file clock
        self._wall0 = 0.0
        self._vt_offset = 0.0  # video time of earlier loops
        self._vt_last = 0.0
        self._frame_dt = 0.04
        self._base_ts = self.opt.base_ts

    # -- helpers --
    @property
    def realtime(self) -> bool:
        return not self.source.is_file or self.opt.speed == 1.0

    def _now(self) -> float:
        """The worker's clock when no frame is at hand."""
        if self.realtime:
            return time.time()
        return (self._base_ts or 0.0) + self._vt_offset + self._vt_last

    def _send_metrics(self, rows: list[tuple[float, dict[str, float]]]) -> None:
        for start, values in rows:
            self.sink(Metrics(self.spec.id, self.spec.ward, start, values))
            if values["online"] and self._last_frame_ts is not None:
                self.sink(Status(self.spec.id, self.spec.ward, "online", self._last_frame_ts))

    def _send_event(self, ev: HealthEvent | None) -> None:
        if ev is None:
            return
        log.info(
            "camera %s: %s %s (started %s)", self.spec.id, ev.kind, ev.action, when(ev.started_at)
        )
        self.sink(
            Event(
                self.spec.id,
                self.spec.ward,
                ev.kind,
                ev.action,
                ev.started_at,
                ev.ended_at,
                ev.details,
            )
        )

    def _set_status(self, status: str, last_seen: float | None) -> None:
        if status != self._status:
            self._status = status
            self.sink(Status(self.spec.id, self.spec.ward, status, last_seen))

    # -- main loop --
    def run(self) -> None:
        """Run until ``stop`` is set or a non-looping file ends; flush the partial interval."""
        if self._base_ts is None:
            self._base_ts = time.time()
        reason = "stopped"
        try:
            reason = self._loop()
        finally:
            self._release()
            self._send_metrics(self.acc.flush(self._now()))
        if reason != "stopped":
            self.sink(Finished(self.spec.id, reason))

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _open(self) -> bool:
        cap = open_capture(
            self.source,
            open_timeout_ms=self.opt.open_timeout_ms,
            read_timeout_ms=self.opt.read_timeout_ms,
            threads=self.opt.decode_threads,
        )
        if cap is None:
            return False
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._frame_dt = 1.0 / fps if fps and 0 < fps < 1000 else 0.04
        self._wall0 = time.time() - self._vt_offset / self.opt.speed if self.opt.speed else 0.0
        if self.realtime and self.source.is_file:
            self._wall0 = time.time()
            self._vt_offset = 0.0
        self._vt_last = 0.0
        return True

    def _on_failure(self, what: str) -> None:
        now = self._now()
        if self._failed_since is None:
            self._failed_since = self._last_frame_ts if self._last_frame_ts is not None else now
            log.warning("camera %s: %s (%s)", self.spec.id, what, self.source.describe())
        if now - self._failed_since >= self.opt.offline_grace_s:
            ev = self.health.set_offline(True, self._failed_since, {"reason": what})
            if ev is not None:
                self._send_event(ev)
                self._set_status("offline", self._last_frame_ts)
        self._send_metrics(self.acc.advance(now))

    def _pause(self, seconds: float) -> bool:
        """Wait before a reconnect attempt (True when stop was asked), beating every few
        seconds: a pause of a minute must not look like a stuck worker to the supervisor."""
        left = seconds
        while left > 0:
            self.beat.value = time.monotonic()
            step = min(left, BEAT_EVERY_S)
            if self.stop.wait(step):
                return True
            left -= step
        self.beat.value = time.monotonic()
        return False

    def _loop(self) -> str:
        frames_since_open = 0
        while not self.stop.is_set():
            self.beat.value = time.monotonic()
            if self._cap is None:
                if not self._open():
                    self._on_failure("cannot open source")
                    self._pause(self._delay)
                    self._delay = min(self._delay * 2, self.opt.reconnect_max_s)
                    continue
                frames_since_open = 0
            cap = self._cap
            assert cap is not None
            if not cap.grab():
                self._release()
                if self.source.is_file and frames_since_open > 0:
                    if self.spec.loop:
                        self._vt_offset += self._vt_last + self._frame_dt
                        continue
                    return "end of file"
                self._on_failure("stream ended or stalled")
                self._pause(self._delay)
                self._delay = min(self._delay * 2, self.opt.reconnect_max_s)
                continue
            frames_since_open += 1
            ts, lag = self._frame_time(cap)
            if ts is None:  # stop requested while pacing
                break
            self._on_frame(cap, ts, lag)
        return "stopped"

    def _frame_time(self, cap: cv2.VideoCapture) -> tuple[float | None, float]:
        """Timestamp of the grabbed frame and how far behind the source clock we are."""
        if not self.source.is_file:
            return time.time(), 0.0
        pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        vt = pos if pos > self._vt_last or self._vt_last == 0.0 else self._vt_last + self._frame_dt
        self._vt_last = vt
        total = self._vt_offset + vt
        lag = 0.0
        if self.opt.speed > 0:
            due = self._wall0 + total / self.opt.speed
            now = time.time()
            if due > now:
                if self.stop.wait(due - now):
                    return None, 0.0
            else:
                lag = now - due
        if self.realtime:
            return self._wall0 + total, lag
        return (self._base_ts or 0.0) + total, lag

    def _on_frame(self, cap: cv2.VideoCapture, ts: float, lag: float) -> None:
        self._send_metrics(self.acc.advance(ts))
        if self._failed_since is not None or self._status != "online":
            self._send_event(self.health.set_offline(False, ts, {}))
            if self._failed_since is not None:
                log.info("camera %s: stream back", self.spec.id)
                self.health.reset_picture()
                self.detector.reset()
                self.tracker.reset()
                self._prev_gray = None
            self._failed_since = None
            self._delay = self.opt.reconnect_min_s
            self._set_status("online", ts)
        self._last_frame_ts = ts
        self.acc.received += 1
        if ts < self._next_due - 1e-3:
            return
        self._next_due = (
            self._next_due + self.period if ts - self._next_due < self.period else ts + self.period
        )
        if lag > self.opt.max_lag_s:
            self.acc.late += 1
            return
        t0 = time.perf_counter()
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            return
        self.analyse(frame, ts)
        self.acc.cost += time.perf_counter() - t0

    def analyse(self, frame: np.ndarray, ts: float) -> None:
        """Analyse one frame stamped ``ts`` (also used directly by the benchmark)."""
        if frame.shape[1] != self.spec.width:
            h = round(frame.shape[0] * self.spec.width / frame.shape[1])
            frame = cv2.resize(frame, (self.spec.width, h), interpolation=cv2.INTER_AREA)
        if self.tracker.aspect != frame.shape[1] / frame.shape[0]:
            self.tracker.aspect = frame.shape[1] / frame.shape[0]
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        st = frame_stats(gray, self._prev_gray)
        self._prev_gray = gray
        for ev in self.health.observe(st, ts):
            self._send_event(ev)
        res = self.detector.detect(frame, gray)
        bad_picture = any(self.health.states[k].active for k in PICTURE_FAULTS)
        if res.global_change or bad_picture:
            self.tracker.reset()
            counts = []
        else:
            counts = self.tracker.update(res.detections, ts)
        a = self.acc
        a.analysed += 1
        a.motion += res.motion_ratio
        a.occ += occupancy(res.detections)
        a.objects += len(res.detections)
        a.bright += st.brightness
        a.sharp += st.sharpness
        for c in counts:
            a.counts[f"line_{c.line}_{c.direction}"] += 1
            a.counts[f"line_{c.line}_{'people' if c.category == 'person' else 'vehicles'}"] += 1


def run_worker(
    spec: CameraSpec,
    sink: Sink,
    stop: StopFlag,
    heartbeat: Beat | None,
    options: WorkerOptions,
    initial: dict[str, float] | None = None,
) -> None:
    """Entry point of a worker thread or process: a crash becomes a :class:`Crash` message."""
    try:
        CameraWorker(spec, sink, stop, heartbeat, options=options, initial=initial).run()
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        reason = f"{type(exc).__name__}: {exc}{where}"
        log.error("camera %s: worker crashed: %s", spec.id, reason)
        sink(Crash(spec.id, reason[:500]))
        raise SystemExit(1) from None


def when(epoch_s: float) -> str:
    """A log's time in Vietnam with its offset, '2026-12-05 21:40:03+07:00', not a raw
    epoch (whatever the host's own time zone)."""
    return dt.datetime.fromtimestamp(epoch_s, TZ).isoformat(sep=" ", timespec="seconds")
