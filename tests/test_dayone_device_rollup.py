"""Per-device daily and hourly summaries (ioc/device_rollup.py) and the device page's readings
at each resolution: closed days come from the summaries, today from the raw readings, same
numbers."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ioc import device_rollup
from ioc.config import Config
from ioc.db import connect

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def test_daily_summaries_and_device_readings(config: Config, fresh_db_url: str) -> None:
    from dashboards import devices as dq

    conn = connect(fresh_db_url)
    now = dt.datetime.now(dt.UTC)
    today = dt.datetime.combine(now.astimezone(TZ).date(), dt.time(), TZ)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO devices (device_id, ward_code, device_type, status)"
                " VALUES ('wl-x', %s, 'water_level', 'online')",
                (config.wards[0].code,),
            )
            # three days back to now, one reading every 10 minutes: value = day index
            cur.execute(
                """
                INSERT INTO readings (ts, ward_code, device_id, metric, value)
                SELECT ts, %s, 'wl-x', 'water_level_cm',
                       extract(day FROM (ts AT TIME ZONE 'Asia/Ho_Chi_Minh'))
                FROM generate_series(%s::timestamptz, %s::timestamptz, interval '10 minutes') ts
                """,
                (config.wards[0].code, today - dt.timedelta(days=3), now),
            )
        conn.commit()
        assert dq.summarised_until(conn) == dt.date(1970, 1, 1)
        before = dq.readings(
            conn,
            device_id="wl-x",
            metrics=["water_level_cm"],
            start=today - dt.timedelta(days=3),
            end=now,
            step="day",
        )
        hourly_before = dq.readings(
            conn,
            device_id="wl-x",
            metrics=["water_level_cm"],
            start=today - dt.timedelta(days=3),
            end=now,
            step="hour",
        )
        assert device_rollup.refresh(conn, config, now=now) == 3  # the closed days
        # again: only days that late data may still change (within the roll-up look-back;
        # none when it starts today), the same rows
        assert device_rollup.refresh(conn, config, now=now) in (0, 1)
        assert dq.summarised_until(conn) == today.date()
        with conn.cursor() as cur:
            cur.execute("SELECT day, n, avg FROM device_daily ORDER BY day")
            rows = cur.fetchall()
        assert [r[1] for r in rows] == [144, 144, 144]
        after = dq.readings(
            conn,
            device_id="wl-x",
            metrics=["water_level_cm"],
            start=today - dt.timedelta(days=3),
            end=now,
            step="day",
        )
        # the same four days (three summarised, today raw), the same numbers
        assert len(after) == len(before) == 4
        assert list(after["n"]) == list(before["n"])
        assert [round(v, 6) for v in after["value"]] == [round(v, 6) for v in before["value"]]
        # hours: the closed days' from device_hourly, today's from the readings, same numbers
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(n) FROM device_hourly WHERE device_id = 'wl-x'")
            assert cur.fetchone() == (72, 432)
        hourly = dq.readings(
            conn,
            device_id="wl-x",
            metrics=["water_level_cm"],
            start=today - dt.timedelta(days=3),
            end=now,
            step="hour",
        )
        assert list(hourly["ts"]) == list(hourly_before["ts"])
        assert list(hourly["n"]) == list(hourly_before["n"])
        assert list(hourly["hi"]) == list(hourly_before["hi"])
        # hours older than device_rollup.HOURLY_KEEP are dropped at the next day's roll-up
        later = now + device_rollup.HOURLY_KEEP + dt.timedelta(days=2)
        device_rollup.refresh(conn, config, now=later)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM device_hourly WHERE device_id = 'wl-x'")
            assert cur.fetchone() == (0,)
        raw = dq.readings(
            conn,
            device_id="wl-x",
            metrics=["water_level_cm"],
            start=now - dt.timedelta(hours=1),
            end=now,
            step="raw",
        )
        assert 5 <= len(raw) <= 7
        assert dq.resolution(dt.timedelta(days=1)) == "raw"
        assert dq.resolution(dt.timedelta(days=30)) == "hour"
        assert dq.resolution(dt.timedelta(days=365)) == "day"
    finally:
        conn.close()
