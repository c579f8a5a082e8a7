"""``/cameras``: every camera with status, open health issues and the last hour's counts."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from dashboards import queries
from dashboards.components.common import (
    cached,
    fault_labels,
    require,
    scope_key,
    ward_options,
    who,
)
from dashboards.components.layout import frame, numeric_format, refused, table
from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.queries import records
from dashboards.state import state

dash.register_page(__name__, path="/cameras", title="IOC — Camera", order=2)

REFRESH_MS = 15_000


def layout(**_: Any) -> html.Div:
    user, lang = who()
    if not user.can("view"):
        return refused(lang)
    return frame(
        user,
        "/cameras",
        lang,
        [
            dcc.Interval(id="cams-interval", interval=REFRESH_MS),
            html.H1(t("cameras", lang)),
            html.Div(
                className="controls",
                children=[
                    html.Div(
                        [
                            html.Label(t("status", lang)),
                            dcc.Dropdown(
                                id="cams-status",
                                options=[
                                    {"label": t(s, lang), "value": s}
                                    for s in ("online", "offline", "unknown")
                                ],
                                multi=True,
                                placeholder=t("all", lang),
                            ),
                        ]
                    ),
                    html.Div(
                        [
                            html.Label(t("wards", lang)),
                            dcc.Dropdown(
                                id="cams-ward",
                                options=ward_options(user),
                                multi=True,
                                placeholder=t("all_wards", lang),
                            ),
                        ],
                        style={"minWidth": "320px"},
                    ),
                ],
            ),
            html.Div(id="cams-summary", className="tiles"),
            html.Div(className="card", children=[html.Div(id="cams-table")]),
        ],
    )


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
    names = state().ward_names
    rows = [
        {
            "camera": r.name or r.camera_id,
            "id": r.camera_id,
            "ward": names.get(r.ward_code, r.ward_code),
            "status": t(r.status, lang),
            "issues": fault_labels(r.issues, lang),
            "count_1h": None if r.count_1h is None else float(r.count_1h),
            "last_seen": fmt_datetime(r.last_seen, lang),
        }
        for r in records(df)
    ]
    cols: list[dict[str, Any]] = [
        {"name": t("camera", lang), "id": "camera"},
        {"name": t("ward", lang), "id": "ward"},
        {"name": t("status", lang), "id": "status"},
        {"name": t("health", lang), "id": "issues"},
        {
            "name": t("count_1h", lang),
            "id": "count_1h",
            "type": "numeric",
            "format": numeric_format(lang, 0),
        },
        {"name": t("last_seen", lang), "id": "last_seen"},
    ]
    body: Any = (
        table("cams-list", rows, cols, page_size=20, filterable=True)
        if rows
        else html.Div(t("no_rows", lang), className="muted")
    )
    return summary, body


def _tile(label: str, value: str, color: str, tid: str) -> html.Div:
    return html.Div(
        className="tile",
        id=tid,
        style={"borderTopColor": color},
        children=[html.Div(label, className="tile-label"), html.Div(value, className="tile-value")],
    )
