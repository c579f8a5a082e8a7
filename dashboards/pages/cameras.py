"""``/cameras``: every camera with status, open health issues and the last hour's counts, and
the cameras that have a position as pins on a map of their wards."""

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
    who,
)
from dashboards.components.figures import MAP_CONFIG, cameras_map
from dashboards.components.tables import (
    camera_table,
    card,
    controls,
    dropdown,
    view_page,
    ward_dropdown,
)
from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.state import state
from ioc.auth import User

dash.register_page(__name__, path="/cameras", title="IOC — Camera", order=2)

REFRESH_MS = 15_000


def layout(camera: str | None = None, **_: Any) -> html.Div:
    """``?camera=ID`` (the link in an alert about a camera): that camera first, and the list
    filtered to its ward (only a camera of a ward the user may see)."""
    return view_page(
        "/cameras",
        "cameras",
        "cams-interval",
        REFRESH_MS,
        lambda user, lang: _body(user, lang, camera),
    )


def _focus(user: User, lang: str, camera: str | None) -> tuple[Any, str | None]:
    if not camera:
        return "", None
    scope = scope_key(user)
    found = cached(("cameras", scope), lambda c: queries.cameras(c, wards=scope))
    r = next((c for c in found if c.camera_id == camera), None)
    if r is None:  # unknown, or of a ward the user may not see: the same answer
        return html.Div(t("not_found", lang), className="muted", id="cams-focus"), None
    ward = r.ward_code or ""
    issues = fault_labels(r.issues, lang)
    return (
        html.Div(
            id="cams-focus",
            className="card cam-focus",
            children=[
                html.H2(f"{r.name or camera} ({camera})"),
                html.P(
                    [
                        html.B(f"{t('ward', lang)}: "),
                        dcc.Link(state().ward_names.get(ward, ward), href=f"/ward/{ward}"),
                        f" · {t('status', lang)}: {t(r.status, lang)}",
                        f" · {t('last_seen', lang)}: {fmt_datetime(r.last_seen, lang)}",
                        f" · {t('health', lang)}: {issues}" if issues else "",
                    ]
                ),
            ],
        ),
        ward,
    )


def _body(user: User, lang: str, camera: str | None = None) -> list[Any]:
    focus, ward = _focus(user, lang, camera)
    return [
        focus,
        controls(
            dropdown(
                t("status", lang),
                "cams-status",
                [{"label": t(s, lang), "value": s} for s in ("online", "offline", "unknown")],
                multi=True,
                placeholder=t("all", lang),
            ),
            ward_dropdown(user, lang, "cams-ward", value=[ward] if ward else None),
        ),
        html.Div(id="cams-summary", className="tiles"),
        card(
            dcc.Graph(id="cams-map", config=MAP_CONFIG, style={"height": "380px"}),
            title=t("cameras_map", lang),
        ),
        card(body_id="cams-table"),
    ]


@callback(
    Output("cams-summary", "children"),
    Output("cams-table", "children"),
    Output("cams-map", "figure"),
    Input("cams-interval", "n_intervals"),
    Input("cams-status", "value"),
    Input("cams-ward", "value"),
)
def refresh(_n: int | None, statuses: list[str] | None, wards: list[str] | None) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    scope = scope_key(user)
    found = cached(("cameras", scope), lambda c: queries.cameras(c, wards=scope))
    if wards:
        wanted = {w for w in wards if user.may_see_ward(w)}
        found = [c for c in found if c.ward_code in wanted]
    total = len(found)
    online = sum(c.status == "online" for c in found)
    issues = sum(c.issues is not None for c in found)
    summary = [
        _tile(t("cameras", lang), fmt_num(total, 0, lang), "#0b5cad", "cams-total"),
        _tile(t("online", lang), fmt_num(online, 0, lang), "#1a9850", "cams-online"),
        _tile(t("offline", lang), fmt_num(total - online, 0, lang), "#d73027", "cams-offline"),
        _tile(t("health", lang), fmt_num(issues, 0, lang), "#f0a202", "cams-issues"),
    ]
    if statuses:
        found = [c for c in found if c.status in statuses]
    st = state()
    body = camera_table(
        "cams-list", found, lang, ward_names=st.ward_names, page_size=20, filterable=True
    )
    # the wards chosen, else those that have cameras (the map fits them), else the user's
    shown = (
        wards
        or sorted({c.ward_code for c in found if c.ward_code})
        or sorted(scope or st.ward_names)
    )
    codes = [w for w in shown if user.may_see_ward(w)]
    return summary, body, cameras_map(st.geojson, codes, found, lang=lang)


def _tile(label: str, value: str, color: str, tid: str) -> html.Div:
    return html.Div(
        className="tile",
        id=tid,
        style={"borderTopColor": color},
        children=[html.Div(label, className="tile-label"), html.Div(value, className="tile-value")],
    )
