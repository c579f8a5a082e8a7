"""Dashboard benchmark: callback latency (overview, ward page) and /wall first paint.

Seeds a database by direct SQL (94 wards × 30 days of daily KPIs, hourly KPIs for 30 days,
~5k devices, raw readings of the last day for the water/rain/air stations), starts
``ioc serve`` on it and measures:

* p50/p95 latency of the overview callback and the ward-page callback (raw POSTs to
  /_dash-update-component as a signed-in admin), sequential and with 4 concurrent clients,
  against ``ioc serve --workers 2 --threads 4`` (change with --workers/--threads),
  with the query cache on (TTL 5 s, as served) and off (IOC_DASH_CACHE_TTL=0: every call
  hits PostgreSQL);
* /wall first contentful paint and time until the map shows 94 wards (headless Chromium);
* the device page's callback (``/devices/{id}``, cache off) over a water-level station with
  30 days of raw readings at one a minute (ranges 24 h raw, 7 d and 30 d hourly) and one with a
  year of them (90 d and a year daily): target p95 <= 300 ms. ``--devices-only`` runs
  just this part.

The wall's memory over a day of refreshes and view changes: ``bench/wall_memory.py``.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/dashboard.py
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))  # this checkout's ioc, as the server it starts uses

from dash_fixtures import (  # noqa: E402
    KIOSK_TOKEN,
    PASSWORD,
    free_port,
    login_cookie,
    make_driver,
    overview_body,
    post_json,
    start_server,
    wait_http,
    ward_body,
)
from dash_seed import add_users, seed  # noqa: E402

from ioc.config import load_config  # noqa: E402
from ioc.db import connect  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def timed(url: str, body: dict, cookie: str) -> float:
    t0 = time.perf_counter()
    status, _ = post_json(url, body, cookie)
    dt_ms = (time.perf_counter() - t0) * 1000
    if status != 200:
        raise RuntimeError(f"callback answered {status}")
    return dt_ms


def measure(
    base: str, cookie: str, n: int, concurrency: int, kpis: list[str], codes: list[str]
) -> dict[str, list[float]]:
    url = base + "/_dash-update-component"
    rnd = random.Random(7)
    jobs = [("overview", overview_body(rnd.choice(kpis))) for _ in range(n)]
    jobs += [("ward", ward_body(rnd.choice(codes))) for _ in range(n)]
    rnd.shuffle(jobs)
    out: dict[str, list[float]] = {"overview": [], "ward": []}
    with cf.ThreadPoolExecutor(concurrency) as pool:
        futs = {pool.submit(timed, url, body, cookie): kind for kind, body in jobs}
        for f in cf.as_completed(futs):
            out[futs[f]].append(f.result())
    return out


def load() -> str:
    """The 1/5/15-minute load average (figures depend on what else the machine runs)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(label: str, res: dict[str, list[float]]) -> None:
    for kind, xs in res.items():
        print(
            f"  {label:<28} {kind:<9} n={len(xs):<4} p50={pct(xs, 50):7.1f} ms"
            f"  p95={pct(xs, 95):7.1f} ms  max={max(xs):7.1f} ms"
        )


def wall_paint(base: str) -> tuple[float, float]:
    driver = make_driver(size=(1920, 1080))
    try:
        t0 = time.perf_counter()
        driver.get(base + f"/wall?token={KIOSK_TOKEN}&view=map")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            n = driver.execute_script(
                "var t=document.querySelector('.trace.choropleth');"
                "return t ? t.querySelectorAll('path').length : 0"
            )
            if n == 94:
                break
            time.sleep(0.02)
        ready = (time.perf_counter() - t0) * 1000
        fcp = driver.execute_script(
            "var e=performance.getEntriesByName('first-contentful-paint')[0];"
            "return e ? e.startTime : null"
        )
        return float(fcp or -1), ready
    finally:
        driver.quit()


DEVICE_RANGES = {"bench-wl-30d": ("24h", "7d", "30d"), "bench-wl-1y": ("90d", "365d")}


def device_body(device_id: str, range_key: str) -> dict:
    outs = [("dev-graphs", "children"), ("dev-history", "children"), ("dev-resolution", "children")]
    return {
        "output": ".." + "...".join(f"{a}.{b}" for a, b in outs) + "..",
        "outputs": [{"id": a, "property": b} for a, b in outs],
        "inputs": [
            {"id": "dev-range", "property": "value", "value": range_key},
            {"id": "dev-dates", "property": "start_date", "value": None},
            {"id": "dev-dates", "property": "end_date", "value": None},
        ],
        "changedPropIds": ["dev-range.value"],
        "state": [{"id": "dev-id", "property": "data", "value": device_id}],
    }


def seed_device_readings(conn: Any, ward: str) -> dict[str, int]:
    """Two water-level stations: 30 days and a year of raw readings, one a minute; then the
    scheduler's per-device daily summaries (ioc/device_rollup.py) of the closed days."""
    from ioc import device_rollup

    out = {}
    with conn.cursor() as cur:
        for dev, days in (("bench-wl-30d", 30), ("bench-wl-1y", 365)):
            cur.execute(
                "INSERT INTO devices (device_id, ward_code, device_type, status, last_seen)"
                " VALUES (%s, %s, 'water_level', 'online', now()) ON CONFLICT DO NOTHING",
                (dev, ward),
            )
            cur.execute(
                """
                INSERT INTO readings (ts, ward_code, device_id, metric, value)
                SELECT ts, %(w)s, %(d)s, 'water_level_cm',
                       40 + 20 * sin(extract(epoch FROM ts) / 3600.0) + random() * 5
                FROM generate_series(date_trunc('minute', now()) - make_interval(days => %(n)s),
                                     now(), interval '1 minute') AS ts
                ON CONFLICT DO NOTHING
                """,
                {"w": ward, "d": dev, "n": days},
            )
            out[dev] = cur.rowcount
        cur.execute("ANALYZE readings")
    conn.commit()
    t0 = time.perf_counter()
    days = device_rollup.refresh(conn, load_config(ROOT / "config"))
    print(f"device_daily: {days} days summarised in {time.perf_counter() - t0:.1f} s")
    return out


def measure_devices(base: str, cookie: str, n: int) -> dict[str, list[float]]:
    url = base + "/_dash-update-component"
    out: dict[str, list[float]] = {}
    for dev, ranges in DEVICE_RANGES.items():
        for r in ranges:
            timed(url, device_body(dev, r), cookie)  # warm-up
            out[f"{dev} {r}"] = [timed(url, device_body(dev, r), cookie) for _ in range(n)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="requests per callback and run")
    ap.add_argument("--devices-per-ward", type=int, default=53, help="53 × 94 ≈ 5k devices")
    ap.add_argument("--keep", action="store_true", help="keep the bench database")
    ap.add_argument("--workers", type=int, default=2, help="ioc serve worker processes")
    ap.add_argument("--threads", type=int, default=4, help="threads per worker process")
    ap.add_argument(
        "--devices-only", action="store_true", help="only the device page (30 days, a year)"
    )
    args = ap.parse_args()
    server_url = os.environ.get("IOC_DATABASE_URL")
    if not server_url:
        print("set IOC_DATABASE_URL to a PostgreSQL server", file=sys.stderr)
        return 2
    from conftest import create_database, drop_database, init_schema

    cfg = load_config(ROOT / "config")
    url = create_database(server_url)
    procs: list[Any] = []
    try:
        init_schema(url, cfg)
        conn = connect(url)
        t0 = time.perf_counter()
        if args.devices_only:
            return devices_only(conn, cfg, url, args, procs)
        seed(
            conn,
            cfg,
            days=30,
            devices_per_ward=args.devices_per_ward,
            readings_hours=24,
            readings_devices_per_ward=args.devices_per_ward,
            hourly_hours=30 * 24,
        )
        add_users(conn, cfg, PASSWORD)
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
            facts = {}
            for table in ("devices", "readings", "readings_hourly", "kpi_values", "applications"):
                cur.execute(f"SELECT count(*) FROM {table}")
                facts[table] = (cur.fetchone() or (0,))[0]
        conn.commit()
        conn.close()
        print(f"seeded in {time.perf_counter() - t0:.1f} s: {json.dumps(facts)}")
        codes = sorted(cfg.ward_codes)
        kpis = list(cfg.kpis.kpis)
        tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-"))
        results = {}
        for label, ttl in (("cache on (TTL 5 s)", None), ("cache off", "0")):
            if ttl is not None:
                os.environ["IOC_DASH_CACHE_TTL"] = ttl
            else:
                os.environ.pop("IOC_DASH_CACHE_TTL", None)
            port = free_port()
            proc = start_server(
                url,
                tmp / "var",
                port,
                tmp / f"serve-{port}.log",
                workers=args.workers,
                threads=args.threads,
            )
            procs.append(proc)
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz")
            cookie = login_cookie(base, "admin")
            measure(base, cookie, 5, 1, kpis, codes)  # warm-up (imports, pool)
            print(
                f"{label}, ioc serve --workers {args.workers} --threads {args.threads} "
                f"(load average {load()}, {os.cpu_count()} cores):"
            )
            for conc in (1, 4):
                res = measure(base, cookie, args.n, conc, kpis, codes)
                report(f"{conc} client(s), load {load()}", res)
                results[(label, conc)] = res
            if ttl is not None:
                with connect(url) as c2:
                    print(f"device readings: {seed_device_readings(c2, codes[0])}")
                report("device page, cache off", measure_devices(base, cookie, args.n // 3))
            if ttl is None:
                fcp, ready = wall_paint(base)
                fcp2, ready2 = wall_paint(base)
                print(
                    f"/wall first contentful paint: {fcp:.0f} ms (again: {fcp2:.0f} ms); "
                    f"map with 94 wards drawn after {ready:.0f} ms (again: {ready2:.0f} ms)"
                )
            proc.terminate()
            proc.wait(timeout=10)
        os.environ.pop("IOC_DASH_CACHE_TTL", None)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if not args.keep:
            drop_database(server_url, url)
    return 0


def devices_only(conn: Any, cfg: Any, url: str, args: Any, procs: list[Any]) -> int:
    add_users(conn, cfg, PASSWORD)
    t0 = time.perf_counter()
    rows = seed_device_readings(conn, sorted(cfg.ward_codes)[0])
    conn.close()
    print(f"seeded in {time.perf_counter() - t0:.1f} s: {json.dumps(rows)}")
    os.environ["IOC_DASH_CACHE_TTL"] = "0"
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-"))
    port = free_port()
    proc = start_server(
        url, tmp / "var", port, tmp / "serve.log", workers=args.workers, threads=args.threads
    )
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    cookie = login_cookie(base, "admin")
    print(f"device page, cache off (load average {load()}, {os.cpu_count()} cores):")
    report("sequential", measure_devices(base, cookie, args.n))
    proc.terminate()
    proc.wait(timeout=10)
    os.environ.pop("IOC_DASH_CACHE_TTL", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
