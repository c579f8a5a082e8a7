"""``/ward/{code}``: one ward's KPIs against target, city and rank; devices, cameras, overdue
applications and alerts. Ward leaders see only the wards granted to them (checked here, in the
callback and by the guard in front of both)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from dashboards import queries
from dashboards.components.arriving import FAST_MS, arriving_notice
from dashboards.components.common import (
    alert_link,
    alert_title,
    cached,
    channel_label,
    kpi_board,
    kpi_heading,
    md_link,
    procedure_label,
    require,
    who,
)
from dashboards.components.figures import GRAPH_CONFIG, MAP_CONFIG, kpi_history, ward_pins_map
from dashboards.components.incidents import incidents_card
from dashboards.components.layout import frame, refused, severity_styles, table
from dashboards.components.tables import camera_table, card, cards_2, controls, numeric_column
from dashboards.i18n import fmt_datetime, fmt_num, t, unit_label
from dashboards.kpiview import COLORS, decimals, status
from dashboards.state import state

dash.register_page(__name__, path_template="/ward/<code>", title="IOC — Phường/xã", order=5)

REFRESH_MS = 60_000
HISTORY_DAYS = (7, 30, 90, 365)


def layout(code: str | None = None, **_: Any) -> html.Div:
    user, lang = who()
    st = state()
    if not code or code not in st.ward_names:
        return html.Div(t("not_found", lang), className="refused", id="ward-not-found")
    if not user.can("view") or not user.may_see_ward(code):
        return refused(lang)
    return frame(
        user,
        f"/ward/{code}",
        lang,
        [
            dcc.Interval(id="ward-interval", interval=REFRESH_MS),
            dcc.Store(id="ward-code", data=code),
            html.Div(
                className="page-head",
                children=[html.H1(f"{st.ward_names[code]} ({code})", id="ward-title")],
            ),
            html.Div(id="ward-arriving"),
            card(body_id="ward-kpis"),
            card(
                controls(
                    html.Label(t("time_range", lang)),
                    dcc.Dropdown(
                        id="ward-days",
                        options=[
                            {"label": t("last_n_days", lang, n=d), "value": d} for d in HISTORY_DAYS
                        ],
                        value=30,
                        clearable=False,
                        style={"width": "200px"},
                    ),
                ),
                html.Div(id="ward-history", className="small-multiples"),
                title=t("kpi_history", lang),
            ),
            cards_2(
                card(title=t("overdue_list", lang), body_id="ward-overdue"),
                card(title=t("open_alerts", lang), body_id="ward-alerts"),
            ),
            card(
                dcc.Graph(id="ward-map", config=MAP_CONFIG, style={"height": "420px"}),
                title=t("ward_map", lang),
            ),
            cards_2(
                card(title=t("devices", lang), body_id="ward-devices"),
                card(title=t("cameras", lang), body_id="ward-cameras"),
            ),
            card(body_id="ward-reports"),  # citizen reports (appended section)
            incidents_card("inc-ward-summary", lang),  # filled by pages/incidents.py
        ],
    )


@callback(
    Output("ward-arriving", "children"),
    Output("ward-interval", "interval"),
    Input("ward-interval", "n_intervals"),
    State("ward-code", "data"),
)
def arriving(_n: int | None, code: Any) -> tuple[Any, int]:
    if not isinstance(code, str) or code not in state().ward_names:
        raise dash.exceptions.PreventUpdate
    require("view", code)
    _, lang = who()
    note, fast = arriving_notice("ward-arriving", lang)
    return note, FAST_MS if fast else REFRESH_MS


@callback(
    Output("ward-history", "children"),
    Input("ward-interval", "n_intervals"),
    Input("ward-days", "value"),
    State("ward-code", "data"),
)
def history(_n: int | None, days: int | None, code: str | None) -> Any:
    """The KPI history over the chosen range (its own callback: a new range redraws only
    these charts)."""
    st = state()
    if not isinstance(code, str) or code not in st.ward_names:
        raise dash.exceptions.PreventUpdate
    require("view", ward=code)
    _, lang = who()
    return _history(code, lang, days if days in HISTORY_DAYS else 30)


@callback(
    Output("ward-map", "figure"),
    Input("ward-interval", "n_intervals"),
    State("ward-code", "data"),
)
def pins(_n: int | None, code: str | None) -> Any:
    """The ward's outline, its devices and cameras as pins (those with a position)."""
    st = state()
    if not isinstance(code, str) or code not in st.ward_names:
        raise dash.exceptions.PreventUpdate
    require("view", ward=code)
    _, lang = who()
    devices = cached(("ward_devices", code), lambda c: queries.ward_devices(c, ward=code))
    labels = {
        k: (v.label_en if lang == "en" else v.label_vi)
        for k, v in st.cfg.sensors.device_types.items()
    }
    cams = cached(("cameras", (code,)), lambda c: queries.cameras(c, wards=[code]))
    return ward_pins_map(st.geojson, code, devices, labels=labels, lang=lang, cameras=cams)


@callback(
    Output("ward-kpis", "children"),
    Output("ward-overdue", "children"),
    Output("ward-alerts", "children"),
    Output("ward-devices", "children"),
    Output("ward-cameras", "children"),
    Input("ward-interval", "n_intervals"),
    State("ward-code", "data"),
)
def refresh(_n: int | None, code: str | None) -> tuple[Any, ...]:
    st = state()
    if not isinstance(code, str) or code not in st.ward_names:
        raise dash.exceptions.PreventUpdate
    require("view", ward=code)  # the guard checked already; check again here
    _, lang = who()
    return (
        _kpi_table(code, lang),
        _overdue(code, lang),
        _alerts(code, lang),
        _devices(code, lang),
        _cameras(code, lang),
    )


def _kpi_table(code: str, lang: str) -> Any:
    st = state()
    if not st.kpis:
        return html.Div(t("kpi_missing", lang), className="muted")
    board = kpi_board("day")
    rows = []
    for name, kpi in st.kpis.items():
        entry = board.get(name) or {"city": None, "n_ranked": 0, "wards": {}}
        mine = entry["wards"].get(code)
        value, rank = (mine[0], mine[1]) if mine is not None else (None, None)
        n_ranked = entry["n_ranked"]
        city = entry["city"]
        dec = decimals(kpi)
        stt = status(value, kpi)
        rows.append(
            html.Tr(
                [
                    html.Td(kpi.label_en if lang == "en" else kpi.label_vi),
                    html.Td(
                        f"{fmt_num(value, dec, lang)} {unit_label(kpi.unit, lang)}"
                        if value is not None
                        else t("no_data", lang),
                        className=f"kpi-status-{stt}" if stt != "none" else "",
                    ),
                    html.Td(fmt_num(kpi.target, dec, lang) if kpi.target is not None else "—"),
                    html.Td(fmt_num(city, dec, lang)),
                    html.Td(f"{rank}/{n_ranked}" if rank is not None else "—"),
                    html.Td("●", style={"color": COLORS[stt], "fontSize": "20px"}),
                ],
                id=f"ward-kpi-{name}",
            )
        )
    head = html.Tr(
        [html.Th(t(k, lang)) for k in ("kpi", "value", "target", "city_avg", "rank")]
        + [html.Th("")]
    )
    return html.Table([html.Thead(head), html.Tbody(rows)], className="kpi-table")


def _history(code: str, lang: str, days: int = 30) -> Any:
    st = state()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    hist = cached(
        ("ward_hist", code, since.date().isoformat()),
        lambda c: queries.kpi_history(c, wards=[code, "city"], since=since, period="day"),
    )
    if hist.empty:
        return html.Div(t("no_data", lang), className="muted")
    # one pass over the frame instead of one filter per KPI; Python datetimes (not pandas
    # Timestamps) convert to local time several times faster in the figure
    # a count (city roll-up: a sum) is compared with the wards' median, not with the city
    # total (23 against 769 on one axis reads as a flat line at zero)
    counts = [name for name, kpi in st.kpis.items() if kpi.rollup == "sum"]
    if counts:
        med = cached(
            ("ward_median", since.date().isoformat()),
            lambda c: queries.kpi_ward_median(c, kpis=counts, since=since, period="day"),
        )
        hist = hist[~((hist["ward_code"] == "city") & hist["kpi"].isin(counts))]
        if not med.empty:
            hist = pd.concat([hist, med.assign(ward_code="city")], ignore_index=True)
    hist = hist.assign(period_start=pd.Series(_pydatetimes(hist["period_start"]), dtype=object))
    by_kpi = {str(k): g for k, g in hist.groupby("kpi", sort=False)}
    out = []
    for name, kpi in st.kpis.items():
        h = by_kpi.get(name)
        if h is None or h.empty:
            continue
        fig = kpi_history(
            h,
            code,
            kpi,
            lang=lang,
            ward_label=st.ward_names[code],
            city_label=t("ward_median", lang) if name in counts else None,
        )
        out.append(
            html.Div(
                [
                    html.H3(kpi_heading(kpi, lang)),
                    dcc.Graph(
                        id=f"ward-hist-{name}",
                        figure=fig,
                        config=GRAPH_CONFIG,
                        style={"height": "230px"},
                    ),
                ]
            )
        )
    return out


def _pydatetimes(col: pd.Series) -> list[Any]:
    return [None if x is pd.NaT or x is None else x.to_pydatetime() for x in col]


def _overdue(code: str, lang: str) -> Any:
    overdue = cached(
        ("overdue", code),
        lambda c: queries.overdue_applications(c, wards=[code], holidays=state().holidays),
    )
    if not overdue:
        return html.Div(t("no_rows", lang), className="muted", id="ward-no-overdue")
    rows = [
        {
            "id": r.id,
            "procedure": procedure_label(r.procedure, lang),
            "channel": channel_label(r.channel, lang),
            "received": fmt_datetime(r.received_at, lang),
            "due": fmt_datetime(r.due_at, lang),
            "days_late": r.days_late,
        }
        for r in overdue
    ]
    cols: list[dict[str, Any]] = [
        {"name": "ID", "id": "id"},
        {"name": t("procedure", lang), "id": "procedure"},
        {"name": t("channel", lang), "id": "channel"},
        {"name": t("received", lang), "id": "received"},
        {"name": t("due", lang), "id": "due"},
        numeric_column(t("days_late", lang), "days_late", lang, 1),
    ]
    return table("ward-overdue-table", rows, cols, page_size=10)


def _alerts(code: str, lang: str) -> Any:
    found = cached(("ward_alerts", code), lambda c: queries.alerts(c, wards=[code]))
    if not found:
        return html.Div(t("no_open_alerts", lang), className="muted")
    rows = [
        {
            "severity": r.severity,
            "severity_label": t(r.severity, lang),
            "title": md_link(
                alert_title(r.rule_id, r.subject, r.title, lang, r.details, r.value),
                alert_link(r.details),
            ),
            "state": t(r.state, lang),
            "opened": fmt_datetime(r.opened_at, lang),
        }
        for r in found
    ]
    cols: list[dict[str, Any]] = [
        {"name": t("severity", lang), "id": "severity_label"},
        {"name": t("title", lang), "id": "title", "presentation": "markdown"},
        {"name": t("state", lang), "id": "state"},
        {"name": t("opened", lang), "id": "opened"},
    ]
    return table(
        "ward-alerts-table", rows, cols, page_size=10, style_data_conditional=severity_styles()
    )


def _devices(code: str, lang: str) -> Any:
    st = state()
    found = cached(("device_status", code), lambda c: queries.device_status(c, wards=[code]))
    if not found:
        return html.Div(t("no_rows", lang), className="muted")
    counts: dict[str, dict[str, int]] = {}
    for g in found:
        per = counts.setdefault(g.device_type, {})
        per[g.status] = per.get(g.status, 0) + g.n
    labels = {
        k: (v.label_en if lang == "en" else v.label_vi)
        for k, v in st.cfg.sensors.device_types.items()
    }
    rows = [
        {
            "type": labels.get(dtype, dtype),
            "online": per.get("online", 0),
            "offline": per.get("offline", 0),
            "unknown": per.get("unknown", 0),
        }
        for dtype, per in sorted(counts.items())
    ]
    cols: list[dict[str, Any]] = [{"name": t("device_type", lang), "id": "type"}] + [
        {"name": t(s, lang), "id": s, "type": "numeric"} for s in ("online", "offline", "unknown")
    ]
    # every device, not online first, each linked to its page (/devices/{id})
    every = cached(("ward_devices", code), lambda c: queries.ward_devices(c, ward=code))
    extra: list[Any] = []
    if every:
        extra = [
            html.H3(t("device_list", lang)),
            table(
                "ward-device-list",
                [
                    {
                        "device": md_link(str(r.device_id), f"/devices/{r.device_id}"),
                        "type": labels.get(r.device_type, r.device_type),
                        "status": t(r.status, lang),
                        "last_seen": fmt_datetime(r.last_seen, lang),
                    }
                    for r in every
                ],
                [
                    {"name": t("device", lang), "id": "device", "presentation": "markdown"},
                    {"name": t("device_type", lang), "id": "type"},
                    {"name": t("status", lang), "id": "status"},
                    {"name": t("last_seen", lang), "id": "last_seen"},
                ],
                page_size=10,
                filterable=True,
            ),
        ]
    n_all = sum(sum(per.values()) for per in counts.values())
    n_on = sum(per.get("online", 0) for per in counts.values())
    uptime = (kpi_board("day").get("sensor_uptime") or {"wards": {}})["wards"].get(code)
    # two figures that measure different things: both defined on screen
    defs = html.Ul(
        id="ward-devices-defs",
        className="defs",
        children=[
            html.Li(
                [
                    html.B(f"{t('devices_online_now', lang)}: "),
                    f"{fmt_num(n_on, 0, lang)}/{fmt_num(n_all, 0, lang)}"
                    + (f" ({fmt_num(100.0 * n_on / n_all, 1, lang)} %)" if n_all else "")
                    + f" — {t('online_now_def', lang)}",
                ]
            ),
            html.Li(
                [
                    html.B(f"{kpi_heading(st.kpis['sensor_uptime'], lang)}: "),
                    (fmt_num(uptime[0], 1, lang) + " %") if uptime else t("no_data", lang),
                    f" — {t('uptime_def', lang)}",
                ]
            )
            if "sensor_uptime" in st.kpis
            else "",
        ],
    )
    return [defs, table("ward-devices-table", rows, cols, page_size=10), *extra]


def _cameras(code: str, lang: str) -> Any:
    found = cached(("cameras", (code,)), lambda c: queries.cameras(c, wards=[code]))
    return camera_table("ward-cameras-table", found, lang)


@callback(
    Output("ward-reports", "children"),
    Input("ward-interval", "n_intervals"),
    State("ward-code", "data"),
)
def refresh_reports(_n: int | None, code: str | None) -> Any:
    """Citizen reports of the ward: figures, by category, pins of the open ones."""
    from dashboards.components import reports_box

    st = state()
    if not isinstance(code, str) or code not in st.ward_names or st.cfg.categories is None:
        raise dash.exceptions.PreventUpdate
    require("view", ward=code)
    _, lang = who()
    return [
        html.H2(reports_box.TEXT["title"][1 if lang == "en" else 0]),
        *reports_box.section([code], lang, prefix="ward"),
        *reports_box.ward_pins(code, lang),
    ]
