"""Benchmark: alert opened → e-mail received (p50/p95, target p95 ≤ 5 s), and messages per
second through the outbox, at the default settings (config/notifications.yaml).

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/notify.py \
        [--alerts 40] [--every 0.5] [--burst 500] [--workers 1] [--keep]

A scratch database with four users who have an e-mail address (admin, operator, analyst, a
ward leader: four messages per alert); ``ioc notify`` worker process(es) with IOC_SMTP_URL
pointing at a real SMTP server (aiosmtpd) in this process. Latency: ``--alerts`` alerts, one
every ``--every`` s, each opened by ``ioc.alerts.evaluate`` (a reading over the water-level
threshold) — measured from the alert's ``opened_at`` (before the evaluation that opens it
runs) to the moment the SMTP server has the message. Throughput: ``--burst`` alerts opened in
one transaction (×4 messages), from its commit to the last message received.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scratch import scratch_database  # noqa: E402

from ioc import alerts  # noqa: E402
from ioc.db import connect  # noqa: E402
from ioc.notify import outbox  # noqa: E402


class Sink:
    """aiosmtpd recording when each Message-ID arrived."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.arrived: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                now = time.time()
                import email

                msg = email.message_from_bytes(envelope.content)
                key = str(msg["Message-ID"]).strip("<>").split("@")[0]
                with sink.lock:
                    sink.arrived.setdefault(key, []).append(now)
                return "250 OK"

        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def count(self) -> int:
        with self.lock:
            return len(self.arrived)

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return True
            time.sleep(0.01)
        return False


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=40, help="alerts for the latency run")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between them")
    ap.add_argument("--burst", type=int, default=500, help="alerts in the throughput run")
    ap.add_argument("--workers", type=int, default=1, help="`ioc notify` processes")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    sink = Sink()
    with scratch_database("notify", keep=a.keep) as (url, cfg):
        conn = connect(url)
        wards = [w.code for w in cfg.wards]
        with conn.cursor() as cur:
            for name, role, grant in [
                ("admin", "admin", []),
                ("operator", "operator", []),
                ("analyst", "analyst", []),
                ("leader", "ward_leader", wards[:10]),
            ]:
                cur.execute(
                    "INSERT INTO users (name, password_hash, role, wards, email)"
                    " VALUES (%s, 'x', %s, %s, %s)",
                    (name, role, grant, f"{name}@bench.example"),
                )
        conn.commit()
        os.environ["IOC_SMTP_URL"] = f"smtp://127.0.0.1:{sink.port}"
        env = dict(
            os.environ,
            IOC_DATABASE_URL=url,
            IOC_CONFIG_DIR=str(ROOT / "config"),
            IOC_SECRET_KEY="bench-" + "k" * 40,
            PYTHONPATH=str(ROOT),
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "ioc.cli", "notify"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(a.workers)
        ]
        try:
            time.sleep(2.0)  # the workers connect and LISTEN
            rule = next(r for r in cfg.alerts.rules if r.id == "water_level_high")
            instant = rule.model_copy(update={"for_s": 0})
            opened: dict[int, float] = {}
            for i in range(a.alerts):
                ward = wards[i % 10]  # the leader's wards: 4 recipients each
                now = dt.datetime.now(dt.UTC)
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO readings (ts, ward_code, device_id, metric, value)"
                        " VALUES (%s, %s, %s, 'water_level_cm', 70)",
                        (now, ward, f"wl-bench-{i}"),
                    )
                conn.commit()
                res = alerts.evaluate(conn, cfg, now=now, rules=[instant])
                for tr in res.transitions:
                    opened[tr.alert_id] = now.timestamp()
                time.sleep(a.every)
            keys = outbox_keys(conn)
            expected = sum(len(v) for v in keys.values())
            ok = sink.wait(expected, 60)
            lat = []
            with sink.lock:
                for aid, ks in keys.items():
                    for k in ks:
                        if k in sink.arrived and aid in opened:
                            lat.append(sink.arrived[k][0] - opened[aid])
            print(
                f"latency: {len(opened)} alerts, {expected} e-mails ({'all' if ok else 'NOT all'}"
                f" received): p50 {pct(lat, 50):.2f} s, p95 {pct(lat, 95):.2f} s,"
                f" max {max(lat):.2f} s, mean {statistics.fmean(lat):.2f} s"
            )
            # throughput: a burst of alerts opened in one transaction
            before = sink.count()
            now = dt.datetime.now(dt.UTC)
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                for i in range(a.burst):
                    ward = wards[i % 10]
                    cur.execute(
                        "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title,"
                        " value, opened_at) VALUES (%s, %s, %s, 'critical', 'open', 't', 70, %s)"
                        " RETURNING id",
                        (rule.id, f"burst-{i}", ward, now),
                    )
                    row = cur.fetchone()
                    assert row is not None
                    outbox.alert_opened(
                        cur,
                        cfg,
                        rule,
                        alert_id=row[0],
                        subject=f"burst-{i}",
                        ward_code=ward,
                        value=70,
                        opened_at=now,
                    )
            conn.commit()
            t1 = time.perf_counter()
            n = a.burst * 4
            ok = sink.wait(before + n, 300)
            t2 = time.perf_counter()
            dup = sum(len(v) - 1 for v in sink.arrived.values())
            print(
                f"burst: {a.burst} alerts → {n} messages enqueued in {t1 - t0:.2f} s"
                f" ({n / (t1 - t0):,.0f} rows/s); delivered {'all' if ok else 'NOT all'} in"
                f" {t2 - t1:.2f} s: {n / (t2 - t1):,.0f} messages/s with {a.workers} worker(s);"
                f" duplicates {dup}; load {os.getloadavg()[0]:.1f}"
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
            conn.close()
    sink.controller.stop()
    return 0


def outbox_keys(conn: Any) -> dict[int, list[str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ref_id::bigint, idem_key FROM notifications WHERE kind = 'alert_opened'"
        )
        out: dict[int, list[str]] = {}
        for ref, key in cur.fetchall():
            out.setdefault(int(ref), []).append(key)
    conn.commit()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
