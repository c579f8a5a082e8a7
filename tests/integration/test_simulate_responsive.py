"""``ioc simulate`` (live) answers SIGTERM at once, even while it computes the application
feed (found in the demo: it ignored SIGTERM for > 15 s at start, and the demo's 10 s stop
timeout then SIGKILLed it); and the feed skips applications that ended long ago without
changing a single event."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from ioc.config import Config, load_config
from ioc.workdays import Holidays
from sensors.applications import (
    LOCAL,
    ArrivalModel,
    _plan,
    _span_bound_wd,
    day_applications,
    events_between,
    lifecycle,
    local_day,
)
from sensors.fleet import build_fleet
from sensors.settings import load_simulator_settings

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def model(cfg: Config) -> tuple[ArrivalModel, list]:  # type: ignore[type-arg]
    sim = load_simulator_settings(cfg.dir)
    profiles, _ = build_fleet(cfg, sim)
    assert cfg.procedures is not None
    m = ArrivalModel.build(
        profiles.values(), cfg.procedures.procedures, Holidays.of(cfg.holidays), sim.applications
    )
    return m, list(profiles.values())


def test_lifecycle_ends_within_its_bound(config: Config) -> None:
    m, _ = model(config)
    assert config.procedures is not None
    rnd = random.Random(7)
    start = dt.datetime(2026, 1, 20, 9, 0, tzinfo=LOCAL)  # Tết 2026 within reach
    for i in range(3000):
        proc = rnd.choice(config.procedures.procedures)
        u = [rnd.random() for _ in range(8)]
        if i % 3 == 0:  # make the long paths common: returned, resubmitted, stuck
            u[0] = m.settings.cancelled_share + 0.001
            u[3], u[5] = 0.9, 0.001
        received = start + dt.timedelta(days=rnd.randint(0, 60), minutes=rnd.randint(0, 600))
        life = lifecycle(
            ward="x",
            app_id=str(i),
            proc=proc,
            channel=rnd.choice(["online", "counter"]),
            received=received,
            u=u,
            cal=m.cal,
            s=m.settings,
        )
        bound = _span_bound_wd(_plan(u, proc, m.settings), proc.days)
        used = (life[-1].ts.date() - received.date()).days
        # a working day is at least a calendar day: the bound in working days covers it
        assert used <= bound * 7 / 5 + 14, (proc.code, u, used, bound)


def test_live_window_has_every_event_of_the_brute_force(config: Config) -> None:
    m, wards = model(config)
    some = wards[::15]
    t0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=LOCAL).timestamp()
    t1 = t0 + 2 * 86400
    got = events_between(m, some, t0, t1, 1)
    want = []
    first = local_day(t0) - dt.timedelta(days=100)
    for w in some:
        d = first
        while d <= local_day(t1):
            for life in day_applications(m, w, d, 1):
                want.extend(e for e in life if t0 <= e.t < t1)
            d += dt.timedelta(days=1)
    want.sort(key=lambda e: (e.t, e.ward, e.id))
    assert got == want and len(got) > 100


def test_feed_stops_between_wards(config: Config) -> None:
    m, wards = model(config)
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    t0 = time.time()
    events_between(m, wards, t0, t0 + 86400, 1, tick=tick, stop=lambda: ticks >= 2)
    assert ticks == 2


@pytest.fixture
def prefixed(tmp_path: Path) -> Path:
    cfg_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, cfg_dir)
    ioc_yaml = cfg_dir / "ioc.yaml"
    prefix = f"t{uuid.uuid4().hex[:10]}"
    text = ioc_yaml.read_text(encoding="utf-8")
    ioc_yaml.write_text(text.replace("topic_prefix: ioc", f"topic_prefix: {prefix}"), "utf-8")
    assert load_config(cfg_dir).topic_prefix == prefix
    return cfg_dir


def test_sigterm_at_start_of_a_live_run_stops_within_5_s(mqtt_url: str, prefixed: Path) -> None:
    env = dict(os.environ, IOC_MQTT_URL=mqtt_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ioc.cli", "--config-dir", str(prefixed), "simulate",
         "--rate", "1", "--seed", "1"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    live = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "live:" in line:
                live.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert live.wait(60), "".join(lines)
        time.sleep(1.0)  # the application feed is being computed now (all 94 wards)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 0, "".join(lines)
    assert took < 5, f"stopped {took:.1f} s after SIGTERM"
