"""The optional base map (``ioc.yaml`` ``basemap``): none by default (no internet needed);
when the city configures its own tile server, the ward maps draw over it with its
attribution."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pydantic import ValidationError

from dashboards.components.figures import on_basemap, ward_map
from ioc.config import Config
from ioc.config.system import BaseMapSection


def _fig(config: Config) -> dict:
    geo = json.loads((config.dir / "wards.geojson").read_text(encoding="utf-8"))
    names = {w.code: w.name for w in config.wards}
    codes = [w.code for w in config.wards]
    ranked = pd.DataFrame(
        {
            "ward_code": codes,
            "value": [50.0 + i % 40 for i in range(len(codes))],
            "rank": list(range(1, len(codes) + 1)),
        }
    )
    kpi = config.kpis.kpis["on_time_rate"]
    return ward_map(geo, names, ranked, "on_time_rate", kpi, lang="vi")


def test_no_base_map_by_default(config: Config) -> None:
    assert not config.system.basemap.enabled
    fig = _fig(config)
    assert on_basemap(fig, config.system.basemap) is fig
    assert "geo" in fig["layout"] and {t["type"] for t in fig["data"]} == {"choropleth"}


def test_self_hosted_tiles_with_attribution(config: Config) -> None:
    bm = BaseMapSection(
        tiles="https://gis.danang.example/tiles/{z}/{x}/{y}.png",
        attribution="© Sở Tài nguyên và Môi trường Đà Nẵng",
    )
    fig = on_basemap(_fig(config), bm)
    assert {t["type"] for t in fig["data"]} == {"choroplethmap"}
    view = fig["layout"]["map"]
    assert view["style"]["sources"]["base"]["tiles"] == [bm.tiles]
    assert view["style"]["sources"]["base"]["attribution"] == bm.attribution
    assert 15.0 < view["center"]["lat"] < 16.5 and 107.0 < view["center"]["lon"] < 109.5
    assert 6 <= view["zoom"] <= 11
    assert "geo" not in fig["layout"]
    assert any(a["text"] == bm.attribution for a in fig["layout"]["annotations"])
    style_url = BaseMapSection(style="/assets/style.json", attribution="© city")
    assert on_basemap(_fig(config), style_url)["layout"]["map"]["style"] == "/assets/style.json"


@pytest.mark.parametrize(
    "bad",
    [
        {"tiles": "https://x/{z}/{x}.png", "attribution": "a"},  # no {y}
        {"tiles": "ftp://x/{z}/{x}/{y}.png", "attribution": "a"},
        {"tiles": "https://x/{z}/{x}/{y}.png"},  # whose map?
        {"tiles": "https://x/{z}/{x}/{y}.png", "style": "https://x/s.json", "attribution": "a"},
    ],
)
def test_bad_base_map_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        BaseMapSection(**bad)
