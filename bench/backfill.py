"""End-to-end timing of ``ioc simulate --backfill DAYS`` with the MQTT ingester running.

Starts a private Mosquitto (no queue cap) on a free port and a fresh database on the
PostgreSQL of ``IOC_DATABASE_URL`` (dropped at the end unless --keep), runs ``ioc db init``,
``ioc ingest mqtt`` and then ``ioc simulate --backfill DAYS``, and reports: the publish time,
the time until the ingester has stored everything (row counts stable), rows per table.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/backfill.py 7
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from ioc.demo.embedded import free_port


def counts(url: str) -> tuple[int, int, int, int]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            out = []
            for table in ("readings", "ingest_rejects", "applications", "application_events"):
                try:
                    cur.execute(f"SELECT count(*) FROM {table}")
                    out.append(int(cur.fetchone()[0]))  # type: ignore[index]
                except psycopg2.Error:
                    conn.rollback()
                    out.append(-1)
            return out[0], out[1], out[2], out[3]
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("days", type=int)
    ap.add_argument("--wards", nargs="+")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--quiet-s", type=float, default=20, help="stable this long = done")
    args = ap.parse_args()
    server = os.environ.get("IOC_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ioc_bench_backfill_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    db_url = urlunsplit(parts._replace(path="/" + name))
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-"))
    port = free_port()
    (tmp / "m.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 1000\n",  # as the embedded broker
        encoding="utf-8",
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(tmp / "m.conf")], stderr=subprocess.DEVNULL)
    env = dict(os.environ, IOC_DATABASE_URL=db_url, IOC_MQTT_URL=f"mqtt://127.0.0.1:{port}")
    ioc = [sys.executable, "-m", "ioc.cli"]
    ingester = None
    try:
        time.sleep(0.5)
        subprocess.run([*ioc, "db", "init"], env=env, check=True, capture_output=True)
        ingester = subprocess.Popen(
            [*ioc, "ingest", "mqtt"],
            env=env,
            stderr=open(tmp / "ingest.log", "w"),  # noqa: SIM115
        )
        time.sleep(3)
        sim = [*ioc, "simulate", "--backfill", str(args.days), "--seed", "1"]
        if args.wards:
            sim += ["--wards", *args.wards]
        t0 = time.monotonic()
        res = subprocess.run(sim, env=env, capture_output=True, text=True)
        t_pub = time.monotonic() - t0
        print(res.stderr.strip().splitlines()[-1] if res.stderr else "", flush=True)
        print(f"publish (ioc simulate --backfill {args.days}): {t_pub:.1f} s", flush=True)
        last, stable_since = counts(db_url), time.monotonic()
        while time.monotonic() - stable_since < args.quiet_s:
            time.sleep(2)
            now = counts(db_url)
            if now != last:
                last, stable_since = now, time.monotonic()
        t_all = stable_since - t0
        print(
            f"end to end (stored): {t_all:.1f} s; readings={last[0]} rejects={last[1]}"
            f" applications={last[2]} application_events={last[3]}",
            flush=True,
        )
    finally:
        for proc in (ingester, broker):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                print(f"{proc.args!r} did not stop within 30 s: killed", flush=True)
                proc.kill()
                proc.wait()
        if ingester is not None:
            log_lines = (tmp / "ingest.log").read_text(encoding="utf-8").splitlines()
            print("ingester log (last lines):", *log_lines[-15:], sep="\n  ")
        if not args.keep:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
