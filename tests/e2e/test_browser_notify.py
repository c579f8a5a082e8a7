"""Notification pages in headless Chromium: a ward leader's preferences, the admin's dead
letters (send again), and the acknowledge link from a message (screenshots of each)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest

# ruff: noqa: F811 - fixtures imported from dash_fixtures are used as parameters
from dash_fixtures import (  # noqa: F401 - fixtures used by name
    SCREENSHOTS,
    browser,
    dash_server,
    login,
    severe_logs,
    start_server,
    stop_server,
    wait_for,
    wait_http,
)
from selenium.webdriver.common.keys import Keys

from ioc.demo.embedded import free_port
from ioc.notify import links

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SERVER_KEY = "test-secret-key-for-sessions-0123456789"  # dash_fixtures' IOC_SECRET_KEY


def _sql(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _text(driver: Any, element_id: str) -> str:
    found = driver.find_elements("id", element_id)
    return str(found[0].text) if found else ""


def test_ward_leader_sets_preferences(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    db = dash_server.db_url
    _sql(db, "UPDATE users SET email = 'leader@example.vn' WHERE name = 'ward_leader'")
    login(browser, base, "ward_leader")
    browser.get(base + "/settings/notifications")
    wait_for(browser, lambda d: "leader@example.vn" in _text(d, "nprefs-email"), 20)
    time.sleep(0.5)
    # the highest severity only, no scheduled reports, own quiet hours, a bad webhook first
    browser.find_element("css selector", "#nprefs-sev input[value='critical']").click()
    browser.find_element("css selector", "#nprefs-muted input[value='scheduled_report']").click()
    browser.find_element("id", "nprefs-qs").send_keys("22:00")
    browser.find_element("id", "nprefs-qe").send_keys("06:00")
    browser.find_element("id", "nprefs-hook").send_keys("zalo-oa")
    browser.find_element("id", "nprefs-save").click()
    wait_for(browser, lambda d: "Webhook" in _text(d, "nprefs-msg"), 15)
    assert _sql(db, "SELECT count(*) FROM notification_prefs") == [(0,)]
    hook = browser.find_element("id", "nprefs-hook")
    hook.send_keys(Keys.CONTROL, "a")  # (clear() does not reach React's state)
    hook.send_keys(Keys.BACKSPACE)
    hook.send_keys("https://zalo.example.vn/hook")
    browser.find_element("id", "nprefs-save").click()
    wait_for(browser, lambda d: _text(d, "nprefs-msg") == "Đã lưu", 15)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "notify_prefs.png"))
    got = _sql(
        db,
        "SELECT user_name, min_severity, muted_kinds, quiet_start::text, quiet_end::text,"
        " webhook_url FROM notification_prefs",
    )
    assert got == [
        (
            "ward_leader",
            "critical",
            ["scheduled_report"],
            "22:00:00",
            "06:00:00",
            "https://zalo.example.vn/hook",
        ),
    ]
    # the page shows it again after a reload
    browser.get(base + "/settings/notifications")
    wait_for(browser, lambda d: d.find_element("id", "nprefs-hook").get_attribute("value"), 20)
    assert browser.find_element("id", "nprefs-qs").get_attribute("value") == "22:00"
    # a test message to the saved channels, at once despite the quiet hours; once a minute
    browser.find_element("id", "nprefs-test").click()
    wait_for(browser, lambda d: "e-mail, webhook" in _text(d, "nprefs-test-msg"), 15)
    queued = "SELECT channel, recipient FROM notifications WHERE kind = 'test' ORDER BY channel"
    assert _sql(db, queued) == [
        ("email", "leader@example.vn"),
        ("webhook", "https://zalo.example.vn/hook"),
    ]
    browser.find_element("id", "nprefs-test").click()
    wait_for(browser, lambda d: "trong phút này" in _text(d, "nprefs-test-msg"), 15)
    assert len(_sql(db, queued)) == 2
    # the user's own recent messages, and nobody else's
    _sql(
        db,
        "INSERT INTO notifications (idem_key, kind, channel, recipient, user_name, subject,"
        " body_text, status) VALUES (%s, 'alert_opened', 'email', 'op@example.vn', 'operator',"
        " '[IOC] for the operator only', 'x', 'sent')",
        (f"other-{time.time_ns()}",),
    )
    wait_for(browser, lambda d: _text(d, "nprefs-recent").count("Thư thử từ IOC") == 2, 20)
    recent = _text(browser, "nprefs-recent")
    assert "chờ gửi" in recent and "zalo.example.vn" in recent
    assert "for the operator only" not in recent and _text(browser, "nprefs-recent-empty") == ""
    # the admin page is not for a ward leader
    browser.get(base + "/admin/notifications")
    wait_for(
        browser,
        lambda d: d.find_elements("id", "refused") or "403" in d.title or "quyền" in d.page_source,
        15,
    )
    assert not browser.find_elements("id", "ndead-table")
    assert severe_logs(browser) == [] or all("403" in m for m in severe_logs(browser))


def test_admin_sends_dead_letters_again(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    db = dash_server.db_url
    login(browser, base, "admin")
    if _sql(db, "SELECT count(*) FROM notifications WHERE status = 'dead'") == [(0,)]:
        # no dead letter yet: the page says so and offers nothing to send again
        browser.get(base + "/admin/notifications")
        wait_for(browser, lambda d: "Không có thông báo lỗi" in _text(d, "ndead-empty"), 20)
        assert not browser.find_element("id", "ndead-retry").is_enabled()
    for i in range(3):
        _sql(
            db,
            "INSERT INTO notifications (idem_key, kind, channel, recipient, subject, body_text,"
            " status, attempts, last_error, severity) VALUES (%s, 'alert_opened', 'email', %s,"
            " %s, 'x', 'dead', 8, 'SMTP 550: no such mailbox', 'warning')",
            (f"dead-{i}-{time.time_ns()}", f"bad{i}@example.vn", f"[IOC] Cảnh báo {i}"),
        )
    browser.get(base + "/admin/notifications")
    wait_for(
        browser, lambda d: d.find_elements("css selector", "#ndead-table input[type=checkbox]"), 20
    )
    wait_for(browser, lambda d: "lỗi 3" in _text(d, "ndead-counts"), 15)
    time.sleep(0.5)
    assert "bad2@example.vn" in _text(browser, "ndead-table")
    assert _text(browser, "ndead-empty") == ""
    assert "bad2@example.vn" in _text(browser, "ndead-recent")  # every state, newest first
    assert browser.find_element("id", "ndead-retry").is_enabled()
    assert "SMTP 550" in _text(browser, "ndead-table")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "notify_dead_letters.png"))
    browser.find_elements("css selector", "#ndead-table input[type=checkbox]")[0].click()
    time.sleep(0.3)
    browser.find_element("id", "ndead-retry").click()
    wait_for(browser, lambda d: "1" in _text(d, "ndead-msg"), 15)
    got = _sql(
        db,
        "SELECT status, attempts FROM notifications WHERE recipient LIKE 'bad%%'"
        " ORDER BY recipient",
    )
    assert sorted(got) == [("dead", 8), ("dead", 8), ("pending", 0)]
    wait_for(browser, lambda d: "lỗi 2" in _text(d, "ndead-counts"), 15)
    assert severe_logs(browser) == []


def test_acknowledge_link_in_the_browser(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    db = dash_server.db_url
    ward = dash_server.facts["grants"]["ward_leader"][0]
    (aid,) = _sql(
        db,
        "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, value,"
        " opened_at) VALUES ('water_level_high', 'wl-browser', %s, 'critical', 'open',"
        " 'Mực nước vượt ngưỡng ngập: wl-browser', 63.5, %s) RETURNING id",
        (ward, dt.datetime.now(dt.UTC)),
    )[0]
    token = links.make_token(
        SERVER_KEY,
        notification_id=10**9 + int(aid),
        user="ward_leader",
        ref_kind="alert",
        ref_id=str(aid),
    )
    browser.get(f"{base}/notify/ack/{token}")  # no sign-in
    wait_for(browser, lambda d: d.find_elements("id", "ack-confirm"), 15)
    assert "63,5" in browser.page_source
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "notify_ack.png"))
    browser.find_element("id", "ack-confirm").click()
    wait_for(
        browser, lambda d: d.find_elements("css selector", "#ack-result[data-reason='ok']"), 15
    )
    assert _sql(db, "SELECT state, acknowledged_by FROM alerts WHERE id = %s", (aid,)) == [
        ("acknowledged", "ward_leader")
    ]
    browser.get(f"{base}/notify/ack/{token}")
    wait_for(
        browser, lambda d: d.find_elements("css selector", "#ack-result[data-reason='used']"), 15
    )


def test_the_demo_links_its_mail_inbox_from_the_menu_bar(
    dash_server: Any, browser: Any, tmp_path: Path
) -> None:
    """`ioc demo` hands its mail catcher's inbox to the dashboard (IOC_DEMO_INBOX_URL): every
    page's menu bar links to it; a dashboard outside the demo shows no such link."""
    inbox = "http://127.0.0.1:8025/"
    port = free_port()
    proc = start_server(
        dash_server.db_url,
        tmp_path / "var",
        port,
        tmp_path / "serve.log",
        workers=1,
        threads=2,
        env_extra={"IOC_DEMO_INBOX_URL": inbox},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        login(browser, base, "ward_leader")
        for path in ("/", "/settings/notifications"):
            browser.get(base + path)
            link = wait_for(browser, lambda d: d.find_elements("id", "nav-inbox"), 20)[0]
            assert link.get_attribute("href") == inbox
            assert link.text == "Hộp thư demo"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "demo_inbox_link.png"))
        browser.get(base + "/alerts?lang=en")
        wait_for(browser, lambda d: "Demo inbox" in _text(d, "nav-inbox"), 20)
    finally:
        stop_server(proc)
    login(browser, dash_server.url, "ward_leader")
    browser.get(dash_server.url + "/settings/notifications")
    wait_for(browser, lambda d: d.find_elements("id", "nprefs-email"), 20)
    assert browser.find_elements("id", "nav-inbox") == []


def test_alerts_page_shows_how_far_an_alert_has_escalated(dash_server: Any, browser: Any) -> None:
    """The escalation chain's progress (notifications.yaml levels) beside each alert."""
    base = dash_server.url
    db = dash_server.db_url
    ward = dash_server.facts["grants"]["ward_leader"][0]
    opened = dt.datetime.now(dt.UTC)  # the newest critical alert: on the first page
    (aid,) = _sql(
        db,
        "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, value,"
        " opened_at) VALUES ('water_level_high', 'wl-escalated', %s, 'critical', 'open',"
        " 'Mực nước vượt ngưỡng ngập: wl-escalated', 71.0, %s) RETURNING id",
        (ward, opened),
    )[0]
    _sql(
        db,
        "INSERT INTO notification_escalations (ref_kind, ref_id, ward_code, severity,"
        " started_at, level, reminders, last_sent_at, next_at) VALUES ('alert', %s, %s,"
        " 'critical', %s, 2, 3, now(), now() + interval '10 minutes')",
        (str(aid), ward, opened),
    )
    login(browser, base, "admin")
    browser.get(base + "/alerts")
    wait_for(browser, lambda d: "wl-escalated" in _text(d, "alerts-table"), 20)
    row = next(
        tr.text
        for tr in browser.find_elements("css selector", "#alerts-table tr")
        if "wl-escalated" in tr.text
    )
    assert "2. Trực ban thành phố · nhắc 3 lần" in row
    assert severe_logs(browser) == []
