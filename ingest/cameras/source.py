"""Camera sources through ``cv2.VideoCapture``: RTSP/HTTP URLs, video files, device indexes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2

# FFmpeg writes its own errors straight to stderr ("[tcp @ 0x…] Connection to tcp://… failed:
# Connection refused" on every reconnect attempt to a camera that is down). The worker reports
# a camera's state itself, one line per change, so FFmpeg is quiet unless the operator asks
# (OPENCV_FFMPEG_LOGLEVEL=24 shows its warnings). Read by OpenCV at the first FFmpeg capture.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".mjpg", ".mjpeg", ".ts", ".webm")


@dataclass(frozen=True)
class Source:
    """A resolved source: what to hand to ``cv2.VideoCapture`` and what kind it is."""

    target: str | int
    kind: str  # "file", "url" or "device"

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    def describe(self) -> str:
        return str(self.target)


def resolve_source(source: str, var_dir: Path | str = "var") -> Source:
    """``0`` → device 0; ``scheme://…`` → URL; anything else → a file path.

    A relative path whose first component is ``var`` lives under ``var_dir`` (``IOC_VAR_DIR``),
    the same rule as ``sensors.camera_synth.demo_video_path`` that renders the demo clips.
    """
    s = source.strip()
    if s.isdigit():
        return Source(int(s), "device")
    if "://" in s:
        return Source(s, "url")
    p = Path(s)
    if not p.is_absolute() and p.parts and p.parts[0] == "var":
        p = Path(var_dir).joinpath(*p.parts[1:])
    return Source(str(p), "file")


def open_capture(
    src: Source, *, open_timeout_ms: int = 10_000, read_timeout_ms: int = 10_000, threads: int = 1
) -> cv2.VideoCapture | None:
    """An opened capture, or None. Network reads time out instead of blocking forever.

    ``threads`` = FFmpeg decoding threads per camera: 1 is best with many cameras (one core per
    camera-thread is already plenty at 640×360; more threads only add contention).
    """
    if src.kind == "file" and not Path(str(src.target)).is_file():
        return None
    if src.kind == "device":
        cap = cv2.VideoCapture(int(src.target))
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            read_timeout_ms,
            cv2.CAP_PROP_N_THREADS,
            threads,
        ]
        cap = cv2.VideoCapture(str(src.target), cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        return None
    return cap
