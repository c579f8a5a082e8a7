"""``/devices/{id}``: one device — each metric's readings over a chosen range (last hour to a
year, or custom dates; raw, hourly or daily by the range's length), zoomable; its status
history and when it was last seen. Ward leaders see only their wards' devices: checked before
the page is served (dashboards.devices.guard) and again in the callback."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboards import devices as dq
from dashboards.components.common import cached, require, who
from dashboards.components.layout import frame, refused, table
from dashboards.components.tables import controls
from dashboards.i18n import TZ, fmt_datetime, local, plotly_separators, t, time_axis
from dashboards.state import state

dash.register_page(__name__, path_template="/devices/<device_id>", title="IOC — Thiết bị", order=20)

RANGE_LABELS = {
    "1h": ("1 giờ qua", "Last hour"),
    "6h": ("6 giờ qua", "Last 6 hours"),
    "24h": ("24 giờ qua", "Last 24 hours"),
    "7d": ("7 ngày qua", "Last 7 days"),
    "30d": ("30 ngày qua", "Last 30 days"),
    "90d": ("90 ngày qua", "Last 90 days"),
    "365d": ("1 năm qua", "Last year"),
    "custom": ("Tùy chọn", "Custom"),
}


def layout(device_id: str | None = None, **_: Any) -> html.Div:
    user, lang = who()
    st = state()
    with st.pool.conn() as conn:
        dev = dq.device(conn, device_id or "")
    if dev is None:
        return html.Div(t("not_found", lang), className="refused", id="dev-not-found")
    if not user.can("view") or not user.may_see_ward(str(dev["ward_code"])):
        return refused(lang)
    dtype = st.cfg.sensors.device_types.get(str(dev["device_type"]))
    kind = (dtype.label_en if lang == "en" else dtype.label_vi) if dtype else dev["device_type"]
    ward = str(dev["ward_code"])
    today = dt.datetime.now(TZ).date()
    return frame(
        user,
        f"/devices/{dev['device_id']}",
        lang,
        [
            dcc.Store(id="dev-id", data=dev["device_id"]),
            html.Div(
                className="page-head",
                children=[
                    html.H1(f"{kind} {dev['device_id']}", id="dev-title"),
                    dcc.Link(
                        f"{st.ward_names.get(ward, ward)} ({ward})",
                        href=f"/ward/{ward}",
                        id="dev-ward-link",
                    ),
                ],
            ),
            html.Div(
                id="dev-facts",
                className="dev-facts",
                children=[
                    html.Span([html.B(f"{t('status', lang)}: "), t(str(dev["status"]), lang)]),
                    html.Span(
                        [html.B(f"{t('last_seen', lang)}: "), fmt_datetime(dev["last_seen"], lang)]
                    ),
                    html.Span(
                        [
                            html.B(f"{t('first_seen', lang)}: "),
                            fmt_datetime(dev["first_seen"], lang),
                        ]
                    ),
                ],
            ),
            controls(
                html.Label(t("time_range", lang)),
                dcc.Dropdown(
                    id="dev-range",
                    options=[
                        {"label": v[1] if lang == "en" else v[0], "value": k}
                        for k, v in RANGE_LABELS.items()
                    ],
                    value=dq.DEFAULT_RANGE,
                    clearable=False,
                    style={"width": "220px"},
                ),
                dcc.DatePickerRange(
                    id="dev-dates",
                    # the default range's days (sync_dates keeps them in step)
                    start_date=local(dt.datetime.now(dt.UTC) - dq.RANGES[dq.DEFAULT_RANGE])
                    .date()
                    .isoformat(),
                    end_date=today.isoformat(),
                    max_date_allowed=today.isoformat(),
                    display_format="DD/MM/YYYY" if lang == "vi" else "YYYY-MM-DD",
                    style={"width": "300px"},  # two dates: not the row's whole width
                ),
                html.Span(id="dev-resolution", className="muted"),
            ),
            html.Div(id="dev-graphs"),
            html.H2(t("status_history", lang)),
            html.Div(id="dev-history"),
        ],
    )


def span_of(
    range_key: str | None, start: str | None, end: str | None
) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) of the chosen range; custom: whole local days from start to end."""
    now = dt.datetime.now(dt.UTC)
    if range_key == "custom":
        try:
            a = dt.date.fromisoformat(str(start)[:10])
            b = dt.date.fromisoformat(str(end)[:10])
        except ValueError:
            raise PreventUpdate from None
        if b < a:
            a, b = b, a
        lo = dt.datetime.combine(a, dt.time(), TZ)
        hi = min(dt.datetime.combine(b + dt.timedelta(days=1), dt.time(), TZ), now)
        return lo, max(hi, lo + dt.timedelta(hours=1))
    length = dq.RANGES.get(range_key or "", dq.RANGES[dq.DEFAULT_RANGE])
    return now - length, now


@callback(
    Output("dev-range", "value"),
    Output("dev-dates", "start_date"),
    Output("dev-dates", "end_date"),
    Input("dev-range", "value"),
    Input("dev-dates", "start_date"),
    Input("dev-dates", "end_date"),
    prevent_initial_call=True,
)
def sync_dates(range_key: Any, start: Any, end: Any) -> tuple[Any, Any, Any]:
    """The date picker shows the days of the chosen range; picking dates chooses
    "custom" (one callback, so the two controls never disagree)."""
    if dash.ctx.triggered_id == "dev-dates":
        return (
            ("custom" if range_key != "custom" else dash.no_update),
            dash.no_update,
            dash.no_update,
        )
    if range_key == "custom" or range_key not in dq.RANGES:
        raise PreventUpdate
    lo, hi = span_of(str(range_key), None, None)
    return dash.no_update, local(lo).date().isoformat(), local(hi).date().isoformat()


@callback(
    Output("dev-graphs", "children"),
    Output("dev-history", "children"),
    Output("dev-resolution", "children"),
    Input("dev-range", "value"),
    Input("dev-dates", "start_date"),
    Input("dev-dates", "end_date"),
    State("dev-id", "data"),
)
def refresh(range_key: str | None, start: str | None, end: str | None, device_id: str) -> Any:
    st = state()
    if not isinstance(device_id, str):
        raise PreventUpdate
    with st.pool.conn() as conn:
        dev = dq.device(conn, device_id)
    if dev is None:
        raise PreventUpdate
    require("view", str(dev["ward_code"]))  # the server-side ward check, again
    _, lang = who()
    lo, hi = span_of(range_key, start, end)
    step = dq.resolution(hi - lo)
    dtype = st.cfg.sensors.device_types.get(str(dev["device_type"]))
    metrics = [m for m in dtype.metrics] if dtype else []
    key = (
        "dev_readings",
        device_id,
        step,
        lo.replace(second=0, microsecond=0).isoformat(),
        hi.replace(second=0, microsecond=0).isoformat(),
    )
    df = cached(
        key,
        lambda c: dq.readings(
            c, device_id=device_id, metrics=[m.name for m in metrics], start=lo, end=hi, step=step
        ),
    )
    graphs: list[Any] = []
    for m in metrics:
        d = df[df["metric"] == m.name]
        label = (m.label_en if lang == "en" else m.label_vi) or m.name
        graphs.append(
            html.Div(
                className="card",
                children=[
                    html.H3(f"{label} ({m.unit})" if m.unit else label),
                    dcc.Graph(
                        id={"type": "dev-graph", "metric": m.name},
                        figure=_figure(d, m.unit, step, lo, hi, lang),
                        config={"displayModeBar": True, "displaylogo": False, "responsive": True},
                        style={"height": "300px"},
                    ),
                ],
            )
        )
    if not graphs:
        graphs = [html.Div(t("no_data", lang), className="muted")]
    hist = cached(("dev_status", device_id), lambda c: dq.status_history(c, device_id))
    rows = [
        {"ts": fmt_datetime(ts, lang), "status": t(str(status), lang)}
        for ts, status in zip(hist["ts"], hist["status"], strict=True)
    ]
    history = (
        table(
            "dev-history-table",
            rows,
            [
                {"name": t("time", lang), "id": "ts"},
                {"name": t("status", lang), "id": "status"},
            ],
            page_size=10,
        )
        if rows
        else html.Div(t("no_rows", lang), className="muted")
    )
    res = t(f"resolution_{step}", lang)
    return graphs, history, f"{t('resolution', lang)}: {res} · {len(df)} {t('points', lang)}"


def _figure(
    d: Any, unit: str, step: str, lo: dt.datetime, hi: dt.datetime, lang: str
) -> dict[str, Any]:
    xs = _local_iso(d["ts"])
    data: list[dict[str, Any]] = []
    if step != "raw" and len(d):
        data.append(  # the min-max band of each bucket
            {
                "type": "scatter",
                "x": xs + xs[::-1],
                "y": _floats(d["hi"]) + _floats(d["lo"])[::-1],
                "fill": "toself",
                "fillcolor": "rgba(43,108,176,0.15)",
                "line": {"width": 0},
                "hoverinfo": "skip",
                "name": "min–max",
                "showlegend": False,
            }
        )
    data.append(
        {
            "type": "scattergl" if len(d) > 2000 else "scatter",
            "x": xs,
            "y": _floats(d["value"]),
            "mode": "lines" if len(d) > 200 else "lines+markers",
            "line": {"color": "#2b6cb0", "width": 1.5},
            "name": unit,
            "showlegend": False,
        }
    )
    return {
        "data": data,
        "layout": {
            "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
            "separators": plotly_separators(lang),
            "xaxis": {
                "range": [_iso(lo), _iso(hi)],
                "rangeslider": {"visible": False},
                **time_axis(lang),
            },
            "yaxis": {"title": {"text": unit}},
            "dragmode": "zoom",
            "paper_bgcolor": "#ffffff",
            "plot_bgcolor": "#ffffff",
        },
    }


def _iso(ts: dt.datetime) -> str:
    """Local wall-clock time, as the points' (no offset: plotly draws what it reads)."""
    return local(ts).replace(tzinfo=None).isoformat(timespec="seconds")


def _local_iso(ts: pd.Series) -> list[str]:
    """The points' local times in one vectorised step (a year of raw readings is 500k
    points; a Python datetime per point cost more than the query)."""
    if ts.empty:
        return []
    naive = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).tz_convert(TZ).tz_localize(None)
    out: list[str] = np.datetime_as_string(naive.to_numpy().astype("datetime64[s]")).tolist()
    return out


def _floats(col: pd.Series) -> list[float]:
    out: list[float] = col.to_numpy(dtype=float).tolist()
    return out
