"""What the server knows for its whole life: configuration, the pool, the cache, settings.

Nothing here changes per request or per user; callbacks reach it through :func:`state`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import flask
import numpy as np

from dashboards.db import Pool, RedisTTLCache, SharedTTLCache, TTLCache
from ioc.auth import User
from ioc.config import Config, Kpi
from ioc.workdays import Holidays


@dataclass
class AppState:
    cfg: Config
    pool: Pool
    secret_key: str
    kiosk_token: str | None = None
    metrics_token: str | None = None
    # one process's cache; `ioc serve` swaps in the cache shared by its processes, and with
    # IOC_REDIS_URL every host's processes share one in Redis
    cache: TTLCache | SharedTTLCache | RedisTTLCache = field(
        default_factory=lambda: TTLCache(ttl=5.0)
    )
    # seconds a view may go without fresh data before the wall flags it
    stale_after_s: float = 900.0
    wall_period_s: float = 20.0

    @cached_property
    def geojson(self) -> dict[str, Any]:
        """The wards' polygons for the maps, rewound for d3, each ring a numpy array: the
        map callbacks send them with every refresh, and plotly's JSON step walks Python
        lists point by point (~20 ms of the overview's ~30 ms) but hands arrays to orjson
        whole. Same JSON either way."""
        path = self.cfg.dir / "wards.geojson"
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
        return rings_as_arrays(rewind_for_d3(data))

    @cached_property
    def ward_names(self) -> dict[str, str]:
        return {w.code: w.name for w in self.cfg.wards}

    @cached_property
    def holidays(self) -> Holidays:
        """Days off and worked weekends (holidays.yaml), for working-day arithmetic."""
        return Holidays.of(self.cfg.holidays)

    @property
    def kpis(self) -> dict[str, Kpi]:
        return self.cfg.kpis.kpis


def _signed_area(ring: list[list[float]]) -> float:
    return sum((x1 - x0) * (y1 + y0) for (x0, y0, *_), (x1, y1, *_) in itertools.pairwise(ring))


def rewind_for_d3(data: dict[str, Any]) -> dict[str, Any]:
    """Exterior rings clockwise, holes counter-clockwise: what d3-geo (Plotly's geo) needs.

    GeoJSON (RFC 7946) winds the other way; d3 would read such a ring as "the whole globe
    except this ward" and paint the world in the ward's colour.
    """

    def fix(poly: list[list[list[float]]]) -> list[list[list[float]]]:
        out = []
        for i, ring in enumerate(poly):
            clockwise = _signed_area(ring) > 0  # shoelace sum > 0 = clockwise (y up)
            want_cw = i == 0
            out.append(ring if clockwise == want_cw else list(reversed(ring)))
        return out

    for feat in data.get("features", []):
        geom = feat.get("geometry") or {}
        if geom.get("type") == "Polygon":
            geom["coordinates"] = fix(geom["coordinates"])
        elif geom.get("type") == "MultiPolygon":
            geom["coordinates"] = [fix(p) for p in geom["coordinates"]]
    return data


def rings_as_arrays(data: dict[str, Any]) -> dict[str, Any]:
    """Polygon rings as contiguous float arrays of shape (n, 2 or 3), in place."""

    def arr(ring: list[list[float]]) -> Any:
        return np.ascontiguousarray(ring, dtype=np.float64)

    for feat in data.get("features", []):
        geom = feat.get("geometry") or {}
        if geom.get("type") == "Polygon":
            geom["coordinates"] = [arr(r) for r in geom["coordinates"]]
        elif geom.get("type") == "MultiPolygon":
            geom["coordinates"] = [[arr(r) for r in p] for p in geom["coordinates"]]
    return data


def state() -> AppState:
    st: AppState = flask.current_app.config["IOC_STATE"]
    return st


def current_user() -> User:
    """The user of this request; the guard has already refused anonymous requests."""
    user = getattr(flask.g, "user", None)
    if user is None:  # unreachable behind the guard; refuse rather than leak
        flask.abort(401)
    return user  # type: ignore[no-any-return,unused-ignore]
