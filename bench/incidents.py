"""Benchmark: the ``/incidents`` queue callback with 1 million reports and 100,000 incidents.

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/incidents.py \
        [--reports 1000000] [--incidents 100000] [--n 40]

Fills a scratch database with SQL ``generate_series`` (reports over two years across the 94
wards; incidents over the same time, most closed, a few thousand open in every SLA state, each
with one to three linked reports and its opening event), starts ``ioc serve`` (2 workers × 4
threads, as served) and posts the queue's data callback (``/_dash-update-component``) ``--n``
times per scenario, one client, as an operator and as a ward leader. Prints p50 / p95 / max
per scenario. Baseline in the same run: the queue query alone (``ioc.incidents.queries.queue``)
on a direct connection, for the default filter. Also times the incident KPIs of one day and
one hour (``compute_period``, as the scheduler runs them). Target: p95 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from _scratch import scratch_database  # noqa: E402
from dash_fixtures import (  # noqa: E402
    free_port,
    login_cookie,
    post_json,
    start_server,
    stop_server,
    wait_http,
)

from ioc.db import connect  # noqa: E402
from ioc.incidents import queries as iq  # noqa: E402
from ioc.users import add_user  # noqa: E402

PASSWORD = "bench-pass-123"
OPEN = ["new", "assigned", "in_progress"]
ALL = ["new", "assigned", "in_progress", "resolved", "closed", "rejected"]

SEED_SQL = """
INSERT INTO reports (id, ward_code, channel, category, summary, status, received_at, due_at,
                     resolved_at, last_event_at)
SELECT 'PA-B-' || g, w.codes[1 + (g %% array_length(w.codes, 1))],
       (ARRAY['hotline_1022', 'app', 'web', 'zalo', 'field'])[1 + g %% 5],
       c.cats[1 + (g / 7) %% array_length(c.cats, 1)],
       'Phản ánh số ' || g,
       CASE WHEN g %% 50 = 0 THEN 'received' WHEN g %% 50 = 1 THEN 'in_progress'
            ELSE 'resolved' END,
       %(now)s - make_interval(secs => (g::float8 / %(reports)s) * 730 * 86400),
       %(now)s - make_interval(secs => (g::float8 / %(reports)s) * 730 * 86400) + interval '3 days',
       CASE WHEN g %% 50 > 1 THEN %(now)s - make_interval(secs => (g::float8 / %(reports)s)
            * 730 * 86400) + interval '1 day' END,
       %(now)s
FROM generate_series(1, %(reports)s) AS g,
     (SELECT array_agg(code ORDER BY code) AS codes FROM wards) AS w,
     (SELECT %(cats)s::text[] AS cats) AS c;

INSERT INTO incidents (ward_code, category, severity, status, title, lat, lon, origin,
    assignee, assignee_kind, opened_at, opened_by, assigned_at, acknowledged_at, last_ack_at,
    resolved_at, closed_at, rejected_at, clock_start, response_due_at, response_warn_at,
    due_at, warn_at, escalation_level, updated_at)
SELECT x.ward, x.cat, (ARRAY['info', 'warning', 'warning', 'critical'])[1 + x.g %% 4], x.st,
       'Sự cố số ' || x.g, w.lat, w.lon, 'report',
       CASE WHEN x.st <> 'new' THEN x.ward END, CASE WHEN x.st <> 'new' THEN 'ward' END,
       x.opened, 'bench', CASE WHEN x.st <> 'new' THEN x.opened + interval '10 min' END,
       CASE WHEN x.st NOT IN ('new', 'assigned') THEN x.opened + interval '20 min' END,
       CASE WHEN x.st NOT IN ('new', 'assigned') THEN x.opened + interval '20 min' END,
       CASE WHEN x.st IN ('resolved', 'closed') THEN x.opened + make_interval(
            hours => 2 + x.g %% 30) END,
       CASE WHEN x.st = 'closed' THEN x.opened + make_interval(hours => 3 + x.g %% 30) END,
       CASE WHEN x.st = 'rejected' THEN x.opened + interval '1 hour' END,
       x.opened, x.opened + interval '4 hours', x.opened + interval '3 hours',
       x.opened + interval '24 hours', x.opened + interval '18 hours',
       CASE WHEN x.st IN ('new', 'assigned') AND x.opened < %(now)s - interval '1 day'
            THEN 1 ELSE 0 END,
       %(now)s
FROM (
    SELECT g, codes[1 + (g * 7) %% array_length(codes, 1)] AS ward,
           cats[1 + g %% array_length(cats, 1)] AS cat,
           -- the newest 4 per cent are open (spread over the last ~3 days: every SLA state)
           CASE WHEN g > %(incidents)s * 0.96 THEN
                     (ARRAY['new', 'assigned', 'in_progress', 'in_progress'])[1 + g %% 4]
                WHEN g %% 12 = 0 THEN 'rejected' WHEN g %% 12 = 1 THEN 'resolved'
                ELSE 'closed' END AS st,
           CASE WHEN g > %(incidents)s * 0.96
                THEN %(now)s - make_interval(secs => ((%(incidents)s - g)::float8
                     / (%(incidents)s * 0.04)) * 3 * 86400)
                ELSE %(now)s - make_interval(secs => (1 - g::float8 / %(incidents)s)
                     * 730 * 86400) - interval '3 days' END AS opened
    FROM generate_series(1, %(incidents)s) AS g,
         (SELECT array_agg(code ORDER BY code) AS codes FROM wards) AS w,
         (SELECT %(cats)s::text[] AS cats) AS c
) AS x JOIN wards w ON w.code = x.ward;

INSERT INTO incident_links (incident_id, kind, ref, linked_at, linked_by)
SELECT i.id, 'report', 'PA-B-' || (((i.id - 1) * 3 + k) %% %(reports)s + 1), i.opened_at, 'bench'
FROM incidents i, generate_series(0, 2) AS k WHERE k <= i.id %% 3;

INSERT INTO incident_events (incident_id, ts, actor, source, action, details)
SELECT id, opened_at, 'bench', 'api', 'opened', '{}' FROM incidents;
"""


def queue_body(
    wards: list[str] | None, statuses: list[str], sla: list[str], n: int
) -> dict[str, Any]:
    outs = [("inc-table", "data"), ("inc-count", "children")]
    return {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outs) + "..",
        "outputs": [{"id": i, "property": p} for i, p in outs],
        "inputs": [
            {"id": "inc-interval", "property": "n_intervals", "value": n},
            {"id": "inc-ward", "property": "value", "value": wards},
            {"id": "inc-category", "property": "value", "value": None},
            {"id": "inc-status", "property": "value", "value": statuses},
            {"id": "inc-sla", "property": "value", "value": sla},
            {"id": "inc-version", "property": "data", "value": 0},
        ],
        "changedPropIds": ["inc-interval.n_intervals"],
    }


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=1_000_000)
    ap.add_argument("--incidents", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=40, help="requests per scenario")
    args = ap.parse_args()
    with scratch_database("incidents") as (url, cfg), tempfile.TemporaryDirectory() as tmp:
        conn = connect(url)
        now = dt.datetime.now(dt.UTC)
        cats = sorted(cfg.categories.categories) if cfg.categories else ["other"]
        t0 = time.monotonic()
        with conn.cursor() as cur:
            cur.execute(
                SEED_SQL,
                {"now": now, "reports": args.reports, "incidents": args.incidents, "cats": cats},
            )
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
            cur.execute(
                "SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM incidents),"
                " (SELECT count(*) FROM incidents"
                "  WHERE status IN ('new', 'assigned', 'in_progress')),"
                " (SELECT count(*) FROM incident_links)"
            )
            n_rep, n_inc, n_open, n_links = cur.fetchone()  # type: ignore[misc]
        print(
            f"seeded {n_rep:,} reports, {n_inc:,} incidents ({n_open:,} open), {n_links:,} links"
            f" in {time.monotonic() - t0:.0f} s"
        )
        own = sorted(cfg.ward_codes)[0]
        conn.autocommit = False
        add_user(conn, "op", PASSWORD, "operator", [], replace=True)
        add_user(conn, "lead", PASSWORD, "ward_leader", [own], replace=True)
        conn.commit()
        # the incident KPIs of one closed day and one closed hour, all wards and the city
        from ioc.kpi.compute import compute_period

        kpis = [k for k, v in cfg.kpis.kpis.items() if v.query.startswith("incident")]
        day0 = (now - dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        for label, start, end in (
            ("day", day0, day0 + dt.timedelta(days=1)),
            ("hour", day0 + dt.timedelta(hours=10), day0 + dt.timedelta(hours=11)),
        ):
            k0 = time.perf_counter()
            compute_period(conn, cfg, kpis=kpis, period=label, start=start, end=end, now=now)
            conn.rollback()
            print(
                f"{len(kpis)} incident KPIs, one {label}, 94 wards + city:"
                f" {time.perf_counter() - k0:.2f} s"
            )
        # baseline: the query alone
        base_ms = []
        for _ in range(args.n):
            q0 = time.perf_counter()
            iq.queue(conn, now=dt.datetime.now(dt.UTC), statuses=OPEN, limit=200)
            conn.rollback()
            base_ms.append(1000 * (time.perf_counter() - q0))
        conn.close()
        port = free_port()
        proc = start_server(url, Path(tmp) / "var", port, Path(tmp) / "serve.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz", 60)
            cookies = {"operator": login_cookie(base, "op", PASSWORD)}
            cookies["ward_leader"] = login_cookie(base, "lead", PASSWORD)
            scenarios = [
                ("operator, open (default)", "operator", None, OPEN, []),
                ("operator, overdue only", "operator", None, OPEN, ["breached"]),
                ("operator, every state (100k match)", "operator", None, ALL, []),
                ("operator, every state, missed SLA", "operator", None, ALL, ["missed"]),
                ("operator, 5 wards, open", "operator", sorted(cfg.ward_codes)[:5], OPEN, []),
                ("ward leader, own ward, every state", "ward_leader", None, ALL, []),
            ]
            print(
                f"query alone (open, all wards): p50 {statistics.median(base_ms):.0f} ms,"
                f" p95 {pct(base_ms, 0.95):.0f} ms"
            )
            print(f"{'scenario':40s} {'rows':>5s} {'p50':>7s} {'p95':>7s} {'max':>7s}")
            for label, role, wards, statuses, sla in scenarios:
                times = []
                rows = 0
                for i in range(args.n):
                    body = queue_body(wards, statuses, sla, i + 1)
                    r0 = time.perf_counter()
                    status, text = post_json(
                        base + "/_dash-update-component", body, cookies[role], origin=base
                    )
                    times.append(1000 * (time.perf_counter() - r0))
                    if status != 200:
                        raise SystemExit(f"{label}: HTTP {status}: {text[:200]}")
                    rows = len(json.loads(text)["response"]["inc-table"]["data"])
                print(
                    f"{label:40s} {rows:5d} {statistics.median(times):5.0f} ms"
                    f" {pct(times, 0.95):5.0f} ms {max(times):5.0f} ms"
                )
        finally:
            stop_server(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
