"""Helpers every page uses: who is asking, in which language, cached queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
from dash.exceptions import PreventUpdate

from dashboards import queries
from dashboards.i18n import lang as current_lang
from dashboards.state import current_user, state
from ioc.auth import User
from ioc.db import Connection

T = TypeVar("T")


def who() -> tuple[User, str]:
    return current_user(), current_lang()


def require(perm: str, ward: str | None = None) -> User:
    """The current user if they hold ``perm`` (and may see ``ward``); else nothing updates."""
    user = current_user()
    if not user.can(perm) or (ward is not None and not user.may_see_ward(ward)):
        raise PreventUpdate
    return user


def cached(key: tuple[Any, ...], fn: Callable[[Connection], T]) -> T:
    """``fn(conn)`` through the short-TTL cache shared by the server's threads."""
    st = state()

    def compute() -> T:
        with st.pool.conn() as conn:
            return fn(conn)

    return st.cache.get_or_compute(key, compute)


def latest_kpis(period: str = "day") -> pd.DataFrame:
    return cached(("kpi_latest", period), lambda c: queries.kpi_latest(c, period=period))


def freshness() -> dict[str, dt.datetime | None]:
    return cached(("freshness",), queries.freshness)


def scope_key(user: User) -> tuple[str, ...] | None:
    allowed = user.allowed_wards()
    return None if allowed is None else tuple(sorted(allowed))


def kpi_names() -> list[str]:
    return list(state().kpis)


def ward_options(user: User) -> list[dict[str, str]]:
    names = state().ward_names
    return [{"label": f"{names[c]} ({c})", "value": c} for c in user.scope(sorted(names))]
