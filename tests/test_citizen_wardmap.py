"""Reports without `ward` (issue 11): the ward is the one the report's lat/lon fall in
(point-in-polygon on wards.geojson), through POST /api/v1/reports and `ioc import reports`;
a later event with neither ward nor position goes to the stored report's ward; else 400 naming
`ward`. A given ward wins over the position. Real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ioc.applications import EventError
from ioc.citizen.events import Rules, ward_of
from ioc.citizen.importer import import_file
from ioc.citizen.tokens import add_token
from ioc.citizen.wardmap import WardMap, in_ring
from ioc.config import Config
from ioc.db import connect
from ioc.settings import Settings

HAI_VAN = ("20195", 16.1315, 107.972)  # a ward and its location (wards.yaml)
LIEN_CHIEU = ("20197", 16.0933, 108.092)
SEA = (16.05, 108.45)  # east of the coast: no ward


@pytest.fixture(scope="module")
def wardmap(config: Config) -> WardMap:
    return WardMap.load(config.dir / "wards.geojson")


def test_ray_casting_with_holes_and_multipolygons() -> None:
    square = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)]
    assert in_ring(2, 2, square) and not in_ring(5, 2, square) and not in_ring(2, -1, square)
    hole = [(1.0, 1.0), (3.0, 1.0), (3.0, 3.0), (1.0, 3.0), (1.0, 1.0)]
    far = [[(10.0, 10.0), (11.0, 10.0), (11.0, 11.0), (10.0, 10.0)]]
    m = WardMap(
        {
            "features": [
                {"id": "A", "geometry": {"type": "Polygon", "coordinates": [square, hole]}},
                {"properties": {"code": "B"},
                 "geometry": {"type": "MultiPolygon", "coordinates": [[hole], far]}},
            ]
        }
    )  # fmt: skip
    assert m.locate(0.5, 0.5) == "A"  # (lat, lon)
    assert m.locate(2, 2) == "B"  # in A's hole, inside B's first polygon
    assert m.locate(10.2, 10.6) == "B"  # B's second polygon (lat 10.2, lon 10.6)
    assert m.locate(10.6, 10.2) is None  # beside it, inside its bounding box
    assert m.locate(20, 20) is None


def test_the_wards_own_locations_fall_in_their_wards(config: Config, wardmap: WardMap) -> None:
    found = {w.code: wardmap.locate(w.lat, w.lon) for w in config.wards}
    # every ward's location is inside its own boundary, except the offshore Hoàng Sa special
    # zone whose (approximate) boundary does not reach its islands
    wrong = {code: got for code, got in found.items() if got != code}
    assert wrong == {"20333": None}
    assert wardmap.locate(*SEA) is None


def test_ward_of_rules(wardmap: WardMap) -> None:
    code, lat, lon = HAI_VAN
    assert ward_of({"id": "x", "lat": lat, "lon": lon}, wardmap.locate) == code
    assert ward_of({"id": "x", "lat": str(lat), "lon": str(lon)}, wardmap.locate) == code
    # a given ward wins over the position
    assert ward_of({"ward": "20197", "lat": lat, "lon": lon}, wardmap.locate) == "20197"
    assert ward_of({"id": "x"}, wardmap.locate, {"x": "20197"}) == "20197"
    for data, text in (
        ({"id": "x", "lat": SEA[0], "lon": SEA[1]}, "is in no ward"),
        ({"id": "y"}, "is required (or lat and lon inside a ward)"),
        ({"id": "x", "lat": lat}, "is required"),
    ):
        with pytest.raises(EventError) as exc:
            ward_of(data, wardmap.locate, {"z": "20197"})
        assert exc.value.message.startswith("ward: ") and text in exc.value.message
    with pytest.raises(EventError) as exc:  # a bad position names the position's field
        ward_of({"id": "x", "lat": "north", "lon": lon}, wardmap.locate)
    assert exc.value.message.startswith("lat: ")


def _event(rid: str, event: str = "received", **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "event": event, "ts": dt.datetime.now(dt.UTC).isoformat()}
    if event == "received":
        out.update(category="lighting", summary="Đèn đường hỏng")
    out.update(kw)
    return out


def test_api_without_ward(config: Config, fresh_db_url: str, tmp_path: Path) -> None:
    from dashboards.app import create_app

    settings = Settings(secret_key="s" * 40, var_dir=tmp_path / "var")
    client = create_app(config, fresh_db_url, settings).server.test_client()
    c = connect(fresh_db_url)
    try:
        auth = {"Authorization": f"Bearer {add_token(c, 'crm')}"}
    finally:
        c.close()
    post = lambda body: client.post("/api/v1/reports", json=body, headers=auth)  # noqa: E731
    hv, hv_lat, hv_lon = HAI_VAN
    lc, lc_lat, lc_lon = LIEN_CHIEU
    # the position gives the ward; a later event of the report in the same request follows it
    resp = post([_event("P-1", lat=hv_lat, lon=hv_lon), _event("P-1", "assigned")])
    assert resp.status_code == 202 and resp.get_json() == {"stored": 2}, resp.get_json()
    # a later request's event with neither: the stored report's ward
    assert post(_event("P-1", "in_progress")).status_code == 202
    # a given ward wins over the position
    assert post(_event("P-2", ward=lc, lat=hv_lat, lon=hv_lon)).status_code == 202
    assert post(_event("P-3", lat=lc_lat, lon=lc_lon)).status_code == 202
    # in no ward / no ward and no position / an unknown report with neither: 400, nothing stored
    for body, text in (
        ([_event("P-4", lat=lc_lat, lon=lc_lon), _event("P-5", lat=SEA[0], lon=SEA[1])],
         "[1].ward: is required: lat 16.05, lon 108.45 is in no ward"),
        (_event("P-6"), "ward: is required (or lat and lon inside a ward)"),
        (_event("P-7", "assigned"), "ward: is required"),
    ):  # fmt: skip
        resp = post(body)
        assert resp.status_code == 400 and resp.get_json()["error"].startswith(text), (
            resp.get_json()
        )
    c = connect(fresh_db_url)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT id, ward_code, status FROM reports ORDER BY id")
            rows = cur.fetchall()
            cur.execute("SELECT count(*) FROM report_events WHERE report_id = 'P-1'")
            assert (cur.fetchone() or [0])[0] == 3
    finally:
        c.close()
    assert rows == [("P-1", hv, "in_progress"), ("P-2", lc, "received"), ("P-3", lc, "received")]


def test_import_without_ward(
    config: Config, fresh_db_url: str, tmp_path: Path, wardmap: WardMap
) -> None:
    hv, hv_lat, hv_lon = HAI_VAN
    path = tmp_path / "reports.csv"
    path.write_text(
        "id,event,ts,category,summary,lat,lon,ward\n"
        f"F-1,received,2026-12-03 09:00,waste,Rác,{hv_lat},{hv_lon},\n"
        f"F-2,received,2026-12-03 09:00,waste,Rác,{SEA[0]},{SEA[1]},\n"
        "F-3,received,2026-12-03 09:00,waste,Rác,,,\n",
        encoding="utf-8",
    )
    c = connect(fresh_db_url)
    try:
        rep = import_file(c, path, Rules.from_config(config), actor="t", locate=wardmap.locate)
        with c.cursor() as cur:
            cur.execute("SELECT id, ward_code FROM reports")
            assert cur.fetchall() == [("F-1", hv)]
    finally:
        c.close()
    assert rep.imported == 1
    assert [(n, r.split(" (")[0].split(":")[0]) for n, r in rep.bad] == [(3, "ward"), (4, "ward")]
