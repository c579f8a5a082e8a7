"""Working-hour arithmetic (citizen-report time limits): office hours of working days only,
across lunch, a weekend and Vietnamese public holidays (config/holidays.yaml)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.config import ConfigError, load_config
from ioc.workdays import (
    LOCAL_TZ,
    WorkCalendar,
    add_working_days,
    add_working_hours,
    load_holidays,
    work_calendar,
    working_hours_between,
)
from tests.conftest import CONFIG_DIR


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    cfg = load_config(CONFIG_DIR)
    return work_calendar(cfg.report_categories(), cfg.holidays)


def L(*args: int) -> dt.datetime:  # a local time, short for the tables below
    return dt.datetime(*args, tzinfo=LOCAL_TZ)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (L(2026, 12, 8, 9, 0), 2, L(2026, 12, 8, 11, 0)),  # same morning
        (L(2026, 12, 8, 11, 0), 1, L(2026, 12, 8, 14, 0)),  # over lunch
        (L(2026, 12, 8, 12, 0), 1, L(2026, 12, 8, 14, 30)),  # starts at lunch
        (L(2026, 12, 8, 7, 30), 4, L(2026, 12, 8, 11, 30)),  # ends exactly at a closing
        (L(2026, 12, 8, 6, 0), 7.5, L(2026, 12, 8, 17, 0)),  # before opening: a whole day
        (L(2026, 12, 8, 18, 0), 1, L(2026, 12, 9, 8, 30)),  # evening: next morning
        (L(2026, 12, 4, 16, 0), 4, L(2026, 12, 7, 10, 30)),  # Friday → Monday (weekend)
        (L(2026, 12, 5, 10, 0), 1, L(2026, 12, 7, 8, 30)),  # received on Saturday
        # 30/4 and 1/5 (Thursday, Friday) then the weekend: Wednesday → Monday 4 May
        (L(2026, 4, 29, 16, 0), 4, L(2026, 5, 4, 10, 30)),
        # Quốc khánh 1-2/9/2026 (Tuesday, Wednesday): Monday 15:00 + 8 h → Thursday 15:30
        (L(2026, 8, 31, 15, 0), 8, L(2026, 9, 3, 15, 30)),
        # Tết 2026: Friday 13/2 16:00, break to Sunday 22/2 → Monday 23/2
        (L(2026, 2, 13, 16, 0), 3, L(2026, 2, 23, 9, 30)),
        (L(2026, 12, 8, 9, 0), 0, L(2026, 12, 8, 9, 0)),
        (L(2026, 12, 7, 7, 30), 15, L(2026, 12, 8, 17, 0)),  # two days: 7.5 + 7.5
    ],
)
def test_add_working_hours(cal: WorkCalendar, start: dt.datetime, hours: float, due: dt.datetime):
    got = add_working_hours(start, hours, cal)
    assert got == due, (start, hours, got)
    assert working_hours_between(start, got, cal) == pytest.approx(hours)


def test_between_and_zones(cal: WorkCalendar) -> None:
    # Friday 16:00 → Monday 8:30: 1 h Friday + 1 h Monday
    assert working_hours_between(L(2026, 12, 4, 16, 0), L(2026, 12, 7, 8, 30), cal) == 2.0
    assert working_hours_between(L(2026, 12, 7, 8, 30), L(2026, 12, 4, 16, 0), cal) == -2.0
    # a whole week of 5 working days, 7.5 office hours each
    assert working_hours_between(L(2026, 12, 7, 0, 0), L(2026, 12, 14, 0, 0), cal) == 37.5
    # across Quốc khánh: Monday 31/8 0:00 → Friday 4/9 0:00 = Monday + Thursday
    assert working_hours_between(L(2026, 8, 31), L(2026, 9, 4), cal) == 15.0
    # aware UTC in → UTC out; naive local in → naive out
    utc = L(2026, 12, 4, 16, 0).astimezone(dt.UTC)
    due = add_working_hours(utc, 4, cal)
    assert due.tzinfo == dt.UTC and due == L(2026, 12, 7, 10, 30)
    assert add_working_hours(dt.datetime(2026, 12, 4, 16, 0), 4, cal) == dt.datetime(
        2026, 12, 7, 10, 30
    )
    with pytest.raises(ValueError):
        add_working_hours(utc, -1, cal)
    with pytest.raises(ValueError):
        working_hours_between(utc, dt.datetime(2026, 12, 7), cal)


def test_working_days_limit_across_holiday(cal: WorkCalendar) -> None:
    # a 2-working-day limit received Wednesday 29/4/2026 10:00 → Tuesday 5/5 10:00
    assert add_working_days(L(2026, 4, 29, 10, 0), 2, cal.holidays) == L(2026, 5, 5, 10, 0)


def test_other_office_hours() -> None:
    cal = WorkCalendar(load_holidays(CONFIG_DIR), ((dt.time(8, 0), dt.time(12, 0)),))
    assert add_working_hours(L(2026, 12, 4, 11, 0), 2, cal) == L(2026, 12, 7, 9, 0)
    with pytest.raises(ValueError):
        WorkCalendar(periods=((dt.time(12, 0), dt.time(8, 0)),))


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=dt.datetime(2025, 12, 1), max_value=dt.datetime(2027, 1, 31)),
    minutes=st.integers(min_value=0, max_value=60 * 200),
)
def test_inverse(start: dt.datetime, minutes: int) -> None:
    cal = WorkCalendar(load_holidays(CONFIG_DIR))
    due = add_working_hours(start, minutes / 60, cal)
    assert due >= start
    assert working_hours_between(start, due, cal) == pytest.approx(minutes / 60, abs=1e-6)
    if minutes:  # earliest: a minute earlier is not enough
        assert working_hours_between(start, due - dt.timedelta(minutes=1), cal) < minutes / 60


def test_categories_config_errors(tmp_path) -> None:
    import shutil

    for f in CONFIG_DIR.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    text = (CONFIG_DIR / "categories.yaml").read_text(encoding="utf-8")
    bad = text.replace("limit: {working_hours: 4}", "limit: {working_hours: 4, working_days: 1}", 1)
    bad = bad.replace('working_hours: [["07:30", "11:30"]', 'working_hours: [["07:30", "25:30"]')
    bad = bad.replace("  waste:\n", "  Waste!:\n")
    (tmp_path / "categories.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    msgs = [str(i) for i in err.value.issues]
    lines = text.splitlines()
    wh_line = next(i for i, ln in enumerate(lines, 1) if ln.startswith("working_hours:"))
    flood_limit = next(i for i, ln in enumerate(lines, 1) if "working_hours: 4}" in ln)
    assert any(m.startswith(f"{tmp_path}/categories.yaml:{wh_line}: working_hours:") for m in msgs)
    assert any(f":{flood_limit}: categories.flooding.limit:" in m for m in msgs), msgs
    assert any("categories.Waste!" in m for m in msgs), msgs
    (tmp_path / "categories.yaml").write_text(text.replace("  waste:\n", "  rubbish:\n"), "utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    (msg,) = [str(i) for i in err.value.issues]
    assert "categories:" in msg and "missing required" in msg and "waste" in msg, msg


def test_working_days_due_is_a_closing_time(cal: WorkCalendar) -> None:
    from ioc.workdays import working_days_due

    assert working_days_due(L(2026, 12, 6, 15, 0), 3, cal) == L(2026, 12, 9, 17, 0)  # Sunday
    assert working_days_due(L(2026, 12, 7, 10, 0), 1, cal) == L(2026, 12, 8, 17, 0)
    # over 30/4-1/5/2026 and the weekend
    assert working_days_due(L(2026, 4, 29, 10, 0), 2, cal) == L(2026, 5, 5, 17, 0)
