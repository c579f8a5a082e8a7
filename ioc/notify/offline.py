"""``device_offline_digest``: once per digest period, for each ward, one message listing the
devices that went offline in the period just ended (routed like any event: by default to
operators and the ward's leaders). Idempotent: the reference is ward × period, so several
workers, or a worker run twice, write it once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ioc.config import Config
from ioc.db import Connection
from ioc.notify.outbox import enqueue

MAX_LISTED = 200


def offline_digest(conn: Connection, cfg: Config, *, now: dt.datetime | None = None) -> int:
    """Messages written for the period ending at the last ``digest.every_min`` boundary."""
    now = now or dt.datetime.now(dt.UTC)
    step = cfg.notifications.digest.every_min * 60
    end = dt.datetime.fromtimestamp(int(now.timestamp()) // step * step, dt.UTC)
    start = end - dt.timedelta(seconds=step)
    written = 0
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ward_code, device_id, device_type, status_changed_at FROM devices"
            " WHERE status = 'offline' AND status_changed_at >= %s AND status_changed_at < %s"
            " ORDER BY ward_code, device_id",
            (start, end),
        )
        by_ward: dict[str, list[dict[str, Any]]] = {}
        for ward, dev, dtype, since in cur.fetchall():
            by_ward.setdefault(ward, []).append(
                {
                    "device_id": dev,
                    "device_type": dtype,
                    "ward_code": ward,
                    "since": since.isoformat(),
                }
            )
        for ward, devices in by_ward.items():
            w = cfg.ward(ward)
            for d in devices:
                d["ward_name"] = w.name if w else ward
            written += enqueue(
                cur,
                "device_offline_digest",
                ward_code=ward,
                severity=None,
                ref_kind="offline_digest",
                ref_id=f"{ward}:{start.isoformat()}",
                params={"devices": devices[:MAX_LISTED], "count": len(devices)},
                cfg=cfg,
                now=now,
            )
    conn.commit()
    return written
