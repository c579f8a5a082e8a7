"""Pure parts of the camera ingester: line geometry, tracker, health state machine, intervals."""

from __future__ import annotations

from ingest.cameras.analysis import CentroidTracker, Detection, FrameStats, segment_cross
from ingest.cameras.health import HealthConfig, HealthMonitor
from ingest.cameras.source import resolve_source
from ingest.cameras.worker import IntervalStats

DOWN = ((0.5, 0.0), (0.5, 1.0))  # a line drawn top to bottom


def test_direction_convention() -> None:
    a = 16 / 9
    assert segment_cross(DOWN, (0.4, 0.5), (0.6, 0.5), a) == 1  # left -> right = in
    assert segment_cross(DOWN, (0.6, 0.5), (0.4, 0.5), a) == -1
    assert segment_cross(DOWN, (0.4, 0.5), (0.45, 0.5), a) == 0
    short = ((0.5, 0.0), (0.5, 0.3))
    assert segment_cross(short, (0.4, 0.8), (0.6, 0.8), a) == 0  # passes beside the segment
    right = ((0.0, 0.5), (1.0, 0.5))  # drawn left to right: in = bottom -> top
    assert segment_cross(right, (0.5, 0.6), (0.5, 0.4), a) == 1


def det(x: float, y: float = 0.5) -> Detection:
    return Detection(x, y, 0.08, 0.07, "vehicle")


def test_tracker_counts_once_and_ignores_jitter() -> None:
    tr = CentroidTracker({"l": DOWN}, 16 / 9)
    events = []
    for i, x in enumerate([0.30, 0.36, 0.42, 0.48, 0.54, 0.60, 0.56, 0.62]):
        events += tr.update([det(x)], i * 0.5)
    assert [(e.line, e.direction) for e in events] == [("l", "in")]
    # a stationary blob sitting on the line (a ghost) never counts
    tr2 = CentroidTracker({"l": DOWN}, 16 / 9)
    for i in range(10):
        assert not tr2.update([det(0.5 + 0.002 * (-1) ** i)], i * 0.5)


def test_tracker_coasts_two_vehicles_through_a_merge() -> None:
    tr = CentroidTracker({"l": DOWN}, 16 / 9)
    events = []
    t = 0.0
    xs = [0.20, 0.26, 0.32, 0.38, 0.44]
    for x in xs:  # two vehicles approach the line from both sides, in adjacent lanes
        events += tr.update([det(x, 0.55), det(1.0 - x, 0.68)], t)
        t += 0.5
    merged = Detection(0.5, 0.615, 0.2, 0.2, "vehicle")  # one blob while they pass
    events += tr.update([merged], t)
    t += 0.5
    for x in (0.56, 0.62, 0.68):
        events += tr.update([det(x, 0.55), det(1.0 - x, 0.68)], t)
        t += 0.5
    assert sorted(e.direction for e in events) == ["in", "out"]


def stats(b: float = 120, c: float = 40, s: float = 2000, d: float | None = 1.0) -> FrameStats:
    return FrameStats(b, c, s, d)


def test_health_needs_confirmation_and_reports_true_times() -> None:
    h = HealthMonitor(HealthConfig(confirm_s=4.0))
    evs = []
    for i in range(20):
        evs += h.observe(stats(), i * 0.5)
    assert not evs
    for i in range(20, 40):  # black from t = 10 s
        evs += h.observe(stats(b=0, c=0, s=0, d=0.0), i * 0.5)
    for i in range(40, 60):
        evs += h.observe(stats(), i * 0.5)
    assert [(e.kind, e.action, e.started_at, e.ended_at) for e in evs] == [
        ("black", "open", 10.0, None),
        ("black", "close", 10.0, 20.0),
    ]


def test_health_blur_is_relative_to_the_camera_baseline() -> None:
    night = HealthMonitor()
    evs = []
    for i in range(40):  # a dark scene with little detail is this camera's normal
        evs += night.observe(stats(b=30, c=15, s=60), i * 0.5)
    assert not evs
    for i in range(40, 60):
        evs += night.observe(stats(b=30, c=14, s=5), i * 0.5)
    assert [e.kind for e in evs] == ["blurred"]


def test_a_short_glitch_raises_nothing() -> None:
    h = HealthMonitor()
    evs = []
    for i in range(30):
        bad = 10 <= i < 13  # 1.5 s of black: below the 4 s confirmation
        evs += h.observe(stats(b=0, c=0, s=0, d=0.0) if bad else stats(), i * 0.5)
    assert not evs


def test_intervals_are_aligned_after_a_partial_first_one() -> None:
    acc = IntervalStats(["l"], 10.0)
    assert acc.advance(1003.0) == []  # starts at 1003 (not aligned), ends at 1010
    acc.received = 5
    out = acc.advance(1010.2)
    assert [start for start, _ in out] == [1003.0]
    assert out[0][1]["online"] == 1.0
    out = acc.advance(1031.0)  # nothing received for two intervals: offline rows
    assert [(s, v["online"]) for s, v in out] == [(1010.0, 0.0), (1020.0, 0.0)]
    assert "line_l_in" not in out[0][1]  # counts unknown, not zero, without frames


def test_sources() -> None:
    assert resolve_source("0").kind == "device"
    assert resolve_source("rtsp://h/x").kind == "url"
    assert resolve_source("var/cameras/a.mp4", "/srv/var").target == "/srv/var/cameras/a.mp4"
    assert resolve_source("/data/a.mp4").target == "/data/a.mp4"
