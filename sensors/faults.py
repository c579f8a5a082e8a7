"""Injected faults: pure functions of (seed, device, time), so a fault is known in advance.

Episodes are drawn per time slot and device (a hash decides whether the slot has one, when it
starts and how long it lasts):

* ``offline`` (6-hour slots): the device sends nothing from start to end. Mode ``will``
  (stations with their own connection: the connection drops, the broker publishes the last
  will ``offline``), ``status`` (gateway devices: the gateway publishes ``offline``) or
  ``silent`` (nothing at all: a hung device; only silence tells). ``online`` when it is back;
* ``stuck`` (daily): the same values are repeated for hours;
* ``skew`` (daily): timestamps off by 20-240 s (still accepted), or, for a share of episodes,
  15-60 min ahead (rejected as in the future);
* ``late`` (6-hour slots): readings are held back and sent later as one array (store-and-forward);
* per reading: ``spike`` (an implausible but valid value), ``out_of_range`` (rejected) and
  ``malformed`` payloads (bad JSON, an unknown metric, a number written as text — rejected).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensors.fleet import Device
from sensors.rand import F64, key64, uniform
from sensors.settings import FaultsSection

HOUR = 3600.0
SLOT6 = 6 * HOUR
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class Episode:
    start: float
    end: float
    mode: str = ""
    value: float = 0.0

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


class FaultPlan:
    """Which faults hit which device when; everything off when ``enabled`` is false."""

    def __init__(self, seed: int, faults: FaultsSection, enabled: bool = True) -> None:
        self.seed = seed
        self.f = faults
        self.enabled = enabled
        self._cache: dict[tuple[str, str, int], Episode | None] = {}

    # -- episodes ----------------------------------------------------------------------------
    def _episode(self, kind: str, dev: Device, slot: int) -> Episode | None:
        ck = (kind, dev.id, slot)
        if ck in self._cache:
            return self._cache[ck]
        if len(self._cache) > 400_000:
            self._cache.clear()
        ep = self._draw(kind, dev, slot)
        self._cache[ck] = ep
        return ep

    def _draw(self, kind: str, dev: Device, slot: int) -> Episode | None:
        u = uniform(key64(self.seed, kind, dev.id), np.arange(slot * 8, slot * 8 + 5))
        return self._from_u(kind, dev, slot, [float(x) for x in u])

    def _from_u(self, kind: str, dev: Device, slot: int, u: list[float]) -> Episode | None:
        f = self.f
        if kind == "offline":
            if u[0] >= f.offline_per_day / 4:
                return None
            start = slot * SLOT6 + u[1] * SLOT6
            dur = 600 + (u[2] ** 2) * 4 * HOUR
            if dev.direct:
                mode = "will" if u[3] < 0.65 else "silent"
            else:
                mode = "status" if u[3] < 0.6 else "silent"
            return Episode(start, start + dur, mode)
        if kind == "stuck":
            if u[0] >= f.stuck_per_day:
                return None
            start = slot * DAY + u[1] * DAY
            return Episode(start, start + HOUR + 7 * HOUR * u[2])
        if kind == "skew":
            if u[0] >= f.skew_per_day:
                return None
            start = slot * DAY + u[1] * DAY
            if u[3] < f.future_skew_share:
                offset = 900 + 2700 * u[4]
                mode = "future"
            else:
                offset = (20 + 220 * u[4]) * (1 if u[4] * 1000 % 2 < 1 else -1)
                mode = "ok"
            return Episode(start, start + 2 * HOUR + 10 * HOUR * u[2], mode, offset)
        if kind == "late":
            if u[0] >= f.late_per_day / 4:
                return None
            start = slot * SLOT6 + u[1] * SLOT6
            return Episode(start, start + 300 + 2100 * u[2])
        raise ValueError(kind)

    def _find(self, kind: str, dev: Device, t: float, slot_len: float, back: int) -> Episode | None:
        if not self.enabled:
            return None
        s = math.floor(t / slot_len)
        for k in range(s, s - back - 1, -1):
            ep = self._episode(kind, dev, k)
            if ep is not None and ep.covers(t):
                return ep
        return None

    def offline(self, dev: Device, t: float) -> Episode | None:
        return self._find("offline", dev, t, SLOT6, 1)

    def stuck(self, dev: Device, t: float) -> Episode | None:
        return self._find("stuck", dev, t, DAY, 1)

    def skew(self, dev: Device, t: float) -> Episode | None:
        return self._find("skew", dev, t, DAY, 1)

    def late(self, dev: Device, t: float) -> Episode | None:
        return self._find("late", dev, t, SLOT6, 1)

    def episodes(self, kind: str, dev: Device, t0: float, t1: float) -> list[Episode]:
        """Episodes of ``kind`` overlapping ``[t0, t1)``."""
        if not self.enabled:
            return []
        slot_len = SLOT6 if kind in ("offline", "late") else DAY
        slots = np.arange(math.floor(t0 / slot_len) - 1, math.floor(t1 / slot_len) + 1)
        u = uniform(key64(self.seed, kind, dev.id), slots[:, None] * 8 + np.arange(5)[None, :])
        out = []
        for row, k in zip(u, slots, strict=True):
            if row[0] >= 0.5:  # no kind of episode is that likely: skip the slow path
                continue
            ep = self._from_u(kind, dev, int(k), [float(x) for x in row])
            if ep is not None and ep.end > t0 and ep.start < t1:
                out.append(ep)
        return out

    # -- per reading -------------------------------------------------------------------------
    def reading(self, dev: Device, index: npt_like, salt: str = "live") -> tuple[F64, F64]:
        """(kind uniform, detail uniform) per reading index."""
        key = key64(self.seed, "reading", salt, dev.id)
        idx = np.asarray(index, dtype=np.int64)
        return uniform(key, idx * 2), uniform(key, idx * 2 + 1)

    @property
    def threshold(self) -> float:
        """Kind uniforms below this are faulty readings."""
        f = self.f
        return f.malformed_per_reading + f.out_of_range_per_reading + f.spike_per_reading

    def reading_kind(self, u: float) -> str | None:
        """None, 'spike', 'out_of_range' or 'malformed' for a reading's kind uniform."""
        if not self.enabled:
            return None
        f = self.f
        if u < f.malformed_per_reading:
            return "malformed"
        u -= f.malformed_per_reading
        if u < f.out_of_range_per_reading:
            return "out_of_range"
        u -= f.out_of_range_per_reading
        if u < f.spike_per_reading:
            return "spike"
        return None


npt_like = int | np.ndarray | list[int]
