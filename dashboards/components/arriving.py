"""'Data still arriving': what a page says while the demo's history is being loaded or a KPI
has never been computed, and the request that gets it computed now (not at the scheduler's
next tick)."""

from __future__ import annotations

from typing import Any

from dash import html

from dashboards.components.common import cached, latest_kpis
from dashboards.i18n import t
from dashboards.state import state
from ioc import jobrequests

FAST_MS = 5_000  # how often a page refreshes while data is arriving


def never_computed() -> list[str]:
    """Configured KPIs with no daily value at all yet."""
    latest = latest_kpis("day")
    have = set(latest["kpi"]) if not latest.empty else set()
    return [name for name in state().kpis if name not in have]


def arriving_state() -> str | None:
    """'backfill' (history still being loaded), 'computing' (a KPI never computed: a run is
    asked for), or None when the page's data is all there."""
    missing = never_computed()

    def look(conn: Any) -> tuple[bool, bool]:
        if missing:  # at most once a minute per job, whichever page or process asks
            jobrequests.request_run(
                conn,
                "kpis",
                f"page: {missing[0]} never computed",
                min_gap_s=jobrequests.MIN_GAP_S,
            )
        return jobrequests.backfill_running(conn), jobrequests.pending(conn, "kpis") is not None

    backfill, asked = cached(("arriving", bool(missing)), look)
    if backfill:
        return "backfill"
    if missing or asked:
        return "computing"
    return None


def arriving_notice(element_id: str, lang: str) -> tuple[Any, bool]:
    """(the notice, or '' when nothing is arriving; whether the page should refresh fast)."""
    what = arriving_state()
    if what is None:
        return "", False
    return (
        html.Div(
            t(f"arriving_{what}", lang),
            className="arriving",
            id=f"{element_id}-note",
            role="status",
        ),
        True,
    )
