"""Worker messages → units of work for the shared batched writer (``ingest.writer``).

Metrics are rows of ``camera_metrics`` (long format, idempotent on camera/metric/ts). Events
and camera status are idempotent SQL steps (``Work.apply``) run in the same transaction as the
rows of their batch, in submission order.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ingest.cameras.worker import Event, Metrics, Status
from ingest.writer import CAMERA_METRICS, Cursor, Work
from ioc.db.service_status import record_service_status

SQL_REGISTER = """
INSERT INTO cameras (camera_id, ward_code, name, status, lat, lon, updated_at)
VALUES (%s, %s, %s, 'unknown', %s, %s, now())
ON CONFLICT (camera_id) DO UPDATE
    SET ward_code = EXCLUDED.ward_code, name = EXCLUDED.name,
        lat = COALESCE(EXCLUDED.lat, cameras.lat), lon = COALESCE(EXCLUDED.lon, cameras.lon),
        updated_at = now()
"""

SQL_EVENT_OPEN = """
INSERT INTO camera_events (camera_id, ward_code, kind, started_at, ended_at, details)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (camera_id, kind, started_at) DO NOTHING
"""

SQL_EVENT_CLOSE = """
UPDATE camera_events SET ended_at = %s
WHERE camera_id = %s AND kind = %s AND started_at = %s AND ended_at IS NULL
"""

SQL_STATUS = """
UPDATE cameras
SET status = %s,
    last_seen = CASE WHEN %s::timestamptz IS NULL THEN last_seen
                     ELSE GREATEST(COALESCE(last_seen, %s::timestamptz), %s::timestamptz) END,
    updated_at = now()
WHERE camera_id = %s
"""

SQL_OPEN_EVENTS = """
SELECT camera_id, kind, started_at FROM camera_events WHERE ended_at IS NULL
"""


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def metrics_work(m: Metrics) -> Work:
    ts = utc(m.ts)
    rows = [(ts, m.ward, m.camera_id, k, float(v)) for k, v in sorted(m.values.items())]
    return Work(rows={CAMERA_METRICS: list(rows)})


def event_work(e: Event) -> Work:
    if e.action == "open":
        args: tuple[Any, ...] = (
            e.camera_id,
            e.ward,
            e.kind,
            utc(e.started_at),
            utc(e.ended_at) if e.ended_at is not None else None,
            json.dumps(e.details),
        )

        def apply(cur: Cursor) -> None:
            cur.execute(SQL_EVENT_OPEN, args)

    else:
        close_args = (
            utc(e.ended_at if e.ended_at is not None else e.started_at),
            e.camera_id,
            e.kind,
            utc(e.started_at),
        )

        def apply(cur: Cursor) -> None:
            cur.execute(SQL_EVENT_CLOSE, close_args)

    return Work(apply=apply)


def status_work(s: Status) -> Work:
    seen = utc(s.last_seen) if s.last_seen is not None else None
    args = (s.status, seen, seen, seen, s.camera_id)

    def apply(cur: Cursor) -> None:
        cur.execute(SQL_STATUS, args)

    return Work(apply=apply)


def service_status_work(instance: str, status: str, details: dict[str, Any]) -> Work:
    def apply(cur: Cursor) -> None:
        record_service_status(cur, "cameras", instance, status, details)

    return Work(apply=apply)
