"""Camera uptime counts a camera from when it was first watched (found in the demo: cameras
started at 17:26 showed 5.2 % uptime for the day, and 0 % for the days before they existed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_kpi_helpers import execute, t

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.kpi.compute import CITY, compute_period

DAY = (t("2025-03-10 00:00"), t("2025-03-11 00:00"))


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def metric(conn: Connection, cam: str, ward: str, ts: str, name: str, value: float) -> None:
    execute(
        conn,
        "INSERT INTO camera_metrics (ts, ward_code, camera_id, metric, value)"
        " VALUES (%s,%s,%s,%s,%s)",
        t(ts),
        ward,
        cam,
        name,
        value,
    )


def day_values(conn: Connection, cfg: Config, start: str, end: str) -> dict[str, float | None]:
    rows = compute_period(
        conn,
        cfg,
        kpis=["camera_uptime"],
        period="day",
        start=t(start),
        end=t(end),
        now=t("2025-03-20 00:00"),
    )
    return {r.ward_code: r.value for r in rows}


def test_camera_counts_from_its_first_interval(conn: Connection, config: Config) -> None:
    a, b = config.wards[0].code, config.wards[1].code
    for cam, ward in (("c1", a), ("c2", b)):
        execute(conn, "INSERT INTO cameras (camera_id, ward_code) VALUES (%s, %s)", cam, ward)
    # c1 starts at 17:26 and is up every 10 s until the end of the day
    for h in range(17, 24):
        for m in range(0 if h > 17 else 26, 60):
            for s in (0, 10, 20, 30, 40, 50):
                metric(conn, "c1", a, f"2025-03-10 {h:02d}:{m:02d}:{s:02d}", "online", 1)
    # c2 never delivered a frame: offline since it was first tried, at 17:26
    execute(
        conn,
        "INSERT INTO camera_events (camera_id, ward_code, kind, started_at)"
        " VALUES ('c2', %s, 'offline', %s)",
        b,
        t("2025-03-10 17:26"),
    )
    got = day_values(conn, config, "2025-03-10 00:00", "2025-03-11 00:00")
    # samples at 18:00 … 24:00: c1 up at all 7, c2 down at all 7
    assert got[a] == 100.0
    assert got[b] == 0.0
    assert got[CITY] == 50.0
    # the day before either camera was watched: no data, not 0 %
    before = day_values(conn, config, "2025-03-09 00:00", "2025-03-10 00:00")
    assert before[a] is None and before[b] is None and before[CITY] is None
