"""Frame analysis: detector interface, background-subtraction detector, centroid tracker,
counting lines and per-frame image statistics. Pure computation, no I/O.

Coordinates are fractions of the frame (x of the width, y of the height), so counting lines
from ``cameras.yaml`` apply at any resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import cv2
import numpy as np

from ioc.geometry import Segment, across, line_length, line_side, segment_cross

Category = Literal["vehicle", "person"]
# A tracked centre may cross a counting line just past the end of its segment (sampled, noisy
# positions): the crossing point may lie this fraction of the segment's length beyond either end.
END_SLACK = 0.02


@dataclass(frozen=True)
class Detection:
    """One object in one frame: centre, size (fractions of the frame) and category."""

    cx: float
    cy: float
    w: float
    h: float
    category: Category
    score: float = 1.0


@dataclass
class DetectionResult:
    detections: list[Detection]
    motion_ratio: float  # fraction of the frame that moved (0..1)
    global_change: bool = False  # the whole picture changed (lights, fault): do not track


class Detector(Protocol):
    """What the worker needs from a detector. A DNN detector (``cv2.dnn``) implements the same:
    ``detect`` returns detections with a category; ``motion_ratio`` may come from a cheap
    frame difference. ``reset`` forgets the scene (after a reconnect or a fault)."""

    def detect(self, frame: np.ndarray, gray: np.ndarray) -> DetectionResult: ...

    def reset(self) -> None: ...


class MotionDetector:
    """MOG2 background subtraction on a downscaled grey frame + blob extraction.

    Blobs smaller than ``min_area`` (fraction of the frame) are noise (rain, compression);
    a blob taller than wide and small is a person, anything else a vehicle.
    """

    def __init__(
        self,
        *,
        detect_width: int = 320,
        min_area: float = 0.0004,
        person_max_area: float = 0.006,
        person_min_aspect: float = 1.3,
        global_change_ratio: float = 0.45,
        history: int = 300,
        merge_gap_x: float = 0.025,
        merge_gap_y: float = 0.008,
    ) -> None:
        self.merge_gap_x = merge_gap_x
        self.merge_gap_y = merge_gap_y
        self.detect_width = detect_width
        self.min_area = min_area
        self.person_max_area = person_max_area
        self.person_min_aspect = person_min_aspect
        self.global_change_ratio = global_change_ratio
        self.history = history
        self._kernel_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.reset()

    def reset(self) -> None:
        self._bg = cv2.createBackgroundSubtractorMOG2(
            history=self.history, varThreshold=16, detectShadows=False
        )

    def detect(self, frame: np.ndarray, gray: np.ndarray) -> DetectionResult:
        h, w = gray.shape[:2]
        dw = min(self.detect_width, w)
        dh = max(1, round(h * dw / w))
        small = gray if dw == w else cv2.resize(gray, (dw, dh), interpolation=cv2.INTER_AREA)
        fg = self._bg.apply(small)
        mask = cv2.medianBlur(fg, 3)  # salt noise (compression, rain) out, thin limbs kept
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel_close)
        total = float(dw * dh)
        ratio = cv2.countNonZero(mask) / total
        if ratio > self.global_change_ratio:
            return DetectionResult([], ratio, global_change=True)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        boxes = [
            [int(v) for v in stats[i][:5]] for i in range(1, n) if stats[i][4] >= 2
        ]  # x, y, w, h, area
        boxes = _group(boxes, self.merge_gap_x * dw, self.merge_gap_y * dh)
        dets: list[Detection] = []
        for x, y, bw, bh, area in boxes:
            a = area / total
            if a < self.min_area:
                continue
            aspect = bh / max(bw, 1)
            cat: Category = (
                "person"
                if a <= self.person_max_area and aspect >= self.person_min_aspect
                else "vehicle"
            )
            dets.append(Detection((x + bw / 2) / dw, (y + bh / 2) / dh, bw / dw, bh / dh, cat))
        return DetectionResult(dets, ratio)


def _group(boxes: list[list[int]], gx: float, gy: float) -> list[list[int]]:
    """Merge boxes closer than (gx, gy) pixels: fragments of one object (a vehicle and its
    headlight beam at night, a person's head and body) become one detection."""
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                dx = max(o[0] - (b[0] + b[2]), b[0] - (o[0] + o[2]), 0)
                dy = max(o[1] - (b[1] + b[3]), b[1] - (o[1] + o[3]), 0)
                if dx <= gx and dy <= gy:
                    x0, y0 = min(o[0], b[0]), min(o[1], b[1])
                    x1, y1 = max(o[0] + o[2], b[0] + b[2]), max(o[1] + o[3], b[1] + b[3])
                    o[:] = [x0, y0, x1 - x0, y1 - y0, o[4] + b[4]]
                    merged = True
                    break
            else:
                out.append(list(b))
        boxes = out
    return boxes


@dataclass
class Track:
    id: int
    x: float
    y: float
    w: float
    h: float
    vx: float = 0.0  # per second, fractions of the width
    vy: float = 0.0
    t: float = 0.0
    hits: int = 1
    missed: int = 0
    coasted: int = 0
    votes: dict[str, int] = field(default_factory=dict)
    counted: set[str] = field(default_factory=set)
    pending: dict[str, int] = field(default_factory=dict)  # crossings awaiting min_hits
    x0: float = math.nan  # where the track was first seen
    y0: float = math.nan

    def __post_init__(self) -> None:
        if math.isnan(self.x0):
            self.x0, self.y0 = self.x, self.y

    @property
    def category(self) -> Category:
        if not self.votes:
            return "vehicle"
        return "person" if self.votes.get("person", 0) > self.votes.get("vehicle", 0) else "vehicle"


@dataclass(frozen=True)
class CountEvent:
    line: str
    direction: Literal["in", "out"]
    category: Category
    track_id: int


class CentroidTracker:
    """Greedy nearest-neighbour tracking of detections, predicted with constant velocity.

    A new track may match a detection within ``max_jump`` (fraction of the frame width) of its
    position; a track with a velocity within ``gate`` of its prediction (a little more after a
    miss). Boxes whose areas differ more than ``max_area_ratio`` never match (a pedestrian does
    not become a bus). A crossing counts once per track and line, only if the track's own
    velocity agrees with the direction, and only once the track has been seen ``min_hits``
    times (a ghost or a one-frame glitch does not count).
    """

    def __init__(
        self,
        lines: dict[str, Segment],
        aspect: float,
        *,
        max_jump: float = 0.12,
        gate: float = 0.05,
        max_missed: int = 2,
        max_area_ratio: float = 4.0,
        min_hits: int = 3,
        max_coast: int = 6,
        min_travel: float = 0.03,
    ) -> None:
        self.min_travel = min_travel
        self.max_coast = max_coast
        self.lines = lines
        self.aspect = aspect
        self.max_jump = max_jump
        self.gate = gate
        self.max_missed = max_missed
        self.max_area_ratio = max_area_ratio
        self.min_hits = min_hits
        self.tracks: list[Track] = []
        self._next = 1

    def reset(self) -> None:
        self.tracks = []

    def _dist(self, ax: float, ay: float, bx: float, by: float) -> float:
        # in units of the frame width
        return math.hypot(ax - bx, (ay - by) / self.aspect)

    def update(self, dets: list[Detection], t: float) -> list[CountEvent]:
        events: list[CountEvent] = []
        preds: list[tuple[float, float]] = []
        for tr in self.tracks:
            dt = max(t - tr.t, 1e-6)
            preds.append((tr.x + tr.vx * dt, tr.y + tr.vy * dt))
        used_t: set[int] = set()
        used_d: set[int] = set()
        # 1. merged blobs: one detection covering the predictions of two or more moving tracks
        #    (vehicles passing each other): those tracks coast on their predictions.
        for di, d in enumerate(dets):
            inside = [
                ti
                for ti, tr in enumerate(self.tracks)
                if tr.hits >= 2 and self._inside(preds[ti], d)
            ]
            if len(inside) >= 2:
                used_d.add(di)
                for ti in inside:
                    used_t.add(ti)
                    self._coast(self.tracks[ti], preds[ti], t, events)
        # 2. greedy nearest-neighbour matching around the predictions
        pairs: list[tuple[float, int, int]] = []
        for ti, tr in enumerate(self.tracks):
            if ti in used_t:
                continue
            px, py = preds[ti]
            limit = self.gate * (1 + 0.5 * tr.missed) if tr.hits >= 2 else self.max_jump
            area = max(tr.w * tr.h, 1e-9)
            for di, d in enumerate(dets):
                if di in used_d:
                    continue
                ratio = max(area, d.w * d.h) / max(min(area, d.w * d.h), 1e-9)
                if ratio > self.max_area_ratio:
                    continue
                dist = self._dist(px, py, d.cx, d.cy)
                if dist <= limit:
                    pairs.append((dist, ti, di))
        pairs.sort()
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            tr, d = self.tracks[ti], dets[di]
            dt = max(t - tr.t, 1e-6)
            a = (tr.x, tr.y)
            nvx, nvy = (d.cx - tr.x) / dt, (d.cy - tr.y) / dt
            if tr.hits >= 2:
                nvx, nvy = 0.5 * (nvx + tr.vx), 0.5 * (nvy + tr.vy)
            tr.vx, tr.vy = nvx, nvy
            tr.x, tr.y, tr.w, tr.h, tr.t = d.cx, d.cy, d.w, d.h, t
            tr.hits += 1
            tr.missed = 0
            tr.coasted = 0
            tr.votes[d.category] = tr.votes.get(d.category, 0) + 1
            self._check_lines(tr, a, events)
        # 3. a moving track whose prediction lies inside some detection is occluded: coast
        survivors: list[Track] = []
        for ti, tr in enumerate(self.tracks):
            if ti not in used_t:
                if (
                    tr.hits >= 3
                    and tr.coasted < self.max_coast
                    and any(self._inside(preds[ti], d) for d in dets)
                ):
                    self._coast(tr, preds[ti], t, events)
                else:
                    tr.missed += 1
                    if tr.missed > self.max_missed:
                        continue
            survivors.append(tr)
        # 4. new tracks
        for di, d in enumerate(dets):
            if di not in used_d:
                survivors.append(
                    Track(self._next, d.cx, d.cy, d.w, d.h, t=t, votes={d.category: 1})
                )
                self._next += 1
        self.tracks = survivors
        return events

    @staticmethod
    def _inside(p: tuple[float, float], d: Detection, margin: float = 0.01) -> bool:
        return abs(p[0] - d.cx) <= d.w / 2 + margin and abs(p[1] - d.cy) <= d.h / 2 + margin

    def _coast(
        self, tr: Track, pred: tuple[float, float], t: float, events: list[CountEvent]
    ) -> None:
        a = (tr.x, tr.y)
        tr.x, tr.y, tr.t = pred[0], pred[1], t
        tr.coasted += 1
        tr.missed = 0
        self._check_lines(tr, a, events)

    def _check_lines(self, tr: Track, a: tuple[float, float], events: list[CountEvent]) -> None:
        b = (tr.x, tr.y)
        for name, line in self.lines.items():
            if name in tr.counted or name in tr.pending:
                continue
            c = segment_cross(line, a, b, self.aspect, end_slack=END_SLACK)
            if c and self._heads_across(line, tr, c):
                tr.pending[name] = c
        for name, c in list(tr.pending.items()):
            if tr.hits >= self.min_hits:
                del tr.pending[name]
                tr.counted.add(name)
                events.append(CountEvent(name, "in" if c > 0 else "out", tr.category, tr.id))

    def _heads_across(self, line: Segment, tr: Track, direction: int) -> bool:
        """A crossing in ``direction`` (+1 'in', -1 'out') counts only when the track's own
        velocity points that way across the line, and the track was first seen clearly on the
        other side (a blob jittering on the line, e.g. a ghost or a parked car, never counts):
        both projected on the line's 'in' normal."""
        heading = across(line, tr.vx, tr.vy, self.aspect)
        # where it started, in units of the height
        start = line_side(line, tr.x0, tr.y0, self.aspect) / (line_length(line, self.aspect) or 1.0)
        return heading * direction > 0 and start * direction < 0 and abs(start) >= self.min_travel


@dataclass(frozen=True)
class FrameStats:
    """Image statistics of one analysed frame (grey levels 0..255)."""

    brightness: float  # mean
    contrast: float  # standard deviation
    sharpness: float  # variance of the Laplacian on the downscaled frame
    diff: float | None  # mean absolute difference with the previous analysed frame


def frame_stats(gray: np.ndarray, prev: np.ndarray | None, small_width: int = 320) -> FrameStats:
    mean, std = cv2.meanStdDev(gray)
    h, w = gray.shape[:2]
    sw = min(small_width, w)
    small = (
        gray
        if sw == w
        else cv2.resize(gray, (sw, max(1, h * sw // w)), interpolation=cv2.INTER_AREA)
    )
    lap = cv2.Laplacian(small, cv2.CV_32F)
    _, lstd = cv2.meanStdDev(lap)
    diff = None
    if prev is not None and prev.shape == gray.shape:
        diff = float(cv2.mean(cv2.absdiff(gray, prev))[0])
    return FrameStats(float(mean[0][0]), float(std[0][0]), float(lstd[0][0]) ** 2, diff)


def occupancy(dets: list[Detection]) -> float:
    """Fraction of the frame covered by detected objects' boxes (capped at 1)."""
    return min(1.0, sum(d.w * d.h for d in dets))
