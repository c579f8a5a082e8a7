"""Benchmark: the scheduler's incident sweep (SLA clocks, escalation, reminders of
unacknowledged incidents) with many incidents nobody has acknowledged past their response time.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/incident_sweep.py \
        [--incidents 2000] [--rounds 5]

A scratch database with an operator, an admin and a ward leader for each of the 94 wards (all
with an e-mail address) and ``--incidents`` critical flooding incidents (round-the-clock
clock, response due after 30 min) opened 30 hours ago, none acknowledged. Measured:

* the first sweep: every breach, escalation step and the current reminder written at once;
* a sweep with nothing new, ``--rounds`` times (median), with reminders on (the shipped
  ``config/incidents.yaml``) and, as the baseline in the same run, with reminders off
  (``max_reminders: 0``): what reminders cost a sweep that has nothing to send;
* a sweep one reminder period later, when every incident is due its next reminder.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scratch import scratch_database  # noqa: E402

from ioc.config import Config  # noqa: E402
from ioc.db import connect  # noqa: E402
from ioc.incidents import core, sla  # noqa: E402


def timed(conn: object, cfg: Config, now: dt.datetime) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    res = sla.sweep(conn, cfg, now=now)  # type: ignore[arg-type]
    return time.perf_counter() - t0, res.as_dict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    os.environ.setdefault("IOC_SMTP_URL", "smtp://127.0.0.1:2525")  # e-mail rows are written
    with scratch_database("incident_sweep") as (url, cfg):
        assert cfg.incidents is not None
        off = dataclasses.replace(
            cfg, incidents=cfg.incidents.model_copy(update={"max_reminders": 0})
        )
        every = cfg.incidents.reminder_every_min
        conn = connect(url)
        wards = sorted(cfg.ward_codes)
        people: list[tuple[str, str, list[str]]] = [("op1", "operator", []), ("boss", "admin", [])]
        people += [(f"lead{i}", "ward_leader", [w]) for i, w in enumerate(wards)]
        with conn.cursor() as cur:
            for name, role, grant in people:
                cur.execute(
                    "INSERT INTO users (name, password_hash, role, wards, email)"
                    " VALUES (%s, 'x', %s, %s, %s)",
                    (name, role, grant, f"{name}@bench.example"),
                )
        conn.commit()
        opened = dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)
        t0 = time.perf_counter()
        for i in range(a.incidents):
            core.create(
                conn,
                cfg,
                ward_code=wards[i % len(wards)],
                category="flooding",
                severity="critical",
                title=f"Ngập bench {i}",
                actor="op1",
                source="web",
                now=opened,
            )
        conn.commit()
        print(f"{a.incidents} incidents opened 30 h ago in {time.perf_counter() - t0:.1f} s")
        now = dt.datetime.now(dt.UTC)
        secs, done = timed(conn, cfg, now)
        print(f"first sweep: {secs:.2f} s {done}")
        secs, done = timed(conn, cfg, now + dt.timedelta(seconds=1))
        print(f"second sweep (the last escalation step): {secs:.2f} s {done}")
        quiet: dict[str, list[float]] = {"reminders off (baseline)": [], "reminders on": []}
        for r in range(a.rounds):
            at = now + dt.timedelta(seconds=2 + r)
            for label, c in (("reminders off (baseline)", off), ("reminders on", cfg)):
                secs, done = timed(conn, c, at)
                assert not any(done.values()), done
                quiet[label].append(secs)
        base = statistics.median(quiet["reminders off (baseline)"])
        on = statistics.median(quiet["reminders on"])
        print(
            f"sweep with nothing new, median of {a.rounds}: reminders off (baseline)"
            f" {base * 1000:.0f} ms, reminders on {on * 1000:.0f} ms"
            f" (+{(on - base) * 1000:.0f} ms)"
        )
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM notifications")
            before = int((cur.fetchone() or (0,))[0])
        conn.commit()
        secs, done = timed(conn, cfg, now + dt.timedelta(minutes=every, seconds=5))
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM notifications")
            rows = int((cur.fetchone() or (0,))[0]) - before
        conn.commit()
        print(
            f"sweep {every:g} min later (every incident due its next reminder): {secs:.2f} s,"
            f" {done['reminders']} reminders, {rows} messages ({rows / secs:,.0f}/s);"
            f" load {os.getloadavg()[0]:.1f}"
        )
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
