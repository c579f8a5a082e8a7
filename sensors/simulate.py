"""``ioc simulate``: the simulated city over MQTT (live, replayed faster, or history).

* live (default): every device reports at its interval from sensors.yaml divided by ``--rate``,
  until ``--duration`` seconds have passed or SIGTERM/SIGINT (clean exit, code 0);
* ``--speedup S``: simulated time runs S times faster, starting in the past so that it never
  runs ahead of the wall clock (``(S-1) x --duration`` back, or one day back without
  ``--duration``); once it has caught up it goes on in real time;
* ``--backfill DAYS``: DAYS of history up to now, at ``history_interval_s`` (15 min by default)
  as arrays of readings, plus every application event of the period; then exits, or goes on
  live when ``--duration`` is also given.

``--scale K`` (load tests): a city K times Da Nang in the same 94 wards: K times the devices
of every type (K x the densities and minimums of simulator.yaml), K times the one-stop-shop
applications, and, live, ``--cameras`` (default 100 x K) cameras' metadata written straight
to PostgreSQL as the camera ingesters write it (sensors/camera_meta.py; no video).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterable
from types import FrameType

from ioc.context import Context
from ioc.errors import IOCError, UsageError
from ioc.workdays import Holidays
from sensors.applications import ArrivalModel
from sensors.faults import FaultPlan
from sensors.fleet import WardProfile, build_fleet
from sensors.incident_ops import OpsCentre
from sensors.incident_staff import IncidentStaff
from sensors.mqttio import Net
from sensors.reports import ApiSink, RepEvent, ReportFeed, ReportModel
from sensors.reports import events_between as report_events_between
from sensors.settings import SimulatorFile, load_simulator_settings
from sensors.stream import (
    LiveStream,
    Message,
    Stats,
    history_app_messages,
    history_messages,
)

log = logging.getLogger("ioc.simulate")
STAFF_EVERY_S = 30.0  # how often the simulated ward staff look at their incidents

CAMERAS_PER_CITY = 100  # --scale K: 100 x K cameras' metadata (2,000 at 20 x Da Nang)
SCALED_LOOKBACK_DAYS = 7  # --scale > 1: applications received this many days back are followed


class Simulation:
    """Everything ``ioc simulate`` needs, built from the configuration and the arguments."""

    def __init__(self, args: argparse.Namespace, ctx: Context) -> None:
        cfg = ctx.config()
        self.cfg = cfg
        self.scale = float(getattr(args, "scale", 1.0) or 1.0)
        self.sim = scaled(load_simulator_settings(cfg.dir), self.scale)
        if args.wards:
            unknown = sorted(set(args.wards) - cfg.ward_codes)
            if unknown:
                raise UsageError(f"ioc simulate: unknown ward code(s): {', '.join(unknown)}")
        if args.backfill is not None and not 0 < args.backfill <= 400:
            raise UsageError("ioc simulate: --backfill DAYS must be between 1 and 400")
        all_profiles, all_devices = build_fleet(cfg, self.sim)
        chosen = set(args.wards) if args.wards else set(all_profiles)
        self.profiles = {c: p for c, p in all_profiles.items() if c in chosen}
        self.devices = [d for d in all_devices if d.ward in chosen]
        if self.scale != 1:
            # thousands of stations with a modem each would be thousands of connections from
            # this one process (past select()'s 1,024 sockets and a shared broker's limits):
            # at scale every device goes through its ward's gateway (94 connections)
            self.devices = [dataclasses.replace(d, direct=False) for d in self.devices]
        self.seed = args.seed
        self.prefix = cfg.topic_prefix
        self.faults = FaultPlan(args.seed, self.sim.faults, enabled=not args.no_faults)
        self.apps = (
            ArrivalModel.build(
                all_profiles.values(),
                cfg.procedures.procedures,
                Holidays.of(cfg.holidays),
                self.sim.applications,
            )
            if cfg.procedures is not None
            else None
        )
        # citizen reports and their handling (sensors/reports.py): app/portal reports through
        # the HTTP API when an intake token is given (IOC_INTAKE_URL + IOC_INTAKE_TOKEN)
        self.reports = ReportModel.build(cfg, scaled_profiles(self.profiles, self.scale), args.seed)
        st = ctx.settings
        token = st.secret("intake_token")
        self.api = ApiSink(st.intake_url, token) if st.intake_url and token else None
        # the wards' staff working incidents through the incidents API (sensors/incident_staff.py)
        staff_token = st.secret("incidents_token")
        self.staff = (
            IncidentStaff(st.intake_url, staff_token, seed=args.seed)
            if st.intake_url and staff_token
            else None
        )
        # the operations centre taking reports up as incidents (sensors/incident_ops.py)
        self.ops = (
            OpsCentre(st.intake_url, staff_token, seed=args.seed)
            if st.intake_url and staff_token
            else None
        )
        self.args = args
        self.ctx = ctx

    def live_stream(self, start: float) -> LiveStream:
        stream = LiveStream(
            self.cfg,
            self.profiles,
            self.devices,
            seed=self.seed,
            start=start,
            rate=self.args.rate,
            faults=self.faults,
            apps=self.apps,
            prefix=self.prefix,
        )
        if stream.feed is not None and self.scale != 1:
            # the backlog of every application still open at the start costs K times the
            # 1x feed's ~50 s and 0.5 GB; at scale the feed follows the last week's
            # applications and the new ones (docs/simulator.md)
            stream.feed.lookback_days = SCALED_LOOKBACK_DAYS
        return stream


def scaled(sim: SimulatorFile, k: float) -> SimulatorFile:
    """The simulator's settings for a city ``k`` times as big (devices and applications)."""
    if k == 1:
        return sim
    if not 0 < k <= 100:
        raise UsageError("ioc simulate: --scale must be above 0 and at most 100")
    fleet = sim.fleet.model_copy(
        update={
            "per_10k_people": {t: v * k for t, v in sim.fleet.per_10k_people.items()},
            "minimum": {t: max(1, round(v * k)) for t, v in sim.fleet.minimum.items()},
        }
    )
    apps = sim.applications.model_copy(
        update={"busiest_per_day": sim.applications.busiest_per_day * k}
    )
    return sim.model_copy(update={"fleet": fleet, "applications": apps})


def scaled_profiles(profiles: dict[str, WardProfile], k: float) -> list[WardProfile]:
    """The wards with K times their (estimated) population: citizen reports arrive in
    proportion to it (sensors/reports.py), so a city K times as big reports K times as much."""
    if k == 1:
        return list(profiles.values())
    return [dataclasses.replace(p, population=round(p.population * k)) for p in profiles.values()]


def camera_thread(s: Simulation, stop: threading.Event) -> threading.Thread | None:
    """Live camera metadata (``--cameras N``; scaled runs default to 100 x --scale, for the
    share of the wards this run simulates, so ``--wards`` shards add up to the city)."""
    n = getattr(s.args, "cameras", None)
    if n is None:  # 100 per Da Nang, for this run's share of the wards
        share = len(s.profiles) / max(1, len(s.cfg.wards))
        n = round(CAMERAS_PER_CITY * s.scale * share) if s.scale != 1 else 0
    if n <= 0:
        return None
    from sensors.camera_meta import CameraMetaFeed, camera_ids
    from sensors.fleet import camera_position

    cams = camera_ids(sorted(s.profiles), n)
    wards = {w.code: w for w in s.cfg.wards}
    feed = CameraMetaFeed(
        s.ctx.database_url(),
        cams,
        interval_s=s.cfg.cameras.defaults.interval_s,
        seed=s.seed,
        positions={c: camera_position(wards[w], c) for c, w in cams},
    )
    feed.register()
    log.info("live: %d cameras' metadata every %g s, written to PostgreSQL", n, feed.interval_s)

    def loop() -> None:
        try:
            while not stop.wait(1.0):
                try:
                    feed.advance(time.time())
                except Exception as exc:
                    log.warning("camera metadata not written: %s", str(exc).splitlines()[0])
        finally:
            feed.close()

    th = threading.Thread(target=loop, name="simulate-cameras", daemon=True)
    th.start()
    return th


def _dispatch(net: Net, m: Message) -> None:
    if m.action == "drop":
        net.drop(m.conn)
        return
    if m.action is not None:
        return
    will = None
    if m.device is not None and m.conn == m.device:  # a direct station: its own will
        will = m.topic.rsplit("/", 1)[0] + "/status"
    net.publish(m.conn, m.topic, m.payload, retain=m.retain, will=will)


def _publish_all(net: Net, messages: Iterable[Message], stop: threading.Event) -> int:
    n = 0
    for m in messages:
        if stop.is_set():
            break
        _dispatch(net, m)
        n += 1
        if n % 200 == 0:
            net.poll(0)
            if n % 2000 == 0:
                while net.unacked() > 20_000 and not stop.is_set():
                    net.poll(0.05)
    return n


def _report_message(s: Simulation, ev: RepEvent) -> Message:
    payload = json.dumps(ev.payload(), ensure_ascii=False, separators=(",", ":")).encode()
    return Message(ev.t, f"gw-{ev.ward}", f"{s.prefix}/{ev.ward}/reports", payload)


def _send_reports(s: Simulation, net: Net, events: list[RepEvent], stats: Stats) -> None:
    """Reports of the app and the portal to the HTTP API (when configured), the rest (and
    everything when there is no API) over MQTT."""
    for ev in events:
        if s.api is not None and ev.via_api:
            s.api.add([ev])
        else:
            m = _report_message(s, ev)
            _dispatch(net, m)
            stats.add(m)  # counted with the messages (report events are not application events)


def _api_fallback(s: Simulation, net: Net) -> None:
    """The API stayed unreachable: what it did not take goes over MQTT (same events, same
    ids: stored once whichever door they come through)."""
    if s.api is None or not s.api.queue:
        return
    log.warning(
        "reports API unreachable (%s): %d report(s) sent over MQTT instead",
        s.api.last_error,
        len(s.api.queue),
    )
    for item in s.api.queue:
        ward = str(item.pop("ward"))
        payload = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        net.publish(f"gw-{ward}", f"{s.prefix}/{ward}/reports", payload)
    s.api.queue.clear()


def run_backfill(s: Simulation, net: Net, stop: threading.Event, end: float) -> Stats:
    days = s.args.backfill
    interval = s.sim.history_interval_s
    start = end - days * 86400.0
    stats = Stats()
    t0 = time.monotonic()
    log.info(
        "backfill: %d day(s) for %d ward(s), %d devices, every %.0f s, then applications",
        days,
        len(s.profiles),
        len(s.devices),
        interval,
    )
    hist = history_messages(
        s.cfg,
        s.profiles,
        s.devices,
        seed=s.seed,
        t0=start,
        t1=end,
        interval=interval,
        faults=s.faults,
        prefix=s.prefix,
        stats=stats,
        per_type=s.sim.history_intervals,
    )
    _publish_all(net, hist, stop)
    t1 = time.monotonic()
    log.info("backfill: readings published in %.1f s (%s)", t1 - t0, stats.summary())
    if s.apps is not None and not stop.is_set():
        apps = history_app_messages(
            s.apps,
            list(s.profiles.values()),
            seed=s.seed,
            t0=start,
            t1=end,
            prefix=s.prefix,
            stats=stats,
        )
        _publish_all(net, apps, stop)
    if s.reports is not None and not stop.is_set():
        evs = report_events_between(s.reports, list(s.profiles), start, end, received_since=start)
        _send_reports(s, net, evs, stats)
        net.flush(60)
        if s.api is not None:
            deadline = time.monotonic() + 60  # the dashboard may still be starting (demo)
            while not s.api.flush() and time.monotonic() < deadline and not stop.is_set():
                stop.wait(2.0)
            _api_fallback(s, net)
        log.info("backfill: %d citizen report event(s)", len(evs))
    left = net.flush(120)
    log.info(
        "backfill done in %.1f s: %s%s",
        time.monotonic() - t0,
        stats.summary(),
        f" ({left} not acknowledged)" if left else "",
    )
    return stats


def run_live(s: Simulation, net: Net, stop: threading.Event, real0: float) -> Stats:
    args = s.args
    speed = args.speedup
    lag = 0.0
    if speed > 1:
        lag = (speed - 1) * args.duration if args.duration else 86400.0
    sim0 = real0 - lag
    stream = s.live_stream(sim0)
    if stream.feed is not None:
        stream.feed.tick = lambda: net.poll(0)
        stream.feed.stop = stop.is_set  # SIGTERM while the feed computes: leave after a ward
    log.info(
        "live: %d ward(s), %d devices, rate x%g, speedup x%g%s",
        len(s.profiles),
        len(stream.devices),
        args.rate,
        speed,
        f", for {args.duration:g} s" if args.duration else " until stopped",
    )
    for m in stream.advance(sim0):  # the fleet's `online` statuses, before anything slow
        _dispatch(net, m)
    net.poll(0)
    feed = ReportFeed(s.reports, list(s.profiles), sim0) if s.reports is not None else None
    mono0 = time.monotonic()
    last_log = mono0
    last_api = mono0
    last_staff = mono0 - STAFF_EVERY_S  # the first round at once
    api_failing_since: float | None = None
    while not stop.is_set():
        elapsed = time.monotonic() - mono0
        if args.duration is not None and elapsed >= args.duration:
            break
        sim_now = min(sim0 + elapsed * speed, real0 + elapsed)
        for m in stream.advance(sim_now):
            _dispatch(net, m)
        if feed is not None:
            fresh = feed.advance(sim_now)
            _send_reports(s, net, fresh, stream.stats)
            if s.ops is not None:
                s.ops.see(fresh)
            if s.api is not None and s.api.queue and time.monotonic() - last_api >= 2.0:
                last_api = time.monotonic()
                if s.api.flush():
                    api_failing_since = None
                else:
                    api_failing_since = api_failing_since or last_api
                    if last_api - api_failing_since > 120:
                        _api_fallback(s, net)
                        api_failing_since = None
        if s.staff is not None and time.monotonic() - last_staff >= STAFF_EVERY_S:
            last_staff = time.monotonic()
            if s.ops is not None:  # the duty officer first: take up, reject, close
                s.ops.work(dt.datetime.now(dt.UTC))
            s.staff.work(dt.datetime.now(dt.UTC))  # incidents run on real time
        net.poll(0.1)
        if time.monotonic() - last_log >= 60:
            last_log = time.monotonic()
            log.info("live: %s", stream.stats.summary())
    return stream.stats


def main(args: argparse.Namespace, ctx: Context) -> int:
    s = Simulation(args, ctx)
    target = ctx.mqtt()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    tag = "iocsim-" + s.prefix.replace("/", "-")
    net = Net(target, tag=tag, inflight=1000 if args.backfill else 200)
    try:
        first = next(iter(s.profiles))
        net.check_connected(f"gw-{first}")
        real0 = time.time()
        if args.backfill:
            interval = s.sim.history_interval_s
            end = math.floor(real0 / interval) * interval
            run_backfill(s, net, stop, end)
            if args.duration is None:
                return 0
        cams = camera_thread(s, stop)
        try:
            stats = run_live(s, net, stop, time.time())
        finally:
            stop.set()
            if cams is not None:
                cams.join(30)
        if s.api is not None and not s.api.flush():
            _api_fallback(s, net)
        left = net.flush(10)
        log.info("stopped: %s%s", stats.summary(), f" ({left} not acknowledged)" if left else "")
        return 0
    except KeyboardInterrupt:
        return 0
    except IOCError:
        raise
    finally:
        net.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
