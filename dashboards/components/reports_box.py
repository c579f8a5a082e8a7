"""Citizen-report figures appended to the overview and the ward page: received in the last 7
days, open, overdue, share on time (the KPI's rule, measured now), by category; on the ward
page also the open reports as pins on the ward's outline (no map tiles: works offline)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from dashboards.components.common import cached
from dashboards.components.figures import GRAPH_CONFIG
from dashboards.i18n import fmt_num
from dashboards.state import state
from ioc.citizen import queries as rq

DAYS = 7
SLA_COLOR = {"open": "#4575b4", "overdue": "#d73027"}
TEXT = {
    "title": ("Phản ánh hiện trường (7 ngày)", "Citizen reports (7 days)"),
    "received": ("Tiếp nhận", "Received"),
    "open": ("Đang xử lý", "Open"),
    "overdue": ("Quá hạn", "Overdue"),
    "on_time": ("Đúng hạn", "On time"),
    "category": ("Lĩnh vực", "Category"),
    "none": ("Chưa có phản ánh", "No reports yet"),
    "more": ("Xem danh sách phản ánh", "See the reports"),
    "pins": ("Phản ánh đang xử lý trên bản đồ", "Open reports on the map"),
}


def _t(key: str, lang: str) -> str:
    vi, en = TEXT[key]
    return en if lang == "en" else vi


def section(wards: Sequence[str] | None, lang: str, *, prefix: str) -> list[Any]:
    """Tiles and the by-category table for ``wards`` (None: the city)."""
    key = None if wards is None else tuple(sorted(wards))
    now = dt.datetime.now(dt.UTC)
    bucket = now.replace(second=0, microsecond=0)
    start = now - dt.timedelta(days=DAYS)
    df = cached(
        ("rep_summary", key, bucket.isoformat()),
        lambda c: rq.summary(c, wards=None if key is None else list(key), start=start, now=now),
    )
    if df.empty:
        return [html.Div(_t("none", lang), className="muted", id=f"{prefix}-rep-none")]
    tot = df[["received", "open", "overdue", "on_time", "counted"]].sum()
    rate = 100.0 * float(tot["on_time"]) / float(tot["counted"]) if tot["counted"] else None

    def tile(label: str, value: float | None, dec: int, suffix: str, tid: str) -> html.Div:
        return html.Div(
            className="tile",
            id=f"{prefix}-rep-{tid}",
            children=[
                html.Div(label, className="tile-label"),
                html.Div(
                    [
                        html.Span(fmt_num(value, dec, lang), className="tile-value"),
                        html.Span(suffix, className="tile-unit"),
                    ]
                ),
            ],
        )

    cats = state().cfg.report_categories().categories
    by_cat = df.groupby("category")[["received", "open", "overdue", "on_time", "counted"]].sum()
    rows = []
    for cat, r in by_cat.sort_values("received", ascending=False).iterrows():
        c = cats.get(str(cat))
        name = (c.name.en if lang == "en" else c.name.vi) if c else str(cat)
        share = 100.0 * r["on_time"] / r["counted"] if r["counted"] else None
        rows.append(
            html.Tr(
                [
                    html.Td(name),
                    html.Td(fmt_num(r["received"], 0, lang)),
                    html.Td(fmt_num(r["open"], 0, lang)),
                    html.Td(
                        fmt_num(r["overdue"], 0, lang),
                        className="sla-overdue" if r["overdue"] else "",
                    ),
                    html.Td(fmt_num(share, 1, lang) + " %" if share is not None else "—"),
                ]
            )
        )
    head = html.Tr(
        [html.Th(_t(k, lang)) for k in ("category", "received", "open", "overdue", "on_time")]
    )
    return [
        html.Div(
            className="tiles",
            children=[
                tile(_t("received", lang), float(tot["received"]), 0, "", "received"),
                tile(_t("open", lang), float(tot["open"]), 0, "", "open"),
                tile(_t("overdue", lang), float(tot["overdue"]), 0, "", "overdue"),
                tile(_t("on_time", lang), rate, 1, " %", "ontime"),
            ],
        ),
        html.Table(
            [html.Thead(head), html.Tbody(rows)], className="kpi-table", id=f"{prefix}-rep-cats"
        ),
        dcc.Link(_t("more", lang), href="/reports"),
    ]


def _outline(code: str) -> tuple[list[float | None], list[float | None]]:
    path = state().cfg.dir / "wards.geojson"
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    xs: list[float | None] = []
    ys: list[float | None] = []
    for f in data.get("features", []):
        if str(f.get("properties", {}).get("code")) != code:
            continue
        geom = f.get("geometry") or {}
        polys = geom.get("coordinates", [])
        if geom.get("type") == "Polygon":
            polys = [polys]
        for poly in polys:
            for ring in poly[:1]:
                xs += [p[0] for p in ring] + [None]
                ys += [p[1] for p in ring] + [None]
    return xs, ys


def ward_pins(code: str, lang: str) -> Any:
    """The ward's open reports as pins on its outline (red: overdue)."""
    now = dt.datetime.now(dt.UTC)
    found = cached(
        ("rep_pins", code, now.replace(second=0, microsecond=0).isoformat()),
        lambda c: rq.report_list(
            c, wards=[code], now=now, status=["received", "assigned", "in_progress"], limit=500
        ),
    )
    xs, ys = cached(("ward_outline", code), lambda _c: _outline(code))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": "#7a8699", "width": 1},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    cats = state().cfg.report_categories().categories
    placed = [r for r in found if r.lat is not None and r.lon is not None]
    for sla in ("open", "overdue"):
        part = [r for r in placed if r.sla == sla]
        if not part:
            continue
        names = [
            (cats[c].name.en if lang == "en" else cats[c].name.vi) if c in cats else c
            for c in (r.category or "" for r in part)
        ]
        fig.add_trace(
            go.Scatter(
                x=[r.lon for r in part],
                y=[r.lat for r in part],
                mode="markers",
                marker={"size": 9, "color": SLA_COLOR[sla]},
                name=_t("overdue" if sla == "overdue" else "open", lang),
                text=[f"{r.id} · {n}" for r, n in zip(part, names, strict=True)],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        plot_bgcolor="#ffffff",
        legend={"orientation": "h"},
        height=320,
    )
    return [
        html.H3(_t("pins", lang)),
        dcc.Graph(id="ward-rep-map", figure=fig, config=GRAPH_CONFIG),
    ]
