"""The wall does not accumulate state in the browser from refresh to refresh.

Counted, not timed, and with the browser's public interfaces only (no Dash internals): a script
the page runs before Dash (DevTools ``Page.addScriptToEvaluateOnNewDocument``) counts the
refreshes the server answered (``fetch`` calls to Dash's callback endpoint a tick of the
interval triggered) and the page loads
(``sessionStorage``). Dash's undo history grows by one entry per refresh and is never trimmed
(plotly/dash#727, see dashboards/pages/wall.py): the wall bounds it by reloading its page after
``?reload=`` seconds of refreshes. bench/wall_memory.py measures the heap over days' worth of
view changes.
"""

from __future__ import annotations

from typing import Any

import pytest

# ruff: noqa: F811 - pytest fixtures imported from dash_fixtures are used as parameters
from dash_fixtures import (  # noqa: F401 - fixtures used by name
    KIOSK_TOKEN,
    dash_server,
    make_driver,
    severe_logs,
    wait_for,
)

pytestmark = pytest.mark.browser

# Before any script of the page: count this page's answered refreshes (callback requests a tick
# of the interval triggered) and the page loads of the tab; keep the largest count a page
# reached before it was replaced.
COUNTER_JS = """
window.__iocRefreshes = 0;
window.__iocQuiet = 0;  // refreshes answered without a new body (the view is unchanged)
var loads = Number(sessionStorage.getItem('iocLoads') || 0) + 1;
sessionStorage.setItem('iocLoads', String(loads));
var plain = window.fetch.bind(window);
var tick = function(opts) {  // a callback request the interval's tick triggered
    try {
        var ids = JSON.parse(opts.body).changedPropIds || [];
        return ids.indexOf('wall-interval.n_intervals') >= 0;
    } catch (e) { return false; }
};
window.fetch = function(url, opts) {
    var p = plain(url, opts);
    if (String(url).indexOf('_dash-update-component') >= 0 && tick(opts)) {
        p.then(function(r) {
            if (r.ok) {
                r.clone().text().then(function(t) {
                    if (t.indexOf('"wall-body"') < 0) { window.__iocQuiet += 1; }
                });
                window.__iocRefreshes += 1;
                var most = Number(sessionStorage.getItem('iocMost') || 0);
                if (window.__iocRefreshes > most) {
                    sessionStorage.setItem('iocMost', String(window.__iocRefreshes));
                }
            }
        });
    }
    return p;
};
"""


def _driver(size: tuple[int, int] = (1920, 1080)) -> Any:
    driver = make_driver(size=size)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNTER_JS})
    return driver


def _refreshes(driver: Any) -> int:
    return int(driver.execute_script("return window.__iocRefreshes || 0") or 0)


def _quiet(driver: Any) -> int:
    return int(driver.execute_script("return window.__iocQuiet || 0") or 0)


def _loads(driver: Any) -> int:
    return int(driver.execute_script("return Number(sessionStorage.getItem('iocLoads') || 0)"))


def _map_drawn(driver: Any) -> bool:
    n = driver.execute_script(
        "var t=document.querySelector('#wall-map-graph .trace.choropleth');"
        "return t ? t.querySelectorAll('path').length : 0"
    )
    return bool(n == 94)


def _heap_mb(driver: Any) -> float:
    """The page's JS heap after a forced garbage collection, in MB."""
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    return float(driver.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"]) / 1e6


def test_wall_reloads_itself_so_its_memory_stays_bounded(dash_server: Any) -> None:
    """A pinned wall refreshing every 0.5 s with ``reload=5`` reloads its page after about 10
    refreshes, keeps its view (the URL), and its heap early in each page's life does not grow
    from page to page."""
    driver = _driver()
    try:
        url = dash_server.url + f"/wall?token={KIOSK_TOKEN}&view=alerts&refresh=0.5&reload=5"
        driver.get(url)
        heaps: dict[int, float] = {}
        titles: list[str] = []

        def each_page(d: Any) -> bool:
            """Once per page, after its 4th refresh: the heap and the view's title."""
            loads, n, title = d.execute_script(
                "var e = document.getElementById('wall-view-name');"
                "return [Number(sessionStorage.getItem('iocLoads') || 0),"
                " window.__iocRefreshes || 0, e ? e.textContent : ''];"
            )
            if n >= 4 and loads not in heaps:
                heaps[loads] = _heap_mb(d)
                titles.append(title)
            return len(heaps) >= 4

        wait_for(driver, each_page, 180)
        assert _loads(driver) >= 4
        assert driver.current_url == url
        # the view is kept across reloads (a page read early may not show its title yet)
        shown = [t for t in titles if t]
        assert set(shown) <= {"Cảnh báo", "Alerts"} and len(shown) >= 2, titles
        wait_for(
            driver,
            lambda d: d.find_element("id", "wall-view-name").text in ("Cảnh báo", "Alerts"),
            30,
        )
        most = int(driver.execute_script("return Number(sessionStorage.getItem('iocMost'))"))
        # 5 s of 0.5 s refreshes (fewer answered when the machine is slow); without the reload
        # one page would make them all
        assert 5 <= most <= 15, f"a page made {most} refreshes before it reloaded"
        first, last = heaps[min(heaps)], heaps[max(heaps)]
        assert last <= first + 1.0, f"heap MB per page load: {heaps}"
        assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_wall_graph_is_not_rebuilt_when_nothing_changed(dash_server: Any) -> None:
    """A refresh with the same view and data leaves the graph alone: same element, no redraw."""
    driver = _driver()
    try:
        driver.get(dash_server.url + f"/wall?token={KIOSK_TOKEN}&view=map&refresh=0.5")
        wait_for(driver, _map_drawn, 30)
        # the first ticks' requests leave before the first answer: they all get the body, and
        # Plotly draws the last one about a second later; settled once the server has answered
        # "nothing new" for 3 s
        wait_for(driver, lambda d: _quiet(d) >= 6, 60)
        driver.execute_script(
            "var gd = document.querySelector('#wall-map-graph .js-plotly-plot');"
            "gd.__iocMark = true; window.__iocDraws = 0;"
            "gd.on('plotly_afterplot', function() { window.__iocDraws += 1; });"
        )
        start = _refreshes(driver)
        wait_for(driver, lambda d: _refreshes(d) >= start + 10, 60)
        same, draws = driver.execute_script(
            "var gd = document.querySelector('#wall-map-graph .js-plotly-plot');"
            "return [!!(gd && gd.__iocMark), window.__iocDraws];"
        )
        assert same, "the map graph was mounted again"
        assert draws == 0, f"the map was redrawn {draws} times over 10 unchanged refreshes"
        assert _loads(driver) == 1, "the wall reloaded before its default 6 hours"
        assert _map_drawn(driver)
        assert severe_logs(driver) == []
    finally:
        driver.quit()
