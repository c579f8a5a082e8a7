"""'Days late' on the ward page's overdue list and the applications page's worst procedures
count working days, as the legal time limits do (KPI-REFERENCE: weekends and public holidays
excluded), on real PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

# the same fresh database and application rows as the KPI-rule test of these pages
# ruff: noqa: F811 - the pytest fixture `conn` imported from there is used as a parameter
from test_dashboard_applications_rule import add, conn  # noqa: F401 - conn: a fixture

from dashboards import queries
from ioc.config import Config
from ioc.config.procedures import Holiday, HolidaysFile
from ioc.db import Connection
from ioc.settings import Settings
from ioc.workdays import Holidays

ICT = dt.timezone(dt.timedelta(hours=7))


def at(y: int, m: int, d: int, h: int = 10) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=ICT)


def test_worst_procedures_average_working_days_late(conn: Connection, config: Config) -> None:
    ward = config.wards[0].code
    done = {"status": "completed", "received_at": at(2026, 4, 1)}
    # Friday 10:00 -> Monday 10:00: 3 calendar days, 1 working day (the weekend is off)
    add(conn, "w1", ward, procedure="P-WEEKEND", due_at=at(2026, 11, 13),
        completed_at=at(2026, 11, 16), **done)  # fmt: skip
    # Wednesday 29/4 10:00 -> Monday 4/5 10:00: 30/4 and 1/5 are holidays, then a weekend
    add(conn, "h1", ward, procedure="P-HOLIDAY", due_at=at(2026, 4, 29),
        completed_at=at(2026, 5, 4), **done)  # fmt: skip
    # 1 and 5 working days late: the average is 3
    add(conn, "a1", ward, procedure="P-AVG", due_at=at(2026, 11, 9),
        completed_at=at(2026, 11, 10), **done)  # fmt: skip
    add(conn, "a2", ward, procedure="P-AVG", due_at=at(2026, 11, 9),
        completed_at=at(2026, 11, 16), **done)  # fmt: skip
    # completed before its due time: not late, not in the average
    add(conn, "a3", ward, procedure="P-AVG", due_at=at(2026, 11, 9),
        completed_at=at(2026, 11, 9, 8), **done)  # fmt: skip

    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cal = Holidays.of(config.holidays)
    got = queries.worst_procedures(conn, since=since, wards=[ward], holidays=cal, min_total=1)
    avg = {p.procedure: p.avg_days_late for p in got}
    assert avg == {
        "P-WEEKEND": pytest.approx(1.0),
        "P-HOLIDAY": pytest.approx(1.0),
        "P-AVG": pytest.approx(3.0),
    }
    # without the holiday calendar 30/4 and 1/5 count: Wed 14 h + Thu + Fri + Mon 10 h
    plain = queries.worst_procedures(conn, since=since, wards=[ward], min_total=1)
    assert {p.procedure: p.avg_days_late for p in plain}["P-HOLIDAY"] == pytest.approx(3.0)


def _window_weekday(now: dt.datetime) -> dt.date:
    """A weekday whose whole local day lies within the 7 days before ``now``."""
    today = now.astimezone(ICT).date()
    return next(d for d in (today - dt.timedelta(days=k) for k in range(1, 7)) if d.weekday() < 5)


def test_overdue_list_counts_working_days_as_of_now(conn: Connection, config: Config) -> None:
    ward = config.wards[0].code
    now = dt.datetime.now(dt.UTC)
    # due exactly a week ago: 7 calendar days, of which 2 days of weekend
    received = now - dt.timedelta(days=20)
    add(conn, "late-week", ward, status="received", due_at=now - dt.timedelta(days=7),
        received_at=received)  # fmt: skip
    # overdue because returned twice, but not yet past its due time: 0 days late
    add(conn, "returned-twice", ward, status="returned", return_count=2, received_at=received,
        returned_at=now - dt.timedelta(days=1), due_at=now + dt.timedelta(days=3))  # fmt: skip

    late = {a.id: a.days_late for a in queries.overdue_applications(conn, wards=[ward], now=now)}
    assert late["late-week"] == pytest.approx(5.0, abs=0.01)  # weekends only
    assert late["returned-twice"] == 0.0

    # a weekday holiday inside the week is not counted either
    off = _window_weekday(now)
    off_days = Holidays(frozenset({off}))
    late = {
        a.id: a.days_late
        for a in queries.overdue_applications(conn, wards=[ward], holidays=off_days, now=now)
    }
    assert late["late-week"] == pytest.approx(4.0, abs=0.01)


@pytest.mark.filterwarnings(
    r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning"
)
def test_ward_page_lists_working_days_late(
    fresh_db_url: str, config: Config, conn: Connection, tmp_path: Path
) -> None:
    """The ward page's callback, served by the app on the real database with a holiday
    calendar: the column says working days and the value leaves out weekend and holiday."""
    from dash_fixtures import PASSWORD, ward_body
    from dash_seed import add_users

    from dashboards.app import create_app

    ward = sorted(config.ward_codes)[0]  # the ward leader's ward in add_users
    now = dt.datetime.now(dt.UTC)
    add(conn, "late-week", ward, status="received", due_at=now - dt.timedelta(days=7),
        received_at=now - dt.timedelta(days=20))  # fmt: skip
    add_users(conn, config, PASSWORD)
    off = _window_weekday(now)
    cfg = dataclasses.replace(
        config, holidays=HolidaysFile(holidays=[Holiday(date=off, name="test holiday")])
    )
    settings = Settings(secret_key="s" * 40, var_dir=tmp_path / "var")
    client = create_app(cfg, fresh_db_url, settings).server.test_client()
    origin = {"Origin": "http://localhost"}
    form = {"username": "ward_leader", "password": PASSWORD, "next": "/"}
    assert client.post("/login", data=form, headers=origin).status_code == 302
    for lang, header in (("vi", "Số ngày làm việc trễ"), ("en", "Working days late")):
        resp = client.post(
            f"/_dash-update-component?lang={lang}", json=ward_body(ward), headers=origin
        )
        assert resp.status_code == 200, resp.data[:300]
        table: Any = json.loads(resp.data)["response"]["ward-overdue"]["children"]["props"]
        col = next(c for c in table["columns"] if c["id"] == "days_late")
        assert col["name"] == header
        assert [r["id"] for r in table["data"]] == ["late-week"]
        assert table["data"][0]["days_late"] == pytest.approx(4.0, abs=0.01)
