"""The synthetic cameras: deterministic frames, consistent ground truth, plausible pictures."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from sensors.camera_synth import (
    Fault,
    SceneSpec,
    SyntheticCamera,
    demo_video_path,
    ensure_demo_videos,
    standard_lines,
)


def test_same_seed_same_frames_and_truth() -> None:
    a = SyntheticCamera(SceneSpec(seed=5, duration_s=20))
    b = SyntheticCamera(SceneSpec(seed=5, duration_s=20))
    c = SyntheticCamera(SceneSpec(seed=6, duration_s=20))
    for i in (0, 57, 150):
        assert np.array_equal(a.frame(i), b.frame(i))
    assert not np.array_equal(a.frame(57), c.frame(57))
    lines = standard_lines()
    assert a.crossings(lines) == b.crossings(lines)
    assert a.crossings(lines) != c.crossings(lines)


def test_truth_directions_follow_the_lanes() -> None:
    cam = SyntheticCamera(SceneSpec(seed=3, duration_s=120))
    lines = standard_lines()  # both drawn top to bottom: 'in' = left -> right
    crossings = cam.crossings(lines)
    movers = {m.id: m for m in cam.movers}
    assert len(crossings) > 40
    for c in crossings:
        assert (movers[c.object_id].vx > 0) == (c.direction == "in")
        assert 0 <= c.t < 120
    # the road line is never crossed by pedestrians; the 'all' line is
    assert all(c.category == "vehicle" for c in crossings if c.line == "road")
    assert any(c.category == "person" for c in crossings if c.line == "all")
    counts = cam.truth_counts(lines)
    assert counts["line_road_in"] + counts["line_road_out"] == counts["line_road_vehicles"]


def test_faults_render_as_described() -> None:
    spec = SceneSpec(
        seed=2,
        duration_s=10,
        fps=10,
        faults=(Fault("frozen", 1, 2), Fault("black", 3, 4), Fault("dropped", 5, 6)),
    )
    cam = SyntheticCamera(spec)
    assert np.array_equal(cam.frame(12), cam.frame(17))  # frozen: identical frames
    assert not np.array_equal(cam.frame(22), cam.frame(27))
    assert cam.frame(35).max() == 0  # black
    frames = dict(cam.frames())
    assert frames[5.5] is None and frames[4.5] is not None  # dropped stream


def test_day_and_night_frames_are_plausible(tmp_path: Path) -> None:
    """Saved as PNG (also looked at by eye during development: /tmp/cam_day.png)."""
    day = SyntheticCamera(SceneSpec(seed=3)).frame(200)
    night = SyntheticCamera(SceneSpec(seed=3, night=True)).frame(200)
    for name, img in (("day", day), ("night", night)):
        path = tmp_path / f"{name}.png"
        assert cv2.imwrite(str(path), img)
        back = cv2.imread(str(path))
        assert back is not None and back.shape == (360, 640, 3)
    gday = cv2.cvtColor(day, cv2.COLOR_BGR2GRAY)
    gnight = cv2.cvtColor(night, cv2.COLOR_BGR2GRAY)
    assert 90 < gday.mean() < 170
    assert 25 < gnight.mean() < 80  # dark, but lit by lamps and windows
    assert gnight.std() > 20  # structure, not a black frame


def test_written_video_reads_back_through_videocapture(tmp_path: Path) -> None:
    cam = SyntheticCamera(SceneSpec(seed=4, duration_s=3, fps=10))
    path = cam.write(tmp_path / "clip.mp4")
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    assert cap.get(cv2.CAP_PROP_FPS) == 10
    cap.release()
    assert n == 30
    avi = cam.write(tmp_path / "clip.avi")  # MJPG
    cap = cv2.VideoCapture(str(avi))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (360, 640, 3)


def test_ensure_demo_videos_renders_missing_files_only(tmp_path: Path) -> None:
    line = SimpleNamespace(name="road", points=((0.5, 0.36), (0.5, 0.88)))
    cams = [
        SimpleNamespace(id="cam-t1", source="var/cameras/cam-t1.mp4", enabled=True, lines=[line]),
        SimpleNamespace(id="cam-t2", source="rtsp://host/x", enabled=True, lines=[]),
    ]
    cfg = SimpleNamespace(cameras=SimpleNamespace(cameras=cams))
    var = tmp_path / "var"
    written = ensure_demo_videos(cfg, var, seconds=2.0)
    assert written == [var / "cameras" / "cam-t1.mp4"]
    assert ensure_demo_videos(cfg, var, seconds=2.0) == []  # already there
    truth = json.loads((var / "cameras" / "cam-t1.truth.json").read_text())
    assert set(truth["counts"]) == {
        "line_road_in",
        "line_road_out",
        "line_road_vehicles",
        "line_road_people",
    }
    assert demo_video_path("0", var) is None
    assert demo_video_path("/abs/x.avi", var) == Path("/abs/x.avi")
