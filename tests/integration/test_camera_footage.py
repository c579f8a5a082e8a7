"""Synthetic footage with ground truth through the ingester's own path (file → cv2.VideoCapture
→ sampling at 2 fps → detector/tracker/health → messages), in non-real-time mode (the video's
timestamps are the clock), so minutes of footage take seconds."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from ingest.cameras.worker import (
    CameraSpec,
    CameraWorker,
    Event,
    Message,
    Metrics,
    WorkerOptions,
)
from sensors.camera_synth import Fault, SceneSpec, SyntheticCamera, standard_lines

BASE_TS = 1_750_000_000.0  # the clip's t = 0, aligned on the 10 s metric intervals
INTERVAL = 10.0
FPS = 5.0
LINES = standard_lines()


def run_clip(path: Path, **spec_kw: object) -> list[Message]:
    msgs: list[Message] = []
    spec = CameraSpec(id="cam-test", ward="20242", source=str(path), lines=LINES, **spec_kw)  # type: ignore[arg-type]
    worker = CameraWorker(
        spec, msgs.append, threading.Event(), options=WorkerOptions(speed=0, base_ts=BASE_TS)
    )
    worker.run()
    return msgs


def totals(msgs: list[Message]) -> Counter[str]:
    tot: Counter[str] = Counter()
    for m in msgs:
        if isinstance(m, Metrics):
            for k, v in m.values.items():
                tot[k] += v
    return tot


def events(msgs: list[Message]) -> list[Event]:
    return [m for m in msgs if isinstance(m, Event)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, SyntheticCamera]]:
    d = tmp_path_factory.mktemp("footage")
    faults = (
        Fault("frozen", 25, 50),
        Fault("black", 70, 90),
        Fault("blurred", 105, 130),
        Fault("covered", 145, 170),
    )
    # 5 fps clips: half the rendering time of 10 fps, still 2.5 frames per analysed frame
    specs = {
        "day": SceneSpec(seed=7, fps=FPS, duration_s=180),
        "night": SceneSpec(seed=11, fps=FPS, duration_s=180, night=True),
        "rain": SceneSpec(seed=9, fps=FPS, duration_s=180, rain=True),
        "faults_day": SceneSpec(seed=21, fps=FPS, duration_s=190, faults=faults),
        "faults_night": SceneSpec(seed=22, fps=FPS, duration_s=190, night=True, faults=faults),
        "empty_day": SceneSpec(
            seed=5, fps=FPS, duration_s=60, vehicles_per_min=0, people_per_min=0
        ),
        "empty_night": SceneSpec(
            seed=6, fps=FPS, duration_s=60, night=True, vehicles_per_min=0, people_per_min=0
        ),
    }
    out = {}
    for name, spec in specs.items():
        cam = SyntheticCamera(spec)
        out[name] = (cam.write(d / f"{name}.mp4"), cam)
    return out


@pytest.mark.parametrize("name", ["day", "night", "rain"])
def test_line_counts_match_ground_truth(clips: dict, name: str) -> None:
    path, cam = clips[name]
    msgs = run_clip(path)
    got = totals(msgs)
    truth = cam.truth_counts(LINES)
    assert truth["line_road_vehicles"] >= 60  # a few minutes of real traffic
    report = {k: (truth[k], got[k]) for k in truth}
    # the camera's crossings (every line, both directions): within ±5 % of the truth
    all_t = sum(truth[f"line_{n}_{d}"] for n in LINES for d in ("in", "out"))
    all_g = sum(got[f"line_{n}_{d}"] for n in LINES for d in ("in", "out"))
    assert abs(all_g - all_t) <= 0.05 * all_t, report
    for line in LINES:
        # each line: within ±5 %; each direction: within ±5 % or ±2 for a few dozen
        t = truth[f"line_{line}_in"] + truth[f"line_{line}_out"]
        g = got[f"line_{line}_in"] + got[f"line_{line}_out"]
        assert abs(g - t) <= 0.05 * t, report
        for d in ("in", "out"):
            key = f"line_{line}_{d}"
            assert abs(got[key] - truth[key]) <= max(2, 0.05 * truth[key]), report
    # pedestrians are counted as people on the line that crosses the sidewalks
    assert got["line_all_people"] >= 0.7 * truth["line_all_people"] > 0, report
    assert got["line_road_people"] <= 1, report
    # sampling: 2 analysed fps out of 10 received, the rest dropped and counted
    frames = cam.spec.n_frames
    assert got["frames_received"] == frames
    assert got["frames_analysed"] == pytest.approx(cam.spec.duration_s * 2, abs=2)
    assert got["frames_dropped"] == got["frames_received"] - got["frames_analysed"]
    assert not events(msgs), "no fault alarms on clean footage"


@pytest.mark.parametrize("name", ["faults_day", "faults_night"])
def test_each_fault_detected_and_cleared_within_two_intervals(clips: dict, name: str) -> None:
    path, cam = clips[name]
    evs = events(run_clip(path))
    for f in cam.spec.faults:
        opened = [e for e in evs if e.kind == f.kind and e.action == "open"]
        closed = [e for e in evs if e.kind == f.kind and e.action == "close"]
        assert len(opened) == 1 and len(closed) == 1, (f, evs)
        start = opened[0].started_at - BASE_TS
        end = closed[0].ended_at - BASE_TS  # type: ignore[operator]
        assert f.start - 1.0 <= start <= f.start + 2 * INTERVAL, (f, start)
        assert f.end - 1.0 <= end <= f.end + 2 * INTERVAL, (f, end)
    kinds = {e.kind for e in evs}
    assert kinds == {f.kind for f in cam.spec.faults}, evs  # nothing else raised


@pytest.mark.parametrize("name", ["empty_day", "empty_night"])
def test_no_alarm_and_no_count_on_an_empty_scene(clips: dict, name: str) -> None:
    path, _ = clips[name]
    msgs = run_clip(path)
    assert not events(msgs)
    got = totals(msgs)
    assert sum(v for k, v in got.items() if k.startswith("line_")) == 0
    assert got["online"] == 6  # 60 s = 6 intervals, all online


def test_metrics_per_interval_are_aligned_and_complete(clips: dict) -> None:
    path, _ = clips["empty_day"]
    msgs = [m for m in run_clip(path) if isinstance(m, Metrics)]
    starts = [m.ts - BASE_TS for m in msgs]
    assert starts[:3] == [0.0, 10.0, 20.0]
    full = msgs[1].values
    for key in (
        "online",
        "frames_received",
        "frames_analysed",
        "frames_dropped",
        "fps_effective",
        "motion_ratio",
        "occupancy",
        "brightness",
        "sharpness",
        "line_road_in",
        "line_all_people",
    ):
        assert key in full
    assert full["fps_effective"] == pytest.approx(2.0, abs=0.11)
    assert full["frames_received"] == 10 * FPS
