"""The transactional outbox: ``enqueue`` in the event's transaction, ``claim``/``mark_*`` in
the delivery worker, ``flush_digests`` for batched messages.

``enqueue(cur, kind, ...)`` resolves the recipients (routes of ``notifications.yaml``, or the
recipients given, each user's preferences), renders the text and inserts one row per
recipient × channel with an idempotency key derived from the event (kind, reference, level,
sequence, channel, recipient): enqueueing the same event twice inserts nothing the second time.
It writes nothing else and commits nothing: the rows become visible with the event or not at
all. A ``NOTIFY ioc_notify`` (delivered at commit) wakes the workers.

Row states: ``pending`` (due at ``next_attempt_at``) → ``sending`` (leased by one worker until
``leased_until``) → ``sent`` | ``pending`` again (retry with back-off) | ``dead`` (after
``max_attempts`` failures, or a permanent refusal) | ``cancelled`` (a reminder whose alert or
incident was acknowledged). ``digest`` rows wait for their digest (``digest_at``), then become
``digested`` with ``digest_id`` naming the message that carried them.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from psycopg2.extras import execute_values

from ioc.config import Config, load_config
from ioc.config.notifications import SEVERITY_RANK, NotificationsFile, QuietHours, Recipients
from ioc.db import Connection
from ioc.notify.render import render, render_digest
from ioc.settings import get_settings

log = logging.getLogger("ioc.notify")

CHANNEL_NOTIFY = "ioc_notify"
ROLES_SEEING_ALL = frozenset({"admin", "operator", "analyst"})
# kinds a user cannot mute (the escalation chain must reach its level)
UNMUTABLE = frozenset({"escalation"})


@dataclass(frozen=True)
class Target:
    channel: str
    recipient: str
    user_name: str | None = None
    lang: str = "vi"
    digest_all: bool = False
    quiet: tuple[dt.time, dt.time] | None = None  # the user's own quiet hours


@dataclass
class UserRow:
    name: str
    role: str
    wards: frozenset[str]
    email: str | None
    email_on: bool = True
    webhook_url: str | None = None
    lang: str = "vi"
    min_severity: str = "info"
    muted_kinds: frozenset[str] = field(default_factory=frozenset)
    digest_all: bool = False
    quiet: tuple[dt.time, dt.time] | None = None

    def may_see(self, ward: str | None) -> bool:
        if self.role == "kiosk":
            return False
        if self.role == "ward_leader":
            return ward is not None and ward in self.wards
        return True


@functools.lru_cache(maxsize=4)
def _config_for(config_dir: str) -> Config:
    return load_config(config_dir)


def default_config() -> Config:
    """The configuration of this process (IOC_CONFIG_DIR), for callers that have none."""
    return _config_for(str(get_settings().config_dir))


def idem_key(*parts: object) -> str:
    return hashlib.sha256(
        "|".join("" if p is None else str(p) for p in parts).encode()
    ).hexdigest()[:40]


# --------------------------------------------------------------------------- recipients


def matching_routes(
    n: NotificationsFile, kind: str, *, severity: str | None, ward: str | None, category: str | None
) -> list[Recipients]:
    out = []
    for r in n.routes:
        if kind not in r.events:
            continue
        if r.severities and severity not in r.severities:
            continue
        if r.wards and ward not in r.wards:
            continue
        if r.categories and category not in r.categories:
            continue
        out.append(r.to)
    return out


def load_users(cur: Any, *, roles: Sequence[str], names: Sequence[str]) -> list[UserRow]:
    """Enabled users holding one of ``roles`` or named in ``names``, with their preferences."""
    if not roles and not names:
        return []
    cur.execute(
        """
        SELECT u.name, u.role, u.wards, u.email, p.email_on, p.webhook_url, p.lang,
               p.min_severity, p.muted_kinds, p.digest_all, p.quiet_start, p.quiet_end
        FROM users u LEFT JOIN notification_prefs p ON p.user_name = u.name
        WHERE NOT u.disabled AND (u.role = ANY(%s) OR u.name = ANY(%s))
        ORDER BY u.name
        """,
        (list(roles), list(names)),
    )
    out = []
    for row in cur.fetchall():
        (name, role, wards, email, on, hook, lang, minsev, muted, dig, qs, qe) = row
        out.append(
            UserRow(
                name=name,
                role=role,
                wards=frozenset(wards or ()),
                email=email or None,
                email_on=True if on is None else bool(on),
                webhook_url=hook or None,
                lang=lang or "vi",
                min_severity=minsev or "info",
                muted_kinds=frozenset(muted or ()),
                digest_all=bool(dig),
                quiet=(qs, qe) if qs is not None and qe is not None else None,
            )
        )
    return out


def resolve(
    cur: Any,
    cfg: Config,
    kind: str,
    recipients: Iterable[Recipients],
    *,
    ward: str | None,
    severity: str | None,
    email: bool,
    ward_filter: bool = True,
) -> list[Target]:
    """Concrete targets (deduplicated by channel × recipient) of some recipient specs."""
    specs = list(recipients)
    roles = sorted({r for s in specs for r in s.roles})
    names = sorted({u for s in specs for u in s.users})
    targets: dict[tuple[str, str], Target] = {}

    def add(t: Target) -> None:
        targets.setdefault((t.channel, t.recipient), t)

    for u in load_users(cur, roles=roles, names=names):
        if ward_filter and not u.may_see(ward):
            continue  # never a ward's news to someone who may not see that ward
        if kind in u.muted_kinds and kind not in UNMUTABLE:
            continue
        if (
            severity is not None
            and SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK.get(u.min_severity, 0)
            and kind not in UNMUTABLE
        ):
            continue
        if email and u.email and u.email_on:
            add(Target("email", u.email, u.name, u.lang, u.digest_all, u.quiet))
        if u.webhook_url:
            add(Target("webhook", u.webhook_url, u.name, u.lang, u.digest_all, u.quiet))
    n = cfg.notifications
    for s in specs:
        if email:
            for addr in s.emails:
                add(Target("email", addr))
        for hook in s.webhooks:
            if hook in n.webhooks:
                add(Target("webhook", n.webhooks[hook].url))
        for topic in s.mqtt:
            add(Target("mqtt", topic.replace("{ward}", ward or "city")))
    return list(targets.values())


# --------------------------------------------------------------------------- timing


def in_quiet(local: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_until(now: dt.datetime, start: dt.time, end: dt.time, tz: ZoneInfo) -> dt.datetime | None:
    """When the quiet hours holding ``now`` end (None when ``now`` is not in them)."""
    local = now.astimezone(tz)
    if not in_quiet(local.time(), start, end):
        return None
    day = local.date()
    ends = dt.datetime.combine(day, end, tzinfo=tz)
    if ends <= local:
        ends = dt.datetime.combine(day + dt.timedelta(days=1), end, tzinfo=tz)
    return ends.astimezone(dt.UTC)


def next_digest(now: dt.datetime, every_min: int) -> dt.datetime:
    step = every_min * 60
    ts = int(now.timestamp())
    return dt.datetime.fromtimestamp((ts // step + 1) * step, dt.UTC)


def schedule(
    n: NotificationsFile, t: Target, severity: str | None, now: dt.datetime, tz: ZoneInfo
) -> tuple[str, dt.datetime, dt.datetime | None]:
    """(status, next_attempt_at, digest_at) of a new row for target ``t``."""
    sev = severity or "info"
    if severity is not None and (
        sev in n.digest.severities or (t.digest_all and sev != "critical")
    ):
        return "digest", now, next_digest(now, n.digest.every_min)
    q: QuietHours = n.quiet_hours
    if sev not in q.bypass:
        window = t.quiet or (q.window() if q.enabled else None)
        if window is not None:
            until = quiet_until(now, window[0], window[1], tz)
            if until is not None:
                return "pending", until, None
    return "pending", now, None


# --------------------------------------------------------------------------- enqueue


def enqueue(
    cur: Any,
    kind: str,
    *,
    ward_code: str | None,
    severity: str | None,
    category: str | None = None,
    ref_kind: str | None = None,
    ref_id: object = None,
    params: dict[str, Any] | None = None,
    cfg: Config | None = None,
    recipients: Sequence[Recipients] | None = None,
    level: int = 0,
    seq: int = 0,
    now: dt.datetime | None = None,
    email: bool = True,
    ward_filter: bool = True,
    hold: bool = True,
) -> int:
    """Write the notifications of one event with ``cur`` (the event's transaction; nothing is
    committed here). Returns the number of rows inserted (0 when enqueued before).
    ``hold=False``: due now, neither held by quiet hours nor put in a digest (a test message
    the user asked for)."""
    cfg = cfg or default_config()
    n = cfg.notifications
    now = now or dt.datetime.now(dt.UTC)
    tz = ZoneInfo(cfg.system.timezone)
    specs = (
        list(recipients)
        if recipients is not None
        else matching_routes(n, kind, severity=severity, ward=ward_code, category=category)
    )
    targets = resolve(
        cur,
        cfg,
        kind,
        specs,
        ward=ward_code,
        severity=severity,
        email=email,
        ward_filter=ward_filter,
    )
    if not targets:
        return 0
    ward = cfg.ward(ward_code) if ward_code else None
    p: dict[str, Any] = {
        **(params or {}),
        "kind": kind,
        "severity": severity,
        "ward_code": ward_code,
        "ward_name": ward.name if ward else None,
        "category": category,
        "ref_kind": ref_kind,
        "ref_id": None if ref_id is None else str(ref_id),
        "level": level,
        "link_ttl_hours": n.delivery.link_ttl_hours,
    }
    texts: dict[str, tuple[str, str, str]] = {}
    rows = []
    ref = None if ref_id is None else str(ref_id)
    for t in targets:
        if t.lang not in texts:
            texts[t.lang] = render(kind, p, t.lang, cfg.system.timezone)
        subject, text, html = texts[t.lang]
        status, due, digest_at = (
            schedule(n, t, severity, now, tz) if hold else ("pending", now, None)
        )
        key = (
            idem_key(kind, ref_kind, ref, level, seq, t.channel, t.recipient)
            if ref is not None
            else uuid.uuid4().hex
        )
        rows.append(
            (
                key,
                kind,
                ref_kind,
                ref,
                ward_code,
                severity,
                category,
                level,
                t.channel,
                t.recipient,
                t.user_name,
                t.lang,
                subject,
                text,
                html,
                json.dumps(p, ensure_ascii=False, default=str),
                status,
                due,
                digest_at,
                now,
            )
        )
    inserted = execute_values(
        cur,
        """
        INSERT INTO notifications (idem_key, kind, ref_kind, ref_id, ward_code, severity,
            category, level, channel, recipient, user_name, lang, subject, body_text, body_html,
            payload, status, next_attempt_at, digest_at, created_at)
        VALUES %s ON CONFLICT (idem_key) DO NOTHING RETURNING id
        """,
        rows,
        fetch=True,
    )
    cur.execute("SELECT pg_notify(%s, '')", (CHANNEL_NOTIFY,))
    return len(inserted)


def alert_params(
    cfg: Config,
    rule: Any,
    *,
    alert_id: int,
    subject: str,
    value: float | None,
    opened_at: dt.datetime,
) -> dict[str, Any]:
    """What an alert message says: the rule's label, the value and threshold with the unit."""
    unit = None
    if getattr(rule, "metric", None):
        for dtype in cfg.sensors.device_types.values():
            m = next((m for m in dtype.metrics if m.name == rule.metric), None)
            if m is not None:
                unit = m.unit
                break
    elif getattr(rule, "kpi", None) and rule.kpi in cfg.kpis.kpis:
        unit = cfg.kpis.kpis[rule.kpi].unit
    return {
        "alert_id": alert_id,
        "rule": rule.id,
        "alert_subject": subject,
        "label_vi": rule.label_vi,
        "label_en": rule.label_en,
        # a camera/device rule's value is 1 (the condition holds): nothing to show
        "value": None if getattr(rule, "kind", None) in ("camera", "device") else value,
        "threshold": rule.threshold,
        "op": rule.op if rule.threshold is not None else None,
        "unit": unit,
        "opened_at": opened_at.isoformat(),
    }


def alert_opened(
    cur: Any,
    cfg: Config,
    rule: Any,
    *,
    alert_id: int,
    subject: str,
    ward_code: str | None,
    value: float | None,
    opened_at: dt.datetime,
) -> int:
    """The hook ioc.alerts calls in the transaction that opens an alert: the first notices,
    and the alert's escalation clock when its severity escalates."""
    params = alert_params(
        cfg, rule, alert_id=alert_id, subject=subject, value=value, opened_at=opened_at
    )
    count = enqueue(
        cur,
        "alert_opened",
        ward_code=ward_code,
        severity=rule.severity,
        category=rule.id,
        ref_kind="alert",
        ref_id=alert_id,
        params=params,
        cfg=cfg,
        now=opened_at,
    )
    esc = cfg.notifications.escalation
    if esc.levels and rule.severity in esc.severities:
        first = opened_at + dt.timedelta(minutes=esc.levels[0].after_min)
        cur.execute(
            "INSERT INTO notification_escalations (ref_kind, ref_id, ward_code, severity,"
            " started_at, last_sent_at, next_at, params) VALUES ('alert', %s, %s, %s, %s, %s,"
            " %s, %s) ON CONFLICT DO NOTHING",
            (
                str(alert_id),
                ward_code,
                rule.severity,
                opened_at,
                opened_at,
                first,
                json.dumps({**params, "category": rule.id}, default=str),
            ),
        )
    return count


# --------------------------------------------------------------------------- worker side


@dataclass
class Claimed:
    id: int
    idem_key: str
    kind: str
    ref_kind: str | None
    ref_id: str | None
    severity: str | None
    channel: str
    recipient: str
    user_name: str | None
    subject: str
    body_text: str
    body_html: str | None
    payload: dict[str, Any]
    attempts: int


CLAIM_SQL = """
WITH due AS (
    SELECT id FROM notifications
    WHERE (status = 'pending' AND next_attempt_at <= %(now)s)
       OR (status = 'sending' AND leased_until < %(now)s)
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE notifications n
SET status = 'sending', leased_until = %(until)s, lease_owner = %(owner)s,
    -- a lease that ran out: the worker died (maybe mid-send); counted, so a message that kills
    -- its worker every time ends dead-lettered instead of looping
    attempts = n.attempts + CASE WHEN n.status = 'sending' THEN 1 ELSE 0 END,
    last_error = CASE WHEN n.status = 'sending' THEN 'lease expired: worker stopped while sending'
                      ELSE n.last_error END
FROM due WHERE n.id = due.id
RETURNING n.id, n.idem_key, n.kind, n.ref_kind, n.ref_id, n.severity, n.channel, n.recipient,
          n.user_name, n.subject, n.body_text, n.body_html, n.payload, n.attempts
"""


def claim(
    conn: Connection,
    cfg: Config,
    *,
    owner: str,
    limit: int,
    now: dt.datetime | None = None,
    channels: Sequence[str] | None = None,
) -> list[Claimed]:
    """Lease up to ``limit`` due messages (SELECT ... FOR UPDATE SKIP LOCKED: several workers
    never take the same row), commit, and return them. On the way: reminders whose alert is no
    longer open, or whose incident was acknowledged (or closed, or reopened), are cancelled,
    messages past their attempts are dead-lettered, and messages to a recipient over its
    hourly limit are folded into a digest."""
    n = cfg.notifications
    now = now or dt.datetime.now(dt.UTC)
    with conn.cursor() as cur:
        cur.execute(
            CLAIM_SQL,
            {
                "now": now,
                "limit": limit,
                "until": now + dt.timedelta(seconds=n.delivery.lease_s),
                "owner": owner,
            },
        )
        got = [Claimed(*r) for r in cur.fetchall()]
        keep: list[Claimed] = []
        # a message that cost its worker's life too often: dead
        dead = [c for c in got if c.attempts >= n.delivery.max_attempts]
        if dead:
            cur.execute(
                "UPDATE notifications SET status = 'dead', leased_until = NULL WHERE id = ANY(%s)",
                ([c.id for c in dead],),
            )
        got = [c for c in got if c.attempts < n.delivery.max_attempts]
        # reminders and escalations of alerts acknowledged (or resolved) meanwhile: cancelled
        stale_refs = sorted(
            {
                c.ref_id
                for c in got
                if c.kind in ("alert_unacknowledged", "escalation")
                and c.ref_kind == "alert"
                and c.ref_id
            }
        )
        closed: set[str] = set()
        if stale_refs:
            cur.execute(
                "SELECT id::text FROM alerts WHERE id::text = ANY(%s) AND state <> 'open'",
                (stale_refs,),
            )
            closed = {r[0] for r in cur.fetchall()}
        cancel = [
            c.id
            for c in got
            if c.ref_id in closed and c.kind in ("alert_unacknowledged", "escalation")
        ]
        if cancel:
            cur.execute(
                "UPDATE notifications SET status = 'cancelled', leased_until = NULL,"
                " last_error = 'acknowledged' WHERE id = ANY(%s)",
                (cancel,),
            )
        got = [c for c in got if c.id not in set(cancel)]
        # reminders of incidents acknowledged, no longer open or reopened meanwhile: cancelled
        stale = _stale_incident_reminders(cur, got)
        for reason, ids in stale.items():
            cur.execute(
                "UPDATE notifications SET status = 'cancelled', leased_until = NULL,"
                " last_error = %s WHERE id = ANY(%s)",
                (f"stopped: {reason}", ids),
            )
        gone = {i for ids in stale.values() for i in ids}
        got = [c for c in got if c.id not in gone]
        # per-recipient hourly limit: the excess goes as one digest a little later
        rl = n.rate_limit
        limited = [
            c
            for c in got
            if c.channel in rl.channels
            and c.kind != "digest"
            and (c.severity or "info") not in rl.bypass
        ]
        over: list[int] = []
        if limited:
            cur.execute(
                "SELECT recipient, count(*) FROM notifications WHERE status = 'sent'"
                " AND channel = ANY(%s) AND recipient = ANY(%s) AND sent_at > %s"
                " GROUP BY recipient",
                (
                    list(rl.channels),
                    sorted({c.recipient for c in limited}),
                    now - dt.timedelta(hours=1),
                ),
            )
            sent = {r: int(k) for r, k in cur.fetchall()}
            for c in limited:
                if sent.get(c.recipient, 0) >= rl.per_hour:
                    over.append(c.id)
                else:
                    sent[c.recipient] = sent.get(c.recipient, 0) + 1
        if over:
            cur.execute(
                "UPDATE notifications SET status = 'digest', leased_until = NULL,"
                " digest_at = %s, last_error = 'rate limited: sent in the next digest'"
                " WHERE id = ANY(%s)",
                (now + dt.timedelta(minutes=rl.overflow_min), over),
            )
        overs = set(over)
        keep = [c for c in got if c.id not in overs]
        if channels is not None:
            other = [c.id for c in keep if c.channel not in channels]
            if other:  # not served by this worker: back at once
                cur.execute(
                    "UPDATE notifications SET status = 'pending', leased_until = NULL,"
                    " next_attempt_at = %s WHERE id = ANY(%s)",
                    (now + dt.timedelta(seconds=n.delivery.poll_s), other),
                )
            keep = [c for c in keep if c.channel in channels]
    conn.commit()
    return keep


def is_incident_reminder(c: Claimed) -> bool:
    """A reminder of an unacknowledged incident (ioc.incidents.sla: ``sla_breached`` with
    ``reminder``)."""
    return (
        c.kind == "sla_breached"
        and c.ref_kind == "incident"
        and bool(c.ref_id)
        and bool(c.payload.get("reminder"))
    )


def _instant(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _stale_incident_reminders(cur: Any, got: Sequence[Claimed]) -> dict[str, list[int]]:
    """Claimed incident reminders that must not go, by reason: the incident was acknowledged,
    is no longer open, or was reopened since (a new clock cycle has reminders of its own)."""
    mine = [c for c in got if is_incident_reminder(c)]
    if not mine:
        return {}
    cur.execute(
        "SELECT id::text, status, acknowledged_at IS NOT NULL, clock_start FROM incidents"
        " WHERE id::text = ANY(%s)",
        (sorted({str(c.ref_id) for c in mine}),),
    )
    now_of = {r[0]: (r[1], r[2], r[3]) for r in cur.fetchall()}
    out: dict[str, list[int]] = {}
    for c in mine:
        state = now_of.get(str(c.ref_id))
        if state is None:
            reason = "incident gone"
        elif state[1]:
            reason = "incident acknowledged"
        elif state[0] not in ("new", "assigned", "in_progress"):
            reason = f"incident {state[0]}"
        elif _instant(c.payload.get("clock_start")) not in (None, state[2]):
            reason = "incident reopened"  # compared as instants (time zones may differ)
        else:
            continue
        out.setdefault(reason, []).append(c.id)
    return out


def mark_sent(conn: Connection, ids: Sequence[int]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE notifications SET status = 'sent', sent_at = now(), leased_until = NULL"
            " WHERE id = ANY(%s) AND status = 'sending'",
            (list(ids),),
        )
    conn.commit()


def backoff(n: NotificationsFile, attempts: int) -> float:
    d = n.delivery
    return float(min(d.backoff_max_s, d.backoff_s * (2 ** max(0, attempts - 1))))


def mark_failed(
    conn: Connection,
    cfg: Config,
    msg_id: int,
    error: str,
    *,
    permanent: bool,
    attempts: int,
    now: dt.datetime | None = None,
) -> str:
    """Record one failure of one message: 'dead' or 'retry'."""
    n = cfg.notifications
    now = now or dt.datetime.now(dt.UTC)
    tries = attempts + 1
    dead = permanent or tries >= n.delivery.max_attempts
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE notifications SET status = %s, attempts = %s, last_error = %s,"
            " leased_until = NULL, next_attempt_at = %s WHERE id = %s AND status = 'sending'",
            (
                "dead" if dead else "pending",
                tries,
                error[:500],
                now + dt.timedelta(seconds=backoff(n, tries)),
                msg_id,
            ),
        )
    conn.commit()
    return "dead" if dead else "retry"


def cancel(conn: Connection, ids: Sequence[int], *, reason: str) -> None:
    """Messages this deployment cannot send at all (its channel is not configured)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE notifications SET status = 'cancelled', leased_until = NULL,"
            " last_error = %s WHERE id = ANY(%s) AND status = 'sending'",
            (reason[:500], list(ids)),
        )
    conn.commit()


def release(conn: Connection, ids: Sequence[int], *, at: dt.datetime, error: str) -> None:
    """The channel is down: put the messages back, due at ``at``, attempts unchanged."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE notifications SET status = 'pending', leased_until = NULL,"
            " next_attempt_at = %s, last_error = %s WHERE id = ANY(%s) AND status = 'sending'",
            (at, error[:500], list(ids)),
        )
    conn.commit()


def requeue(conn: Connection, ids: Sequence[int]) -> int:
    """Dead-lettered messages sent again (the admin page's button): attempts start over."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = now(),"
            " last_error = NULL WHERE id = ANY(%s) AND status = 'dead'",
            (list(ids),),
        )
        count = cur.rowcount
        cur.execute("SELECT pg_notify(%s, '')", (CHANNEL_NOTIFY,))
    conn.commit()
    return count


def flush_digests(conn: Connection, cfg: Config, *, now: dt.datetime | None = None) -> int:
    """Every recipient with held-back messages due: one digest message instead. Returns the
    number of digests written."""
    now = now or dt.datetime.now(dt.UTC)
    tz = cfg.system.timezone
    made = 0
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT id, channel, recipient, user_name, lang, subject, created_at, payload
            FROM notifications WHERE status = 'digest' AND (channel, recipient) IN (
                SELECT channel, recipient FROM notifications
                WHERE status = 'digest' AND digest_at <= %s)
            ORDER BY channel, recipient, id
            FOR UPDATE SKIP LOCKED
            """,
            (now,),
        )
        groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for row in cur.fetchall():
            groups.setdefault((row[1], row[2]), []).append(row)
        from ioc.notify.render import fmt_time

        for (channel, recipient), items in groups.items():
            lang = items[0][4] or "vi"
            listing = [{"subject": i[5], "when": fmt_time(i[6], lang, tz)} for i in items]
            subject, text, html = render_digest(listing, lang)
            ids = [i[0] for i in items]
            key = idem_key("digest", channel, recipient, ids[0], ids[-1], len(ids))
            payload = {"kind": "digest", "items": [i[7] for i in items[:200]], "count": len(ids)}
            cur.execute(
                """
                INSERT INTO notifications (idem_key, kind, channel, recipient, user_name, lang,
                    subject, body_text, body_html, payload, status, next_attempt_at, created_at,
                    severity)
                VALUES (%s, 'digest', %s, %s, %s, %s, %s, %s, %s, %s, 'pending', now(), %s, 'info')
                ON CONFLICT (idem_key) DO UPDATE SET idem_key = EXCLUDED.idem_key
                RETURNING id
                """,
                (
                    key,
                    channel,
                    recipient,
                    items[0][3],
                    lang,
                    subject,
                    text,
                    html,
                    json.dumps(payload, ensure_ascii=False, default=str),
                    now,
                ),
            )
            digest = cur.fetchone()
            assert digest is not None
            cur.execute(
                "UPDATE notifications SET status = 'digested', digest_id = %s WHERE id = ANY(%s)",
                (digest[0], ids),
            )
            made += 1
        if made:
            cur.execute("SELECT pg_notify(%s, '')", (CHANNEL_NOTIFY,))
    conn.commit()
    return made


def prune(conn: Connection, cfg: Config, *, now: dt.datetime | None = None) -> int:
    """Forget finished messages older than ``delivery.keep_days`` (dead letters stay until
    sent again or handled), stopped escalations as old, and link uses whose links expired.

    An open incident's last reminder stays, whatever its age: the scheduler's sweep reads it to
    know the reminder went (with ``max_reminders`` set, the last one would go again)."""
    d = cfg.notifications.delivery
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=d.keep_days)
    with conn.cursor() as cur:
        cur.execute(
            """
            DELETE FROM notifications n WHERE n.created_at < %s
               AND n.status IN ('sent', 'cancelled', 'digested')
               AND NOT (n.ref_kind = 'incident' AND n.kind = 'sla_breached' AND n.level > 0
                        AND EXISTS (SELECT 1 FROM incidents i WHERE i.id::text = n.ref_id
                                     AND i.status IN ('new', 'assigned', 'in_progress'))
                        AND n.level = (SELECT max(m.level) FROM notifications m
                                        WHERE m.ref_kind = 'incident' AND m.ref_id = n.ref_id
                                          AND m.kind = 'sla_breached'
                                          AND m.payload->>'clock_start'
                                              = n.payload->>'clock_start'))
            """,
            (cutoff,),
        )
        gone = cur.rowcount
        cur.execute("DELETE FROM notification_escalations WHERE stopped_at < %s", (cutoff,))
        cur.execute(
            "DELETE FROM notification_link_uses WHERE used_at < %s",
            (now - dt.timedelta(hours=d.link_ttl_hours + 24),),
        )
    conn.commit()
    return gone


def counts(conn: Connection) -> dict[str, int]:
    """Messages per state (the admin page, /metrics, tests)."""
    with conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM notifications GROUP BY status")
        out = {str(s): int(c) for s, c in cur.fetchall()}
    conn.commit()
    return out
