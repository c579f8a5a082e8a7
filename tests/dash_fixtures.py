"""A seeded database, an ``ioc serve`` subprocess on it, and headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from ioc.demo.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # dash_seed beside this file

from dash_seed import add_users, seed  # noqa: E402

PASSWORD = "browser-test-pass-1"
KIOSK_TOKEN = "kiosk-test-token-0123456789"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--enable-unsafe-swiftshader",
]


class Server:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], db_url: str, facts: dict[str, Any]):
        self.url = url
        self.proc = proc
        self.db_url = db_url
        self.facts = facts


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not come up")


def start_server(
    db_url: str,
    var_dir: Path,
    port: int,
    log: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    env_extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``ioc serve`` on ``port``: ``workers`` processes of ``threads`` threads each."""
    env = dict(os.environ)
    env.update(
        IOC_DATABASE_URL=db_url,
        IOC_KIOSK_TOKEN=KIOSK_TOKEN,
        IOC_VAR_DIR=str(var_dir),
        IOC_SECRET_KEY="test-secret-key-for-sessions-0123456789",
        IOC_CONFIG_DIR=str(ROOT / "config"),
    )
    env.pop("IOC_METRICS_TOKEN", None)
    env.update(env_extra or {})
    fh = open(log, "ab")  # noqa: SIM115 - closed with the process
    cmd = [sys.executable, "-m", "ioc.cli", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers), "--threads", str(threads)]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    fh.close()
    return proc


@contextmanager
def served(
    pg_server_url: str,
    config: Any,
    tmp: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    **seed_args: Any,
) -> Iterator[Server]:
    """A new database seeded by :func:`dash_seed.seed` (``seed_args``) with one user per
    role, and ``ioc serve`` on it; both gone afterwards."""
    from db_support import create_schema_database, drop_database

    from ioc.db import connect

    url = create_schema_database(pg_server_url, config)
    conn = connect(url)
    try:
        facts = seed(conn, config, **seed_args)
        facts["grants"] = add_users(conn, config, PASSWORD)
    finally:
        conn.close()
    port = free_port()
    log = tmp / "serve.log"
    proc = start_server(url, tmp / "var", port, log, workers=workers, threads=threads)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz")
    except RuntimeError:
        proc.kill()
        proc.wait()
        raise RuntimeError(log.read_text(errors="replace")[-3000:]) from None
    facts.update(log=log, var=tmp / "var", port=port)
    # /export jobs are run by an export worker (in a deployment: every `ioc scheduler`)
    from ioc.reports.export import ExportWorker

    exports = ExportWorker(url, config, poll_s=0.5, work_dir=tmp / "exports").start()
    try:
        yield Server(base, proc, url, facts)
    finally:
        exports.stop()
        stop_server(proc)
        drop_database(pg_server_url, url)


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (gunicorn stops its workers gracefully), SIGKILL after ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def dash_server(
    pg_server_url: str, config: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("dash")
    with served(pg_server_url, config, tmp, reports_dir=tmp / "reports") as server:
        yield server


def make_driver(download_dir: Path | None = None, size: tuple[int, int] = (1600, 1000)) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--window-size={size[0]},{size[1]}")
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if download_dir is not None:
        opts.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(download_dir),
                "download.prompt_for_download": False,
            },
        )
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    set_viewport(driver, *size)
    if download_dir is not None:
        driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
        )
    return driver


def set_viewport(driver: Any, width: int, height: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = make_driver()
    yield driver
    driver.quit()


def login(driver: Any, base: str, user: str, password: str = PASSWORD) -> None:
    driver.get(base + "/login")
    driver.find_element("id", "username").send_keys(user)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("id", "login-submit").click()
    wait_for(driver, lambda d: "/login" not in d.current_url, 10)


def wait_for(driver: Any, cond: Any, timeout: float = 15.0) -> Any:
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # Dash re-renders what a callback returns: an element found on one poll may be replaced
    # before its text is read (stale); the condition is asked again on the next poll
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored).until(
        cond
    )


def severe_logs(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def external_requests(driver: Any, base: str) -> list[str]:
    names = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    return [n for n in names if not n.startswith(base) and not n.startswith("data:")]


def session_cookie(driver: Any) -> str:
    for c in driver.get_cookies():
        if c["name"] == "ioc_session":
            return str(c["value"])
    raise AssertionError("no session cookie")


def post_json(url: str, body: dict[str, Any], cookie: str | None, origin: str | None = None):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if cookie:
        req.add_header("Cookie", f"ioc_session={cookie}")
    if origin:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        body_text = exc.read().decode(errors="replace")
        exc.close()
        return exc.code, body_text


def http_request(
    url: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> tuple[int, dict[str, str], str]:
    """One HTTP request (``body`` sent as JSON): status, headers and text, for an error status
    too."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        exc.close()
        return exc.code, dict(exc.headers), text


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Keep 302s as answers (to read their Location and Set-Cookie)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def login_cookie(base: str, user: str, password: str = PASSWORD) -> str:
    """Sign in with the form (no browser); the ``ioc_session`` cookie's value."""
    data = urllib.parse.urlencode({"username": user, "password": password, "next": "/"})
    req = urllib.request.Request(base + "/login", data=data.encode(), method="POST")
    req.add_header("Origin", base)
    opener = urllib.request.build_opener(NoRedirect())
    try:
        opener.open(req, timeout=20).close()
    except urllib.error.HTTPError as exc:
        cookies = SimpleCookie()
        for line in exc.headers.get_all("Set-Cookie") or []:
            cookies.load(line)
        exc.close()
        if exc.code in (302, 303) and "ioc_session" in cookies:
            return cookies["ioc_session"].value
        raise RuntimeError(f"sign-in as {user} answered {exc.code}") from None
    raise RuntimeError(f"sign-in as {user} did not redirect")


def wall_body(view: str) -> dict[str, Any]:
    """The wall's refresh callback request for ``view`` (20 s period, 1920 px screen)."""
    outs = [
        ("wall-body", "children"),
        ("wall-view-name", "children"),
        ("wall-clock", "children"),
        ("wall-stale", "children"),
        ("wall-stale", "className"),
        ("wall-last", "data"),
        ("wall-sig", "data"),
        ("wall-reload", "data"),
    ]
    return {
        "output": ".." + "...".join(f"{a}.{b}" for a, b in outs) + "..",
        "outputs": [{"id": a, "property": b} for a, b in outs],
        "inputs": [
            {"id": "wall-interval", "property": "n_intervals", "value": 1},
            {"id": "wall-screen", "property": "data", "value": 1920},
        ],
        "changedPropIds": ["wall-interval.n_intervals"],
        "state": [
            {"id": "wall-config", "property": "data", "value": {"view": view, "period": 20}},
            {"id": "wall-sig", "property": "data", "value": None},
        ],
    }


def ward_body(code: str) -> dict[str, Any]:
    """The ward page's data callback request (/_dash-update-component) for ward ``code``."""
    outs = [
        "ward-kpis",
        "ward-overdue",
        "ward-alerts",
        "ward-devices",
        "ward-cameras",
    ]
    return {
        "output": ".." + "...".join(f"{o}.children" for o in outs) + "..",
        "outputs": [{"id": o, "property": "children"} for o in outs],
        "inputs": [{"id": "ward-interval", "property": "n_intervals", "value": 1}],
        "changedPropIds": ["ward-interval.n_intervals"],
        "state": [{"id": "ward-code", "property": "data", "value": code}],
    }


def overview_body(kpi: str = "on_time_rate") -> dict[str, Any]:
    """The overview's data callback request for KPI ``kpi``."""
    outs = [
        ("ov-tiles", "children"),
        ("ov-map", "figure"),
        ("ov-ranking", "children"),
        ("ov-best-worst", "children"),
        ("ov-alerts", "children"),
        ("ov-updated", "children"),
    ]
    return {
        "output": ".." + "...".join(f"{a}.{b}" for a, b in outs) + "..",
        "outputs": [{"id": a, "property": b} for a, b in outs],
        "inputs": [
            {"id": "ov-interval", "property": "n_intervals", "value": 1},
            {"id": "ov-kpi", "property": "value", "value": kpi},
        ],
        "changedPropIds": ["ov-kpi.value"],
    }
