"""ioc.geometry: the one definition of counting-line geometry that the camera ingester and the
synthetic camera (its ground truth) share."""

from __future__ import annotations

import pytest

import ingest.cameras.analysis as analysis
import sensors.camera_synth as camera_synth
from ioc.geometry import across, line_length, line_side, segment_cross

DOWN = ((0.5, 0.0), (0.5, 1.0))  # drawn top to bottom: 'in' = left -> right
RIGHT = ((0.0, 0.5), (1.0, 0.5))  # drawn left to right: 'in' = bottom -> top
A = 16 / 9


def test_both_sides_use_the_core_geometry() -> None:
    assert analysis.segment_cross is segment_cross
    assert analysis.line_side is line_side
    assert camera_synth.segment_cross is segment_cross


def test_sides_and_headings() -> None:
    assert line_side(DOWN, 0.6, 0.2, A) > 0 > line_side(DOWN, 0.4, 0.2, A)
    assert line_side(RIGHT, 0.3, 0.4, A) > 0 > line_side(RIGHT, 0.3, 0.6, A)
    # divided by the length: the distance in units of the frame height
    assert line_side(DOWN, 0.5 + 0.1, 0.7, A) / line_length(DOWN, A) == pytest.approx(0.1 * A)
    assert across(DOWN, 0.2, 0.0, A) > 0 > across(DOWN, -0.2, 0.0, A)
    assert across(DOWN, 0.0, 0.3, A) == 0  # along the line
    assert across(RIGHT, 0.0, -0.1, A) > 0  # upwards
    assert line_length(RIGHT, A) == pytest.approx(A)


def test_segment_cross_and_end_slack() -> None:
    assert segment_cross(DOWN, (0.4, 0.5), (0.6, 0.5), A) == 1
    assert segment_cross(DOWN, (0.6, 0.5), (0.4, 0.5), A) == -1
    assert segment_cross(RIGHT, (0.5, 0.6), (0.5, 0.4), A) == 1
    short = ((0.5, 0.0), (0.5, 0.5))
    just_past = ((0.4, 0.505), (0.6, 0.505))  # crosses 1 % of the length beyond its end
    assert segment_cross(short, *just_past, A) == 0  # the truth: exact
    assert segment_cross(short, *just_past, A, end_slack=0.02) == 1  # the tracker: slack
    assert segment_cross(short, (0.4, 0.52), (0.6, 0.52), A, end_slack=0.02) == 0
    assert segment_cross(((0.5, 0.5), (0.5, 0.5)), (0.4, 0.5), (0.6, 0.5), A) == 0  # a point
