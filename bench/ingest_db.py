"""PostgreSQL's share of ingest: CPU of the writer's backend per reading (a script, not a test).

Writes batches of ready-made COPY lines into ``readings`` of a scratch database exactly as the
writer does (savepoint, direct COPY, release, COMMIT with synchronous_commit on), and reports
the backend's CPU time per row (psutil) and the wall time per batch, alternately with and
without the plain-PostgreSQL roll-up trigger ``readings_invalidate`` (ioc/db/plain.py), which
is dropped in the scratch database only.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/ingest_db.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import sys
import time
from pathlib import Path

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _scratch import scratch_database  # noqa: E402

METRICS = ("pm25", "pm10", "no2", "so2", "co")


def batch_text(batch: int, rows: int) -> str:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=batch * 10)
    out = []
    for i in range(rows // len(METRICS)):
        ts = (base + dt.timedelta(milliseconds=i // 50)).isoformat()
        for m in METRICS:
            out.append(f"{ts}\t20195\tb{i % 50:03d}\t{m}\t{float(i % 500)!r}\n")
    return "".join(out)


def run(url: str, texts: list[str]) -> tuple[float, list[float]]:
    """(backend CPU seconds, wall seconds per batch)."""
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SET synchronous_commit = on")
        cur.execute("SELECT pg_backend_pid()")
        row = cur.fetchone()
    conn.commit()
    backend = psutil.Process(row[0] if row else 0)
    cpu0 = sum(backend.cpu_times()[:2])
    walls = []
    with conn.cursor() as cur:
        for text in texts:
            t0 = time.perf_counter()
            cur.execute("SAVEPOINT ioc_direct_copy")
            cur.copy_expert(
                "COPY readings (ts, ward_code, device_id, metric, value) FROM STDIN",
                io.StringIO(text),
                size=1 << 20,
            )
            cur.execute("RELEASE SAVEPOINT ioc_direct_copy")
            conn.commit()
            walls.append(time.perf_counter() - t0)
    cpu = sum(backend.cpu_times()[:2]) - cpu0
    conn.close()
    return cpu, walls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=60, help="batches per measurement")
    ap.add_argument("--rows", type=int, default=5000, help="rows per batch (batch_max_rows)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating pairs")
    args = ap.parse_args()
    with scratch_database("db") as (url, _cfg):
        print(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; {args.rows:,}-row batches")
        per_row: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(args.repeat):
            for trigger in (True, False):
                c = psycopg2.connect(url)
                c.autocommit = True
                with c.cursor() as cur:
                    cur.execute("TRUNCATE readings")
                    state = "ENABLE" if trigger else "DISABLE"
                    cur.execute(f"ALTER TABLE readings {state} TRIGGER readings_invalidate")
                c.close()
                offset = rep * 2 * args.batches + (0 if trigger else args.batches)
                texts = [batch_text(offset + b, args.rows) for b in range(args.batches)]
                cpu, walls = run(url, texts)
                us = cpu / (args.batches * args.rows) * 1e6
                per_row[trigger].append(us)
                print(
                    f"{'with' if trigger else 'without'} trigger, round {rep + 1}: backend CPU "
                    f"{us:.2f} us/row; wall per batch median "
                    f"{statistics.median(walls) * 1000:.1f} ms, p90 "
                    f"{sorted(walls)[int(len(walls) * 0.9)] * 1000:.1f} ms",
                    flush=True,
                )
        w, wo = statistics.median(per_row[True]), statistics.median(per_row[False])
        print(
            f"median backend CPU: {w:.2f} us/row with the trigger, {wo:.2f} without "
            f"(+{w - wo:.2f} us/row, +{(w / wo - 1) * 100:.0f} %); load {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
