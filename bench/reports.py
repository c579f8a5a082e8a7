"""Citizen-report intake benchmark: reports stored per second through ``POST /api/v1/reports``
(``ioc serve``, 4 concurrent clients, each with its own intake token, arrays of ``--batch``
new ``received`` events) and through MQTT (``ioc/{ward}/reports``, one event per message,
QoS 1, the in-process MQTT ingester, a Mosquitto of its own with deploy/mosquitto's
delivery settings), against a baseline measured in the same run: the same
events written directly by the shared write path (``ioc.citizen.store.store_events``, one
connection, batches of the same size, one COMMIT each).

"Stored" = committed in ``reports`` and ``report_events`` (counted in the database at the end).

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/reports.py
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import datetime as dt
import json
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy

from dash_fixtures import free_port, start_server, stop_server, wait_http  # noqa: E402

from ioc.citizen.events import Rules, event_from_mapping  # noqa: E402
from ioc.citizen.store import store_events  # noqa: E402
from ioc.citizen.tokens import add_token  # noqa: E402
from ioc.config import Config, load_config  # noqa: E402
from ioc.db import connect  # noqa: E402

CATS = ("traffic", "waste", "lighting", "flooding", "urban_order", "environment", "other")


def events(cfg: Config, tag: str, n: int) -> list[dict[str, Any]]:
    wards = sorted(cfg.ward_codes)
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    return [
        {
            "id": f"B{tag}-{i:07d}",
            "event": "received",
            "ts": (t0 + dt.timedelta(milliseconds=i)).isoformat(),
            "channel": "app",
            "category": CATS[i % len(CATS)],
            "summary": "Đèn đường không sáng cả tuyến",
            "lat": 16.05,
            "lon": 108.2,
            "contact": "0905 123 456",
            "ward": wards[i % len(wards)],
        }
        for i in range(n)
    ]


def scratch_db(server_url: str) -> str:
    from db_support import create_database, init_schema

    url = create_database(server_url)
    init_schema(url, load_config(ROOT / "config"))
    return url


def drop_db(server_url: str, url: str) -> None:
    from db_support import drop_database

    drop_database(server_url, url)


def count(db: str, tag: str) -> int:
    c = connect(db)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM reports WHERE id LIKE %s", (f"B{tag}-%",))
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        c.close()


def direct(db: str, cfg: Config, n: int, batch: int) -> float:
    rules = Rules.from_config(cfg)
    tag = uuid.uuid4().hex[:6]
    items = events(cfg, tag, n)
    t0 = time.perf_counter()
    conn = connect(db)
    try:
        for i in range(0, n, batch):
            chunk = items[i : i + batch]
            evs = [event_from_mapping(e, str(e["ward"]), rules) for e in chunk]
            with conn.cursor() as cur:
                store_events(cur, evs, rules, door="import")
            conn.commit()
    finally:
        conn.close()
    el = time.perf_counter() - t0
    assert count(db, tag) == n
    return n / el


def api(db: str, base: str, tokens: list[str], cfg: Config, n: int, batch: int) -> float:
    tag = uuid.uuid4().hex[:6]
    items = events(cfg, tag, n)
    chunks = [items[i : i + batch] for i in range(0, n, batch)]
    bodies = [json.dumps(c, ensure_ascii=False).encode() for c in chunks]

    def send(k: int) -> int:
        token = tokens[k % len(tokens)]
        done = 0
        for body in bodies[k :: len(tokens)]:
            req = urllib.request.Request(
                base + "/api/v1/reports",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                assert resp.status == 202
                done += int(json.loads(resp.read())["stored"])
        return done

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(len(tokens)) as pool:
        stored = sum(pool.map(send, range(len(tokens))))
    el = time.perf_counter() - t0
    assert stored == n and count(db, tag) == n, (stored, count(db, tag))
    return n / el


def mqtt_path(db: str, cfg: Config, n: int, folder: Path) -> float:
    """Through a broker of its own with the recommended delivery settings (a default Mosquitto
    queues at most 1,000 messages for a slow subscriber and drops the rest)."""
    from ingest_helpers import Mosquitto

    broker = Mosquitto(folder / "mqtt").start()
    try:
        return _mqtt_run(db, cfg, broker.url, n)
    finally:
        broker.stop()


def _mqtt_run(db: str, cfg: Config, mqtt_url: str, n: int) -> float:
    from ingest_helpers import Publisher

    from ingest.mqtt import MqttIngester
    from ioc.settings import parse_mqtt_url

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    system = cfg.system.model_copy(
        update={"mqtt": cfg.system.mqtt.model_copy(update={"topic_prefix": prefix})}
    )
    pcfg = dataclasses.replace(cfg, system=system)
    ing = MqttIngester(pcfg, db, parse_mqtt_url(mqtt_url), client_id=f"bench-{prefix}")
    ing.start()
    tag = uuid.uuid4().hex[:6]
    msgs = []
    for e in events(cfg, tag, n):
        ward = e.pop("ward")
        msgs.append((f"{prefix}/{ward}/reports", json.dumps(e, ensure_ascii=False).encode()))
    try:
        pub = Publisher(mqtt_url, max_inflight=1000)
        t0 = time.perf_counter()
        for topic, payload in msgs:
            pub.infos.append(pub.client.publish(topic, payload, qos=1))
        pub.wait_all(600)
        pub.close()
        deadline = time.monotonic() + 600
        while ing.stats.acked < n and time.monotonic() < deadline:
            time.sleep(0.02)
        el = time.perf_counter() - t0
    finally:
        ing.stop()
    assert count(db, tag) == n
    return n / el


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000, help="reports per scenario")
    ap.add_argument("--batch", type=int, default=100, help="events per request / transaction")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="ioc serve --workers")
    ap.add_argument("--mqtt-n", type=int, default=5000, help="reports through MQTT")
    args = ap.parse_args()
    server_url = os.environ["IOC_DATABASE_URL"]
    cfg = load_config(ROOT / "config")
    db = scratch_db(server_url)
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-reports-"))
    port = free_port()
    proc = start_server(db, tmp / "var", port, tmp / "serve.log", workers=args.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        c = connect(db)
        try:
            tokens = [add_token(c, f"bench{i}") for i in range(args.clients)]
        finally:
            c.close()
        api(db, base, tokens, cfg, 1000, args.batch)  # warm-up: workers, pools, caches
        base_rate = direct(db, cfg, args.n, args.batch)
        api_rate = api(db, base, tokens, cfg, args.n, args.batch)
        print(f"direct store_events (1 connection, batch {args.batch}): {base_rate:,.0f} reports/s")
        print(
            f"POST /api/v1/reports ({args.clients} clients, batch {args.batch},"
            f" ioc serve --workers {args.workers}): {api_rate:,.0f} reports/s"
            f" ({api_rate / base_rate:.2f} of direct)"
        )
        if args.mqtt_n:
            mq = mqtt_path(db, cfg, args.mqtt_n, tmp)
            print(f"MQTT ioc/{{ward}}/reports (1 event/message, QoS 1): {mq:,.0f} reports/s")
        print(f"load average: {os.getloadavg()[0]:.1f}")
    finally:
        stop_server(proc)
        drop_db(server_url, db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
