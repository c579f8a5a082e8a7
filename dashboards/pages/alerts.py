"""``/alerts``: open, acknowledged and resolved alerts; filters; acknowledge and resolve
(operators and admins; every alert id is re-checked against the user's role and wards)."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, html
from dash.exceptions import PreventUpdate

from dashboards import queries
from dashboards.components.common import (
    alert_link,
    alert_title,
    md_link,
    require,
    scope_key,
    selected_ids,
    who,
)
from dashboards.components.layout import severity_styles, table
from dashboards.components.tables import card, checklist, controls, view_page, ward_dropdown
from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.state import state
from ioc.auth import User

dash.register_page(__name__, path="/alerts", title="IOC — Cảnh báo", order=3)

REFRESH_MS = 15_000
STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("critical", "warning", "info")


def layout(**_: Any) -> html.Div:
    return view_page(
        "/alerts", "alerts", "alerts-interval", REFRESH_MS, _body, version_id="alerts-version"
    )


def _body(user: User, lang: str) -> list[Any]:
    can_act = user.can("ack")
    return [
        controls(
            checklist(
                t("state", lang),
                "alerts-state",
                [{"label": t(s, lang), "value": s} for s in STATES],
                value=["open", "acknowledged"],
                inline=True,
            ),
            checklist(
                t("severity", lang),
                "alerts-sev",
                [{"label": t(s, lang), "value": s} for s in SEVERITIES],
                value=list(SEVERITIES),
                inline=True,
            ),
            ward_dropdown(user, lang, "alerts-ward"),
        ),
        controls(
            html.Button(t("acknowledge", lang), id="alerts-ack", className="btn", n_clicks=0),
            html.Button(
                t("resolve", lang),
                id="alerts-resolve",
                className="btn secondary",
                n_clicks=0,
            ),
            html.Span(id="alerts-msg", className="msg"),
            style={} if can_act else {"display": "none"},
        ),
        card(
            html.Div(id="alerts-count", className="muted"),
            table(
                "alerts-table",
                [],
                _columns(lang),
                page_size=20,
                selectable=can_act,
                style_data_conditional=severity_styles(),
            ),
        ),
    ]


def _columns(lang: str) -> list[dict[str, Any]]:
    return [
        {"name": t("severity", lang), "id": "severity_label"},
        {"name": t("state", lang), "id": "state_label"},
        {"name": t("ward", lang), "id": "ward"},
        {"name": t("title", lang), "id": "title", "presentation": "markdown"},
        {"name": t("opened", lang), "id": "opened"},
        {"name": t("escalated_to", lang), "id": "escalation"},
        {"name": t("acknowledged", lang), "id": "ack"},
        {"name": t("resolved", lang), "id": "res"},
    ]


def escalation_label(level: int | None, reminders: int | None, lang: str) -> str:
    """'2. Trực ban thành phố · nhắc 3 lần': the last level of notifications.yaml's chain
    told so far, and the reminders sent ("" before the first level)."""
    levels = state().cfg.notifications.escalation.levels
    if not level or level > len(levels):
        return ""
    text = f"{level}. {levels[level - 1].name}"
    if reminders:
        text += " · " + t("n_reminders", lang, n=fmt_num(reminders, 0, lang))
    return text


@callback(
    Output("alerts-table", "data"),
    Output("alerts-table", "selected_rows"),
    Output("alerts-count", "children"),
    Input("alerts-interval", "n_intervals"),
    Input("alerts-state", "value"),
    Input("alerts-sev", "value"),
    Input("alerts-ward", "value"),
    Input("alerts-version", "data"),
)
def refresh(
    _n: int | None,
    states: list[str] | None,
    sevs: list[str] | None,
    wards: list[str] | None,
    _v: int | None,
) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    states = [s for s in states or [] if s in STATES]
    sevs = [s for s in sevs or [] if s in SEVERITIES]
    key = scope_key(user)
    scope: list[str] | None = None if key is None else list(key)
    if wards:
        scope = [w for w in wards if user.may_see_ward(w)]
    with state().pool.conn() as conn:  # not cached: operators act on what they see
        found = queries.alerts(conn, wards=scope, states=states, severities=sevs, limit=1000)
    names = state().ward_names
    rows = [
        {
            "id": r.id,
            "severity": r.severity,
            "severity_label": t(r.severity, lang),
            "state_label": t(r.state, lang),
            "ward": names.get(r.ward_code or "", r.ward_code or t("city", lang)),
            "title": md_link(
                alert_title(r.rule_id, r.subject, r.title, lang, r.details, r.value),
                alert_link(r.details),
            ),
            "opened": fmt_datetime(r.opened_at, lang),
            "escalation": escalation_label(r.escalation_level, r.reminders, lang),
            "ack": f"{r.acknowledged_by} {fmt_datetime(r.acknowledged_at, lang)}"
            if r.acknowledged_by
            else "",
            "res": f"{r.resolved_by} {fmt_datetime(r.resolved_at, lang)}" if r.resolved_by else "",
        }
        for r in found
    ]
    return rows, [], f"{fmt_num(len(rows), 0, lang)} {t('alerts', lang).lower()}"


@callback(
    Output("alerts-msg", "children"),
    Output("alerts-version", "data"),
    Input("alerts-ack", "n_clicks"),
    Input("alerts-resolve", "n_clicks"),
    State("alerts-table", "selected_row_ids"),
    State("alerts-version", "data"),
    prevent_initial_call=True,
)
def act(
    _ack: int | None, _res: int | None, ids: list[Any] | None, version: int | None
) -> tuple[Any, ...]:
    from ioc.alerts import acknowledge, resolve

    user = require("view")
    _, lang = who()
    if not user.can("ack"):
        return t("not_allowed_ack", lang), dash.no_update
    trigger = dash.ctx.triggered_id
    if trigger not in ("alerts-ack", "alerts-resolve"):
        raise PreventUpdate
    wanted = selected_ids(ids)
    if not wanted:
        return t("n_selected_none", lang), dash.no_update
    action = acknowledge if trigger == "alerts-ack" else resolve
    done = 0
    with state().pool.conn() as conn:
        wards = queries.alert_wards(conn, ids=wanted)
        for alert_id in wanted:
            if alert_id not in wards:
                continue
            ward = wards[alert_id]
            if ward is not None and not user.may_see_ward(ward):
                continue
            if ward is None and user.ward_scoped:
                continue
            if action(conn, alert_id, user.name):
                done += 1
    state().cache.clear()
    return t("done_n", lang, n=done), (version or 0) + 1
