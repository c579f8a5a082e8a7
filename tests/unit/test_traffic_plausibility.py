"""Simulated congestion must not jam the whole city: found in the demo, every one of the 517
traffic sensors read ~100 % at the evening rush hour and 360 congestion alerts opened at once."""

from __future__ import annotations

import datetime as dt

import numpy as np

from ioc.config import Config
from sensors.fleet import build_fleet
from sensors.settings import SimulatorFile
from sensors.signals import device_values


def congestion_at(config: Config, local: dt.datetime) -> tuple[np.ndarray, list[str]]:
    profiles, devices = build_fleet(config, SimulatorFile())
    sensors = [d for d in devices if d.type == "traffic"]
    t = np.array([local.timestamp()])
    values = np.array([device_values(d, profiles[d.ward], t, 1)["congestion"][0] for d in sensors])
    return values, [profiles[d.ward].cls for d in sensors]


def test_rush_hour_jams_some_roads_not_all(config: Config) -> None:
    rule = next(r for r in config.alerts.rules if getattr(r, "metric", None) == "congestion")
    ict = dt.timezone(dt.timedelta(hours=7))
    rush, cls = congestion_at(config, dt.datetime(2026, 11, 25, 17, 40, tzinfo=ict))  # a Wednesday
    jammed = rush > float(rule.threshold)
    assert 0.01 < jammed.mean() < 0.2, jammed.mean()
    core = np.array([c == "core" for c in cls])
    assert rush[core].mean() > rush[~core].mean()  # the centre jams first
    noon, _ = congestion_at(config, dt.datetime(2026, 11, 25, 10, 0, tzinfo=ict))
    assert (noon > float(rule.threshold)).mean() < 0.01
