"""/export in headless Chromium: a long export shows a progress bar that rises, then the XLSX
downloads and opens in openpyxl."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

# ruff: noqa: F811 - pytest fixtures imported from dash_fixtures are used as parameters
from dash_fixtures import (  # noqa: F401 - fixtures used by name
    dash_server,
    login,
    make_driver,
    session_cookie,
    severe_logs,
    wait_for,
)

pytestmark = pytest.mark.browser

SNAPSHOT = """
const text = document.getElementById('export-progress-text');
const bar = document.getElementById('export-bar');
return [text && text.textContent, bar && bar.getAttribute('value'), bar && bar.getAttribute('max'),
        !!(document.getElementById('export-link') || document.getElementById('export-error'))];
"""
PERCENT = re.compile(r"^(\d+) % — ([\d.]+) / ([\d.]+) dòng$")


def _int(text: str) -> int:
    return int(text.replace(".", ""))  # Vietnamese thousands separator


def test_long_export_shows_progress_then_downloads(dash_server: Any, tmp_path: Path) -> None:
    import openpyxl

    base = dash_server.url
    downloads = tmp_path / "dl"
    downloads.mkdir()
    driver = make_driver(download_dir=downloads)
    try:
        login(driver, base, "analyst")
        driver.get(base + "/export")
        wait_for(driver, lambda d: d.find_elements("id", "export-go"), 20)
        time.sleep(1.0)
        # hourly for the default 30 days, all 94 wards + the city: ~68,000 rows, hour by hour
        # (KPIs not stored per hour are computed on the fly), so it takes several polls
        hour = driver.find_element(
            "xpath", "//*[@id='export-every']//label[normalize-space()='Giờ']"
        )
        hour.click()
        t0 = time.monotonic()
        driver.find_element("id", "export-go").click()
        wait_for(driver, lambda d: d.find_elements("id", "export-bar"), 10)
        seen: list[tuple[int, int, int]] = []
        bars: list[tuple[str | None, str | None]] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            # one snapshot of the page (the poll replaces these elements under us)
            text, value, top, finished = driver.execute_script(SNAPSHOT)
            m = PERCENT.match((text or "").strip())
            if m:
                now = (int(m.group(1)), _int(m.group(2)), _int(m.group(3)))
                if not seen or seen[-1] != now:
                    seen.append(now)
                    bars.append((value, top))
            if finished:
                break
            time.sleep(0.15)
        took = time.monotonic() - t0
        assert not driver.find_elements("id", "export-error"), driver.find_element(
            "id", "export-msg"
        ).text
        assert driver.find_elements("id", "export-link"), "export did not finish"
        total = seen[-1][2]
        assert seen[-1] == (100, total, total)
        middle = [s for s in seen if 0 < s[1] < total]
        assert middle, seen  # a real progress bar: seen part-way, not only empty and full
        assert [s[1] for s in seen] == sorted(s[1] for s in seen)  # it only rises
        assert all(s[2] == total for s in seen)
        # the bar element carries the same numbers as the text
        assert all(
            v == str(s[1]) and m == str(total) for (v, m), s in zip(bars, seen, strict=True)
        ), bars
        print(f"export of {total} rows took {took:.1f} s; progress seen {len(seen)} times")

        files = wait_for(
            driver,
            lambda d: [p for p in downloads.glob("*.xlsx") if p.stat().st_size > 0] or False,
            60,
        )
        time.sleep(0.5)
        assert files[0].name.endswith("_hour.xlsx")
        wb = openpyxl.load_workbook(files[0], read_only=True)
        try:
            rows = list(wb.worksheets[-1].iter_rows(values_only=True))
        finally:
            wb.close()
        assert len(rows) == 1 + total
        assert severe_logs(driver) == []
        # the link on the page is the owner's; with the session cookie it downloads again
        href = driver.find_element("id", "export-link").get_attribute("href")
        req = urllib.request.Request(
            href, headers={"Cookie": f"ioc_session={session_cookie(driver)}"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.headers["Content-Type"].startswith(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
            assert resp.read() == files[0].read_bytes()
        # and not without it
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(href, timeout=10)
        assert exc.value.code == 401
        exc.value.close()
        # the finished export is listed on the page after a reload
        driver.get(base + "/export")
        wait_for(driver, lambda d: d.find_elements("css selector", "#export-recent a"), 20)
    finally:
        driver.quit()
