"""The read side of incidents: the queue, counts, pins, one incident's surroundings.

Plain keyword-only functions ``(conn, *, ...)`` returning typed rows (the dataclasses below,
:mod:`ioc.db.rows`), or a DataFrame for the maps' pins; ``wards=None``
means every ward (operators), a list restricts to those wards (ward leaders: city-wide
incidents, ``ward_code`` NULL, are then left out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ioc.db import Connection
from ioc.db.rows import fetch, from_tuples
from ioc.incidents import core

SLA_STATES = ("ok", "warning", "breached", "met", "missed", "none")
ALL_STATUSES = ("new", "assigned", "in_progress", "resolved", "closed", "rejected")
OPEN_SQL = "i.status IN ('new', 'assigned', 'in_progress')"

# ok | warning | breached while open; met | missed once resolved; none when rejected.
# The same rule as ioc.incidents.sla.sla_state.
SLA_STATE_SQL = """
CASE WHEN i.status = 'rejected' THEN 'none'
     WHEN i.status IN ('resolved', 'closed')
          THEN CASE WHEN i.resolved_at <= i.due_at THEN 'met' ELSE 'missed' END
     WHEN i.due_at < %(now)s
          OR (i.acknowledged_at IS NULL AND i.response_due_at < %(now)s) THEN 'breached'
     WHEN i.warn_at <= %(now)s
          OR (i.acknowledged_at IS NULL AND i.response_warn_at <= %(now)s) THEN 'warning'
     ELSE 'ok' END
"""


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One incident of the queue."""

    id: int
    ward_code: str | None  # None: city-wide
    category: str
    severity: str
    status: str
    title: str
    assignee: str | None
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None
    response_due_at: dt.datetime | None
    due_at: dt.datetime | None
    resolved_at: dt.datetime | None
    escalation_level: int
    sla: str  # one of SLA_STATES


@dataclass(frozen=True, slots=True)
class LinkedAlert:
    id: int
    rule_id: str
    subject: str | None
    severity: str
    state: str
    title: str
    value: float | None
    opened_at: dt.datetime
    linked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LinkedReport:
    """A linked citizen report, without the reporter's contact (personal data)."""

    id: str
    channel: str
    category: str | None
    summary: str | None
    address: str | None
    status: str
    received_at: dt.datetime
    due_at: dt.datetime | None
    linked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NearbyCamera:
    camera_id: str
    name: str | None
    status: str
    last_seen: dt.datetime | None


@dataclass(frozen=True, slots=True)
class NearbyDevice:
    device_id: str
    device_type: str
    status: str
    last_seen: dt.datetime | None
    distance_m: float | None  # None: the device has no position


QUEUE_COLUMNS = list(QueueRow.__dataclass_fields__)


def _where(
    wards: Sequence[str] | None,
    categories: Sequence[str] | None,
    statuses: Sequence[str] | None,
    sla: Sequence[str] | None,
) -> str:
    parts = ["TRUE"]
    if wards is not None:
        parts.append("i.ward_code = ANY(%(wards)s::text[])")
    if categories:
        parts.append("i.category = ANY(%(cats)s::text[])")
    if statuses:
        parts.append("i.status = ANY(%(statuses)s::text[])")
    if sla:
        parts.append(f"({SLA_STATE_SQL}) = ANY(%(sla)s::text[])")
    return " AND ".join(parts)


def queue(
    conn: Connection,
    *,
    now: dt.datetime,
    wards: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    sla: Sequence[str] | None = None,
    limit: int = 500,
    count_up_to: int = 10_000,
) -> tuple[list[QueueRow], int]:
    """The incidents matching the filters, most urgent first (resolution due time), at most
    ``limit``; and how many match in all, counted up to ``count_up_to`` (more: that + 1)."""
    params: dict[str, Any] = {
        "now": now,
        "wards": list(wards or []),
        "cats": list(categories or []),
        "statuses": list(statuses or []),
        "sla": list(sla or []),
        "limit": int(limit),
    }
    where = _where(wards, categories, statuses, sla)
    # one ordered, limited branch per status (each an index range scan of (status, due_at)),
    # merged: the planner does not find this for "status = ANY(...) ORDER BY due_at" and would
    # read every incident of the statuses asked for
    wanted = [s for s in ALL_STATUSES if not statuses or s in statuses]
    branches = []
    for k, status in enumerate(wanted):
        params[f"s{k}"] = status
        branches.append(
            f"""(SELECT i.id, i.ward_code, i.category, i.severity, i.status, i.title,
                    i.assignee, i.opened_at, i.acknowledged_at, i.response_due_at, i.due_at,
                    i.resolved_at, i.escalation_level, {SLA_STATE_SQL} AS sla
             FROM incidents i WHERE i.status = %(s{k})s AND {where}
             ORDER BY i.due_at, i.id LIMIT %(limit)s)"""
        )
    with conn.cursor() as cur:
        if branches:
            cur.execute(
                " UNION ALL ".join(branches) + " ORDER BY due_at, id LIMIT %(limit)s", params
            )
            rows = cur.fetchall()
        else:
            rows = []
        cur.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM incidents i WHERE {where} LIMIT %(cap)s) c",
            {**params, "cap": int(count_up_to) + 1},
        )
        total = int((cur.fetchone() or (0,))[0])
    return from_tuples(QueueRow, QUEUE_COLUMNS, rows), total


def wards_of(conn: Connection, *, ids: Sequence[int]) -> dict[int, str | None]:
    """Incident id → its ward (None: city-wide), for the ids that exist."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, ward_code FROM incidents WHERE id = ANY(%s::bigint[])",
            ([int(i) for i in ids],),
        )
        return {int(r[0]): r[1] for r in cur.fetchall()}


def summary(
    conn: Connection, *, now: dt.datetime, wards: Sequence[str] | None = None
) -> dict[str, Any]:
    """Counts for the overview, a ward page and the wall: open incidents by state, by
    category and by SLA state; breached now; the oldest overdue; resolved and breached in the
    last 30 days."""
    params: dict[str, Any] = {
        "now": now,
        "wards": list(wards or []),
        "since": now - dt.timedelta(days=30),
    }
    scope = "i.ward_code = ANY(%(wards)s::text[])" if wards is not None else "TRUE"
    out: dict[str, Any] = {}
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT i.status, count(*) FROM incidents i WHERE {scope} AND {OPEN_SQL}"
            " GROUP BY i.status",
            params,
        )
        out["by_status"] = {r[0]: int(r[1]) for r in cur.fetchall()}
        cur.execute(
            f"SELECT i.category, count(*) FROM incidents i WHERE {scope} AND {OPEN_SQL}"
            " GROUP BY i.category ORDER BY count(*) DESC, i.category",
            params,
        )
        out["by_category"] = [(r[0], int(r[1])) for r in cur.fetchall()]
        cur.execute(
            f"SELECT {SLA_STATE_SQL} AS s, count(*) FROM incidents i WHERE {scope} AND {OPEN_SQL}"
            " GROUP BY s",
            params,
        )
        out["by_sla"] = {r[0]: int(r[1]) for r in cur.fetchall()}
        cur.execute(
            f"""
            SELECT i.id, i.ward_code, i.category, i.title, i.due_at,
                   LEAST(i.due_at, CASE WHEN i.acknowledged_at IS NULL
                                        THEN i.response_due_at END) AS late_since
            FROM incidents i WHERE {scope} AND {OPEN_SQL}
              AND (i.due_at < %(now)s
                   OR (i.acknowledged_at IS NULL AND i.response_due_at < %(now)s))
            ORDER BY late_since, i.id LIMIT 1
            """,
            params,
        )
        row = cur.fetchone()
        out["oldest_overdue"] = (
            None
            if row is None
            else dict(
                zip(
                    ("id", "ward_code", "category", "title", "due_at", "late_since"),
                    row,
                    strict=True,
                )
            )
        )
        cur.execute(
            f"""
            SELECT count(*) FILTER (WHERE i.resolved_at >= %(since)s),
                   count(*) FILTER (WHERE i.resolved_at >= %(since)s AND i.resolved_at > i.due_at),
                   count(*) FILTER (WHERE i.opened_at >= %(since)s)
            FROM incidents i WHERE {scope}
              AND (i.resolved_at >= %(since)s OR i.opened_at >= %(since)s)
            """,
            params,
        )
        r = cur.fetchone() or (0, 0, 0)
        out["resolved_30d"], out["late_30d"], out["opened_30d"] = (int(x) for x in r)
    out["open"] = sum(out["by_status"].values())
    out["breached"] = out["by_sla"].get("breached", 0)
    return out


def pins(
    conn: Connection, *, now: dt.datetime, wards: Sequence[str] | None = None, limit: int = 3000
) -> pd.DataFrame:
    """Open incidents with a place, for the maps: id, ward, category, title, lat, lon, sla."""
    scope = "i.ward_code = ANY(%(wards)s::text[])" if wards is not None else "TRUE"
    with conn.cursor() as cur:
        cur.execute(
            f"""
            SELECT i.id, i.ward_code, i.category, i.severity, i.title, i.lat, i.lon,
                   {SLA_STATE_SQL} AS sla
            FROM incidents i
            WHERE {scope} AND {OPEN_SQL} AND i.lat IS NOT NULL AND i.lon IS NOT NULL
            ORDER BY i.due_at LIMIT %(limit)s
            """,
            {"now": now, "wards": list(wards or []), "limit": limit},
        )
        rows = cur.fetchall()
    return pd.DataFrame(
        rows, columns=["id", "ward_code", "category", "severity", "title", "lat", "lon", "sla"]
    )


def sla_state_of(conn: Connection, *, incident_id: int, now: dt.datetime) -> str | None:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {SLA_STATE_SQL} FROM incidents i WHERE i.id = %(id)s",
            {"now": now, "id": incident_id},
        )
        row = cur.fetchone()
    return None if row is None else str(row[0])


def linked_alerts(conn: Connection, *, incident_id: int) -> list[LinkedAlert]:
    return fetch(
        conn,
        LinkedAlert,
        """
        SELECT a.id, a.rule_id, a.subject, a.severity, a.state, a.title, a.value, a.opened_at,
               l.linked_at
        FROM incident_links l JOIN alerts a ON a.id::text = l.ref
        WHERE l.incident_id = %s AND l.kind = 'alert' AND l.unlinked_at IS NULL
        ORDER BY a.opened_at
        """,
        (incident_id,),
    )


def linked_reports(conn: Connection, *, incident_id: int) -> list[LinkedReport]:
    """Linked citizen reports, without the reporter's contact (personal data)."""
    return fetch(
        conn,
        LinkedReport,
        """
        SELECT r.id, r.channel, r.category, r.summary, r.address, r.status, r.received_at,
               r.due_at, l.linked_at
        FROM incident_links l JOIN reports r ON r.id = l.ref
        WHERE l.incident_id = %s AND l.kind = 'report' AND l.unlinked_at IS NULL
        ORDER BY r.received_at
        """,
        (incident_id,),
    )


NEARBY_M = 2000.0  # sensors this close to an incident's place are listed, nearest first


def nearby(
    conn: Connection,
    *,
    ward_code: str | None,
    lat: float | None = None,
    lon: float | None = None,
    within_m: float = NEARBY_M,
    limit: int = 40,
) -> tuple[list[NearbyCamera], list[NearbyDevice]]:
    """The cameras of the incident's ward, and its sensors: with a place, the devices with a
    position within ``within_m`` of it, nearest first (``distance_m``; any ward), then the
    ward's devices without a position; without a place, the ward's devices."""
    dev_cols = list(NearbyDevice.__dataclass_fields__)
    cams: list[NearbyCamera] = []
    rows: list[tuple[Any, ...]] = []
    with conn.cursor() as cur:
        if ward_code is not None:
            cur.execute(
                "SELECT camera_id, name, status, last_seen FROM cameras WHERE ward_code = %s"
                " ORDER BY camera_id",
                (ward_code,),
            )
            cams = from_tuples(
                NearbyCamera, list(NearbyCamera.__dataclass_fields__), cur.fetchall()
            )
        if lat is not None and lon is not None:
            dist = core.DISTANCE_SQL.format(lat1="%(lat)s", lon1="%(lon)s", lat2="lat", lon2="lon")
            cur.execute(
                f"SELECT device_id, device_type, status, last_seen, d FROM ("
                f" SELECT device_id, device_type, status, last_seen, {dist} AS d FROM devices"
                "  WHERE lat IS NOT NULL AND lon IS NOT NULL"
                "   AND lat BETWEEN %(lat)s - %(dlat)s AND %(lat)s + %(dlat)s) x"
                " WHERE d <= %(within)s ORDER BY d, device_id LIMIT %(limit)s",
                {"lat": lat, "lon": lon, "dlat": within_m / 111320.0, "within": within_m,
                 "limit": limit},
            )  # fmt: skip
            rows = cur.fetchall()
            if ward_code is not None:
                cur.execute(
                    "SELECT device_id, device_type, status, last_seen, NULL FROM devices"
                    " WHERE ward_code = %s AND (lat IS NULL OR lon IS NULL)"
                    " ORDER BY device_type, device_id LIMIT %s",
                    (ward_code, limit),
                )
                rows += cur.fetchall()
        elif ward_code is not None:
            cur.execute(
                "SELECT device_id, device_type, status, last_seen, NULL FROM devices"
                " WHERE ward_code = %s ORDER BY device_type, device_id LIMIT %s",
                (ward_code, limit),
            )
            rows = cur.fetchall()
    devs = from_tuples(NearbyDevice, dev_cols, rows[:limit])
    return cams, devs
