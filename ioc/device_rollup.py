"""Per-device daily and hourly summaries (``device_daily``, ``device_hourly``) of closed local
days, for device pages over days to months: the scheduler's roll-up job calls :func:`refresh`.
Incremental from a watermark in ``job_watermarks`` (``device_daily`` = the first local day not
summarised yet); the last ``storage.rollup_lookback_hours`` are summarised again, so late
readings are counted. Hourly summaries are kept for :data:`HOURLY_KEEP` (the device page reads
them for ranges up to a month; older custom ranges average the raw readings)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ioc.config import Config
from ioc.db import Connection
from ioc.kpi.compute import get_watermark, set_watermark

JOB = "device_daily"
MAX_DAYS_PER_RUN = 400  # a first run over a year of history goes on at the next one
HOURLY_KEEP = dt.timedelta(days=62)  # device_hourly before the watermark

_DAY_SQL = """
INSERT INTO device_daily (device_id, metric, day, n, avg, min, max)
SELECT device_id, metric, %(day)s::date, count(*), avg(value), min(value), max(value)
FROM readings WHERE ts >= %(lo)s AND ts < %(hi)s
GROUP BY device_id, metric
ON CONFLICT (device_id, metric, day) DO UPDATE
SET n = EXCLUDED.n, avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max
"""


_HOUR_SQL = """
INSERT INTO device_hourly (device_id, metric, hour, n, avg, min, max)
SELECT device_id, metric, date_bin('1 hour'::interval, ts, %(lo)s), count(*), avg(value),
       min(value), max(value)
FROM readings WHERE ts >= %(lo)s AND ts < %(hi)s
GROUP BY 1, 2, 3
ON CONFLICT (device_id, metric, hour) DO UPDATE
SET n = EXCLUDED.n, avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max
"""


def refresh(conn: Connection, cfg: Config, *, now: dt.datetime | None = None) -> int:
    """Summarise every closed local day from the watermark (or the oldest reading) on; returns
    the number of days done. Commits after each day."""
    tz = ZoneInfo(cfg.system.timezone)
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(tz).date()
    wm = get_watermark(conn, JOB)
    if wm is None:
        with conn.cursor() as cur:
            cur.execute("SELECT min(ts) FROM readings")
            row = cur.fetchone()
        conn.commit()
        if not row or row[0] is None:
            return 0
        first = row[0].astimezone(tz).date()
    else:
        late = now - dt.timedelta(hours=cfg.system.storage.rollup_lookback_hours)
        first = min(wm.astimezone(tz).date(), late.astimezone(tz).date())
    done = 0
    day = first
    last = today - (HOURLY_KEEP + dt.timedelta(days=1))  # days whose hours are dropped anyway
    while day < today and done < MAX_DAYS_PER_RUN:
        lo = dt.datetime.combine(day, dt.time(), tz)
        hi = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
        with conn.cursor() as cur:
            cur.execute(_DAY_SQL, {"day": day, "lo": lo, "hi": hi})
            if day >= last:
                cur.execute(_HOUR_SQL, {"lo": lo, "hi": hi})
        set_watermark(conn, JOB, hi)
        conn.commit()
        done += 1
        day += dt.timedelta(days=1)
    if done:
        cutoff = dt.datetime.combine(day, dt.time(), tz) - HOURLY_KEEP
        with conn.cursor() as cur:
            cur.execute("DELETE FROM device_hourly WHERE hour < %s", (cutoff,))
        conn.commit()
    return done
