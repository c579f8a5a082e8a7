"""Pieces the incident pages, the overview, the ward page and the wall share."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dash import dcc, html

from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.state import state
from ioc.auth import User
from ioc.incidents import rules
from ioc.missing import is_missing

# SLA state colours: the KPI tiles' green / amber / red, grey when done
SLA_COLORS = {
    "ok": "#1a9850",
    "warning": "#f0a202",
    "breached": "#d73027",
    "met": "#4575b4",
    "missed": "#7b3294",
    "none": "#9e9e9e",
}
OPEN_STATUSES = ("new", "assigned", "in_progress")
ALL_STATUSES = ("new", "assigned", "in_progress", "resolved", "closed", "rejected")
SLA_FILTERS = ("ok", "warning", "breached", "met", "missed")


def status_label(status: str, lang: str) -> str:
    return t(f"inc_status_{status}", lang)


def sla_label(state_: str, lang: str) -> str:
    return t(f"inc_sla_{state_}", lang)


def category_label(category: str, lang: str) -> str:
    vi, en = rules.categories(state().cfg).get(category, (category, category))
    return en if lang == "en" else vi


def category_options(lang: str) -> list[dict[str, str]]:
    cats = rules.categories(state().cfg)
    return [{"label": en if lang == "en" else vi, "value": c} for c, (vi, en) in cats.items()]


def assignee_label(assignee: object, lang: str) -> str:
    if not isinstance(assignee, str) or not assignee:
        return ""
    dept = rules.department_name(state().cfg, assignee, lang)
    if dept is not None:
        return dept
    return state().ward_names.get(assignee, assignee)


def assignee_options(user: User, lang: str, ward: str | None = None) -> list[dict[str, str]]:
    """Wards the user may hand over to (their own for a ward leader; the incident's ward
    first), then the city departments."""
    names = state().ward_names
    codes = user.scope(sorted(names))
    if ward in codes:
        codes = [ward, *[c for c in codes if c != ward]]
    out = [{"label": f"{names[c]} ({c})", "value": c} for c in codes]
    for d in rules.settings(state().cfg).departments:
        out.append({"label": d.name_en if lang == "en" else d.name_vi, "value": d.id})
    return out


def duration(seconds: float, lang: str) -> str:
    s = abs(seconds)
    if s < 3600:
        return t("inc_minutes", lang, n=int(s // 60))
    if s < 48 * 3600:
        h, m = int(s // 3600), int((s % 3600) // 60)
        hours = t("inc_hours", lang, n=h)
        return f"{hours} {t('inc_minutes', lang, n=m)}" if m else hours
    return t("inc_days", lang, n=fmt_num(s / 86400, 1, lang))


def countdown(due: Any, now: dt.datetime, lang: str, *, done: Any = None) -> str:
    """'còn 2 giờ 15 phút' / 'quá 3 giờ' (wall-clock time to or past the due time)."""
    if is_missing(due):
        return "—"
    if done is not None and done == done:
        return t("inc_done_on", lang, d=fmt_datetime(done, lang))
    left = (due - now).total_seconds()
    key = "inc_left" if left > 0 else "inc_late"
    return t(key, lang, d=duration(left, lang))


def summary_block(summary: dict[str, Any], lang: str, *, scope: str) -> html.Div:
    """Incident figures for the overview and a ward page: tiles, by state, by category."""
    by_sla = summary["by_sla"]
    tiles = [
        _tile(t("inc_open", lang), summary["open"], "#4575b4", f"{scope}-open"),
        _tile(
            t("inc_breached", lang),
            summary["breached"],
            SLA_COLORS["breached"],
            f"{scope}-breached",
        ),
        _tile(sla_label("warning", lang), by_sla.get("warning", 0), SLA_COLORS["warning"], None),
        _tile(t("inc_resolved_30d", lang), summary["resolved_30d"], SLA_COLORS["met"], None),
        _tile(t("inc_late_30d", lang), summary["late_30d"], SLA_COLORS["missed"], None),
    ]
    states = ", ".join(
        f"{status_label(s, lang)}: {fmt_num(summary['by_status'].get(s, 0), 0, lang)}"
        for s in OPEN_STATUSES
    )
    cats = ", ".join(
        f"{category_label(c, lang)}: {fmt_num(n, 0, lang)}" for c, n in summary["by_category"][:6]
    )
    old = summary["oldest_overdue"]
    oldest: Any = t("inc_none_overdue", lang)
    if old is not None:
        oldest = html.A(
            f"#{old['id']} {old['title']} ({state().ward_names.get(old['ward_code'] or '', '')})",
            href=f"/incidents/{old['id']}",
        )
    return html.Div(
        [
            html.Div(tiles, className="tiles"),
            html.Div([html.B(f"{t('inc_by_state', lang)}: "), states], className="muted"),
            html.Div([html.B(f"{t('inc_by_category', lang)}: "), cats or "—"], className="muted"),
            html.Div([html.B(f"{t('inc_oldest_overdue', lang)}: "), oldest], className="muted"),
        ]
    )


def _tile(label: str, n: int, color: str, tile_id: str | None) -> html.Div:
    kw: dict[str, Any] = {"id": tile_id} if tile_id else {}
    return html.Div(
        className="tile",
        style={"borderTopColor": color},
        children=[
            html.Div(label, className="tile-label"),
            html.Div(html.Span(fmt_num(n, 0), className="tile-value")),
        ],
        **kw,
    )


def incidents_card(body_id: str, lang: str) -> html.Div:
    """The card the overview and the ward page append for incident figures (filled by the
    callbacks of pages/incidents.py)."""
    return html.Div(
        className="card",
        children=[
            html.H2(dcc.Link(t("incidents", lang), href="/incidents")),
            html.Div(id=body_id),
        ],
    )
