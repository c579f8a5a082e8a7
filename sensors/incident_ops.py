"""The simulated operations centre: citizen reports taken up as incidents, and their history.

A real operations centre does not open an incident for every citizen report: the duty
officer takes up the ones that need a field team (a flooded street, a fallen tree, a dead
traffic light...) and joins a report of a problem already being handled to its incident.
Here, deterministically from (seed, ward, category, place):

* :func:`takes_up`: whether the problem a report describes becomes an incident (a share per
  category, ``SHARE``; decided per ~200 m cell, so the duplicates of one problem share the
  decision and end up in one incident: ioc.incidents.core.open_from_report merges them);
* live (:class:`OpsCentre`, in ``ioc simulate`` next to the ward staff of
  sensors/incident_staff.py): a few minutes after a report arrives it is taken up through
  ``POST /api/v1/incidents`` (token of scope ``incidents``), a share of the new incidents is
  rejected (not an incident after all), and resolved incidents are closed once checked
  (``close`` action);
* history (:func:`write_history`, the demo's back-fill): the same decisions and the ward
  staff's plans (incident_staff.plan, so that the live staff carry on where the history ends)
  replayed over the back-filled reports in time order through ioc.incidents.core with source
  ``sim`` and the SLA sweep (ioc.incidents.sla) every few minutes of the past: every state,
  warning, breach and escalation is in the audit trail at the time it happened. No
  notification goes out for the past (core.history). One transaction: the live staff see the
  history once it is whole.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import random
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ioc.config import Config
from ioc.db import Connection
from ioc.incidents import core, rules, sla
from sensors.incident_staff import ApiClient, plan

log = logging.getLogger("ioc.simulate.ops")

# share of the problems of each category the operations centre takes up as incidents
SHARE = {
    "flooding": 0.7,
    "fallen_tree": 0.8,
    "traffic": 0.45,
    "lighting": 0.35,
    "environment": 0.25,
    "urban_order": 0.25,
    "waste": 0.2,
    "public_administration": 0.0,
    "other": 0.1,
}
CELL_DEG = 0.002  # ~200 m: one problem's reports (duplicates, a few metres apart) share a cell
REJECT_SHARE = 0.08  # incidents rejected at triage (not an incident after all)
OPS_ACTOR = "truc-ban-ioc"
RETRY_FOR = dt.timedelta(minutes=10)  # a report not stored after this is given up


def takes_up(seed: int, ward: str, category: str, lat: float | None, lon: float | None) -> bool:
    """Whether the operations centre makes an incident of this problem."""
    share = SHARE.get(category, 0.1)
    where = (
        "-" if lat is None or lon is None else f"{round(lat / CELL_DEG)}:{round(lon / CELL_DEG)}"
    )
    return random.Random(f"{seed}:ops:{ward}:{category}:{where}").random() < share


def triage_at(seed: int, report_id: str, received: dt.datetime) -> dt.datetime:
    """When the duty officer takes the report up (a few minutes after it arrived)."""
    rng = random.Random(f"{seed}:triage:{report_id}")
    return received + dt.timedelta(minutes=rng.uniform(2, 20))


def reject_at(seed: int, incident_id: int, opened: dt.datetime) -> dt.datetime | None:
    """When the operations centre rejects the incident, or None (most are worked)."""
    rng = random.Random(f"{seed}:reject:{incident_id}")
    if rng.random() >= REJECT_SHARE:
        return None
    return opened + dt.timedelta(minutes=rng.uniform(5, 15))


def close_at(seed: int, incident_id: int, resolved: dt.datetime) -> dt.datetime:
    """When the operations centre has checked the result and closes the incident."""
    rng = random.Random(f"{seed}:close:{incident_id}")
    return resolved + dt.timedelta(hours=rng.uniform(0.5, 6))


def _ts(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


# --------------------------------------------------------------------------- live


class OpsCentre(ApiClient):
    """``see(events)`` the report events the simulator sends; ``work(now)`` takes up the due
    ones (``POST /api/v1/incidents``, retried until the report is stored), rejects and closes
    (``POST /api/v1/incidents/{id}/actions``)."""

    def __init__(self, base_url: str, token: str, *, seed: int = 0, timeout: float = 10.0):
        super().__init__(base_url, token, seed=seed, timeout=timeout)
        self.pending: list[tuple[dt.datetime, str, str]] = []  # (due, report id, ward)
        self.outcomes: Counter[str] = Counter()

    def see(self, events: Any) -> None:
        """Report events just sent: the received ones the centre will take up are queued."""
        for e in events:
            if e.event != "received":
                continue
            d = dict(e.data)
            if takes_up(self.seed, e.ward, str(d.get("category")), d.get("lat"), d.get("lon")):
                self.pending.append((triage_at(self.seed, e.id, e.ts), e.id, e.ward))

    def _take_up(self, now: dt.datetime) -> None:
        keep = []
        for due, rid, ward in self.pending:
            if now < due:
                keep.append((due, rid, ward))
                continue
            try:
                res = self._call(
                    "POST", "/api/v1/incidents", {"report": rid, "ward": ward, "actor": OPS_ACTOR}
                )
                self.outcomes[str(res.get("outcome"))] += 1
            except urllib.error.HTTPError as exc:
                if exc.code in (404, 502, 503) and now - due < RETRY_FOR:
                    keep.append((due, rid, ward))  # not stored yet (MQTT): again next round
                    continue
                self.failures += 1
                self.last_error = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            except OSError as exc:
                keep.append((due, rid, ward))
                self.failures += 1
                self.last_error = str(exc)
        self.pending = keep

    def _act(self, iid: int, body: dict[str, Any]) -> bool:
        try:
            self._call("POST", f"/api/v1/incidents/{iid}/actions", body)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: someone moved it on meanwhile
                self.failures += 1
                self.last_error = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            return False
        except OSError as exc:
            self.failures += 1
            self.last_error = str(exc)
            return False
        return True

    def work(self, now: dt.datetime) -> None:
        self._take_up(now)
        try:
            open_ = self._call("GET", "/api/v1/incidents?status=open&limit=1000")["incidents"]
            done = self._call("GET", "/api/v1/incidents?status=resolved&limit=1000")["incidents"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            return
        for inc in open_:
            when = reject_at(self.seed, int(inc["id"]), _ts(inc["opened_at"]))
            if when is not None and now >= when:
                text = "Không phải sự cố: đã hướng dẫn công dân"
                if self._act(
                    int(inc["id"]), {"action": "reject", "actor": OPS_ACTOR, "text": text}
                ):
                    self.outcomes["rejected"] += 1
        for inc in done:
            if not inc.get("resolved_at"):
                continue
            when = close_at(self.seed, int(inc["id"]), _ts(inc["resolved_at"]))
            if now >= when and self._act(int(inc["id"]), {"action": "close", "actor": OPS_ACTOR}):
                self.outcomes["closed"] += 1


# --------------------------------------------------------------------------- history


@dataclass
class History:
    counts: Counter[str]

    def summary(self) -> str:
        c = self.counts
        return (
            f"{c['reports']} report(s) seen ({c['exists']} taken up before),"
            f" {c['opened']} incident(s) opened, {c['merged']}"
            f" report(s) joined to one, {c['acknowledged']} acknowledged, {c['resolved']}"
            f" resolved, {c['closed']} closed, {c['rejected']} rejected"
        )


def write_history(
    conn: Connection,
    cfg: Config,
    *,
    seed: int,
    since: dt.datetime,
    until: dt.datetime,
    received_before: dt.datetime | None = None,
    sweep_every: dt.timedelta = dt.timedelta(minutes=10),
) -> History:
    """The operations centre's and the ward staff's work from ``since`` to ``until`` on the
    reports received in that time (and before ``received_before``), in one transaction
    (committed here)."""
    counts: Counter[str] = Counter()
    last = min(until, received_before) if received_before is not None else until
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, ward_code, category, lat, lon, received_at FROM reports"
            " WHERE received_at >= %s AND received_at < %s ORDER BY received_at, id",
            (since, last),
        )
        reports = cur.fetchall()
    queue: list[tuple[dt.datetime, int, str, Any]] = []
    seq = 0

    def push(t: dt.datetime | None, kind: str, arg: Any) -> None:
        nonlocal seq
        if t is not None and t <= until:
            seq += 1
            heapq.heappush(queue, (t, seq, kind, arg))

    for rid, ward, cat, lat, lon, received in reports:
        counts["reports"] += 1
        if takes_up(seed, ward, cat, lat, lon):
            push(triage_at(seed, rid, received), "take", rid)
    # sweeps from the first take-up on (before it nothing can be due: a second call for
    # reports stored late only sweeps from the first of those)
    tick = since
    if queue:
        tick += sweep_every * ((queue[0][0] - since) // sweep_every)
    try:
        with core.history():
            while queue:
                t, _, kind, arg = heapq.heappop(queue)
                while tick <= t:
                    sla.sweep(conn, cfg, now=tick, commit=False)
                    tick += sweep_every
                try:
                    _do(conn, cfg, seed, t, kind, arg, push, counts)
                except core.IncidentError as exc:  # an earlier action made this one moot
                    counts[f"refused_{exc.code}"] += 1
            while tick <= until:
                sla.sweep(conn, cfg, now=tick, commit=False)
                tick += sweep_every
            sla.sweep(conn, cfg, now=until, commit=False)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return History(counts)


def _do(
    conn: Connection,
    cfg: Config,
    seed: int,
    t: dt.datetime,
    kind: str,
    arg: Any,
    push: Any,
    counts: Counter[str],
) -> None:
    sim: dict[str, Any] = {"source": "sim", "now": t}
    if kind == "take":
        iid, outcome = core.open_from_report(conn, cfg, arg, actor=OPS_ACTOR, **sim)
        counts[outcome] += 1
        if outcome != "opened":
            return
        inc = core.get(conn, iid)
        assert inc is not None
        steps = rules.sop_steps(cfg, inc["category"])
        p = plan(
            seed,
            {
                "id": iid,
                "ward": inc["ward_code"],
                "opened_at": inc["opened_at"],
                "response_due_at": inc["response_due_at"],
                "due_at": inc["due_at"],
                "steps": [{"id": s.id} for s in steps],
            },
        )
        push(reject_at(seed, iid, inc["opened_at"]), "reject", iid)
        push(p.ack_at, "ack", iid)
        push(p.start_at, "start", iid)
        for k, (step, when) in enumerate(zip(steps, p.step_times, strict=False)):
            push(when, "step", (iid, step.id, step.needs, k))
        push(p.resolve_at, "resolve", iid)
        return
    if kind == "reject":
        core.reject(conn, arg, "Không phải sự cố: đã hướng dẫn công dân", actor=OPS_ACTOR, **sim)
        counts["rejected"] += 1
        return
    if kind == "close":
        core.close(conn, arg, actor=OPS_ACTOR, **sim)
        counts["closed"] += 1
        return
    iid = arg if kind != "step" else arg[0]
    inc = core.get(conn, iid)
    assert inc is not None
    staff = f"can-bo-{inc['ward_code'] or 'tp'}"
    if kind == "ack":  # as the live staff do (incident_staff.IncidentStaff.work)
        if inc["status"] == "new":
            core.acknowledge(conn, iid, actor=staff, **sim)
            core.assign(conn, cfg, iid, inc["ward_code"], actor=staff, **sim)
        counts["acknowledged"] += 1
    elif kind == "start":
        core.start(conn, iid, actor=staff, **sim)
    elif kind == "step":
        _, step_id, needs, k = arg
        core.tick_step(
            conn, cfg, iid, step_id, actor=staff,
            photo_ref=f"IMG_{iid}_{k + 1}.jpg" if needs == "photo" else None,
            note="Đã thực hiện" if needs == "note" else None, **sim,
        )  # fmt: skip
    elif kind == "resolve":
        core.resolve(conn, cfg, iid, "Đã xử lý xong tại hiện trường", actor=staff, **sim)
        counts["resolved"] += 1
        push(close_at(seed, iid, t), "close", iid)
