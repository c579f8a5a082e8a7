"""SLA clocks: hours of office time on working days, or round the clock (pure functions).

Office time is the working hours of a day (``working_hours`` of categories.yaml, else of
incidents.yaml; by default 7:30-11:30 and 13:30-17:00 local) on working days (Monday-Friday,
minus holidays.yaml days off, plus worked weekends). A clock started out of office time starts
at the next office hour: an incident opened on Saturday with 4 working hours to go is due on
Monday at 11:30.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from ioc.workdays import LOCAL_TZ, Holidays

Span = tuple[dt.time, dt.time]


def parse_spans(pairs: Sequence[Sequence[str]]) -> tuple[Span, ...]:
    out = []
    for a, b in pairs:
        ha, ma = (int(x) for x in a.split(":"))
        hb, mb = (int(x) for x in b.split(":"))
        end = dt.time(23, 59, 59, 999999) if (hb, mb) == (24, 0) else dt.time(hb, mb)
        out.append((dt.time(ha, ma), end))
    return tuple(sorted(out))


@dataclass(frozen=True)
class Clock:
    """Working-time arithmetic for one SLA clock."""

    holidays: Holidays = field(default_factory=Holidays)
    spans: tuple[Span, ...] = ((dt.time(7, 30), dt.time(11, 30)), (dt.time(13, 30), dt.time(17)))
    continuous: bool = False

    def _day_spans(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        if not self.holidays.is_working_day(day):
            return []
        return [
            (
                dt.datetime.combine(day, a, LOCAL_TZ),
                dt.datetime.combine(day, b, LOCAL_TZ),
            )
            for a, b in self.spans
        ]

    def add_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The instant when ``hours`` of clock time have run from ``start`` (aware)."""
        if hours < 0:
            raise ValueError("hours must be >= 0")
        if self.continuous:
            return start + dt.timedelta(hours=hours)
        left = dt.timedelta(hours=hours)
        cur = start.astimezone(LOCAL_TZ)
        day = cur.date()
        for _ in range(3660):
            for a, b in self._day_spans(day):
                if b <= cur:
                    continue
                a = max(a, cur)
                if b - a >= left:
                    return (a + left).astimezone(start.tzinfo)
                left -= b - a
            day += dt.timedelta(days=1)
        raise ValueError("no working time within ten years")

    def hours_between(self, a: dt.datetime, b: dt.datetime) -> float:
        """Clock hours from ``a`` to ``b`` (negative when ``b < a``)."""
        if b < a:
            return -self.hours_between(b, a)
        if self.continuous:
            return (b - a).total_seconds() / 3600.0
        la, lb = a.astimezone(LOCAL_TZ), b.astimezone(LOCAL_TZ)
        total = dt.timedelta()
        day = la.date()
        while day <= lb.date():
            for s, e in self._day_spans(day):
                lo, hi = max(s, la), min(e, lb)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total.total_seconds() / 3600.0
