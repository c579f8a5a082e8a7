"""One-stop-shop applications (hồ sơ thủ tục hành chính): arrivals and lifecycles per ward.

Pure and deterministic: the applications received by a ward on a day, and every later event of
each, are a function of (seed, ward, day), so history, live runs and tests agree and an
application's completion days later is known the moment it arrives (it is published when its
time comes).

* arrivals: Poisson, proportional to the ward's estimated population (the busiest ward about
  ``busiest_per_day`` a working day); counter and postal only in office hours of working days,
  online at any time (fewer at night and on days off); Mondays busier;
* procedure by catalogue weight, channel by the procedure's online share (postal a small share
  of the rest);
* due: the legal time in working days (weekends and public holidays skipped, ioc/workdays.py),
  at 17:00 of the last day; same-day procedures are due at 17:00 of the day (next working day
  when received after 15:30 or on a day off);
* outcomes: completed on time (most), completed late, left open far past due (the overdue
  backlog), returned for supplements (then usually re-received with a new due), cancelled.

State machine: received → completed | returned | cancelled; returned → received | (nothing).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ioc.config.procedures import Procedure
from ioc.localtime import LOCAL_TZ
from ioc.workdays import OFFICE_HOURS, Holidays, add_working_days
from sensors.fleet import WardProfile
from sensors.settings import ApplicationsSection

LOCAL = LOCAL_TZ
_LONG_FIELDS = frozenset({"Đất đai", "Xây dựng"})
_WEEKDAY_FACTOR = (1.2, 1.05, 1.0, 1.0, 0.9, 1.0, 1.0)
_CANCEL_REASONS = (
    "Công dân rút hồ sơ",
    "Hồ sơ không đủ điều kiện giải quyết",
    "Quá hạn bổ sung hồ sơ",
    "Trùng hồ sơ đã nộp",
)
_RETURN_REASONS = ("Bổ sung giấy tờ", "Sai thông tin tờ khai", "Thiếu bản sao chứng thực")


@dataclass(frozen=True, slots=True)
class AppEvent:
    ward: str
    id: str
    event: str  # received | completed | returned | cancelled
    ts: dt.datetime  # aware, local time
    procedure: str
    channel: str
    due: dt.datetime | None = None
    reason: str | None = None

    @property
    def t(self) -> float:
        return self.ts.timestamp()

    def payload(self) -> dict[str, object]:
        """The contract's MQTT payload (times ISO-8601 with +07:00 offset)."""
        out: dict[str, object] = {
            "id": self.id,
            "event": self.event,
            "ts": self.ts.isoformat(),
            "procedure": self.procedure,
            "channel": self.channel,
        }
        if self.due is not None:
            out["due"] = self.due.isoformat()
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def next_office_time(ts: dt.datetime, cal: Holidays) -> dt.datetime:
    """``ts`` when in office hours of a working day, else the next opening (aware local)."""
    local = ts.astimezone(LOCAL)
    for _ in range(400):
        d = local.date()
        if cal.is_working_day(d):
            for a, b in OFFICE_HOURS:
                start = dt.datetime.combine(d, a, LOCAL)
                end = dt.datetime.combine(d, b, LOCAL)
                if local < start:
                    return start
                if local < end:
                    return local
        local = dt.datetime.combine(d + dt.timedelta(days=1), dt.time(0), LOCAL)
    raise ValueError("no office time within a year")


def due_for(received: dt.datetime, days: float, cal: Holidays) -> dt.datetime:
    """17:00 local of the day the legal time runs out."""
    if days <= 0:
        local = received.astimezone(LOCAL)
        d = local.date()
        if not cal.is_working_day(d) or local.time() >= dt.time(15, 30):
            d += dt.timedelta(days=1)
            while not cal.is_working_day(d):
                d += dt.timedelta(days=1)
        return dt.datetime.combine(d, dt.time(17, 0), LOCAL)
    end = add_working_days(received, days, cal).astimezone(LOCAL)
    d = end.date() if end.time() != dt.time(0) else end.date() - dt.timedelta(days=1)
    return dt.datetime.combine(d, dt.time(17, 0), LOCAL)


class Catalogue:
    """The procedures with their arrival weights (working days / days off)."""

    def __init__(self, procedures: Sequence[Procedure]) -> None:
        self.procs = list(procedures)
        w = np.array([p.weight for p in self.procs], dtype=np.float64)
        on = np.array([p.online_share for p in self.procs], dtype=np.float64)
        self.p_work = w / w.sum()
        off = w * on
        self.p_off = off / off.sum() if off.sum() > 0 else self.p_work
        self.online_mean = float((w * on).sum() / w.sum())


def _offset(start: dt.datetime, wdays: float, cal: Holidays) -> dt.datetime:
    return next_office_time(add_working_days(start, max(0.0, wdays), cal), cal)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which way an application goes, decided by its uniforms before any time is computed."""

    cancelled: bool = False
    returned: bool = False
    resubmitted: bool = False
    outcome: str = ""  # stuck | late | on_time ("" when it ends cancelled or returned)


def _plan(u: Sequence[float], proc: Procedure, s: ApplicationsSection) -> _Plan:
    ret_share = s.returned_share * (2.0 if proc.field in _LONG_FIELDS else 1.0)
    o = u[0]
    returned = False
    if o < s.cancelled_share:
        return _Plan(cancelled=True)
    if o < s.cancelled_share + ret_share:
        if u[3] < 0.2:  # never handed in again
            return _Plan(returned=True)
        returned = True
        o = u[5]  # the resubmission's own outcome
    else:
        o = (o - s.cancelled_share - ret_share) / max(1e-9, 1 - s.cancelled_share - ret_share)
    if o < s.stuck_share:
        outcome = "stuck"
    elif o < s.stuck_share + s.late_share:
        outcome = "late"
    else:
        outcome = "on_time"
    return _Plan(returned=returned, resubmitted=returned, outcome=outcome)


def _span_bound_wd(plan: _Plan, days: float) -> int:
    """Working days from arrival within which the lifecycle of ``plan`` surely ends (each
    step of :func:`lifecycle` at its longest, plus a day of rounding per step)."""
    span = max(days, 0.25)
    if plan.cancelled:
        return math.ceil(0.8 * span) + 2
    w = 0.0
    if plan.returned:
        w += 0.6 * span + 1
        if not plan.resubmitted:
            return math.ceil(w) + 1
        w += 8 + 1
    w += max(days, 0.0) + 2  # due (same-day procedures: the next working day)
    w += {"stuck": 40.0, "late": 5.0}.get(plan.outcome, 0.0) + 1
    return math.ceil(w) + 1


def lifecycle(
    *,
    ward: str,
    app_id: str,
    proc: Procedure,
    channel: str,
    received: dt.datetime,
    u: Sequence[float],
    cal: Holidays,
    s: ApplicationsSection,
) -> list[AppEvent]:
    """All events of one application; ``u`` holds 8 uniform numbers that decide it."""

    def ev(event: str, ts: dt.datetime, due: dt.datetime | None = None, reason: str | None = None):
        return AppEvent(ward, app_id, event, ts, proc.code, channel, due, reason)

    days = proc.days
    due = due_for(received, days, cal)
    out = [ev("received", received, due)]
    span = max(days, 0.25)
    plan = _plan(u, proc, s)
    cur = received
    if plan.cancelled:
        t = _offset(cur, (0.1 + 0.7 * u[1]) * span, cal)
        out.append(ev("cancelled", t, reason=_CANCEL_REASONS[int(u[2] * len(_CANCEL_REASONS))]))
        return out
    if plan.returned:
        t = _offset(cur, (0.15 + 0.45 * u[1]) * span, cal)
        out.append(ev("returned", t, reason=_RETURN_REASONS[int(u[2] * len(_RETURN_REASONS))]))
        if not plan.resubmitted:
            return out
        back = add_working_days(t, 1 + 7 * u[4], cal)
        cur = next_office_time(back, cal) if channel != "online" else back
        due = due_for(cur, days, cal)
        out.append(ev("received", cur, due))
    if plan.outcome == "stuck":
        t = _offset(due, 10 + 30 * u[6], cal)
    elif plan.outcome == "late":
        t = _offset(due, 0.2 + 4.8 * u[6] ** 2, cal)
        if t <= due:
            t = next_office_time(due + dt.timedelta(hours=15), cal)
    elif days <= 0:
        t = next_office_time(cur + dt.timedelta(minutes=10 + 170 * u[6]), cal)
        if t > due:
            t = due - dt.timedelta(minutes=5 + 60 * u[7])
    else:
        t = _offset(cur, (0.2 + 0.77 * u[6]) * days, cal)
        if t > due:
            t = due - dt.timedelta(minutes=5 + 60 * u[7])
    if t <= cur:
        t = cur + dt.timedelta(minutes=3 + 30 * u[7])
    out.append(ev("completed", t))
    return out


@dataclass(frozen=True)
class ArrivalModel:
    """Arrival rates: ``per_person`` working-day arrivals per inhabitant."""

    per_person: float
    catalogue: Catalogue
    cal: Holidays
    settings: ApplicationsSection

    @classmethod
    def build(
        cls,
        all_profiles: Iterable[WardProfile],
        procedures: Sequence[Procedure],
        cal: Holidays,
        s: ApplicationsSection,
    ) -> ArrivalModel:
        biggest = max((p.population for p in all_profiles), default=0)
        per = s.busiest_per_day / biggest if biggest else 0.0
        return cls(per, Catalogue(procedures), cal, s)


def _rng(seed: int, ward: str, day: dt.date) -> np.random.Generator:
    code = int(ward) if ward.isdigit() else sum(ward.encode())
    return np.random.default_rng([seed & 0xFFFFFFFF, code, day.toordinal()])


def _minutes_in_office(u: float) -> dt.time:
    """A time in office hours: 60% in the morning session, 40% in the afternoon."""
    m = 7 * 60 + 30 + (u / 0.6) * 240 if u < 0.6 else 13 * 60 + 30 + ((u - 0.6) / 0.4) * 210
    return dt.time(int(m // 60), int(m % 60), int((m * 60) % 60))


def _online_time(u: float, v: float) -> dt.time:
    """Online submissions: mostly 7-22h, some at any hour."""
    h = 7 + 15 * u if v < 0.85 else 24 * u
    m = h * 60
    return dt.time(int(m // 60) % 24, int(m % 60), int((m * 60) % 60))


def day_applications(
    model: ArrivalModel, ward: WardProfile, day: dt.date, seed: int
) -> list[list[AppEvent]]:
    """The lifecycles of every application the ward receives on ``day`` (local date)."""
    return list(_day_cached(model, ward, day, seed))


@dataclass(frozen=True, slots=True)
class _Arrival:
    app_id: str
    received: dt.datetime
    proc: Procedure
    channel: str
    u: tuple[float, ...]


@lru_cache(maxsize=16384)
def _day_arrivals(
    model: ArrivalModel, ward: WardProfile, day: dt.date, seed: int
) -> tuple[_Arrival, ...]:
    """The applications a ward receives on ``day``, in arrival order (cheap: no lifecycle)."""
    rate = model.per_person * ward.population
    if rate <= 0:
        return ()
    cat, cal, s = model.catalogue, model.cal, model.settings
    rng = _rng(seed, ward.code, day)
    working = cal.is_working_day(day)
    if working:
        n = int(rng.poisson(rate * _WEEKDAY_FACTOR[day.weekday()]))
        probs = cat.p_work
    else:
        n = int(rng.poisson(rate * cat.online_mean * 0.3))
        probs = cat.p_off
    if n == 0:
        return ()
    idx = rng.choice(len(cat.procs), size=n, p=probs)
    u = rng.random((n, 12))
    apps: list[tuple[dt.datetime, Procedure, str, np.ndarray]] = []
    for i in range(n):
        proc = cat.procs[int(idx[i])]
        online = (not working) or u[i, 0] < proc.online_share
        if online:
            channel = "online"
            tod = _online_time(u[i, 1], u[i, 2])
        else:
            channel = "postal" if u[i, 1] < s.postal_share else "counter"
            tod = _minutes_in_office(u[i, 2])
        received = dt.datetime.combine(day, tod, LOCAL)
        apps.append((received, proc, channel, u[i, 4:12]))
    apps.sort(key=lambda a: a[0])
    stamp = day.strftime("%y%m%d")
    return tuple(
        _Arrival(f"{ward.code}-{stamp}-{j:04d}", received, proc, channel, tuple(map(float, uu)))
        for j, (received, proc, channel, uu) in enumerate(apps, start=1)
    )


def _life(model: ArrivalModel, ward: WardProfile, a: _Arrival) -> list[AppEvent]:
    return lifecycle(
        ward=ward.code,
        app_id=a.app_id,
        proc=a.proc,
        channel=a.channel,
        received=a.received,
        u=a.u,
        cal=model.cal,
        s=model.settings,
    )


@lru_cache(maxsize=4096)
def _day_cached(
    model: ArrivalModel, ward: WardProfile, day: dt.date, seed: int
) -> tuple[list[AppEvent], ...]:
    return tuple(_life(model, ward, a) for a in _day_arrivals(model, ward, day, seed))


@lru_cache(maxsize=65536)
def _last_day(cal: Holidays, day: dt.date, wdays: int) -> dt.date:
    """The last local day a lifecycle starting on ``day`` and lasting ``wdays`` working days
    (a bound from :func:`_span_bound_wd`) can reach."""
    start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), LOCAL)
    return add_working_days(start, wdays, cal).astimezone(LOCAL).date() + dt.timedelta(days=1)


def _alive_lifecycles(
    model: ArrivalModel, ward: WardProfile, day: dt.date, seed: int, since: dt.date
) -> Iterable[list[AppEvent]]:
    """The lifecycles of ``day``'s applications that may still have an event on or after the
    local day ``since``; the others are skipped before any of their times is computed."""
    if day >= since - dt.timedelta(days=1):
        yield from _day_cached(model, ward, day, seed)
        return
    s = model.settings
    for a in _day_arrivals(model, ward, day, seed):
        bound = _span_bound_wd(_plan(a.u, a.proc, s), a.proc.days)
        if _last_day(model.cal, day, bound) >= since:
            yield _life(model, ward, a)


def lookback_start(model: ArrivalModel, since: dt.date) -> dt.date:
    """The first arrival day whose applications may still have an event on or after ``since``:
    the longest lifecycle of any procedure (returned, handed in again, then stuck: the bound of
    :func:`_span_bound_wd`), counted back in working days with the holiday calendar."""
    worst = _Plan(returned=True, resubmitted=True, outcome="stuck")
    wdays = max((_span_bound_wd(worst, p.days) for p in model.catalogue.procs), default=1)
    day = since - dt.timedelta(days=math.ceil(wdays * 7 / 5))
    while _last_day(model.cal, day - dt.timedelta(days=1), wdays) >= since:
        day -= dt.timedelta(days=1)
    return day


def local_day(t: float) -> dt.date:
    return dt.datetime.fromtimestamp(t, LOCAL).date()


def events_between(
    model: ArrivalModel,
    wards: Iterable[WardProfile],
    t0: float,
    t1: float,
    seed: int,
    *,
    received_from: float | None = None,
    tick: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
    lookback_days: int | None = None,
) -> list[AppEvent]:
    """Every event with ``t0 <= ts < t1``, in time order (ties: ward, id, event order).

    ``lookback_days`` (load tests at a large scale): only applications received at most that
    many days before ``t0``'s local day are followed (the events of older ones are left out),
    instead of every application that may still have an event.

    ``received_from``: only applications first received at or after this time (history
    uses it so that no application appears without its ``received`` event). ``tick`` is
    called after each ward (the simulator services its connections there); when ``stop()``
    is true after a ward, the events found so far are returned (an incomplete answer: the
    caller is stopping).
    """
    since = local_day(t0)
    first = lookback_start(model, since)
    if lookback_days is not None:
        first = max(first, since - dt.timedelta(days=lookback_days))
    last = local_day(t1)
    out: list[AppEvent] = []
    for w in wards:
        if stop is not None and stop():
            break
        d = first
        while d <= last:
            for life in _alive_lifecycles(model, w, d, seed, since):
                if life[-1].t < t0 or life[0].t >= t1:
                    continue
                if received_from is not None and life[0].t < received_from:
                    continue
                out.extend(e for e in life if t0 <= e.t < t1)
            d += dt.timedelta(days=1)
        if tick is not None:
            tick()
    out.sort(key=lambda e: (e.t, e.ward, e.id))
    return out


class ApplicationFeed:
    """Live feed: ``advance(until)`` returns the events of ``[last, until)`` in time order."""

    def __init__(
        self, model: ArrivalModel, wards: Sequence[WardProfile], start: float, seed: int
    ) -> None:
        self.model, self.wards, self.seed = model, list(wards), seed
        self.t = start
        self._pending: list[AppEvent] = []
        self._horizon = start
        self.tick: Callable[[], None] | None = None
        self.stop: Callable[[], bool] | None = None  # checked between wards
        self.lookback_days: int | None = None  # see events_between

    def advance(self, until: float) -> list[AppEvent]:
        if until <= self.t:
            return []
        if until > self._horizon:
            # Compute a day ahead at a time: the events of [horizon, next local midnight + 1 day)
            new_h = max(until, math.floor((until + 7 * 3600) / 86400 + 1) * 86400 - 7 * 3600)
            found = events_between(
                self.model,
                self.wards,
                self._horizon,
                new_h,
                self.seed,
                tick=self.tick,
                stop=self.stop,
                lookback_days=self.lookback_days,
            )
            if self.stop is not None and self.stop():
                return []  # stopping: the answer may be incomplete, and nobody needs it
            self._pending.extend(found)
            self._horizon = new_h
        k = 0
        while k < len(self._pending) and self._pending[k].t < until:
            k += 1
        out, self._pending = self._pending[:k], self._pending[k:]
        self.t = until
        return out
