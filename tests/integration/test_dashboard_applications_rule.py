"""The applications page and the ward page count overdue and late applications as the KPIs
do (found in the demo: "Quá hạn (đang xử lý)" 2.383 on /applications and 45 rows in a ward's
overdue list, against the overdue KPI's 505 and 7 — the page counted applications waiting for
the citizen's supplements, and an application due at 17:00 as overdue at 17:01)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dashboards import queries
from ioc.config import Config
from ioc.db import Connection, connect
from ioc.kpi.compute import CITY, compute_period

ICT = dt.timezone(dt.timedelta(hours=7))


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def add(conn: Connection, app_id: str, ward: str, **cols: object) -> None:
    row = {"id": app_id, "ward_code": ward, "procedure": "P1", "channel": "counter", **cols}
    row.setdefault("last_event_at", row["received_at"])
    names = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO applications ({names}) VALUES ({marks})", list(row.values()))
    conn.commit()


# Local times of day at which both must agree; 03:55 is when the page and the KPI used to
# disagree (an application completed at 09:00 today: the KPI, measuring at 03:55, saw it open
# and overdue; the page read its status, completed, and did not count it).
HOURS = [(0, 30), (3, 55), (8, 59), (9, 30), (17, 1), (23, 59)]


def test_overdue_and_late_follow_the_kpi_rule(conn: Connection, config: Config) -> None:
    """The rule (KPI-REFERENCE): an application that has not ended is measured at the instant
    of measurement, overdue if past the end of its due date (local day) then; an end recorded
    after that instant has not happened yet. The page and the KPI measure at the same injected
    clock, at every hour of the day."""
    ward = config.wards[0].code
    # a fixed day, so the test means the same whenever it runs
    day = dt.datetime(2026, 3, 11, tzinfo=ICT)
    today = day.replace(hour=0, minute=1)
    yday_17 = today.replace(minute=0) - dt.timedelta(hours=7)  # yesterday 17:00
    week_ago = today - dt.timedelta(days=7)
    common = {"received_at": week_ago}
    add(conn, "open-past-due", ward, status="received", due_at=yday_17, **common)
    add(conn, "due-today", ward, status="received", due_at=today, **common)  # day not over
    add(conn, "returned-once", ward, status="returned", return_count=1,
        returned_at=week_ago + dt.timedelta(days=1), due_at=yday_17, **common)  # fmt: skip
    add(conn, "returned-twice", ward, status="returned", return_count=2,
        returned_at=week_ago + dt.timedelta(days=2), due_at=today + dt.timedelta(days=3),
        **common)  # fmt: skip
    add(conn, "done-evening-of-due-day", ward, status="completed", due_at=yday_17,
        completed_at=yday_17 + dt.timedelta(hours=1), **common)  # fmt: skip
    add(
        conn,
        "done-next-day",
        ward,
        status="completed",
        due_at=yday_17,
        completed_at=yday_17 + dt.timedelta(hours=16),
        **common,
    )  # today 09:00

    for hour, minute in HOURS:
        now = day.replace(hour=hour, minute=minute)
        done_late = now >= day.replace(hour=9)  # "done-next-day" has ended by then
        expected = {"open-past-due", "returned-twice"} | (set() if done_late else {"done-next-day"})
        listed = {a.id for a in queries.overdue_applications(conn, wards=[ward], now=now)}
        assert listed == expected, now
        kpi = compute_period(
            conn,
            config,
            kpis=["overdue_applications"],
            period="day",
            start=day,
            end=day + dt.timedelta(days=1),
            now=now,
        )
        assert {v.ward_code: v.value for v in kpi}[CITY] == len(listed), now

        (stats,) = queries.application_stats(
            conn,
            since=week_ago - dt.timedelta(hours=1),
            group_by="ward_code",
            wards=[ward],
            now=now,
        )
        counts = (stats.overdue, stats.on_time, stats.late)
        assert counts == ((2, 1, 1) if done_late else (3, 1, 0)), now
        worst = queries.worst_procedures(
            conn, since=week_ago - dt.timedelta(hours=1), wards=[ward], now=now
        )[0]
        assert worst.late == 3, now  # overdue now + completed late
