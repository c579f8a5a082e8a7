"""``/applications``: application processing by ward, procedure and channel; trends; the
procedures most often late."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from dashboards import queries
from dashboards.components.common import (
    cached,
    channel_label,
    procedure_label,
    require,
    scope_key,
    who,
)
from dashboards.components.figures import GRAPH_CONFIG, bars, lines
from dashboards.components.layout import numeric_format, table
from dashboards.components.tables import (
    card,
    cards_2,
    controls,
    dropdown,
    numeric_column,
    view_page,
)
from dashboards.i18n import fmt_num, t
from dashboards.state import state
from ioc.auth import User
from ioc.db.rows import frame

dash.register_page(__name__, path="/applications", title="IOC — Hồ sơ", order=1)

APP_DAYS = (1, 7, 30, 90, 365)  # the time-range picker
REFRESH_MS = 60_000
COUNTS = ("received", "on_time", "late", "overdue", "returned", "online")
COLORS = {"on_time": "#1a9850", "late": "#f0a202", "overdue": "#d73027", "returned": "#4e8ef7"}


def layout(**_: Any) -> html.Div:
    return view_page("/applications", "applications", "apps-interval", REFRESH_MS, _body)


def _body(user: User, lang: str) -> list[Any]:
    return [
        controls(
            dropdown(
                t("period_days", lang),
                "apps-days",
                [{"label": f"{d} {t('days', lang)}", "value": d} for d in APP_DAYS],
                value=30,
                clearable=False,
            ),
            dropdown(
                t("group_by", lang),
                "apps-group",
                [
                    {"label": t("ward", lang), "value": "ward_code"},
                    {"label": t("procedure", lang), "value": "procedure"},
                    {"label": t("channel", lang), "value": "channel"},
                ],
                value="ward_code",
                clearable=False,
            ),
        ),
        html.Div(id="apps-summary", className="tiles"),
        card(dcc.Graph(id="apps-bars", config=GRAPH_CONFIG, style={"height": "380px"})),
        cards_2(
            card(
                dcc.Graph(id="apps-trend", config=GRAPH_CONFIG, style={"height": "320px"}),
                title=t("trend", lang),
            ),
            card(title=t("worst_procedures", lang), body_id="apps-worst"),
        ),
        card(body_id="apps-table"),
    ]


@callback(
    Output("apps-summary", "children"),
    Output("apps-bars", "figure"),
    Output("apps-trend", "figure"),
    Output("apps-worst", "children"),
    Output("apps-table", "children"),
    Input("apps-interval", "n_intervals"),
    Input("apps-days", "value"),
    Input("apps-group", "value"),
)
def refresh(_n: int | None, days: int | None, group: str | None) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    days = days if days in APP_DAYS else 30
    group = group if group in queries.APP_GROUPS else "ward_code"
    scope = scope_key(user)
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).replace(
        minute=0, second=0, microsecond=0
    )
    stats = cached(
        ("app_stats", since, group, scope),
        lambda c: queries.application_stats(c, since=since, group_by=group, wards=scope),
    )
    trend = cached(
        ("app_trend", since, scope),
        lambda c: queries.application_trend(c, since=since, wards=scope),
    )
    worst = cached(
        ("app_worst", since, scope),
        lambda c: queries.worst_procedures(c, since=since, wards=scope, holidays=state().holidays),
    )
    names = state().ward_names
    totals = {k: sum(getattr(g, k) for g in stats) for k in COUNTS}
    summary = [
        html.Div(
            className="tile",
            style={"borderTopColor": COLORS.get(k, "#0b5cad")},
            id=f"apps-total-{k}",
            children=[
                html.Div(t(k, lang), className="tile-label"),
                html.Div(fmt_num(totals[k], 0, lang), className="tile-value"),
            ],
        )
        for k in ("received", "on_time", "late", "overdue", "returned")
    ]
    label_of: Any = {
        "ward_code": lambda g: names.get(g, g),
        "procedure": lambda g: procedure_label(g, lang),
        "channel": lambda g: channel_label(g, lang),
    }[group]
    top = sorted(stats, key=lambda g: g.received, reverse=True)[:30]
    bar_fig = bars(
        frame(queries.ApplicationStats, top).assign(label=[label_of(g.grp) for g in top]),
        "label",
        [(k, t(k, lang), COLORS[k]) for k in ("on_time", "late", "overdue", "returned")],
        lang=lang,
        height=380,
        stacked=False,
    )
    trend_fig = lines(
        trend,
        "day",
        [
            ("received", t("received", lang), "#0b5cad"),
            ("completed", t("completed", lang), "#1a9850"),
            ("late", t("late", lang), "#d73027"),
        ],
        lang=lang,
    )
    if not worst:
        worst_div: Any = html.Div(t("no_rows", lang), className="muted")
    else:
        rows = [
            {
                "procedure": procedure_label(r.procedure, lang),
                "late": r.late,
                "total": r.total,
                "share": 100.0 * r.late / r.total if r.total else None,
                "avg_days_late": r.avg_days_late,
            }
            for r in worst
        ]
        worst_div = table(
            "apps-worst-table",
            rows,
            [
                {"name": t("procedure", lang), "id": "procedure"},
                {"name": t("late_or_overdue", lang), "id": "late", "type": "numeric"},
                {"name": "Tổng" if lang == "vi" else "Total", "id": "total", "type": "numeric"},
                {"name": "%", "id": "share", "type": "numeric", "format": numeric_format(lang, 1)},
                numeric_column(t("days_late", lang), "avg_days_late", lang, 1),
            ],
            page_size=10,
        )
    rows = [{"grp": label_of(r.grp), **{k: getattr(r, k) for k in COUNTS}} for r in stats]
    head = {
        "ward_code": t("ward", lang),
        "procedure": t("procedure", lang),
        "channel": t("channel", lang),
    }[group]
    tbl = table(
        "apps-stats-table",
        rows,
        [{"name": head, "id": "grp"}]
        + [
            {"name": t(k, lang) if k != "online" else "Online", "id": k, "type": "numeric"}
            for k in COUNTS
        ],
        page_size=15,
        filterable=True,
    )
    return summary, bar_fig, trend_fig, worst_div, tbl
