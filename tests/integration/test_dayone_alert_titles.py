"""Alerts name things: the ward's name, the camera's name, the value, the threshold and their
unit, and a link to the object (real PostgreSQL, ``ioc.alerts.evaluate``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from test_kpi_helpers import add_device, add_readings, execute, t

from ioc.alerts import evaluate
from ioc.config import Config
from ioc.db import Connection, connect

T0 = t("2025-03-10 10:00")


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def _alerts(conn: Connection) -> dict[str, tuple[str, dict[str, Any]]]:
    with conn.cursor() as cur:
        cur.execute("SELECT rule_id, title, details FROM alerts ORDER BY id")
        rows = cur.fetchall()
    conn.commit()
    return {r: (title, details) for r, title, details in rows}


def test_alert_titles_name_the_ward_camera_value_threshold_and_unit(
    conn: Connection, config: Config
) -> None:
    ward = config.wards[0]
    rules = {r.id: r for r in config.alerts.rules}
    use = [rules["water_level_high"], rules["overdue_many"], rules["camera_offline"]]
    cfg = dataclasses.replace(config, alerts=config.alerts.model_copy(update={"rules": use}))
    # a water-level station over the flood threshold for longer than the rule's for_s
    add_device(conn, "wl-dayone", ward.code, "water_level", first_seen="2025-03-10 08:00")
    add_readings(conn, ward.code, "wl-dayone", "water_level_cm", [("2025-03-10 09:58", 62.0)])
    # 20 overdue applications today in the ward
    start = T0.replace(hour=0, minute=0)
    execute(
        conn,
        "INSERT INTO kpi_values (kpi, ward_code, period, period_start, value, computed_at)"
        " VALUES ('overdue_applications', %s, 'day', %s, 20, now())",
        ward.code,
        start,
    )
    # a camera offline for ten minutes
    execute(
        conn,
        "INSERT INTO cameras (camera_id, ward_code, name, status, updated_at)"
        " VALUES ('cam-hc-04', %s, 'Ngã tư Hùng Vương', 'offline', %s)",
        ward.code,
        T0 - dt.timedelta(minutes=10),
    )
    res = evaluate(conn, cfg, now=T0)
    res2 = evaluate(conn, cfg, now=T0 + dt.timedelta(seconds=130))  # the level held 2 min
    assert res.opened + res2.opened == 3
    res.transitions += res2.transitions
    got = _alerts(conn)
    title, details = got["water_level_high"]
    assert title.startswith(f"Mực nước vượt ngưỡng ngập — {ward.name}, ")
    assert title.endswith(" wl-dayone: 62 cm (ngưỡng ≥ 50 cm)"), title
    assert details["link"] == "/devices/wl-dayone"
    title, details = got["overdue_many"]
    assert title == f"Nhiều hồ sơ quá hạn — {ward.name}: 20 hồ sơ (ngưỡng ≥ 10 hồ sơ)"
    assert details["link"] == f"/ward/{ward.code}"
    title, details = got["camera_offline"]
    assert title == f"Camera mất kết nối — Ngã tư Hùng Vương (cam-hc-04), {ward.name}"
    assert details["link"] == "/cameras?camera=cam-hc-04"
    # the MQTT transitions carry the link too
    links = sorted(str(tr.payload()["link"]) for tr in res.transitions)
    assert links == sorted(
        ["/devices/wl-dayone", f"/ward/{ward.code}", "/cameras?camera=cam-hc-04"]
    )


def test_dashboard_title_in_english_with_the_current_value(config: Config) -> None:
    import flask

    from dashboards.components.common import alert_link, alert_title, md_link

    app = flask.Flask(__name__)
    app.config["IOC_STATE"] = type("S", (), {"cfg": config})()
    details = {
        "object_vi": "Phường Hải Châu",
        "object_en": "Phường Hải Châu",
        "unit": "hồ sơ",
        "decimals": 0,
        "link": "/ward/20209",
    }
    with app.test_request_context("/"):
        got = alert_title("overdue_many", "20209", "x", "en", details, 23.0)
        assert (
            got == "Many overdue applications — Phường Hải Châu: 23 applications"
            " (threshold ≥ 10 applications)"
        )
        assert md_link(got, alert_link(details)).endswith("](/ward/20209)")
        # alerts opened before names were kept still read as before
        assert alert_title("overdue_many", "20209", "x", "en") == "Many overdue applications: 20209"
