"""``cameras.yaml``: cameras, their sources and counting lines."""

from __future__ import annotations

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
    source: str = Field(description="RTSP/HTTP URL, video file path or device index")
    loop: bool = Field(default=False, description="Loop a video file (demos)")
    analysis_fps: float | None = Field(default=None, gt=0, le=30, description="Overrides default")
    interval_s: float | None = Field(default=None, gt=0, description="Overrides default")
    lines: list[CountingLine] = Field(default_factory=list, description="Counting lines")
    enabled: bool = Field(default=True, description="Disabled cameras are not ingested")


class CamerasFile(Section):
    defaults: CameraDefaults = Field(default_factory=CameraDefaults)
    cameras: list[Camera] = Field(default_factory=list)
