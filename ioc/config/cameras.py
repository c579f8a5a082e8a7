"""``cameras.yaml``: cameras, their sources and counting lines."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from ioc.config.base import Section

Point = tuple[float, float]


class CountingLine(Section):
    name: str = Field(description="Line name, unique within the camera")
    points: tuple[Point, Point] = Field(
        description="Two points [x, y] as fractions (0..1) of the frame width and height"
    )


class CameraDefaults(Section):
    analysis_fps: float = Field(default=2.0, gt=0, le=30, description="Frames analysed per second")
    interval_s: float = Field(default=10.0, gt=0, description="Metrics interval, seconds")
    width: int = Field(default=640, ge=64, description="Analysis frame width (frames are resized)")


class Camera(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Camera id")
    ward: str = Field(description="Ward code from wards.yaml")
    name: str | None = Field(default=None, description="Human-readable place name")
    lat: float | None = Field(
        default=None, ge=-90, le=90, description="Latitude (WGS 84), inside or near the ward"
    )
    lon: float | None = Field(
        default=None, ge=-180, le=180, description="Longitude (WGS 84), inside or near the ward"
    )
    source: str = Field(description="RTSP/HTTP URL, video file path or device index")
    loop: bool = Field(default=False, description="Loop a video file (demos)")
    analysis_fps: float | None = Field(default=None, gt=0, le=30, description="Overrides default")
    interval_s: float | None = Field(default=None, gt=0, description="Overrides default")
    lines: list[CountingLine] = Field(default_factory=list, description="Counting lines")
    enabled: bool = Field(default=True, description="Disabled cameras are not ingested")


class CamerasFile(Section):
    defaults: CameraDefaults = Field(default_factory=CameraDefaults)
    cameras: list[Camera] = Field(default_factory=list)


# How far outside its ward's outline (config/wards.geojson) a camera may stand: the shipped
# outlines are approximate, and a camera at a boundary street may film from the other side.
NEAR_KM = 1.0


def _km(lat0: float) -> tuple[float, float]:
    """Kilometres per degree of latitude and of longitude at ``lat0``."""
    return 110.57, 111.32 * math.cos(math.radians(lat0))


def _rings(geometry: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The outer rings of a (Multi)Polygon, as (lon, lat) points."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    polys = coords if kind == "MultiPolygon" else [coords] if kind == "Polygon" else []
    return [[(float(p[0]), float(p[1])) for p in poly[0]] for poly in polys if poly]


def km_outside(lat: float, lon: float, geometry: dict[str, Any]) -> float | None:
    """0 when (lat, lon) lies inside the outline, else its distance to it in km; None for an
    outline without rings."""
    rings = _rings(geometry)
    if not rings:
        return None
    ky, kx = _km(lat)
    best = math.inf
    for ring in rings:
        pts = [((x - lon) * kx, (y - lat) * ky) for x, y in ring]  # the point at (0, 0)
        inside = False
        for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
            if (y1 > 0) != (y2 > 0) and x1 - y1 * (x2 - x1) / (y2 - y1) > 0:
                inside = not inside
            dx, dy = x2 - x1, y2 - y1
            seg2 = dx * dx + dy * dy
            u = 0.0 if seg2 == 0 else max(0.0, min(1.0, -(x1 * dx + y1 * dy) / seg2))
            best = min(best, math.hypot(x1 + u * dx, y1 + u * dy))
        if inside:
            return 0.0
    return best


def km_from_centre(lat: float, lon: float, c_lat: float, c_lon: float) -> float:
    ky, kx = _km(c_lat)
    return math.hypot((lat - c_lat) * ky, (lon - c_lon) * kx)
