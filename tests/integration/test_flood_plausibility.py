"""Flood figures of the demo must be plausible: found in the demo, every one of the 346
water-level stations sat above the 50 cm flood threshold on dry days (346 critical alerts, the
whole city "flooded"), and one gauge spike made the city's flood risk 1.351 %."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from test_kpi_helpers import add_readings, t

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.db.migrate import refresh_rollups
from ioc.kpi.compute import CITY, compute_period
from sensors.fleet import build_fleet
from sensors.settings import SimulatorFile
from sensors.signals import device_values, flood_rise_cm


def flood_rule(cfg: Config) -> tuple[float, float]:
    rule = next(r for r in cfg.alerts.rules if getattr(r, "metric", None) == "water_level_cm")
    return float(rule.threshold), float(rule.clear)


def test_water_levels_at_rest_stay_below_the_flood_thresholds(config: Config) -> None:
    threshold, clear = flood_rule(config)
    kpi_threshold = float(config.kpis.kpis["flood_risk"].params["threshold_cm"])
    profiles, devices = build_fleet(config, SimulatorFile())
    stations = [d for d in devices if d.type == "water_level"]
    assert len(stations) > 100
    # four weeks of the wet season, hourly
    t0 = 1_795_000_000.0  # 2026-11-18
    ts = t0 + np.arange(0, 28 * 24) * 3600.0
    dry_hours = 0
    stormy = 0.0
    flooded = 0
    for dev in stations:
        p = profiles[dev.ward]
        level = device_values(dev, p, ts, 1)["water_level_cm"]
        calm = flood_rise_cm(p, ts, 1) < 1.0
        dry_hours += int(calm.sum())
        if calm.any():
            assert level[calm].max() < min(clear, kpi_threshold), dev.id
        stormy = max(stormy, float(level.max()))
        flooded += int((level >= threshold).sum())
    hours = len(stations) * len(ts)
    assert dry_hours > 0.5 * hours  # most of the wet season is calm
    assert 0 < flooded < 0.15 * hours  # storms flood some stations, some of the time
    assert stormy > 2 * threshold


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def test_one_gauge_spike_does_not_set_the_flood_risk(conn: Connection, config: Config) -> None:
    ward = config.wards[0].code
    points = [(f"2025-03-10 10:{m:02d}", 20.0) for m in range(60)]
    points[30] = ("2025-03-10 10:30", 700.0)  # a faulty reading, valid range (0-1000 cm)
    add_readings(conn, ward, "wl-spike", "water_level_cm", points)
    refresh_rollups(conn, config, now=t("2025-03-10 12:00"))
    rows = compute_period(
        conn,
        config,
        kpis=["flood_risk"],
        period="day",
        start=t("2025-03-10 00:00"),
        end=t("2025-03-11 00:00"),
        now=t("2025-03-12 00:00"),
    )
    got = {r.ward_code: r.value for r in rows}
    # hourly mean (20·59 + 700) / 60 = 31.33 cm of a 50 cm threshold
    assert got[ward] == pytest.approx(62.667, abs=0.01)
    assert got[CITY] == got[ward]
