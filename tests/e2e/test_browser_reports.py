"""/reports and the public /track page in headless Chromium against ``ioc serve`` on real
PostgreSQL, desktop and phone-sized; screenshots in artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# ruff: noqa: F811 - pytest fixtures imported from dash_fixtures are used as parameters
from dash_fixtures import (  # noqa: F401 - fixtures used by name
    SCREENSHOTS,
    Server,
    browser,
    external_requests,
    login,
    make_driver,
    served,
    severe_logs,
    wait_for,
)

from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.store import store_events
from ioc.config import Config
from ioc.db import connect

pytestmark = pytest.mark.browser
PHONE = "0905 777 888"


@pytest.fixture(scope="module")
def site(
    pg_server_url: str, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("rep")
    with served(pg_server_url, config, tmp, workers=1, days=2, hourly_hours=2) as server:
        rules = Rules.from_config(config)
        codes = sorted(config.ward_codes)
        w = config.ward(codes[0])
        assert w is not None
        now = dt.datetime.now(dt.UTC)
        raw = []
        cats = ["flooding", "traffic", "lighting", "waste", "urban_order", "environment"]
        for i in range(18):
            ward = codes[i % 3]
            t0 = now - dt.timedelta(hours=5 + 9 * i)
            rid = f"PA-{t0:%Y%m%d}-{i:04d}"
            raw.append((ward, {"id": rid, "event": "received", "ts": t0.isoformat(),
                               "category": cats[i % len(cats)], "channel": "hotline_1022",
                               "summary": f"Phản ánh số {i}", "contact": PHONE,
                               "lat": w.lat + 0.004 * (i % 5),
                               "lon": w.lon - 0.003 * (i % 4)}))  # fmt: skip
            if i % 3 == 1:
                raw.append((ward, {"id": rid, "event": "assigned",
                                   "ts": (t0 + dt.timedelta(minutes=30)).isoformat()}))  # fmt: skip
            if i % 3 == 2:
                raw.append((ward, {"id": rid, "event": "resolved", "result": "Đã khắc phục",
                                   "ts": (t0 + dt.timedelta(hours=2)).isoformat()}))  # fmt: skip
        conn = connect(server.db_url)
        try:
            with conn.cursor() as cur:
                store_events(cur, [event_from_mapping(d, wd, rules) for wd, d in raw], rules,
                             door="api")  # fmt: skip
            conn.commit()
        finally:
            conn.close()
        server.facts["track_id"] = raw[-1][1]["id"]
        server.facts["ward"] = codes[0]
        yield server


def _idle(driver: Any) -> None:
    wait_for(
        driver,
        lambda d: (
            d.execute_script(
                "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length"
            )
            == 0
        ),
        30,
    )


def _shot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path


def test_track_on_a_phone(site: Server) -> None:
    driver = make_driver(size=(390, 844))
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
        )
        driver.get(site.url + "/track")  # no sign-in
        assert "/login" not in driver.current_url
        assert driver.find_element("tag name", "html").get_attribute("lang") == "vi"
        box = driver.find_element("id", "track-id")
        box.send_keys(site.facts["track_id"])
        driver.find_element("id", "track-submit").click()
        wait_for(driver, lambda d: d.find_elements("id", "track-result"), 15)
        status = driver.find_element("id", "track-status").text
        assert status in ("Đã xử lý xong", "Đã tiếp nhận", "Đã chuyển đơn vị xử lý")
        assert driver.find_element("id", "track-unit").text
        body = driver.find_element("tag name", "body").text
        assert PHONE not in body and "Phản ánh số" not in body  # no personal data, no summary
        # fits the phone: no sideways scrolling
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
        _shot(driver, "track-phone.png")
        driver.find_element("id", "track-lang").click()
        wait_for(driver, lambda d: "Report code" in d.find_element("tag name", "body").text, 10)
        _shot(driver, "track-phone-en.png")
        driver.get(site.url + "/track?id=NOPE-0000")
        assert driver.find_element("id", "track-error").text
        assert severe_logs(driver) == [] or all("404" in m for m in severe_logs(driver))
        assert external_requests(driver, site.url) == []
    finally:
        driver.quit()


def test_reports_page_desktop_and_phone(site: Server, browser: Any) -> None:
    login(browser, site.url, "admin")
    browser.get(site.url + "/reports")
    wait_for(browser, lambda d: d.find_elements("css selector", "#rep-table td"), 30)
    _idle(browser)
    count = browser.find_element("id", "rep-count").text
    assert count.startswith("18 ")
    text = browser.find_element("id", "rep-table").text
    assert PHONE in text  # admins see the contact
    assert "Quá hạn" in text or "Trong hạn" in text
    _shot(browser, "reports-admin.png")
    assert severe_logs(browser) == []
    assert external_requests(browser, site.url) == []
    # the ward page's report section with pins
    browser.get(site.url + f"/ward/{site.facts['ward']}")
    wait_for(browser, lambda d: d.find_elements("id", "ward-rep-map"), 30)
    _idle(browser)
    browser.execute_script(
        "document.getElementById('ward-reports').scrollIntoView({block: 'start'})"
    )
    _shot(browser, "ward-reports.png")
    # a ward leader: only their ward, contact masked; phone-sized
    browser.get(site.url + "/logout")
    login(browser, site.url, "operator")
    browser.get(site.url + "/reports")
    wait_for(browser, lambda d: d.find_elements("css selector", "#rep-table td"), 30)
    _idle(browser)
    text = browser.find_element("id", "rep-table").text
    assert PHONE not in text and "09********88" in text
    browser.get(site.url + "/logout")
    login(browser, site.url, "ward_leader")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
    )
    browser.get(site.url + "/reports")
    wait_for(browser, lambda d: d.find_elements("css selector", "#rep-table td"), 30)
    _idle(browser)
    assert browser.find_element("id", "rep-count").text.startswith("6 ")
    _shot(browser, "reports-phone-ward-leader.png")
