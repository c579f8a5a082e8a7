"""The dashboard in headless Chromium against ``ioc serve`` on real PostgreSQL with data."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

# ruff: noqa: F811 - pytest fixtures imported from dash_fixtures are used as parameters
from dash_fixtures import (  # noqa: F401 - fixtures used by name
    KIOSK_TOKEN,
    ROOT,
    SCREENSHOTS,
    NoRedirect,
    browser,
    dash_server,
    external_requests,
    login,
    login_cookie,
    make_driver,
    overview_body,
    post_json,
    session_cookie,
    set_viewport,
    severe_logs,
    wait_for,
    ward_body,
)

pytestmark = pytest.mark.browser

PAGES = {
    "/": "ov-map",
    "/applications": "apps-stats-table",
    "/cameras": "cams-list",
    "/alerts": "alerts-table",
    "/export": "export-reports",
}


def _text(driver: Any, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def _has(element_id: str) -> Any:
    def check(d: Any) -> bool:
        return bool(d.find_elements("id", element_id))

    return check


def _map_paths(driver: Any) -> list[int]:
    return list(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('.trace.choropleth'))"
            ".map(t => t.querySelectorAll('path').length)"
        )
    )


def test_every_page_renders_without_console_errors(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    login(browser, base, "admin")
    ward = dash_server.facts["grants"]["ward_leader"][0]
    pages = {**PAGES, f"/ward/{ward}": "ward-overdue", "/wall?view=alerts": "wall-body"}
    for path, element in pages.items():
        browser.get(base + path)
        wait_for(browser, _has(element), 20)
        # let the page's callbacks finish
        wait_for(
            browser,
            lambda d: (
                d.execute_script(
                    "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length"
                )
                == 0
            ),
            20,
        )
        time.sleep(1.0)
        assert severe_logs(browser) == [], path
        assert external_requests(browser, base) == [], path
    # the ward page shows this ward's KPIs with a rank among the wards
    browser.get(base + f"/ward/{ward}")
    wait_for(browser, _has("ward-kpi-on_time_rate"), 20)
    row = _text(browser, "ward-kpi-on_time_rate")
    assert "/" in row  # "rank/n"


def test_map_shows_94_wards_and_overview_screenshot(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    login(browser, base, "admin")
    browser.get(base + "/")
    wait_for(browser, lambda d: _map_paths(d) and _map_paths(d)[0] == 94, 25)
    paths = _map_paths(browser)
    assert paths[0] == 94  # every ward drawn (no-data wards in grey)
    assert 80 <= paths[1] <= 94  # wards with a value (the seed leaves ~4 % without data)
    # tiles come from the database: the city roll-up of on_time_rate
    wait_for(browser, _has("tile-on_time_rate"), 10)
    assert "%" in _text(browser, "tile-on_time_rate")
    # hover shows a ward name and its value
    wait_for(browser, _has("ov-rank-table"), 10)
    time.sleep(1.0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "overview.png"))
    assert severe_logs(browser) == []


def test_language_switch_and_vietnamese_formats(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    login(browser, base, "admin")
    browser.get(base + "/")
    wait_for(browser, _has("tile-on_time_rate"), 20)
    vi = _text(browser, "tile-on_time_rate")
    assert "Mục tiêu" in vi and "95,0" in vi  # Vietnamese decimal comma
    browser.get(base + "/?lang=en")
    wait_for(browser, _has("tile-on_time_rate"), 20)
    wait_for(browser, lambda d: "Target" in _text(d, "tile-on_time_rate"), 10)
    assert "95.0" in _text(browser, "tile-on_time_rate")
    assert "Overview" in browser.find_element("class name", "navbar").text
    browser.get(base + "/?lang=vi")  # back (the cookie holds the choice)
    wait_for(browser, _has("tile-on_time_rate"), 20)


def test_wall_kiosk_1920_and_4k(dash_server: Any) -> None:
    base = dash_server.url
    driver = make_driver(size=(1920, 1080))
    try:
        driver.get(base + f"/wall?token={KIOSK_TOKEN}&view=map")
        wait_for(driver, lambda d: _map_paths(d) and _map_paths(d)[0] == 94, 25)
        time.sleep(1.5)
        bg = driver.execute_script(
            "return getComputedStyle(document.getElementById('wall-root')).backgroundColor"
        )
        assert bg == "rgb(5, 8, 15)"
        # large type: the tile values are at least 40 px at 1920 wide
        size = driver.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('.tile-value')).fontSize)"
        )
        assert size >= 40
        # under the tiles: the wards ranked last on the map's KPI, worst first, all on screen
        worst = driver.execute_script(
            "const u = document.getElementById('wall-map-worst');"
            "return u ? [Array.from(u.children, li => li.innerText),"
            " u.getBoundingClientRect().bottom] : null"
        )
        assert worst is not None, "no list of the wards ranked last"
        rows, bottom = worst
        assert 1 <= len(rows) <= 6 and bottom <= 1080
        ranked = [int(r.split("Hạng ")[1].split("/")[0]) for r in rows]
        assert ranked == sorted(ranked, reverse=True), rows
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "wall_1920x1080.png"))
        assert severe_logs(driver) == []
        # the kiosk may not see anything else
        driver.get(base + "/alerts")
        assert "alerts-table" not in driver.page_source
        assert any("403" in m for m in severe_logs(driver))  # the refusal (and drain the log)
        set_viewport(driver, 3840, 2160)
        driver.get(base + "/wall?view=applications")
        wait_for(driver, _has("wall-apps-graph"), 25)
        time.sleep(1.5)
        size4k = driver.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('.tile-value')).fontSize)"
        )
        assert size4k >= 2 * size - 1
        driver.save_screenshot(str(SCREENSHOTS / "wall_3840x2160.png"))
        assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_wall_rotates_and_flags_stale_data(dash_server: Any) -> None:
    base = dash_server.url
    driver = make_driver(size=(1920, 1080))
    try:
        driver.get(base + f"/wall?token={KIOSK_TOKEN}&period=5")
        seen = set()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and len(seen) < 3:
            els = driver.find_elements("id", "wall-view-name")
            if els and els[0].text:
                seen.add(els[0].text)
            time.sleep(0.5)
        assert len(seen) >= 3, seen
        # the seeded KPIs were computed "now": not stale
        assert "stale" not in driver.find_element("id", "wall-stale").get_attribute("class")
        assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_ward_leader_sees_own_ward_only(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    own = dash_server.facts["grants"]["ward_leader"][0]
    other = sorted(w for w in _ward_codes() if w != own)[0]
    login(browser, base, "ward_leader")
    browser.get(base + f"/ward/{own}")
    wait_for(browser, _has("ward-kpi-on_time_rate"), 20)
    assert own in _text(browser, "ward-title")
    browser.get(base + f"/ward/{other}")
    time.sleep(1.0)
    assert "ward-kpi-on_time_rate" not in browser.page_source
    assert "ward-title" not in browser.page_source
    cookie = session_cookie(browser)

    # raw GET of another ward's page: refused by the guard
    req = urllib.request.Request(
        base + f"/ward/{other}", headers={"Cookie": f"ioc_session={cookie}"}
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 403
    exc.value.close()

    # raw POST of the ward page's callback with another ward's code: refused
    body = ward_body(other)
    status, text = post_json(base + "/_dash-update-component", body, cookie)
    assert status == 403, text
    assert other not in text
    # the same request for their own ward answers with data
    status, text = post_json(base + "/_dash-update-component", ward_body(own), cookie)
    assert status == 200, text
    assert "ward-overdue" in text or "app-" in text
    # the page router with another ward's path: refused
    status, _ = post_json(base + "/_dash-update-component", _router_body(f"/ward/{other}"), cookie)
    assert status == 403
    # the overview's map callback gives only the granted ward's values
    status, text = post_json(base + "/_dash-update-component", overview_body(), cookie)
    assert status == 200
    payload = json.loads(text)
    fig = payload["response"]["ov-map"]["figure"]
    coloured = fig["data"][1]["locations"] if len(fig["data"]) > 1 else []
    assert set(coloured) <= {own}
    # exports are not for ward leaders (the same request from an analyst starts a job)
    status, _ = post_json(base + "/_dash-update-component", _export_body([own]), cookie)
    assert status == 403
    analyst = login_cookie(base, "analyst")
    status, text = post_json(base + "/_dash-update-component", _export_body([own]), analyst)
    assert status == 200, text
    assert json.loads(text)["response"]["export-job"]["data"]


def test_anonymous_requests_are_refused(dash_server: Any) -> None:
    base = dash_server.url
    own = dash_server.facts["grants"]["ward_leader"][0]
    for path in [
        *PAGES,
        f"/ward/{own}",
        "/wall",
        "/export/report/1",
        "/_dash-layout",
        "/_dash-dependencies",
    ]:
        req = urllib.request.Request(base + path)
        opener = urllib.request.build_opener(NoRedirect())
        try:
            resp = opener.open(req, timeout=10)
            code = resp.status
            resp.close()
        except urllib.error.HTTPError as exc:
            code = exc.code
            exc.close()
        assert code in (302, 401, 403), (path, code)
    for body in (ward_body(own), _router_body("/"), overview_body(), _export_body(None)):
        status, text = post_json(base + "/_dash-update-component", body, None)
        assert status == 401, text
    status, _ = post_json(base + "/_dash-update-component", overview_body(), "forged.cookie.x")
    assert status == 401
    # a wrong kiosk token is refused too
    req = urllib.request.Request(base + "/wall?token=wrong")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 403
    exc.value.close()
    # /healthz is open and discloses no data
    with urllib.request.urlopen(base + "/healthz", timeout=10) as resp:
        health = json.loads(resp.read())
    assert health["database"] == "ok"
    assert set(health) <= {"status", "database", "broker", "services", "ingest"}


def test_analyst_downloads_xlsx(dash_server: Any, tmp_path: Path) -> None:
    import openpyxl

    base = dash_server.url
    downloads = tmp_path / "dl"
    downloads.mkdir()
    driver = make_driver(download_dir=downloads)
    try:
        login(driver, base, "analyst")
        driver.get(base + "/export")
        wait_for(driver, _has("export-go"), 20)
        time.sleep(1.0)
        driver.find_element("id", "export-go").click()
        files = wait_for(
            driver,
            lambda d: [p for p in downloads.glob("*.xlsx") if p.stat().st_size > 0] or False,
            60,
        )
        time.sleep(0.5)
        wb = openpyxl.load_workbook(files[0], read_only=True)
        try:
            data = wb.worksheets[-1]
            rows = list(data.iter_rows(values_only=True))
        finally:
            wb.close()
        assert len(rows) > 94  # 31 days × 95 (wards + city) of on_time_rate
        assert any(r and "on_time_rate" in [str(c) for c in r] for r in rows[1:])
        assert severe_logs(driver) == []
        # the scheduled report listed on the page downloads too
        cookie = session_cookie(driver)
        req = urllib.request.Request(
            base + "/export/report/1", headers={"Cookie": f"ioc_session={cookie}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert b"on_time_rate" in resp.read()
    finally:
        driver.quit()


def test_operator_acknowledges_alert(dash_server: Any, browser: Any) -> None:
    import psycopg2

    base = dash_server.url
    login(browser, base, "operator")
    browser.get(base + "/alerts")
    wait_for(
        browser, lambda d: d.find_elements("css selector", "#alerts-table input[type=checkbox]"), 20
    )
    time.sleep(1.0)
    boxes = browser.find_elements("css selector", "#alerts-table input[type=checkbox]")
    boxes[0].click()
    time.sleep(0.5)
    browser.find_element("id", "alerts-ack").click()
    wait_for(browser, lambda d: "1" in _text(d, "alerts-msg"), 15)
    conn = psycopg2.connect(dash_server.db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM alerts WHERE acknowledged_by = 'operator'")
            assert (cur.fetchone() or (0,))[0] == 1
    finally:
        conn.close()
    assert severe_logs(browser) == []


def test_copy_screenshots_for_readme() -> None:
    """Small copies of the two screenshots for the README.

    They go to artifacts/ (ignored by git); with IOC_UPDATE_SCREENSHOTS=1 they replace the
    committed ones in docs/screenshots/, so a plain test run never changes tracked files.
    """
    src = {n: SCREENSHOTS / n for n in ("overview.png", "wall_1920x1080.png")}
    if not all(p.exists() for p in src.values()):
        pytest.skip("screenshots not taken in this run")
    image = pytest.importorskip("PIL.Image")  # Pillow: present here through matplotlib
    Image = image

    if os.environ.get("IOC_UPDATE_SCREENSHOTS") == "1":
        out = ROOT / "docs" / "screenshots"
    else:
        out = SCREENSHOTS / "readme"
    out.mkdir(parents=True, exist_ok=True)
    for name, path in src.items():
        with Image.open(path) as im:
            im.thumbnail((1280, 1280))
            im.convert("P", palette=Image.Palette.ADAPTIVE, colors=192).save(
                out / name, optimize=True
            )
    assert (out / "overview.png").stat().st_size < 400_000
    shutil.copystat(src["overview.png"], out / "overview.png")


# --------------------------------------------------------------------------- helpers


def _ward_codes() -> list[str]:
    from ioc.config import load_config

    return sorted(load_config(ROOT / "config").ward_codes)


def _router_body(path: str) -> dict[str, Any]:
    return {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [
            {"id": "_pages_content", "property": "children"},
            {"id": "_pages_store", "property": "data"},
        ],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": path},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "changedPropIds": ["_pages_location.pathname"],
    }


def _export_body(wards: list[str] | None) -> dict[str, Any]:
    """The /export page's Export click (dashboards/pages/export.py's job callback)."""
    outs = [
        ("export-job", "data"),
        ("export-poll", "disabled"),
        ("export-progress", "children"),
        ("export-msg", "children"),
        ("export-result", "children"),
        ("export-ready", "data"),
        ("export-go", "disabled"),
    ]
    return {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outs) + "..",
        "outputs": [{"id": i, "property": p} for i, p in outs],
        "inputs": [
            {"id": "export-go", "property": "n_clicks", "value": 1},
            {"id": "export-poll", "property": "n_intervals", "value": 0},
        ],
        "changedPropIds": ["export-go.n_clicks"],
        "state": [
            {"id": "export-kpis", "property": "value", "value": ["on_time_rate"]},
            {"id": "export-wards", "property": "value", "value": wards},
            {"id": "export-range", "property": "start_date", "value": "2026-01-01"},
            {"id": "export-range", "property": "end_date", "value": "2026-01-31"},
            {"id": "export-every", "property": "value", "value": "day"},
            {"id": "export-format", "property": "value", "value": "xlsx"},
            {"id": "export-job", "property": "data", "value": None},
        ],
    }


def test_wall_recovers_after_server_restart(dash_server: Any, tmp_path: Path) -> None:
    """Stop the server under a live wall: it flags the loss, then reloads by itself."""
    from dash_fixtures import free_port, start_server, wait_http

    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_server(dash_server.db_url, tmp_path / "var", port, log)
    base = f"http://127.0.0.1:{port}"
    driver = make_driver(size=(1920, 1080))
    try:
        wait_http(base + "/healthz")
        driver.get(base + f"/wall?token={KIOSK_TOKEN}&view=alerts")
        wait_for(driver, lambda d: d.find_element("id", "wall-clock").text != "", 20)
        proc.terminate()
        proc.wait(timeout=10)
        wait_for(
            driver,
            lambda d: "down" in d.find_element("id", "wall-conn").get_attribute("class"),
            40,
        )
        proc = start_server(dash_server.db_url, tmp_path / "var", port, log)
        wait_http(base + "/healthz")
        # the wall probes /healthz and reloads: the badge clears, content is live again
        wait_for(
            driver,
            lambda d: (
                "ok" in d.find_element("id", "wall-conn").get_attribute("class")
                and d.find_element("id", "wall-clock").text != ""
            ),
            90,
        )
        assert driver.find_elements("id", "wall-body")
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=10)
