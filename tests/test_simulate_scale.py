"""``ioc simulate --scale K``: K times the devices and applications of Da Nang in the same
wards, and ``--cameras N`` cameras' metadata written to PostgreSQL like the camera ingesters'."""

from __future__ import annotations

import collections
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from ioc.config import Config
from sensors.camera_meta import CameraMetaFeed, camera_ids
from sensors.fleet import build_fleet
from sensors.settings import load_simulator_settings
from sensors.simulate import scaled

ROOT = Path(__file__).resolve().parent.parent


def test_scale_multiplies_every_device_type_and_the_applications(config: Config) -> None:
    base = load_simulator_settings(config.dir)
    wards = [w.code for w in config.wards[:10]]
    _, one = build_fleet(config, base, wards)
    _, five = build_fleet(config, scaled(base, 5), wards)
    n1 = collections.Counter(d.type for d in one)
    n5 = collections.Counter(d.type for d in five)
    assert set(n1) == set(n5)
    for t, n in n1.items():
        assert 4.5 * n <= n5[t] <= 5.5 * n, (t, n, n5[t])
    assert len({d.id for d in five}) == len(five)  # ids stay unique
    assert {d.ward for d in five} == set(wards)  # the same wards (the ingester checks codes)
    assert scaled(base, 5).applications.busiest_per_day == 5 * base.applications.busiest_per_day
    assert scaled(base, 1) is base


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_camera_metadata_rows_like_the_ingesters(fresh_db_url: str, config: Config) -> None:
    wards = sorted(config.ward_codes)
    cams = camera_ids(wards, 120)
    assert len({c for c, _ in cams}) == 120 and {w for _, w in cams} == set(wards)
    feed = CameraMetaFeed(fresh_db_url, cams, interval_s=10.0)
    try:
        feed.register()
        t0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC).timestamp()  # 08:00 local, Monday
        assert feed.advance(t0 + 3) == 0  # the interval under way: not yet
        assert feed.advance(t0 + 32) == 3 * 120 * 16  # three intervals ended
        assert feed.advance(t0 + 35) == 0
    finally:
        feed.close()
    ((n, cams_n, ts_n),) = _rows(
        fresh_db_url,
        "SELECT count(*), count(DISTINCT camera_id), count(DISTINCT ts) FROM camera_metrics",
    )
    assert (n, cams_n, ts_n) == (3 * 120 * 16, 120, 3)
    metrics = {r[0] for r in _rows(fresh_db_url, "SELECT DISTINCT metric FROM camera_metrics")}
    # the camera ingester's names (ingest/cameras/worker.py), one counting line "road"
    assert {"online", "frames_received", "fps_effective", "line_road_vehicles"} <= metrics
    (registered,) = _rows(fresh_db_url, "SELECT count(*) FROM cameras WHERE last_seen IS NOT NULL")
    assert registered == (120,)
    # at 08:00 on a Monday the traffic peak: vehicles counted
    (veh,) = _rows(
        fresh_db_url, "SELECT sum(value) FROM camera_metrics WHERE metric = 'line_road_vehicles'"
    )
    assert float(veh[0]) > 120 * 3 * 4  # type: ignore[arg-type]


@pytest.mark.timeout(180)
def test_ioc_simulate_scale_writes_camera_metadata(
    fresh_db_url: str, config: Config, tmp_path: Path
) -> None:
    env = dict(os.environ, IOC_DATABASE_URL=fresh_db_url, IOC_CONFIG_DIR=str(ROOT / "config"))
    ward = config.wards[0].code
    r = subprocess.run(
        [
            *(sys.executable, "-m", "ioc.cli", "simulate", "--scale", "2", "--cameras", "8"),
            *("--wards", ward, "--duration", "25", "--seed", "3"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "8 cameras' metadata" in r.stderr
    ((n, cams_n),) = _rows(
        fresh_db_url, "SELECT count(*), count(DISTINCT camera_id) FROM camera_metrics"
    )
    assert cams_n == 8 and n >= 8 * 16  # at least one 10 s interval ended in 25 s
    # each simulated camera has a position (its pin on the ward map), each its own
    ((placed, places),) = _rows(
        fresh_db_url, "SELECT count(lat), count(DISTINCT (lat, lon)) FROM cameras"
    )
    assert placed == places == 8


def test_scale_multiplies_the_citizen_reports(config: Config) -> None:
    from sensors.fleet import build_fleet as fleet
    from sensors.reports import ReportModel, day_reports
    from sensors.simulate import scaled_profiles

    if config.categories is None:
        pytest.skip("no config/categories.yaml")
    profiles, _ = fleet(config, load_simulator_settings(config.dir))
    one = ReportModel.build(config, scaled_profiles(profiles, 1), 3)
    ten = ReportModel.build(config, scaled_profiles(profiles, 10), 3)
    assert one is not None and ten is not None
    days = [dt.date(2026, 3, d) for d in range(2, 9)]  # a week
    wards = sorted(profiles)[:30]

    def received(model: ReportModel) -> int:
        return sum(
            1
            for w in wards
            for d in days
            for e in day_reports(model, w, d)
            if e.event == "received"
        )

    n1, n10 = received(one), received(ten)
    assert n1 > 20
    assert 8 * n1 <= n10 <= 12 * n1, (n1, n10)
