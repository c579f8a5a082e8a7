"""``/``: city overview — KPI tiles with trends, the map of the 94 wards, rankings, alerts."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from dashboards import queries
from dashboards.components.arriving import FAST_MS, arriving_notice
from dashboards.components.common import (
    alert_link,
    alert_title,
    cached,
    freshness,
    latest_kpis,
    md_link,
    require,
    scope_key,
    who,
)
from dashboards.components.figures import MAP_CONFIG, on_basemap, ward_map
from dashboards.components.incidents import incidents_card
from dashboards.components.layout import (
    kpi_tile,
    numeric_format,
    rank_line,
    severity_styles,
    table,
)
from dashboards.components.tables import card, cards_2, view_page
from dashboards.i18n import fmt_datetime, t, unit_label
from dashboards.kpiview import city_value, decimals, ranks, status
from dashboards.state import state
from ioc.auth import User
from ioc.missing import is_missing

dash.register_page(__name__, path="/", title="IOC Đà Nẵng", order=0)

REFRESH_MS = 30_000
DEFAULT_MAP_KPI = "on_time_rate"


def layout(**_: Any) -> html.Div:
    return view_page("/", "overview", "ov-interval", REFRESH_MS, _body, updated_id="ov-updated")


def _body(_user: User, lang: str) -> list[Any]:
    kpis = state().kpis
    options = [
        {"label": k.label_en if lang == "en" else k.label_vi, "value": name}
        for name, k in kpis.items()
    ]
    default = (
        DEFAULT_MAP_KPI if DEFAULT_MAP_KPI in kpis else (options[0]["value"] if options else None)
    )
    return [
        html.Div(id="ov-arriving"),
        html.Div(id="ov-tiles", className="tiles"),
        cards_2(
            card(
                html.Div(
                    className="card-head",
                    children=[
                        html.H2(t("map_title", lang)),
                        html.Label(t("color_by", lang)),
                        dcc.Dropdown(
                            id="ov-kpi",
                            options=options,
                            value=default,
                            clearable=False,
                            className="kpi-select",
                        ),
                    ],
                ),
                dcc.Graph(
                    id="ov-map",
                    config=MAP_CONFIG,
                    style={"height": "560px"},
                ),
            ),
            card(
                html.Div(id="ov-best-worst", className="best-worst"),
                title=t("ranking", lang),
                body_id="ov-ranking",
            ),
        ),
        card(title=t("open_alerts", lang), body_id="ov-alerts"),
        html.Div(className="card", id="ov-reports-card", children=[html.Div(id="ov-reports")]),
        incidents_card("inc-ov-summary", lang),  # filled by pages/incidents.py
    ]


@callback(
    Output("ov-tiles", "children"),
    Output("ov-map", "figure"),
    Output("ov-ranking", "children"),
    Output("ov-best-worst", "children"),
    Output("ov-alerts", "children"),
    Output("ov-updated", "children"),
    Input("ov-interval", "n_intervals"),
    Input("ov-kpi", "value"),
)
def refresh(_n: int | None, kpi_name: str | None) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    st = state()
    kpis = st.kpis
    latest = latest_kpis("day")
    allowed = user.allowed_wards()

    if not kpis:
        tiles: Any = html.Div(t("kpi_missing", lang), className="muted")
    else:
        tiles = []
        for name, meta in kpis.items():
            value, prev = city_value(latest, name, meta) if not latest.empty else (None, None)
            tiles.append(kpi_tile(name, meta, value, prev, lang))

    kpi = kpis.get(kpi_name or "")
    n_ranked = 0
    if kpi is None or latest.empty:
        ranked = latest.iloc[0:0]
        fig = ward_map(st.geojson, st.ward_names, _empty_ranked(), kpi_name or "", kpi, lang=lang)
    else:
        ranked = ranks(latest, kpi_name or "", kpi)
        n_ranked = int(ranked["rank"].notna().sum())
        if allowed is not None:  # ranks are among all wards; values only of granted wards
            ranked = ranked[ranked["ward_code"].isin(allowed)]
        fig = ward_map(
            st.geojson, st.ward_names, ranked, kpi_name or "", kpi, lang=lang, n_ranked=n_ranked
        )

    fig = on_basemap(fig, st.cfg.system.basemap)  # the city's own base map, if configured
    ranking, best_worst = _ranking(
        ranked, kpi_name or "", kpi, lang, scoped=allowed is not None, n_ranked=n_ranked
    )
    alerts = _alerts(user, lang)
    fresh = freshness()
    stamps = [v for v in fresh.values() if v is not None]
    updated = f"{t('last_update', lang)}: {fmt_datetime(max(stamps), lang)}" if stamps else ""
    return tiles, fig, ranking, best_worst, alerts, updated


@callback(
    Output("ov-arriving", "children"),
    Output("ov-interval", "interval"),
    Input("ov-interval", "n_intervals"),
)
def arriving(_n: int | None) -> tuple[Any, int]:
    require("view")
    _, lang = who()
    note, fast = arriving_notice("ov-arriving", lang)
    return note, FAST_MS if fast else REFRESH_MS


def _empty_ranked() -> Any:
    import pandas as pd

    return pd.DataFrame({"ward_code": [], "value": [], "rank": []})


def _ranking(
    ranked: Any,
    kpi_name: str,
    kpi: Any,
    lang: str,
    *,
    scoped: bool = False,
    n_ranked: int = 0,
) -> tuple[Any, Any]:
    if kpi is None or ranked is None or len(ranked) == 0:
        return html.Div(t("no_data", lang), className="muted"), ""
    names = state().ward_names
    dec = decimals(kpi)
    rows = []
    for r in ranked.itertuples(index=False):  # a frame: the ranking is computed over columns
        has = not is_missing(r.value)
        rows.append(
            {
                "rank": int(r.rank) if has else None,
                "ward": f"[{names.get(r.ward_code, r.ward_code)}](/ward/{r.ward_code})",
                "code": r.ward_code,
                "value": float(r.value) if has else None,
                "status": t(f"status_{status(r.value if has else None, kpi)}", lang),
            }
        )
    columns: list[dict[str, Any]] = [
        {"name": t("rank", lang), "id": "rank", "type": "numeric"},
        {"name": t("ward", lang), "id": "ward", "presentation": "markdown"},
        {"name": "Mã" if lang == "vi" else "Code", "id": "code"},
        {
            "name": (
                f"{t('value', lang)} ({unit_label(kpi.unit, lang)})"
                if kpi.unit
                else t("value", lang)
            ),
            "id": "value",
            "type": "numeric",
            "format": numeric_format(lang, dec),
        },
    ]
    ranked_only = [r for r in rows if r["rank"] is not None]
    best = ranked_only[:5]
    worst = list(reversed(ranked_only[-5:])) if len(ranked_only) > 5 else []

    def lst(title: str, items: list[dict[str, Any]], cls: str) -> html.Div:
        return html.Div(
            className=f"bw {cls}",
            children=[
                html.H3(title),
                html.Ul([html.Li(rank_line(i, names, dec, kpi.unit, lang)) for i in items]),
            ],
        )

    if scoped:
        # a ward leader's list holds only their wards: their ranks among all wards, not a
        # "best" list (rank 80 of 93 is not among the best)
        mine = [
            html.Li(f"{rank_line(i, names, dec, kpi.unit, lang)} ({t('of_n', lang, n=n_ranked)})")
            for i in ranked_only
        ]
        bw = [
            html.Div(
                className="bw mine",
                id="ov-my-ranks",
                children=[html.H3(t("your_wards", lang)), html.Ul(mine)],
            )
        ]
        return table("ov-rank-table", rows, columns, page_size=12), bw
    bw = [lst(t("best", lang), best, "best")]
    if worst:
        bw.append(lst(t("worst", lang), worst, "worst"))
    return table("ov-rank-table", rows, columns, page_size=12), bw


def _alerts(user: Any, lang: str) -> Any:
    key = ("alerts_open", scope_key(user))
    found = cached(
        key, lambda c: queries.alerts(c, wards=scope_key(user), states=("open",), limit=20)
    )
    if not found:
        return html.Div(t("no_open_alerts", lang), className="muted", id="ov-no-alerts")
    names = state().ward_names
    rows = [
        {
            "severity": r.severity,
            "severity_label": t(r.severity, lang),
            "ward": names.get(r.ward_code or "", r.ward_code or t("city", lang)),
            "title": md_link(
                alert_title(r.rule_id, r.subject, r.title, lang, r.details, r.value),
                alert_link(r.details),
            ),
            "opened": fmt_datetime(r.opened_at, lang),
        }
        for r in found
    ]
    cols: list[dict[str, Any]] = [
        {"name": t("severity", lang), "id": "severity_label"},
        {"name": t("ward", lang), "id": "ward"},
        {"name": t("title", lang), "id": "title", "presentation": "markdown"},
        {"name": t("opened", lang), "id": "opened"},
    ]
    return table(
        "ov-alerts-table", rows, cols, page_size=10, style_data_conditional=severity_styles()
    )


@callback(Output("ov-reports", "children"), Input("ov-interval", "n_intervals"))
def refresh_reports(_n: int | None) -> Any:
    """Citizen reports (appended section): the city's, or the user's wards'."""
    from dashboards.components import reports_box

    user = require("view")
    _, lang = who()
    if state().cfg.categories is None:
        raise dash.exceptions.PreventUpdate
    key = scope_key(user)
    return [
        html.H2(reports_box.TEXT["title"][1 if lang == "en" else 0]),
        *reports_box.section(None if key is None else list(key), lang, prefix="ov"),
    ]
