"""When the wall reloads its page (the bound on Dash's undo history, see dashboards/pages/wall.py):
after its reload time, at the return to the first view of the rotation, a pinned view at once."""

from __future__ import annotations

from dashboards.rotation import VIEWS, reload_due, valid_config

ROTATING = {"view": None, "period": 10.0, "refresh": 5.0, "reload": 3600.0}
FIRST = 60.0 * len(VIEWS) * 10  # a time at which the rotation shows VIEWS[0]


def test_not_before_the_reload_time() -> None:
    shown = f"{VIEWS[-1]}:abc"
    assert not reload_due(ROTATING, 719, shown, FIRST)  # 719 × 5 s < 1 h
    assert reload_due(ROTATING, 720, shown, FIRST)
    assert not reload_due(ROTATING, None, shown, FIRST)
    assert not reload_due({**ROTATING, "reload": None}, 10**6, shown, FIRST)


def test_a_rotating_wall_waits_for_the_return_to_the_first_view() -> None:
    n = 10_000
    assert reload_due(ROTATING, n, f"{VIEWS[-1]}:abc", FIRST)
    # already showing the first view (the page loaded during it): wait for the next return
    assert not reload_due(ROTATING, n, f"{VIEWS[0]}:abc", FIRST)
    # nothing shown yet
    assert not reload_due(ROTATING, n, None, FIRST)
    # any other view
    for k in range(1, len(VIEWS)):
        assert not reload_due(ROTATING, n, f"{VIEWS[k - 1]}:abc", FIRST + 10 * k)


def test_a_pinned_wall_reloads_at_once() -> None:
    pinned = {**ROTATING, "view": "alerts"}
    assert reload_due(pinned, 720, "alerts:abc", FIRST + 30)
    assert not reload_due(pinned, 719, "alerts:abc", FIRST + 30)


def test_the_config_store_is_checked() -> None:
    assert valid_config(ROTATING)
    assert valid_config({"view": "map", "period": 20})  # a page loaded before the reload
    assert not valid_config({**ROTATING, "reload": "soon"})
    assert not valid_config({**ROTATING, "reload": 1.0})
    assert not valid_config({**ROTATING, "refresh": 60})
    assert not valid_config({**ROTATING, "refresh": True})
