"""Soak benchmark: the memory of ``ioc serve`` under continuous dashboard traffic.

Seeds a database as ``bench/dashboard.py`` does (94 wards × 30 days, ~5k devices), starts
``ioc serve --workers 2 --threads 4`` with the query cache as served (TTL 5 s), and for
``--minutes`` keeps ``--clients`` clients busy with the overview, ward-page and wall callbacks
(random KPI, ward and view) and page loads. Every minute it prints the requests served and the
resident memory (RSS) of each server process. The baseline is the same run's first minute
(imports, pools and caches warm): the figure is the growth after it, per process and per
10,000 requests.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/serve_memory.py \
        [--minutes 20] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from dash_fixtures import (  # noqa: E402
    PASSWORD,
    free_port,
    login_cookie,
    overview_body,
    post_json,
    start_server,
    wait_http,
    wall_body,
    ward_body,
)
from dash_seed import add_users, seed  # noqa: E402

from dashboards.rotation import VIEWS  # noqa: E402
from ioc.config import load_config  # noqa: E402
from ioc.db import connect  # noqa: E402


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server and its worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return sorted(out)


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=20)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--devices-per-ward", type=int, default=53)
    a = ap.parse_args()
    if a.minutes < 2 or a.clients < 1:
        raise SystemExit("--minutes must be at least 2 and --clients at least 1")
    server_url = os.environ.get("IOC_DATABASE_URL")
    if not server_url:
        raise SystemExit("set IOC_DATABASE_URL to a PostgreSQL server we may create databases on")
    from db_support import create_database, drop_database, init_schema

    cfg = load_config(ROOT / "config")
    url = create_database(server_url)
    proc = None
    try:
        init_schema(url, cfg)
        conn = connect(url)
        seed(conn, cfg, days=30, devices_per_ward=a.devices_per_ward, readings_hours=24,
             readings_devices_per_ward=a.devices_per_ward, hourly_hours=30 * 24)  # fmt: skip
        add_users(conn, cfg, PASSWORD)
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
        conn.commit()
        conn.close()
        tmp = Path(tempfile.mkdtemp(prefix="ioc-soak-"))
        port = free_port()
        proc = start_server(url, tmp / "var", port, tmp / "serve.log", workers=2, threads=4)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        cookie = login_cookie(base, "admin")
        codes, kpis = sorted(cfg.ward_codes), list(cfg.kpis.kpis)
        stop = threading.Event()
        served = [0] * a.clients
        errors: list[str] = []

        def client(k: int) -> None:
            rnd = random.Random(k)
            cb = base + "/_dash-update-component"
            while not stop.is_set():
                pick = rnd.random()
                if pick < 0.05:  # a page load now and then
                    path = rnd.choice(["/", f"/ward/{rnd.choice(codes)}", "/wall"])
                    req = urllib.request.Request(
                        base + path, headers={"Cookie": f"ioc_session={cookie}"}
                    )
                    with urllib.request.urlopen(req, timeout=60) as r:
                        status = r.status
                        r.read()
                else:
                    body = (
                        overview_body(rnd.choice(kpis))
                        if pick < 0.4
                        else ward_body(rnd.choice(codes))
                        if pick < 0.75
                        else wall_body(rnd.choice(VIEWS))
                    )
                    status, _ = post_json(cb, body, cookie)
                if status != 200:
                    errors.append(str(status))
                served[k] += 1

        threads = [
            threading.Thread(target=client, args=(k,), daemon=True) for k in range(a.clients)
        ]
        for th in threads:
            th.start()
        pids = [p for p in tree(proc.pid) if p != proc.pid] or [proc.pid]
        print(f"ioc serve pid {proc.pid}, workers {pids}; {a.clients} clients, {a.minutes} min")
        samples: list[tuple[int, list[float]]] = []
        t0 = time.monotonic()
        for minute in range(1, a.minutes + 1):
            time.sleep(max(0.0, t0 + 60 * minute - time.monotonic()))
            mem = [rss_mb(p) for p in pids]
            samples.append((sum(served), mem))
            print(
                f"  {minute:3d} min  {sum(served):7,d} requests  load {os.getloadavg()[0]:.1f}"
                f"  RSS MB " + " ".join(f"{m:6.1f}" for m in mem),
                flush=True,
            )
        stop.set()
        for th in threads:
            th.join(timeout=60)
        (n1, m1), (n2, m2) = samples[0], samples[-1]
        grow = [b - x for x, b in zip(m1, m2, strict=True)]
        per10k = [g / max(1, n2 - n1) * 10_000 for g in grow]
        print(
            f"after the first minute ({n1:,} requests) to the last ({n2:,}):"
            f" RSS {' / '.join(f'{x:.1f}' for x in m1)} -> {' / '.join(f'{x:.1f}' for x in m2)}"
            f" MB; growth {' / '.join(f'{g:+.1f}' for g in grow)} MB"
            f" ({' / '.join(f'{g:+.2f}' for g in per10k)} MB per 10,000 requests);"
            f" {len(errors)} non-200 answers"
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a stuck server is killed
                proc.kill()
                proc.wait()
        drop_database(server_url, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
