"""The applications page's "procedures most often late": 1 late of 1 does not rank first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from test_kpi_helpers import add_app

from dashboards import queries
from ioc.config import Config
from ioc.db import Connection, connect


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def _proc(conn: Connection, procedure: str) -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE applications SET procedure = %s WHERE procedure = 'P1'", (procedure,))
    conn.commit()


def test_small_counts_do_not_outrank_large_ones(conn: Connection, config: Config) -> None:
    ward = config.wards[0].code
    # P-ONE: 1 application, completed late
    add_app(conn, "one", ward, "2026-11-02 08:00", "2026-11-03 17:00",
            status="completed", completed="2026-11-05 10:00")  # fmt: skip
    _proc(conn, "P-ONE")
    # P-MANY: 100 applications, 40 completed late, 60 on time
    for i in range(100):
        late = i < 40
        add_app(conn, f"m{i}", ward, "2026-11-02 08:00", "2026-11-03 17:00", status="completed",
                completed="2026-11-05 10:00" if late else "2026-11-03 09:00")  # fmt: skip
    _proc(conn, "P-MANY")
    since = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    every = queries.worst_procedures(conn, since=since, wards=[ward], min_total=1)
    assert [p.procedure for p in every] == ["P-MANY", "P-ONE"]  # 40/100 is surer than 1/1
    default = queries.worst_procedures(conn, since=since, wards=[ward])
    assert [p.procedure for p in default] == ["P-MANY"]  # fewer than 5: left out
