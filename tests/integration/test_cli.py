"""Every command fails with one readable line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    base["IOC_CONFIG_DIR"] = str(ROOT / "config")
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        env=base,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ioc: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["simulate", "--rate", "fast"], "argument --rate: invalid number 'fast'"),
        (["simulate", "--rate", "-1"], "argument --rate: must be greater than 0"),
        (["serve", "--port", "99999"], "argument --port: port must be 1-65535"),
        (["export", "--kpi", "x", "--from", "yesterday", "--to", "2026-01-01", "--out", "f"],
         "argument --from: invalid date 'yesterday'"),
        (["users", "add", "bob"], "the following arguments are required: --role"),
        (["users", "add", "bob", "--role", "king"], "argument --role: invalid choice: 'king'"),
        (["db"], "required: ACTION"),
    ],
)  # fmt: skip
def test_bad_arguments_name_the_argument(args: list[str], needle: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert needle in one_line_error(proc)


def test_no_command() -> None:
    assert "a command is required" in one_line_error(run())


def test_database_url_unset() -> None:
    line = one_line_error(run("db", "init"))
    assert "IOC_DATABASE_URL is not set" in line


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql://postgres:secretpw@127.0.0.1:1/x", "cannot connect to database"),
        ("mysql://root@localhost/db", "must start with postgresql://"),
        ("postgresql://[::1", "not a valid URL"),
    ],
)
def test_bad_database_url(url: str, needle: str) -> None:
    line = one_line_error(run("db", "init", env={"IOC_DATABASE_URL": url}))
    assert needle in line
    assert "secretpw" not in line  # secrets never printed


def test_placeholder_password_refused() -> None:
    line = one_line_error(
        run("db", "init", env={"IOC_DATABASE_URL": "postgresql://ioc:changeme@127.0.0.1:1/x"})
    )
    assert "placeholder password" in line and "changeme" not in line


def test_bad_config_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.mkdir()
    for f in (ROOT / "config").iterdir():
        (cfg / f.name).write_bytes(f.read_bytes())
    (cfg / "ioc.yaml").write_text("mqtt:\n  keepalive_s: -3\n", encoding="utf-8")
    line = one_line_error(
        run("db", "init", env={"IOC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x",
                               "IOC_CONFIG_DIR": str(cfg)})
    )  # fmt: skip
    assert f"{cfg / 'ioc.yaml'}:2: mqtt.keepalive_s:" in line


def test_db_init_on_real_server(empty_db_url: str) -> None:
    first = run("db", "init", env={"IOC_DATABASE_URL": empty_db_url})
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = run("db", "init", env={"IOC_DATABASE_URL": empty_db_url})
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
