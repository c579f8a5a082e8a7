"""Working-day arithmetic for legal processing times (weekends and Vietnamese public holidays).

Pure functions, no I/O except :func:`load_holidays`. The model is *working time*: every working
day counts as 24 working hours (local midnight to midnight, Asia/Ho_Chi_Minh, UTC+7 all year),
every other day counts as nothing. So

* ``working_days_between(a, b)`` is the working time from ``a`` to ``b`` in days (negative when
  ``b < a``): Friday 10:00 → Monday 10:00 is 1.0, Friday 10:00 → Saturday 10:00 is 0.5833
  (14 h of Friday);
* ``add_working_days(start, days)`` is its inverse: the earliest instant ``t`` with
  ``working_days_between(start, t) == days``. A start on a day off counts from the next working
  day's midnight: received on Saturday with 1 working day to go → due at the end of Monday.

A *working day* is Monday-Friday unless listed in ``holidays.yaml`` ``holidays``, plus any
Saturday/Sunday listed in ``working_weekends`` (worked in exchange for a bridge day).

Datetimes may be aware (any zone; the result keeps ``start``'s zone) or naive (taken as local
time, result naive local). ``holidays`` arguments accept a :class:`Holidays`, the
``HolidaysFile`` model (``cfg.holidays``), an iterable of dates, or ``None`` (weekends only).

Office hours (7:30-11:30, 13:30-17:00 local) are given by :data:`OFFICE_HOURS` and
:func:`is_office_time` for callers that need them; they do not change the day arithmetic.

*Working hours* are a second model, for limits counted in hours (citizen reports): only office
hours of working days count (:class:`WorkCalendar`: ``categories.yaml`` ``working_hours`` and
``holidays.yaml``). ``working_hours_between(a, b, cal)`` and its inverse
``add_working_hours(start, hours, cal)``: Friday 16:00 + 4 working hours = Monday 10:30.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ioc.config.procedures import HolidaysFile
from ioc.localtime import LOCAL_TZ

__all__ = [
    "LOCAL_TZ",
    "OFFICE_HOURS",
    "Holidays",
    "WorkCalendar",
    "add_working_days",
    "add_working_hours",
    "is_office_time",
    "is_working_day",
    "load_holidays",
    "next_working_day",
    "work_calendar",
    "working_days_between",
    "working_days_due",
    "working_hours_between",
]

DAY_S = 86400.0
OFFICE_HOURS: tuple[tuple[dt.time, dt.time], ...] = (
    (dt.time(7, 30), dt.time(11, 30)),
    (dt.time(13, 30), dt.time(17, 0)),
)


@dataclass(frozen=True)
class Holidays:
    """Weekdays off and weekend days worked; build with :meth:`of` or :func:`load_holidays`."""

    days_off: frozenset[dt.date] = frozenset()
    working_weekends: frozenset[dt.date] = frozenset()
    names: dict[dt.date, str] = field(default_factory=dict, compare=False)
    _off_sorted: tuple[dt.date, ...] = field(default=(), compare=False, repr=False)
    _work_sorted: tuple[dt.date, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_off_sorted", tuple(sorted(self.days_off)))
        object.__setattr__(self, "_work_sorted", tuple(sorted(self.working_weekends)))

    @classmethod
    def of(cls, value: HolidaysLike) -> Holidays:
        """Normalise any accepted ``holidays`` argument to a :class:`Holidays`."""
        if value is None:
            return _NO_HOLIDAYS
        if isinstance(value, Holidays):
            return value
        if isinstance(value, HolidaysFile):
            return cls(
                days_off=frozenset(h.date for h in value.holidays),
                working_weekends=frozenset(value.working_weekends),
                names={h.date: h.name for h in value.holidays},
            )
        return cls(days_off=frozenset(_as_date(d) for d in value))

    def is_working_day(self, day: dt.date) -> bool:
        if day.weekday() >= 5:
            return day in self.working_weekends
        return day not in self.days_off

    def count_working_days(self, first: dt.date, stop: dt.date) -> int:
        """Working days in ``[first, stop)`` (0 when ``stop <= first``)."""
        n = (stop - first).days
        if n <= 0:
            return 0
        weeks, rest = divmod(n, 7)
        count = 5 * weeks
        wd = first.weekday()
        for i in range(rest):
            if (wd + i) % 7 < 5:
                count += 1
        count -= _count_between(self._off_sorted, first, stop, weekdays=True)
        count += _count_between(self._work_sorted, first, stop, weekdays=False)
        return count


HolidaysLike = Holidays | HolidaysFile | Iterable[dt.date] | None
_NO_HOLIDAYS = Holidays()


def _count_between(days: tuple[dt.date, ...], first: dt.date, stop: dt.date, weekdays: bool) -> int:
    lo = bisect.bisect_left(days, first)
    hi = bisect.bisect_left(days, stop)
    return sum(1 for d in days[lo:hi] if (d.weekday() < 5) == weekdays)


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    if isinstance(value, dt.datetime):
        return _to_local(value).date()
    return value


def _to_local(ts: dt.datetime) -> dt.datetime:
    """Naive local wall time (naive input is already local)."""
    if ts.tzinfo is None:
        return ts
    return ts.astimezone(LOCAL_TZ).replace(tzinfo=None)


def _from_local(local: dt.datetime, like: dt.datetime) -> dt.datetime:
    if like.tzinfo is None:
        return local
    return local.replace(tzinfo=LOCAL_TZ).astimezone(like.tzinfo)


def load_holidays(path: Path | str) -> Holidays:
    """Load ``holidays.yaml`` (a file, or a config folder holding one); missing file → none."""
    from ioc.config.loader import load_yaml, validate

    p = Path(path)
    if p.is_dir():
        p = p / "holidays.yaml"
    if not p.exists():
        return _NO_HOLIDAYS
    return Holidays.of(validate(load_yaml(p), HolidaysFile))


def is_working_day(day: dt.date | dt.datetime, holidays: HolidaysLike = None) -> bool:
    """Whether ``day`` (a date, or the local date of a datetime) is a working day."""
    return Holidays.of(holidays).is_working_day(_as_date(day))


def next_working_day(day: dt.date | dt.datetime, holidays: HolidaysLike = None) -> dt.date:
    """The first working day on or after ``day``."""
    cal = Holidays.of(holidays)
    d = _as_date(day)
    for _ in range(366):
        if cal.is_working_day(d):
            return d
        d += dt.timedelta(days=1)
    raise ValueError(f"no working day within a year after {day}")


def is_office_time(ts: dt.datetime, holidays: HolidaysLike = None) -> bool:
    """Whether ``ts`` falls in office hours (7:30-11:30, 13:30-17:00 local) of a working day."""
    local = _to_local(ts)
    if not Holidays.of(holidays).is_working_day(local.date()):
        return False
    t = local.time()
    return any(a <= t < b for a, b in OFFICE_HOURS)


def _working_seconds(a: dt.datetime, b: dt.datetime, cal: Holidays) -> float:
    """Working seconds in ``[a, b]`` for naive local ``a <= b``."""
    da, db = a.date(), b.date()
    if da == db:
        return (b - a).total_seconds() if cal.is_working_day(da) else 0.0
    total = 0.0
    if cal.is_working_day(da):
        total += (dt.datetime.combine(da + dt.timedelta(days=1), dt.time()) - a).total_seconds()
    total += DAY_S * cal.count_working_days(da + dt.timedelta(days=1), db)
    if cal.is_working_day(db):
        total += (b - dt.datetime.combine(db, dt.time())).total_seconds()
    return total


def working_days_between(a: dt.datetime, b: dt.datetime, holidays: HolidaysLike = None) -> float:
    """Working time from ``a`` to ``b`` in (fractional) working days; negative if ``b < a``.

    Both must be aware, or both naive (local time).
    """
    if (a.tzinfo is None) != (b.tzinfo is None):
        raise ValueError("working_days_between: mix of naive and aware datetimes")
    cal = Holidays.of(holidays)
    la, lb = _to_local(a), _to_local(b)
    if lb < la:
        return -_working_seconds(lb, la, cal) / DAY_S
    return _working_seconds(la, lb, cal) / DAY_S


def add_working_days(start: dt.datetime, days: float, holidays: HolidaysLike = None) -> dt.datetime:
    """The earliest instant ``days`` working days after ``start`` (``days >= 0``).

    ``add_working_days(Fri 10:00, 1) == Mon 10:00``; with 0 days the result is ``start``.
    """
    if days < 0:
        raise ValueError(f"add_working_days: days must be >= 0 (got {days})")
    cal = Holidays.of(holidays)
    remaining = float(days) * DAY_S
    cur = _to_local(start)
    if remaining == 0:
        return start
    day = cur.date()
    if cal.is_working_day(day):
        avail = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) - cur).total_seconds()
        if remaining <= avail:
            return _from_local(cur + dt.timedelta(seconds=remaining), start)
        remaining -= avail
    # Whole working days from the next day on: the k-th working day holds the end.
    k = int(-(-remaining // DAY_S))  # ceil, >= 1
    d = day + dt.timedelta(days=1)
    found = 0
    for _ in range(k * 7 + 400):
        if cal.is_working_day(d):
            found += 1
            if found == k:
                break
        d += dt.timedelta(days=1)
    else:  # pragma: no cover - only with a calendar of days off for a whole year
        raise ValueError("add_working_days: no working days in the calendar")
    end = dt.datetime.combine(d, dt.time()) + dt.timedelta(seconds=remaining - (k - 1) * DAY_S)
    return _from_local(end, start)


# -- working hours (office hours of working days) -------------------------------------------------

Periods = tuple[tuple[dt.time, dt.time], ...]


@dataclass(frozen=True)
class WorkCalendar:
    """Working days (:class:`Holidays`) and the office hours of each: what working-hour time
    limits count (citizen reports: ``categories.yaml`` ``working_hours`` + ``holidays.yaml``)."""

    holidays: Holidays = field(default_factory=Holidays)
    periods: Periods = OFFICE_HOURS

    def __post_init__(self) -> None:
        if not self.periods:
            raise ValueError("WorkCalendar: at least one office-hours period is needed")
        for a, b in self.periods:
            if b <= a:
                raise ValueError(f"WorkCalendar: period {a}-{b} ends before it starts")

    @classmethod
    def of(cls, value: CalendarLike) -> WorkCalendar:
        if isinstance(value, WorkCalendar):
            return value
        return cls(holidays=Holidays.of(value))

    @property
    def seconds_per_day(self) -> float:
        return sum(_secs(b) - _secs(a) for a, b in self.periods)

    def day_seconds_until(self, t: dt.time) -> float:
        """Office seconds of one working day before the time of day ``t``."""
        s = _secs(t)
        return sum(max(0.0, min(s, _secs(b)) - _secs(a)) for a, b in self.periods)


CalendarLike = WorkCalendar | HolidaysLike


def _secs(t: dt.time) -> float:
    if t == dt.time.max:
        return DAY_S
    return t.hour * 3600.0 + t.minute * 60.0 + t.second + t.microsecond / 1e6


def work_calendar(categories: object | None, holidays: HolidaysLike = None) -> WorkCalendar:
    """The calendar of ``categories.yaml`` (``cfg.categories``: its ``periods()``) and
    ``holidays.yaml`` (``cfg.holidays``); office hours default to :data:`OFFICE_HOURS`."""
    periods = getattr(categories, "periods", None)
    return WorkCalendar(
        holidays=Holidays.of(holidays), periods=periods() if periods else OFFICE_HOURS
    )


def _office_seconds(a: dt.datetime, b: dt.datetime, cal: WorkCalendar) -> float:
    """Office seconds in ``[a, b]`` for naive local ``a <= b``."""
    hol = cal.holidays
    da, db = a.date(), b.date()
    if da == db:
        if not hol.is_working_day(da):
            return 0.0
        return cal.day_seconds_until(b.time()) - cal.day_seconds_until(a.time())
    total = 0.0
    if hol.is_working_day(da):
        total += cal.seconds_per_day - cal.day_seconds_until(a.time())
    total += cal.seconds_per_day * hol.count_working_days(da + dt.timedelta(days=1), db)
    if hol.is_working_day(db):
        total += cal.day_seconds_until(b.time())
    return total


def working_hours_between(a: dt.datetime, b: dt.datetime, cal: CalendarLike = None) -> float:
    """Office hours of working days from ``a`` to ``b`` (negative if ``b < a``).

    Friday 16:00 → Monday 08:30 is 2.0 with the default hours (7:30-11:30, 13:30-17:00).
    Both must be aware, or both naive (local time).
    """
    if (a.tzinfo is None) != (b.tzinfo is None):
        raise ValueError("working_hours_between: mix of naive and aware datetimes")
    wc = WorkCalendar.of(cal)
    la, lb = _to_local(a), _to_local(b)
    if lb < la:
        return -_office_seconds(lb, la, wc) / 3600.0
    return _office_seconds(la, lb, wc) / 3600.0


def _at_office_seconds(day: dt.date, offset: float, cal: WorkCalendar) -> dt.datetime:
    """The instant of ``day`` after ``offset`` office seconds of it (0 < offset <= a day's)."""
    left = offset
    for a, b in cal.periods:
        length = _secs(b) - _secs(a)
        if left <= length:
            return dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=_secs(a) + left)
        left -= length
    a, b = cal.periods[-1]  # pragma: no cover - offset never exceeds a day's office time
    return dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=_secs(b))


def add_working_hours(start: dt.datetime, hours: float, cal: CalendarLike = None) -> dt.datetime:
    """The earliest instant ``hours`` office hours after ``start`` (``hours >= 0``).

    ``add_working_hours(Fri 16:00, 4) == Mon 10:30`` with the default hours; a start outside
    office hours counts from the next opening. With 0 hours the result is ``start``. The
    result keeps ``start``'s zone (naive in, naive local out).
    """
    if hours < 0:
        raise ValueError(f"add_working_hours: hours must be >= 0 (got {hours})")
    if hours == 0:
        return start
    wc = WorkCalendar.of(cal)
    per_day = wc.seconds_per_day
    remaining = float(hours) * 3600.0
    cur = _to_local(start)
    day = cur.date()
    if wc.holidays.is_working_day(day):
        used = wc.day_seconds_until(cur.time())
        avail = per_day - used
        if remaining <= avail:
            return _from_local(_at_office_seconds(day, used + remaining, wc), start)
        remaining -= avail
    k = int(-(-remaining // per_day))  # the k-th working day after ``day`` holds the end
    d = day + dt.timedelta(days=1)
    found = 0
    for _ in range(k * 7 + 400):
        if wc.holidays.is_working_day(d):
            found += 1
            if found == k:
                break
        d += dt.timedelta(days=1)
    else:  # pragma: no cover - only with a calendar of days off for a whole year
        raise ValueError("add_working_hours: no working days in the calendar")
    return _from_local(_at_office_seconds(d, remaining - (k - 1) * per_day, wc), start)


def working_days_due(start: dt.datetime, days: float, cal: CalendarLike = None) -> dt.datetime:
    """The due time of a limit of ``days`` working days from ``start``: the closing time (the
    end of the last office-hours period) of the day the limit runs out, as a citizen reads it.
    Received Sunday 15:00 with 3 working days → Wednesday 17:00 (Monday-Wednesday)."""
    wc = WorkCalendar.of(cal)
    end = _to_local(add_working_days(start, days, wc.holidays))
    day = end.date() if end.time() != dt.time() else end.date() - dt.timedelta(days=1)
    close = wc.periods[-1][1]
    local = dt.datetime.combine(day, close if close != dt.time.max else dt.time(23, 59, 59))
    return _from_local(local, start)
