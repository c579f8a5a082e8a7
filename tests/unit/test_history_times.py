"""The simulator's history (every 15 min) leaves an up device seen at every hour end, as the
sensor uptime KPI samples it (a reading within offline_factor x its interval before): the
demo's first day showed 25 % uptime when history readings were spread over the 15 minutes."""

from __future__ import annotations

from pathlib import Path

from ioc.config import Config
from sensors.fleet import build_fleet
from sensors.settings import load_simulator_settings
from sensors.stream import history_times

ROOT = Path(__file__).resolve().parents[2]


def test_every_device_has_a_reading_in_the_window_before_each_hour_end(config: Config) -> None:
    _, fleet = build_fleet(config, load_simulator_settings(ROOT / "config"))
    factor = config.kpis.scheduler.offline_factor
    t0, t1 = 1_764_547_200.0, 1_764_547_200.0 + 6 * 3600  # six hours from a UTC midnight
    hour_ends = [t0 + 3600 * k for k in range(1, 6)]
    for dev in fleet[:400]:
        type_iv = config.sensors.device_types[dev.type].interval_s
        win = factor * type_iv
        t = history_times(dev, t0, t1, 900.0, 0.9 * win)
        assert len(t) == 24 and all(t0 <= x < t1 for x in t)  # one every 15 min, in range
        for h in hour_ends:
            assert any(h - win < x <= h for x in t), (dev.id, dev.type, h)
