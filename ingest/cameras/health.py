"""Camera health: frozen, black, blurred and covered pictures, and offline streams.

Each kind is a small state machine over analysed frames: a condition must hold for
``confirm_s`` (and at least ``confirm_frames`` frames) to open an episode, and be absent for as
long to close it. ``started_at`` is the first frame showing the condition, ``ended_at`` the first
frame without it, so the stored episode is what happened, not when we became sure of it.

Blur and cover are judged against the camera's own baseline (a slow average of its healthy
sharpness and contrast), not absolute thresholds, so a dark night scene — low brightness, but
lights and edges — is not mistaken for a fault; absolute floors catch a camera that starts bad.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from ingest.cameras.analysis import FrameStats

PICTURE_FAULTS = ("black", "covered", "blurred", "frozen")


@dataclass(frozen=True)
class HealthConfig:
    confirm_s: float = 4.0
    confirm_frames: int = 3
    black_brightness: float = 12.0  # mean grey below this ...
    black_contrast: float = 10.0  # ... and almost no structure
    covered_contrast: float = 6.0  # absolute floor: a uniform picture
    covered_rel_contrast: float = 0.3  # or contrast and sharpness collapsed vs. the baseline
    covered_rel_sharpness: float = 0.05
    blur_rel_sharpness: float = 0.2
    blur_abs_sharpness: float = 8.0
    frozen_diff: float = 0.05  # median mean-abs-difference between analysed frames
    frozen_window: int = 5
    baseline_alpha: float = 0.02
    baseline_frames: int = 6


@dataclass(frozen=True)
class HealthEvent:
    kind: str
    action: Literal["open", "close"]
    started_at: float
    ended_at: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    active: bool = False
    started_at: float | None = None
    since: float | None = None  # first frame of the pending change
    frames: int = 0


class HealthMonitor:
    def __init__(self, cfg: HealthConfig | None = None, initial: dict[str, float] | None = None):
        self.cfg = cfg or HealthConfig()
        self.states: dict[str, _State] = {k: _State() for k in (*PICTURE_FAULTS, "offline")}
        for kind, started in (initial or {}).items():
            st = self.states.setdefault(kind, _State())
            st.active, st.started_at = True, started
        self._diffs: deque[float] = deque(maxlen=self.cfg.frozen_window)
        self._warm: list[FrameStats] = []
        self.base_sharpness: float | None = None
        self.base_contrast: float | None = None

    def active(self) -> dict[str, float]:
        """Open episodes: kind → started_at."""
        return {k: s.started_at for k, s in self.states.items() if s.active and s.started_at}

    def flags(self, st: FrameStats) -> dict[str, bool]:
        c = self.cfg
        black = st.brightness < c.black_brightness and st.contrast < c.black_contrast
        covered = False
        blurred = False
        if not black:
            covered = st.contrast < c.covered_contrast
            if self.base_contrast and self.base_sharpness:
                covered = covered or (
                    st.contrast < c.covered_rel_contrast * self.base_contrast
                    and st.sharpness < c.covered_rel_sharpness * self.base_sharpness
                )
            if not covered:
                limit = c.blur_abs_sharpness
                if self.base_sharpness:
                    limit = max(limit, c.blur_rel_sharpness * self.base_sharpness)
                blurred = st.sharpness < limit
        frozen = False
        if st.diff is not None:
            self._diffs.append(st.diff)
        if not black and not covered and len(self._diffs) >= min(3, self._diffs.maxlen or 3):
            frozen = statistics.median(self._diffs) < c.frozen_diff
        return {"black": black, "covered": covered, "blurred": blurred, "frozen": frozen}

    def observe(self, st: FrameStats, ts: float) -> list[HealthEvent]:
        flags = self.flags(st)
        if not any(flags.values()) and not any(self.states[k].active for k in PICTURE_FAULTS):
            self._learn(st)
        details = {
            "brightness": round(st.brightness, 1),
            "contrast": round(st.contrast, 1),
            "sharpness": round(st.sharpness, 1),
            "base_sharpness": round(self.base_sharpness, 1) if self.base_sharpness else None,
        }
        events: list[HealthEvent] = []
        for kind, flagged in flags.items():
            ev = self._step(kind, flagged, ts, details)
            if ev is not None:
                events.append(ev)
        return events

    def _learn(self, st: FrameStats) -> None:
        c = self.cfg
        if self.base_sharpness is None or self.base_contrast is None:
            self._warm.append(st)
            if len(self._warm) >= c.baseline_frames:
                self.base_sharpness = statistics.median(s.sharpness for s in self._warm)
                self.base_contrast = statistics.median(s.contrast for s in self._warm)
                self._warm = []
            return
        a = c.baseline_alpha
        self.base_sharpness = (1 - a) * self.base_sharpness + a * st.sharpness
        self.base_contrast = (1 - a) * self.base_contrast + a * st.contrast

    def _step(
        self, kind: str, flagged: bool, ts: float, details: dict[str, Any]
    ) -> HealthEvent | None:
        s = self.states[kind]
        if flagged == s.active:
            s.since, s.frames = None, 0
            return None
        if s.since is None:
            s.since, s.frames = ts, 0
        s.frames += 1
        if ts - s.since < self.cfg.confirm_s or s.frames < self.cfg.confirm_frames:
            return None
        when = s.since
        s.since, s.frames = None, 0
        if flagged:
            s.active, s.started_at = True, when
            return HealthEvent(kind, "open", when, None, details)
        started = s.started_at if s.started_at is not None else when
        s.active, s.started_at = False, None
        return HealthEvent(kind, "close", started, when, {})

    def set_offline(self, offline: bool, ts: float, details: dict[str, Any]) -> HealthEvent | None:
        """Offline is decided by the worker (stream failure, stall); no confirmation here."""
        s = self.states["offline"]
        if offline == s.active:
            return None
        if offline:
            s.active, s.started_at = True, ts
            return HealthEvent("offline", "open", ts, None, details)
        started = s.started_at if s.started_at is not None else ts
        s.active, s.started_at = False, None
        return HealthEvent("offline", "close", started, ts, {})

    def reset_picture(self) -> None:
        """Forget frame history (after a reconnect): the next frames are not compared to old."""
        self._diffs.clear()
        for k in PICTURE_FAULTS:
            self.states[k].since, self.states[k].frames = None, 0
