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


def test_overdue_and_late_follow_the_kpi_rule(conn: Connection, config: Config) -> None:
    ward = config.wards[0].code
    today = dt.datetime.now(ICT).replace(hour=0, minute=1, second=0, microsecond=0)
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
    add(conn, "done-next-day", ward, status="completed", due_at=yday_17,
        completed_at=yday_17 + dt.timedelta(hours=16), **common)  # fmt: skip

    listed = set(queries.overdue_applications(conn, wards=[ward])["id"])
    assert listed == {"open-past-due", "returned-twice"}
    now = dt.datetime.now(dt.UTC)
    kpi = compute_period(
        conn,
        config,
        kpis=["overdue_applications"],
        period="day",
        start=today.replace(minute=0),
        end=today.replace(minute=0) + dt.timedelta(days=1),
        now=now,
    )
    assert {v.ward_code: v.value for v in kpi}[CITY] == len(listed)

    stats = queries.application_stats(
        conn, since=week_ago - dt.timedelta(hours=1), group_by="ward_code", wards=[ward]
    ).iloc[0]
    assert (int(stats["overdue"]), int(stats["on_time"]), int(stats["late"])) == (2, 1, 1)
