"""``ioc map import FILE``: the wards' real boundaries as a drop-in for the approximate ones.

Reads a GeoJSON FeatureCollection or an ESRI shapefile (``.shp`` with its ``.dbf``; pyshp),
matches each feature to one of the 94 units of ``wards.yaml`` by code (a property holding the
official code) or else by name (case, accents, the "Phường"/"Xã"/"Đặc khu" prefix and spacing
ignored), checks each unit's area against ``area_km2``, reports what does not match, and writes
``wards.geojson`` in the configuration folder (only when every unit was matched, unless
``--partial``). Coordinates must be longitude/latitude (WGS 84).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioc.context import Context
from ioc.errors import IOCError

CODE_KEYS = ("code", "ma", "ma_xa", "maxa", "ma_dvhc", "madvhc", "id", "ward_code", "commune_code")
NAME_KEYS = ("name", "ten", "ten_xa", "tenxa", "ten_dvhc", "ward", "ward_name", "commune")
PREFIXES = ("phường", "phuong", "xã", "xa", "đặc khu", "dac khu", "thị trấn", "thi tran")


def fold(name: str) -> str:
    """'Phường Hải Châu' and 'HAI CHAU' alike: no type prefix, accents, case or spaces."""
    text = unicodedata.normalize("NFC", name).strip().casefold()
    for p in PREFIXES:
        if text.startswith(p + " "):
            text = text[len(p) + 1 :]
            break
    text = text.replace("đ", "d")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return re.sub(r"[^a-z0-9]", "", text)


def ring_area_km2(ring: list[list[float]]) -> float:
    """Area of one lon/lat ring on a sphere (km², unsigned; fine for ward-sized rings)."""
    if len(ring) < 3:
        return 0.0
    r = 6371.0088
    total = 0.0
    for (lon1, lat1, *_), (lon2, lat2, *_) in zip(ring, ring[1:] + ring[:1], strict=True):
        total += math.radians(lon2 - lon1) * (
            2 + math.sin(math.radians(lat1)) + math.sin(math.radians(lat2))
        )
    return abs(total * r * r / 2.0)


def geometry_area_km2(geom: dict[str, Any]) -> float:
    polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    area = 0.0
    for poly in polys:
        if not poly:
            continue
        area += ring_area_km2(poly[0]) - sum(ring_area_km2(h) for h in poly[1:])
    return area


def read_features(path: Path) -> list[dict[str, Any]]:
    """GeoJSON features, from a .geojson/.json file or a shapefile."""
    if path.suffix.lower() == ".shp":
        import shapefile  # pyshp

        try:
            reader = shapefile.Reader(str(path))
        except Exception as exc:
            raise IOCError(f"{path}: not a readable shapefile ({exc})") from None
        with reader:
            names = [f[0] for f in reader.fields[1:]]
            out = []
            for sr in reader.iterShapeRecords():
                props = dict(zip(names, list(sr.record), strict=False))
                out.append(
                    {"type": "Feature", "properties": props, "geometry": sr.shape.__geo_interface__}
                )
            return out
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IOCError(f"{path}: not a readable GeoJSON file ({exc})") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        feats = doc.get("features")
        if isinstance(feats, list):
            return [f for f in feats if isinstance(f, dict)]
    raise IOCError(f"{path}: expected a GeoJSON FeatureCollection")


@dataclass
class ImportReport:
    matched: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> feature
    by: dict[str, str] = field(default_factory=dict)  # code -> 'code' | 'name'
    unmatched: list[str] = field(default_factory=list)  # features not matched (a label)
    ambiguous: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # wards without a feature
    areas: dict[str, tuple[float, float]] = field(default_factory=dict)  # code -> (got, want)
    area_mismatch: list[str] = field(default_factory=list)

    def lines(self, names: dict[str, str], tolerance: float) -> list[str]:
        out = [
            f"matched {len(self.matched)} of {len(names)} units"
            f" ({sum(1 for v in self.by.values() if v == 'code')} by code,"
            f" {sum(1 for v in self.by.values() if v == 'name')} by name)"
        ]
        for label in self.unmatched:
            out.append(f"not matched: feature {label}")
        for label in self.ambiguous:
            out.append(f"ambiguous: {label}")
        for code in self.missing:
            out.append(f"missing: {code} {names[code]} (no feature)")
        for code in self.area_mismatch:
            got, want = self.areas[code]
            out.append(
                f"area: {code} {names[code]} is {got:.2f} km² in the file,"
                f" {want:.2f} km² in wards.yaml ({100 * (got - want) / want:+.0f} %,"
                f" tolerance ±{tolerance:.0f} %)"
            )
        return out


def _prop(props: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    low = {str(k).casefold(): v for k, v in props.items()}
    for k in keys:
        v = low.get(k)
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def match(
    features: list[dict[str, Any]], wards: list[Any], *, tolerance: float = 15.0
) -> ImportReport:
    """Match features to wards (code first, then folded name); areas checked."""
    rep = ImportReport()
    codes = {w.code: w for w in wards}
    by_name: dict[str, list[str]] = {}
    for w in wards:
        by_name.setdefault(fold(w.name), []).append(w.code)
    for i, feat in enumerate(features):
        props = feat.get("properties") or {}
        geom = feat.get("geometry") or {}
        label = f"#{i + 1}"
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            rep.unmatched.append(f"{label} (no polygon)")
            continue
        code = _prop(props, CODE_KEYS)
        if code is None and feat.get("id") is not None:
            code = str(feat["id"])
        name = _prop(props, NAME_KEYS)
        label = f"{label} ({' '.join(x for x in (code, name) if x)})"
        hit: str | None = None
        how = ""
        if code is not None and code.lstrip("0").zfill(5) in codes:
            hit, how = code.lstrip("0").zfill(5), "code"
        elif name is not None:
            cands = by_name.get(fold(name), [])
            if len(cands) == 1:
                hit, how = cands[0], "name"
            elif len(cands) > 1:
                rep.ambiguous.append(f"{label}: the name fits {', '.join(cands)}")
                continue
        if hit is None:
            rep.unmatched.append(label)
            continue
        if hit in rep.matched:
            rep.ambiguous.append(f"{label}: {hit} matched twice")
            continue
        rep.matched[hit] = feat
        rep.by[hit] = how
        got = geometry_area_km2(geom)
        want = float(codes[hit].area_km2)
        rep.areas[hit] = (got, want)
        if want > 0 and abs(got - want) / want * 100 > tolerance:
            rep.area_mismatch.append(hit)
    rep.missing = [c for c in codes if c not in rep.matched]
    return rep


def to_geojson(rep: ImportReport, wards: list[Any], source: str) -> dict[str, Any]:
    out = []
    for w in wards:
        feat = rep.matched.get(w.code)
        if feat is None:
            continue
        out.append(
            {
                "type": "Feature",
                "id": w.code,
                "properties": {
                    "code": w.code,
                    "name": w.name,
                    "type": w.type,
                    "approximate": False,
                    "source": source,
                },
                "geometry": feat["geometry"],
            }
        )
    return {"type": "FeatureCollection", "features": out}


def main(args: argparse.Namespace, ctx: Context) -> int:
    cfg = ctx.config()
    path = Path(args.file)
    if not path.is_file():
        raise IOCError(f"{path}: no such file")
    tolerance = float(args.tolerance)
    rep = match(read_features(path), list(cfg.wards), tolerance=tolerance)
    names = {w.code: w.name for w in cfg.wards}
    for line in rep.lines(names, tolerance):
        print(line)
    out = Path(args.out) if args.out else Path(ctx.settings.config_dir) / "wards.geojson"
    if (rep.missing or rep.ambiguous) and not args.partial:
        raise IOCError(
            f"{len(rep.missing)} unit(s) without a boundary, {len(rep.ambiguous)} ambiguous:"
            f" {out} left as it was (--partial writes the matched ones only)"
        )
    doc = to_geojson(rep, list(cfg.wards), source=f"imported from {path.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".wards.", suffix=".geojson", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False)
    os.replace(tmp, out)
    print(f"wrote {out}: {len(doc['features'])} boundaries; restart `ioc serve` to use them")
    return 1 if rep.area_mismatch and args.strict else 0
