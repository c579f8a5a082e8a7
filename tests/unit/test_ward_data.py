"""The committed ward data: ``config/wards.yaml`` and ``config/wards.geojson``.

These test the files as committed, with pyyaml and the standard library only: neither the data
packages that ``scripts/gen_wards.py`` reads nor shapely are needed.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "config"
WARDS_YAML = CONFIG / "wards.yaml"
WARDS_GEOJSON = CONFIG / "wards.geojson"

TYPES = ("phường", "xã", "đặc khu")
PREFIX = {"phường": "Phường ", "xã": "Xã ", "đặc khu": "Đặc khu "}
# Thành phố Đà Nẵng after the 2025 merger with Quảng Nam (mainland and near-shore islands)
LAT_RANGE = (14.8, 16.4)
LON_RANGE = (107.1, 108.9)
HOANG_SA_NAME = "Đặc khu Hoàng Sa"
HOANG_SA_LAT = (15.7, 17.2)  # the Paracel Islands
HOANG_SA_LON = (111.0, 113.0)
OFFICIAL_TOTAL_KM2 = 11_859.59  # the city's area as published for the merger

Point = tuple[float, float]
Ring = list[Point]


@functools.cache
def wards_file() -> dict[str, Any]:
    data = yaml.safe_load(WARDS_YAML.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def wards() -> list[dict[str, Any]]:
    return list(wards_file()["wards"])


@functools.cache
def geojson() -> dict[str, Any]:
    data = json.loads(WARDS_GEOJSON.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def features() -> list[dict[str, Any]]:
    return list(geojson()["features"])


def ring(feature: dict[str, Any]) -> Ring:
    """The exterior ring of a Polygon feature, closed."""
    return [(float(x), float(y)) for x, y in feature["geometry"]["coordinates"][0]]


def mainland_features() -> list[dict[str, Any]]:
    return [f for f in features() if not f["properties"].get("inset")]


def ward_by_code() -> dict[str, dict[str, Any]]:
    return {w["code"]: w for w in wards()}


# ------------------------------------------------------------------ plane geometry helpers


def signed_area(r: Ring) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairwise(r)) / 2


def area_km2(r: Ring) -> float:
    lat0 = sum(y for _, y in r) / len(r)
    return abs(signed_area(r)) * 110.574 * 111.320 * math.cos(math.radians(lat0))


def orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def seg_dist(p: Point, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy or 1.0)
    t = min(1.0, max(0.0, t))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def crossing_point(a: Point, b: Point, c: Point, d: Point) -> Point | None:
    """Where segments ab and cd cross properly (each strictly splits the other), if they do."""
    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    if o1 * o2 < 0 and o3 * o4 < 0:
        t = o3 / (o3 - o4)
        return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    return None


def inside(p: Point, r: Ring) -> bool:
    """Ray casting; points on the boundary may go either way."""
    x, y = p
    result = False
    for (x1, y1), (x2, y2) in pairwise(r):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            result = not result
    return result


def depth(p: Point, r: Ring) -> float:
    """How far inside the ring a point is (0 if outside)."""
    if not inside(p, r):
        return 0.0
    return min(seg_dist(p, a, b) for a, b in pairwise(r))


def bbox(r: Ring) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in r], [p[1] for p in r]
    return min(xs), min(ys), max(xs), max(ys)


def boxes_overlap(a: Ring, b: Ring) -> bool:
    ax0, ay0, ax1, ay1 = bbox(a)
    bx0, by0, bx1, by1 = bbox(b)
    return ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1


# ------------------------------------------------------------------ wards.yaml


def test_94_units_with_unique_string_codes() -> None:
    codes = [w["code"] for w in wards()]
    assert len(codes) == 94
    assert all(isinstance(c, str) and re.fullmatch(r"\d{5}", c) for c in codes)
    assert len(set(codes)) == 94
    assert codes == sorted(codes), "wards are ordered by code"


def test_types_and_counts() -> None:
    counts = Counter(w["type"] for w in wards())
    assert set(counts) <= set(TYPES)
    # what both vietnam-provinces and vietnamadminunits list for Thành phố Đà Nẵng
    assert counts == {"phường": 23, "xã": 70, "đặc khu": 1}


def test_names_carry_their_type_prefix() -> None:
    for w in wards():
        assert isinstance(w["name"], str)
        assert w["name"].startswith(PREFIX[w["type"]]), w
    names = [w["name"] for w in wards()]
    assert len(set(names)) == len(names)


def test_fields_and_values() -> None:
    required = {"code", "name", "type", "lat", "lon", "area_km2"}
    for w in wards():
        assert required <= set(w) <= required | {"population"}, w
        assert isinstance(w["lat"], float) and isinstance(w["lon"], float)
        assert isinstance(w["area_km2"], int | float) and w["area_km2"] > 0
        if "population" in w:
            assert isinstance(w["population"], int) and w["population"] > 0


def test_locations_inside_da_nang() -> None:
    for w in wards():
        if w["name"] == HOANG_SA_NAME:
            assert HOANG_SA_LAT[0] < w["lat"] < HOANG_SA_LAT[1]
            assert HOANG_SA_LON[0] < w["lon"] < HOANG_SA_LON[1]
        else:
            assert LAT_RANGE[0] < w["lat"] < LAT_RANGE[1], w
            assert LON_RANGE[0] < w["lon"] < LON_RANGE[1], w


def test_areas_add_up_to_the_city() -> None:
    total = sum(w["area_km2"] for w in wards())
    assert total == pytest.approx(OFFICIAL_TOTAL_KM2, rel=0.01)


def test_source_block_names_a_package_and_version_for_each_field() -> None:
    source = wards_file()["source"]
    for field in ("code", "name", "type", "lat", "lon", "area_km2"):
        assert re.match(r"(vietnam-provinces|vietnamadminunits) \d+(\.\d+)+", source[field]), field
    for code in source.get("notes", {}):
        assert code in ward_by_code(), f"note for unknown ward {code}"


def test_generated_header() -> None:
    first = WARDS_YAML.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# generated by scripts/gen_wards.py")


# ------------------------------------------------------------------ wards.geojson


def test_geojson_is_small() -> None:
    assert WARDS_GEOJSON.stat().st_size < 1_500_000


def test_one_feature_per_ward_with_the_ward_code_as_id() -> None:
    fc = geojson()
    assert fc["type"] == "FeatureCollection"
    ids = [f["id"] for f in features()]
    assert all(isinstance(i, str) for i in ids)
    assert len(ids) == len(set(ids)) == 94
    assert set(ids) == set(ward_by_code())


def test_feature_properties_match_wards_yaml() -> None:
    by_code = ward_by_code()
    for f in features():
        p = f["properties"]
        w = by_code[f["id"]]
        assert f["type"] == "Feature"
        assert (p["code"], p["name"], p["type"]) == (w["code"], w["name"], w["type"])
        assert p["approximate"] is True
        assert isinstance(p["source"], str) and p["source"]


def test_polygons_are_valid() -> None:
    for f in features():
        g = f["geometry"]
        assert g["type"] == "Polygon", f["id"]
        assert len(g["coordinates"]) == 1, f"{f['id']}: no holes expected"
        r = ring(f)
        assert len(r) >= 4 and r[0] == r[-1], f["id"]
        assert all(round(c, 5) == c for p in r for c in p), f"{f['id']}: at most 5 decimals"
        assert signed_area(r) > 0, f"{f['id']}: exterior ring must be counterclockwise"
        segs = list(pairwise(r))
        for (i, (a, b)), (j, (c, d)) in combinations(enumerate(segs), 2):
            if j - i > 1 and not (i == 0 and j == len(segs) - 1):
                assert crossing_point(a, b, c, d) is None, f"{f['id']}: self-intersection"
                assert min(seg_dist(c, a, b), seg_dist(d, a, b)) > 0, f"{f['id']}: touches itself"


def test_no_overlaps() -> None:
    tol = 1e-4  # degrees, about 10 m
    rings = {f["id"]: ring(f) for f in features()}
    for (ca, a), (cb, b) in combinations(rings.items(), 2):
        if not boxes_overlap(a, b):
            continue
        for p, q in ((a, b), (b, a)):
            assert max(depth(v, q) for v in p[:-1]) < tol, f"{ca} and {cb} overlap"
        for s in pairwise(a):
            for t in pairwise(b):
                x = crossing_point(*s, *t)
                if x is not None:
                    near = min(math.dist(x, e) for e in (*s, *t))
                    assert near < tol, f"{ca} and {cb} overlap: edges cross at {x}"


def test_each_location_lies_in_its_own_polygon() -> None:
    by_code = ward_by_code()
    for f in mainland_features():
        w = by_code[f["id"]]
        assert inside((w["lon"], w["lat"]), ring(f)), w["name"]


def test_polygon_areas_follow_the_published_areas() -> None:
    by_code = ward_by_code()
    mainland = mainland_features()
    drawn = sum(area_km2(ring(f)) for f in mainland)
    published = sum(by_code[f["id"]]["area_km2"] for f in mainland)
    assert drawn == pytest.approx(published, rel=0.03)
    for f in mainland:
        ratio = area_km2(ring(f)) / by_code[f["id"]]["area_km2"]
        assert 0.5 < ratio < 2.0, by_code[f["id"]]["name"]


def test_map_bbox_stays_on_the_mainland_city() -> None:
    points = [p for f in features() for p in ring(f)]
    x0, y0, x1, y1 = bbox(points)
    assert LON_RANGE[0] < x0 < x1 < LON_RANGE[1]
    assert LAT_RANGE[0] < y0 < y1 < LAT_RANGE[1]
    assert x1 - x0 > 1.0 and y1 - y0 > 1.0  # the city spans well over 100 km each way
    mainland = [p for f in mainland_features() for p in ring(f)]
    assert bbox(points) == bbox(mainland), "the inset must not widen the map"


def test_hoang_sa_is_a_small_inset() -> None:
    insets = [f for f in features() if f["properties"].get("inset")]
    assert [f["properties"]["name"] for f in insets] == [HOANG_SA_NAME]
    f = insets[0]
    w = ward_by_code()[f["id"]]
    assert f["properties"]["inset"] is True
    assert (f["properties"]["true_lat"], f["properties"]["true_lon"]) == (w["lat"], w["lon"])
    assert area_km2(ring(f)) < 100, "a marker-sized polygon"
    for g in mainland_features():
        assert not any(inside(p, ring(g)) for p in ring(f)), f"inset overlaps {g['id']}"
