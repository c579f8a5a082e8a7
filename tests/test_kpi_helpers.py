"""Helpers (no tests) that insert small, hand-checked fixtures directly into the tables."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ioc.db import Connection

ICT = dt.timezone(dt.timedelta(hours=7))


def t(s: str) -> dt.datetime:
    """'2025-03-10 08:00' local (Asia/Ho_Chi_Minh) → aware datetime."""
    return dt.datetime.fromisoformat(s).replace(tzinfo=ICT)


def add_app(
    conn: Connection,
    app_id: str,
    ward: str,
    received: str,
    due: str | None,
    *,
    status: str = "received",
    channel: str = "counter",
    completed: str | None = None,
    cancelled: str | None = None,
    returned: str | None = None,
    return_count: int = 0,
    paused_s: float = 0,
    events: list[tuple[str, str]] | None = None,
) -> None:
    times = [x for x in (received, completed, cancelled, returned) if x]
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO applications (id, ward_code, procedure, channel, received_at, due_at,
                 completed_at, status, returned_at, return_count, paused_seconds, cancelled_at,
                 last_event_at)
               VALUES (%s,%s,'P1',%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)""",
            (
                app_id,
                ward,
                channel,
                t(received),
                t(due) if due else None,
                t(completed) if completed else None,
                status,
                t(returned) if returned else None,
                return_count,
                paused_s,
                t(cancelled) if cancelled else None,
                max(t(x) for x in times),
            ),
        )
        for ev, ts in events or []:
            cur.execute(
                "INSERT INTO application_events (app_id, event, ts, ward_code, payload)"
                " VALUES (%s,%s,%s,%s,%s)",
                (app_id, ev, t(ts), ward, json.dumps({"id": app_id, "event": ev})),
            )
    conn.commit()


def add_readings(
    conn: Connection, ward: str, device: str, metric: str, points: list[tuple[str, float]]
) -> None:
    with conn.cursor() as cur:
        for ts, v in points:
            cur.execute(
                "INSERT INTO readings (ts, ward_code, device_id, metric, value)"
                " VALUES (%s,%s,%s,%s,%s)",
                (t(ts), ward, device, metric, v),
            )
    conn.commit()


def add_device(
    conn: Connection,
    device: str,
    ward: str,
    dtype: str,
    *,
    first_seen: str,
    last_seen: str | None = None,
    status: str = "online",
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO devices (device_id, ward_code, device_type, status, first_seen,"
            " last_seen, status_changed_at) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            (
                device,
                ward,
                dtype,
                status,
                t(first_seen),
                t(last_seen) if last_seen else None,
                t(first_seen),
            ),
        )
    conn.commit()


def execute(conn: Connection, sql: str, *params: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, params)
    conn.commit()
