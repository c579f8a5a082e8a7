"""Reporting periods (hour, day, week, month) on the local calendar (Asia/Ho_Chi_Minh).

Every boundary is an aware datetime at a local boundary (midnight, Monday, first of the
month); it is stored as timestamptz (UTC) in ``kpi_values.period_start``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

PERIODS = ("hour", "day", "week", "month")


def floor(ts: dt.datetime, period: str, tz: ZoneInfo) -> dt.datetime:
    """Start of the period containing ``ts`` (aware), in ``tz``."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime")
    local = ts.astimezone(tz)
    if period == "hour":
        local = local.replace(minute=0, second=0, microsecond=0)
    elif period == "day":
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif period == "week":
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        local = local - dt.timedelta(days=local.weekday())
    elif period == "month":
        local = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"unknown period {period!r}")
    # re-attach the zone so that the offset is the one valid at the boundary
    return local.replace(tzinfo=None).replace(tzinfo=tz)


def next_start(start: dt.datetime, period: str, tz: ZoneInfo) -> dt.datetime:
    """Start of the period after the one starting at ``start``."""
    local = start.astimezone(tz).replace(tzinfo=None)
    if period == "hour":
        return (start + dt.timedelta(hours=1)).astimezone(tz)
    if period == "day":
        nxt = local + dt.timedelta(days=1)
    elif period == "week":
        nxt = local + dt.timedelta(days=7)
    elif period == "month":
        nxt = local.replace(year=local.year + local.month // 12, month=local.month % 12 + 1)
    else:
        raise ValueError(f"unknown period {period!r}")
    return nxt.replace(tzinfo=tz)


def prev_start(start: dt.datetime, period: str, tz: ZoneInfo) -> dt.datetime:
    """Start of the period before the one starting at ``start``."""
    return floor(start - dt.timedelta(seconds=1), period, tz)


def iter_periods(
    first: dt.datetime, last: dt.datetime, period: str, tz: ZoneInfo
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """(start, end) of every period whose start lies in [floor(first), last], in order."""
    start = floor(first, period, tz)
    while start <= last:
        end = next_start(start, period, tz)
        yield start, end
        start = end


def back(ts: dt.datetime, period: str, n: int, tz: ZoneInfo) -> dt.datetime:
    """Start of the period ``n`` periods before the one containing ``ts``."""
    start = floor(ts, period, tz)
    for _ in range(n):
        start = prev_start(start, period, tz)
    return start
