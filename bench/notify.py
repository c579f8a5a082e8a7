"""Benchmark: alert opened → e-mail received (p50/p95, target p95 ≤ 5 s), and messages per
second through the outbox, at the default settings (config/notifications.yaml), each against a
baseline measured in the same run: the e-mail channel alone.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/notify.py \
        [--alerts 40] [--every 0.5] [--burst 500] [--workers 1] [--keep]

A scratch database with four users who have an e-mail address (admin, operator, analyst, a
ward leader: four messages per alert); ``ioc notify`` worker process(es) with IOC_SMTP_URL
pointing at a real SMTP server (aiosmtpd) in this process. Latency: ``--alerts`` alerts, one
every ``--every`` s, each opened by ``ioc.alerts.evaluate`` (a reading over the water-level
threshold) — measured from the alert's ``opened_at`` (before the evaluation that opens it
runs) to the moment the SMTP server has the message. Throughput: ``--burst`` alerts opened in
one transaction (×4 messages), from its commit to the last message received.

Baseline (no database, outbox, lease or LISTEN): the same messages — read back from the
outbox, rendered by ``Worker.message`` (same recipients, same size), with a new Message-ID —
sent through ``EmailChannel.send`` as a worker sends them (one channel, i.e. one SMTP
connection kept, per thread of a pool of ``delivery.threads``) to the same SMTP server, by a
process of its own like a worker (``--direct``; started, rows read, before the clock starts).
Latency baseline: each alert's messages at once on the pool, one alert after another, from
just before the sends to the moment the server has each message (the SMTP round trip alone).
Throughput baseline: all the burst's messages on the pool, from the go to the last message
received: one process's ceiling (with ``--workers`` 2 or more the outbox has more
processes and may pass it). Both runs are checked for losses and duplicates (arrivals
per Message-ID).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
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
from ioc.config import Config, load_config  # noqa: E402
from ioc.db import connect  # noqa: E402
from ioc.notify import outbox  # noqa: E402
from ioc.notify.worker import Worker  # noqa: E402
from ioc.settings import Settings  # noqa: E402


class Sink:
    """aiosmtpd recording when each Message-ID arrived."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.arrived: dict[str, list[float]] = {}
        self.size: dict[str, int] = {}  # bytes of the message as received
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
                    sink.size[key] = len(envelope.content)
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

    def check(self, keys: list[str]) -> tuple[int, int, float]:
        """(lost, duplicates, mean bytes) of the messages with these Message-IDs."""
        with self.lock:
            got = [k for k in keys if k in self.arrived]
            dup = sum(len(self.arrived[k]) - 1 for k in got)
            size = statistics.fmean(self.size[k] for k in got) if got else 0.0
        return len(keys) - len(got), dup, size

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
    ap.add_argument("--direct", help=argparse.SUPPRESS)  # the baseline's sender (a child)
    ap.add_argument("--after", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--grouped", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.direct:
        return direct_child(a.direct, a.after, a.grouped)
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
            threads = cfg.notifications.delivery.threads
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
            lost, dup, size = sink.check([k for ks in keys.values() for k in ks])
            print(
                f"latency: {len(opened)} alerts, {expected} e-mails ({'all' if ok else 'NOT all'}"
                f" received): p50 {pct(lat, 50):.2f} s, p95 {pct(lat, 95):.2f} s,"
                f" max {max(lat):.2f} s, mean {statistics.fmean(lat):.2f} s;"
                f" lost {lost}, duplicates {dup}, {size:,.0f} bytes/message"
            )
            # baseline: the same messages through the e-mail channel alone, another process
            child = direct_process(env, "rtt", 0, grouped=True)
            child.go()
            sent = child.finish()  # each send returned: the server has the message
            base: list[float] = []
            with sink.lock:
                for t, ks in sent:
                    base += [sink.arrived[k][0] - t for k in ks if k in sink.arrived]
            sent_keys = [k for _, ks in sent for k in ks]
            lost, dup, size = sink.check(sent_keys)
            print(
                f"  baseline, e-mail channel alone ({len(sent)} alerts' {len(sent_keys)}"
                f" messages, each alert's at once on {threads} threads of one process): p50"
                f" {pct(base, 50):.3f} s, p95 {pct(base, 95):.3f} s, max {max(base):.3f} s;"
                f" lost {lost}, duplicates {dup}, {size:,.0f} bytes/message"
            )
            print(
                f"  outbox adds p50 {pct(lat, 50) - pct(base, 50):+.2f} s,"
                f" p95 {pct(lat, 95) - pct(base, 95):+.2f} s"
            )
            # throughput: a burst of alerts opened in one transaction
            before = sink.count()
            last_id = max((c.id for c in rows(conn)), default=0)
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
            burst = rows(conn, last_id)
            lost, dup, size = sink.check([c.idem_key for c in burst])
            rate = n / (t2 - t1)
            print(
                f"burst: {a.burst} alerts → {n} messages enqueued in {t1 - t0:.2f} s"
                f" ({n / (t1 - t0):,.0f} rows/s); delivered {'all' if ok else 'NOT all'} in"
                f" {t2 - t1:.2f} s: {rate:,.0f} messages/s with {a.workers} worker(s);"
                f" lost {lost}, duplicates {dup}, {size:,.0f} bytes/message;"
                f" load {os.getloadavg()[0]:.1f}"
            )
            # baseline: the same messages through the e-mail channel alone, another process
            child = direct_process(env, "direct", last_id, grouped=False)
            before = sink.count()
            t0 = time.perf_counter()
            child.go()
            ok = sink.wait(before + len(burst), 300)
            t1 = time.perf_counter()
            sent_keys = [k for _, ks in child.finish() for k in ks]
            lost, dup, size = sink.check(sent_keys)
            base_rate = len(burst) / (t1 - t0)
            print(
                f"  baseline, e-mail channel alone: {len(burst)} messages on {threads} threads of"
                f" one process, {'all' if ok else 'NOT all'} received in {t1 - t0:.2f} s:"
                f" {base_rate:,.0f} messages/s; lost {lost}, duplicates {dup},"
                f" {size:,.0f} bytes/message; load {os.getloadavg()[0]:.1f}"
            )
            print(
                f"  outbox {rate:,.0f} msg/s vs direct channel {base_rate:,.0f} msg/s"
                f" = {rate / base_rate:.2f}"
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
            conn.close()
    sink.controller.stop()
    return 0


class Direct:
    """The e-mail channel as ``ioc notify`` uses it, without the database: a Worker (never
    run) renders each message (``Worker.message``) and gives each thread of its pool of
    ``delivery.threads`` its own EmailChannel (``Worker.channel``: one SMTP connection, kept)."""

    def __init__(self, cfg: Config, url: str) -> None:
        self.worker = Worker(cfg, url, Settings())  # IOC_SMTP_URL, IOC_SECRET_KEY

    def send(self, claimed: list[outbox.Claimed], prefix: str) -> list[str]:
        """Send these outbox rows again with the Message-ID ``prefix-<key>``; the keys."""
        w = self.worker

        def one(c: outbox.Claimed) -> str:
            msg = w.message(dataclasses.replace(c, idem_key=f"{prefix}-{c.idem_key}"))
            chan = w.channel("email")
            assert chan is not None
            chan.send(msg)
            return msg.idem_key

        return list(w.pool.map(one, claimed))

    def close(self) -> None:
        self.worker.pool.shutdown()
        for chan in self.worker._channels:
            chan.close()


def direct_child(prefix: str, after_id: int, grouped: bool) -> int:
    """``--direct``: the baseline's sender, a process of its own (as a worker is). Reads the
    outbox rows, says ``ready``, waits for a line on stdin, sends them (``grouped``: each
    alert's together, one alert after another) and prints, per send, a JSON line
    ``[start time, [Message-IDs]]``."""
    url = os.environ["IOC_DATABASE_URL"]
    conn = connect(url)
    claimed = rows(conn, after_id)
    conn.close()
    direct = Direct(load_config(ROOT / "config"), url)
    groups: dict[str, list[outbox.Claimed]] = {}
    for c in claimed:
        groups.setdefault(str(c.ref_id) if grouped else "", []).append(c)
    print("ready", flush=True)
    sys.stdin.readline()
    out = []
    for group in groups.values():
        t = time.time()
        out.append((t, direct.send(group, prefix)))
    direct.close()
    for line in out:
        print(json.dumps(line))
    return 0


class DirectProcess:
    """The parent's side of ``direct_child``."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> list[tuple[float, list[str]]]:
        out, _ = self.proc.communicate(timeout=300)
        if self.proc.returncode:
            raise SystemExit(f"the baseline sender failed ({self.proc.returncode})")
        return [(float(t), list(ks)) for t, ks in map(json.loads, out.splitlines())]


def direct_process(
    env: dict[str, str], prefix: str, after_id: int, *, grouped: bool
) -> DirectProcess:
    """The baseline's sender started, its rows read and its channel made: ready to go."""
    args = ["--direct", prefix, "--after", str(after_id)] + (["--grouped"] if grouped else [])
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise SystemExit("the baseline sender did not start")
    return DirectProcess(proc)


def rows(conn: Any, after_id: int = 0) -> list[outbox.Claimed]:
    """The outbox's alert e-mails (id > ``after_id``) as a worker claims them."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, idem_key, kind, ref_kind, ref_id, severity, channel, recipient,"
            " user_name, subject, body_text, body_html, payload, attempts FROM notifications"
            " WHERE kind = 'alert_opened' AND channel = 'email' AND id > %s ORDER BY id",
            (after_id,),
        )
        out = [outbox.Claimed(*r) for r in cur.fetchall()]
    conn.commit()
    return out


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
