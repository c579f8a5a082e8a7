"""Figures built from DataFrames by pure functions (no database, no request)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboards.i18n import date_axis_format, fmt_num, local, plotly_separators, t, unit_label
from dashboards.kpiview import decimals, is_missing
from dashboards.queries import records
from ioc.config import Kpi

DARK = {"bg": "#05080f", "fg": "#f2f5fa", "grid": "#2a3344", "base": "#2b3445", "line": "#0b1220"}
LIGHT = {"bg": "#ffffff", "fg": "#1b2330", "grid": "#e3e7ee", "base": "#d9dde3", "line": "#ffffff"}

# Plotly's geo subplot fetches a world topojson even when its base layers are hidden: serve an
# empty one locally (dashboards/assets/topojson/) so that nothing is fetched from the internet.
MAP_CONFIG: Any = {"displayModeBar": False, "responsive": True, "topojsonURL": "/assets/topojson/"}
GRAPH_CONFIG: Any = {"displayModeBar": False, "responsive": True}

# green = good: the scale runs bad -> good along increasing "goodness"
GOOD_SCALE = [[0.0, "#d73027"], [0.5, "#fee08b"], [1.0, "#1a9850"]]

# VN_AQI bands (Decision 1459/QĐ-TCMT, see KPI-REFERENCE.md) on a 0-300 scale: good green,
# moderate yellow, poor orange, bad red, very bad purple (hazardous > 300: brown, clamped)
AQI_MAX = 300.0
_AQI_BANDS = (
    (0, 50, "rgb(0,228,0)"),
    (50, 100, "rgb(255,255,0)"),
    (100, 150, "rgb(255,126,0)"),
    (150, 200, "rgb(255,0,0)"),
    (200, 300, "rgb(143,63,151)"),
)
AQI_SCALE = [[edge / AQI_MAX, colour] for lo, hi, colour in _AQI_BANDS for edge in (lo, hi)]


def map_colours(kpi_name: str, kpi: Kpi | None) -> dict[str, Any]:
    """Colour scale of the ward map for a KPI: VN_AQI's own band colours for the air quality
    index; for a KPI with a target and a red threshold, red at the red threshold and green at
    the target (a ward is not painted red only because it is the lowest of good values);
    otherwise relative to the values shown."""
    if kpi is not None and (kpi.query == "aqi" or kpi_name == "aqi"):
        return {"colorscale": AQI_SCALE, "zmin": 0.0, "zmax": AQI_MAX, "reversescale": False}
    out: dict[str, Any] = {
        "colorscale": GOOD_SCALE,
        "reversescale": kpi is not None and kpi.direction == "lower_better",
    }
    if kpi is not None and kpi.target is not None and kpi.red is not None:
        lo, hi = sorted((float(kpi.target), float(kpi.red)))
        if hi > lo:
            out.update(zmin=lo, zmax=hi)
    return out


def _theme(dark: bool) -> dict[str, str]:
    return DARK if dark else LIGHT


def empty_figure(message: str, *, dark: bool = False, height: int = 300) -> go.Figure:
    th = _theme(dark)
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        font={"size": 18, "color": th["fg"]},
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
    )
    fig.update_layout(
        height=height,
        paper_bgcolor=th["bg"],
        plot_bgcolor=th["bg"],
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
    )
    return fig


def ward_map(
    geojson: dict[str, Any],
    names: dict[str, str],
    ranked: pd.DataFrame,
    kpi_name: str,
    kpi: Kpi | None,
    *,
    lang: str,
    dark: bool = False,
    height: int | None = 560,
    n_wards: int = 94,
    n_ranked: int | None = None,
) -> dict[str, Any]:
    """All wards of the GeoJSON in grey, wards with a value coloured (green = good).

    ``ranked`` has columns ward_code, value, rank (see kpiview.ranks). No tiles, no network:
    a geo subplot with its base layers hidden, fitted to the wards. Built as a plain dict
    (no plotly validation: the figure is rebuilt on every refresh).
    """
    th = _theme(dark)
    codes = [str(f["id"]) for f in geojson["features"]]
    label = (kpi.label_en if lang == "en" else kpi.label_vi) if kpi else kpi_name
    unit = unit_label(kpi.unit, lang) if kpi else ""
    line = {"color": th["line"], "width": 0.6}
    data: list[dict[str, Any]] = [
        {
            "type": "choropleth",
            "geojson": geojson,
            "locations": codes,
            "z": [0] * len(codes),
            "featureidkey": "id",
            "colorscale": [[0, th["base"]], [1, th["base"]]],
            "showscale": False,
            "marker": {"line": line},
            "customdata": [[names.get(c, c), t("no_data", lang)] for c in codes],
            "hovertemplate": "<b>%{customdata[0]}</b><br>%{customdata[1]}<extra></extra>",
            "name": "wards",
        }
    ]
    have = ranked.dropna(subset=["value"]) if not ranked.empty else ranked
    if not have.empty:
        if n_ranked is None:  # else: ranked among more wards than ``ranked`` holds
            n_ranked = int(ranked["rank"].notna().sum())
        dec = decimals(kpi) if kpi else 1
        custom = [
            [
                names.get(r.ward_code, r.ward_code),
                f"{fmt_num(r.value, dec, lang)} {unit}".strip(),
                f"{t('rank', lang)} {int(r.rank)}/{n_ranked}" if not is_missing(r.rank) else "",
            ]
            for r in records(have)
        ]
        data.append(
            {
                "type": "choropleth",
                "geojson": geojson,
                "locations": [str(c) for c in have["ward_code"]],
                "z": [float(v) for v in have["value"]],
                "featureidkey": "id",
                **map_colours(kpi_name, kpi),
                "marker": {"line": line},
                "customdata": custom,
                "hovertemplate": (
                    "<b>%{customdata[0]}</b><br>"
                    + label
                    + ": %{customdata[1]}<br>%{customdata[2]}<extra></extra>"
                ),
                "colorbar": {
                    "title": {"text": unit, "font": {"color": th["fg"]}},
                    "tickfont": {"color": th["fg"], "size": 18 if dark else 12},
                    "thickness": 22 if dark else 14,
                },
                "name": label,
            }
        )
    layout: dict[str, Any] = {
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "paper_bgcolor": th["bg"],
        "font": {"color": th["fg"], "size": 20 if dark else 13},
        "separators": plotly_separators(lang),
        "hoverlabel": {"font": {"size": 22 if dark else 13}},
        "uirevision": kpi_name,
        "geo": {
            "fitbounds": "locations",
            "visible": False,
            "bgcolor": th["bg"],
            "projection": {"type": "mercator"},
        },
    }
    if height:
        layout["height"] = height
    return {"data": data, "layout": layout}


def kpi_history(
    hist: pd.DataFrame, ward: str, kpi: Kpi, *, lang: str, ward_label: str, height: int = 220
) -> dict[str, Any]:
    """One KPI of one ward over time, with the city and the target (a plain figure dict)."""
    data: list[dict[str, Any]] = []
    xs_all: list[str] = []
    for code, name, dash in ((ward, ward_label, "solid"), ("city", t("city", lang), "dot")):
        d = hist[hist["ward_code"] == code]
        if d.empty:
            continue
        xs = [local(x).isoformat() for x in d["period_start"]]
        xs_all += xs
        data.append(
            {
                "type": "scatter",
                "x": xs,
                "y": [None if is_missing(v) else float(v) for v in d["value"]],
                "mode": "lines+markers",
                "name": name,
                "line": {"dash": dash},
                "marker": {"size": 4},
            }
        )
    if kpi.target is not None and xs_all:
        data.append(
            {
                "type": "scatter",
                "x": [min(xs_all), max(xs_all)],
                "y": [kpi.target, kpi.target],
                "mode": "lines",
                "name": t("target", lang),
                "line": {"dash": "dash", "color": "#888"},
                "hoverinfo": "skip",
            }
        )
    return {
        "data": data,
        "layout": {
            "height": height,
            "margin": {"l": 40, "r": 10, "t": 10, "b": 30},
            "showlegend": True,
            "legend": {"orientation": "h", "y": -0.25},
            "separators": plotly_separators(lang),
            "xaxis": {"tickformat": date_axis_format(lang)},
            "paper_bgcolor": "#ffffff",
            "plot_bgcolor": "#ffffff",
        },
    }


def bars(
    df: pd.DataFrame,
    x: str,
    series: list[tuple[str, str, str]],
    *,
    lang: str,
    dark: bool = False,
    height: int | None = 320,
    stacked: bool = False,
    horizontal: bool = False,
) -> go.Figure:
    """Grouped (or stacked) bars; ``series`` = (column, label, colour)."""
    th = _theme(dark)
    fig = go.Figure()
    for col, label, color in series:
        if horizontal:
            fig.add_trace(
                go.Bar(y=df[x], x=df[col], name=label, marker_color=color, orientation="h")
            )
        else:
            fig.add_trace(go.Bar(x=df[x], y=df[col], name=label, marker_color=color))
    fig.update_layout(
        barmode="stack" if stacked else "group",
        height=height,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        paper_bgcolor=th["bg"],
        plot_bgcolor=th["bg"],
        font={"color": th["fg"], "size": 20 if dark else 12},
        legend={"orientation": "h", "y": 1.12},
        separators=plotly_separators(lang),
        xaxis={"gridcolor": th["grid"]},
        yaxis={"gridcolor": th["grid"], "automargin": True},
    )
    return fig


def lines(
    df: pd.DataFrame,
    x: str,
    series: list[tuple[str, str, str]],
    *,
    lang: str,
    dark: bool = False,
    height: int = 320,
) -> go.Figure:
    th = _theme(dark)
    fig = go.Figure()
    for col, label, color in series:
        fig.add_trace(
            go.Scatter(x=df[x], y=df[col], name=label, mode="lines+markers", line_color=color)
        )
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        paper_bgcolor=th["bg"],
        plot_bgcolor=th["bg"],
        font={"color": th["fg"], "size": 20 if dark else 12},
        legend={"orientation": "h", "y": 1.12},
        separators=plotly_separators(lang),
        xaxis={"gridcolor": th["grid"], "tickformat": date_axis_format(lang)},
        yaxis={"gridcolor": th["grid"]},
    )
    return fig
