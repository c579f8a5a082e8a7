"""Issue 14 in Chromium against ``ioc serve``: the pages render under the Content-Security-Policy
with no violation in the console, a ward leader's wall shows only their ward, the admin page
works, and signing out (a POST from the page) ends the session on the server."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest

# ruff: noqa: F811 - the pytest fixtures imported from dash_fixtures are used as parameters
from dash_fixtures import (  # noqa: F401 - fixtures used by name
    browser,
    dash_server,
    login,
    post_json,
    session_cookie,
    wait_for,
)

pytestmark = pytest.mark.browser


def _idle(driver: Any) -> bool:
    return bool(
        driver.execute_script(
            "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length === 0"
        )
    )


def _csp_problems(driver: Any) -> list[str]:
    return [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or e["level"] == "SEVERE"
    ]


def test_pages_render_under_the_csp(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    with urllib.request.urlopen(base + "/login", timeout=10) as resp:
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    login(browser, base, "admin")
    own = dash_server.facts["grants"]["ward_leader"][0]
    pages = {
        "/": "ov-map",
        f"/ward/{own}": "ward-overdue",
        "/alerts": "alerts-table",
        "/wall?view=map": "wall-map-graph",
        "/wall?view=cameras": "wall-body",
    }
    for path, element in pages.items():
        browser.get(base + path)
        wait_for(browser, lambda d, e=element: d.find_elements("id", e), 30)
        wait_for(browser, _idle, 30)
        time.sleep(1.0)
        assert _csp_problems(browser) == [], path
    # the map is drawn (Plotly works under the policy)
    browser.get(base + "/wall?view=map")
    wait_for(browser, lambda d: d.find_elements("css selector", ".trace.choropleth path"), 30)
    assert _csp_problems(browser) == []
    browser.get(base + "/admin/users")
    wait_for(browser, lambda d: d.find_elements("id", "add-user"), 15)
    assert "ward_leader" in browser.page_source and _csp_problems(browser) == []


def test_leader_wall_and_sign_out(dash_server: Any, browser: Any) -> None:
    base = dash_server.url
    own = dash_server.facts["grants"]["ward_leader"][0]
    login(browser, base, "ward_leader")
    browser.get(base + "/wall?view=map")
    wait_for(browser, lambda d: d.find_elements("css selector", ".trace.choropleth path"), 30)
    wait_for(browser, _idle, 30)
    # the coloured trace holds the leader's ward only
    locations = browser.execute_script(
        "var g = document.getElementById('wall-map-graph');"
        "var p = g && (g.querySelector('.js-plotly-plot') || g);"
        "return p && p.data ? p.data.slice(1).filter(t => t.locations)"
        ".map(t => Array.from(t.locations)) : null;"
    )
    assert locations is not None and all(set(loc) <= {own} for loc in locations), locations
    # the wall's flagged names (worst, alerting, past red) are of the leader's wards only; the
    # other traces without locations are the names of the wards (geography, at 4K every one)
    flagged = browser.execute_script(
        "var p = document.querySelector('#wall-map-graph .js-plotly-plot');"
        "return p.data.filter(t => t.name === 'flagged').map(t => Array.from(t.text || []));"
    )
    for texts in flagged:
        assert len(texts) <= len(dash_server.facts["grants"]["ward_leader"]), texts
    cookie = session_cookie(browser)
    # the page's sign-out link leads to a form that posts; afterwards the cookie is dead
    browser.get(base + f"/ward/{own}")
    wait_for(browser, lambda d: d.find_elements("id", "nav-logout"), 20)
    browser.find_element("id", "nav-logout").click()
    wait_for(browser, lambda d: d.find_elements("id", "logout-submit"), 15)
    browser.find_element("id", "logout-submit").click()
    wait_for(browser, lambda d: "/login" in d.current_url, 15)
    status, _ = post_json(
        base + "/_dash-update-component",
        {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": []},
        cookie,
    )
    assert status == 401
    assert _csp_problems(browser) == []


def test_parallel_wrong_passwords_over_http_are_counted_atomically(dash_server: Any) -> None:
    """24 wrong passwords at once against `ioc serve --workers 2`: exactly the limit is
    checked (401), the rest wait (429 with Retry-After); the user's right password from
    another address would still work (see test_security_accounts)."""
    import threading
    import urllib.error
    import urllib.parse

    from ioc.auth import MAX_FAILURES_PER_NAME
    from ioc.db import connect
    from ioc.users import add_user

    conn = connect(dash_server.db_url)
    try:
        add_user(conn, "throttle-target", "throttle-target-pass-1", "operator", replace=True)
    finally:
        conn.close()
    base = dash_server.url
    start = threading.Barrier(24)
    codes: list[int] = []

    def attempt() -> None:
        form = urllib.parse.urlencode({"username": "throttle-target", "password": "wrong-1234"})
        req = urllib.request.Request(base + "/login", data=form.encode(), method="POST")
        start.wait()
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                codes.append(resp.status)
        except urllib.error.HTTPError as exc:
            codes.append(exc.code)
            if exc.code == 429:
                assert int(exc.headers["Retry-After"]) >= 1
            exc.close()

    threads = [threading.Thread(target=attempt) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert codes.count(401) == MAX_FAILURES_PER_NAME, codes
    assert codes.count(429) == 24 - MAX_FAILURES_PER_NAME, codes
