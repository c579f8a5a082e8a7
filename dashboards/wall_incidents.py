"""The wall's incidents view (``/wall?view=incidents``, and in the rotation): open incidents as
pins on the ward map coloured by SLA state, counts by SLA state and by category, the oldest
overdue — large type, readable at 4 m. Built like the other wall views (pages/wall.py calls
:func:`view_incidents`); the user's wards scope it (the kiosk sees the city)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from dash import dcc, html

from dashboards.components.common import cached, scope_key
from dashboards.components.figures import DARK, MAP_CONFIG
from dashboards.components.incidents import SLA_COLORS, category_label, duration, sla_label
from dashboards.i18n import fmt_num, t
from dashboards.state import state
from ioc.auth import User
from ioc.incidents import queries as iq

OPEN_SLA = ("breached", "warning", "ok")


def _data(user: User) -> tuple[dict[str, Any], Any]:
    key = scope_key(user)
    wards = None if key is None else list(key)
    now = dt.datetime.now(dt.UTC)
    summary = cached(("inc_summary", key), lambda c: iq.summary(c, now=now, wards=wards))
    pins = cached(("inc_pins", key), lambda c: iq.pins(c, now=now, wards=wards))
    return summary, pins


def spread(pins: pd.DataFrame, step: float = 0.012) -> pd.DataFrame:
    """Pins at the same place (incidents placed at their ward's centre) set apart on a small
    spiral around it, so that each one shows; the first stays on the spot."""
    if pins.empty:
        return pins
    out = pins.copy()
    k = out.groupby([out["lat"].round(5), out["lon"].round(5)]).cumcount().to_numpy()
    r = step * np.sqrt(k)
    a = k * 2.399963  # the golden angle: no two on one ray
    out["lat"] = out["lat"].astype(float) + r * np.sin(a)
    out["lon"] = out["lon"].astype(float) + r * np.cos(a)
    return out


def pin_map(pins: Any, lang: str, scale: float) -> dict[str, Any]:
    """Every ward in grey, each open incident a pin in its SLA state's colour (worst on top)."""
    st = state()
    pins = spread(pins)
    codes = [str(f["id"]) for f in st.geojson["features"]]
    data: list[dict[str, Any]] = [
        {
            "type": "choropleth",
            "geojson": st.geojson,
            "locations": codes,
            "z": [0] * len(codes),
            "featureidkey": "id",
            "colorscale": [[0, DARK["base"]], [1, DARK["base"]]],
            "showscale": False,
            "marker": {"line": {"color": DARK["line"], "width": 0.6}},
            "hoverinfo": "skip",
            "name": "wards",
        }
    ]
    for s in reversed(OPEN_SLA):  # breached drawn last, on top
        d = pins[pins["sla"] == s] if not pins.empty else pins
        if d.empty:
            continue
        data.append(
            {
                "type": "scattergeo",
                "lat": [float(x) for x in d["lat"]],
                "lon": [float(x) for x in d["lon"]],
                "mode": "markers",
                "marker": {
                    "size": int(18 * scale),
                    "color": SLA_COLORS[s],
                    "line": {"color": "#ffffff", "width": max(1, int(2 * scale))},
                },
                "text": [
                    f"#{int(i)} {title}" for i, title in zip(d["id"], d["title"], strict=True)
                ],
                "hovertemplate": "%{text}<extra></extra>",
                "name": f"{sla_label(s, lang)} ({fmt_num(len(d), 0, lang)})",
            }
        )
    return {
        "data": data,
        "layout": {
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "paper_bgcolor": DARK["bg"],
            "font": {"color": DARK["fg"], "size": int(22 * scale)},
            "showlegend": True,
            "legend": {
                "x": 0.01,
                "y": 0.99,
                "bgcolor": "rgba(5,8,15,0.75)",
                "font": {"size": int(24 * scale)},
            },
            "uirevision": "incidents",
            "geo": {
                "fitbounds": "locations",
                "visible": False,
                "bgcolor": DARK["bg"],
                "projection": {"type": "mercator"},
            },
        },
    }


def view_incidents(user: User, lang: str, scale: float) -> list[Any]:
    summary, pins = _data(user)
    by_sla = summary["by_sla"]
    tiles = html.Div(
        className="tiles",
        children=[
            _tile(t("inc_open", lang), summary["open"], "#4575b4", "wall-inc-open"),
            *[
                _tile(sla_label(s, lang), by_sla.get(s, 0), SLA_COLORS[s], f"wall-inc-{s}")
                for s in OPEN_SLA
            ],
        ],
    )
    cats = [
        html.Li(
            [html.Span(category_label(c, lang)), html.Span(fmt_num(n, 0, lang), className="num")]
        )
        for c, n in summary["by_category"][:8]
    ]
    old = summary["oldest_overdue"]
    if old is None:
        oldest: Any = html.Div(t("inc_none_overdue", lang), className="muted")
    else:
        late = (dt.datetime.now(dt.UTC) - old["late_since"]).total_seconds()
        oldest = html.Div(
            className="wall-inc-oldest",
            id="wall-inc-oldest",
            children=[
                html.Div(f"#{old['id']} {old['title']}"),
                html.Div(
                    f"{state().ward_names.get(old['ward_code'] or '', t('city', lang))}"
                    f" · {t('inc_late', lang, d=duration(late, lang))}",
                    className="num",
                ),
            ],
        )
    return [
        html.Div(
            [
                html.H2(t("inc_map_title", lang)),
                dcc.Graph(
                    id="wall-inc-map",
                    figure=pin_map(pins, lang, scale),
                    config=MAP_CONFIG,
                    style={"height": "76vh"},
                ),
            ],
            className="wall-col wall-main",
        ),
        html.Div(
            [
                tiles,
                html.H2(t("inc_oldest_overdue", lang)),
                oldest,
                html.H2(t("inc_by_category", lang)),
                html.Ul(cats, className="wall-list")
                if cats
                else html.Div(t("no_rows", lang), className="muted"),
            ],
            className="wall-col wall-side",
        ),
    ]


def _tile(label: str, n: int, color: str, tile_id: str) -> html.Div:
    return html.Div(
        className="tile",
        id=tile_id,
        style={"borderTopColor": color},
        children=[
            html.Div(label, className="tile-label"),
            html.Div(html.Span(fmt_num(n, 0), className="tile-value")),
        ],
    )
