"""Working-day arithmetic across weekends and Vietnamese public holidays (Tết)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.config import Config
from ioc.workdays import (
    LOCAL_TZ,
    Holidays,
    add_working_days,
    is_office_time,
    is_working_day,
    load_holidays,
    next_working_day,
    working_days_between,
)
from tests.conftest import CONFIG_DIR


@pytest.fixture(scope="module")
def hol() -> Holidays:
    return load_holidays(CONFIG_DIR)


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[misc]


def test_holidays_file_loads_through_config(config: Config, hol: Holidays) -> None:
    assert Holidays.of(config.holidays) == hol
    # Tết Bính Ngọ 2026: mùng 1 is 17/02; the break runs Mon 16/02 - Fri 20/02 on weekdays.
    for day in range(16, 21):
        assert not is_working_day(dt.date(2026, 2, day), hol)
    assert is_working_day(dt.date(2026, 2, 13), hol)
    assert is_working_day(dt.date(2026, 2, 23), hol)
    assert hol.names[dt.date(2026, 2, 17)].startswith("Tết Nguyên đán")
    assert is_working_day(dt.date(2025, 4, 26), hol)  # Saturday worked for the 02/05 bridge day
    assert not is_working_day(dt.date(2025, 5, 2), hol)
    assert not is_working_day(dt.date(2025, 9, 1), hol)


def test_weekend_only_calendar() -> None:
    fri = local(2026, 11, 27, 10, 0)
    assert add_working_days(fri, 1) == local(2026, 11, 30, 10, 0)  # Monday
    assert add_working_days(fri, 0.5) == local(2026, 11, 27, 22, 0)
    assert working_days_between(fri, local(2026, 11, 30, 10, 0)) == pytest.approx(1.0)
    assert working_days_between(fri, local(2026, 11, 28, 10, 0)) == pytest.approx(14 / 24)
    assert working_days_between(local(2026, 11, 30, 10, 0), fri) == pytest.approx(-1.0)
    # Received on Saturday: the clock starts Monday 00:00; one day → end of Monday.
    sat = local(2026, 11, 28, 9, 0)
    assert add_working_days(sat, 1) == local(2026, 12, 1, 0, 0)
    assert add_working_days(sat, 0) == sat


def test_across_tet_and_weekend(hol: Holidays) -> None:
    # Thursday 12/02/2026 10:00 + 3 working days: Fri 13, (weekend, Tết 16-20, weekend), Mon 23,
    # Tue 24 → Tuesday 24/02 10:00.
    start = local(2026, 2, 12, 10, 0)
    due = add_working_days(start, 3, hol)
    assert due == local(2026, 2, 24, 10, 0)
    assert working_days_between(start, due, hol) == pytest.approx(3.0)
    # Without the holidays it would be Tuesday 17/02.
    assert add_working_days(start, 3) == local(2026, 2, 17, 10, 0)
    # Nothing is counted during the break.
    assert working_days_between(local(2026, 2, 14), local(2026, 2, 23), hol) == 0.0
    assert next_working_day(dt.date(2026, 2, 14), hol) == dt.date(2026, 2, 23)
    # Tết Ất Tỵ 2025 (27-31/01) and Tết Dương lịch 2025.
    assert add_working_days(local(2025, 1, 24, 8, 0), 1, hol) == local(2025, 2, 3, 8, 0)
    assert add_working_days(local(2024, 12, 31, 12, 0), 1, hol) == local(2025, 1, 2, 12, 0)


def test_aware_utc_and_naive_inputs(hol: Holidays) -> None:
    # 03:00 UTC = 10:00 local; the result keeps the caller's time zone.
    start = dt.datetime(2026, 2, 12, 3, 0, tzinfo=dt.UTC)
    due = add_working_days(start, 3, hol)
    assert due.tzinfo == dt.UTC and due == dt.datetime(2026, 2, 24, 3, 0, tzinfo=dt.UTC)
    naive = add_working_days(dt.datetime(2026, 2, 12, 10, 0), 3, hol)
    assert naive == dt.datetime(2026, 2, 24, 10, 0)
    with pytest.raises(ValueError):
        working_days_between(start, dt.datetime(2026, 2, 13), hol)
    with pytest.raises(ValueError):
        add_working_days(start, -1, hol)


def test_office_hours(hol: Holidays) -> None:
    assert is_office_time(local(2026, 11, 25, 7, 30), hol)
    assert not is_office_time(local(2026, 11, 25, 12, 0), hol)
    assert not is_office_time(local(2026, 11, 25, 17, 0), hol)
    assert not is_office_time(local(2026, 11, 28, 9, 0), hol)  # Saturday
    assert not is_office_time(local(2026, 2, 17, 9, 0), hol)  # mùng 1 Tết


def test_count_matches_day_by_day(hol: Holidays) -> None:
    first = dt.date(2024, 1, 1)
    for span in (0, 1, 6, 7, 40, 400, 1460):
        stop = first + dt.timedelta(days=span)
        slow = sum(
            hol.is_working_day(first + dt.timedelta(days=i)) for i in range((stop - first).days)
        )
        assert hol.count_working_days(first, stop) == slow


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 10, 1)),
    days=st.floats(min_value=0, max_value=60, allow_nan=False),
)
def test_add_is_inverse_of_between(start: dt.datetime, days: float) -> None:
    hol = load_holidays(CONFIG_DIR)
    due = add_working_days(start, days, hol)
    assert due >= start
    assert working_days_between(start, due, hol) == pytest.approx(days, abs=1e-6)
    if days > 0:
        # Earliest: a second earlier is not enough.
        assert working_days_between(start, due - dt.timedelta(seconds=1), hol) < days
