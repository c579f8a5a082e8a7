"""Each KPI and each roll-up rule on small fixtures with hand-computed expectations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_kpi_helpers import add_app, add_device, add_readings, execute, t

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.db.migrate import refresh_rollups
from ioc.kpi.compute import CITY, compute_period, rollup_value, store, ward_values
from ioc.kpi.queries import sample_instants

DAY = (t("2025-03-10 00:00"), t("2025-03-11 00:00"))  # Monday 10/03/2025, local day
HOUR = (t("2025-03-10 10:00"), t("2025-03-10 11:00"))
NOW = t("2025-03-20 00:00")


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


@pytest.fixture
def wards(config: Config) -> tuple[str, str, str]:
    a, b, c = (w.code for w in config.wards[:3])
    return a, b, c


def values(conn: Connection, cfg: Config, kpi: str, span: tuple, wards: tuple) -> dict:
    rows = compute_period(conn, cfg, kpis=[kpi], period="day", start=span[0], end=span[1], now=NOW)
    out = {r.ward_code: r.value for r in rows}
    return {k: out[k] for k in (*wards, CITY)}


@pytest.fixture
def apps(conn: Connection, wards: tuple[str, str, str]) -> None:
    a, b, _ = wards
    # ward A
    add_app(
        conn,
        "a1",
        a,
        "2025-03-09 09:00",
        "2025-03-10 17:00",
        status="completed",
        completed="2025-03-10 10:00",
    )  # on time
    add_app(
        conn,
        "a2",
        a,
        "2025-03-05 08:00",
        "2025-03-07 17:00",
        status="completed",
        completed="2025-03-10 09:00",
        return_count=1,
        paused_s=86400,
        events=[
            ("received", "2025-03-05 08:00"),
            ("returned", "2025-03-06 08:00"),
            ("received", "2025-03-07 08:00"),
            ("completed", "2025-03-10 09:00"),
        ],
    )  # late
    add_app(conn, "a3", a, "2025-03-10 08:00", "2025-03-12 17:00")  # open, not yet due
    add_app(conn, "a4", a, "2025-03-03 08:00", "2025-03-07 17:00")  # open, overdue
    add_app(
        conn,
        "a5",
        a,
        "2025-03-06 08:00",
        "2025-03-10 00:00",
        status="returned",
        returned="2025-03-10 11:00",
        return_count=1,
        events=[("received", "2025-03-06 08:00"), ("returned", "2025-03-10 11:00")],
    )
    add_app(
        conn,
        "a6",
        a,
        "2025-03-06 08:00",
        "2025-03-20 17:00",
        status="returned",
        returned="2025-03-09 08:00",
        return_count=2,
    )  # returned twice: overdue
    add_app(
        conn,
        "a7",
        a,
        "2025-03-01 08:00",
        "2025-03-05 17:00",
        status="completed",
        completed="2025-03-05 10:00",
    )  # ended before the period: not counted
    add_app(conn, "a8", a, "2025-03-11 08:00", "2025-03-12 17:00")  # after the period
    add_app(
        conn,
        "a9",
        a,
        "2025-03-10 09:00",
        "2025-03-10 17:00",
        status="completed",
        completed="2025-03-10 16:00",
        channel="online",
    )  # same-day, on time
    add_app(
        conn,
        "a10",
        a,
        "2025-03-08 10:00",
        "2025-03-12 17:00",
        status="cancelled",
        cancelled="2025-03-10 14:00",
    )  # refused before due: ended on time
    # ward B
    add_app(conn, "b1", b, "2025-03-10 10:00", "2025-03-10 17:00", channel="online")  # overdue
    add_app(
        conn,
        "b2",
        b,
        "2025-03-10 11:00",
        "2025-03-13 17:00",
        status="completed",
        completed="2025-03-10 15:00",
        channel="online",
    )


@pytest.mark.embedded
@pytest.mark.usefixtures("apps")
def test_on_time_rate(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    # A: population a1 a2 a3 a4 a5 a6 a9 a10 = 8; on time a1 a3 a5 a9 a10 = 5
    # B: b1 overdue at the end of the day, b2 on time; city = (5 + 1) / (8 + 2)
    assert values(conn, config, "on_time_rate", DAY, wards) == {
        a: 62.5,
        b: 50.0,
        c: None,
        CITY: 60.0,
    }


@pytest.mark.usefixtures("apps")
def test_on_time_rate_measured_at_now_for_the_current_period(
    conn: Connection, config: Config, wards: tuple
) -> None:
    a, b, _ = wards
    rows = compute_period(
        conn,
        config,
        kpis=["on_time_rate"],
        period="day",
        start=DAY[0],
        end=DAY[1],
        now=t("2025-03-10 16:30"),
    )
    got = {r.ward_code: r.value for r in rows}
    # at 16:30, b1 (due today) is not overdue yet; a9 (completes at 16:00) counted;
    # a10 (cancelled at 14:00) counted; on time in A still a1 a3 a5 a9 a10 of 8
    assert got[b] == 100.0
    assert got[a] == 62.5


@pytest.mark.usefixtures("apps")
def test_overdue_applications(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    # A: a4 (past due) + a6 (returned twice); B: b1; C never had an application: no data
    assert values(conn, config, "overdue_applications", DAY, wards) == {
        a: 2,
        b: 1,
        c: None,
        CITY: 3,
    }


@pytest.mark.usefixtures("apps")
def test_online_share(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    # received on the day: A a3 (counter) a9 (online); B b1 b2 (online); city 3 of 4
    assert values(conn, config, "online_share", DAY, wards) == {
        a: 50.0,
        b: 100.0,
        c: None,
        CITY: 75.0,
    }


@pytest.mark.usefixtures("apps")
def test_applications_received(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    assert values(conn, config, "applications_received", DAY, wards) == {
        a: 2,
        b: 2,
        c: None,
        CITY: 4,
    }
    # a day with nothing received in a ward that has a feed is a true 0
    nxt = (t("2025-03-12 00:00"), t("2025-03-13 00:00"))
    assert values(conn, config, "applications_received", nxt, wards)[b] == 0


@pytest.mark.usefixtures("apps")
def test_avg_processing_days(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    # working time, days: a1 Sun 09:00→Mon 10:00 = 10 h; a2 Wed 08:00→Mon 09:00 = 73 h minus
    # the pause Thu 08:00→Fri 08:00 = 24 h → 49 h; a5 Thu 08:00→Mon 11:00 (its return) = 51 h;
    # a9 7 h; a10 Sat 10:00→Mon 14:00 = 14 h. B: b2 11:00→15:00 = 4 h.
    a_hours = [10, 49, 51, 7, 14]
    got = values(conn, config, "avg_processing_days", DAY, wards)
    assert got[a] == pytest.approx(sum(a_hours) / 24 / 5, abs=1e-4)
    assert got[b] == pytest.approx(4 / 24, abs=1e-4)
    assert got[c] is None
    assert got[CITY] == pytest.approx((sum(a_hours) + 4) / 24 / 6, abs=1e-4)


def test_avg_processing_days_skips_public_holidays(
    conn: Connection, config: Config, wards: tuple
) -> None:
    _, _, c = wards
    # Tue 29/04/2025 08:00 → Mon 05/05/2025 08:00: 30/4, 1/5, 2/5 are days off (config),
    # Sat 26/4 worked is outside the span → 16 h + 8 h = 1 working day
    add_app(
        conn,
        "h1",
        c,
        "2025-04-29 08:00",
        "2025-05-06 17:00",
        status="completed",
        completed="2025-05-05 08:00",
    )
    span = (t("2025-05-05 00:00"), t("2025-05-06 00:00"))
    vals, _ = ward_values(
        conn, config, "avg_processing_days", wards=[c], start=span[0], end=span[1]
    )
    assert vals[c] == pytest.approx(1.0)


@pytest.fixture
def sensor_data(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, _ = wards
    add_readings(
        conn,
        a,
        "aq-a",
        "pm25",
        [("2025-03-10 01:00", 20), ("2025-03-10 02:00", 40), ("2025-03-10 03:00", 60)],
    )
    add_readings(conn, a, "aq-a", "no2", [("2025-03-10 01:00", 150), ("2025-03-10 02:00", 250)])
    add_readings(conn, b, "aq-b", "pm10", [("2025-03-10 05:00", 100)])
    add_readings(
        conn, a, "wl-a", "water_level_cm", [("2025-03-10 06:00", 30), ("2025-03-10 07:00", 40)]
    )
    add_readings(conn, b, "wl-b", "water_level_cm", [("2025-03-10 06:00", 60)])
    add_readings(
        conn, a, "tr-a", "congestion", [("2025-03-10 08:00", 20), ("2025-03-10 09:00", 40)]
    )
    add_readings(
        conn, a, "tr-a", "vehicle_count", [("2025-03-10 08:00", 100), ("2025-03-10 09:00", 100)]
    )
    add_readings(conn, b, "tr-b", "congestion", [("2025-03-10 08:00", 60)])
    add_readings(conn, b, "tr-b", "vehicle_count", [("2025-03-10 08:00", 50)])
    refresh_rollups(conn, config, now=NOW)


@pytest.mark.embedded
@pytest.mark.usefixtures("sensor_data")
def test_aqi_daily(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    # A: PM2.5 24-h mean 40 → 80; NO₂ max 1-h 250 → 105; B: PM10 100 → 75; city: worst
    assert values(conn, config, "aqi", DAY, wards) == {a: 105, b: 75, c: None, CITY: 105}


@pytest.mark.usefixtures("sensor_data")
def test_aqi_hourly_nowcast(conn: Connection, config: Config, wards: tuple) -> None:
    a, _, _ = wards
    # hour 03:00: NowCast of [60, 40, 20] with w = 0.5 = 48.57 → 97 (no NO₂ that hour)
    vals, _ = ward_values(
        conn, config, "aqi", wards=[a], start=t("2025-03-10 03:00"), end=t("2025-03-10 04:00")
    )
    assert vals[a] == 97
    # hour 01:00: only one of the latest three PM hours → no PM AQI; NO₂ 150 → 75
    vals, _ = ward_values(
        conn, config, "aqi", wards=[a], start=t("2025-03-10 01:00"), end=t("2025-03-10 02:00")
    )
    assert vals[a] == 75


@pytest.mark.usefixtures("sensor_data")
def test_flood_risk(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    # threshold 50 cm (config): A max 40 → 80 %, B 60 → 120 %; city: worst ward
    assert values(conn, config, "flood_risk", DAY, wards) == {a: 80, b: 120, c: None, CITY: 120}


@pytest.mark.usefixtures("sensor_data")
def test_traffic_congestion(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    # A mean 30 over 200 vehicles, B 60 over 50 → city (30·200 + 60·50) / 250 = 36
    assert values(conn, config, "traffic_congestion", DAY, wards) == {
        a: 30,
        b: 60,
        c: None,
        CITY: 36,
    }


def test_sensor_uptime(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, _ = wards
    add_device(conn, "aq-a", a, "air_quality", first_seen="2025-03-01 00:00")
    add_device(conn, "wl-a", a, "water_level", first_seen="2025-03-01 00:00")
    add_device(conn, "rg-a", a, "rainfall", first_seen="2025-03-01 00:00")
    add_device(conn, "tr-b", b, "traffic", first_seen="2025-03-01 00:00")
    add_device(conn, "new-b", b, "traffic", first_seen="2025-03-10 12:00")  # not yet there
    add_readings(conn, a, "aq-a", "pm25", [("2025-03-10 10:58:30", 10)])  # 90 s ≤ 3 × 60 s
    add_readings(conn, a, "wl-a", "water_level_cm", [("2025-03-10 10:50", 10)])  # 10 min: down
    add_readings(conn, a, "rg-a", "rain_mm", [("2025-03-10 10:46", 0)])  # 14 min ≤ 3 × 5 min
    add_readings(conn, b, "tr-b", "congestion", [("2025-03-10 10:59", 10)])
    rows = compute_period(
        conn, config, kpis=["sensor_uptime"], period="hour", start=HOUR[0], end=HOUR[1], now=NOW
    )
    got = {r.ward_code: r.value for r in rows}
    assert got[a] == pytest.approx(200 / 3, abs=1e-3)
    assert got[b] == 100.0
    assert got[wards[2]] is None
    assert got[CITY] == 75.0  # 3 of 4 device samples


def test_camera_uptime(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, _ = wards
    for cam, ward in (("c1", a), ("c2", a), ("c3", b)):
        execute(conn, "INSERT INTO cameras (camera_id, ward_code) VALUES (%s, %s)", cam, ward)
    for cam, ward, metric, value in (
        ("c1", a, "online", 1),
        ("c2", a, "online", 0),
        ("c3", b, "fps", 12),
    ):
        execute(
            conn,
            "INSERT INTO camera_metrics (ts, ward_code, camera_id, metric, value)"
            " VALUES (%s,%s,%s,%s,%s)",
            t("2025-03-10 10:59:50"),
            ward,
            cam,
            metric,
            value,
        )
    execute(
        conn,
        "INSERT INTO camera_events (camera_id, ward_code, kind, started_at)"
        " VALUES ('c3', %s, 'offline', %s)",
        b,
        t("2025-03-10 10:59:00"),
    )
    rows = compute_period(
        conn, config, kpis=["camera_uptime"], period="hour", start=HOUR[0], end=HOUR[1], now=NOW
    )
    got = {r.ward_code: r.value for r in rows}
    assert (got[a], got[b], got[wards[2]]) == (50.0, 0.0, None)
    assert got[CITY] == pytest.approx(100 / 3, abs=1e-3)


def test_open_alerts(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, c = wards
    ins = (
        "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, opened_at,"
        " resolved_at) VALUES (%s,%s,%s,'warning',%s,'x',%s,%s)"
    )
    execute(conn, ins, "r1", "s1", a, "open", t("2025-03-10 05:00"), None)
    execute(conn, ins, "r1", "s2", a, "resolved", t("2025-03-10 01:00"), t("2025-03-10 02:00"))
    execute(conn, ins, "r2", "s3", b, "acknowledged", t("2025-03-09 05:00"), None)
    execute(conn, ins, "r2", "s4", b, "open", t("2025-03-11 05:00"), None)  # after the day
    assert values(conn, config, "open_alerts", DAY, wards) == {a: 1, b: 1, c: 0, CITY: 2}


def test_store_is_idempotent(conn: Connection, config: Config, wards: tuple) -> None:
    rows = compute_period(
        conn, config, kpis=["open_alerts"], period="day", start=DAY[0], end=DAY[1], now=NOW
    )
    assert store(conn, rows) == 95
    store(conn, rows)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), count(value) FROM kpi_values")
        assert cur.fetchone() == (95, 95)


def test_rollup_rules() -> None:
    vals = {"a": 10.0, "b": 30.0, "c": None}
    assert rollup_value("sum", "higher_better", vals) == 40
    assert rollup_value("mean", "higher_better", vals) == 20
    assert rollup_value("worst", "higher_better", vals) == 10
    assert rollup_value("worst", "lower_better", vals) == 30
    assert rollup_value("best", "lower_better", vals) == 10
    # weighted mean: (10·3 + 30·1) / 4; c has no value so its weight is ignored
    assert rollup_value("weighted_mean", "higher_better", vals, {"a": 3, "b": 1, "c": 100}) == 15
    # a ward without a weight is left out
    assert rollup_value("weighted_mean", "higher_better", vals, {"a": 3, "b": None}) == 10
    assert rollup_value("weighted_mean", "higher_better", vals, {"a": 0, "b": 0}) is None
    # no ward with data → no data, not 0
    for rule in ("sum", "mean", "worst", "best", "weighted_mean"):
        assert rollup_value(rule, "higher_better", {"a": None}, {"a": 1}) is None


def test_rollup_weighted_by_area(config: Config) -> None:
    from ioc.kpi.compute import _weights

    kpi = config.kpis.kpis["on_time_rate"].model_copy(update={"weight": "area"})
    w = _weights(config, kpi, {}, None)
    assert w is not None
    a = config.wards[0]
    assert w[a.code] == a.area_km2


def test_sample_instants() -> None:
    assert sample_instants(*HOUR) == [HOUR[1]]
    day = sample_instants(*DAY)
    assert len(day) == 24 and day[0] == t("2025-03-10 01:00") and day[-1] == DAY[1]
    partial = sample_instants(DAY[0], t("2025-03-10 02:30"))
    assert partial == [t("2025-03-10 01:00"), t("2025-03-10 02:00"), t("2025-03-10 02:30")]


@pytest.mark.usefixtures("sensor_data")
def test_aqi_week_is_the_mean_of_daily_aqis(conn: Connection, config: Config, wards: tuple) -> None:
    a, b, _ = wards
    add_readings(conn, a, "aq-a", "pm25", [("2025-03-11 09:00", 25)])  # daily AQI 50
    execute(conn, "DELETE FROM rollup_watermarks")  # roll up from the first reading again
    refresh_rollups(conn, config, now=NOW)
    week = (t("2025-03-10 00:00"), t("2025-03-17 00:00"))
    rows = compute_period(
        conn, config, kpis=["aqi"], period="week", start=week[0], end=week[1], now=NOW
    )
    got = {r.ward_code: r.value for r in rows}
    assert (got[a], got[b], got[CITY]) == (77.5, 75.0, 77.5)  # (105 + 50) / 2
