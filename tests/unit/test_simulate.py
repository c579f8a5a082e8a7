"""The simulator without a broker: determinism, validity, faults, signals, applications."""

from __future__ import annotations

import collections
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.parse import Parser
from ioc.applications import event_from_mapping, replay
from ioc.config import Config, ConfigError
from ioc.workdays import Holidays, is_office_time, working_days_between
from sensors.applications import ArrivalModel, events_between
from sensors.faults import FaultPlan
from sensors.fleet import build_fleet
from sensors.settings import FaultsSection, SimulatorFile, load_simulator_settings
from sensors.signals import device_values, flood_rise_cm, rain_rate, traffic_level
from sensors.stream import (
    LiveStream,
    Message,
    Stats,
    history_app_messages,
    history_messages,
    live_messages,
)

WARDS = ["20242", "20944"]  # Phường Hải Châu (urban core), Xã Nam Trà My (highland)
# Tuesday 2026-11-24 00:00 local, in the wet season
START = dt.datetime(2026, 11, 24, tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()
HEAVY = FaultsSection(
    offline_per_day=2.0,
    stuck_per_day=0.5,
    skew_per_day=0.5,
    late_per_day=2.0,
    spike_per_reading=0.01,
    out_of_range_per_reading=0.01,
    malformed_per_reading=0.01,
    future_skew_share=0.3,
)


def arrival_model(config: Config, sim: SimulatorFile) -> tuple[ArrivalModel, dict[str, Any]]:
    """The simulator's application arrival model over the whole fleet, and the ward profiles."""
    assert config.procedures is not None
    profiles, _ = build_fleet(config, sim)
    model = ArrivalModel.build(
        profiles.values(),
        config.procedures.procedures,
        Holidays.of(config.holidays),
        sim.applications,
    )
    return model, profiles


def make_stream(
    config: Config, seed: int, faults: FaultsSection | None = None, wards: list[str] = WARDS
) -> LiveStream:
    sim = SimulatorFile() if faults is None else SimulatorFile(faults=faults)
    all_profiles, devices = build_fleet(config, sim)
    profiles = {c: p for c, p in all_profiles.items() if c in wards}
    assert config.procedures is not None
    apps = ArrivalModel.build(
        all_profiles.values(),
        config.procedures.procedures,
        Holidays.of(config.holidays),
        sim.applications,
    )
    return LiveStream(
        config,
        profiles,
        [d for d in devices if d.ward in wards],
        seed=seed,
        start=START,
        rate=1.0,
        faults=FaultPlan(seed, sim.faults),
        apps=apps,
        prefix=config.topic_prefix,
    )


def key(m: Message) -> tuple[object, ...]:
    return (m.t, m.conn, m.topic, m.payload, m.retain, m.action)


def test_fleet_size_and_density(config: Config) -> None:
    profiles, devices = build_fleet(config, SimulatorFile())
    assert len(profiles) == 94
    assert 4000 <= len(devices) <= 6000, len(devices)
    ids = [d.id for d in devices]
    assert len(ids) == len(set(ids))
    assert "aq-20242-01" in ids
    per_ward = collections.Counter(d.ward for d in devices)
    # urban core phường (Hải Châu, 7.6 km²) far denser than a mountain xã (Nam Trà My, 178 km²)
    assert per_ward["20242"] / 7.58 > 20 * per_ward["20944"] / 178.31
    assert per_ward["20242"] > 3 * per_ward["20944"]
    for d in devices:
        assert d.type in config.sensors.device_types


def test_same_seed_same_stream(config: Config) -> None:
    a = live_messages(make_stream(config, seed=3), START + 2 * 3600, step=60)
    b = live_messages(make_stream(config, seed=3), START + 2 * 3600, step=7)  # other steps
    c = live_messages(make_stream(config, seed=4), START + 2 * 3600, step=60)
    assert len(a) > 1000
    assert [key(m) for m in a] == [key(m) for m in b]
    assert [key(m) for m in a] != [key(m) for m in c]
    ts = [m.t for m in a]
    assert ts == sorted(ts)
    assert any(m.topic.endswith("/applications") for m in a)


def test_payloads_pass_validation_except_deliberate_ones(config: Config) -> None:
    stream = make_stream(config, seed=5, faults=HEAVY)
    msgs = live_messages(stream, START + 6 * 3600)
    parser = Parser(config)
    kinds = collections.Counter()
    for m in msgs:
        if m.action is not None:
            continue
        parsed = parser.parse(m.topic, m.payload, received=m.t)
        if m.valid:
            assert not parsed.problems, (m, parsed.problems)
        else:
            assert parsed.problems, m
            kinds[m.fault] += 1
    # every kind of deliberately bad message was produced, and all of them were rejected
    assert set(kinds) == {"malformed", "out_of_range", "skew_future"}, kinds
    faults = stream.stats.faults
    for k in ("offline_will", "offline_status", "offline_silent", "stuck", "spike", "late_batch"):
        assert faults[k] > 0, (k, faults)
    assert stream.stats.invalid == sum(kinds.values())


def test_no_faults_means_every_message_valid(config: Config) -> None:
    sim = SimulatorFile(faults=HEAVY)
    stream = make_stream(config, seed=5, faults=HEAVY)
    stream.faults = FaultPlan(5, sim.faults, enabled=False)
    msgs = live_messages(stream, START + 3 * 3600)
    assert all(m.valid and m.fault is None for m in msgs)
    assert not stream.stats.faults


def test_offline_faults_silence_the_device(config: Config) -> None:
    # no clock skew here: a skewed timestamp may legitimately point into the silent period
    stream = make_stream(config, seed=7, faults=HEAVY.model_copy(update={"skew_per_day": 0.0}))
    end = START + 8 * 3600
    msgs = live_messages(stream, end)
    by_dev: dict[str, list[Message]] = collections.defaultdict(list)
    for m in msgs:
        if m.device:
            by_dev[m.device].append(m)
    checked = 0
    for dev in stream.devices:
        for ep in stream.faults.episodes("offline", dev, START, end):
            iv = stream.intervals[dev.type]
            if ep.end - ep.start < 2 * iv:
                continue
            inside = [m for m in by_dev[dev.id] if ep.start + iv < m.t < ep.end]
            # only the transition marker at the first tick of the episode, nothing else
            assert all(m.fault and m.fault.startswith("offline_") for m in inside) or not inside
            assert not [m for m in inside if m.topic.endswith("/telemetry")]
            for m in by_dev[dev.id]:
                if m.topic.endswith("/telemetry") and m.valid:
                    data = json.loads(m.payload)
                    for item in data if isinstance(data, list) else [data]:
                        assert not (ep.start < item["ts"] / 1000 < ep.end), (dev.id, ep, item)
            after = [m for m in by_dev[dev.id] if m.t >= ep.end]
            if after:
                assert after[0].payload == b"online"  # back: status first
            checked += 1
    assert checked > 10


def test_history_is_valid_packed_and_has_gaps(config: Config) -> None:
    sim = SimulatorFile(faults=HEAVY)
    profiles, devices = build_fleet(config, sim)
    devices = [d for d in devices if d.ward in WARDS]
    stats = Stats()
    faults = FaultPlan(2, sim.faults)
    t1 = START + 2 * 86400
    msgs = list(
        history_messages(
            config,
            profiles,
            devices,
            seed=2,
            t0=START,
            t1=t1,
            interval=900,
            faults=faults,
            prefix=config.topic_prefix,
            stats=stats,
            per_type=sim.history_intervals,
        )
    )
    parser = Parser(config, clock=lambda: t1)
    readings = 0
    for m in msgs:
        assert len(m.payload) <= 64 * 1024
        parsed = parser.parse(m.topic, m.payload)
        if m.valid:
            assert not parsed.problems, parsed.problems[:3]
            items = json.loads(m.payload)
            assert isinstance(items, list) and len(items) <= 1000
            readings += len(items)
        else:
            assert parsed.problems
    assert readings == stats.readings - sum(1 for m in msgs if m.fault == "out_of_range")
    gaps = stats.faults["history_offline_will"] + stats.faults["history_offline_silent"]
    assert gaps + stats.faults["history_offline_status"] > 0
    # the 15-min grid: a device without faults has 2 days x 96 readings
    aq = [m for m in msgs if "/aq-20242-01/" in m.topic and m.valid]
    n = sum(len(json.loads(m.payload)) for m in aq)
    assert 100 <= n <= 192


def test_signals_are_believable(config: Config) -> None:
    profiles, devices = build_fleet(config, SimulatorFile())
    dev = {d.id: d for d in devices}
    local0 = START  # Tuesday 00:00 local
    hours = local0 + np.arange(0, 24) * 3600.0
    tl = traffic_level(hours)
    assert tl[7] > 3 * tl[3] and tl[17] > 3 * tl[3]  # rush hours vs night
    tr = device_values(dev["tr-20242-01"], profiles["20242"], hours + 1800, 1)
    assert tr["vehicle_count"][7] > tr["vehicle_count"][2]
    sl = device_values(dev["sl-20242-01"], profiles["20242"], hours, 1)
    assert sl["lamp_on"][22] == 1 and sl["lamp_on"][12] == 0 and sl["power_w"][12] < 5
    # waste bins fill up and are emptied on collection rounds
    week = local0 + np.arange(0, 7 * 24 * 4) * 900.0
    wb = device_values(dev["wb-20242-01"], profiles["20242"], week, 1)["fill_pct"]
    assert wb.max() > 40 and (np.diff(wb) < -30).sum() >= 7
    # dry season (March) dirtier than the wet season (November) near traffic
    aq = dev["aq-20242-01"]
    march = dt.datetime(2026, 3, 10, tzinfo=dt.UTC).timestamp() + np.arange(0, 14 * 96) * 900.0
    nov = START + np.arange(0, 14 * 96) * 900.0
    pm_dry = device_values(aq, profiles["20242"], march, 1)["pm25"].mean()
    pm_wet = device_values(aq, profiles["20242"], nov, 1)["pm25"].mean()
    assert pm_dry > 1.3 * pm_wet
    # a storm: rain, then water rising first and higher in a low-lying ward than in the hills
    month = START - 20 * 86400 + np.arange(0, 60 * 96) * 900.0
    low, high = profiles["20500"], profiles["20944"]  # Đại Lộc (delta) / Nam Trà My (highland)
    for seed in range(1, 6):
        rain = rain_rate(low, month, seed)
        if rain.max() < 5:
            continue
        f_low, f_high = flood_rise_cm(low, month, seed), flood_rise_cm(high, month, seed)
        assert f_low.max() > f_high.max()
        first_low = month[np.argmax(f_low > 10)]
        first_rain = month[np.argmax(rain > 1)]
        assert first_low > first_rain
        if f_high.max() > 10:
            assert first_low < month[np.argmax(f_high > 10)]
        assert f_low[-1] < f_low.max()  # receding
        break
    else:
        pytest.fail("no storm in five seeds of November")


def test_applications_obey_the_state_machine(config: Config) -> None:
    assert config.procedures is not None
    hol = Holidays.of(config.holidays)
    model, all_profiles = arrival_model(config, SimulatorFile())
    wards = [all_profiles[c] for c in WARDS]
    # 30 days ending just after Tết 2026 (16-20/02), so due dates cross the holiday
    t1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()
    t0 = t1 - 30 * 86400
    events = events_between(model, wards, t0, t1, seed=11)
    assert events == events_between(model, wards, t0, t1, seed=11)
    assert events != events_between(model, wards, t0, t1, seed=12)
    by_id: dict[str, list] = collections.defaultdict(list)
    for ev in events:
        by_id[ev.id].append(event_from_mapping(ev.payload(), ev.ward))
    days = {p.code: p.days for p in config.procedures.procedures}
    outcomes: collections.Counter[str] = collections.Counter()
    channels: collections.Counter[str] = collections.Counter()
    for app_id, evs in by_id.items():
        if evs[0].event != "received":
            continue  # arrived before the window
        r = replay(evs)
        assert not r.skipped, (app_id, r.skipped)
        assert [e.ts for e in evs] == sorted(e.ts for e in evs)
        first = evs[0]
        assert first.due is not None and first.due > first.ts
        legal = days[first.procedure or ""]
        wd = working_days_between(first.ts, first.due, hol)
        assert legal - 1 <= wd <= legal + 1.1, (app_id, legal, wd)  # 17:00 of the last day
        if first.channel != "online":
            assert is_office_time(first.ts, hol), first
        assert hol.is_working_day((first.due.astimezone(dt.timezone(dt.timedelta(hours=7)))).date())
        assert r.state is not None
        outcomes[r.state.status] += 1
        channels[first.channel or ""] += 1
    total = sum(outcomes.values())
    assert total > 1000
    assert outcomes["completed"] > 0.8 * total
    assert outcomes["returned"] > 0 and outcomes["cancelled"] > 0 and outcomes["received"] > 0
    assert 0.3 < channels["online"] / total < 0.7 and channels["postal"] > 0
    # nothing received at the counter during Tết
    tet = [
        e
        for evs in by_id.values()
        for e in evs
        if e.event == "received"
        and e.channel == "counter"
        and dt.date(2026, 2, 16)
        <= e.ts.astimezone(dt.timezone(dt.timedelta(hours=7))).date()
        <= dt.date(2026, 2, 20)
    ]
    assert not tet
    # late completions exist and are a minority
    late = sum(
        1
        for evs in by_id.values()
        if evs[0].event == "received"
        and evs[-1].event == "completed"
        and evs[-1].ts > (evs[-2].due or evs[0].due)  # type: ignore[operator]
    )
    assert 0 < late < 0.15 * total


def test_arrivals_scale_with_ward_size(config: Config) -> None:
    model, profiles = arrival_model(config, SimulatorFile())
    busiest = max(profiles.values(), key=lambda p: p.population)
    day0 = dt.datetime(2026, 11, 23, tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()
    per_day = len(
        [
            e
            for e in events_between(model, [busiest], day0, day0 + 86400, 1)
            if e.event == "received" and e.id.split("-")[1] == "261123"
        ]
    )
    assert 230 <= per_day <= 360, per_day  # a busy commune centre on a Monday
    small = len(
        [
            e
            for e in events_between(model, [profiles["20944"]], day0, day0 + 86400, 1)
            if e.event == "received" and e.id.split("-")[1] == "261123"
        ]
    )
    assert 2 <= small <= 60, small


def test_history_applications_start_with_received(config: Config) -> None:
    sim = SimulatorFile()
    model, profiles = arrival_model(config, sim)
    stats = Stats()
    msgs = list(
        history_app_messages(
            model,
            [profiles["20242"]],
            seed=1,
            t0=START - 5 * 86400,
            t1=START,
            prefix="ioc",
            stats=stats,
        )
    )
    seen: set[str] = set()
    assert len(msgs) == stats.events > 100
    for m in msgs:
        ev = json.loads(m.payload)
        assert m.topic == "ioc/20242/applications"
        if ev["id"] not in seen:
            assert ev["event"] == "received", ev
            seen.add(ev["id"])


def test_simulator_yaml_holds_the_defaults(config: Config, tmp_path: Path) -> None:
    assert load_simulator_settings(config.dir) == SimulatorFile()
    bad = tmp_path / "simulator.yaml"
    bad.write_text("faults:\n  offline_per_day: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_simulator_settings(tmp_path)
    assert "simulator.yaml:2" in str(exc.value) and "offline_per_day" in str(exc.value)


def test_events_between_finds_the_longest_lifecycles(config: Config) -> None:
    """Every event in a window is found, including those of applications that arrived long
    before it (returned, handed in again, then stuck on a 30-working-day procedure): compared
    with every lifecycle of every arrival day over the year before the window."""
    from sensors.applications import day_applications, local_day, lookback_start

    model, all_profiles = arrival_model(config, SimulatorFile())
    ward = all_profiles["20467"]  # seed 3: a week holding an application that came 132 days before
    t0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()
    t1 = t0 + 7 * 86400
    found = events_between(model, [ward], t0, t1, seed=3)
    day, brute = local_day(t0) - dt.timedelta(days=365), []
    oldest = local_day(t0)
    while day <= local_day(t1):
        for life in day_applications(model, ward, day, seed=3):
            inside = [e for e in life if t0 <= e.t < t1]
            if inside:
                oldest = min(oldest, day)
            brute.extend(inside)
        day += dt.timedelta(days=1)
    brute.sort(key=lambda e: (e.t, e.ward, e.id))
    assert found == brute
    # the window holds events of applications that arrived over 100 days before it (the old,
    # fixed look-back missed them), and the look-back reaches them
    assert (local_day(t0) - oldest).days > 100
    assert lookback_start(model, local_day(t0)) <= oldest
