"""Wall display memory soak: does the browser's memory grow over a day of ``/wall``?

A day at the default settings (20 s rotation, 5 s refresh) is 4,320 view changes and 17,280
refreshes. This runs the wall accelerated through its URL parameters (``?period=`` rotation
period and ``?refresh=`` refresh interval, both in seconds; defaults here 1 s and 1 s: a view
change on nearly every refresh), so that an hour covers about a day's view changes. Every
``--sample`` seconds, after a forced garbage collection (``HeapProfiler.collectGarbage``), it
records the JS heap (``Runtime.getHeapUsage``), the DOM counters (``Memory.getDOMCounters``:
documents, nodes, JS event listeners), the nodes attached to the document, the number of
refreshes and view changes and the page loads (the wall reloads itself after ``?reload=``
seconds of refreshes, 6 h by default: 4,320 refreshes at 5 s; ``--reload`` sets it, e.g.
``--reload 2160`` with ``--refresh 0.5`` for as many refreshes per page), all counted with the
browser's public interfaces (no Dash internals). At the end it prints the series, linear-fit
slopes per hour and per 1,000 view changes, and the first quarter against the last.

It seeds its own database (tests/dash_seed.py) and starts ``ioc serve`` on it, as
bench/dashboard.py does::

    IOC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python bench/wall_memory.py --minutes 60

``--view map`` pins one view (refreshes only, no view changes); ``--snapshots`` takes a heap
snapshot after the warm-up and at the end and prints the constructors whose object count or
size grew most (slow: the snapshots are tens of MB).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dash_fixtures import KIOSK_TOKEN, free_port, make_driver, start_server, wait_http  # noqa: E402
from dash_seed import seed  # noqa: E402

from ioc.config import load_config  # noqa: E402
from ioc.db import connect  # noqa: E402

# Installed before any script of each page the tab loads (DevTools
# Page.addScriptToEvaluateOnNewDocument), with the browser's public interfaces only: counts in
# sessionStorage (kept across the wall's own reloads) the page loads, the refreshes the server
# answered (fetch calls to Dash's callback endpoint) and every change of the view title (a
# MutationObserver on the header).
NEW_DOCUMENT_JS = """
(function() {
    var ss = window.sessionStorage;
    var bump = function(key) { ss.setItem(key, String(Number(ss.getItem(key) || 0) + 1)); };
    bump('wallLoads');
    var plain = window.fetch.bind(window);
    window.fetch = function(url, opts) {
        var p = plain(url, opts);
        if (String(url).indexOf('_dash-update-component') >= 0) {
            p.then(function(r) { if (r.ok) { bump('wallRefreshes'); } });
        }
        return p;
    };
    var watch = setInterval(function() {
        var name = document.getElementById('wall-view-name');
        if (!name) { return; }
        clearInterval(watch);
        var seen = function() {
            var v = name.textContent;
            if (v && v !== ss.getItem('wallView')) {
                if (ss.getItem('wallView') !== null) { bump('wallChanges'); }
                ss.setItem('wallView', v);
            }
        };
        new MutationObserver(seen).observe(name, {childList: true, characterData: true,
                                                  subtree: true});
    }, 100);
})();
"""

PAGE_JS = """
var ss = window.sessionStorage;
var num = function(key) { var v = ss.getItem(key); return v === null ? null : Number(v); };
return {n: num('wallRefreshes'), loads: num('wallLoads'), changes: num('wallChanges'),
        view: ss.getItem('wallView')};
"""


@dataclass
class Sample:
    t: float  # seconds since the first sample
    heap_mb: float  # Runtime.getHeapUsage usedSize after a forced GC
    total_mb: float  # heap reserved (Runtime.getHeapUsage totalSize)
    documents: int
    nodes: int  # Memory.getDOMCounters: all live nodes (attached or not)
    listeners: int
    attached: int  # elements in the document
    refreshes: int | None
    changes: int | None
    loads: int | None  # page loads (the wall reloads itself every ?reload= seconds)
    view: str | None  # the view title shown


def sample(driver: Any, t0: float, reads: int = 3) -> Sample:
    """The lowest of ``reads`` readings, each after a forced GC, 0.3 s apart: a reading taken
    while a refresh is being rendered counts its transient nodes and objects; the floor is what
    the page retains."""
    heaps, totals, nodes, listeners, attached = [], [], [], [], []
    docs = 0
    for i in range(reads):
        if i:
            time.sleep(0.3)
        driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
        heap = driver.execute_cdp_cmd("Runtime.getHeapUsage", {})
        dom = driver.execute_cdp_cmd("Memory.getDOMCounters", {})
        heaps.append(heap["usedSize"] / 1e6)
        totals.append(heap["totalSize"] / 1e6)
        nodes.append(int(dom["nodes"]))
        listeners.append(int(dom["jsEventListeners"]))
        docs = max(docs, int(dom["documents"]))
        attached.append(
            int(driver.execute_script("return document.getElementsByTagName('*').length"))
        )
    st = driver.execute_script(PAGE_JS) or {}
    return Sample(
        t=time.monotonic() - t0,
        heap_mb=min(heaps),
        total_mb=min(totals),
        documents=docs,
        nodes=min(nodes),
        listeners=min(listeners),
        attached=min(attached),
        refreshes=st.get("n"),
        changes=st.get("changes"),
        loads=st.get("loads"),
        view=st.get("view"),
    )


def slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 3 or len(set(xs)) < 2:
        return float("nan")
    return statistics.linear_regression(xs, ys).slope


def summarise(samples: list[Sample]) -> None:
    print()
    print("series (after forced GC):")
    print(
        f"  {'t[s]':>6} {'heap MB':>8} {'total MB':>8} {'docs':>4} {'nodes':>6} "
        f"{'listen':>6} {'attached':>8} {'refresh':>7} {'changes':>7} {'loads':>7}  view"
    )
    for s in samples:
        print(
            f"  {s.t:6.0f} {s.heap_mb:8.2f} {s.total_mb:8.2f} {s.documents:4d} {s.nodes:6d} "
            f"{s.listeners:6d} {s.attached:8d} {s.refreshes!s:>7} {s.changes!s:>7} "
            f"{s.loads!s:>7}  {s.view or ''}"
        )
    if len(samples) < 4:
        return
    hours = [s.t / 3600 for s in samples]
    changes = [float(s.changes or 0) for s in samples]
    refreshes = [float(s.refreshes or 0) for s in samples]
    span_h = hours[-1] - hours[0]
    n_changes = changes[-1] - changes[0]
    n_refresh = refreshes[-1] - refreshes[0]
    print()
    print(
        f"span {span_h * 60:.1f} min, {n_refresh:.0f} refreshes, {n_changes:.0f} view changes "
        f"({n_changes / 4320:.2f} days of view changes at 20 s, "
        f"{n_refresh / 17280:.2f} days of refreshes at 5 s)"
    )
    q = max(1, len(samples) // 4)
    series = {
        "heap MB": [s.heap_mb for s in samples],
        "DOM nodes": [float(s.nodes) for s in samples],
        "listeners": [float(s.listeners) for s in samples],
        "attached": [float(s.attached) for s in samples],
        "documents": [float(s.documents) for s in samples],
    }
    print(
        f"  {'':<10} {'per hour':>10} {'per 1k changes':>15} {'per 1k refresh':>15} "
        f"{'first quarter':>22} {'last quarter':>22}"
    )
    for label, ys in series.items():
        first, last = ys[:q], ys[-q:]
        per_h = slope(hours, ys)
        per_k = slope(changes, ys) * 1000 if n_changes > 0 else float("nan")
        per_r = slope(refreshes, ys) * 1000 if n_refresh > 0 else float("nan")
        print(
            f"  {label:<10} {per_h:+10.3f} {per_k:+15.3f} {per_r:+15.3f} "
            f"{statistics.mean(first):9.2f} [{min(first):.1f}-{max(first):.1f}]"
            f" {statistics.mean(last):9.2f} [{min(last):.1f}-{max(last):.1f}]"
        )


# -- heap snapshots (optional) ---------------------------------------------------------------


def heap_snapshot(driver: Any) -> dict[str, Any]:
    """A full heap snapshot over the DevTools websocket (chunks arrive as events)."""
    import websocket  # websocket-client

    addr = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
    import urllib.request

    with urllib.request.urlopen(f"http://{addr}/json", timeout=10) as resp:
        targets = json.load(resp)
    page = next(t for t in targets if t.get("type") == "page")
    ws = websocket.create_connection(
        page["webSocketDebuggerUrl"], timeout=600, suppress_origin=True
    )
    try:
        ws.send(json.dumps({"id": 1, "method": "HeapProfiler.collectGarbage"}))
        ws.send(json.dumps({"id": 2, "method": "HeapProfiler.takeHeapSnapshot"}))
        chunks: list[str] = []
        while True:
            msg = json.loads(ws.recv())
            if msg.get("method") == "HeapProfiler.addHeapSnapshotChunk":
                chunks.append(msg["params"]["chunk"])
            elif msg.get("id") == 2:
                break
        return dict(json.loads("".join(chunks)))
    finally:
        ws.close()


def _key(kind: str, name: str) -> str:
    if kind in ("object", "closure", "native") and name:
        return f"{kind}:{name[:60]}"
    return kind


def constructors(snap: dict[str, Any]) -> tuple[Counter[str], Counter[str]]:
    """Object count and self size per (node type, name) of a heap snapshot."""
    meta = snap["snapshot"]["meta"]
    fields = meta["node_fields"]
    types = meta["node_types"][0]
    nf = len(fields)
    i_type, i_name, i_size = fields.index("type"), fields.index("name"), fields.index("self_size")
    nodes, strings = snap["nodes"], snap["strings"]
    count: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for k in range(0, len(nodes), nf):
        key = _key(types[nodes[k + i_type]], strings[nodes[k + i_name]])
        count[key] += 1
        size[key] += nodes[k + i_size]
    return count, size


def retainers(snap: dict[str, Any], wanted: set[str], top: int = 4) -> dict[str, Counter[str]]:
    """For the objects of the ``wanted`` groups: which (group, edge) holds them, counted."""
    meta = snap["snapshot"]["meta"]
    fields, efields = meta["node_fields"], meta["edge_fields"]
    types, etypes = meta["node_types"][0], meta["edge_types"][0]
    nf, ef = len(fields), len(efields)
    i_type, i_name, i_ec = fields.index("type"), fields.index("name"), fields.index("edge_count")
    e_type, e_name, e_to = (efields.index(x) for x in ("type", "name_or_index", "to_node"))
    nodes, edges, strings = snap["nodes"], snap["edges"], snap["strings"]
    out: dict[str, Counter[str]] = {w: Counter() for w in wanted}
    e = 0
    for k in range(0, len(nodes), nf):
        src = _key(types[nodes[k + i_type]], strings[nodes[k + i_name]])
        for _ in range(nodes[k + i_ec]):
            to = edges[e + e_to]
            dst = _key(types[nodes[to + i_type]], strings[nodes[to + i_name]])
            if dst in out:
                kind = etypes[edges[e + e_type]]
                label = edges[e + e_name]
                name = strings[label] if kind not in ("element", "hidden") else f"[{label}]"
                if kind != "weak":
                    out[dst][f"{src} --{kind}:{str(name)[:30]}-->"] += 1
            e += ef
    return {w: Counter(dict(c.most_common(top))) for w, c in out.items()}


def compare(a: dict[str, Any], b: dict[str, Any], top: int = 25) -> None:
    ca, sa = constructors(a)
    cb, sb = constructors(b)
    keys = set(ca) | set(cb)
    rows = sorted(keys, key=lambda k: sb[k] - sa[k], reverse=True)[:top]
    print()
    print("heap snapshot, end minus start (grown most by self size):")
    print(f"  {'constructor':<64} {'count':>12} {'self size KB':>14}")
    for k in rows:
        print(f"  {k:<64} {cb[k] - ca[k]:+12d} {(sb[k] - sa[k]) / 1e3:+14.1f}")
    grown = sorted(keys, key=lambda k: cb[k] - ca[k], reverse=True)[:6]
    print()
    print("what holds the groups grown most by count (end snapshot):")
    for k, holders in retainers(b, set(grown)).items():
        print(f"  {k} ({cb[k] - ca[k]:+d}):")
        for h, n in holders.most_common():
            print(f"      {n:6d}  {h}")


# -- main ------------------------------------------------------------------------------------


def per_view(samples: list[Sample]) -> None:
    """Heap and DOM nodes per view shown at the sample: the same view compared with itself."""
    views = sorted({s.view for s in samples if s.view})
    if len(views) < 2:
        return
    print()
    print("per view shown at the sample (heap MB, nodes): slope per hour, first -> last")
    for v in views:
        mine = [s for s in samples if s.view == v]
        if len(mine) < 3:
            continue
        hs = [s.t / 3600 for s in mine]
        print(
            f"  {v:<28} n={len(mine):<4} heap {slope(hs, [s.heap_mb for s in mine]):+7.3f} MB/h "
            f"({mine[0].heap_mb:.2f} -> {mine[-1].heap_mb:.2f})  nodes "
            f"{slope(hs, [float(s.nodes) for s in mine]):+8.1f}/h "
            f"({mine[0].nodes} -> {mine[-1].nodes})  listeners {mine[0].listeners} -> "
            f"{mine[-1].listeners}"
        )


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # runs the clean-up: browser, server, database


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="soak duration after warm-up")
    ap.add_argument("--period", type=float, default=1.0, help="rotation period (s), ?period=")
    ap.add_argument("--refresh", type=float, default=1.0, help="refresh interval (s), ?refresh=")
    ap.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the first sample")
    ap.add_argument(
        "--reload", type=float, default=None, help="seconds before the wall reloads, ?reload="
    )
    ap.add_argument("--view", default=None, help="pin one view (?view=) instead of rotating")
    ap.add_argument("--size", default="1920x1080", help="browser window size")
    ap.add_argument("--snapshots", action="store_true", help="compare heap snapshots")
    ap.add_argument("--url", default=None, help="use a running server instead (kiosk token)")
    args = ap.parse_args()
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    server_url = os.environ.get("IOC_DATABASE_URL")
    proc = None
    db_url = None
    if args.url is None and not server_url:
        print("set IOC_DATABASE_URL to a PostgreSQL server (or pass --url)", file=sys.stderr)
        return 2
    from db_support import create_database, drop_database, init_schema

    try:
        if args.url:
            base = args.url.rstrip("/")
        else:
            assert server_url is not None
            cfg = load_config(ROOT / "config")
            db_url = create_database(server_url)
            init_schema(db_url, cfg)
            conn = connect(db_url)
            try:
                seed(conn, cfg)
                conn.commit()
            finally:
                conn.close()
            tmp = Path(tempfile.mkdtemp(prefix="ioc-wall-soak-"))
            port = free_port()
            proc = start_server(db_url, tmp / "var", port, tmp / "serve.log")
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz")
            print(f"server log: {tmp / 'serve.log'}")
        w, h = (int(x) for x in args.size.split("x"))
        query = f"token={KIOSK_TOKEN}&period={args.period:g}&refresh={args.refresh:g}"
        if args.view:
            query += f"&view={args.view}"
        if args.reload:
            query += f"&reload={args.reload:g}"
        driver = make_driver(size=(w, h))
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": NEW_DOCUMENT_JS})
        try:
            driver.get(f"{base}/wall?{query}")
            print(f"/wall?{query} at {w}x{h}; warm-up {args.warmup:.0f} s")
            deadline = time.monotonic() + 120
            while not driver.execute_script(PAGE_JS).get("view"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the wall did not show a view within 120 s")
                time.sleep(0.5)
            time.sleep(args.warmup)
            snap0 = heap_snapshot(driver) if args.snapshots else None
            view0 = driver.execute_script(PAGE_JS).get("view") if args.snapshots else None
            samples: list[Sample] = []
            t0 = time.monotonic()
            t_end = t0 + args.minutes * 60
            while True:
                s = sample(driver, t0)
                samples.append(s)
                print(
                    f"  t={s.t:6.0f}s heap={s.heap_mb:6.2f} MB nodes={s.nodes} "
                    f"listeners={s.listeners} attached={s.attached} docs={s.documents} "
                    f"refreshes={s.refreshes} changes={s.changes} loads={s.loads}",
                    flush=True,
                )
                if time.monotonic() >= t_end:
                    break
                time.sleep(max(0.0, min(args.sample, t_end - time.monotonic())))
            summarise(samples)
            per_view(samples)
            if snap0 is not None:
                # the end snapshot on the view the first one was taken on (like with like)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if driver.execute_script(PAGE_JS).get("view") == view0:
                        time.sleep(0.2)  # let its refresh render
                        break
                    time.sleep(0.05)
                compare(snap0, heap_snapshot(driver))
            logs = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            print(f"browser errors: {len(logs)}" + (f" (first: {logs[0]})" if logs else ""))
        finally:
            driver.quit()
        print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if db_url is not None and server_url:
            drop_database(server_url, db_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
