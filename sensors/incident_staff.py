"""The simulator's ward staff working incidents through the incidents API (as a field app
would): ``GET /api/v1/incidents`` and ``POST /api/v1/incidents/{id}/actions`` with a token of
scope ``incidents`` (``IOC_INTAKE_URL`` + ``IOC_INCIDENTS_TOKEN``).

Each incident gets a plan drawn from (seed, incident id), scaled to its own clocks (the due
times the API gives): when it is acknowledged, assigned to its ward and started, when each SOP
step is done (with a note or a photo reference where the step needs one) and when it is
resolved. Most wards are quick, some slow: so the demo shows incidents on track, due soon,
overdue and escalated, met and missed. A few are left untouched (the escalation chain climbs).
The operations centre closes them (on the dashboard), not the staff.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("ioc.simulate.incidents")


@dataclass(frozen=True)
class Plan:
    ack_at: dt.datetime | None  # None: left alone (acknowledged and assigned at ack_at)
    step_times: tuple[dt.datetime, ...]
    resolve_at: dt.datetime | None
    start_at: dt.datetime | None = None  # work starts (in progress); None: at ack_at


def _ts(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value))


def ward_speed(seed: int, ward: str | None) -> float:
    """How fast a ward's staff are, as a share of the time the clocks allow (>1: late)."""
    rng = random.Random(f"{seed}:ward:{ward}")
    u = rng.random()
    if u < 0.45:
        return 0.35  # quick
    if u < 0.85:
        return 0.9  # close to the limits (warnings, now and then late)
    return 1.5  # slow: misses them


def plan(seed: int, inc: dict[str, Any]) -> Plan:
    rng = random.Random(f"{seed}:incident:{inc['id']}")
    opened = _ts(inc["opened_at"])
    if rng.random() < 0.05:
        return Plan(None, (), None)
    speed = ward_speed(seed, inc.get("ward"))
    respond = _ts(inc["response_due_at"]) - opened
    resolve = _ts(inc["due_at"]) - opened
    ack_at = opened + respond * (speed * rng.uniform(0.3, 1.2))
    resolve_at = max(ack_at, opened + resolve * (speed * rng.uniform(0.5, 1.25)))
    n = len(inc.get("steps") or [])
    steps = tuple(ack_at + (resolve_at - ack_at) * ((k + 1) / (n + 1)) for k in range(n))
    # the team sets out a while after the assignment, before the first step
    start_at = ack_at + (resolve_at - ack_at) * (rng.uniform(0.1, 0.5) / (n + 1))
    return Plan(ack_at, steps, resolve_at, start_at)


class ApiClient:
    """The incidents API as a field or operations-centre app calls it: JSON over HTTP with a
    bearer token of scope ``incidents``."""

    def __init__(self, base_url: str, token: str, *, seed: int = 0, timeout: float = 10.0):
        self.base = base_url.rstrip("/")
        self.token = token
        self.seed = seed
        self.timeout = timeout
        self.failures = 0
        self.last_error = ""

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body, ensure_ascii=False).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read() or b"null")


class IncidentStaff(ApiClient):
    """``work(now)``: every due action of every open incident, at least once (a failed call is
    simply done again at the next round: the API refuses what was done already)."""

    def __init__(self, base_url: str, token: str, *, seed: int = 0, timeout: float = 10.0):
        super().__init__(base_url, token, seed=seed, timeout=timeout)
        self.done = 0

    def _act(self, iid: int, action: str, **fields: Any) -> bool:
        try:
            self._call("POST", f"/api/v1/incidents/{iid}/actions", {"action": action, **fields})
        except urllib.error.HTTPError as exc:
            if exc.code == 409:  # someone (an operator) moved it on meanwhile
                return False
            self.failures += 1
            self.last_error = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            return False
        except OSError as exc:
            self.failures += 1
            self.last_error = str(exc)
            return False
        self.done += 1
        return True

    def work(self, now: dt.datetime) -> int:
        """Do what is due at ``now``; returns the number of actions done."""
        try:
            incs = self._call("GET", "/api/v1/incidents?status=open&limit=1000")["incidents"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            return 0
        before = self.done
        for inc in incs:
            p = plan(self.seed, inc)
            if p.ack_at is None or now < p.ack_at:
                continue
            iid = int(inc["id"])
            staff = f"can-bo-{inc.get('ward') or 'tp'}"
            status = inc["status"]
            if inc.get("acknowledged_at") is None and status == "new":
                self._act(iid, "acknowledge", actor=staff)
            if status == "new":
                if not inc.get("ward") or not self._act(
                    iid, "assign", actor=staff, assignee=inc["ward"]
                ):
                    continue
                status = "assigned"
            if status == "assigned":
                if (p.start_at is not None and now < p.start_at) or not self._act(
                    iid, "start", actor=staff
                ):
                    continue
                status = "in_progress"
            steps = inc.get("steps") or []
            for k, step in enumerate(steps):
                if step.get("done") or now < p.step_times[k]:
                    continue
                fields: dict[str, Any] = {"actor": staff, "step": step["id"]}
                if step.get("needs") == "photo":
                    fields["photo_ref"] = f"IMG_{iid}_{k + 1}.jpg"
                elif step.get("needs") == "note":
                    fields["note"] = "Đã thực hiện"
                if self._act(iid, "step", **fields):
                    step["done"] = True
            if (
                p.resolve_at is not None
                and now >= p.resolve_at
                and all(s.get("done") for s in steps)
            ):
                self._act(iid, "resolve", actor=staff, text="Đã xử lý xong tại hiện trường")
        return self.done - before
