"""Which wall view is showing: pinned by URL, else rotating on a fixed period (pure)."""

from __future__ import annotations

from typing import Any

VIEWS = ("map", "applications", "environment", "cameras", "alerts", "incidents")
# entries of Dash's undo history the wall keeps in the browser (see pages/wall.py)
HISTORY_KEEP = 20


def current_view(config: dict[str, Any] | None, now: float) -> str:
    """The pinned view, or the one the rotation has reached (the same on every wall)."""
    cfg = config or {}
    if cfg.get("view") in VIEWS:
        return str(cfg["view"])
    period = float(cfg.get("period") or 20.0)
    return VIEWS[int(now // period) % len(VIEWS)]
