"""Shared widgets: the navigation bar, page frame, KPI tiles, tables, refusal notices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dash_table, dcc, html

from dashboards.i18n import fmt_num, lang, t, unit_label
from dashboards.kpiview import COLORS, decimals, status, trend
from dashboards.security import settings
from ioc.auth import User
from ioc.config import Kpi

FONT = '"Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", Arial, sans-serif'

NAV = [
    ("/", "overview", "view"),
    ("/applications", "applications", "view"),
    ("/cameras", "cameras", "view"),
    ("/alerts", "alerts", "view"),
    ("/reports", "citizen_reports", "view"),
    ("/incidents", "incidents", "view"),
    ("/export", "export", "export"),
    ("/wall", "wall", "wall"),
    ("/settings/notifications", "notify_prefs", "view"),
    ("/admin/notifications", "notify_admin", "admin"),
    ("/system", "system", "admin"),
]


def navbar(user: User, active: str, lang: str) -> html.Div:
    links: list[Any] = []
    for href, key, perm in NAV:
        if not user.can(perm):
            continue
        cls = "nav-link active" if href == active else "nav-link"
        links.append(dcc.Link(t(key, lang), href=href, className=cls))
    if user.ward_scoped:
        for code in sorted(user.wards):
            href = f"/ward/{code}"
            cls = "nav-link active" if href == active else "nav-link"
            links.append(dcc.Link(f"{t('ward', lang)} {code}", href=href, className=cls))
    other = "en" if lang == "vi" else "vi"
    # `ioc demo`: its mail catcher's inbox, where the notifications to demo@localhost arrive
    inbox = settings().demo_inbox_url
    demo = [html.A(t("demo_inbox", lang), href=inbox, target="_blank", id="nav-inbox")]
    return html.Div(
        className="navbar",
        children=[
            html.Span(t("app_title", lang), className="brand"),
            html.Div(links, className="nav-links"),
            html.Div(
                className="nav-user",
                children=[
                    html.Span(f"{user.name} ({user.role})", className="user-name"),
                    *(demo if inbox else []),
                    # a real link: the language cookie is set by the server on reload
                    html.A(t("language", lang), href=f"{active}?lang={other}", id="nav-lang"),
                    html.A(t("logout", lang), href="/logout", id="nav-logout"),
                ],
            ),
        ],
    )


def frame(user: User, active: str, lang: str, children: Sequence[Any]) -> html.Div:
    return html.Div([navbar(user, active, lang), html.Div(list(children), className="page")])


def refused(lang: str) -> html.Div:
    """A refusal inside a page: the reason in both languages and a way back."""
    other = "en" if lang == "vi" else "vi"
    return html.Div(
        [
            html.Div(t("forbidden", lang), className="refused", id="refused"),
            html.P(t("forbidden", other), className="muted"),
            html.A(t("back_home", lang), href="/", id="refused-home"),
        ],
        className="refused-box",
    )


def kpi_tile(
    name: str, kpi: Kpi, value: float | None, prev: float | None, lang: str, *, extra: str = ""
) -> html.Div:
    st = status(value, kpi)
    arrow, arrow_color = trend(value, prev, kpi)
    label = kpi.label_en if lang == "en" else kpi.label_vi
    shown = fmt_num(value, decimals(kpi), lang) if value is not None else t("no_data", lang)
    return html.Div(
        className="tile",
        id=f"tile-{name}",
        style={"borderTopColor": COLORS[st]},
        children=[
            html.Div(label, className="tile-label"),
            html.Div(
                [
                    html.Span(shown, className="tile-value"),
                    html.Span(
                        f" {unit_label(kpi.unit, lang)}" if value is not None else "",
                        className="tile-unit",
                    ),
                    html.Span(f" {arrow}", className="tile-arrow", style={"color": arrow_color}),
                ]
            ),
            html.Div(
                (
                    f"{t('target', lang)}: {fmt_num(kpi.target, decimals(kpi), lang)}"
                    if kpi.target is not None
                    else ""
                )
                + (f" · {extra}" if extra else ""),
                className="tile-sub",
            ),
        ],
    )


def numeric_format(lang: str, decimals_: int = 1) -> dict[str, Any]:
    """A DataTable number format with the language's separators."""
    if lang == "vi":
        return {
            "locale": {"decimal": ",", "group": "."},
            "specifier": f",.{decimals_}f",
        }
    return {"specifier": f",.{decimals_}f"}


def with_count_format(
    rows: list[dict[str, Any]], columns: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Numeric columns of whole numbers without a format get the language's thousands
    separator (1.546 in Vietnamese, not 1546)."""
    out = []
    for c in columns:
        if c.get("type") == "numeric" and "format" not in c:
            vals = [r.get(c["id"]) for r in rows]
            if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in vals):
                c = {**c, "format": numeric_format(lang(), 0)}
        out.append(c)
    return out


def table(
    table_id: str,
    rows: list[dict[str, Any]],
    columns: list[dict[str, Any]],
    *,
    page_size: int = 15,
    sortable: bool = True,
    filterable: bool = False,
    selectable: bool = False,
    dark: bool = False,
    style_data_conditional: list[dict[str, Any]] | None = None,
) -> Any:
    return dash_table.DataTable(  # type: ignore[attr-defined,unused-ignore]
        id=table_id,
        data=rows,
        columns=with_count_format(rows, columns),
        page_size=page_size,
        sort_action="native" if sortable else "none",
        filter_action="native" if filterable else "none",
        # case-insensitive, its toggle hidden (a bare pink box in every filter cell)
        filter_options={"placeholder_text": t("filter_placeholder"), "case": "insensitive"},
        row_selectable="multi" if selectable else False,
        selected_rows=[],
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": FONT,
            "padding": "6px 8px",
            "textAlign": "left",
            # long text (procedure names) wraps instead of pushing columns off the card
            "whiteSpace": "normal",
            "height": "auto",
            "backgroundColor": "#0b1220" if dark else "#ffffff",
            "color": "#f2f5fa" if dark else "#1b2330",
            "fontSize": "22px" if dark else "14px",
            "border": "1px solid #2a3344" if dark else "1px solid #e3e7ee",
        },
        style_header={
            "fontWeight": "bold",
            "fontFamily": FONT,
            "backgroundColor": "#111a2b" if dark else "#f0f3f7",
        },
        style_data_conditional=style_data_conditional or [],
    )


def severity_styles() -> list[dict[str, Any]]:
    return [
        {
            "if": {"filter_query": '{severity} = "critical"', "column_id": "severity_label"},
            "backgroundColor": COLORS["red"],
            "color": "white",
        },
        {
            "if": {"filter_query": '{severity} = "warning"', "column_id": "severity_label"},
            "backgroundColor": COLORS["amber"],
            "color": "black",
        },
    ]


def rank_line(item: dict[str, Any], names: dict[str, str], dec: int, unit: str, lang: str) -> str:
    """'16. Phường Hải Châu: 97,6 %': the ward's rank among all wards, not its place in the
    list (a ward leader's list holds only their wards; tied wards share a rank)."""
    name = names.get(item["code"], item["code"])
    shown = unit_label(unit, lang)
    return f"{item['rank']}. {name}: {fmt_num(item['value'], dec, lang)} {shown}".strip()
