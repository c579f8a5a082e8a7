"""The ward of a position: point-in-polygon on the wards' boundaries (``wards.geojson``).

A hotline CRM often knows where a problem is but not which of the 94 wards it is in: the intake
API and the file import accept a report without ``ward`` when its ``lat``/``lon`` falls inside
one ward's boundary. Plain ray casting (even-odd rule) over each Polygon / MultiPolygon ring,
holes included, with a bounding-box test first; no GIS library. A point exactly on a shared
border goes to one of the two wards (whichever the ray test says), a point in no ward (the sea,
another province) to none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Ring = Sequence[tuple[float, float]]  # (lon, lat) points, GeoJSON order


def in_ring(lon: float, lat: float, ring: Ring) -> bool:
    """Whether (lon, lat) is inside ``ring`` (even-odd ray casting towards +lon)."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat):
            x = xi + (lat - yi) * (xj - xi) / (yj - yi)
            if lon < x:
                inside = not inside
        j = i
    return inside


@dataclass(frozen=True)
class Area:
    code: str
    polygons: tuple[tuple[Ring, ...], ...]  # each: the exterior ring, then its holes
    box: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat

    def contains(self, lon: float, lat: float) -> bool:
        x0, y0, x1, y1 = self.box
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        for rings in self.polygons:
            if in_ring(lon, lat, rings[0]) and not any(in_ring(lon, lat, h) for h in rings[1:]):
                return True
        return False


def _rings(ring: Any) -> Ring:
    return tuple((float(p[0]), float(p[1])) for p in ring)


class WardMap:
    """The wards' boundaries, from a GeoJSON FeatureCollection whose features carry the ward
    code as ``id`` or ``properties.code``."""

    def __init__(self, geojson: dict[str, Any]) -> None:
        areas = []
        for feat in geojson.get("features", []):
            code = feat.get("id") or (feat.get("properties") or {}).get("code")
            geom = feat.get("geometry") or {}
            if code is None or geom.get("type") not in ("Polygon", "MultiPolygon"):
                continue
            coords = geom["coordinates"]
            polys = [coords] if geom["type"] == "Polygon" else coords
            polygons = tuple(tuple(_rings(r) for r in poly) for poly in polys if poly)
            points = [p for rings in polygons for p in rings[0]]
            if not points:
                continue
            lons = [p[0] for p in points]
            lats = [p[1] for p in points]
            box = (min(lons), min(lats), max(lons), max(lats))
            areas.append(Area(str(code), polygons, box))
        self.areas = tuple(areas)

    @classmethod
    def load(cls, path: Path) -> WardMap:
        with open(path, encoding="utf-8") as fh:
            return cls(json.load(fh))

    def locate(self, lat: float, lon: float) -> str | None:
        """The code of the ward containing (lat, lon), or None."""
        for area in self.areas:
            if area.contains(lon, lat):
                return area.code
        return None
