"""Per-user notification preferences (``notification_prefs``; the page /settings/notifications).

No row = the defaults: e-mail on, Vietnamese, every severity the routes send, nothing muted,
no digest, the configured quiet hours. ``save`` validates and raises :class:`PrefsError` naming
the field at fault.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ioc.config import Config
from ioc.config.notifications import EVENT_KINDS, Recipients
from ioc.db import Connection
from ioc.notify.destinations import Network, literal_refusal
from ioc.notify.outbox import UNMUTABLE, enqueue

MUTABLE_KINDS = tuple(k for k in EVENT_KINDS if k not in UNMUTABLE)


class PrefsError(ValueError):
    def __init__(self, field_name: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.reason = reason or field_name  # which message the page shows


@dataclass
class Prefs:
    email_on: bool = True
    webhook_url: str | None = None
    lang: str = "vi"
    min_severity: str = "info"
    muted_kinds: list[str] = field(default_factory=list)
    digest_all: bool = False
    quiet_start: str | None = None  # "HH:MM"
    quiet_end: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load(conn: Connection, user: str) -> tuple[Prefs, str | None]:
    """The user's preferences and their e-mail address."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT u.email, p.email_on, p.webhook_url, p.lang, p.min_severity, p.muted_kinds,"
            " p.digest_all, p.quiet_start, p.quiet_end FROM users u"
            " LEFT JOIN notification_prefs p ON p.user_name = u.name WHERE u.name = %s",
            (user,),
        )
        row = cur.fetchone()
    conn.commit()
    if row is None:
        return Prefs(), None
    email, on, hook, lang, minsev, muted, dig, qs, qe = row
    if on is None:
        return Prefs(), email
    return (
        Prefs(
            email_on=bool(on),
            webhook_url=hook,
            lang=lang,
            min_severity=minsev,
            muted_kinds=list(muted or []),
            digest_all=bool(dig),
            quiet_start=qs.strftime("%H:%M") if qs else None,
            quiet_end=qe.strftime("%H:%M") if qe else None,
        ),
        email,
    )


def _time(name: str, value: str | None) -> dt.time | None:
    if value is None or not str(value).strip():
        return None
    try:
        return dt.time.fromisoformat(str(value).strip())
    except ValueError:
        raise PrefsError(name, "a time of day HH:MM (e.g. 22:00)") from None


def validate(data: dict[str, Any], allow: Sequence[Network] = ()) -> Prefs:
    """Preferences from a form's values; PrefsError naming the first bad field."""
    lang = data.get("lang") or "vi"
    if lang not in ("vi", "en"):
        raise PrefsError("lang", "vi or en")
    minsev = data.get("min_severity") or "info"
    if minsev not in ("info", "warning", "critical"):
        raise PrefsError("min_severity", "info, warning or critical")
    muted = list(data.get("muted_kinds") or [])
    for k in muted:
        if k not in MUTABLE_KINDS:
            raise PrefsError("muted_kinds", f"unknown kind {k!r}")
    hook = (data.get("webhook_url") or "").strip() or None
    if hook is not None:
        parts = urlsplit(hook)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(hook) > 500:
            raise PrefsError("webhook_url", "an http:// or https:// address")
        why = literal_refusal(hook, allow)
        if why is not None:
            raise PrefsError("webhook_url", why, reason="webhook_url_private")
    qs = _time("quiet_start", data.get("quiet_start"))
    qe = _time("quiet_end", data.get("quiet_end"))
    if (qs is None) != (qe is None):
        raise PrefsError("quiet_end" if qe is None else "quiet_start", "give both start and end")
    return Prefs(
        email_on=bool(data.get("email_on", True)),
        webhook_url=hook,
        lang=lang,
        min_severity=minsev,
        muted_kinds=sorted(set(muted)),
        digest_all=bool(data.get("digest_all", False)),
        quiet_start=qs.strftime("%H:%M") if qs else None,
        quiet_end=qe.strftime("%H:%M") if qe else None,
    )


def save(conn: Connection, user: str, prefs: Prefs) -> None:
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO notification_prefs (user_name, email_on, webhook_url, lang, min_severity,
                muted_kinds, digest_all, quiet_start, quiet_end, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (user_name) DO UPDATE SET email_on = EXCLUDED.email_on,
                webhook_url = EXCLUDED.webhook_url, lang = EXCLUDED.lang,
                min_severity = EXCLUDED.min_severity, muted_kinds = EXCLUDED.muted_kinds,
                digest_all = EXCLUDED.digest_all, quiet_start = EXCLUDED.quiet_start,
                quiet_end = EXCLUDED.quiet_end, updated_at = now()
            """,
            (
                user,
                prefs.email_on,
                prefs.webhook_url,
                prefs.lang,
                prefs.min_severity,
                prefs.muted_kinds,
                prefs.digest_all,
                prefs.quiet_start,
                prefs.quiet_end,
            ),
        )
    conn.commit()


def send_test(
    conn: Connection, cfg: Config, user: str, *, now: dt.datetime | None = None
) -> list[str]:
    """A test message to the user's own channels (their e-mail unless switched off, their own
    webhook), through the outbox like any other, due at once (no quiet hours, no digest). At
    most one per user and minute: within 60 s of the last one (or twice in the same minute,
    two clicks at once) nothing is added. Returns the channels queued (empty: no channel, or
    sent already). Commits."""
    now = now or dt.datetime.now(dt.UTC)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT max(created_at) FROM notifications WHERE kind = 'test' AND ref_kind = 'test'"
            " AND ref_id = %s",
            (user,),
        )
        row = cur.fetchone()
        if row and row[0] is not None and now - row[0] < dt.timedelta(seconds=60):
            conn.commit()
            return []
        enqueue(
            cur,
            "test",
            ward_code=None,
            severity=None,
            ref_kind="test",
            ref_id=user,
            seq=int(now.timestamp()) // 60,
            params={"user": user, "at": now.isoformat()},
            cfg=cfg,
            recipients=[Recipients(users=[user])],
            now=now,
            ward_filter=False,
            hold=False,
        )
        cur.execute(
            "SELECT channel FROM notifications WHERE kind = 'test' AND ref_id = %s"
            " AND created_at = %s ORDER BY channel",
            (user, now),
        )
        channels = [str(r[0]) for r in cur.fetchall()]
    conn.commit()
    return channels


RECENT_COLUMNS = (
    "id",
    "created_at",
    "kind",
    "channel",
    "recipient",
    "status",
    "attempts",
    "sent_at",
    "subject",
    "last_error",
)


def recent(
    conn: Connection, *, user: str | None = None, status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest messages: one user's own (``user``: the preferences page) or everyone's (the
    admin page), in every state or in one (``status='dead'``: the dead letters)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(RECENT_COLUMNS)} FROM notifications"
            " WHERE (%(user)s::text IS NULL OR user_name = %(user)s)"
            " AND (%(status)s::text IS NULL OR status = %(status)s)"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"user": user, "status": status, "limit": limit},
        )
        out = [dict(zip(RECENT_COLUMNS, r, strict=True)) for r in cur.fetchall()]
    conn.commit()
    return out
