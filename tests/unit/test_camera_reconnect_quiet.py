"""A camera whose stream nobody serves (the demo's cam-hc-04, on purpose): reconnect attempts
back off to once a minute, and the log says one line per state change — FFmpeg's own
"Connection refused" on every attempt (seen every few seconds in the demo) is silenced."""

from __future__ import annotations

import itertools
import logging
import socket
import subprocess
import sys
import textwrap

import pytest

from ingest.cameras.worker import CameraSpec, CameraWorker, Message, WorkerOptions


def dead_rtsp_url() -> str:
    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"rtsp://127.0.0.1:{port}/cam"


class RecordingStop:
    """A stop flag that records every wait instead of sleeping; set after ``n`` waits."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return len(self.waits) >= self.n

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0.0))
        return self.is_set()


def test_reconnect_backs_off_to_a_minute_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[Message] = []
    stop = RecordingStop(60)
    spec = CameraSpec(id="cam-dead", ward="20242", source=dead_rtsp_url())
    worker = CameraWorker(spec, sent.append, stop, options=WorkerOptions(open_timeout_ms=2000))
    real_open = worker._open
    attempts: list[int] = []

    def counting_open() -> bool:
        attempts.append(len(stop.waits))  # how many waits happened before this attempt
        return real_open()

    worker._open = counting_open  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="ingest.cameras.worker"):
        worker.run()
    pauses = [sum(stop.waits[a:b]) for a, b in itertools.pairwise(attempts)]
    assert pauses[:10] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    # the worker beats at least every 5 s while it pauses (the supervisor's stuck limit: 45 s)
    assert max(stop.waits) <= 5.0
    lines = [r.getMessage() for r in caplog.records if "cam-dead" in r.getMessage()]
    assert lines == [f"camera cam-dead: cannot open source ({spec.source})"]


def test_ffmpeg_says_nothing_on_a_refused_connection() -> None:
    code = textwrap.dedent(
        f"""
        from ingest.cameras.source import open_capture, resolve_source
        for _ in range(3):
            assert open_capture(resolve_source({dead_rtsp_url()!r}), open_timeout_ms=2000) is None
        print("done")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "done"
    assert "Connection refused" not in out.stderr and "[tcp @" not in out.stderr, out.stderr
