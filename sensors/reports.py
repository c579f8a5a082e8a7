"""Simulated citizen reports (phản ánh hiện trường) and the ward staff who handle them.

Pure and deterministic: the reports a ward receives on a day, and every later event of each,
are a function of (seed, ward, day), so a backfill, a live run and tests agree.

* arrivals: Poisson per hour; denser wards report more (∝ estimated population); by
  category: flooding follows the ward's rain (sensors/signals.py ``rain_rate``: the same
  storms that raise its water-level sensors) and its lowness; traffic at the morning and
  evening rush hours; street lighting at night; waste, environment, urban order and
  administration in the day;
* duplicates: some problems are reported again by another citizen minutes later (another
  code, same category, a few metres away);
* channels: hotline 1022 (most), the "Góp ý Đà Nẵng" app and portal, Zalo, field staff.
  Reports from the app and the portal are pushed through the HTTP API (when the simulator has
  an intake token), the rest over MQTT, as a hotline CRM gateway would;
* handling by simulated ward staff: assigned after a while, in progress, resolved (usually
  within the category's limit, in working time) or rejected; some are reopened by the citizen;
  some wards are slow (a deterministic fifth of them), so SLA states vary.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ioc.config import Config
from ioc.localtime import LOCAL_TZ
from ioc.workdays import WorkCalendar, add_working_hours, work_calendar, working_days_due
from sensors.fleet import WardProfile
from sensors.rand import key64, uniform1
from sensors.signals import rain_rate

LOCAL = LOCAL_TZ  # Asia/Ho_Chi_Minh (ioc/localtime.py)
HOUR = 3600.0
MAX_SPAN = dt.timedelta(days=8)  # a lifecycle longer than this is left open instead
# Reports per 10,000 residents per day, by category, before the hourly shapes.
BASE_PER_10K = {
    "traffic": 0.10,
    "lighting": 0.06,
    "waste": 0.10,
    "environment": 0.05,
    "urban_order": 0.08,
    "public_administration": 0.03,
    "fallen_tree": 0.015,
    "other": 0.04,
}
FLOOD_PER_MM = 0.012  # flooding reports per 10,000 residents per mm of rain, × lowness
CHANNELS = (("hotline_1022", 0.45), ("app", 0.22), ("web", 0.13), ("zalo", 0.12), ("field", 0.08))
API_CHANNELS = frozenset({"app", "web"})  # pushed by the Góp ý Đà Nẵng portal
SUMMARIES = {
    "flooding": ("Ngập sâu khoảng {n}0 cm, xe máy chết máy", "Nước ngập tràn vào nhà dân"),
    "traffic": ("Ùn tắc kéo dài tại nút giao", "Đèn tín hiệu giao thông không hoạt động"),
    "fallen_tree": ("Cây xanh gãy đổ chắn đường", "Cành cây lớn có nguy cơ gãy"),
    "environment": ("Mùi hôi từ cống thoát nước", "Đốt rác gây khói bụi"),
    "lighting": ("Đèn đường không sáng cả tuyến", "Cột đèn chiếu sáng bị nghiêng"),
    "waste": ("Rác tồn đọng nhiều ngày chưa thu gom", "Đổ trộm xà bần ven đường"),
    "urban_order": ("Lấn chiếm vỉa hè buôn bán", "Xây dựng không phép"),
    "public_administration": ("Hỏi về thủ tục đăng ký hộ tịch", "Chậm trả kết quả hồ sơ"),
    "other": ("Tiếng ồn karaoke ban đêm", "Đề nghị lắp biển báo"),
}
RESULTS = {
    "resolved": "Đã xử lý xong, đơn vị đã kiểm tra hiện trường",
    "rejected": "Không thuộc thẩm quyền, đã hướng dẫn công dân liên hệ đơn vị khác",
}


def _hour_shape(category: str, hour: np.ndarray) -> np.ndarray:
    """Relative arrival rate by local hour (mean 1 over a day)."""
    h = hour.astype(np.float64)
    if category == "traffic":  # rush hours
        s = 0.15 + np.exp(-0.5 * ((h - 7.3) / 0.9) ** 2) + np.exp(-0.5 * ((h - 17.5) / 1.0) ** 2)
    elif category == "lighting":  # at night
        s = np.where((h >= 18) | (h < 5), 1.0, 0.05)
    elif category in ("public_administration",):
        s = np.where((h >= 7) & (h < 17), 1.0, 0.02)
    else:  # daytime
        s = np.where((h >= 6) & (h < 22), 1.0, 0.15)
    return s / s.mean()


class _Shapes(dict[str, np.ndarray]):
    def __missing__(self, key: str) -> np.ndarray:
        value = self[key] = _hour_shape(key, np.arange(24))
        return value


_SHAPES = _Shapes()


@dataclass(frozen=True)
class RepEvent:
    """One report event, as published (``ts`` aware local)."""

    ward: str
    id: str
    event: str
    ts: dt.datetime
    channel: str
    data: tuple[tuple[str, object], ...] = ()

    @property
    def t(self) -> float:
        return self.ts.timestamp()

    @property
    def via_api(self) -> bool:
        return self.event == "received" and self.channel in API_CHANNELS

    def payload(self, *, with_ward: bool = False) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "event": self.event, "ts": self.ts.isoformat()}
        out.update(self.data)
        if with_ward:
            out["ward"] = self.ward
        return out


@dataclass
class ReportModel:
    """What the arrivals need: wards (profile, centroid), categories, the work calendar."""

    wards: dict[str, tuple[WardProfile, float, float]]
    categories: tuple[str, ...]
    limits: dict[str, tuple[str, float]]  # category -> ("hours"|"days", amount)
    cal: WorkCalendar
    seed: int
    slow: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(cls, cfg: Config, profiles: Iterable[WardProfile], seed: int) -> ReportModel | None:
        if cfg.categories is None:
            return None
        cats = cfg.categories
        wards = {}
        for p in profiles:
            w = cfg.ward(p.code)
            if w is not None:
                wards[p.code] = (p, w.lat, w.lon)
        limits = {}
        for k, c in cats.categories.items():
            if c.limit.working_hours is not None:
                limits[k] = ("hours", c.limit.working_hours)
            else:
                limits[k] = ("days", float(c.limit.working_days or 1))
        slow = frozenset(c for c in wards if uniform1(key64(seed, "slow-ward", c), 0) < 0.2)
        return cls(wards, tuple(cats.categories), limits, work_calendar(cats, cfg.holidays),
                   seed, slow)  # fmt: skip

    def due(self, category: str, start: dt.datetime) -> dt.datetime:
        kind, amount = self.limits[category]
        if kind == "hours":
            return add_working_hours(start, amount, self.cal)
        return working_days_due(start, amount, self.cal)

    def __hash__(self) -> int:  # for lru_cache: one model per run
        return id(self)


def _pick(u: float, table: Sequence[tuple[str, float]]) -> str:
    acc = 0.0
    for name, p in table:
        acc += p
        if u < acc:
            return name
    return table[-1][0]


@lru_cache(maxsize=8192)
def day_reports(model: ReportModel, ward: str, day: dt.date) -> tuple[RepEvent, ...]:
    """Every event of every report ``ward`` receives on ``day`` (local), in time order."""
    prof, lat0, lon0 = model.wards[ward]
    rng = np.random.default_rng([model.seed & 0xFFFFFFFF, int(ward), day.toordinal(), 1022])
    start = dt.datetime.combine(day, dt.time(0), LOCAL)
    hours = np.arange(24)
    t_hours = np.asarray(start.timestamp() + hours * HOUR + HOUR / 2, dtype=np.float64)
    pop10k = prof.population / 10_000.0
    lam = np.empty((len(model.categories), 24))
    for i, cat in enumerate(model.categories):
        if cat == "flooding":
            rain = rain_rate(prof, t_hours, model.seed)
            lam[i] = FLOOD_PER_MM * pop10k * rain * (0.2 + prof.lowness)
        else:
            lam[i] = BASE_PER_10K.get(cat, 0.02) * pop10k / 24.0 * _SHAPES[cat]
    counts = rng.poisson(lam)
    arrivals: list[tuple[dt.datetime, str]] = []
    for i, h in zip(*np.nonzero(counts), strict=True):
        for _ in range(int(counts[i, h])):
            ts = start + dt.timedelta(hours=int(h), seconds=float(rng.random() * 3600))
            arrivals.append((ts.replace(microsecond=0), model.categories[int(i)]))
    arrivals.sort()
    events: list[RepEvent] = []
    stamp = day.strftime("%Y%m%d")
    n = 0
    slow = ward in model.slow
    for ts, cat in arrivals:
        dups = 1 + (1 if rng.random() < 0.08 else 0)
        lat = lat0 + float(rng.normal(0, 0.006))
        lon = lon0 + float(rng.normal(0, 0.006))
        for d in range(dups):
            n += 1
            rid = f"PA-{stamp}-{ward}-{n:03d}"
            t_rec = ts + dt.timedelta(minutes=float(rng.uniform(3, 40))) if d else ts
            events += _lifecycle(model, rng, ward, rid, cat, t_rec, lat, lon, slow)
    events.sort(key=lambda e: (e.ts, e.id))
    return tuple(events)


def _lifecycle(
    model: ReportModel,
    rng: np.random.Generator,
    ward: str,
    rid: str,
    cat: str,
    t0: dt.datetime,
    lat: float,
    lon: float,
    slow: bool,
) -> list[RepEvent]:
    channel = _pick(float(rng.random()), CHANNELS)
    summary = SUMMARIES.get(cat, SUMMARIES["other"])[int(rng.integers(0, 2))]
    summary = summary.format(n=int(rng.integers(2, 6)))
    phone = f"09{int(rng.integers(0, 10**8)):08d}"
    data = (
        ("channel", channel),
        ("category", cat),
        ("summary", summary),
        ("lat", round(lat + float(rng.normal(0, 0.0002)), 6)),
        ("lon", round(lon + float(rng.normal(0, 0.0002)), 6)),
        ("contact", f"{phone[:4]} {phone[4:7]} {phone[7:]}"),
    )
    out = [RepEvent(ward, rid, "received", t0, channel, data)]
    due = model.due(cat, t0)
    span = max((due - t0).total_seconds(), 1800.0)
    # the ward's staff: assigned after a short while, then in progress
    speed = 1.8 if slow else 0.6
    t_assign = t0 + dt.timedelta(seconds=span * min(0.5, float(rng.exponential(0.06 * speed))))
    t_prog = t_assign + dt.timedelta(seconds=span * min(0.5, float(rng.exponential(0.1 * speed))))
    # resolution: a fraction of the allowed time (lognormal: most on time, slow wards often late)
    frac = float(rng.lognormal(math.log(0.55 * speed), 0.5))
    t_end = t_prog + dt.timedelta(seconds=max(600.0, span * frac - (t_prog - t0).total_seconds()))
    u = float(rng.random())
    if t_end - t0 > MAX_SPAN:  # far too slow: left open (the backlog), nothing more comes
        u = 0.05
    out.append(RepEvent(ward, rid, "assigned", t_assign, channel))
    if u < 0.04:  # not for us: rejected without handling
        out.append(RepEvent(ward, rid, "rejected", t_assign + dt.timedelta(minutes=20), channel,
                            (("result", RESULTS["rejected"]),)))  # fmt: skip
        return out
    out.append(RepEvent(ward, rid, "in_progress", t_prog, channel))
    if u < 0.07:  # left open: the backlog
        return out
    out.append(RepEvent(ward, rid, "resolved", t_end, channel, (("result", RESULTS["resolved"]),)))
    if rng.random() < 0.03 and t_end - t0 < MAX_SPAN / 2:  # reopened by the citizen
        t_re = t_end + dt.timedelta(hours=float(rng.uniform(2, 30)))
        out.append(RepEvent(ward, rid, "reopened", t_re, channel))
        again = min(span * float(rng.lognormal(math.log(0.4), 0.4)), 2 * 86400.0)
        t_fix = t_re + dt.timedelta(seconds=again)
        out.append(RepEvent(ward, rid, "resolved", t_fix, channel,
                            (("result", RESULTS["resolved"]),)))  # fmt: skip
    return out


LOOKBACK_DAYS = 10  # a report's last event comes at most this long after it is received


def events_between(
    model: ReportModel,
    wards: Sequence[str],
    t0: float,
    t1: float,
    *,
    received_since: float | None = None,
) -> list[RepEvent]:
    """Every event with ``t0 <= t < t1`` (of reports received up to LOOKBACK_DAYS before, or
    only of those received since ``received_since``: a history starts with whole reports)."""
    first = dt.datetime.fromtimestamp(t0, LOCAL).date() - dt.timedelta(days=LOOKBACK_DAYS)
    if received_since is not None:
        first = dt.datetime.fromtimestamp(received_since, LOCAL).date()
    last = dt.datetime.fromtimestamp(t1, LOCAL).date()
    out: list[RepEvent] = []
    for ward in wards:
        if ward not in model.wards:
            continue
        d = first
        while d <= last:
            day = day_reports(model, ward, d)
            if received_since is not None:
                since = received_since
                fresh = {e.id for e in day if e.event == "received" and e.t >= since}
                day = tuple(e for e in day if e.id in fresh)
            out += [e for e in day if t0 <= e.t < t1]
            d += dt.timedelta(days=1)
    out.sort(key=lambda e: (e.t, e.id))
    return out


class ReportFeed:
    """Live: the events that fall due as time advances (never the same one twice), computed an
    hour ahead at a time so that each call is cheap."""

    CHUNK = HOUR

    def __init__(self, model: ReportModel, wards: Sequence[str], start: float) -> None:
        self.model, self.wards, self.t = model, list(wards), start
        self.horizon = start
        self.buffer: list[RepEvent] = []

    def advance(self, until: float) -> list[RepEvent]:
        if until <= self.t:
            return []
        while self.horizon < until:
            nxt = self.horizon + self.CHUNK
            self.buffer += events_between(self.model, self.wards, self.horizon, nxt)
            self.horizon = nxt
        i = 0
        while i < len(self.buffer) and self.buffer[i].t < until:
            i += 1
        out, self.buffer = self.buffer[:i], self.buffer[i:]
        self.t = until
        return out


class ApiSink:
    """Pushes report events to ``POST /api/v1/reports`` (the Góp ý Đà Nẵng portal's door), in
    batches, at least once: a batch that fails stays queued and is sent again (the API stores
    an event once however often it comes)."""

    def __init__(self, base_url: str, token: str, *, batch: int = 200, timeout: float = 10.0):
        self.url = base_url.rstrip("/") + "/api/v1/reports"
        self.token = token
        self.batch = batch
        self.timeout = timeout
        self.queue: list[dict[str, object]] = []
        self.sent = 0
        self.failures = 0
        self.last_error = ""

    def add(self, events: Iterable[RepEvent]) -> None:
        self.queue += [e.payload(with_ward=True) for e in events]

    def flush(self) -> bool:
        """Send what is queued; False (the rest kept) at the first failure."""
        import json
        import urllib.error
        import urllib.request

        while self.queue:
            chunk = self.queue[: self.batch]
            req = urllib.request.Request(
                self.url,
                data=json.dumps(chunk, ensure_ascii=False).encode(),
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
                method="POST",
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                self.failures += 1
                self.last_error = f"HTTP {exc.code}: {exc.read()[:200]!r}"
                if exc.code == 400:  # our own bug: do not retry it forever
                    del self.queue[: self.batch]
                    continue
                return False
            except OSError as exc:
                self.failures += 1
                self.last_error = str(exc)
                return False
            del self.queue[: len(chunk)]
            self.sent += len(chunk)
        return True
