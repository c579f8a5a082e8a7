"""``/cameras``: every camera with status, open health issues and the last hour's counts."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, callback, html

from dashboards import queries
from dashboards.components.common import cached, require, scope_key, ward_options, who
from dashboards.components.tables import camera_table, card, controls, dropdown, view_page
from dashboards.i18n import fmt_num, t
from dashboards.state import state
from ioc.auth import User

dash.register_page(__name__, path="/cameras", title="IOC — Camera", order=2)

REFRESH_MS = 15_000


def layout(**_: Any) -> html.Div:
    return view_page("/cameras", "cameras", "cams-interval", REFRESH_MS, _body)


def _body(user: User, lang: str) -> list[Any]:
    return [
        controls(
            dropdown(
                t("status", lang),
                "cams-status",
                [{"label": t(s, lang), "value": s} for s in ("online", "offline", "unknown")],
                multi=True,
                placeholder=t("all", lang),
            ),
            dropdown(
                t("wards", lang),
                "cams-ward",
                ward_options(user),
                width="320px",
                multi=True,
                placeholder=t("all_wards", lang),
            ),
        ),
        html.Div(id="cams-summary", className="tiles"),
        card(body_id="cams-table"),
    ]


@callback(
    Output("cams-summary", "children"),
    Output("cams-table", "children"),
    Input("cams-interval", "n_intervals"),
    Input("cams-status", "value"),
    Input("cams-ward", "value"),
)
def refresh(_n: int | None, statuses: list[str] | None, wards: list[str] | None) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    scope = scope_key(user)
    df = cached(("cameras", scope), lambda c: queries.cameras(c, wards=scope))
    if wards:
        wanted = [w for w in wards if user.may_see_ward(w)]
        df = df[df["ward_code"].isin(wanted)]
    total = len(df)
    online = int((df["status"] == "online").sum()) if total else 0
    issues = int(df["issues"].notna().sum()) if total else 0
    summary = [
        _tile(t("cameras", lang), fmt_num(total, 0, lang), "#0b5cad", "cams-total"),
        _tile(t("online", lang), fmt_num(online, 0, lang), "#1a9850", "cams-online"),
        _tile(t("offline", lang), fmt_num(total - online, 0, lang), "#d73027", "cams-offline"),
        _tile(t("health", lang), fmt_num(issues, 0, lang), "#f0a202", "cams-issues"),
    ]
    if statuses:
        df = df[df["status"].isin(statuses)]
    body = camera_table(
        "cams-list", df, lang, ward_names=state().ward_names, page_size=20, filterable=True
    )
    return summary, body


def _tile(label: str, value: str, color: str, tid: str) -> html.Div:
    return html.Div(
        className="tile",
        id=tid,
        style={"borderTopColor": color},
        children=[html.Div(label, className="tile-label"), html.Div(value, className="tile-value")],
    )
