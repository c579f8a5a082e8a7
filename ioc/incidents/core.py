"""The incident lifecycle, links (merge, split), SOP steps, comments and the audit trail.

Every function takes an open connection and does NOT commit: the caller's transaction holds
the change, its ``incident_events`` rows and its notifications (outbox) together. Every change
is recorded in ``incident_events`` (who, what, when, from which screen or API: ``source``).

Lifecycle::

    new ──assign──▶ assigned ──start──▶ in_progress ──resolve──▶ resolved ──close──▶ closed
     │                 │                    │                        │
     └────────────── reject ───────────────┘                        └─ reopen ─▶ assigned/new
    (resolved, closed and rejected incidents may be reopened; the clocks start again)

Refusals raise :class:`IncidentError` with a ``code`` the pages translate.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2

from ioc.config import Config
from ioc.config.notifications import Recipients
from ioc.db import Connection
from ioc.errors import IOCError
from ioc.incidents import rules
from ioc.notify import outbox

log = logging.getLogger("ioc.incidents")

OPEN = ("new", "assigned", "in_progress")
DONE = ("resolved", "closed")
STATUSES = ("new", "assigned", "in_progress", "resolved", "closed", "rejected")
SEVERITIES = ("info", "warning", "critical")
SOURCES = ("web", "api", "cli", "scheduler", "rule", "link", "sim")
KINDS = ("report", "alert")
MAX_TEXT = 4000

COLUMNS = (
    "id, ward_code, category, severity, status, title, description, lat, lon, origin,"
    " auto_rule, assignee, assignee_kind, opened_at, opened_by, assigned_at, acknowledged_at,"
    " acknowledged_by, last_ack_at, started_at, resolved_at, resolution, closed_at, rejected_at,"
    " reject_reason, merged_into, clock_start, response_due_at, response_warn_at, due_at,"
    " warn_at, response_warned_at, response_breached_at, warned_at, breached_at,"
    " escalation_level, escalated_at, updated_at"
)
_NAMES = [c.strip() for c in COLUMNS.split(",")]


# a history being written (the demo's back-fill: sensors/incident_ops.py) is not news: no
# notification goes out for it (see :func:`history`)
_HISTORY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ioc_incident_history", default=False
)


@contextlib.contextmanager
def history() -> Iterator[None]:
    """Within this block the changes are past events being recorded (a back-fill): the audit
    trail gets them as usual, the notifications outbox does not."""
    token = _HISTORY.set(True)
    try:
        yield
    finally:
        _HISTORY.reset(token)


class IncidentError(IOCError):
    """A refused incident action; ``code`` names why (translated by the pages)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def _clean_text(value: str | None, field: str, *, required: bool = False) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise IncidentError(f"needs_{field}", f"{field} is required")
    if len(text) > MAX_TEXT:
        raise IncidentError("too_long", f"{field} longer than {MAX_TEXT} characters")
    return text or None


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")


def get(conn: Connection, incident_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    """One incident as a dict of its columns, or None."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM incidents WHERE id = %s" + (" FOR UPDATE" if lock else ""),
            (incident_id,),
        )
        row = cur.fetchone()
    return None if row is None else dict(zip(_NAMES, row, strict=True))


def _must(conn: Connection, incident_id: int) -> dict[str, Any]:
    inc = get(conn, incident_id, lock=True)
    if inc is None:
        raise IncidentError("not_found", f"no incident {incident_id}")
    return inc


def event(
    conn: Connection,
    incident_id: int,
    action: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime,
    **details: Any,
) -> None:
    """Append one row to the audit trail."""
    _check_source(source)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO incident_events (incident_id, ts, actor, source, action, details)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (incident_id, now, actor, source, action, json.dumps(details, default=str)),
        )


def notify(
    conn: Connection,
    cfg: Config,
    kind: str,
    inc: dict[str, Any],
    *,
    level: int = 0,
    seq: int = 0,
    roles: Sequence[str] = (),
    routes: bool = False,
    now: dt.datetime | None = None,
    **params: Any,
) -> int:
    """NOTIFICATIONS CALL SITE (the only one): incident_assigned, sla_warning, sla_breached
    (and its reminders) and escalation go to the outbox (``ioc.notify.outbox.enqueue``) in the
    caller's transaction. Recipients: the routes of notifications.yaml for ``kind``; ``roles``
    name them instead (the escalation chain's), or besides the routes with ``routes=True`` (a
    reminder). (kind, incident, level, seq) make the idempotency key. ``now``: the event's time
    (the sweep's), for the rows' times and quiet hours. Nothing is sent for a history
    (:func:`history`). Returns the number of messages queued (0: queued before)."""
    if _HISTORY.get():
        return 0
    recipients = None
    if roles:
        recipients = [Recipients.model_validate({"roles": list(roles)})]
        if routes:
            recipients += outbox.matching_routes(
                cfg.notifications,
                kind,
                severity=inc.get("severity"),
                ward=inc.get("ward_code"),
                category=inc.get("category"),
            )
    with conn.cursor() as cur:
        return outbox.enqueue(
            cur,
            kind,
            ward_code=inc.get("ward_code"),
            severity=inc.get("severity"),
            category=inc.get("category"),
            ref_kind="incident",
            ref_id=inc["id"],
            params={"title": f"#{inc['id']} {inc.get('title') or ''}", **params},
            cfg=cfg,
            recipients=recipients,
            level=level,
            seq=seq,
            now=now,
        )


def cancel_reminders(conn: Connection, incident_id: int, reason: str) -> int:
    """Reminders and escalation messages of the incident not yet sent (``pending``: held by
    quiet hours, say, or waiting for a digest) are cancelled: someone acknowledged it, or it
    is no longer open (as the acknowledge link and the alerts' escalation do). Returns how
    many."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE notifications SET status = 'cancelled', leased_until = NULL,"
            " last_error = %s WHERE ref_kind = 'incident' AND ref_id = %s"
            " AND (kind = 'escalation' OR (kind = 'sla_breached' AND payload ? 'reminder'))"
            " AND status IN ('pending', 'digest')",
            (f"stopped: {reason}", str(incident_id)),
        )
        return int(cur.rowcount)


def clock_seq(inc: dict[str, Any], offset: int = 0) -> int:
    """A number per clock cycle (opening, each reopening) for notification keys."""
    return int(inc["clock_start"].timestamp()) * 4 + offset


def _update(conn: Connection, incident_id: int, now: dt.datetime, **cols: Any) -> None:
    names = list(cols)
    sets = "".join(f"{n} = %s, " for n in names)
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE incidents SET {sets}updated_at = %s WHERE id = %s",
            [*(cols[n] for n in names), now, incident_id],
        )


# --------------------------------------------------------------------------- creation


def create(
    conn: Connection,
    cfg: Config,
    *,
    ward_code: str | None,
    category: str,
    title: str,
    actor: str,
    source: str,
    severity: str = "warning",
    description: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    origin: str = "manual",
    auto_rule: str | None = None,
    links: Iterable[tuple[str, str]] = (),
    now: dt.datetime | None = None,
) -> int:
    """A new incident (status ``new``), its clocks started; ``links`` = (kind, ref) pairs."""
    now = _now(now)
    _check_source(source)
    if ward_code is not None and ward_code not in cfg.ward_codes:
        raise IncidentError("bad_ward", f"unknown ward {ward_code!r}")
    if category not in rules.categories(cfg):
        raise IncidentError("bad_category", f"unknown category {category!r}")
    if severity not in SEVERITIES:
        raise IncidentError("bad_severity", f"unknown severity {severity!r}")
    title_ = _clean_text(title, "title", required=True)
    desc = _clean_text(description, "description")
    if (lat is None or lon is None) and ward_code is not None:
        ward = cfg.ward(ward_code)
        if ward is not None:
            lat, lon = ward.lat, ward.lon
    c = rules.clocks(cfg, category, severity, now)
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO incidents (ward_code, category, severity, status, title, description,
                lat, lon, origin, auto_rule, opened_at, opened_by, clock_start,
                response_due_at, response_warn_at, due_at, warn_at, updated_at)
            VALUES (%s, %s, %s, 'new', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING id
            """,
            (
                ward_code,
                category,
                severity,
                title_,
                desc,
                lat,
                lon,
                origin,
                auto_rule,
                now,
                actor,
                now,
                c.response_due_at,
                c.response_warn_at,
                c.due_at,
                c.warn_at,
                now,
            ),
        )
        row = cur.fetchone()
    assert row is not None
    iid = int(row[0])
    event(
        conn,
        iid,
        "opened",
        actor=actor,
        source=source,
        now=now,
        origin=origin,
        ward=ward_code,
        category=category,
        severity=severity,
        title=title_,
        response_due_at=c.response_due_at.isoformat(),
        due_at=c.due_at.isoformat(),
    )
    for kind, ref in links:
        link(conn, iid, kind, ref, actor=actor, source=source, now=now)
    return iid


def from_report(
    conn: Connection,
    cfg: Config,
    report_id: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> int:
    """An incident opened from a citizen report (its ward, category, summary, place)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ward_code, category, summary, lat, lon, address FROM reports WHERE id = %s",
            (report_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise IncidentError("not_found", f"no report {report_id!r}")
    ward, category, summary, lat, lon, address = row
    if category not in rules.categories(cfg):
        category = "other"
    return create(
        conn,
        cfg,
        ward_code=ward,
        category=category,
        title=(summary or report_id)[:200],
        description=address,
        lat=lat,
        lon=lon,
        origin="report",
        links=[("report", report_id)],
        actor=actor,
        source=source,
        now=now,
    )


def incident_of(conn: Connection, kind: str, ref: str) -> int | None:
    """The incident a report or alert is linked to now, or None."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT incident_id FROM incident_links WHERE kind = %s AND ref = %s"
            " AND unlinked_at IS NULL",
            (kind, ref),
        )
        row = cur.fetchone()
    return None if row is None else int(row[0])


# metres between two points (equirectangular: good to a few metres over a ward)
DISTANCE_SQL = (
    "111320.0 * sqrt(power({lat2} - {lat1}, 2)"
    " + power(cos(radians({lat1})) * ({lon2} - {lon1}), 2))"
)


def open_from_report(
    conn: Connection,
    cfg: Config,
    report_id: str,
    *,
    actor: str,
    source: str,
    ward_code: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[int, str]:
    """The operations centre takes a citizen report up as an incident: ``(id, outcome)``.

    * ``exists``: the report is linked to an incident already (taking it up twice opens
      nothing: retries are safe);
    * ``merged``: an open incident of the same problem (same ward and category, opened by
      ``now``, within ``report_merge_m`` of incidents.yaml of the report's place) takes it;
    * ``opened``: a new incident (:func:`from_report`).

    ``ward_code``, when given, must be the report's ward (a ward's app acts on its own)."""
    now = _now(now)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ward_code, category, lat, lon, received_at FROM reports WHERE id = %s",
            (report_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise IncidentError("not_found", f"no report {report_id!r}")
    ward, category, lat, lon, received_at = row
    if ward_code is not None and ward_code != ward:
        raise IncidentError("bad_ward", f"report {report_id!r} is not of ward {ward_code!r}")
    if received_at is not None and received_at > now:
        raise IncidentError("bad_state", f"report {report_id!r} is received after {now}")
    if category not in rules.categories(cfg):
        category = "other"
    with conn.cursor() as cur:
        # one decision at a time per ward and category (two duplicates arriving together)
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('ioc.incidents.report'), hashtext(%s))",
            (f"{ward}:{category}",),
        )
    iid = incident_of(conn, "report", report_id)
    if iid is not None:
        return iid, "exists"
    radius = rules.settings(cfg).report_merge_m
    near = DISTANCE_SQL.format(lat1="lat", lon1="lon", lat2="%(lat)s", lon2="%(lon)s")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM incidents WHERE ward_code = %(ward)s AND category = %(cat)s"
            " AND status IN ('new', 'assigned', 'in_progress') AND opened_at <= %(now)s"
            + (
                f" AND lat IS NOT NULL AND {near} <= %(radius)s ORDER BY {near}, id"
                if lat is not None and lon is not None
                else " ORDER BY opened_at DESC, id"
            )
            + " LIMIT 1",
            {"ward": ward, "cat": category, "now": now, "lat": lat, "lon": lon, "radius": radius},
        )
        hit = cur.fetchone()
    if hit is not None and radius > 0:
        iid = int(hit[0])
        link(conn, iid, "report", report_id, actor=actor, source=source, now=now)
        return iid, "merged"
    return from_report(conn, cfg, report_id, actor=actor, source=source, now=now), "opened"


def alert_row(conn: Connection, alert_id: int) -> dict[str, Any] | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, rule_id, subject, ward_code, severity, title FROM alerts WHERE id = %s",
            (alert_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return dict(
        zip(("id", "rule_id", "subject", "ward_code", "severity", "title"), row, strict=True)
    )


def category_of_alert(cfg: Config, rule_id: str) -> str:
    for a in rules.settings(cfg).auto_open:
        if a.alert_rule == rule_id:
            return a.category
    return "other"


def from_alert(
    conn: Connection,
    cfg: Config,
    alert_id: int,
    *,
    actor: str,
    source: str,
    category: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """An incident opened by an operator from an alert."""
    a = alert_row(conn, alert_id)
    if a is None:
        raise IncidentError("not_found", f"no alert {alert_id}")
    return create(
        conn,
        cfg,
        ward_code=a["ward_code"],
        category=category or category_of_alert(cfg, a["rule_id"]),
        severity=a["severity"],
        title=a["title"],
        origin="alert",
        links=[("alert", str(alert_id))],
        actor=actor,
        source=source,
        now=now,
    )


def on_alert_opened(
    conn: Connection,
    cfg: Config,
    *,
    alert_id: int,
    rule_id: str,
    severity: str,
    ward_code: str | None,
    title: str,
    now: dt.datetime,
) -> int | None:
    """The auto-open hook (called by ``ioc.alerts.evaluate`` in its transaction for every alert
    it opens): an alert matching an ``auto_open`` rule opens one incident per ward while that
    one is open; further alerts of the rule in the ward are linked to it. Returns the
    incident's id, or None when no rule matches."""
    match = None
    for a in rules.settings(cfg).auto_open:
        if a.alert_rule == rule_id and a.severity in (None, severity):
            match = a
            break
    if match is None:
        return None
    # an incident that cannot be opened must not cost the alert: a savepoint keeps them apart
    with conn.cursor() as cur:
        cur.execute("SAVEPOINT incident_auto_open")
    try:
        iid = _auto_open(
            conn, cfg, match.category, alert_id, rule_id, severity, ward_code, title, now
        )
    except (IncidentError, psycopg2.Error) as exc:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK TO SAVEPOINT incident_auto_open")
        log.warning("alert %s: no incident opened (%s)", alert_id, str(exc).splitlines()[0])
        return None
    with conn.cursor() as cur:
        cur.execute("RELEASE SAVEPOINT incident_auto_open")
    return iid


def _auto_open(
    conn: Connection,
    cfg: Config,
    category: str,
    alert_id: int,
    rule_id: str,
    severity: str,
    ward_code: str | None,
    title: str,
    now: dt.datetime,
) -> int:
    with conn.cursor() as cur:
        # serialise auto-opening per rule and ward (the unique index is the last word)
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('ioc.incidents.auto'), hashtext(%s))",
            (f"{rule_id}:{ward_code}",),
        )
        cur.execute(
            "SELECT id FROM incidents WHERE auto_rule = %s AND ward_code IS NOT DISTINCT FROM %s"
            " AND status IN ('new', 'assigned', 'in_progress')",
            (rule_id, ward_code),
        )
        row = cur.fetchone()
    if row is not None:
        iid = int(row[0])
        link(conn, iid, "alert", str(alert_id), actor="system", source="rule", now=now)
        return iid
    return create(
        conn,
        cfg,
        ward_code=ward_code,
        category=category,
        severity=severity,
        title=title,
        origin="rule",
        auto_rule=rule_id,
        links=[("alert", str(alert_id))],
        actor="system",
        source="rule",
        now=now,
    )


# --------------------------------------------------------------------------- links


def links(conn: Connection, incident_id: int, *, active: bool = True) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT kind, ref, linked_at, linked_by, unlinked_at FROM incident_links"
            " WHERE incident_id = %s"
            + (" AND unlinked_at IS NULL" if active else "")
            + " ORDER BY linked_at, id",
            (incident_id,),
        )
        names = ("kind", "ref", "linked_at", "linked_by", "unlinked_at")
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def link(
    conn: Connection,
    incident_id: int,
    kind: str,
    ref: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> bool:
    """Link a report or alert to an incident (moved from the one it was linked to, if any).
    False when it was already linked here."""
    now = _now(now)
    if kind not in KINDS:
        raise IncidentError("bad_kind", f"unknown link kind {kind!r}")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT incident_id FROM incident_links WHERE kind = %s AND ref = %s"
            " AND unlinked_at IS NULL FOR UPDATE",
            (kind, ref),
        )
        row = cur.fetchone()
        if row is not None and int(row[0]) == incident_id:
            return False
        if row is not None:
            cur.execute(
                "UPDATE incident_links SET unlinked_at = %s, unlinked_by = %s"
                " WHERE kind = %s AND ref = %s AND unlinked_at IS NULL",
                (now, actor, kind, ref),
            )
            event(
                conn,
                int(row[0]),
                "unlinked",
                actor=actor,
                source=source,
                now=now,
                kind=kind,
                ref=ref,
                to=incident_id,
            )
        cur.execute(
            "INSERT INTO incident_links (incident_id, kind, ref, linked_at, linked_by)"
            " VALUES (%s, %s, %s, %s, %s)",
            (incident_id, kind, ref, now, actor),
        )
    event(conn, incident_id, "linked", actor=actor, source=source, now=now, kind=kind, ref=ref)
    return True


def merge(
    conn: Connection,
    target_id: int,
    source_ids: Sequence[int],
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> int:
    """Several incidents of one problem become one: the others' reports and alerts move to
    ``target_id`` and they are rejected as merged (``merged_into``). Returns how many merged."""
    now = _now(now)
    target = _must(conn, target_id)
    if target["status"] not in OPEN:
        raise IncidentError("bad_state", "the target of a merge must be open")
    n = 0
    for sid in sorted(set(source_ids) - {target_id}):
        src = _must(conn, sid)
        if src["status"] not in OPEN:
            raise IncidentError("bad_state", f"incident {sid} is not open")
        moved = [(lk["kind"], lk["ref"]) for lk in links(conn, sid)]
        for kind, ref in moved:
            link(conn, target_id, kind, ref, actor=actor, source=source, now=now)
        _update(
            conn,
            sid,
            now,
            status="rejected",
            rejected_at=now,
            reject_reason=f"merged into #{target_id}",
            merged_into=target_id,
        )
        cancel_reminders(conn, sid, f"incident merged into #{target_id}")
        event(
            conn,
            sid,
            "merged",
            actor=actor,
            source=source,
            now=now,
            into=target_id,
            refs=[f"{k}:{r}" for k, r in moved],
        )
        event(
            conn,
            target_id,
            "merged_from",
            actor=actor,
            source=source,
            now=now,
            incident=sid,
            refs=[f"{k}:{r}" for k, r in moved],
        )
        n += 1
    return n


def split(
    conn: Connection,
    cfg: Config,
    incident_id: int,
    refs: Sequence[tuple[str, str]],
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> int:
    """Reports/alerts merged by mistake leave ``incident_id`` for an incident of their own.

    When they came from an incident merged into this one, that incident is reopened and they go
    back to it; otherwise a new incident (same ward, category, severity) takes them."""
    now = _now(now)
    inc = _must(conn, incident_id)
    mine = {(lk["kind"], lk["ref"]) for lk in links(conn, incident_id)}
    want = [(k, str(r)) for k, r in refs]
    if not want or any(r not in mine for r in want):
        raise IncidentError("bad_link", "split only reports or alerts linked to this incident")
    if set(want) == mine:
        raise IncidentError("bad_link", "an incident keeps at least one of its links")
    # the incident these came from by a merge, if it took exactly these
    back: int | None = None
    with conn.cursor() as cur:
        cur.execute(
            "SELECT incident_id, details FROM incident_events WHERE action = 'merged'"
            " AND (details->>'into')::bigint = %s ORDER BY ts DESC, id DESC",
            (incident_id,),
        )
        for sid, details in cur.fetchall():
            if set(want) <= {tuple(x.split(":", 1)) for x in details.get("refs", [])}:
                back = int(sid)
                break
    if back is not None:
        old = _must(conn, back)
        if old["merged_into"] == incident_id:
            _update(
                conn,
                back,
                now,
                status="assigned" if old["assignee"] else "new",
                rejected_at=None,
                reject_reason=None,
                merged_into=None,
            )
            event(
                conn,
                back,
                "unmerged",
                actor=actor,
                source=source,
                now=now,
                status="assigned" if old["assignee"] else "new",
                **{"from": incident_id},
            )
            new_id = back
        else:
            back = None
    if back is None:
        new_id = create(
            conn,
            cfg,
            ward_code=inc["ward_code"],
            category=inc["category"],
            severity=inc["severity"],
            title=inc["title"],
            lat=inc["lat"],
            lon=inc["lon"],
            origin="split",
            actor=actor,
            source=source,
            now=now,
        )
    for kind, ref in want:
        link(conn, new_id, kind, ref, actor=actor, source=source, now=now)
    event(
        conn,
        incident_id,
        "split",
        actor=actor,
        source=source,
        now=now,
        to=new_id,
        refs=[f"{k}:{r}" for k, r in want],
    )
    return new_id


# --------------------------------------------------------------------------- lifecycle

WORKING = ("assigned", "in_progress")


@dataclass(frozen=True)
class Transition:
    """One lifecycle action: the states it may be taken from, the state it leaves (None: the
    status stays, or the caller sets it: reopen), the columns it sets to now (``stamp``) and
    empties (``clear``), and the action it writes to the audit trail. ``ack``: it acknowledges
    the incident too if nobody had (``acknowledged_at``/``_by``, ``last_ack_at``)."""

    sources: tuple[str, ...]
    target: str | None
    event: str
    stamp: tuple[str, ...] = ()
    clear: tuple[str, ...] = ()
    ack: bool = False


TRANSITIONS: dict[str, Transition] = {
    "assign": Transition(OPEN, "assigned", "assigned", stamp=("assigned_at",)),
    "acknowledge": Transition(OPEN, None, "acknowledged", stamp=("last_ack_at",), ack=True),
    "start": Transition(("assigned",), "in_progress", "started", ("started_at",), ack=True),
    "resolve": Transition(WORKING, "resolved", "resolved", stamp=("resolved_at",), ack=True),
    "close": Transition(("resolved",), "closed", "closed", stamp=("closed_at",)),
    "reject": Transition(OPEN, "rejected", "rejected", stamp=("rejected_at",)),
    # to assigned, or new without an assignee; the clocks and the escalation start again
    "reopen": Transition(
        tuple(s for s in STATUSES if s not in OPEN),
        None,
        "reopened",
        stamp=("clock_start",),
        clear=(
            "resolved_at",
            "resolution",
            "closed_at",
            "rejected_at",
            "reject_reason",
            "acknowledged_at",
            "acknowledged_by",
            "last_ack_at",
            "started_at",
            "response_warned_at",
            "response_breached_at",
            "warned_at",
            "breached_at",
            "escalated_at",
        ),
    ),
}


def _locked(conn: Connection, incident_id: int, sources: Sequence[str]) -> dict[str, Any]:
    """The incident, locked, refused unless its status is one of ``sources``."""
    inc = _must(conn, incident_id)
    if inc["status"] not in sources:
        raise IncidentError("bad_state", f"incident {incident_id} is {inc['status']}")
    return inc


def _begin(conn: Connection, action: str, incident_id: int) -> dict[str, Any]:
    """Lock the incident for ``action`` (:data:`TRANSITIONS`) and check its state."""
    return _locked(conn, incident_id, TRANSITIONS[action].sources)


def _finish(
    conn: Connection,
    action: str,
    inc: dict[str, Any],
    actor: str,
    source: str,
    now: dt.datetime,
    cols: dict[str, Any] | None = None,
    **details: Any,
) -> None:
    """Apply ``action`` (:data:`TRANSITIONS`) to ``inc`` (from :func:`_begin`): its status, its
    stamped and emptied columns, ``cols``, then its row in the audit trail with ``details``."""
    t = TRANSITIONS[action]
    sets: dict[str, Any] = {} if t.target is None else {"status": t.target}
    sets.update(dict.fromkeys(t.stamp, now))
    sets.update(cols or {})
    sets.update(dict.fromkeys(t.clear))
    if t.ack and inc["acknowledged_at"] is None:
        sets.update(acknowledged_at=now, acknowledged_by=actor, last_ack_at=now)
    _update(conn, inc["id"], now, **sets)
    event(conn, inc["id"], t.event, actor=actor, source=source, now=now, **details)
    if t.ack or (t.target is not None and t.target not in OPEN):
        # acknowledged (or no longer open): its reminders not yet sent stop here
        cancel_reminders(conn, inc["id"], f"incident {t.event}")


def assign(
    conn: Connection,
    cfg: Config,
    incident_id: int,
    assignee: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> bool:
    """new/assigned/in_progress → assigned to a ward or a department. False if unchanged."""
    now = _now(now)
    kinds = rules.assignees(cfg)
    if assignee not in kinds:
        raise IncidentError("bad_assignee", f"unknown assignee {assignee!r}")
    inc = _begin(conn, "assign", incident_id)
    if inc["assignee"] == assignee and inc["status"] != "new":
        return False
    kind, seq, due = kinds[assignee], int(now.timestamp()), inc["due_at"].isoformat()
    cols = {"assignee": assignee, "assignee_kind": kind}
    details = {"assignee": assignee, "kind": kind, "previous": inc["assignee"]}
    _finish(conn, "assign", inc, actor, source, now, cols, **details)
    notify(conn, cfg, "incident_assigned", inc, seq=seq, now=now, assignee=assignee, due_at=due)
    return True


def acknowledge(
    conn: Connection,
    incident_id: int,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> None:
    """Someone has seen it and owns it now: stops the response clock and the escalation."""
    now = _now(now)
    inc = _begin(conn, "acknowledge", incident_id)
    _finish(conn, "acknowledge", inc, actor, source, now, level=inc["escalation_level"])


def start(
    conn: Connection,
    incident_id: int,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> None:
    """assigned → in_progress (acknowledges it too if nobody had)."""
    now = _now(now)
    inc = _begin(conn, "start", incident_id)
    _finish(conn, "start", inc, actor, source, now)


def steps_done(conn: Connection, incident_id: int) -> dict[str, dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT step_id, done_by, done_at, note, photo_ref FROM incident_steps"
            " WHERE incident_id = %s",
            (incident_id,),
        )
        names = ("step_id", "done_by", "done_at", "note", "photo_ref")
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def tick_step(
    conn: Connection,
    cfg: Config,
    incident_id: int,
    step_id: str,
    *,
    actor: str,
    source: str,
    note: str | None = None,
    photo_ref: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Tick one SOP step (who and when); a step that needs a note or a photo reference is
    refused without it. False when it was ticked already."""
    now = _now(now)
    inc = _locked(conn, incident_id, WORKING)
    step = next((s for s in rules.sop_steps(cfg, inc["category"]) if s.id == step_id), None)
    if step is None:
        raise IncidentError("bad_step", f"no step {step_id!r} in the {inc['category']} SOP")
    note_ = _clean_text(note, "note", required=step.needs == "note")
    photo = _clean_text(photo_ref, "photo", required=step.needs == "photo")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO incident_steps (incident_id, step_id, done_by, done_at, note, photo_ref)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (incident_id, step_id, actor, now, note_, photo),
        )
        added = cur.rowcount == 1
    if added:
        event(
            conn,
            incident_id,
            "step_done",
            actor=actor,
            source=source,
            now=now,
            step=step_id,
            note=note_,
            photo_ref=photo,
        )
        _update(conn, incident_id, now)
    return added


def untick_step(
    conn: Connection,
    incident_id: int,
    step_id: str,
    *,
    actor: str,
    source: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Undo a tick made by mistake (the trail keeps both)."""
    now = _now(now)
    _locked(conn, incident_id, WORKING)
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM incident_steps WHERE incident_id = %s AND step_id = %s",
            (incident_id, step_id),
        )
        removed = cur.rowcount == 1
    if removed:
        event(
            conn,
            incident_id,
            "step_undone",
            actor=actor,
            source=source,
            now=now,
            step=step_id,
            reason=_clean_text(reason, "reason"),
        )
    return removed


def comment(
    conn: Connection,
    incident_id: int,
    text: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> None:
    now = _now(now)
    body = _clean_text(text, "comment", required=True)
    _must(conn, incident_id)
    event(conn, incident_id, "comment", actor=actor, source=source, now=now, text=body)


def resolve(
    conn: Connection,
    cfg: Config,
    incident_id: int,
    resolution: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> None:
    """assigned/in_progress → resolved, with what was done; needs the SOP ticked (config)."""
    now = _now(now)
    text = _clean_text(resolution, "resolution", required=True)
    inc = _begin(conn, "resolve", incident_id)
    if rules.settings(cfg).require_sop_to_resolve:
        done = steps_done(conn, incident_id)
        missing = [s.id for s in rules.sop_steps(cfg, inc["category"]) if s.id not in done]
        if missing:
            raise IncidentError("sop_incomplete", "SOP steps not done: " + ", ".join(missing))
    cols, on_time = {"resolution": text}, now <= inc["due_at"]
    _finish(conn, "resolve", inc, actor, source, now, cols, resolution=text, on_time=on_time)


def close(
    conn: Connection,
    incident_id: int,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> None:
    """resolved → closed (the operations centre checked the result)."""
    now = _now(now)
    inc = _begin(conn, "close", incident_id)
    _finish(conn, "close", inc, actor, source, now)


def reject(
    conn: Connection,
    incident_id: int,
    reason: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> None:
    """An open incident that is not one (duplicate, false alarm, not ours), with the reason."""
    now = _now(now)
    text = _clean_text(reason, "reason", required=True)
    inc = _begin(conn, "reject", incident_id)
    _finish(conn, "reject", inc, actor, source, now, {"reject_reason": text}, reason=text)


def reopen(
    conn: Connection,
    cfg: Config,
    incident_id: int,
    reason: str,
    *,
    actor: str,
    source: str,
    now: dt.datetime | None = None,
) -> None:
    """resolved/closed/rejected → assigned (or new without an assignee); the clocks and the
    escalation start again from now."""
    now = _now(now)
    text = _clean_text(reason, "reason", required=True)
    inc = _begin(conn, "reopen", incident_id)
    if inc["merged_into"] is not None:
        raise IncidentError("bad_state", f"incident {incident_id} was merged; split it instead")
    c = rules.clocks(cfg, inc["category"], inc["severity"], now)
    status = "assigned" if inc["assignee"] else "new"
    clocks = {
        "response_due_at": c.response_due_at,
        "response_warn_at": c.response_warn_at,
        "due_at": c.due_at,
        "warn_at": c.warn_at,
    }
    cols = {"status": status, **clocks, "escalation_level": 0}
    details = {"reason": text, "previous": inc["status"], "status": status}
    _finish(conn, "reopen", inc, actor, source, now, cols, **details, due_at=c.due_at.isoformat())


def events(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    """The audit trail of one incident, oldest first."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ts, actor, source, action, details FROM incident_events"
            " WHERE incident_id = %s ORDER BY ts, id",
            (incident_id,),
        )
        names = ("ts", "actor", "source", "action", "details")
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
