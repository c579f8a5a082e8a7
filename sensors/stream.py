"""From devices, signals and faults to MQTT messages (pure: no network).

:class:`LiveStream` yields the messages of a live run in time order: one reading per device per
reporting interval (``interval_s / rate``), status messages when a device goes down or comes
back, held-back arrays after a late batch, the deliberate bad payloads, and the application
events. :func:`history_messages` yields history (``--backfill``): per device, arrays of readings
at a coarser interval, packed up to the ingester's limits (1000 items, 64 KiB).

Every :class:`Message` says which fault shaped it (``fault``) and whether the ingester should
accept all of it (``valid``); :class:`Stats` counts both, so tests and logs can check them.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ioc.config import Config
from sensors.applications import AppEvent, ApplicationFeed, ArrivalModel, events_between
from sensors.faults import FaultPlan
from sensors.fleet import Device, WardProfile
from sensors.rand import F64
from sensors.signals import device_values

MAX_ITEMS = 1000
MAX_BYTES = 60 * 1024  # under the ingester's 64 KiB
_INT_METRICS = frozenset({"lamp_on", "vehicle_count", "co"})


@dataclass(frozen=True, slots=True)
class Message:
    t: float  # simulated publish time, Unix seconds
    conn: str  # connection: a direct device's id, or "gw-{ward}"
    topic: str = ""
    payload: bytes = b""
    retain: bool = False
    fault: str | None = None
    valid: bool = True
    action: str | None = None  # "drop": close the connection abruptly (the broker sends its will)
    device: str | None = None
    readings: int = 0


@dataclass
class Stats:
    messages: int = 0
    readings: int = 0
    invalid: int = 0
    events: int = 0
    faults: Counter[str] = field(default_factory=Counter)

    def add(self, m: Message) -> None:
        if m.action is None:
            self.messages += 1
        self.readings += m.readings
        if not m.valid:
            self.invalid += 1
        if m.fault:
            self.faults[m.fault] += 1

    def summary(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"{self.messages} messages, {self.readings} readings, {self.events} application"
            f" events, {self.invalid} deliberately invalid; faults: {faults}"
        )


class Formatter:
    """Metric ranges and compact JSON for one configuration."""

    def __init__(self, cfg: Config) -> None:
        self.ranges = {
            name: {m.name: (m.min, m.max) for m in dt.metrics}
            for name, dt in cfg.sensors.device_types.items()
        }

    def clip(self, dev: Device, values: dict[str, F64]) -> dict[str, F64]:
        out = {}
        for name, (lo, hi) in self.ranges[dev.type].items():
            v = values.get(name)
            if v is None:  # a metric the signals do not model: mid-range
                v = np.full(1, (lo + hi) / 2)
            out[name] = np.clip(np.nan_to_num(v, nan=lo), lo, hi)
        return out

    @staticmethod
    def num(name: str, v: float) -> str:
        if name in _INT_METRICS:
            return str(round(v))
        r = round(v, 1)
        return str(int(r)) if r == int(r) else repr(r)

    def columns(self, names: list[str], values: dict[str, F64]) -> list[list[str]]:
        """Each metric's values as JSON number texts (same formatting as :meth:`num`)."""
        out = []
        for n in names:
            a = values[n]
            if n in _INT_METRICS:
                out.append(np.round(a).astype(np.int64).astype(str).tolist())
            else:
                r = np.round(a, 1)
                whole = r == np.floor(r)
                txt = np.where(whole, r.astype(np.int64).astype(str), r.astype(str))
                out.append(txt.tolist())
        return out

    @staticmethod
    def template(names: list[str]) -> str:
        body = ",".join(f'"{n}":{{}}' for n in names)
        return '{{"ts":{},"values":{{' + body + "}}}}"

    def item(self, ts_ms: int, values: dict[str, float]) -> str:
        body = ",".join(f'"{k}":{self.num(k, v)}' for k, v in values.items())
        return f'{{"ts":{ts_ms},"values":{{{body}}}}}'


# ------------------------------------------------------------------------------------ live
@dataclass
class _DevState:
    k: int = 0
    offline: bool = False
    held: list[str] = field(default_factory=list)
    held_n: int = 0
    stuck_values: dict[str, float] | None = None
    stuck_start: float = -1.0


class LiveStream:
    """The messages of a live run from ``start``, in time order."""

    def __init__(
        self,
        cfg: Config,
        profiles: dict[str, WardProfile],
        devices: Sequence[Device],
        *,
        seed: int,
        start: float,
        rate: float = 1.0,
        faults: FaultPlan,
        apps: ArrivalModel | None,
        prefix: str,
    ) -> None:
        self.cfg, self.profiles, self.devices = cfg, profiles, list(devices)
        self.seed, self.rate, self.faults, self.prefix = seed, rate, faults, prefix
        self.fmt = Formatter(cfg)
        self.intervals = {
            name: dt.interval_s / rate for name, dt in cfg.sensors.device_types.items()
        }
        self.state = [_DevState() for _ in self.devices]
        self.heap: list[tuple[float, int, int]] = []
        for i, d in enumerate(self.devices):
            iv = self.intervals[d.type]
            k = math.ceil((start - d.phase * iv) / iv)
            self.state[i].k = k
            heapq.heappush(self.heap, (d.phase * iv + k * iv, i, k))
        wards = [profiles[c] for c in sorted({d.ward for d in self.devices} | set(profiles))]
        self.feed = ApplicationFeed(apps, wards, start, seed) if apps else None
        self.stats = Stats()
        self.t = start
        self._announced = False

    def advance(self, until: float) -> list[Message]:
        """Messages with ``t < until`` not yet returned, in time order."""
        out: list[Message] = []
        if not self._announced:
            # Devices announce themselves when they (or their gateway) connect.
            self._announced = True
            for dev, st in zip(self.devices, self.state, strict=True):
                st.offline = self.faults.offline(dev, self.t) is not None
                if not st.offline:
                    conn = dev.id if dev.direct else f"gw-{dev.ward}"
                    topic = dev.topic(self.prefix, "status")
                    out.append(Message(self.t, conn, topic, b"online", retain=True, device=dev.id))
        while self.heap and self.heap[0][0] < until:
            t, i, k = heapq.heappop(self.heap)
            out.extend(self._tick(i, k, t))
            iv = self.intervals[self.devices[i].type]
            heapq.heappush(self.heap, (self.devices[i].phase * iv + (k + 1) * iv, i, k + 1))
        if self.feed is not None:
            for ev in self.feed.advance(until):
                out.append(self._app_message(ev))
                self.stats.events += 1
        out.sort(key=lambda m: m.t)
        for m in out:
            self.stats.add(m)
        self.t = until
        return out

    def _app_message(self, ev: AppEvent) -> Message:
        payload = json.dumps(ev.payload(), ensure_ascii=False, separators=(",", ":")).encode()
        return Message(
            ev.t, f"gw-{ev.ward}", f"{self.prefix}/{ev.ward}/applications", payload, device=None
        )

    def _tick(self, i: int, k: int, t: float) -> list[Message]:
        dev, st = self.devices[i], self.state[i]
        conn = dev.id if dev.direct else f"gw-{dev.ward}"
        status_topic = dev.topic(self.prefix, "status")
        out: list[Message] = []
        off = self.faults.offline(dev, t)
        if off is not None:
            if not st.offline:
                st.offline = True
                fault = f"offline_{off.mode}"
                if off.mode == "will":
                    out.append(Message(t, conn, action="drop", fault=fault, device=dev.id))
                elif off.mode == "status":
                    out.append(
                        Message(
                            t,
                            conn,
                            status_topic,
                            b"offline",
                            retain=True,
                            fault=fault,
                            device=dev.id,
                        )
                    )
                else:
                    out.append(Message(t, conn, action="silent", fault=fault, device=dev.id))
            return out
        if st.offline:
            st.offline = False
            out.append(Message(t, conn, status_topic, b"online", retain=True, device=dev.id))
        out.extend(self._reading(dev, st, conn, k, t))
        return out

    def _reading(self, dev: Device, st: _DevState, conn: str, k: int, t: float) -> list[Message]:
        topic = dev.topic(self.prefix, "telemetry")
        fault: str | None = None
        stuck = self.faults.stuck(dev, t)
        if stuck is not None and st.stuck_start == stuck.start and st.stuck_values is not None:
            values = dict(st.stuck_values)
            fault = "stuck"
        else:
            arr = self.fmt.clip(
                dev, device_values(dev, self.profiles[dev.ward], np.array([t]), self.seed)
            )
            values = {name: float(a[0]) for name, a in arr.items()}
            if stuck is not None:
                st.stuck_start, st.stuck_values = stuck.start, dict(values)
        ts = t
        valid = True
        skew = self.faults.skew(dev, t)
        if skew is not None:
            ts = t + skew.value
            fault = "skew_future" if skew.mode == "future" else "skew"
            valid = skew.mode != "future"
        ku, du = self.faults.reading(dev, k)
        kind = self.faults.reading_kind(float(ku))
        ranges = self.fmt.ranges[dev.type]
        names = list(ranges)
        pick = names[int(float(du) * len(names)) % len(names)]
        lo, hi = ranges[pick]
        if kind == "spike":
            values[pick] = min(hi, max(lo, values[pick] * 2.5 + 0.2 * (hi - lo)))
            fault = fault if fault == "skew_future" else "spike"
        elif kind == "out_of_range":
            values[pick] = (
                hi + 0.5 * (hi - lo) if float(du) * 7 % 1 < 0.7 else lo - 0.25 * (hi - lo) - 1
            )
            fault, valid = "out_of_range", False
        ts_ms = round(ts * 1000)
        if kind == "malformed":
            return [
                Message(
                    t,
                    conn,
                    topic,
                    _malformed(float(du), ts_ms, pick),
                    fault="malformed",
                    valid=False,
                    device=dev.id,
                    readings=0,
                )
            ]
        item = self.fmt.item(ts_ms, values)
        late = self.faults.late(dev, t)
        if late is not None and valid:
            st.held.append(item)
            st.held_n += 1
            return []
        out: list[Message] = []
        if st.held:
            payload = ("[" + ",".join(st.held) + "]").encode()
            out.append(
                Message(
                    t, conn, topic, payload, fault="late_batch", device=dev.id, readings=st.held_n
                )
            )
            st.held, st.held_n = [], 0
        out.append(
            Message(
                t, conn, topic, item.encode(), fault=fault, valid=valid, device=dev.id, readings=1
            )
        )
        return out


def _malformed(u: float, ts_ms: int, metric: str) -> bytes:
    """A deliberately invalid payload: broken JSON, an unknown metric or a number as text."""
    if u < 0.34:
        return f'{{"ts":{ts_ms},"values":{{"{metric}":1'.encode()  # truncated
    if u < 0.67:
        return f'{{"ts":{ts_ms},"values":{{"battery_v":3.71}}}}'.encode()  # unknown metric
    return f'{{"ts":{ts_ms},"values":{{"{metric}":"12,5"}}}}'.encode()  # decimal comma text


def live_messages(stream: LiveStream, until: float, step: float = 60.0) -> list[Message]:
    """All messages up to ``until`` in steps (the result does not depend on ``step``)."""
    out: list[Message] = []
    t = stream.t
    while t < until:
        t = min(until, t + step)
        out.extend(stream.advance(t))
    return out


# --------------------------------------------------------------------------------- history
def history_offset(dev: Device, interval: float, spread: float | None = None) -> float:
    """How long before each multiple of ``interval`` the device's history reading falls:
    spread over ``spread`` (at most ``interval``), by the device's phase."""
    return dev.phase * (interval if spread is None else min(spread, interval))


def history_times(
    dev: Device, t0: float, t1: float, interval: float, spread: float | None = None
) -> F64:
    """The history's reading times in ``[t0, t1)``: one every ``interval``, each within
    ``spread`` before a multiple of ``interval`` (so before every hour end too).

    History is thinner than live data (every 15 min instead of every minute). A device that
    is up is seen within ``offline_factor`` x its own interval before any instant; the sensor
    uptime KPI samples at hour ends. Readings spread over the whole 15 minutes would leave
    most up devices unseen at those instants (the demo's day showed 25 % uptime); spread
    within that window before each grid instant, they are seen, as live ones would be."""
    off = history_offset(dev, interval, spread)
    first = math.ceil((t0 + off) / interval)
    last = math.ceil((t1 + off) / interval)
    return np.arange(first, last, dtype=np.float64) * interval - off


def history_messages(
    cfg: Config,
    profiles: dict[str, WardProfile],
    devices: Sequence[Device],
    *,
    seed: int,
    t0: float,
    t1: float,
    interval: float,
    faults: FaultPlan,
    prefix: str,
    stats: Stats,
    per_type: dict[str, float] | None = None,
) -> Iterator[Message]:
    """History of ``[t0, t1)`` device by device: arrays of readings, then isolated bad ones.

    Faults in history: offline gaps (no readings), stuck values, valid spikes, small clock skew
    and, as separate single-reading messages, out-of-range readings and malformed payloads.
    """
    fmt = Formatter(cfg)
    per_type = per_type or {}
    factor = cfg.kpis.scheduler.offline_factor
    for dev in devices:
        iv = per_type.get(dev.type, interval)
        dtype = cfg.sensors.device_types.get(dev.type)
        # within the window in which the uptime KPI finds a reading of an up device
        spread = 0.9 * factor * dtype.interval_s if dtype is not None else None
        t = history_times(dev, t0, t1, iv, spread)
        if t.size == 0:
            continue
        idx = np.round((t + history_offset(dev, iv, spread)) / iv).astype(np.int64)
        keep = np.ones(t.size, dtype=bool)
        for ep in faults.episodes("offline", dev, t0, t1):
            keep &= ~((t >= ep.start) & (t < ep.end))
            stats.faults[f"history_offline_{ep.mode}"] += 1
        tv = t.copy()
        for ep in faults.episodes("stuck", dev, t0, t1):
            mask = (t >= ep.start) & (t < ep.end)
            if mask.any():
                tv[mask] = t[mask][0]
                stats.faults["history_stuck"] += 1
        ts = t.copy()
        for ep in faults.episodes("skew", dev, t0, t1):
            if ep.mode == "ok":
                mask = (t >= ep.start) & (t < ep.end)
                ts[mask] += ep.value
                stats.faults["history_skew"] += int(mask.any())
        vals = fmt.clip(dev, device_values(dev, profiles[dev.ward], tv, seed))
        names = list(fmt.ranges[dev.type])
        topic = dev.topic(prefix, "telemetry")
        conn = f"gw-{dev.ward}"
        ts_ms = np.round(ts * 1000).astype(np.int64)
        special: dict[int, str] = {}
        if faults.enabled:
            ku, du = faults.reading(dev, idx, salt="history")
            for j in np.flatnonzero(ku < faults.threshold):
                kind = faults.reading_kind(float(ku[j]))
                if kind is not None and keep[j]:
                    special[int(j)] = kind
        strs = fmt.columns(names, vals)
        tmpl = fmt.template(names)
        items: list[str] = []
        singles: list[Message] = []
        ts_s = ts_ms.astype(str)
        for j in np.flatnonzero(keep):
            kind = special.get(int(j))
            if kind is None:
                items.append(tmpl.format(ts_s[j], *(c[j] for c in strs)))
                continue
            row = {n: float(vals[n][j]) for n in names}
            pick = names[int(du[j] * len(names)) % len(names)]
            lo, hi = fmt.ranges[dev.type][pick]
            if kind == "spike":
                row[pick] = min(hi, max(lo, row[pick] * 2.5 + 0.2 * (hi - lo)))
                stats.faults["spike"] += 1
                items.append(fmt.item(int(ts_ms[j]), row))
            elif kind == "out_of_range":
                row[pick] = hi + 0.5 * (hi - lo)
                payload = fmt.item(int(ts_ms[j]), row).encode()
                singles.append(
                    Message(
                        t1,
                        conn,
                        topic,
                        payload,
                        fault="out_of_range",
                        valid=False,
                        device=dev.id,
                        readings=1,
                    )
                )
            else:
                payload = _malformed(float(du[j]), int(ts_ms[j]), pick)
                singles.append(
                    Message(t1, conn, topic, payload, fault="malformed", valid=False, device=dev.id)
                )
        for chunk, n in _pack(items):
            m = Message(t1, conn, topic, chunk, device=dev.id, readings=n)
            stats.add(m)
            yield m
        for m in singles:
            stats.add(m)
            yield m


def _pack(items: list[str]) -> Iterator[tuple[bytes, int]]:
    """JSON arrays of at most MAX_ITEMS items and MAX_BYTES bytes."""
    start = 0
    while start < len(items):
        size = 2
        end = start
        while end < len(items) and end - start < MAX_ITEMS:
            add = len(items[end]) + 1
            if size + add > MAX_BYTES and end > start:
                break
            size += add
            end += 1
        yield ("[" + ",".join(items[start:end]) + "]").encode(), end - start
        start = end


def history_app_messages(
    model: ArrivalModel,
    profiles: Sequence[WardProfile],
    *,
    seed: int,
    t0: float,
    t1: float,
    prefix: str,
    stats: Stats,
) -> Iterator[Message]:
    for ward in profiles:  # ward by ward, so the publisher keeps servicing its connections
        yield from _app_messages(model, ward, seed, t0, t1, prefix, stats)


def _app_messages(
    model: ArrivalModel,
    ward: WardProfile,
    seed: int,
    t0: float,
    t1: float,
    prefix: str,
    stats: Stats,
) -> Iterator[Message]:
    for ev in events_between(model, [ward], t0, t1, seed, received_from=t0):
        payload = json.dumps(ev.payload(), ensure_ascii=False, separators=(",", ":")).encode()
        m = Message(ev.t, f"gw-{ev.ward}", f"{prefix}/{ev.ward}/applications", payload)
        stats.add(m)
        stats.events += 1
        yield m
