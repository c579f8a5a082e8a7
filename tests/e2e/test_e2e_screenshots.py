"""Screenshots of every page from a fresh ``ioc demo``, as each kind of user meets it.

Opt-in (``IOC_SCREENSHOTS=1``): it starts the real demo (embedded PostgreSQL and broker, two days
of back-fill, the simulator) and takes some 60 screenshots at 1920×1080, the wall's views at
3840×2160 too, which takes several minutes; CI time is tight, so the suite skips it. Written to
``artifacts/screenshots/demo/`` (not tracked); the best are copied by hand into
``docs/screenshots/`` for README. Each shot waits for its page to be drawn (no Dash callback
pending, graphs drawn, the page's DOM still for a moment) and checks the page has no error.

    IOC_SCREENSHOTS=1 python -m pytest -q tests/e2e/test_e2e_screenshots.py
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_fixtures import SCREENSHOTS, make_driver, set_viewport, wait_for, wait_http
from selenium.common.exceptions import WebDriverException
from test_e2e_demo import ROOT, Demo, database_url, fast_config

from dashboards.rotation import VIEWS
from ioc.db import connect
from ioc.demo.embedded import free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        os.environ.get("IOC_SCREENSHOTS") != "1",
        reason="opt-in (IOC_SCREENSHOTS=1): starts a real `ioc demo` and screenshots every page "
        "as four users, several minutes; CI time is tight",
    ),
]

OUT = SCREENSHOTS / "demo"
FULL_HD = (1920, 1080)
UHD = (3840, 2160)
PASSWORD = "screenshots-" + secrets.token_hex(8)
REFUSED: list[str] = []  # pages the server did not answer at first (reported at the end)

# Drawn: no Dash callback pending, every Plotly graph has drawn its SVG, no loading overlay.
READY_JS = """
if (document.readyState !== 'complete') { return -1; }
if (document.querySelector('[data-dash-is-loading="true"]')) { return -1; }
var graphs = document.querySelectorAll('.dash-graph');
for (var i = 0; i < graphs.length; i++) {
    if (!graphs[i].querySelector('.main-svg')) { return -1; }
}
return document.getElementsByTagName('*').length;
"""


def settle(driver: Any, timeout: float = 60.0) -> None:
    """Wait until the page is drawn and its element count is the same on three polls 0.4 s
    apart (Dash fills a page in several callback rounds)."""
    seen: list[int] = []

    def still(d: Any) -> bool:
        n = int(d.execute_script(READY_JS))
        seen.append(n)
        return n > 0 and len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if still(driver):
            return
        time.sleep(0.4)
    raise AssertionError(f"{driver.current_url} did not settle: {seen[-5:]}")


def shoot(driver: Any, base: str, path: str, name: str, size: tuple[int, int] = FULL_HD) -> Path:
    set_viewport(driver, *size)
    try:
        driver.get(base + path)
    except WebDriverException as exc:  # the server went away: the demo restarts it
        REFUSED.append(f"{path}: {exc.msg}")
        wait_http(base + "/healthz", 120)
        driver.get(base + path)
    settle(driver)
    text = driver.find_element("tag name", "body").text
    assert "Traceback" not in text and "Internal Server Error" not in text, (path, text[:300])
    out = OUT / f"{name}.png"
    driver.save_screenshot(str(out))
    return out


def login(driver: Any, base: str, user: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/login")
    driver.find_element("id", "username").send_keys(user)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("id", "login-submit").click()
    wait_for(driver, lambda d: "/login" not in d.current_url, 20)


def add_user(env: dict[str, str], name: str, role: str, wards: list[str]) -> None:
    cmd = [sys.executable, "-m", "ioc.cli", "users", "add", name, "--role", role]
    if wards:
        cmd += ["--ward", *wards]
    done = subprocess.run(
        cmd, input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def saved(var: Path, key: str) -> str:
    for line in (var / "demo-login.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} in demo-login.txt")


def one(db: str, sql: str, args: tuple[Any, ...] = ()) -> Any:
    with connect(db) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    conn.close()
    return row[0] if row else None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Demo]]:
    tmp = tmp_path_factory.mktemp("shots")
    port = free_port()
    run = Demo(tmp, port, fast_config(tmp))
    try:
        run.wait_for(r"\| URL: http://", 240)
        run.wait_for(r"serve .*Serving on", 60)
        run.wait_for(r"\| backfill finished", 300)
        db = database_url(tmp / "var")
        # data has arrived: the KPIs of (nearly) every ward are computed
        sql = (
            "SELECT count(DISTINCT ward_code) FROM kpi_values"
            " WHERE kpi = 'on_time_rate' AND period = 'day'"
        )
        end = time.monotonic() + 240
        while time.monotonic() < end:
            n = one(db, sql)
            if n and n >= 90:
                break
            time.sleep(2)
        else:
            raise AssertionError(f"KPIs of {n} wards 240 s after the back-fill")
        yield f"http://127.0.0.1:{port}", tmp, run
    finally:
        run.stop()


@pytest.mark.timeout(1800)  # the demo's start and some 60 pages: past the suite's 600 s
def test_screenshots_of_every_page(demo: tuple[str, Path, Demo]) -> None:
    base, tmp, run = demo
    var = tmp / "var"
    db = database_url(var)
    OUT.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "IOC_MQTT_URL"}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(IOC_DATABASE_URL=db, IOC_CONFIG_DIR=str(tmp / "config"), PYTHONPATH=path)
    ward = one(db, "SELECT ward_code FROM devices WHERE ward_code IS NOT NULL ORDER BY 1 LIMIT 1")
    other = one(db, "SELECT code FROM wards WHERE code <> %s ORDER BY code LIMIT 1", (ward,))
    device = one(db, "SELECT device_id FROM devices WHERE ward_code = %s ORDER BY 1", (ward,))
    add_user(env, "shots-leader", "ward_leader", [ward])
    add_user(env, "shots-analyst", "analyst", [])
    admin = (saved(var, "user"), saved(var, "password"))
    kiosk = saved(var, "kiosk")

    pages = [
        ("/", "overview"),
        (f"/ward/{ward}", "ward"),
        ("/applications", "applications"),
        ("/cameras", "cameras"),
        ("/alerts", "alerts"),
        ("/export", "export"),
        ("/incidents", "incidents"),
        ("/reports", "reports"),
        (f"/devices/{device}", "device"),
        ("/settings/notifications", "notify_prefs"),
        ("/wall", "wall"),
    ]
    driver = make_driver(size=FULL_HD)
    shots: list[Path] = []
    try:
        shots.append(shoot(driver, base, "/login", "login"))
        shots.append(shoot(driver, base, "/track", "track"))
        shots.append(shoot(driver, base, "/track?lang=en", "track_en"))
        for role, (user, password) in (
            ("admin", admin),
            ("leader", ("shots-leader", PASSWORD)),
            ("analyst", ("shots-analyst", PASSWORD)),
        ):
            login(driver, base, user, password)
            if role == "admin":  # the first screen is full: "data still arriving" has gone
                driver.get(base + "/")
                wait_for(driver, lambda d: not d.find_elements("css selector", ".arriving"), 300)
            mine = list(pages)
            if role == "admin":
                mine += [("/system", "system"), ("/admin/notifications", "notify_admin")]
                incident = one(db, "SELECT id FROM incidents ORDER BY opened_at DESC LIMIT 1")
                if incident is not None:
                    mine.append((f"/incidents/{incident}", "incident"))
                mine.append(("/?lang=en", "overview_en"))
            if role == "leader":
                mine.append((f"/ward/{other}", "ward_other_forbidden"))
            for p, name in mine:
                shots.append(shoot(driver, base, p, f"{role}_{name}"))
        driver.delete_all_cookies()
        for view in VIEWS:
            for size in (FULL_HD, UHD):
                shots.append(
                    shoot(
                        driver,
                        base,
                        f"/wall?token={kiosk}&view={view}",
                        f"kiosk_wall_{view}_{size[0]}x{size[1]}",
                        size,
                    )
                )
    finally:
        driver.quit()
    assert all(s.stat().st_size > 10_000 for s in shots), [s.name for s in shots]
    assert not REFUSED, "\n".join([*REFUSED, "-- the demo said:", *run.lines[-80:]])
