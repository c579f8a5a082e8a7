"""Figures built from DataFrames by pure functions (no database, no request)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboards.i18n import date_axis_format, fmt_num, local, plotly_separators, t, unit_label
from dashboards.kpiview import decimals
from dashboards.queries import Camera, Device
from ioc.config import Kpi
from ioc.missing import is_missing

DARK = {"bg": "#05080f", "fg": "#f2f5fa", "grid": "#2a3344", "base": "#2b3445", "line": "#0b1220"}
LIGHT = {"bg": "#ffffff", "fg": "#1b2330", "grid": "#e3e7ee", "base": "#d9dde3", "line": "#ffffff"}

# Plotly's geo subplot fetches a world topojson even when its base layers are hidden: serve an
# empty one locally (dashboards/assets/topojson/) so that nothing is fetched from the internet.
MAP_CONFIG: Any = {"displayModeBar": False, "responsive": True, "topojsonURL": "/assets/topojson/"}
GRAPH_CONFIG: Any = {"displayModeBar": False, "responsive": True}

# green = good: the scale runs bad -> good along increasing "goodness"
GOOD_SCALE = [[0.0, "#d73027"], [0.5, "#fee08b"], [1.0, "#1a9850"]]
# from the red threshold (0) to the target (1): red, through orange, to amber just short of
# the target; green only where the target is met (Kpi.status: missing it is never green)
GREEN_SHARE = 0.1  # of the colour bar: the target met and beyond
TARGET_SCALE = [
    [0.0, "#d73027"],
    [0.45, "#f46d43"],
    [1 - GREEN_SHARE - 0.001, "#f0a202"],
    [1 - GREEN_SHARE, "#1a9850"],
    [1.0, "#1a9850"],
]
# a count with no target (applications received): one hue, neither good nor bad
NEUTRAL_SCALE = [[0.0, "#deebf7"], [1.0, "#08519c"]]

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
    if kpi is not None and kpi.status(0.0) == "neutral":
        return {"colorscale": NEUTRAL_SCALE, "reversescale": False}
    out: dict[str, Any] = {
        "colorscale": GOOD_SCALE,
        "reversescale": kpi is not None and kpi.direction == "lower_better",
    }
    if kpi is not None and kpi.target is not None and kpi.red is not None:
        lo, hi = sorted((float(kpi.target), float(kpi.red)))
        if hi > lo:
            # a tenth of the range past the target, so that the colour bar shows the green
            # (the target met) as well as the amber and red
            extra = GREEN_SHARE / (1 - GREEN_SHARE) * (hi - lo)
            if kpi.direction == "higher_better":
                hi += extra
            else:
                lo -= extra
            out.update(zmin=lo, zmax=hi, colorscale=TARGET_SCALE)
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
                names.get(str(code), str(code)),
                f"{fmt_num(float(value), dec, lang)} {unit}".strip(),
                f"{t('rank', lang)} {int(rank)}/{n_ranked}" if not is_missing(rank) else "",
            ]
            for code, value, rank in zip(
                have["ward_code"], have["value"], have["rank"], strict=True
            )
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
    hist: pd.DataFrame,
    ward: str,
    kpi: Kpi,
    *,
    lang: str,
    ward_label: str,
    height: int = 220,
    city_label: str | None = None,
) -> dict[str, Any]:
    """One KPI of one ward over time, with the city (rows 'city': for a count, the wards'
    median, named by ``city_label``) and the target (a plain figure dict)."""
    data: list[dict[str, Any]] = []
    xs_all: list[str] = []
    other = city_label or t("city", lang)
    for code, name, dash in ((ward, ward_label, "solid"), ("city", other, "dot")):
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
    # a few categories (a ward leader's one ward) would each fill a wide band: keep the bars
    # about as thick as in a chart of six
    n = int(df[x].nunique()) if x in df else 0
    fig.update_layout(
        barmode="stack" if stacked else "group",
        bargap=max(0.2, 1.0 - 0.8 * n / 6) if n else 0.2,
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
    """One line per series over ``df[x]``, a column of days: one tick per day (or per few
    days for a long range), never several ticks with the same date."""
    th = _theme(dark)
    fig = go.Figure()
    for col, label, color in series:
        fig.add_trace(
            go.Scatter(x=df[x], y=df[col], name=label, mode="lines+markers", line_color=color)
        )
    n_days = int(df[x].nunique()) if x in df else 0
    day_ms = 86_400_000
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        paper_bgcolor=th["bg"],
        plot_bgcolor=th["bg"],
        font={"color": th["fg"], "size": 20 if dark else 12},
        legend={"orientation": "h", "y": 1.12},
        separators=plotly_separators(lang),
        xaxis={
            "gridcolor": th["grid"],
            "tickformat": date_axis_format(lang),
            "dtick": day_ms * max(1, math.ceil(n_days / 12)),
        },
        yaxis={"gridcolor": th["grid"]},
    )
    return fig


def pick_labelled(
    ranked: pd.DataFrame,
    kpi: Kpi | None,
    alerting: set[str],
    *,
    every: list[str] | None = None,
    worst_n: int = 6,
    cap: int = 16,
) -> tuple[list[str], list[str]]:
    """(highlighted, others): the wards whose names a wall map writes. Highlighted: those with
    an open alert, the ``worst_n`` worst ranked and those past the red threshold (at most
    ``cap``, in that order); others: the rest of ``every`` (all wards, on a 4K screen)."""
    picked: list[str] = []

    def add(codes: list[str]) -> None:
        for c in codes:
            if c not in picked and len(picked) < cap:
                picked.append(c)

    add(sorted(alerting))
    if not ranked.empty and "rank" in ranked:
        # worst first, ties by code: the same labels for the same data, whatever order the
        # rows came in (a label that moved would redraw the wall's map)
        have = ranked.dropna(subset=["rank"]).sort_values(
            ["rank", "ward_code"], ascending=[False, True], kind="mergesort"
        )
        add([str(c) for c in have["ward_code"].head(worst_n)])
        if kpi is not None:
            add(
                [
                    str(c)
                    for c, v in zip(have["ward_code"], have["value"], strict=True)
                    if kpi.status(float(v)) == "red"
                ]
            )
    return picked, [c for c in every or [] if c not in picked]


def short_name(name: str) -> str:
    """'Hải Châu' for 'Phường Hải Châu' (the map says the names; the type is noise there)."""
    for prefix in ("Phường ", "Xã ", "Đặc khu "):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def ward_labels(
    codes: list[str],
    names: dict[str, str],
    where: dict[str, tuple[float, float]],
    *,
    size: float | list[float],
    dark: bool = True,
    name: str = "labels",
) -> dict[str, Any]:
    """A text-only scattergeo trace writing ward names at their centroids, with a halo so that
    they read on any fill colour (a wall has no hover)."""
    if isinstance(size, list):
        size = [s for c, s in zip(codes, size, strict=True) if c in where]
    codes = [c for c in codes if c in where]
    fg, halo = ("#ffffff", "#05080f") if dark else ("#1b2330", "#ffffff")
    return {
        "type": "scattergeo",
        "mode": "text",
        "lat": [where[c][0] for c in codes],
        "lon": [where[c][1] for c in codes],
        "text": [short_name(names.get(c, c)) for c in codes],
        "textfont": {
            "size": size,
            "color": fg,
            "weight": 700,
            "shadow": f"0 0 3px {halo}, 0 0 3px {halo}, 0 0 5px {halo}",
        },
        "hoverinfo": "skip",
        "showlegend": False,
        "name": name,
    }


def label_points(geojson: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(lat, lon) where each ward's name goes: the mean of its largest ring's points, so that
    the label sits on the polygon drawn (a ward's official centroid may be elsewhere, e.g. an
    island group drawn as an inset)."""
    out: dict[str, tuple[float, float]] = {}
    for feat in geojson.get("features", []):
        geom = feat.get("geometry") or {}
        if geom.get("type") == "Polygon":
            rings = [geom["coordinates"][0]]
        elif geom.get("type") == "MultiPolygon":
            rings = [p[0] for p in geom["coordinates"]]
        else:
            continue
        ring = max(rings, key=len)
        lons = [float(pt[0]) for pt in ring]
        lats = [float(pt[1]) for pt in ring]
        if lons:
            out[str(feat.get("id"))] = (sum(lats) / len(lats), sum(lons) / len(lons))
    return out


def place_labels(
    codes: list[str],
    texts: dict[str, str],
    where: dict[str, tuple[float, float]],
    *,
    size_px: float,
    px_per_deg: float,
    taken: list[tuple[float, float, float, float]] | None = None,
) -> list[str]:
    """The codes whose labels fit, in priority order, none overlapping another (or a box in
    ``taken``, which is extended): a name that would sit on another is left out rather than
    printed illegibly. Boxes are estimated from the text length and the font size."""
    boxes = taken if taken is not None else []
    kept: list[str] = []
    for c in codes:
        if c not in where:
            continue
        lat, lon = where[c]
        x, y = lon * px_per_deg, lat * px_per_deg
        w = 0.56 * size_px * len(texts.get(c, c)) / 2 + 2
        h = 0.62 * size_px
        box = (x - w, y - h, x + w, y + h)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
            continue
        boxes.append(box)
        kept.append(c)
    return kept


def map_px_per_deg(
    where: dict[str, tuple[float, float]], width_px: float, height_px: float
) -> float:
    """Roughly how many screen pixels a degree spans on a map fitted to ``where``'s points."""
    if not where:
        return 1.0
    lats = [p[0] for p in where.values()]
    lons = [p[1] for p in where.values()]
    span_lon = max(max(lons) - min(lons), 1e-6) * 1.15  # polygons reach past the centroids
    span_lat = max(max(lats) - min(lats), 1e-6) * 1.15
    return min(width_px / span_lon, height_px / span_lat)


STATUS_PIN = {"online": "#1a9850", "offline": "#d73027", "unknown": "#9e9e9e"}


def ward_pins_map(
    geojson: dict[str, Any],
    code: str,
    pins: Sequence[Device],
    *,
    labels: dict[str, str],
    lang: str,
    height: int = 420,
    cameras: Sequence[Camera] = (),
) -> dict[str, Any]:
    """One ward's outline with its devices as round pins and its cameras as square ones,
    coloured by status (hover: a device's id and kind; a camera's name, id, status and the last
    hour's count); devices and cameras without a position are left out. Each pin trace's
    ``legendgroup`` is ``devices`` or ``cameras``."""
    feature = [f for f in geojson.get("features", []) if str(f.get("id")) == code]
    one = {"type": "FeatureCollection", "features": feature}
    data: list[dict[str, Any]] = [
        {
            "type": "choropleth",
            "geojson": one,
            "locations": [code],
            "z": [0],
            "featureidkey": "id",
            "colorscale": [[0, "#e8eef6"], [1, "#e8eef6"]],
            "showscale": False,
            "marker": {"line": {"color": "#2b6cb0", "width": 2}},
            "hoverinfo": "skip",
            "name": "ward",
        }
    ]
    have = [p for p in pins if p.lat is not None and p.lon is not None]
    for status, colour in STATUS_PIN.items():
        d = [p for p in have if p.status == status]
        if not d:
            continue
        data.append(
            {
                "type": "scattergeo",
                "mode": "markers",
                "lat": [p.lat for p in d],
                "lon": [p.lon for p in d],
                "marker": {"size": 9, "color": colour, "line": {"color": "#fff", "width": 1}},
                "customdata": [[p.device_id, labels.get(p.device_type, p.device_type)] for p in d],
                "hovertemplate": "<b>%{customdata[0]}</b><br>%{customdata[1]}<extra></extra>",
                "name": t(status, lang),
                "legendgroup": "devices",
                "legendgrouptitle": {"text": t("devices", lang)},
            }
        )
    data.extend(camera_pins(cameras, lang))
    return pins_figure(data, height)


def pins_figure(data: list[dict[str, Any]], height: int) -> dict[str, Any]:
    """Outlines and pins on a map fitted to the outlines, the legend below."""
    return {
        "data": data,
        "layout": {
            "height": height,
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "showlegend": True,
            "legend": {"orientation": "h", "y": 0},
            "geo": {
                "fitbounds": "locations",
                "visible": False,
                "projection": {"type": "mercator"},
            },
            "paper_bgcolor": "#ffffff",
        },
    }


def camera_pins(cameras: Sequence[Camera], lang: str) -> list[dict[str, Any]]:
    """Scattergeo traces of the cameras that have a position: square pins with a dark edge,
    one trace per status (legend group ``cameras``); hover: name and id, status, the last
    hour's count."""
    have = [c for c in cameras if c.lat is not None and c.lon is not None]
    out: list[dict[str, Any]] = []
    for status, colour in STATUS_PIN.items():
        d = [c for c in have if c.status == status]
        if not d:
            continue
        hover = []
        for r in d:
            title = html.escape(f"{r.name} ({r.camera_id})" if r.name else r.camera_id)
            hover.append(
                f"<b>{title}</b><br>{t('status', lang)}: {t(status, lang)}"
                f"<br>{t('count_1h', lang)}: "
                + (fmt_num(r.count_1h, 0, lang) if r.count_1h is not None else t("no_data", lang))
            )
        out.append(
            {
                "type": "scattergeo",
                "mode": "markers",
                "lat": [c.lat for c in d],
                "lon": [c.lon for c in d],
                "marker": {
                    "size": 13,
                    "symbol": "square",
                    "color": colour,
                    "line": {"color": "#1b2330", "width": 1.5},
                },
                "customdata": [[c.camera_id] for c in d],
                "text": hover,
                "hovertemplate": "%{text}<extra></extra>",
                "name": t(status, lang),
                "legendgroup": "cameras",
                "legendgrouptitle": {"text": t("cameras", lang)},
            }
        )
    return out


def cameras_map(
    geojson: dict[str, Any], codes: list[str], cameras: Sequence[Camera], *, lang: str
) -> dict[str, Any]:
    """The outlines of ``codes`` (the wards shown) and their cameras as pins
    (:func:`camera_pins`), fitted to those wards."""
    wanted = set(codes)
    feats = [f for f in geojson.get("features", []) if str(f.get("id")) in wanted]
    data: list[dict[str, Any]] = []
    if feats:
        ids = [str(f.get("id")) for f in feats]
        data.append(
            {
                "type": "choropleth",
                "geojson": {"type": "FeatureCollection", "features": feats},
                "locations": ids,
                "z": [0] * len(ids),
                "featureidkey": "id",
                "colorscale": [[0, "#e8eef6"], [1, "#e8eef6"]],
                "showscale": False,
                "marker": {"line": {"color": "#7a93b5", "width": 0.8}},
                "hoverinfo": "skip",
                "name": "wards",
            }
        )
    data.extend(camera_pins(cameras, lang))
    return pins_figure(data, 380)


def on_basemap(fig: dict[str, Any], basemap: Any) -> dict[str, Any]:
    """The same ward map over the city's own base map (``ioc.yaml`` ``basemap``): MapLibre
    traces instead of a tile-free geo subplot, the tiles (or style) it names, its attribution
    written on the map. Unchanged when no base map is configured."""
    if basemap is None or not getattr(basemap, "enabled", False):
        return fig
    lats: list[float] = []
    lons: list[float] = []
    for trace in fig["data"]:
        if trace.get("type") == "choropleth":
            for feat in trace["geojson"].get("features", []):
                geom = feat.get("geometry") or {}
                polys = (
                    geom.get("coordinates", [])
                    if geom.get("type") == "MultiPolygon"
                    else [geom.get("coordinates", [])]
                )
                for poly in polys:
                    for ring in poly[:1]:
                        for pt in ring:
                            lons.append(float(pt[0]))
                            lats.append(float(pt[1]))
            trace["type"] = "choroplethmap"
            trace["marker"] = {**trace.get("marker", {}), "opacity": basemap.opacity}
        elif trace.get("type") == "scattergeo":
            trace["type"] = "scattermap"
            marker = trace.get("marker")
            if isinstance(marker, dict):  # a map style's symbols take no colour: circles
                marker.pop("symbol", None)
                marker.pop("line", None)
            font = trace.get("textfont")
            if isinstance(font, dict):
                font.pop("shadow", None)
    if basemap.tiles:
        style: Any = {
            "version": 8,
            "sources": {
                "base": {
                    "type": "raster",
                    "tiles": [basemap.tiles],
                    "tileSize": 256,
                    "attribution": basemap.attribution,
                }
            },
            "layers": [{"id": "base", "type": "raster", "source": "base"}],
        }
    else:
        style = basemap.style
    layout = fig["layout"]
    layout.pop("geo", None)
    view: dict[str, Any] = {"style": style}
    if lats:
        span = max(max(lats) - min(lats), (max(lons) - min(lons)) * 0.6, 1e-3)
        view["center"] = {"lat": (max(lats) + min(lats)) / 2, "lon": (max(lons) + min(lons)) / 2}
        view["zoom"] = max(1.0, min(16.0, 8.6 - math.log2(span)))
    layout["map"] = view
    layout.setdefault("annotations", []).append(
        {
            "text": basemap.attribution,
            "showarrow": False,
            "xref": "paper",
            "yref": "paper",
            "x": 1,
            "y": 0,
            "xanchor": "right",
            "yanchor": "bottom",
            "font": {"size": 11},
            "bgcolor": "rgba(255,255,255,0.7)",
        }
    )
    return fig
