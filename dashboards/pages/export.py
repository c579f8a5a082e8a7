"""``/export``: analysts pick KPIs, wards, period and granularity and download CSV or XLSX
(written by ioc.reports.export, the same code as ``ioc export``); scheduled reports listed
from the ``reports`` table and downloaded through /export/report/<id>."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboards import queries
from dashboards.components.common import require, ward_options, who
from dashboards.components.layout import frame, refused, table
from dashboards.i18n import TZ, fmt_datetime, t
from dashboards.queries import records
from dashboards.state import state
from ioc.errors import IOCError

dash.register_page(__name__, path="/export", title="IOC — Xuất báo cáo", order=4)

EVERY = ("hour", "day", "week", "month")


def layout(**_: Any) -> html.Div:
    user, lang = who()
    if not user.can("export"):
        return refused(lang)
    st = state()
    today = dt.datetime.now(TZ).date()
    kpi_opts = [
        {"label": k.label_en if lang == "en" else k.label_vi, "value": name}
        for name, k in st.kpis.items()
    ]
    return frame(
        user,
        "/export",
        lang,
        [
            html.H1(t("export", lang)),
            html.Div(
                className="card",
                children=[
                    html.Div(
                        className="controls",
                        children=[
                            html.Div(
                                [
                                    html.Label(t("kpis", lang)),
                                    dcc.Dropdown(
                                        id="export-kpis",
                                        options=kpi_opts,
                                        multi=True,
                                        value=[o["value"] for o in kpi_opts[:1]],
                                    ),
                                ],
                                style={"minWidth": "360px"},
                            ),
                            html.Div(
                                [
                                    html.Label(t("wards", lang)),
                                    dcc.Dropdown(
                                        id="export-wards",
                                        options=ward_options(user),
                                        multi=True,
                                        placeholder=t("all_wards", lang),
                                    ),
                                ],
                                style={"minWidth": "320px"},
                            ),
                            html.Div(
                                [
                                    html.Label(f"{t('from', lang)} – {t('to', lang)}"),
                                    dcc.DatePickerRange(
                                        id="export-range",
                                        start_date=(today - dt.timedelta(days=30)).isoformat(),
                                        end_date=today.isoformat(),
                                        display_format="DD/MM/YYYY"
                                        if lang == "vi"
                                        else "YYYY-MM-DD",
                                        first_day_of_week=1,
                                    ),
                                ]
                            ),
                            html.Div(
                                [
                                    html.Label(t("granularity", lang)),
                                    dcc.RadioItems(
                                        id="export-every",
                                        options=[{"label": t(e, lang), "value": e} for e in EVERY],
                                        value="day",
                                        inline=True,
                                    ),
                                ]
                            ),
                            html.Div(
                                [
                                    html.Label(t("format", lang)),
                                    dcc.RadioItems(
                                        id="export-format",
                                        options=[
                                            {"label": "XLSX", "value": "xlsx"},
                                            {"label": "CSV", "value": "csv"},
                                        ],
                                        value="xlsx",
                                        inline=True,
                                    ),
                                ]
                            ),
                            html.Button(
                                t("download", lang), id="export-go", className="btn", n_clicks=0
                            ),
                        ],
                    ),
                    # the spinner shows while the file is being written
                    dcc.Loading(html.Div(id="export-msg", className="msg"), type="dot"),
                    dcc.Download(id="export-download"),
                ],
            ),
            html.Div(className="card", children=[html.H2(t("reports", lang)), _reports(lang)]),
        ],
    )


def _reports(lang: str) -> Any:
    with state().pool.conn() as conn:
        df = queries.reports(conn)
    if df.empty:
        return html.Div(t("no_rows", lang), className="muted", id="export-no-reports")
    rows = [
        {
            "name": f"[{r.name}](/export/report/{int(r.id)})",
            "schedule": t(f"schedule_{r.schedule}", lang) if r.schedule else "",
            "format": str(r.format).upper(),
            "period": f"{fmt_datetime(r.period_from, lang)} – {fmt_datetime(r.period_to, lang)}",
            "created": fmt_datetime(r.created_at, lang),
        }
        for r in records(df)
    ]
    cols = [
        {"name": t("name", lang), "id": "name", "presentation": "markdown"},
        {"name": t("period", lang), "id": "period"},
        {"name": "Lịch" if lang == "vi" else "Schedule", "id": "schedule"},
        {"name": t("format", lang), "id": "format"},
        {"name": t("created", lang), "id": "created"},
    ]
    return table("export-reports", rows, cols, page_size=15)


def _day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


@callback(
    Output("export-download", "data"),
    Output("export-msg", "children"),
    Input("export-go", "n_clicks"),
    State("export-kpis", "value"),
    State("export-wards", "value"),
    State("export-range", "start_date"),
    State("export-range", "end_date"),
    State("export-every", "value"),
    State("export-format", "value"),
    prevent_initial_call=True,
)
def download(
    n: int | None,
    kpis: list[str] | None,
    wards: list[str] | None,
    start: str | None,
    end: str | None,
    every: str | None,
    fmt: str | None,
) -> tuple[Any, ...]:
    from ioc.reports.export import write_export

    if not n:
        raise PreventUpdate
    user = require("export")
    _, lang = who()
    st = state()
    d0, d1 = _day(start), _day(end)
    kpis = [k for k in kpis or [] if k in st.kpis]
    if not kpis or d0 is None or d1 is None or every not in EVERY or fmt not in ("csv", "xlsx"):
        return dash.no_update, t("export_bad", lang)
    if wards:
        if any(not user.may_see_ward(w) for w in wards):
            raise PreventUpdate
        chosen: list[str] | None = list(wards)
    else:
        allowed = user.allowed_wards()
        chosen = None if allowed is None else sorted(allowed)
    start_ts = dt.datetime.combine(d0, dt.time(0), TZ)
    end_ts = dt.datetime.combine(d1, dt.time(23, 59, 59), TZ)
    buf = io.BytesIO()
    try:
        with st.pool.conn() as conn:
            rows = write_export(
                conn,
                st.cfg,
                kpis=kpis,
                wards=chosen,
                start=start_ts,
                end=end_ts,
                every=every,
                fmt=fmt,
                out=buf,
                lang=lang,
            )
    except IOCError as exc:
        return dash.no_update, str(exc)
    name = f"ioc_kpis_{d0.isoformat()}_{d1.isoformat()}_{every}.{fmt}"
    msg = f"{name}: {rows} " + ("dòng" if lang == "vi" else "rows")
    return dcc.send_bytes(buf.getvalue(), name), msg
