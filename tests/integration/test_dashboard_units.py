"""Pure parts of the dashboard: formats, KPI status/trend/ranks, map geometry, wall rotation,
and the callback guard (run inside a Flask request against a real database)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from dashboards.i18n import fmt_date, fmt_datetime, fmt_num
from dashboards.kpiview import ranks, status, trend
from dashboards.rotation import current_view
from dashboards.state import rewind_for_d3
from ioc.config import Kpi

ROOT = Path(__file__).resolve().parents[2]


def _kpi(direction: str = "higher_better") -> Kpi:
    return Kpi(
        label_vi="x",
        label_en="x",
        unit="%",
        direction=direction,
        target=95,
        amber=90,
        red=80 if direction == "higher_better" else 99,
        rollup="mean",
        query="q",
    )


def test_vietnamese_and_english_formats() -> None:
    assert fmt_num(1234.5, 1, "vi") == "1.234,5"
    assert fmt_num(1234.5, 1, "en") == "1,234.5"
    assert fmt_num(None, 1, "vi") == "—"
    assert fmt_num(float("nan"), 1, "vi") == "—"
    ts = dt.datetime(2026, 3, 4, 18, 30, tzinfo=dt.UTC)  # 01:30 next day in Hanoi time
    assert fmt_date(ts, "vi") == "05/03/2026"
    assert fmt_datetime(ts, "vi") == "05/03/2026 01:30"
    assert fmt_datetime(ts, "en") == "2026-03-05 01:30"
    assert fmt_datetime(pd.NaT, "vi") == "—"


def test_status_trend_and_ranks() -> None:
    k = _kpi()
    assert [status(v, k) for v in (96, 90, 85, 80, None)] == [
        "green",
        "amber",
        "amber",
        "red",
        "none",
    ]
    assert trend(90, 80, k)[0] == "▲" and trend(90, 80, k)[1] == "#1a9850"
    low = _kpi("lower_better")
    assert trend(90, 80, low)[1] == "#d73027"  # up is bad when lower is better
    latest = pd.DataFrame(
        {
            "kpi": ["k"] * 4,
            "ward_code": ["a", "b", "c", "city"],
            "value": [80.0, None, 95.0, 87.0],
            "prev_value": [None] * 4,
        }
    )
    r = ranks(latest, "k", k)
    assert list(r["ward_code"]) == ["c", "a", "b"]
    assert list(r["rank"][:2]) == [1, 2] and pd.isna(r["rank"].iloc[2])
    r2 = ranks(latest, "k", low)
    assert list(r2["ward_code"][:2]) == ["a", "c"]


def test_geojson_rewound_clockwise_for_d3() -> None:
    data = json.loads((ROOT / "config" / "wards.geojson").read_text(encoding="utf-8"))
    assert len(data["features"]) == 94
    fixed = rewind_for_d3(data)
    for f in fixed["features"]:
        polys = (
            [f["geometry"]["coordinates"]]
            if f["geometry"]["type"] == "Polygon"
            else f["geometry"]["coordinates"]
        )
        for poly in polys:
            ring = poly[0]
            area = sum((x1 - x0) * (y1 + y0) for (x0, y0), (x1, y1) in itertools.pairwise(ring))
            assert area > 0  # clockwise exterior


def test_wall_rotation_is_deterministic() -> None:
    assert current_view({"view": "alerts"}, 0) == "alerts"
    seen = [current_view({"view": None, "period": 10}, t) for t in range(0, 60, 10)]
    assert seen == ["map", "applications", "environment", "cameras", "alerts", "incidents"]
    assert current_view({"view": "bogus", "period": 10}, 65) == "map"


@pytest.fixture(scope="module")
def guard_app(pg_server_url: str, config):  # type: ignore[no-untyped-def]
    from db_support import create_schema_database, drop_database

    from dashboards.app import create_app
    from ioc.settings import Settings

    url = create_schema_database(pg_server_url, config)
    app = create_app(config, url, Settings(secret_key="unit-test-secret-0123456789"))
    yield app
    app.server.config["IOC_STATE"].pool.close()
    drop_database(pg_server_url, url)


def test_callback_guard(guard_app) -> None:  # type: ignore[no-untyped-def]
    from dashboards.security import check_callback
    from ioc.auth import User

    leader = User("l", "ward_leader", frozenset({"20195"}))
    analyst = User("a", "analyst")
    kiosk = User("kiosk", "kiosk")

    def body(out: str, inputs: list[dict], state: list[dict] | None = None) -> dict:
        return {
            "output": out,
            "outputs": {"id": out.split(".")[0], "property": "x"},
            "inputs": inputs,
            "state": state or [],
        }

    with guard_app.server.test_request_context("/_dash-update-component", method="POST"):
        own = body(
            "ward-kpis.children", [], [{"id": "ward-code", "property": "data", "value": "20195"}]
        )
        other = body(
            "ward-kpis.children", [], [{"id": "ward-code", "property": "data", "value": "20197"}]
        )
        assert check_callback(leader, own) and not check_callback(leader, other)
        assert check_callback(analyst, other)
        # ward codes hidden in lists or nested values are found too
        nested = body(
            "cams-table.children",
            [{"id": "cams-ward", "property": "value", "value": ["20195", "20197"]}],
        )
        assert not check_callback(leader, nested)
        # exports need the export role; the wall is all a kiosk may run
        exp = body("export-download.data", [])
        assert check_callback(analyst, exp) and not check_callback(leader, exp)
        assert check_callback(kiosk, body("wall-body.children", []))
        assert not check_callback(kiosk, body("ov-map.figure", []))
        # the page router: by path
        router = {
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/ward/20197"}],
        }
        assert not check_callback(leader, router) and check_callback(analyst, router)
        # unknown component ids are refused
        assert not check_callback(analyst, body("mystery.children", []))
