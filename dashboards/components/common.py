"""Helpers every page uses: who is asking, in which language, cached queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pandas as pd
from dash.exceptions import PreventUpdate

from dashboards import queries
from dashboards.i18n import TEXT, t, unit_label
from dashboards.i18n import lang as current_lang
from dashboards.kpiview import rank_column
from dashboards.state import current_user, state
from ioc.auth import User
from ioc.config import Kpi
from ioc.db import Connection
from ioc.missing import is_missing

T = TypeVar("T")


def who() -> tuple[User, str]:
    return current_user(), current_lang()


def require(perm: str, ward: str | None = None) -> User:
    """The current user if they hold ``perm`` (and may see ``ward``); else nothing updates."""
    user = current_user()
    if not user.can(perm) or (ward is not None and not user.may_see_ward(ward)):
        raise PreventUpdate
    return user


def selected_ids(ids: list[Any] | None) -> list[int]:
    """A table's ``selected_row_ids`` as sorted distinct integers; nothing updates when one
    is not a number (the browser sends what it likes)."""
    try:
        return sorted({int(i) for i in ids or []})
    except (TypeError, ValueError):
        raise PreventUpdate from None


def cached(key: tuple[Any, ...], fn: Callable[[Connection], T]) -> T:
    """``fn(conn)`` through the short-TTL cache shared by the server's threads (and, under
    ``ioc serve``, its processes). ``fn`` must not call :func:`cached` itself."""
    st = state()

    def compute() -> T:
        with st.pool.conn() as conn:
            return fn(conn)

    return st.cache.get_or_compute(key, compute)


def latest_kpis(period: str = "day") -> pd.DataFrame:
    return cached(("kpi_latest", period), lambda c: queries.kpi_latest(c, period=period))


def kpi_board(period: str = "day") -> dict[str, dict[str, Any]]:
    """Per KPI, the latest ``period``'s city value and every ward's (value, rank):
    ``{kpi: {"city": float | None, "n_ranked": int, "wards": {code: (value, rank)}}}``.

    Done once per cache period for every ward page instead of on each refresh. Built from
    its own query (not through :func:`latest_kpis`) so no cache entry is computed inside
    another.
    """
    return cached(
        ("kpi_board", period),
        lambda conn: board_from_latest(queries.kpi_latest(conn, period=period), state().kpis),
    )


def board_from_latest(latest: pd.DataFrame, kpis: Mapping[str, Kpi]) -> dict[str, dict[str, Any]]:
    """:func:`kpi_board` from ``kpi_latest`` rows: the ranks of ``kpiview.ranks`` (1 = best,
    ties share the best rank, wards without a value unranked) and the city value of
    ``kpiview.city_value``, for all KPIs in one pass."""
    board: dict[str, dict[str, Any]] = {
        name: {"city": None, "n_ranked": 0, "wards": {}} for name in kpis
    }
    if latest.empty:
        return board
    df = latest[latest["kpi"].isin(list(kpis))][["kpi", "ward_code", "value"]].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    city = df[df["ward_code"] == "city"].drop_duplicates("kpi")
    for name, value in zip(city["kpi"], city["value"], strict=True):
        board[str(name)]["city"] = None if is_missing(value) else float(value)
    wards = df[df["ward_code"] != "city"].copy()
    wards["rank"] = rank_column(wards, kpis)
    for name, code, value, rank in zip(
        wards["kpi"], wards["ward_code"], wards["value"], wards["rank"], strict=True
    ):
        if not is_missing(rank):  # a value, so a rank
            entry = board[str(name)]
            entry["wards"][str(code)] = (float(value), int(rank))
            entry["n_ranked"] += 1
    return board


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


def procedure_label(code: object, language: str) -> str:
    """'Đăng ký khai sinh (1.001193)': the catalogue's name with the code, or the code."""
    if not isinstance(code, str) or not code:  # None, or NaN from a DataFrame
        return ""
    procs = state().cfg.procedures
    for p in procs.procedures if procs is not None else ():
        if p.code == code:
            name = p.name_en if language == "en" and p.name_en else p.name
            return f"{name} ({code})"
    return code


def channel_label(channel: object, language: str) -> str:
    if not isinstance(channel, str) or not channel:
        return ""
    return t(f"channel_{channel}", language) if f"channel_{channel}" in TEXT else channel


def fault_labels(kinds: object, language: str) -> str:
    """'offline, frozen' (camera health kinds) in the UI language."""
    if not isinstance(kinds, str) or not kinds:  # None, or NaN from a DataFrame
        return ""
    out = []
    for k in (k.strip() for k in kinds.split(",")):
        out.append(t(f"fault_{k}", language) if f"fault_{k}" in TEXT else k)
    return ", ".join(out)


def kpi_heading(kpi: Kpi, language: str) -> str:
    """'Label (unit)', or just the label for a KPI without a unit (the AQI)."""
    label = kpi.label_en if language == "en" else kpi.label_vi
    return f"{label} ({unit_label(kpi.unit, language)})" if kpi.unit else label


def alert_title(
    rule_id: object,
    subject: object,
    stored: object,
    language: str,
    details: object = None,
    value: object = None,
) -> str:
    """An alert's title in the UI language, naming what it is about (ward, camera or device,
    value, threshold and unit: ``ioc.alerts.title`` from the names kept in its ``details``);
    alerts opened before names were kept: the rule's label and the subject; the stored
    title when the rule is gone."""
    from ioc.alerts import title

    rules = {r.id: r for r in state().cfg.alerts.rules} if state().cfg.alerts else {}
    rule = rules.get(rule_id) if isinstance(rule_id, str) else None
    if rule is None or not isinstance(subject, str):
        return stored if isinstance(stored, str) else ""
    label = rule.label_en if language == "en" and rule.label_en else rule.label_vi
    if isinstance(details, dict) and details.get("object_vi"):
        v = float(value) if isinstance(value, (int, float)) and not is_missing(value) else None
        return title(rule, details, v, language, label)
    return f"{label}: {subject}"


def alert_link(details: object) -> str | None:
    """The page of what an alert is about (ward, camera, device), if known."""
    link = details.get("link") if isinstance(details, dict) else None
    return link if isinstance(link, str) and link.startswith("/") else None


def md_link(text: str, link: str | None) -> str:
    """A DataTable markdown cell: the text, linked when there is a link."""
    safe = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"[{safe}]({link})" if link else safe
