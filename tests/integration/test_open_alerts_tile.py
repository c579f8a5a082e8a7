"""The open-alerts KPI follows the alert job at once (found on the demo's wall: the tile said
10 open alerts beside a list of 20, the KPI being up to 5 minutes old)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_kpi_helpers import execute, t

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.scheduler import Jobs


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def open_alerts_today(conn: Connection, ward: str) -> float | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT value FROM kpi_values WHERE kpi = 'open_alerts' AND ward_code = %s"
            " AND period = 'day' AND period_start = %s",
            (ward, t("2025-03-10 00:00")),
        )
        row = cur.fetchone()
    conn.commit()
    return row[0] if row else None


def test_alert_job_refreshes_the_open_alerts_kpi(
    fresh_db_url: str, conn: Connection, config: Config
) -> None:
    ward = config.wards[0].code
    jobs = Jobs(config, fresh_db_url, now=lambda: t("2025-03-10 10:00"))
    ins = (
        "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, opened_at)"
        " VALUES (%s, %s, %s, 'warning', 'open', 'x', %s)"
    )
    execute(conn, ins, "r1", "s1", ward, t("2025-03-10 09:00"))
    execute(conn, ins, "r1", "s2", ward, t("2025-03-10 09:30"))
    execute(conn, ins, "r1", "s3", ward, t("2025-03-10 10:00"))  # opened by this very run
    jobs.alerts()
    assert open_alerts_today(conn, ward) == 3
    assert open_alerts_today(conn, "city") == 3
    # resolved on the dashboard: the next alert run (every minute) says so
    execute(conn, "UPDATE alerts SET state = 'resolved', resolved_at = %s WHERE subject = 's1'",
            t("2025-03-10 09:50"))  # fmt: skip
    jobs.alerts()
    assert open_alerts_today(conn, ward) == 2
