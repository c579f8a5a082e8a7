"""Benchmark: the whole system under a city 20 times Da Nang, on this machine.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    IOC_MQTT_URL=mqtt://127.0.0.1:1883 python bench/city_load.py --minutes 30 [--scale 20]

Starts, on a scratch database and a topic prefix of its own, ``--ingesters`` x ``ioc ingest
mqtt --shared``, ``ioc scheduler`` (KPIs every 60 s instead of 300 s, so a short run sees
several) and ``ioc serve --workers 2``, and the load of a city K times Da Nang (K x the devices
and applications of ``ioc simulate --scale K``, 100 x K cameras' metadata):

* by default the simulator's messages for the whole run are generated first (the same
  ``LiveStream`` as ``ioc simulate --scale K``, timed from the start of the measured run) and
  then published at their times by a light replayer over the same per-ward gateway
  connections: on a shared 2-core machine the generator (~0.6 core at 20x when the machine is
  idle) would otherwise compete with the system under test and fall behind real time;
* ``--live``: ``--simulators`` x ``ioc simulate --scale K --wards <share>`` processes instead.

While it runs it measures:

* readings stored per second (``pg_stat_user_tables.n_tup_ins`` of ``readings``, every 10 s);
* ingest lag: a probe device publishes 2 readings/s with their send time over the same broker
  and topic tree; the time until each is visible in ``readings`` (polled every 50 ms);
* KPI run time: each run of the scheduler's ``kpis`` job (from ``service_status``);
* dashboard callbacks (overview + ward page, 4 concurrent clients, a burst every 30 s);
* memory (RSS, process and children) of every process after the warm-up and at the end.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import paho.mqtt.client as mqtt  # noqa: E402
from _scratch import scratch_database  # noqa: E402
from dash_fixtures import (  # noqa: E402
    free_port,
    login_cookie,
    overview_body,
    post_json,
    ward_body,
)
from dash_seed import add_users  # noqa: E402

from ioc.db import connect  # noqa: E402
from ioc.settings import parse_mqtt_url  # noqa: E402

PASSWORD = "city-load-pass-1"


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def rss_mb(proc: subprocess.Popen[Any]) -> float:
    """Resident memory of a process and its children, MB (copy-on-write pages counted in
    every process that maps them: an upper bound)."""
    try:
        p = psutil.Process(proc.pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += q.memory_info().rss
    return total / 1e6


def bench_config(tmp: Path, prefix: str) -> Path:
    cdir = tmp / "config"
    shutil.copytree(ROOT / "config", cdir)
    doc = yaml.safe_load((cdir / "ioc.yaml").read_text(encoding="utf-8")) or {}
    doc.setdefault("mqtt", {})["topic_prefix"] = prefix
    doc["mqtt"]["client_id"] = f"{prefix}-ingest"
    (cdir / "ioc.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    kp = yaml.safe_load((cdir / "kpis.yaml").read_text(encoding="utf-8"))
    kp["scheduler"]["kpis_every_s"] = 60
    kp["scheduler"]["reports_dir"] = str(tmp / "reports")
    (cdir / "kpis.yaml").write_text(yaml.safe_dump(kp, allow_unicode=True), encoding="utf-8")
    return cdir


class Probe:
    """Publishes readings of one probe device with their send time; finds when each is
    stored. Lag = stored (seen) - sent, for every probe reading."""

    def __init__(self, db_url: str, mqtt_url: str, prefix: str, ward: str) -> None:
        self.db_url = db_url
        self.topic = f"{prefix}/{ward}/air_quality/aq-{ward}-probe/telemetry"
        self.device = f"aq-{ward}-probe"
        target = parse_mqtt_url(mqtt_url)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{uuid.uuid4().hex[:6]}"
        )
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        self.sent: dict[int, float] = {}  # ts ms -> wall time sent
        self.lags: list[float] = []
        self.stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._publish, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]

    def start(self) -> None:
        for th in self._threads:
            th.start()

    def _publish(self) -> None:
        while not self.stop.wait(0.5):
            now = time.time()
            ms = int(now * 1000)
            self.sent[ms] = now
            body = json.dumps({"ts": ms, "values": {"pm25": 12.5}})
            self.client.publish(self.topic, body, qos=1)

    def _poll(self) -> None:
        conn = connect(self.db_url, application_name="bench-probe", autocommit=True)
        last = 0
        try:
            while not self.stop.wait(0.05):
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM readings"
                        " WHERE device_id = %s AND metric = 'pm25'"
                        " AND ts > to_timestamp(%s / 1000.0)",
                        (self.device, last),
                    )
                    rows = cur.fetchall()
                seen = time.time()
                for (ms,) in rows:
                    last = max(last, int(ms))
                    sent = self.sent.pop(int(ms), None)
                    if sent is not None:
                        self.lags.append(seen - sent)
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        for th in self._threads:
            th.join(5)
        self.client.loop_stop()
        self.client.disconnect()


TS = re.compile(rb'"ts":(\d+)')


class Replayer:
    """The simulator's messages generated ahead (``ioc simulate --scale``'s LiveStream from
    ``start_at`` for ``seconds``), then published each at its time over the simulator's own
    gateway connections; the cameras' metadata written by ``sensors.camera_meta`` meanwhile."""

    def __init__(
        self, cdir: Path, env: dict[str, str], scale: float, start_at: float, seconds: float
    ) -> None:
        from ioc.context import Context
        from ioc.settings import Settings
        from sensors.simulate import Simulation

        ns = argparse.Namespace(
            wards=None,
            backfill=None,
            seed=7,
            no_faults=False,
            rate=1.0,
            speedup=1.0,
            duration=None,
            scale=scale,
            cameras=None,
        )
        settings = Settings.model_validate(
            {"config_dir": cdir, "database_url": env["IOC_DATABASE_URL"]}
        )
        self.sim = Simulation(ns, Context(settings=settings))
        stream = self.sim.live_stream(start_at)
        self.messages: list[Any] = []
        t = start_at
        while t < start_at + seconds:
            t += 1.0
            self.messages.extend(m for m in stream.advance(t) if m.action is None)
        self.readings = sum(m.readings for m in self.messages)
        # generating took a while: move the whole stream (times and the payloads' "ts") so
        # that it starts a few seconds from now
        delta = max(0.0, time.time() + 20 - start_at)
        if delta:
            ms = int(delta * 1000)

            def shift(match: re.Match[bytes]) -> bytes:
                return b'"ts":' + str(int(match.group(1)) + ms).encode()

            self.messages = [
                dataclasses.replace(m, t=m.t + delta, payload=TS.sub(shift, m.payload))
                for m in self.messages
            ]
        self.start_at = start_at + delta
        self.sent = 0
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, db_url: str, mqtt_url: str) -> None:
        from sensors.mqttio import Net
        from sensors.simulate import _dispatch, camera_thread

        self.net = Net(parse_mqtt_url(mqtt_url), tag="bench-replay", inflight=1000)
        self.cams = camera_thread(self.sim, self.stop)

        def run() -> None:
            for m in self.messages:
                while not self.stop.is_set():
                    wait = m.t - time.time()
                    if wait <= 0:
                        break
                    self.net.poll(min(wait, 0.05))
                if self.stop.is_set():
                    return
                _dispatch(self.net, m)
                self.sent += 1
                if self.sent % 200 == 0:
                    self.net.poll(0)

        th = threading.Thread(target=run, name="replay", daemon=True)
        th.start()
        self._threads.append(th)

    def behind(self) -> str:
        now = time.time()
        due = sum(1 for m in self.messages if m.t <= now)
        return f"{self.sent:,} of {due:,} due messages sent"

    def close(self) -> None:
        self.stop.set()
        for th in self._threads:
            th.join(5)
        if self.cams is not None:
            self.cams.join(30)
        self.net.close()


def readings_inserted(db_url: str) -> int:
    conn = connect(db_url, application_name="bench-stats")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'readings'")
            row = cur.fetchone()
        conn.commit()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def kpi_runs(db_url: str) -> tuple[int, float | None]:
    conn = connect(db_url, application_name="bench-stats")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT details FROM service_status WHERE service = 'scheduler'"
                " AND status = 'leader' ORDER BY updated_at DESC LIMIT 1"
            )
            row = cur.fetchone()
        conn.commit()
    finally:
        conn.close()
    if not row:
        return 0, None
    d = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    k = d.get("jobs", {}).get("kpis", {})
    return int(k.get("runs", 0)), k.get("last_duration_s")


def callbacks(base: str, cookie: str, n: int, codes: list[str], kpis: list[str]) -> list[float]:
    url = base + "/_dash-update-component"
    rnd = random.Random()
    bodies = [overview_body(rnd.choice(kpis)) for _ in range(n)]
    bodies += [ward_body(rnd.choice(codes)) for _ in range(n)]

    def one(body: dict[str, Any]) -> float:
        t0 = time.perf_counter()
        status, _ = post_json(url, body, cookie)
        if status != 200:
            raise RuntimeError(f"callback answered {status}")
        return (time.perf_counter() - t0) * 1000

    with cf.ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, bodies))


def expected_rate(cfg: Any, scale: float) -> dict[str, float]:
    """Devices, messages/s and readings/s the scaled fleet sends (sensors.yaml intervals)."""
    from sensors.fleet import build_fleet
    from sensors.settings import load_simulator_settings
    from sensors.simulate import scaled

    _, devices = build_fleet(cfg, scaled(load_simulator_settings(cfg.dir), scale))
    types = cfg.sensors.device_types
    msgs = sum(1 / types[d.type].interval_s for d in devices)
    readings = sum(len(types[d.type].metrics) / types[d.type].interval_s for d in devices)
    return {"devices": len(devices), "messages": msgs, "readings": readings}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="measured duration")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before measuring")
    ap.add_argument("--scale", type=float, default=20.0, help="city size, x Da Nang")
    ap.add_argument("--ingesters", type=int, default=1, help="ioc ingest mqtt --shared processes")
    ap.add_argument(
        "--simulators", type=int, default=2, help="ioc simulate processes (wards split)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument(
        "--live", action="store_true", help="ioc simulate processes instead of a replay"
    )
    args = ap.parse_args()
    mqtt_url = os.environ.get("IOC_MQTT_URL")
    if not mqtt_url:
        raise SystemExit("set IOC_MQTT_URL (and IOC_DATABASE_URL)")
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="ioc-city-"))
    with scratch_database("city", keep=args.keep) as (url, cfg):
        conn = connect(url)
        add_users(conn, cfg, PASSWORD)
        conn.close()
        cdir = bench_config(tmp, prefix)
        env = dict(os.environ, IOC_DATABASE_URL=url, IOC_CONFIG_DIR=str(cdir))
        env["PYTHONPATH"] = str(ROOT)
        port = free_port()
        plan: list[tuple[str, list[str]]] = [
            *(
                (f"ingest-{i}", ["ingest", "mqtt", "--shared", prefix])
                for i in range(args.ingesters)
            ),
            ("scheduler", ["scheduler"]),
            ("serve", ["serve", "--port", str(port), "--workers", "2", "--threads", "4"]),
        ]
        codes = sorted(cfg.ward_codes)
        for i in range(args.simulators if args.live else 0):
            part = codes[i :: args.simulators]
            plan.append(
                (
                    f"simulate-{i}",
                    ["simulate", "--scale", str(args.scale), "--seed", "7", "--wards", *part],
                )
            )
        target = expected_rate(cfg, args.scale)
        print(
            f"x{args.scale:g} Da Nang: {target['devices']:,} devices, {target['messages']:,.0f}"
            f" messages/s, {target['readings']:,.0f} readings/s expected;"
            f" {round(100 * args.scale):,} cameras ({16 * round(100 * args.scale) / 10:,.0f}"
            " camera rows/s)",
            flush=True,
        )
        replay: Replayer | None = None
        if not args.live:
            t_gen = time.monotonic()
            start_at = time.time() + 30  # services up meanwhile
            replay = Replayer(cdir, env, args.scale, start_at, args.warmup + 60 * args.minutes)
            print(
                f"generated {len(replay.messages):,} messages ({replay.readings:,} readings) for"
                f" {args.warmup + 60 * args.minutes:.0f} s in {time.monotonic() - t_gen:.0f} s",
                flush=True,
            )
        procs: dict[str, subprocess.Popen[Any]] = {}
        logs = []
        t_start = time.monotonic()
        try:
            for name, cmd in plan:
                log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed below
                logs.append(log)
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "ioc.cli", *cmd],
                    env=dict(env, IOC_VAR_DIR=str(tmp / f"var-{name}")),
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                if name.startswith("ingest"):
                    time.sleep(2)  # subscribed before the simulator publishes
            base = f"http://127.0.0.1:{port}"
            from dash_fixtures import wait_http

            wait_http(base + "/healthz", 120)
            cookie = login_cookie(base, "admin", PASSWORD)
            kpis = list(cfg.kpis.kpis)
            probe = Probe(url, mqtt_url, prefix, codes[0])
            probe.start()
            if replay is not None:
                replay.start(url, mqtt_url)
            print(f"warm-up {args.warmup:.0f} s (simulator builds 100k devices) ...", flush=True)
            time.sleep(args.warmup)
            for name, p in procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"{name} exited ({p.returncode}); see {tmp}/{name}.log")
            mem0 = {n: rss_mb(p) for n, p in procs.items()}
            if replay is not None:
                print(f"replay: {replay.behind()}", flush=True)
            probe.lags.clear()
            n0, t0 = readings_inserted(url), time.monotonic()
            rates: list[float] = []
            cb: list[float] = []
            kpi_seen: dict[int, float] = {}
            end = t0 + args.minutes * 60
            next_cb = t0 + 5
            prev_n, prev_t = n0, t0
            while time.monotonic() < end:
                time.sleep(10)
                n, now = readings_inserted(url), time.monotonic()
                rates.append((n - prev_n) / (now - prev_t))
                prev_n, prev_t = n, now
                runs, dur = kpi_runs(url)
                if runs and dur is not None:
                    kpi_seen[runs] = dur
                if now >= next_cb:
                    cb += callbacks(base, cookie, 10, codes, kpis)
                    next_cb = now + 30
                print(
                    f"{(now - t0) / 60:5.1f} min: {rates[-1]:8.0f} readings/s stored;"
                    f" probe lag p95 {pct(probe.lags, 95):.2f} s; KPI runs {kpi_seen};"
                    f" callbacks p95 {pct(cb, 95):.0f} ms; load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            mem1 = {n: rss_mb(p) for n, p in procs.items()}
            if replay is not None:
                print(f"replay at the end: {replay.behind()}", flush=True)
            total = (readings_inserted(url) - n0) / (time.monotonic() - t0)
            probe.close()
            lags = probe.lags
            print(f"\n== city load, x{args.scale:g} Da Nang, {args.minutes:.1f} min measured ==")
            print(
                f"readings stored: {total:,.0f}/s mean; 10 s windows p5..p95"
                f" {pct(rates, 5):,.0f}..{pct(rates, 95):,.0f}/s"
            )
            print(
                f"ingest lag (probe, {len(lags)} readings): p50 {pct(lags, 50):.3f} s,"
                f" p95 {pct(lags, 95):.3f} s, max {max(lags) if lags else float('nan'):.3f} s"
            )
            print(f"KPI runs (run -> seconds): {kpi_seen}")
            print(
                f"dashboard callbacks ({len(cb)}, 4 clients): p50 {pct(cb, 50):.0f} ms,"
                f" p95 {pct(cb, 95):.0f} ms"
            )
            for name in procs:
                print(f"memory {name:<10} {mem0[name]:7.0f} MB -> {mem1[name]:7.0f} MB")
            print(
                f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())},"
                f" {os.cpu_count()} cores; total run {(time.monotonic() - t_start) / 60:.1f} min"
            )
        finally:
            if replay is not None:
                replay.close()
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for log in logs:
                log.close()
            print(f"logs in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
