"""The simulated citizen reports (sensors/reports.py): believable (denser wards report more,
traffic at rush hour, lighting at night, flooding with rain, duplicates, slow wards late),
every lifecycle valid for the real state machine, and end to end: `ioc simulate --backfill`
through MQTT and the HTTP API into the real server and database."""

from __future__ import annotations

import collections
import datetime as dt
import math
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ioc.citizen.events import Rules, event_from_mapping
from ioc.citizen.lifecycle import replay
from ioc.config import Config, load_config
from sensors.fleet import build_fleet
from sensors.reports import ReportFeed, ReportModel, day_reports, events_between
from sensors.settings import load_simulator_settings
from sensors.signals import rain_rate

ROOT = Path(__file__).resolve().parents[2]
LOCAL = dt.timezone(dt.timedelta(hours=7))


@pytest.fixture(scope="module")
def model(config: Config) -> tuple[ReportModel, dict[str, Any]]:
    profiles, _ = build_fleet(config, load_simulator_settings(config.dir))
    m = ReportModel.build(config, profiles.values(), 7)
    assert m is not None
    return m, profiles


@pytest.fixture(scope="module")
def month(model: tuple[ReportModel, dict[str, Any]]) -> list[Any]:
    m, profiles = model
    t1 = dt.datetime(2026, 11, 30, tzinfo=LOCAL).timestamp()
    return events_between(m, list(profiles), t1 - 30 * 86400, t1)


def _cat(e: Any) -> str:
    return str(dict(e.data)["category"])


def test_believable_stream(model: tuple[ReportModel, dict[str, Any]], month: list[Any]) -> None:
    m, profiles = model
    rec = [e for e in month if e.event == "received"]
    assert 2000 < len(rec) < 12000  # ~100-400 a day city-wide
    # denser wards report more: the top quarter by population ≥ 3× the bottom quarter
    per = collections.Counter(e.ward for e in rec)
    by_pop = sorted(profiles, key=lambda c: profiles[c].population)
    q = len(by_pop) // 4
    low = sum(per[c] for c in by_pop[:q])
    high = sum(per[c] for c in by_pop[-q:])
    assert high > 3 * low
    hour = collections.defaultdict(collections.Counter)
    for e in rec:
        hour[_cat(e)][e.ts.astimezone(LOCAL).hour] += 1
    traffic = hour["traffic"]
    rush = sum(traffic[h] for h in (7, 8, 17, 18))
    assert rush > 0.4 * sum(traffic.values())  # 4 hours of 24 hold most
    lighting = hour["lighting"]
    night = sum(v for h, v in lighting.items() if h >= 18 or h < 5)
    assert night > 0.8 * sum(lighting.values())
    # flooding follows rain: the hours with reports are rainy ones
    flood = [e for e in rec if _cat(e) == "flooding"]
    assert flood
    rain = [float(rain_rate(profiles[e.ward], np.array([e.t]), m.seed)[0]) for e in flood]
    assert sum(r > 0.5 for r in rain) > 0.8 * len(rain)
    # duplicates of one problem: another code minutes later, same category, close by
    by_key = collections.Counter((e.ward, _cat(e), round(dict(e.data)["lat"], 3)) for e in rec)
    assert sum(1 for v in by_key.values() if v > 1) > 0.03 * len(rec)
    # channels: some through the HTTP API (app, portal), most over MQTT
    api = sum(e.via_api for e in rec)
    assert 0.2 * len(rec) < api < 0.5 * len(rec)


def test_lifecycles_valid_and_slow_wards_late(
    config: Config, model: tuple[ReportModel, dict[str, Any]], month: list[Any]
) -> None:
    m, _ = model
    rules = Rules.from_config(config)
    by_id: dict[str, list[Any]] = collections.defaultdict(list)
    for e in month:
        by_id[e.id].append(event_from_mapping(e.payload(), e.ward, rules))
    late = collections.Counter()
    ended = collections.Counter()
    statuses = collections.Counter()
    for events in by_id.values():
        r = replay(events, rules)
        if r.state is None:  # received before the window, lifecycle cut
            continue
        assert not r.skipped, r.skipped
        st = r.state
        statuses[st.status] += 1
        if st.resolved_at is not None and st.due_at is not None:
            slow = st.ward_code in m.slow
            ended[slow] += 1
            late[slow] += st.resolved_at > st.due_at
    assert set(statuses) >= {"resolved", "rejected", "in_progress"}
    assert late[True] / ended[True] > late[False] / ended[False] + 0.15


def test_deterministic_and_live_feed(model: tuple[ReportModel, dict[str, Any]]) -> None:
    m, profiles = model
    ward = next(iter(profiles))
    day = dt.date(2026, 11, 20)
    again = ReportModel.build(load_config(ROOT / "config"), profiles.values(), 7)
    assert again is not None
    assert day_reports(m, ward, day) == day_reports(again, ward, day)
    t0 = dt.datetime(2026, 11, 20, tzinfo=LOCAL).timestamp()
    feed = ReportFeed(m, [ward], t0)
    got = []
    for k in range(1, 49):
        got += feed.advance(t0 + k * 1800)
    assert got == events_between(m, [ward], t0, t0 + 86400)


@pytest.mark.timeout(600)
def test_backfill_through_mqtt_and_the_api(
    pg_server_url: str, config: Config, mqtt_url: str, tmp_path: Path
) -> None:
    from dash_fixtures import served

    from ingest.mqtt import MqttIngester
    from ioc.citizen.tokens import add_token
    from ioc.db import connect
    from ioc.settings import parse_mqtt_url

    prefix = f"t{uuid.uuid4().hex[:10]}"
    cfg_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg_dir)
    ioc_yaml = cfg_dir / "ioc.yaml"
    ioc_yaml.write_text(
        ioc_yaml.read_text("utf-8").replace("topic_prefix: ioc", f"topic_prefix: {prefix}"), "utf-8"
    )
    cfg = load_config(cfg_dir)
    wards = ["20257", "20263", "20260"]  # dense wards: enough reports in a day
    with served(pg_server_url, config, tmp_path, workers=1, threads=4, days=1,
                readings_hours=1, hourly_hours=1, devices_per_ward=1) as server:  # fmt: skip
        conn = connect(server.db_url)
        try:
            token = add_token(conn, "sim")
        finally:
            conn.close()
        ing = MqttIngester(cfg, server.db_url, parse_mqtt_url(mqtt_url),
                           client_id=f"t-{uuid.uuid4().hex[:8]}")  # fmt: skip
        ing.start()
        try:
            env = dict(os.environ, IOC_MQTT_URL=mqtt_url, IOC_INTAKE_URL=server.url,
                       IOC_INTAKE_TOKEN=token)  # fmt: skip
            before = time.time()
            res = subprocess.run(
                [sys.executable, "-m", "ioc.cli", "--config-dir", str(cfg_dir), "simulate",
                 "--backfill", "1", "--wards", *wards, "--seed", "5", "--no-faults"],
                env=env, capture_output=True, text=True, timeout=400,
            )  # fmt: skip
            after = time.time()
            assert res.returncode == 0, res.stderr[-2000:]
            sent = re.search(r"backfill: (\d+) citizen report event", res.stderr)
            assert sent, res.stderr[-2000:]
            n_sent = int(sent.group(1))
            assert n_sent > 0
            # every event the backfill sent is stored once, through either door
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if _one(server.db_url, "SELECT count(*) FROM report_events") >= n_sent:
                    break
                time.sleep(0.2)
        finally:
            ing.stop()
        stored = _all(server.db_url, "SELECT report_id, event, ts FROM report_events")
        assert len(stored) == n_sent
        # and they are exactly the model's: a day of whole reports up to the simulator's end
        # (its start time rounded down to the history interval)
        interval = load_simulator_settings(cfg.dir).history_interval_s
        got = {(r, e, ts.timestamp()) for r, e, ts in stored}
        model = _model(cfg, 5)
        candidates = []
        for t in (before, after):
            end = math.floor(t / interval) * interval
            evs = events_between(model, wards, end - 86400, end, received_since=end - 86400)
            candidates.append(({(e.id, e.event, e.t) for e in evs}, evs))
        sent_evs = next((evs for keys, evs in candidates if keys == got), None)
        assert sent_evs is not None, (len(got), [len(keys) for keys, _ in candidates])
        doors = dict(_all(server.db_url, "SELECT door, count(*) FROM report_events GROUP BY 1"))
        assert doors.get("api", 0) > 0 and doors.get("mqtt", 0) > doors["api"]
        assert _one(server.db_url, "SELECT count(*) FROM ingest_rejects") == 0
        # each report's status is the one its events lead to (which statuses a day holds
        # depends on the hour the test runs: one day of reports may have none resolved yet)
        rules = Rules.from_config(cfg)
        by_id: dict[str, list[Any]] = collections.defaultdict(list)
        for e in sent_evs:
            by_id[e.id].append(event_from_mapping(e.payload(), e.ward, rules))
        want = {}
        for rid, events in by_id.items():
            st = replay(events, rules).state
            assert st is not None
            want[rid] = st.status
        assert dict(_all(server.db_url, "SELECT id, status FROM reports")) == want
        assert len(set(want.values())) >= 2  # the lifecycles moved past 'received'


def _model(cfg: Config, seed: int) -> ReportModel:
    profiles, _ = build_fleet(cfg, load_simulator_settings(cfg.dir))
    m = ReportModel.build(cfg, profiles.values(), seed)
    assert m is not None
    return m


def _all(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg2

    c = psycopg2.connect(url)
    try:
        with c.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        c.close()


def _one(url: str, sql: str) -> Any:
    return _all(url, sql)[0][0]


def test_history_starts_with_whole_reports(model: tuple[ReportModel, dict[str, Any]]) -> None:
    m, profiles = model
    t1 = dt.datetime(2026, 11, 30, tzinfo=LOCAL).timestamp()
    t0 = t1 - 86400
    evs = events_between(m, list(profiles), t0, t1, received_since=t0)
    received = {e.id for e in evs if e.event == "received"}
    assert received and {e.id for e in evs} == received
    assert len(evs) < len(events_between(m, list(profiles), t0, t1))
