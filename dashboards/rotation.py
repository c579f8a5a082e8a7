"""Which wall view is showing: pinned by URL, else rotating on a fixed period (pure)."""

from __future__ import annotations

from typing import Any

VIEWS = ("map", "applications", "environment", "cameras", "alerts", "incidents")
# The wall reloads its page after this long (at the next return to the first view), which
# starts Dash's renderer afresh: its undo history grows by one entry per refresh and is never
# trimmed (plotly/dash#727), see pages/wall.py. ``?reload=SECONDS`` overrides it.
RELOAD_AFTER_S = 6 * 3600.0
RELOAD_MAX_S = 7 * 86_400.0


def current_view(config: dict[str, Any] | None, now: float) -> str:
    """The pinned view, or the one the rotation has reached (the same on every wall)."""
    cfg = config or {}
    if cfg.get("view") in VIEWS:
        return str(cfg["view"])
    period = float(cfg.get("period") or 20.0)
    return VIEWS[int(now // period) % len(VIEWS)]


def reload_due(
    config: dict[str, Any] | None, n_intervals: int | None, shown: str | None, now: float
) -> bool:
    """Whether the wall should reload its page now instead of refreshing.

    Once the page has run ``config["reload"]`` seconds (counted as ``n_intervals`` refreshes of
    ``config["refresh"]`` seconds since it loaded): a pinned view reloads at once; a rotating
    wall waits until the rotation is about to return to the first view (``shown``, the
    signature of what the browser shows, starts with another view), so that the reload takes
    the place of a view change and the page comes back on the first view.
    """
    cfg = config or {}
    reload_s, refresh_s = cfg.get("reload"), cfg.get("refresh")
    if not n_intervals or not reload_s or not refresh_s:
        return False
    if n_intervals * float(refresh_s) < float(reload_s):
        return False
    if cfg.get("view") in VIEWS:
        return True
    first = VIEWS[0]
    showing_other = shown is not None and not shown.startswith(first + ":")
    return showing_other and current_view(cfg, now) == first


def valid_config(config: Any) -> bool:
    """The wall-config store as :func:`layout` writes it (or empty)."""
    if config is None:
        return True
    if not isinstance(config, dict):
        return False
    view = config.get("view")
    if view is not None and view not in VIEWS:
        return False
    limits = {"period": (0.5, 86_400.0), "refresh": (0.5, 10.0), "reload": (5.0, RELOAD_MAX_S)}
    for key, (lo, hi) in limits.items():
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
            return False
    return True
