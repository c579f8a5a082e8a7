"""``ioc serve`` on a port another program listens on: one line, non-zero exit, no success
line first."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serve_on_a_taken_port_says_so_in_one_line(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = dict(
            os.environ,
            IOC_DATABASE_URL=db_url,
            IOC_VAR_DIR=str(tmp_path / "var"),
            IOC_SECRET_KEY="test-secret-key-for-sessions-0123456789",
            IOC_CONFIG_DIR=str(ROOT / "config"),
        )
        proc = subprocess.run(
            [sys.executable, "-m", "ioc.cli", "serve", "--port", str(port), "--workers", "1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode != 0
    assert "IOC dashboard on" not in proc.stdout  # no success line before the failure
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert "Traceback" not in proc.stderr
