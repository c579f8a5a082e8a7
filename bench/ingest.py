"""MQTT ingest benchmark (a script, not a test).

One run measures, against a Mosquitto started here with the recommended delivery settings of
deploy/mosquitto/mosquitto.conf (or --broker URL) and the PostgreSQL of IOC_DATABASE_URL (a
scratch database is created and dropped):

1. raw ceiling: the publisher below into the broker, a bare paho subscriber (QoS 1, its own
   process) that only counts;
2. IOC end to end: the same publisher, ``python -m ioc.cli ingest mqtt`` as a subprocess, into
   PostgreSQL; 5 metrics per message, QoS 1; done when every row is committed;
3. the same with batched arrays (50 readings per message).

Rates are messages (and data points) divided by the time from the first publish to the last
message counted (1) or the last row committed (2, 3). Lost = expected - stored; duplicated =
rows stored more than once (the unique key makes that impossible; counted anyway) and
messages delivered twice to the ingester (redeliveries, harmless).

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/ingest.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import psycopg2
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ioc.demo.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WARD = "20195"
METRICS = ("pm25", "pm10", "no2", "so2", "co")
OUTSTANDING = 30_000  # publisher: messages queued in paho and not yet acknowledged, at most
PROFILE_DIR: str | None = None
BROKER_PID = [0]
CPU_METER = False
OPTS: dict[str, Any] = {}


class CpuMeter:
    """CPU seconds used by each process during a scenario, grouped by role (psutil; sampled
    every 0.25 s so short-lived processes such as the publisher are counted too)."""

    def __init__(self, roles: dict[int, str]) -> None:
        self.roles = roles
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = False
        self.t0 = time.time()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        import psutil

        for p in psutil.process_iter(["name", "cmdline"]):
            try:
                t = p.cpu_times()
                created = p.create_time()
            except psutil.Error:
                continue
            cpu = t.user + t.system
            if p.pid not in self.first:
                self.first[p.pid] = 0.0 if created > self.t0 else cpu
                self.names[p.pid] = p.info["name"] or "?"
            self.last[p.pid] = cpu

    def _loop(self) -> None:
        while not self._stop:
            self._sample()
            time.sleep(0.25)

    def start(self) -> CpuMeter:
        if not CPU_METER:
            return self
        self.t0 = time.time()
        self._sample()
        self._thread.start()
        return self

    def stop(self, children: dict[int, str] | None = None) -> dict[str, float]:
        if not CPU_METER:
            return {}
        self._stop = True
        self._thread.join()
        self._sample()
        roles = {**self.roles, **(children or {})}
        out: dict[str, float] = {}
        for pid, last in self.last.items():
            role = roles.get(pid) or (
                "postgres" if self.names[pid].startswith("postgres") else "other"
            )
            out[role] = out.get(role, 0.0) + last - self.first[pid]
        out["wall"] = time.time() - self.t0
        return out


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    lines, inside = [], False
    for line in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines():
        if "BEGIN delivery" in line:
            inside = True
        elif "END delivery" in line:
            inside = False
        elif inside and line.strip() and not line.startswith("#"):
            lines.append(line)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o777)
    port = free_port()
    lines += [f"persistence_location {folder}/", f"listener {port} 127.0.0.1"]
    lines += ["allow_anonymous true"] + (["user root"] if os.geteuid() == 0 else [])
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = (folder / "mosquitto.log").open("ab")
    proc = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=log,
        stderr=log,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


# -- the one publisher used by every scenario ----------------------------------------------------


def payloads(prefix: str, n: int, per_msg: int, devices: int = 50) -> list[tuple[str, bytes]]:
    t0 = int(time.time() * 1000) - n * per_msg
    out = []
    for i in range(n):
        dev = f"b{i % devices:03d}"
        topic = f"{prefix}/{WARD}/air_quality/{dev}/telemetry"
        k = i // devices
        if per_msg == 5:
            body: Any = {
                "ts": t0 + k,
                "values": {m: float((i + j) % 500) for j, m in enumerate(METRICS)},
            }
        else:
            body = [
                {"ts": t0 + k * per_msg + j, "values": {"pm25": float((i + j) % 500)}}
                for j in range(per_msg)
            ]
        out.append((topic, json.dumps(body).encode()))
    return out


def publisher(port: int, msgs: list[tuple[str, bytes]], started: Any, done: Any) -> None:
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    started.value = time.time()
    # paho numbers outgoing QoS-1 messages with 16-bit ids kept in a dict: more than 65,535
    # queued at once collide and are silently lost (measured: 100,000 queued -> ~68,000 sent).
    # Keep at most OUTSTANDING unconfirmed.
    infos: list[mqtt.MQTTMessageInfo] = []
    for i, (t, p) in enumerate(msgs):
        if i >= OUTSTANDING:
            infos[i - OUTSTANDING].wait_for_publish(600)
        infos.append(c.publish(t, p, qos=1))
    for info in infos:
        info.wait_for_publish(600)
    done.value = time.time()
    c.disconnect()
    c.loop_stop()


def run_publisher(port: int, msgs: list[tuple[str, bytes]]) -> tuple[mp.Process, Any, Any]:
    started, done = mp.Value("d", 0.0), mp.Value("d", 0.0)
    proc = mp.Process(target=publisher, args=(port, msgs, started, done), daemon=True)
    proc.start()
    return proc, started, done


# -- (1) bare subscriber -------------------------------------------------------------------------


def bare_subscriber(port: int, prefix: str, n: int, ready: Any, result: Any, fast: bool) -> None:
    seen: set[bytes] = set()
    count = [0]
    last = [0.0]

    def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        count[0] += 1
        seen.add(bytes(msg.payload))
        last[0] = time.time()

    def on_raw(topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        count[0] += 1
        seen.add(payload)
        last[0] = time.time()

    if fast:  # the ingester's receive path (ingest/mqtt_client.py), acking each message
        from ingest.mqtt_client import FastClient

        c: mqtt.Client = FastClient(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        c.on_publish_raw = on_raw  # type: ignore[attr-defined]
    else:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 1000
    props.SessionExpiryInterval = 600
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.subscribe(f"{prefix}/#", qos=1)
    c.loop_start()
    time.sleep(0.5)
    ready.value = 1
    deadline = time.time() + 600
    while count[0] < n and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)  # late duplicates
    c.disconnect()
    c.loop_stop()
    result[0], result[1], result[2] = count[0], len(seen), last[0]


def scenario_raw(port: int, n: int, fast: bool = False) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}/ioc"
    msgs = payloads(prefix, n, 5)
    ready, result = mp.Value("i", 0), mp.Array("d", 3)
    sub = mp.Process(
        target=bare_subscriber, args=(port, prefix, n, ready, result, fast), daemon=True
    )
    sub.start()
    while not ready.value:
        time.sleep(0.05)
    meter = CpuMeter({BROKER_PID[0]: "broker", (sub.pid or 0): "subscriber", os.getpid(): "bench"})
    meter.start()
    pub, started, _done = run_publisher(port, msgs)
    pub.join()
    sub.join()
    cpu = meter.stop({(pub.pid or 0): "publisher"})
    count, distinct, last = result[0], result[1], result[2]
    elapsed = last - started.value
    return {
        "msgs": n,
        "points": n * 5,
        "elapsed": elapsed,
        "received": count,
        "lost": n - distinct,
        "dup": count - distinct,
        "cpu": cpu,
    }


# -- (2), (3) IOC end to end ---------------------------------------------------------------------


def scratch_db(server_url: str) -> str:
    from ioc.config import load_config
    from ioc.db import connect
    from ioc.db.migrate import init_db

    name = f"ioc_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    c = connect(url)
    init_db(c, load_config(ROOT / "config"))
    c.close()
    return url


def drop_db(server_url: str, url: str) -> None:
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
    conn.close()


def scenario_ioc(server_url: str, port: int, n: int, per_msg: int, tmp: Path) -> dict[str, Any]:
    import yaml

    db = scratch_db(server_url)
    if OPTS.get("drop_trigger"):  # cost comparison only: the roll-up invalidation log
        c = psycopg2.connect(db)
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("DROP TRIGGER IF EXISTS readings_invalidate ON readings")
        c.close()
    prefix = f"bench{uuid.uuid4().hex[:6]}/ioc"
    run = uuid.uuid4().hex[:4]
    cfg = tmp / f"cfg-{per_msg}-{run}"
    cfg.mkdir()
    for f in ("wards.yaml", "sensors.yaml"):
        shutil.copy(ROOT / "config" / f, cfg / f)
    system = yaml.safe_load((ROOT / "config/ioc.yaml").read_text())
    system["mqtt"]["topic_prefix"] = prefix
    if OPTS.get("inflight"):
        system["mqtt"]["max_inflight"] = OPTS["inflight"]
    if OPTS.get("batch_rows"):
        system["ingest"]["batch_max_rows"] = OPTS["batch_rows"]
    (cfg / "ioc.yaml").write_text(yaml.safe_dump(system))
    env = {
        **os.environ,
        "IOC_DATABASE_URL": db,
        "IOC_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "IOC_CONFIG_DIR": str(cfg),
        "PYTHONUNBUFFERED": "1",
    }
    count = int(OPTS.get("ingesters") or 1)
    client_ids = [f"bench-ing-{per_msg}-{run}-{i}" for i in range(count)]
    logs = [tmp / f"ingester-{per_msg}-{run}-{i}.log" for i in range(count)]
    ings: list[subprocess.Popen[bytes]] = []
    for cid, log_path in zip(client_ids, logs, strict=True):
        cmd = [sys.executable, "-m", "ioc.cli", "ingest", "mqtt", "--client-id", cid]
        if count > 1:
            cmd += ["--shared", "bench"]
        with log_path.open("wb") as log:
            ings.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=ROOT))
    try:
        for log_path in logs:
            for _ in range(300):
                if "ingesting " in log_path.read_text():
                    break
                time.sleep(0.1)
        expected = n * per_msg
        msgs = payloads(prefix, n, per_msg)
        spy = None
        if PROFILE_DIR:  # py-spy: collapsed stacks of every thread (see --profile)
            out = Path(PROFILE_DIR) / f"ingester-{per_msg}.txt"
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(ings[0].pid),
                    "--format",
                    "raw",
                    "--threads",
                    "-r",
                    "100",
                    "-d",
                    "12",
                    "-o",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        conn = psycopg2.connect(db)
        conn.autocommit = True
        roles = {BROKER_PID[0]: "broker", os.getpid(): "bench"}
        roles.update({ing.pid: "ingester" for ing in ings})
        meter = CpuMeter(roles)
        meter.start()
        pub, started, _done = run_publisher(port, msgs)
        stored, last_change, t_last = 0, time.time(), time.time()
        with conn.cursor() as cur:
            while stored < expected and time.time() - last_change < 60:
                time.sleep(0.5)  # the end time is the writer's last commit, not this poll
                cur.execute(
                    "SELECT max(stored_rows) FROM (SELECT count(*) AS stored_rows FROM readings) s"
                )
                row = cur.fetchone()
                now = row[0] if row else 0
                if now != stored:
                    stored, last_change = now, time.time()
                t_last = time.time()
            # precise end: the commit time of the last row is the writer's last commit
            pub.join()
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
            backends = {r[0]: "pg backends" for r in cur.fetchall()}
            cur.execute("SELECT pg_backend_pid()")
            backends[cur.fetchone()[0]] = "bench"  # type: ignore[index]
            cpu = meter.stop({(pub.pid or 0): "publisher", **backends})
            if spy is not None:
                spy.wait()
            for ing in ings:
                ing.terminate()
            for ing in ings:
                ing.wait(60)
            cur.execute("SELECT count(*), count(DISTINCT (device_id, metric, ts)) FROM readings")
            total, distinct = cur.fetchone() or (0, 0)
            cur.execute(
                "SELECT details FROM service_status WHERE instance = ANY(%s)", (client_ids,)
            )
            details = [r[0] for r in cur.fetchall()]
        conn.close()
        ends = [d.get("last_commit_at") or 0 for d in details]
        end = max(ends) if ends and min(ends) > 0 else t_last
        elapsed = end - started.value
        received = sum(d.get("received", 0) for d in details)
        return {
            "msgs": n,
            "points": expected,
            "elapsed": elapsed,
            "received": received,
            "lost": expected - distinct,
            "dup": total - distinct,
            "redelivered": received - n,
            "batches": sum(d.get("batches", 0) for d in details),
            "cpu": cpu,
        }
    finally:
        for ing in ings:
            if ing.poll() is None:
                ing.kill()
                ing.wait()
        drop_db(server_url, db)


def report(name: str, r: dict[str, Any]) -> None:
    el = r["elapsed"]
    print(
        f"{name:<34} {r['msgs']:>8,} msgs {r['points']:>9,} pts {el:7.2f} s "
        f"{r['msgs'] / el:>9,.0f} msgs/s {r['points'] / el:>10,.0f} pts/s "
        f"lost {int(r['lost'])} dup {int(r['dup'])}"
        + (f" (redelivered msgs {int(r['redelivered'])})" if "redelivered" in r else "")
    )
    cpu = dict(r.get("cpu") or {})
    if cpu:
        wall = cpu.pop("wall")
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
        print(
            f"    CPU s over {wall:.1f} s wall ({os.cpu_count()} cores = "
            f"{wall * (os.cpu_count() or 1):.1f} CPU s): {parts}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=60_000, help="messages in (1) and (2)")
    ap.add_argument("--array-messages", type=int, default=4_000, help="messages in (3), x50")
    ap.add_argument("--profile", metavar="DIR", help="run the ingester under py-spy into DIR")
    ap.add_argument("--cpu", action="store_true", help="CPU seconds per process (psutil)")
    ap.add_argument("--ingesters", type=int, default=1, help="ingesters in one --shared group")
    ap.add_argument("--inflight", type=int, help="override mqtt.max_inflight of config/ioc.yaml")
    ap.add_argument("--batch-rows", type=int, help="override ingest.batch_max_rows")
    ap.add_argument(
        "--drop-trigger",
        action="store_true",
        help="drop the roll-up trigger readings_invalidate in the scratch DB (cost comparison)",
    )
    ap.add_argument("--only", choices=["raw", "ioc"], help="run only (1) or only (2)+(3)")
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of all scenarios, interleaved; medians"
    )
    args = ap.parse_args()
    OPTS.update(
        ingesters=args.ingesters,
        inflight=args.inflight,
        batch_rows=args.batch_rows,
        drop_trigger=args.drop_trigger,
    )
    global PROFILE_DIR, CPU_METER
    PROFILE_DIR = args.profile
    CPU_METER = args.cpu
    server = os.environ.get("IOC_DATABASE_URL")
    if not server:
        raise SystemExit("set IOC_DATABASE_URL to a PostgreSQL server we may create databases on")
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-"))
    broker, port = start_broker(tmp / "broker")
    BROKER_PID[0] = broker.pid
    try:
        print(
            f"broker: test-owned mosquitto :{port} (deploy/mosquitto delivery settings); "
            f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}"
        )
        rates: dict[str, list[float]] = {}
        pipe: dict[str, list[float]] = {}

        def record(key: str, label: str, r: dict[str, Any], unit: str = "msgs") -> None:
            report(label, r)
            rates.setdefault(key, []).append(r[unit] / r["elapsed"])
            cpu = r.get("cpu") or {}
            if cpu:  # the pipeline's own processes; not other users, not the bench's polling
                own = sum(v for k, v in cpu.items() if k not in ("other", "bench", "wall"))
                pipe.setdefault(key, []).append(own / r["msgs"] * 1e6)

        for _ in range(args.repeat):
            if args.only != "ioc":
                record("raw", "(1) raw ceiling, bare subscriber", scenario_raw(port, args.messages))
                fast = scenario_raw(port, args.messages, fast=True)
                record("fast", "(1') bare FastClient subscriber", fast)
            if args.only != "raw":
                ioc = scenario_ioc(server, port, args.messages, 5, tmp)
                record("ioc", "(2) IOC -> PostgreSQL, 5 metrics", ioc)
                arr = scenario_ioc(server, port, args.array_messages, 50, tmp)
                record("arr", "(3) IOC -> PostgreSQL, 50/message", arr, unit="points")
            if "raw" in rates and "ioc" in rates:
                print(
                    f"(2)/(1) = {rates['ioc'][-1] / rates['raw'][-1]:.2f}   (target >= 0.95);   "
                    f"(2)/(1') = {rates['ioc'][-1] / rates['fast'][-1]:.2f}   (same client code)"
                )
            if "arr" in rates:
                print(f"(3) points/s = {rates['arr'][-1]:,.0f}   (target >= 80,000)")
            print(f"load average: {os.getloadavg()[0]:.1f}", flush=True)
        if args.repeat > 1:
            print(f"\nmedian [min - max] of {args.repeat} rounds:")
            names = {"raw": "(1) msgs/s", "fast": "(1') msgs/s", "ioc": "(2) msgs/s"}
            names["arr"] = "(3) points/s"
            for key, label in names.items():
                if key in rates:
                    v = rates[key]
                    print(f"  {label:<14} {median(v):>10,.0f} [{min(v):,.0f} - {max(v):,.0f}]")
            if "raw" in rates and "ioc" in rates:
                for other, label in (("raw", "(2)/(1)"), ("fast", "(2)/(1')")):
                    rs = [a / b for a, b in zip(rates["ioc"], rates[other], strict=True)]
                    print(f"  {label:<14} {median(rs):>10.2f} [{min(rs):.2f} - {max(rs):.2f}]")
        if pipe:
            print("pipeline CPU per message (publisher, broker, subscriber or ingester + its")
            print("PostgreSQL backends; median of rounds, 2 cores shared with other users):")
            for key, label in (("raw", "(1)"), ("fast", "(1')"), ("ioc", "(2)"), ("arr", "(3)")):
                if key in pipe:
                    print(f"  {label:<5} {median(pipe[key]):7.0f} us/msg")
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
