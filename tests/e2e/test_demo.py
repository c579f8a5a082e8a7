"""`ioc demo` end to end: embedded servers, schema, clean Ctrl-C, data kept for the next start."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg2
import pytest

from ioc.demo import Child, Output, Supervisor
from ioc.demo.embedded import free_port

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


class DemoRun:
    """A running `ioc demo` whose output is collected line by line."""

    def __init__(self, cwd: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("IOC_DATABASE_URL", "IOC_MQTT_URL")}
        env["IOC_CONFIG_DIR"] = str(ROOT / "config")
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "demo", "--port", str(port), "--backfill", "0"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # our SIGINT below is the only one it gets
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines[-60:])
                    )
                self._changed.wait(min(left, 1.0))

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        finally:
            self._reader.join(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            for child in self.descendants():
                child.kill()
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def demo(cwd: Path, port: int) -> Iterator[DemoRun]:
    run = DemoRun(cwd, port)
    try:
        yield run
    finally:
        run.kill()  # only acts if the test failed before a clean stop


def _database_url(var: Path) -> str:
    env = (var / "demo.env").read_text(encoding="utf-8")
    match = re.search(r"IOC_DATABASE_URL='([^']+)'", env)
    assert match, env
    return match.group(1)


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _stop_cleanly(run: DemoRun) -> None:
    children = run.descendants()
    assert any("postgres" in " ".join(c.cmdline()) for c in children), "no embedded PostgreSQL"
    rc = run.interrupt()
    assert rc == 0, run.output()[-3000:]
    time.sleep(0.5)
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left behind: {[(c.pid, c.cmdline()) for c in left]}"
    assert "stopped" in run.lines[-1], run.output()[-2000:]


def test_demo_starts_embedded_stack_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    var = tmp_path / "var"
    port = free_port()

    with demo(tmp_path, port) as first:
        url_line = first.wait_for(r"\| URL: http://", START_TIMEOUT_S)
        assert f":{port}/" in url_line
        first.wait_for(r"embedded PostgreSQL ready .*new cluster", 1)
        db = _database_url(var)
        assert db.startswith("postgresql://postgres:") and "@127.0.0.1:" in db
        assert _query(db, "SELECT count(*) FROM wards") == [(94,)]
        _query(
            db,
            "CREATE TABLE demo_test_marker (note text);"
            " INSERT INTO demo_test_marker VALUES ('kept')",
        )
        login_line = first.wait_for(r"\| login: ", 1)
        # notifications: the worker runs, and the local mail catcher's inbox answers
        inbox = first.wait_for(r"\| mail inbox .*http://127\.0\.0\.1:\d+/", 1)
        inbox_url = inbox.split("): ", 1)[1].strip()
        with urllib.request.urlopen(inbox_url, timeout=10) as resp:
            assert "Hộp thư demo" in resp.read().decode()
        if "demo / " in login_line:
            assert _query(db, "SELECT email FROM users WHERE name = 'demo'") == [
                ("demo@localhost",)
            ]
        assert any("ioc.cli notify" in " ".join(c.cmdline()) for c in first.descendants())
        # the dashboard links its menu bar to that inbox
        serve = [c for c in first.descendants() if "ioc.cli serve" in " ".join(c.cmdline())]
        assert serve and serve[0].environ().get("IOC_DEMO_INBOX_URL") == inbox_url
        _stop_cleanly(first)
    assert not (var / "demo.env").exists(), "demo.env outlived the demo"
    assert (var / "pg" / "data" / "PG_VERSION").is_file()

    with demo(tmp_path, port) as second:
        second.wait_for(r"\| URL: http://", START_TIMEOUT_S)
        second.wait_for(r"embedded PostgreSQL ready .*existing data", 1)
        db = _database_url(var)
        assert _query(db, "SELECT note FROM demo_test_marker") == [("kept",)]
        assert _query(db, "SELECT count(*) FROM wards") == [(94,)]
        if "demo / " in login_line:  # the same login works on the same data
            assert second.wait_for(r"\| login: ", 1).split("|", 1)[1] == login_line.split("|", 1)[1]
            assert _query(db, "SELECT role FROM users WHERE name = 'demo'") == [("admin",)]
        _stop_cleanly(second)


# --- the supervisor, with small stand-in programs (fast; no servers) ---------------------------


class _Lines(io.StringIO):
    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


def _child(out: Output, code: str, *, name: str = "worker", **kwargs: object) -> Child:
    return Child(
        name,
        [],
        dict(os.environ),
        out,
        program=[sys.executable, "-c", textwrap.dedent(code)],
        **kwargs,  # type: ignore[arg-type]
    )


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_supervisor_restarts_a_crashing_child_then_gives_up() -> None:
    stream = _Lines()
    sup = Supervisor(Output(stream), max_restarts=2, window_s=60, first_delay_s=0.01)
    child = sup.add(_child(sup.out, "import sys; print('boom', flush=True); sys.exit(3)"))

    def settled() -> bool:
        sup.check()
        return child.given_up

    _until(settled)
    text = stream.getvalue()
    assert text.count("worker        | boom") == 3  # first start + 2 restarts
    assert "worker died: exit code 3 (boom); restarting" in text
    assert "restarted 2 times in 60 s, giving up on it" in text


def test_supervisor_skips_a_command_that_is_not_available_yet() -> None:
    stream = _Lines()
    sup = Supervisor(Output(stream), first_delay_s=0.01)
    code = """
        import sys
        print("ioc: error: this command is not available yet (x.y)", file=sys.stderr)
        sys.exit(2)
    """
    child = sup.add(_child(sup.out, code, name="scheduler"))
    child.wait(30)
    sup.check()
    assert child.unavailable and not child.given_up and child.restart_at is None
    assert "skipped scheduler" in stream.getvalue()


def test_one_shot_child_runs_its_successor() -> None:
    stream = _Lines()
    sup = Supervisor(Output(stream))
    ran: list[int | None] = []
    child = sup.add(
        _child(
            sup.out,
            "print('history written')",
            name="backfill",
            long_running=False,
            then=lambda c: ran.append(c.proc.returncode if c.proc else None),
        )
    )
    child.wait(30)
    sup.check()
    assert ran == [0] and child.finished
    assert "backfill finished" in stream.getvalue()


def test_stop_escalates_to_sigkill_and_takes_the_whole_group() -> None:
    stream = _Lines()
    code = """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(grandchild.pid, flush=True)
        time.sleep(120)
    """
    child = _child(Output(stream), code)
    child.start()
    _until(lambda: any(line.strip().isdigit() for line in child.last_lines))
    grandchild = psutil.Process(int(next(iter(child.last_lines)).strip()))
    began = time.monotonic()
    child.stop(timeout=1.0)
    assert time.monotonic() - began < 10
    assert child.proc is not None and child.proc.returncode == -signal.SIGKILL
    assert "worker did not stop in 1 s: SIGKILL" in stream.getvalue()
    _until(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE, 10)


def test_child_gets_sigterm_when_the_demo_dies(tmp_path: Path) -> None:
    """Children are in their own sessions (Ctrl-C reaches only the demo), so they must not
    outlive a demo that is killed outright."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from ioc.demo import Child, Output
            c = Child("sleeper", [], {}, Output(sys.stdout),
                      program=[sys.executable, "-c", "import time; time.sleep(120)"])
            c.start()
            print("PID", c.proc.pid, flush=True)
            time.sleep(120)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        pid = int(line.split("PID", 1)[1])
        sleeper = psutil.Process(pid)
        assert sleeper.is_running()
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    _until(lambda: not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE, 10)


def test_successor_takes_its_predecessors_slot_in_the_stop_order() -> None:
    stream = _Lines()
    sup = Supervisor(Output(stream))
    first = sup.add(_child(sup.out, "print('a')", name="backfill", long_running=False))
    later = sup.add(_child(sup.out, "print('b')", name="serve", long_running=False))
    live = sup.add(_child(sup.out, "print('c')", name="simulate", long_running=False), after=first)
    assert sup.children == [first, live, later]
    for child in sup.children:
        child.wait(30)
    sup.stop_all(1.0)


def test_demo_with_its_port_taken_is_one_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("IOC_DATABASE_URL", "IOC_MQTT_URL")}
    env["IOC_CONFIG_DIR"] = str(ROOT / "config")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "ioc.cli", "demo", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert errors == [
        f"ioc: error: cannot serve the dashboard on 127.0.0.1:{port}: Address already in use"
        " (another `ioc demo` or server? choose another with --port)"
    ]
    assert not (tmp_path / "var" / "pg").exists()  # nothing was started
