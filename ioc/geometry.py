"""Counting-line geometry, shared by the camera ingester (``ingest/cameras/analysis.py``) and
the synthetic camera that tests it (``sensors/camera_synth.py``), which may not import each
other: both must agree on what "crossing line L towards 'in'" means.

Coordinates are fractions of the frame (x of the width, y of the height), so counting lines
from ``cameras.yaml`` apply at any resolution; ``aspect`` = width / height scales x so that
the geometry is that of the picture.

A line is directed, p1→p2. Its 'in' side is the side of its normal rotated 90°
counter-clockwise on screen (y grows downwards): for a line drawn top to bottom 'in' means
moving left → right; for a line drawn left to right, moving bottom → top.
"""

from __future__ import annotations

import math

Point = tuple[float, float]
Segment = tuple[Point, Point]


def across(line: Segment, vx: float, vy: float, aspect: float) -> float:
    """The vector (vx, vy) projected on the line's 'in' normal, times the line's length:
    positive when it points towards 'in'. For a velocity: whether a mover heads in or out."""
    (x1, y1), (x2, y2) = line
    dx, dy = (x2 - x1) * aspect, y2 - y1
    # normal n = (dy, -dx)
    return vx * aspect * dy - vy * dx


def line_side(line: Segment, x: float, y: float, aspect: float) -> float:
    """Signed side of point (x, y) w.r.t. the directed line p1→p2; positive = the 'in' side.
    Divided by :func:`line_length`: the distance from the line, in units of the height."""
    (x1, y1), (x2, y2) = line
    dx, dy = (x2 - x1) * aspect, y2 - y1
    px, py = (x - x1) * aspect, y - y1
    return px * dy - py * dx


def line_length(line: Segment, aspect: float) -> float:
    """Length of the segment in units of the frame height."""
    (x1, y1), (x2, y2) = line
    return math.hypot((x2 - x1) * aspect, y2 - y1)


def segment_cross(
    line: Segment, a: Point, b: Point, aspect: float, *, end_slack: float = 0.0
) -> int:
    """+1 if the move a→b crosses the segment towards 'in', -1 towards 'out', else 0.

    The crossing point must lie on the segment; ``end_slack`` (a fraction of its length)
    widens it at both ends — the tracker's positions are sampled and noisy, the synthetic
    camera's truth is exact (0)."""
    sa = line_side(line, a[0], a[1], aspect)
    sb = line_side(line, b[0], b[1], aspect)
    if (sa > 0) == (sb > 0) or sa == sb:
        return 0
    (x1, y1), (x2, y2) = line
    f = sa / (sa - sb)
    cx, cy = a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])
    dx, dy = (x2 - x1) * aspect, y2 - y1
    seg2 = dx * dx + dy * dy
    if seg2 == 0:
        return 0
    u = ((cx - x1) * aspect * dx + (cy - y1) * dy) / seg2
    if not -end_slack <= u <= 1.0 + end_slack:
        return 0
    return 1 if sb > 0 else -1
