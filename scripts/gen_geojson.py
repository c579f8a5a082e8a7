#!/usr/bin/env python3
"""Build ``config/wards.geojson``: approximate ward polygons for the choropleth map.

Reads only ``config/wards.yaml`` (no data packages needed); needs ``shapely`` and ``numpy``.
The polygons are NOT official boundaries. They are a partition of a made-up outline of the
city, drawn so that each unit sits around its published location with about its published area:

1. Outline: the union of one disc per mainland unit (radius proportional to the square root of
   its area), closed morphologically and with holes filled; the disc scale is chosen so that the
   outline's area equals the sum of the units' areas.
2. Cells: a power diagram (weighted Voronoi) of the unit locations, clipped to the outline. The
   weights are fitted iteratively until every cell's area is close to the unit's ``area_km2``
   (scaled to the outline), keeping every location inside its own cell.
3. A cell clipped into several pieces keeps the piece holding its location; the other pieces go
   to the neighbour sharing the longest border with them. The cells are then simplified together
   (shared borders stay shared) and rounded to 5 decimals.

A unit far from every other one (Đặc khu Hoàng Sa, about 400 km offshore) would stretch the map's
bounding box: it is drawn as a small disc near the coast with ``inset: true`` and its real
location in ``true_lat`` / ``true_lon``.

Every feature has ``id`` = the ward code, so the file can be replaced by official boundaries
with the same ids. Run ``python scripts/gen_geojson.py`` after ``scripts/gen_wards.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import yaml
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Point, Polygon, mapping
from shapely.geometry.polygon import orient

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WARDS = ROOT / "config" / "wards.yaml"
DEFAULT_OUT = ROOT / "config" / "wards.geojson"

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320
OFFSHORE_KM = 50.0  # a unit whose nearest neighbour is farther than this is drawn as an inset
INSET_RADIUS_KM = 3.0
INSET_ANCHOR = (16.00, 108.40)  # lat, lon: at sea east of Ngũ Hành Sơn, inside the mainland bbox
INSET_GAP_KM = 3.0
SIMPLIFY_KM = 0.15
DECIMALS = 5
SOURCE_NOTE = (
    "approximate: power diagram of the config/wards.yaml locations with cell areas fitted to "
    "area_km2, clipped to a synthetic outline (scripts/gen_geojson.py); not official boundaries"
)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    type: str
    lat: float
    lon: float
    area_km2: float


class Projection:
    """Local equirectangular projection to kilometres (good to well under 1 % at this size)."""

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        self.kx = KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))

    def to_km(self, lat: float, lon: float) -> tuple[float, float]:
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * KM_PER_DEG_LAT

    def geom_to_lonlat(self, geom: shapely.Geometry) -> shapely.Geometry:
        def f(xy: FloatArray) -> FloatArray:
            out = np.empty_like(xy)
            out[:, 0] = xy[:, 0] / self.kx + self.lon0
            out[:, 1] = xy[:, 1] / KM_PER_DEG_LAT + self.lat0
            return out

        return shapely.transform(geom, f)


def load_units(path: Path) -> list[Unit]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    units = [
        Unit(
            code=str(w["code"]),
            name=str(w["name"]),
            type=str(w["type"]),
            lat=float(w["lat"]),
            lon=float(w["lon"]),
            area_km2=float(w["area_km2"]),
        )
        for w in data["wards"]
    ]
    return sorted(units, key=lambda u: u.code)


def split_offshore(units: list[Unit]) -> tuple[list[Unit], list[Unit]]:
    """Mainland units, and units farther than OFFSHORE_KM from every other unit."""
    proj = Projection(units[0].lat, units[0].lon)
    pts = np.array([proj.to_km(u.lat, u.lon) for u in units])
    dist = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(dist, np.inf)
    far = dist.min(axis=1) > OFFSHORE_KM
    return [u for u, f in zip(units, far, strict=True) if not f], [
        u for u, f in zip(units, far, strict=True) if f
    ]


def largest_polygon(geom: shapely.Geometry) -> Polygon:
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    best = max(parts, key=lambda g: g.area)
    assert isinstance(best, Polygon)
    return best


def build_outline(pts: FloatArray, areas: FloatArray) -> shapely.Geometry:
    """Polygons without holes, each holding a site, whose total area equals ``areas.sum()``.

    Units far apart (an island commune) stay separate parts.
    """
    radii = np.sqrt(areas / math.pi)
    close = float(np.median(radii))
    sites = shapely.points(pts)

    def outline(scale: float) -> shapely.Geometry:
        discs = shapely.buffer(sites, radii * scale, quad_segs=8)
        merged = shapely.union_all(discs).buffer(close).buffer(-close)
        parts = [Polygon(p.exterior) for p in _pieces(merged) if shapely.intersects(p, sites).any()]
        return shapely.union_all(parts)

    lo, hi = 0.3, 2.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if outline(mid).area < areas.sum():
            lo = mid
        else:
            hi = mid
    return outline((lo + hi) / 2)


def clip_halfplane(poly: FloatArray, a: FloatArray, b: float) -> FloatArray:
    """Clip a convex polygon (n x 2 vertex array, not closed) to the half-plane a·x <= b."""
    if len(poly) == 0:
        return poly
    s = poly @ a - b
    inside = s <= 0
    if inside.all():
        return poly
    if not inside.any():
        return poly[:0]
    out = []
    n = len(poly)
    for k in range(n):
        p, q = poly[k], poly[(k + 1) % n]
        sp, sq = s[k], s[(k + 1) % n]
        if sp <= 0:
            out.append(p)
        if (sp <= 0) != (sq <= 0):
            out.append(p + (q - p) * (sp / (sp - sq)))
    return np.array(out)


def power_cells(pts: FloatArray, weights: FloatArray, box: FloatArray) -> list[Polygon]:
    """Power-diagram cells of the points (unclipped, within ``box``)."""
    sq = (pts**2).sum(axis=1)
    cells = []
    for i in range(len(pts)):
        poly = box
        # nearest sites first: the cell shrinks fast, later clips are cheap
        order = np.argsort(((pts - pts[i]) ** 2).sum(axis=1))
        for j in order[1:]:
            a = 2.0 * (pts[j] - pts[i])
            b = sq[j] - sq[i] - weights[j] + weights[i]
            poly = clip_halfplane(poly, a, float(b))
        cells.append(Polygon(poly) if len(poly) >= 3 else Polygon())
    return cells


def enforce_site_inside(pts: FloatArray, weights: FloatArray, margin: float = 0.9) -> FloatArray:
    """Limit weight differences so that every site stays inside its own power cell.

    Site i lies in its own cell iff w_j - w_i <= |p_i - p_j|^2 for every j.
    """
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    w = weights.copy()
    for _ in range(100):
        excess = (w[None, :] - w[:, None]) - margin * d2  # [i, j]: w_j - w_i - margin * d2
        np.fill_diagonal(excess, -np.inf)
        worst = excess.max(axis=0)  # for each j, its worst violation against any i
        if worst.max() <= 1e-9:
            break
        w -= np.clip(worst, 0.0, None) / 2
    return w - w.mean()


def fit_cells(
    pts: FloatArray, targets: FloatArray, outline: shapely.Geometry, iterations: int = 400
) -> list[shapely.Geometry]:
    minx, miny, maxx, maxy = outline.bounds
    pad = max(maxx - minx, maxy - miny)
    lo_x, lo_y, hi_x, hi_y = minx - pad, miny - pad, maxx + pad, maxy + pad
    box = np.array([[lo_x, lo_y], [hi_x, lo_y], [hi_x, hi_y], [lo_x, hi_y]])
    shapely.prepare(outline)
    weights = np.zeros(len(pts))
    step = 1.0
    best: tuple[float, list[shapely.Geometry]] | None = None
    for it in range(iterations):
        cells = [c.intersection(outline) for c in power_cells(pts, weights, box)]
        areas = np.array([c.area for c in cells])
        err = float(np.abs(areas / targets - 1).max())
        if best is None or err < best[0]:
            best = (err, cells)
        if err < 0.01:
            break
        # gradient step on the capacity-constrained power diagram objective
        weights = enforce_site_inside(pts, weights + step * (targets - areas))
        if it % 50 == 49:
            step *= 0.7
    assert best is not None
    print(f"cell areas fitted to within {best[0]:.1%} of their targets")
    return best[1]


def _pieces(geom: shapely.Geometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom] if not geom.is_empty else []
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]


def make_single_parts(pts: FloatArray, cells: list[shapely.Geometry]) -> list[Polygon]:
    """Give every cell's stray pieces to the neighbour sharing the longest border with them."""
    keep: list[shapely.Geometry] = []
    strays: list[Polygon] = []
    for i, cell in enumerate(cells):
        parts = _pieces(cell)
        site = Point(pts[i])
        home = next((p for p in parts if p.covers(site)), None) or max(parts, key=lambda p: p.area)
        keep.append(home)
        strays.extend(p for p in parts if p is not home)
    for stray in sorted(strays, key=lambda p: -p.area):
        border = [stray.boundary.intersection(k.boundary).length for k in keep]
        j = int(np.argmax(border))
        if border[j] > 0:  # a stray touching no other cell is dropped (a gap, not an overlap)
            keep[j] = shapely.union(keep[j], stray)
    return [largest_polygon(k) for k in keep]


def inset_disc(proj: Projection, outline: shapely.Geometry) -> Polygon:
    """A marker-sized disc at sea, clear of the outline and inside the mainland bbox."""
    lat, lon = INSET_ANCHOR
    for _ in range(200):
        disc = Point(proj.to_km(lat, lon)).buffer(INSET_RADIUS_KM, quad_segs=4)
        if disc.distance(outline) >= INSET_GAP_KM:
            return disc
        lon += 0.01
    raise SystemExit("gen_geojson: no room for the inset east of the anchor")


def round_geom(geom: Polygon, proj: Projection) -> Polygon:
    ll = proj.geom_to_lonlat(geom)
    rounded = shapely.set_precision(ll, 10**-DECIMALS)
    poly = largest_polygon(rounded)
    return orient(poly, sign=1.0)  # RFC 7946: exterior rings counterclockwise


def feature(unit: Unit, geom: Polygon, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "code": unit.code,
        "name": unit.name,
        "type": unit.type,
        "approximate": True,
        "source": SOURCE_NOTE,
    }
    props.update(extra)
    return {"type": "Feature", "id": unit.code, "properties": props, "geometry": mapping(geom)}


def build(units: list[Unit]) -> dict[str, Any]:
    mainland, offshore = split_offshore(units)
    lat0 = float(np.mean([u.lat for u in mainland]))
    lon0 = float(np.mean([u.lon for u in mainland]))
    proj = Projection(lat0, lon0)
    pts = np.array([proj.to_km(u.lat, u.lon) for u in mainland])
    areas = np.array([u.area_km2 for u in mainland])
    outline = build_outline(pts, areas)
    targets = areas * outline.area / areas.sum()
    cells = make_single_parts(pts, fit_cells(pts, targets, outline))
    simplified = shapely.coverage_simplify(np.array(cells, dtype=object), SIMPLIFY_KM)

    features = [feature(u, round_geom(g, proj)) for u, g in zip(mainland, simplified, strict=True)]
    for u in offshore:
        disc = inset_disc(proj, outline)
        features.append(
            feature(u, round_geom(disc, proj), inset=True, true_lat=u.lat, true_lon=u.lon)
        )
    features.sort(key=lambda f: f["id"])
    check(features, mainland, proj)
    return {"type": "FeatureCollection", "features": features}


def check(features: list[dict[str, Any]], mainland: list[Unit], proj: Projection) -> None:
    """Fail on invalid, overlapping or misplaced polygons."""
    geoms = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in features}
    for code, g in geoms.items():
        if not (isinstance(g, Polygon) and g.is_valid and not g.is_empty):
            raise SystemExit(f"gen_geojson: {code}: invalid polygon")
    tree = shapely.STRtree(list(geoms.values()))
    codes = list(geoms)
    for i, j in zip(*tree.query(list(geoms.values()), predicate="intersects"), strict=True):
        if i < j and geoms[codes[i]].intersection(geoms[codes[j]]).area > 1e-9:
            raise SystemExit(f"gen_geojson: {codes[i]} and {codes[j]} overlap")
    outside = [u.code for u in mainland if not geoms[u.code].covers(Point(u.lon, u.lat))]
    if outside:
        print(f"warning: locations outside their own polygon: {outside}", file=sys.stderr)


def dumps(fc: dict[str, Any]) -> str:
    """Compact JSON, one feature per line (small file, readable diffs)."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in fc["features"]]
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--wards", type=Path, default=DEFAULT_WARDS, help="input wards.yaml")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output GeoJSON file")
    args = parser.parse_args(argv)
    fc = build(load_units(args.wards))
    text = dumps(fc)
    args.out.write_text(text, encoding="utf-8")
    print(
        f"wrote {len(fc['features'])} features, {len(text.encode()) / 1024:.0f} KiB to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
