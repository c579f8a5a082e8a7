"""The wall does not accumulate state in the browser from refresh to refresh.

Counted, not timed: the refreshes are counted in Dash's store (the interval's n_intervals), and
each check compares what the page holds after many refreshes with what a bounded page would
hold. bench/wall_memory.py measures the heap over a day's worth of view changes.
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

from dashboards.rotation import HISTORY_KEEP

pytestmark = pytest.mark.browser

REFRESHES_JS = """
try {
    var st = window.store.getState();
    var path = st.paths.strs['wall-interval'];
    var node = st.layout;
    for (var i = 0; i < path.length; i++) { node = node[path[i]]; }
    return node.props.n_intervals || 0;
} catch (e) { return 0; }
"""


def _refreshes(driver: Any) -> int:
    return int(driver.execute_script(REFRESHES_JS) or 0)


def _map_drawn(driver: Any) -> bool:
    n = driver.execute_script(
        "var t=document.querySelector('#wall-map-graph .trace.choropleth');"
        "return t ? t.querySelectorAll('path').length : 0"
    )
    return bool(n == 94)


def test_wall_undo_history_stays_short(dash_server: Any) -> None:
    """Dash records each interval tick in its undo history; the wall keeps it short."""
    driver = make_driver(size=(1920, 1080))
    try:
        driver.get(dash_server.url + f"/wall?token={KIOSK_TOKEN}&view=alerts&refresh=0.5")
        wait_for(driver, lambda d: _refreshes(d) >= HISTORY_KEEP + 25, 90)
        past = driver.execute_script("return window.store.getState().history.past.length")
        assert past <= HISTORY_KEEP + 1, past
        assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_wall_graph_is_not_rebuilt_when_nothing_changed(dash_server: Any) -> None:
    """A refresh with the same view and data leaves the graph alone: same element, no redraw."""
    driver = make_driver(size=(1920, 1080))
    try:
        driver.get(dash_server.url + f"/wall?token={KIOSK_TOKEN}&view=map&refresh=0.5")
        wait_for(driver, _map_drawn, 30)
        wait_for(driver, lambda d: _refreshes(d) >= 3, 30)
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
        assert _map_drawn(driver)
        assert severe_logs(driver) == []
    finally:
        driver.quit()
