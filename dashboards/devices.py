"""Device pages' data: one device, its readings over a range at a resolution chosen by the
range's length, its status history; and the server-side ward check of ``/devices/{id}``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import flask
import pandas as pd
from werkzeug.wrappers import Response

from ioc.db import Connection
from ioc.device_rollup import HOURLY_KEEP

TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the buckets' days (as device_rollup's, ioc.yaml timezone)

# range key -> length; the resolution follows from the length (see resolution())
RANGES: dict[str, dt.timedelta] = {
    "1h": dt.timedelta(hours=1),
    "6h": dt.timedelta(hours=6),
    "24h": dt.timedelta(days=1),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
    "90d": dt.timedelta(days=90),
    "365d": dt.timedelta(days=365),
}
DEFAULT_RANGE = "24h"
RAW_UP_TO = dt.timedelta(days=2)  # raw readings up to 2 days (≤ 2,880 points at 1/min)
HOURLY_UP_TO = dt.timedelta(days=31)  # hourly averages up to a month, daily beyond


def resolution(span: dt.timedelta) -> str:
    """'raw', 'hour' or 'day' for a range of this length."""
    if span <= RAW_UP_TO:
        return "raw"
    return "hour" if span <= HOURLY_UP_TO else "day"


def device(conn: Connection, device_id: str) -> dict[str, Any] | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT device_id, ward_code, device_type, status, first_seen, last_seen,"
            " status_changed_at, lat, lon FROM devices WHERE device_id = %s",
            (device_id,),
        )
        row = cur.fetchone()
        cols = [d[0] for d in cur.description or []]
    return dict(zip(cols, row, strict=True)) if row else None


def readings(
    conn: Connection,
    *,
    device_id: str,
    metrics: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    step: str,
) -> pd.DataFrame:
    """Columns metric, ts, value (the mean for 'hour'/'day'), lo, hi, n. ``step`` 'raw',
    'hour' or 'day'; buckets in Asia/Ho_Chi_Minh days. Closed days come from the scheduler's
    summaries (device_daily, device_hourly), the rest from the device's readings through the
    (device_id, metric, ts) index."""
    if step == "day":
        # closed days from device_daily (the scheduler's summaries), the rest from readings
        sql = """
            SELECT metric, (day::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh') AS ts,
                   avg AS value, min AS lo, max AS hi, n
            FROM device_daily
            WHERE device_id = %(d)s AND metric = ANY(%(m)s)
              AND day >= (%(a)s AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
              AND day < %(split)s::date
            UNION ALL
            SELECT metric, date_bin('1 day'::interval, ts, '2000-01-01 00:00+07') AS ts,
                   avg(value), min(value), max(value), count(*)
            FROM readings
            WHERE device_id = %(d)s AND metric = ANY(%(m)s) AND ts < %(b)s
              AND ts >= greatest(%(a)s, %(split)s::date::timestamp AT TIME ZONE
                                 'Asia/Ho_Chi_Minh')
            GROUP BY 1, 2
            ORDER BY 1, 2
        """
    elif step == "raw":
        sql = """
            SELECT metric, ts, value, value AS lo, value AS hi, 1 AS n FROM readings
            WHERE device_id = %(d)s AND metric = ANY(%(m)s) AND ts >= %(a)s AND ts < %(b)s
            ORDER BY metric, ts
        """
    else:
        # closed days' hours from device_hourly (kept for device_rollup.HOURLY_KEEP before
        # the watermark), hours before or after those from readings
        sql = """
            SELECT metric, ts, value, lo, hi, n FROM (
                SELECT metric, hour AS ts, avg AS value, min AS lo, max AS hi, n
                FROM device_hourly
                WHERE device_id = %(d)s AND metric = ANY(%(m)s)
                  AND hour >= greatest(%(a)s, %(keep)s) AND hour < least(%(b)s, %(split_ts)s)
                UNION ALL
                SELECT metric, date_bin('1 hour'::interval, ts, '2000-01-01 00:00+07'),
                       avg(value), min(value), max(value), count(*)
                FROM readings
                WHERE device_id = %(d)s AND metric = ANY(%(m)s)
                  AND ts >= %(a)s AND ts < least(%(b)s, %(keep)s)
                GROUP BY 1, 2
                UNION ALL
                SELECT metric, date_bin('1 hour'::interval, ts, '2000-01-01 00:00+07'),
                       avg(value), min(value), max(value), count(*)
                FROM readings
                WHERE device_id = %(d)s AND metric = ANY(%(m)s)
                  AND ts >= greatest(%(a)s, %(split_ts)s) AND ts < %(b)s
                GROUP BY 1, 2
            ) AS parts
            ORDER BY 1, 2
        """
    split = summarised_until(conn)
    split_ts = dt.datetime.combine(split, dt.time(), TZ)
    params = {
        "split": split,
        "split_ts": split_ts,
        "keep": split_ts - HOURLY_KEEP,
        "d": device_id,
        "m": list(metrics),
        "a": start,
        "b": end,
    }
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=["metric", "ts", "value", "lo", "hi", "n"])


def summarised_until(conn: Connection) -> dt.date:
    """The first local day not in ``device_daily`` yet (its watermark); 1970 when none."""
    with conn.cursor() as cur:
        cur.execute("SELECT done_until FROM job_watermarks WHERE job = 'device_daily'")
        row = cur.fetchone()
    if not row or row[0] is None:
        return dt.date(1970, 1, 1)
    return row[0].astimezone(TZ).date()


def status_history(conn: Connection, device_id: str, *, limit: int = 50) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ts, status FROM device_status_events WHERE device_id = %s"
            " ORDER BY ts DESC LIMIT %s",
            (device_id, limit),
        )
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=["ts", "status"])


DEVICE_PATH = "/devices/"


def guard() -> Response | None:
    """Flask before_request (after the sign-in guard): ``/devices/{id}`` is refused (403) to a
    user who may not see the device's ward, and answers 404 for an unknown device, before
    any page is served."""
    path = flask.request.path
    if not path.startswith(DEVICE_PATH):
        return None
    user = getattr(flask.g, "user", None)
    if user is None:  # the sign-in guard let it through: an open path, nothing to check
        return None
    device_id = path[len(DEVICE_PATH) :].strip("/")
    from dashboards.state import state

    with state().pool.conn() as conn:
        dev = device(conn, device_id)
    if dev is None:
        return _html(404, "not_found")
    if not user.can("view") or not user.may_see_ward(str(dev["ward_code"])):
        return _html(403, "forbidden")
    return None


def _html(code: int, key: str) -> Response:
    from dashboards.security import _refuse

    if code == 403:
        return _refuse(403)  # the one refusal page (menu, way back, language)
    from dashboards.i18n import t

    return flask.Response(
        f'{{"error": "{t(key, "en").lower()}"}}', status=code, mimetype="application/json"
    )
