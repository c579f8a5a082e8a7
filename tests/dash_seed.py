"""Seed a test database with dashboard data by direct SQL (KPIs, devices, cameras, apps, alerts).

Used by the dashboard tests and by bench/dashboard.py (``scale`` raises the device count and
the raw readings). Values are random but deterministic (setseed) and realistic in range.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ioc.config import Config
from ioc.db import Connection

# value ranges per KPI name: (low, high); NULL share per KPI keeps "no data" visible
RANGES: dict[str, tuple[float, float]] = {
    "on_time_rate": (70, 100),
    "overdue_applications": (0, 25),
    "online_share": (10, 80),
    "avg_processing_days": (1, 12),
    "applications_received": (0, 60),
    "aqi": (20, 180),
    "flood_risk": (0, 120),
    "traffic_congestion": (5, 85),
    "sensor_uptime": (80, 100),
    "camera_uptime": (75, 100),
    "open_alerts": (0, 6),
}

DEVICE_TYPES = ["air_quality", "water_level", "rainfall", "traffic", "noise", "street_light"]


def seed(
    conn: Connection,
    cfg: Config,
    *,
    days: int = 30,
    devices_per_ward: int = 6,
    readings_hours: int = 24,
    readings_devices_per_ward: int = 2,
    hourly_hours: int = 48,
    reports_dir: Path | None = None,
) -> dict[str, Any]:
    """Write the data; returns a few facts the tests check against."""
    kpis = list(cfg.kpis.kpis) or list(RANGES)
    now = dt.datetime.now(dt.UTC)
    with conn.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        # KPI values: daily for `days` days and hourly for the last 48 h, wards and city
        for period, n, step in (("day", days, "1 day"), ("hour", hourly_hours, "1 hour")):
            for kpi in kpis:
                lo, hi = RANGES.get(kpi, (0, 100))
                cur.execute(
                    """
                    INSERT INTO kpi_values (kpi, ward_code, period, period_start, value,
                                            computed_at)
                    SELECT %(kpi)s, w.code, %(period)s, ps,
                           CASE WHEN random() < 0.04 THEN NULL
                                ELSE round((%(lo)s + random() * (%(hi)s - %(lo)s))::numeric, 1)
                           END, now()
                    FROM wards w,
                         generate_series(date_trunc(%(trunc)s, now()
                                         AT TIME ZONE 'Asia/Ho_Chi_Minh')
                                         AT TIME ZONE 'Asia/Ho_Chi_Minh'
                                         - (%(n)s - 1) * %(step)s::interval,
                                         now(), %(step)s::interval) ps
                    ON CONFLICT DO NOTHING
                    """,
                    {
                        "kpi": kpi,
                        "period": period,
                        "lo": lo,
                        "hi": hi,
                        "n": n,
                        "step": step,
                        "trunc": period,
                    },
                )
                # the city roll-up: the mean of the wards (good enough for display tests)
                cur.execute(
                    """
                    INSERT INTO kpi_values (kpi, ward_code, period, period_start, value)
                    SELECT kpi, 'city', period, period_start, round(avg(value)::numeric, 1)
                    FROM kpi_values WHERE kpi = %s AND period = %s AND ward_code <> 'city'
                    GROUP BY kpi, period, period_start
                    ON CONFLICT DO NOTHING
                    """,
                    (kpi, period),
                )
        # devices: devices_per_ward per ward, ~8 % offline
        cur.execute(
            """
            INSERT INTO devices (device_id, ward_code, device_type, status, last_seen)
            SELECT 'dev-' || w.code || '-' || i, w.code, (%(types)s::text[])[1 + i %% %(nt)s],
                   CASE WHEN random() < 0.08 THEN 'offline' ELSE 'online' END,
                   now() - random() * interval '5 minutes'
            FROM wards w, generate_series(0, %(n)s - 1) i
            ON CONFLICT DO NOTHING
            """,
            {"types": DEVICE_TYPES, "nt": len(DEVICE_TYPES), "n": devices_per_ward},
        )
        # raw readings for the last day of a few devices per ward, and the hourly roll-up
        cur.execute(
            """
            INSERT INTO readings (ts, ward_code, device_id, metric, value)
            SELECT ts, d.ward_code, d.device_id, m.metric, m.lo + random() * m.span
            FROM (SELECT * FROM devices WHERE device_type IN ('water_level', 'rainfall',
                  'air_quality') AND split_part(device_id, '-', 3)::int < %(k)s * 3) d
            JOIN (VALUES ('water_level', 'water_level_cm', 5.0, 80.0),
                         ('rainfall', 'rain_mm', 0.0, 4.0),
                         ('air_quality', 'pm25', 5.0, 90.0)) m(dtype, metric, lo, span)
              ON m.dtype = d.device_type,
                 generate_series(now() - %(h)s * interval '1 hour', now(),
                                 interval '5 minutes') ts
            ON CONFLICT DO NOTHING
            """,
            {"k": readings_devices_per_ward, "h": readings_hours},
        )
        cur.execute(
            """
            INSERT INTO readings_hourly (bucket, ward_code, metric, n, sum, avg, min, max)
            SELECT date_trunc('hour', ts), ward_code, metric, count(*), sum(value), avg(value),
                   min(value), max(value)
            FROM readings GROUP BY 1, 2, 3
            ON CONFLICT DO NOTHING
            """
        )
        # cameras: two in a quarter of the wards, some offline with an open event
        cur.execute(
            """
            INSERT INTO cameras (camera_id, ward_code, name, status, last_seen)
            SELECT 'cam-' || w.code || '-' || i, w.code, 'Camera ' || w.code || '/' || i,
                   CASE WHEN random() < 0.15 THEN 'offline' ELSE 'online' END,
                   now() - random() * interval '1 minute'
            FROM (SELECT code FROM wards ORDER BY code) w, generate_series(1, 2) i
            WHERE hashtext(w.code) %% 4 = 0 OR w.code IN (SELECT code FROM wards
                                                          ORDER BY code LIMIT 2)
            ON CONFLICT DO NOTHING
            """,
            {},
        )
        cur.execute(
            """
            INSERT INTO camera_events (camera_id, ward_code, kind, started_at)
            SELECT camera_id, ward_code, 'offline', now() - interval '20 minutes'
            FROM cameras WHERE status = 'offline' ON CONFLICT DO NOTHING
            """
        )
        cur.execute(
            """
            INSERT INTO camera_metrics (ts, ward_code, camera_id, metric, value)
            SELECT ts, c.ward_code, c.camera_id, 'count_vehicles', floor(random() * 40)
            FROM cameras c, generate_series(now() - interval '2 hours', now(),
                                            interval '1 minute') ts
            ON CONFLICT DO NOTHING
            """
        )
        # applications: ~12 per ward over the period, some late, some open and overdue
        cur.execute(
            """
            INSERT INTO applications (id, ward_code, procedure, channel, received_at, due_at,
                                      completed_at, status, return_count, last_event_at)
            SELECT 'app-' || w.code || '-' || i, w.code,
                   (ARRAY['Cấp giấy khai sinh', 'Đăng ký kết hôn', 'Chứng thực bản sao',
                          'Cấp phép xây dựng', 'Đăng ký thường trú'])[1 + i %% 5],
                   (ARRAY['online', 'counter', 'postal'])[1 + (i * 7) %% 3],
                   r, r + interval '5 days',
                   CASE WHEN i %% 4 = 0 THEN NULL
                        ELSE r + (2 + random() * 5) * interval '1 day' END,
                   CASE WHEN i %% 4 = 0 THEN 'received' ELSE 'completed' END,
                   CASE WHEN i %% 9 = 0 THEN 1 ELSE 0 END, r
            FROM wards w, generate_series(1, 12) i,
                 LATERAL (SELECT now() - (i * 2.3 + random()) * interval '1 day' AS r) rr
            ON CONFLICT DO NOTHING
            """,
            {},
        )
        cur.execute(
            "UPDATE applications SET status = 'received', completed_at = NULL"
            " WHERE completed_at > now()"
        )
        # alerts: open, acknowledged and resolved ones in several wards
        cur.execute(
            """
            INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, value,
                                opened_at)
            SELECT 'rule_' || (i %% 3), 'ward:' || w.code || ':' || i, w.code,
                   (ARRAY['critical', 'warning', 'info'])[1 + i %% 3],
                   (ARRAY['open', 'open', 'acknowledged'])[1 + i %% 3],
                   (ARRAY['Mực nước vượt ngưỡng', 'AQI cao', 'Thiết bị mất kết nối'])[1 + i %% 3]
                   || ' — ' || w.name, 60 + i, now() - i * interval '17 minutes'
            FROM (SELECT code, name FROM wards ORDER BY code LIMIT 12) w,
                 generate_series(0, 2) i
            ON CONFLICT DO NOTHING
            """,
            {},
        )
        report_rows = 0
        if reports_dir is not None:
            reports_dir.mkdir(parents=True, exist_ok=True)
            path = reports_dir / "daily_kpis_test.csv"
            path.write_text("kpi,ward_code,value\non_time_rate,city,93.5\n", encoding="utf-8")
            cur.execute(
                "INSERT INTO report_files (name, schedule, format, path, period_from, period_to)"
                " VALUES ('daily_kpis', 'daily', 'csv', %s, %s, %s)",
                (str(path.resolve()), now - dt.timedelta(days=1), now),
            )
            report_rows = 1
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM wards")
        n_wards = (cur.fetchone() or (0,))[0]
    return {"wards": n_wards, "kpis": kpis, "reports": report_rows}


def add_users(conn: Connection, cfg: Config, password: str) -> dict[str, list[str]]:
    """One user per role (names = role names); the ward leader gets the first ward."""
    from ioc.users import add_user

    codes = sorted(cfg.ward_codes)
    grants = {"ward_leader": [codes[0]]}
    for role in ("admin", "operator", "ward_leader", "analyst", "kiosk"):
        add_user(conn, role, password, role, grants.get(role, []), replace=True)
    return grants
