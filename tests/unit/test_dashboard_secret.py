"""The session-signing key generated under var/: one key for every process, never a partial
or empty one (real processes started together)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from dashboards.app import secret_key
from ioc.errors import IOCError
from ioc.settings import Settings


def _key(var: str, start: Any, out: Any) -> None:
    start.wait()
    out.put(secret_key(Settings(var_dir=Path(var), secret_key=None)))


def test_processes_starting_together_share_one_complete_key(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_key, args=(str(tmp_path), start, out)) for _ in range(8)]
    for p in procs:
        p.start()
    start.set()
    keys = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    assert (tmp_path / "dashboard_secret_key").read_text(encoding="ascii") == keys[0]
    assert (tmp_path / "dashboard_secret_key").stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard_secret_key"]  # no temp files


def test_an_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dashboard_secret_key").write_text("", encoding="ascii")
    with pytest.raises(IOCError, match="too short"):
        secret_key(Settings(var_dir=tmp_path, secret_key=None))
