"""``dashboards.queries.kpi_latest`` (the overview's, ward pages' and wall's first query): each
KPI's latest period of the city with every ward's value and the previous city period's value,
on a real PostgreSQL, with and without the table's statistics (the plan must not depend on
them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dashboards.queries import kpi_latest
from ioc.db import Connection, connect

D0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    try:
        yield c
    finally:
        c.close()


def _put(conn: Connection, rows: list[tuple[str, str, str, dt.datetime, float | None]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO kpi_values (kpi, ward_code, period, period_start, value)"
            " VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
    conn.commit()


@pytest.mark.parametrize("stats", ["none", "analyzed"])
def test_latest_period_with_the_previous_value(conn: Connection, stats: str) -> None:
    day = dt.timedelta(days=1)
    rows: list[tuple[str, str, str, dt.datetime, float | None]] = []
    for d in range(10):  # on_time_rate: 10 days of the city and two wards
        for ward in ("city", "20194", "20195"):
            rows.append(("on_time_rate", ward, "day", D0 + d * day, float(d * 10 + len(ward))))
    # 20196 has only the last day: no previous value
    rows.append(("on_time_rate", "20196", "day", D0 + 9 * day, 1.0))
    # a ward's value of a day after the city's latest is not the latest period
    rows.append(("on_time_rate", "20194", "day", D0 + 10 * day, 99.0))
    # aqi: a single city day (no previous), with a gap-less ward value
    rows.append(("aqi", "city", "day", D0 + 3 * day, 50.0))
    rows.append(("aqi", "20194", "day", D0 + 3 * day, None))
    # the previous period is the city's previous one, even when a ward skipped a day
    rows.append(("open_alerts", "city", "day", D0, 1.0))
    rows.append(("open_alerts", "city", "day", D0 + 5 * day, 2.0))
    rows.append(("open_alerts", "20194", "day", D0, 7.0))
    rows.append(("open_alerts", "20194", "day", D0 + 2 * day, 8.0))
    rows.append(("open_alerts", "20194", "day", D0 + 5 * day, 9.0))
    # other periods are not mixed in; a KPI with no city value at all is left out
    rows.append(("on_time_rate", "city", "hour", D0 + 20 * day, 5.0))
    rows.append(("sensor_uptime", "20194", "day", D0 + 9 * day, 80.0))
    _put(conn, rows)
    with conn.cursor() as cur:
        if stats == "analyzed":
            cur.execute("ANALYZE kpi_values")
        else:
            cur.execute("DELETE FROM pg_statistic WHERE starelid = 'kpi_values'::regclass")
    conn.commit()

    df = kpi_latest(conn, period="day")
    got = {
        (r.kpi, r.ward_code): (r.period_start, r.value, r.prev_value)
        for r in df.itertuples(index=False)
    }

    def nan_free(v: object) -> object:
        return None if v is None or v != v else v

    got = {k: (p, nan_free(v), nan_free(pv)) for k, (p, v, pv) in got.items()}
    last = D0 + 9 * day
    assert got == {
        ("on_time_rate", "city"): (last, 94.0, 84.0),
        ("on_time_rate", "20194"): (last, 95.0, 85.0),
        ("on_time_rate", "20195"): (last, 95.0, 85.0),
        ("on_time_rate", "20196"): (last, 1.0, None),
        ("aqi", "city"): (D0 + 3 * day, 50.0, None),
        ("aqi", "20194"): (D0 + 3 * day, None, None),
        ("open_alerts", "city"): (D0 + 5 * day, 2.0, 1.0),
        ("open_alerts", "20194"): (D0 + 5 * day, 9.0, 7.0),
    }
    assert list(df.columns) == [
        "kpi", "ward_code", "period_start", "value", "prev_value", "computed_at"
    ]  # fmt: skip
    hourly = kpi_latest(conn, period="hour")
    assert [(r.kpi, r.ward_code, r.value) for r in hourly.itertuples()] == [
        ("on_time_rate", "city", 5.0)
    ]
    assert kpi_latest(conn, period="month").empty
