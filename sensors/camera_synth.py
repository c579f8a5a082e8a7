"""Synthetic traffic cameras: a rendered street scene with ground truth and injectable faults.

Pure OpenCV + numpy. A :class:`SceneSpec` fixes everything (size, fps, duration, seed, lighting,
rain, traffic density, faults); :class:`SyntheticCamera` renders frame ``i`` deterministically,
writes the video to a file (the ingester reads it back through ``cv2.VideoCapture``, the same
path as a real camera) or streams frames, and reports the GROUND TRUTH:

- every object's trajectory is a straight line at constant speed along a lane or a sidewalk, so
  the time and direction at which its centre crosses any counting line is known exactly
  (:meth:`SyntheticCamera.crossings`);
- every injected fault is a :class:`Fault` with its kind, begin and end (seconds of video time).

The scene is an elevated side view of a street: buildings at the top, a sidewalk, four lanes
(the two upper ones drive right-to-left, the two lower ones left-to-right), a second sidewalk.
Pedestrians walk right-to-left on the upper sidewalk and left-to-right on the lower one.
Vehicles are motorbikes, cars, trucks and buses of different sizes. Objects of the same lane
never overlap (spawn gaps are checked against the preceding object). Night mode darkens the scene,
lights the windows, street lamps, headlights and tail lights. Rain adds streaks and haze.
A burnt-in clock (OSD) and sensor noise make every frame unique, as on a real CCTV camera.

``python -m sensors.camera_synth --out DIR`` writes a few demo and test clips with their truth.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from ioc.geometry import Segment, segment_cross

FaultKind = Literal["frozen", "black", "blurred", "covered", "dropped"]
FAULT_KINDS: tuple[str, ...] = ("frozen", "black", "blurred", "covered", "dropped")

# Layout, as fractions of the frame height.
BUILDINGS = (0.0, 0.27)
WALK_UP = (0.27, 0.36)
ROAD = (0.36, 0.88)
WALK_DOWN = (0.88, 1.0)
N_LANES = 4


@dataclass(frozen=True)
class ObjectKind:
    name: str
    category: Literal["vehicle", "person"]
    w: float  # fraction of frame width
    h: float  # fraction of frame height
    speed: tuple[float, float]  # fraction of frame width per second


KINDS: dict[str, ObjectKind] = {
    "motorbike": ObjectKind("motorbike", "vehicle", 0.050, 0.070, (0.10, 0.17)),
    "car": ObjectKind("car", "vehicle", 0.110, 0.075, (0.10, 0.17)),
    "truck": ObjectKind("truck", "vehicle", 0.170, 0.095, (0.08, 0.12)),
    "bus": ObjectKind("bus", "vehicle", 0.210, 0.100, (0.08, 0.11)),
    "pedestrian": ObjectKind("pedestrian", "person", 0.020, 0.078, (0.025, 0.045)),
}
# Traffic mix on the road (Da Nang: mostly motorbikes).
VEHICLE_MIX: tuple[tuple[str, float], ...] = (
    ("motorbike", 0.55),
    ("car", 0.30),
    ("truck", 0.09),
    ("bus", 0.06),
)


@dataclass(frozen=True)
class Fault:
    """An injected fault: ``kind`` between ``start`` and ``end`` (seconds of video time)."""

    kind: str
    start: float
    end: float

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines a synthetic clip. Same spec → same frames."""

    seed: int = 1
    width: int = 640
    height: int = 360
    fps: float = 10.0
    duration_s: float = 60.0
    night: bool = False
    rain: bool = False
    vehicles_per_min: float = 24.0  # all four lanes together
    people_per_min: float = 6.0  # both sidewalks together
    noise: float = 2.0  # sensor noise, grey levels (sigma)
    osd: bool = True  # burnt-in clock, as on most CCTV cameras
    start_time: str | None = None  # clock shown by the OSD (default 08:00, or 21:00 at night)
    label: str = "CAM"
    faults: tuple[Fault, ...] = ()

    @property
    def n_frames(self) -> int:
        return round(self.duration_s * self.fps)


@dataclass(frozen=True)
class Mover:
    """One object: centre x(t) = x0 + vx * (t - t0) (fractions of width), fixed centre y."""

    id: int
    kind: str
    t0: float
    x0: float
    vx: float
    y: float
    w: float
    h: float
    color: tuple[int, int, int]

    def x(self, t: float) -> float:
        return self.x0 + self.vx * (t - self.t0)

    def span(self) -> tuple[float, float]:
        """Times at which the object is (at least partly) inside the frame."""
        half = self.w / 2
        if self.vx > 0:
            t_in = self.t0 + (-half - self.x0) / self.vx
            t_out = self.t0 + (1 + half - self.x0) / self.vx
        else:
            t_in = self.t0 + (1 + half - self.x0) / self.vx
            t_out = self.t0 + (-half - self.x0) / self.vx
        return t_in, t_out

    @property
    def category(self) -> str:
        return KINDS[self.kind].category


@dataclass(frozen=True)
class Crossing:
    """Ground truth: object ``object_id`` crossed line ``line`` at ``t`` in ``direction``."""

    line: str
    object_id: int
    kind: str
    category: str
    direction: Literal["in", "out"]
    t: float


Line = Segment  # a counting line, directed p1→p2 (ioc.geometry)


def _lane_y(i: int) -> float:
    top, bottom = ROAD
    lane_h = (bottom - top) / N_LANES
    return top + (i + 0.5) * lane_h


def _lane_dir(i: int) -> int:
    return -1 if i < N_LANES // 2 else 1


def _rand_color(rng: np.random.Generator, night: bool) -> tuple[int, int, int]:
    # body colours whose brightness differs from the asphalt (a grey car on grey asphalt is a
    # known blind spot of background subtraction; the synthetic city avoids it on purpose)
    palette = [
        (230, 230, 230),
        (190, 190, 190),
        (25, 25, 25),
        (90, 30, 20),
        (30, 200, 230),
        (20, 140, 240),
        (30, 60, 20),
        (30, 30, 120),
        (245, 245, 250),
    ]
    c = palette[int(rng.integers(len(palette)))]
    return c


def plan_movers(spec: SceneSpec) -> list[Mover]:
    """The deterministic list of objects of a clip (including those present at t = 0)."""
    movers: list[Mover] = []
    pre = 15.0  # start traffic before t=0 so the scene is already busy at frame 0
    horizon = spec.duration_s + 1.0
    next_id = 1
    lanes: list[tuple[float, int, list[str], float]] = []  # (y, dir, kinds, rate per s)
    veh_rate = spec.vehicles_per_min / 60.0 / N_LANES
    names = [k for k, _ in VEHICLE_MIX]
    probs = np.array([p for _, p in VEHICLE_MIX])
    probs = probs / probs.sum()
    for i in range(N_LANES):
        lanes.append((_lane_y(i), _lane_dir(i), names, veh_rate))
    ped_rate = spec.people_per_min / 60.0 / 2
    lanes.append(((WALK_UP[0] + WALK_UP[1]) / 2 - 0.005, -1, ["pedestrian"], ped_rate))
    lanes.append(((WALK_DOWN[0] + WALK_DOWN[1]) / 2 - 0.01, 1, ["pedestrian"], ped_rate))
    for lane_no, (y, direction, kinds, rate) in enumerate(lanes):
        if rate <= 0:
            continue
        rng = np.random.default_rng([spec.seed, lane_no])  # per lane: independent of duration
        t = -pre
        prev: Mover | None = None
        while t < horizon:
            t += float(rng.exponential(1.0 / rate))
            kind_name = (
                kinds[0] if len(kinds) == 1 else str(rng.choice(kinds, p=probs[: len(kinds)]))
            )
            kind = KINDS[kind_name]
            speed = float(rng.uniform(*kind.speed))
            x0 = -kind.w / 2 if direction > 0 else 1 + kind.w / 2
            w = kind.w * float(rng.uniform(0.9, 1.1))
            h = kind.h * float(rng.uniform(0.92, 1.08))
            cand = Mover(
                next_id,
                kind_name,
                t,
                x0,
                direction * speed,
                y + float(rng.uniform(-0.008, 0.008)),
                w,
                h,
                _rand_color(rng, spec.night),
            )
            if prev is not None:
                t = max(t, _earliest_spawn(prev, cand))
                cand = Mover(**{**asdict(cand), "t0": t})
            movers.append(cand)
            prev = cand
            next_id += 1
    return movers


def _earliest_spawn(prev: Mover, cand: Mover, gap: float = 0.05) -> float:
    """Earliest t0 for ``cand`` so that it keeps ``gap`` (fraction of width) behind ``prev``."""
    need = (prev.w + cand.w) / 2 + gap
    _, prev_out = prev.span()
    speed_prev, speed_cand = abs(prev.vx), abs(cand.vx)
    # distance travelled by prev since its own spawn must exceed `need` when cand spawns ...
    t_a = prev.t0 + need / speed_prev
    # ... and cand must not catch up with prev before prev leaves the frame.
    if speed_cand > speed_prev:
        # at prev_out, prev is at distance D_prev from the spawn point; cand must be `need` behind
        dist_prev = speed_prev * (prev_out - prev.t0)
        t_b = prev_out - (dist_prev - need) / speed_cand
        return max(t_a, t_b, cand.t0)
    return max(t_a, cand.t0)


class SyntheticCamera:
    """Renders the frames of a :class:`SceneSpec` and knows its ground truth."""

    def __init__(self, spec: SceneSpec) -> None:
        self.spec = spec
        self.movers = plan_movers(spec)
        self._rng = np.random.default_rng(spec.seed + 1_000_003)
        self._background = self._render_background()
        self._noise_bank = self._make_noise_bank()
        self._rain_bank = self._make_rain_bank() if spec.rain else []
        self._frozen: np.ndarray | None = None
        self._frozen_fault: Fault | None = None

    # -- ground truth ---------------------------------------------------------------------
    def crossings(self, lines: dict[str, Line]) -> list[Crossing]:
        """Every crossing of every line by an object centre within [0, duration)."""
        aspect = self.spec.width / self.spec.height
        out: list[Crossing] = []
        for m in self.movers:
            for name, line in lines.items():
                t_hit = self._crossing_time(m, line, aspect)
                if t_hit is None or not 0.0 <= t_hit < self.spec.duration_s:
                    continue
                a = (m.x(t_hit - 0.01), m.y)
                b = (m.x(t_hit + 0.01), m.y)
                d = segment_cross(line, a, b, aspect)
                if d == 0:
                    continue
                out.append(
                    Crossing(name, m.id, m.kind, m.category, "in" if d > 0 else "out", t_hit)
                )
        return sorted(out, key=lambda c: c.t)

    @staticmethod
    def _crossing_time(m: Mover, line: Line, aspect: float) -> float | None:
        (x1, y1), (x2, y2) = line
        if y1 == y2:  # horizontal line: movers move horizontally, never cross it
            return None
        if not min(y1, y2) <= m.y <= max(y1, y2):
            return None
        xl = x1 + (x2 - x1) * (m.y - y1) / (y2 - y1)
        if m.vx == 0:
            return None
        return m.t0 + (xl - m.x0) / m.vx

    def truth_counts(self, lines: dict[str, Line]) -> dict[str, int]:
        """Counts in the ingester's metric names: line_<n>_in/out/vehicles/people."""
        counts: dict[str, int] = {}
        for name in lines:
            for suffix in ("in", "out", "vehicles", "people"):
                counts[f"line_{name}_{suffix}"] = 0
        for c in self.crossings(lines):
            counts[f"line_{c.line}_{c.direction}"] += 1
            cat = "vehicles" if c.category == "vehicle" else "people"
            counts[f"line_{c.line}_{cat}"] += 1
        return counts

    def truth(self, lines: dict[str, Line]) -> dict[str, Any]:
        """JSON-able ground truth: spec, crossings, counts and faults."""
        return {
            "spec": {k: v for k, v in asdict(self.spec).items() if k != "faults"},
            "lines": {k: [list(p) for p in v] for k, v in lines.items()},
            "counts": self.truth_counts(lines),
            "crossings": [asdict(c) for c in self.crossings(lines)],
            "faults": [asdict(f) for f in self.spec.faults],
        }

    def fault_at(self, t: float) -> Fault | None:
        for f in self.spec.faults:
            if f.active(t):
                return f
        return None

    def dropped(self, t: float) -> bool:
        f = self.fault_at(t)
        return f is not None and f.kind == "dropped"

    # -- rendering ------------------------------------------------------------------------
    def frame(self, i: int) -> np.ndarray:
        """Frame number ``i`` (BGR uint8). A 'dropped' fault still renders (streams skip it)."""
        t = i / self.spec.fps
        fault = self.fault_at(t)
        if fault is not None and fault.kind == "frozen":
            if self._frozen_fault is not fault or self._frozen is None:
                # the last good frame before the freeze
                j = max(0, math.ceil(fault.start * self.spec.fps) - 1)
                self._frozen = self._render(j, j / self.spec.fps)
                self._frozen_fault = fault
            return self._frozen.copy()
        img = self._render(i, t)
        if fault is None or fault.kind == "dropped":
            return img
        if fault.kind == "black":
            return np.zeros_like(img)
        if fault.kind == "blurred":
            img = cv2.GaussianBlur(self._render(i, t, noise=False), (0, 0), 7.0)
            return self._add_noise(img, i)
        if fault.kind == "covered":
            # something against the lens: an almost uniform, dim, out-of-focus patch
            base = cv2.GaussianBlur(self._render(i, t, noise=False), (0, 0), 40.0)
            tint = np.full_like(img, (38, 48, 62))
            img = cv2.addWeighted(tint, 0.85, base, 0.15, 0.0)
            return self._add_noise(img, i)
        return img

    def frames(self) -> Iterator[tuple[float, np.ndarray | None]]:
        """(t, frame) for the whole clip; frame is None while the stream is dropped."""
        for i in range(self.spec.n_frames):
            t = i / self.spec.fps
            yield t, (None if self.dropped(t) else self.frame(i))

    def write(self, path: Path | str, fourcc: str | None = None) -> Path:
        """Write the clip to ``path`` (.mp4 → mp4v, .avi → MJPG unless ``fourcc`` is given)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        code = fourcc or ("MJPG" if path.suffix.lower() == ".avi" else "mp4v")
        tmp = path.with_name(path.stem + ".part" + path.suffix)
        writer = cv2.VideoWriter(
            str(tmp),
            cv2.VideoWriter.fourcc(*code),
            self.spec.fps,
            (self.spec.width, self.spec.height),
        )
        if not writer.isOpened():
            raise RuntimeError(f"cannot open a {code} video writer for {path}")
        try:
            for i in range(self.spec.n_frames):
                writer.write(self.frame(i))
        finally:
            writer.release()
        tmp.replace(path)
        return path

    # -- drawing helpers ------------------------------------------------------------------
    def _px(self, fx: float, fy: float) -> tuple[int, int]:
        return round(fx * self.spec.width), round(fy * self.spec.height)

    def _render_background(self) -> np.ndarray:
        s = self.spec
        rng = np.random.default_rng(s.seed + 17)
        w, h = s.width, s.height
        img = np.zeros((h, w, 3), np.uint8)
        night = s.night
        sky = (40, 25, 15) if night else (215, 190, 150)
        img[:] = sky
        # buildings
        x = 0
        while x < w:
            bw = int(rng.integers(w // 12, w // 5))
            top = int(rng.uniform(0.0, 0.12) * h)
            shade = int(rng.integers(90, 200))
            col = (
                (shade // 5, shade // 5, shade // 4)
                if night
                else (shade - 20, shade, shade + int(rng.integers(0, 40)))
            )
            cv2.rectangle(img, (x, top), (x + bw, self._px(0, BUILDINGS[1])[1]), col, -1)
            # windows
            for wy in range(top + 6, self._px(0, BUILDINGS[1])[1] - 8, 14):
                for wx in range(x + 5, x + bw - 8, 12):
                    lit = rng.random() < (0.45 if night else 0.0)
                    wc = (120, 210, 250) if lit else ((20, 20, 25) if night else (110, 90, 70))
                    cv2.rectangle(img, (wx, wy), (wx + 6, wy + 8), wc, -1)
            x += bw + int(rng.integers(0, 6))
        # sidewalks
        walk = (34, 36, 40) if night else (165, 170, 175)
        for y0, y1 in (WALK_UP, WALK_DOWN):
            cv2.rectangle(img, self._px(0, y0), self._px(1, y1), walk, -1)
            for xx in range(0, w, 24):  # paving joints
                cv2.line(img, (xx, self._px(0, y0)[1]), (xx, self._px(0, y1)[1]), walk_j(walk), 1)
        # road
        road = (24, 24, 27) if night else (95, 95, 98)
        cv2.rectangle(img, self._px(0, ROAD[0]), self._px(1, ROAD[1]), road, -1)
        # kerbs
        kerb = (80, 80, 80) if night else (200, 200, 200)
        for yk in ROAD:
            cv2.line(img, self._px(0, yk), self._px(1, yk), kerb, 2)
        # lane markings
        mid = (ROAD[0] + ROAD[1]) / 2
        yellow = (20, 120, 150) if night else (40, 200, 230)
        cv2.line(img, self._px(0, mid - 0.004), self._px(1, mid - 0.004), yellow, 2)
        cv2.line(img, self._px(0, mid + 0.004), self._px(1, mid + 0.004), yellow, 2)
        white = (120, 120, 120) if night else (225, 225, 225)
        lane_h = (ROAD[1] - ROAD[0]) / N_LANES
        for k in (1, 3):
            yy = self._px(0, ROAD[0] + k * lane_h)[1]
            for xx in range(0, w, 40):
                cv2.line(img, (xx, yy), (xx + 20, yy), white, 2)
        # street lamps (poles on the upper sidewalk)
        for lx in (0.12, 0.45, 0.78):
            p_top = self._px(lx, 0.08)
            p_bot = self._px(lx, WALK_UP[1] - 0.01)
            cv2.line(img, p_top, p_bot, (60, 60, 60) if night else (70, 70, 70), 3)
            cv2.line(img, p_top, (p_top[0] + 18, p_top[1]), (60, 60, 60), 3)
        if night:
            disc = np.zeros((h, w), np.float32)
            for lx in (0.12, 0.45, 0.78):
                cx, cy = self._px(lx, 0.40)
                cv2.circle(disc, (cx + 18, cy), int(0.22 * h), 1.0, -1)
            glow = np.asarray(cv2.GaussianBlur(disc, (0, 0), 0.12 * h), np.float32)
            lamp = (img.astype(np.float32) * (1.0 + 1.3 * glow[..., None])).clip(0, 255)
            img = lamp.astype(np.uint8)
            for lx in (0.12, 0.45, 0.78):
                cv2.circle(
                    img,
                    (self._px(lx, 0.08)[0] + 18, self._px(0, 0.08)[1] + 3),
                    4,
                    (200, 240, 255),
                    -1,
                )
        if s.rain:
            haze = np.full_like(img, (120, 120, 120))
            img = np.asarray(cv2.addWeighted(img, 0.8, haze, 0.2, 0), np.uint8)
        return img

    def _make_noise_bank(self) -> list[np.ndarray]:
        if self.spec.noise <= 0:
            return []
        sigma = self.spec.noise * (1.6 if self.spec.night else 1.0)
        shape = (self.spec.height, self.spec.width, 3)
        return [
            np.clip(self._rng.normal(0, sigma, shape), -127, 127).astype(np.int16) for _ in range(8)
        ]

    def _make_rain_bank(self) -> list[np.ndarray]:
        bank = []
        w, h = self.spec.width, self.spec.height
        for _ in range(6):
            layer = np.zeros((h, w), np.uint8)
            n = int(w * h / 900)
            xs = self._rng.integers(0, w, n)
            ys = self._rng.integers(0, h, n)
            ls = self._rng.integers(6, 14, n)
            for x, y, ln in zip(xs, ys, ls, strict=True):
                cv2.line(layer, (int(x), int(y)), (int(x) - 2, int(y + ln)), 255, 1)
            bank.append(layer)
        return bank

    def _add_noise(self, img: np.ndarray, i: int) -> np.ndarray:
        if not self._noise_bank:
            return img
        # a different (deterministic) noise field per frame: shifted bank entries
        k = (i * 7919) % len(self._noise_bank)
        dx = (i * 37) % 64
        noise = np.roll(self._noise_bank[k], dx, axis=1)
        return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    def _render(self, i: int, t: float, noise: bool = True) -> np.ndarray:
        s = self.spec
        img = self._background.copy()
        visible = []
        for m in self.movers:
            t_in, t_out = m.span()
            if t_in <= t <= t_out:
                visible.append(m)
        # draw far (upper) objects first
        for m in sorted(visible, key=lambda m: m.y):
            self._draw(img, m, t)
        if s.rain and self._rain_bank:
            layer = self._rain_bank[i % len(self._rain_bank)]
            img[layer > 0] = (img[layer > 0] * 0.5 + 90).astype(np.uint8)
        if s.osd:
            self._draw_osd(img, t)
        if noise:
            img = self._add_noise(img, i)
        return img

    def _draw_osd(self, img: np.ndarray, t: float) -> None:
        default = "2025-07-01T21:00:00" if self.spec.night else "2025-07-01T08:00:00"
        start = dt.datetime.fromisoformat(self.spec.start_time or default)
        stamp = (start + dt.timedelta(seconds=int(t))).strftime("%d/%m/%Y %H:%M:%S")
        text = f"{self.spec.label}  {stamp}"
        org = (8, 18)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)

    def _draw(self, img: np.ndarray, m: Mover, t: float) -> None:
        W, H = self.spec.width, self.spec.height
        cx, cy = m.x(t) * W, m.y * H
        w, h = m.w * W, m.h * H
        x0, y0, x1, y1 = int(cx - w / 2), int(cy - h / 2), int(cx + w / 2), int(cy + h / 2)
        night = self.spec.night
        body = m.color
        if night:
            body = tuple(int(c * 0.55 + 25) for c in body)  # type: ignore[assignment]
        front = x1 if m.vx > 0 else x0
        back = x0 if m.vx > 0 else x1
        sgn = 1 if m.vx > 0 else -1
        if m.kind == "pedestrian":
            # clothes that stand out from the pavement: dark by day, lit by the lamps at night
            body = PED_NIGHT[m.id % len(PED_NIGHT)] if night else PED_DAY[m.id % len(PED_DAY)]
            skin = (90, 130, 170) if not night else (110, 140, 170)
            head_r = max(2, int(w * 0.45))
            cv2.circle(img, (int(cx), y0 + head_r), head_r, skin, -1)
            cv2.rectangle(img, (x0, y0 + 2 * head_r), (x1, int(cy + h * 0.15)), body, -1)
            # legs, swinging
            swing = int(w * 0.6 * math.sin(t * 6.0 + m.id))
            cv2.line(img, (int(cx), int(cy + h * 0.15)), (int(cx) + swing, y1), (40, 40, 60), 2)
            cv2.line(img, (int(cx), int(cy + h * 0.15)), (int(cx) - swing, y1), (40, 40, 60), 2)
            return
        # shadow
        cv2.ellipse(
            img, (int(cx), y1), (int(w / 2), max(2, int(h * 0.12))), 0, 0, 360, (25, 25, 25), -1
        )
        if m.kind == "motorbike":
            wheel = max(3, int(h * 0.2))
            cv2.circle(img, (x0 + wheel, y1 - wheel), wheel, (20, 20, 20), -1)
            cv2.circle(img, (x1 - wheel, y1 - wheel), wheel, (20, 20, 20), -1)
            cv2.rectangle(img, (x0 + wheel, int(cy)), (x1 - wheel, y1 - wheel), body, -1)
            # rider
            rx = int(cx - sgn * w * 0.05)
            cv2.rectangle(img, (rx - 4, y0 + 6), (rx + 4, int(cy) + 2), PED_DAY[m.id % 6], -1)
            cv2.circle(img, (rx, y0 + 5), 5, (30, 30, 200) if m.id % 2 else (200, 200, 30), -1)
        else:
            roof = 0.45 if m.kind == "car" else 0.0
            cv2.rectangle(img, (x0, int(y0 + h * roof * 0.5)), (x1, y1 - 3), body, -1)
            if m.kind == "car":
                cv2.rectangle(
                    img,
                    (int(x0 + w * 0.22), y0),
                    (int(x1 - w * 0.22), int(y0 + h * 0.3)),
                    body,
                    -1,
                )
                win = (60, 50, 40) if not night else (30, 30, 30)
                cv2.rectangle(
                    img,
                    (int(x0 + w * 0.27), y0 + 2),
                    (int(x1 - w * 0.27), int(y0 + h * 0.28)),
                    win,
                    -1,
                )
            else:
                win = (70, 60, 50) if not night else (40, 60, 70)
                for wx in range(x0 + 5, x1 - 8, 12):
                    cv2.rectangle(img, (wx, y0 + 4), (wx + 7, int(y0 + h * 0.35)), win, -1)
            wheel = max(3, int(h * 0.16))
            for wx in (x0 + int(w * 0.18), x1 - int(w * 0.18)):
                cv2.circle(img, (wx, y1 - wheel), wheel, (15, 15, 15), -1)
        if night:
            # headlight and tail light
            fy = int(cy + h * 0.1)
            cv2.circle(img, (front, fy), 3, (230, 250, 255), -1)
            reach = sgn * int(w * 0.5)
            overlay = img.copy()
            # the beam on the road: brightest at the lamp, widening and fading ahead
            far = np.array(
                [
                    (front, fy - 3),
                    (front + reach, fy - 6),
                    (front + reach, fy + 9),
                    (front, fy + 4),
                ],
                np.int32,
            )
            near = np.array(
                [
                    (front, fy - 3),
                    (front + reach // 2, fy - 4),
                    (front + reach // 2, fy + 6),
                    (front, fy + 4),
                ],
                np.int32,
            )
            cv2.fillPoly(overlay, [far], (150, 170, 180))
            cv2.fillPoly(overlay, [near], (200, 215, 225))
            cv2.addWeighted(overlay, 0.35, img, 0.65, 0, dst=img)
            cv2.circle(img, (back, fy), 2, (40, 40, 230), -1)


PED_DAY = [(30, 30, 30), (120, 40, 40), (40, 40, 130), (30, 90, 30), (60, 60, 60), (20, 60, 140)]
PED_NIGHT = [(200, 200, 200), (150, 210, 230), (190, 170, 150), (170, 200, 170)]


def walk_j(c: tuple[int, int, int]) -> tuple[int, int, int]:
    return (max(0, c[0] - 18), max(0, c[1] - 18), max(0, c[2] - 18))


# -- demo support -------------------------------------------------------------------------

DEMO_FPS = 10.0
DEMO_SECONDS = 60.0
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


def demo_spec(
    camera_id: str, *, fps: float = DEMO_FPS, duration_s: float = DEMO_SECONDS
) -> SceneSpec:
    """The clip of a demo camera: seed and weather derived from its id (stable across runs)."""
    h = zlib.crc32(camera_id.encode())
    return SceneSpec(
        seed=h % 100_000,
        fps=fps,
        duration_s=duration_s,
        rain=(h % 5 == 0),
        vehicles_per_min=16.0 + (h % 17),
        people_per_min=3.0 + (h % 5),
        label=camera_id.upper(),
    )


def demo_video_path(source: str, var_dir: Path | str) -> Path | None:
    """Where a demo camera's video lives, or None if the source is not a video file path.

    A relative source starting with ``var/`` lives under ``var_dir`` (so ``IOC_VAR_DIR`` moves
    it); other relative paths are relative to the current directory.
    """
    if "://" in source or source.isdigit() or not source.lower().endswith(VIDEO_SUFFIXES):
        return None
    p = Path(source)
    if not p.is_absolute() and p.parts and p.parts[0] == "var":
        return Path(var_dir).joinpath(*p.parts[1:])
    return p


def ensure_demo_videos(
    cfg: Any, var_dir: Path | str, *, force: bool = False, seconds: float = DEMO_SECONDS
) -> list[Path]:
    """Render the missing video files that demo cameras point at; return the files written.

    ``cfg`` is an :class:`ioc.config.Config` (or anything with ``.cameras.cameras``). A JSON
    ground-truth file is written beside each video.
    """
    written: list[Path] = []
    for cam in cfg.cameras.cameras:
        if not getattr(cam, "enabled", True):
            continue
        path = demo_video_path(cam.source, var_dir)
        if path is None or (path.exists() and not force):
            continue
        spec = demo_spec(cam.id, duration_s=seconds)
        synth = SyntheticCamera(spec)
        synth.write(path)
        lines: dict[str, Line] = {
            ln.name: (
                (float(ln.points[0][0]), float(ln.points[0][1])),
                (float(ln.points[1][0]), float(ln.points[1][1])),
            )
            for ln in cam.lines
        }
        path.with_suffix(".truth.json").write_text(
            json.dumps(synth.truth(lines), indent=1), encoding="utf-8"
        )
        written.append(path)
    return written


def standard_lines() -> dict[str, Line]:
    """Counting lines that suit the synthetic scene: across the road, and across everything."""
    return {
        "road": ((0.5, ROAD[0]), (0.5, ROAD[1])),
        "all": ((0.35, WALK_UP[0]), (0.35, 1.0)),
    }


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sensors.camera_synth", description=__doc__)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--fps", type=float, default=DEMO_FPS)
    p.add_argument("--png", action="store_true", help="also save one frame of each clip as PNG")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = standard_lines()
    d = args.seconds
    variants: Iterable[tuple[str, dict[str, Any]]] = [
        ("day", {}),
        ("night", {"night": True}),
        ("rain", {"rain": True}),
        ("night_rain", {"night": True, "rain": True}),
        (
            "faults",
            {
                "faults": (
                    Fault("frozen", 0.15 * d, 0.25 * d),
                    Fault("black", 0.35 * d, 0.45 * d),
                    Fault("blurred", 0.55 * d, 0.65 * d),
                    Fault("covered", 0.75 * d, 0.85 * d),
                )
            },
        ),
    ]
    for name, extra in variants:
        spec = SceneSpec(seed=args.seed, fps=args.fps, duration_s=d, label=name.upper(), **extra)
        cam = SyntheticCamera(spec)
        path = cam.write(out / f"{name}.mp4")
        path.with_suffix(".truth.json").write_text(
            json.dumps(cam.truth(lines), indent=1), encoding="utf-8"
        )
        if args.png:
            cv2.imwrite(str(out / f"{name}.png"), cam.frame(int(spec.n_frames * 0.3)))
        print(f"{path}: {spec.n_frames} frames, truth {cam.truth_counts(lines)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


__all__ = [
    "FAULT_KINDS",
    "Crossing",
    "Fault",
    "Mover",
    "SceneSpec",
    "SyntheticCamera",
    "demo_spec",
    "demo_video_path",
    "ensure_demo_videos",
    "segment_cross",
    "standard_lines",
]
