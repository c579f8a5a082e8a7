"""Signed, expiring, one-use links that acknowledge an alert (or incident) for one recipient.

The token (itsdangerous, the dashboard's key: IOC_SECRET_KEY or ``var/dashboard_secret_key``)
holds the notification id, the user, and what it acknowledges; it is checked for signature and
age (``delivery.link_ttl_hours``). It is single-use: its notification id is written to
``notification_link_uses`` (primary key) when it is used, in the transaction that acknowledges.
The link does nothing else: it signs nobody in.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ioc.auth import User, load_user
from ioc.db import Connection
from ioc.errors import IOCError
from ioc.incidents import core as incidents
from ioc.notify import escalation
from ioc.settings import Settings

SALT = "ioc-notify-ack"
KEY_FILE = "dashboard_secret_key"


def secret_key(settings: Settings) -> str:
    """The key that signs sessions and links: IOC_SECRET_KEY, else the file the dashboard
    generates under IOC_VAR_DIR (created here in the same way when this process is first)."""
    key = settings.secret("secret_key")
    if key:
        return key
    path = Path(settings.var_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_urlsafe(48))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise IOCError(f"{path}: the key file is too short; delete it or set IOC_SECRET_KEY")
    return key


def _serializer(key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=SALT)


def make_token(key: str, *, notification_id: int, user: str, ref_kind: str, ref_id: str) -> str:
    return str(
        _serializer(key).dumps({"n": notification_id, "u": user, "k": ref_kind, "r": ref_id})
    )


FILE_SALT = "ioc-notify-file"


def make_file_token(key: str, *, path: str, recipient: str) -> str:
    """A download link for one report file, for one recipient (expires like ack links)."""
    return str(URLSafeTimedSerializer(key, salt=FILE_SALT).dumps({"p": path, "r": recipient}))


def read_file_token(key: str, token: str, *, max_age_s: float) -> str:
    """The file a download token names; LinkError('invalid'/'expired') otherwise."""
    try:
        data: Any = URLSafeTimedSerializer(key, salt=FILE_SALT).loads(token, max_age=int(max_age_s))
    except SignatureExpired:
        raise LinkError("expired") from None
    except BadSignature:
        raise LinkError("invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("p"), str):
        raise LinkError("invalid")
    return str(data["p"])


@dataclass(frozen=True)
class Claim:
    notification_id: int
    user: str
    ref_kind: str
    ref_id: str


class LinkError(Exception):
    """Why a link does not work: 'invalid', 'expired', 'used', 'user', 'state'."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def read_token(key: str, token: str, *, max_age_s: float) -> Claim:
    """The token's claim; LinkError('invalid') when tampered, ('expired') when too old."""
    try:
        data: Any = _serializer(key).loads(token, max_age=int(max_age_s))
    except SignatureExpired:
        raise LinkError("expired") from None
    except BadSignature:
        raise LinkError("invalid") from None
    try:
        return Claim(int(data["n"]), str(data["u"]), str(data["k"]), str(data["r"]))
    except (KeyError, TypeError, ValueError):
        raise LinkError("invalid") from None


def describe(conn: Connection, claim: Claim) -> dict[str, Any] | None:
    """What the link acknowledges (for the confirmation page), or None if it is gone."""
    with conn.cursor() as cur:
        if claim.ref_kind == "alert":
            cur.execute(
                "SELECT id, ward_code, severity, state, title, value, opened_at,"
                " acknowledged_by, acknowledged_at FROM alerts WHERE id::text = %s",
                (claim.ref_id,),
            )
        elif claim.ref_kind == "incident":
            cur.execute(
                "SELECT id, ward_code, severity, CASE WHEN status IN"
                " ('new', 'assigned', 'in_progress') THEN 'open' ELSE status END, title, NULL,"
                " opened_at, NULL, NULL FROM incidents WHERE id::text = %s",
                (claim.ref_id,),
            )
        else:
            return None
        row = cur.fetchone()
    if row is None:
        return None
    keys = ("id", "ward_code", "severity", "state", "title", "value", "opened_at", "by", "at")
    return dict(zip(keys, row, strict=True))


def use(conn: Connection, claim: Claim, *, addr: str | None = None) -> str:
    """Acknowledge for ``claim.user`` and spend the link, in one transaction; returns
    'acknowledged' or raises LinkError ('used', 'user', 'state'). The use is recorded (who,
    when, from where, outcome) whatever the outcome once the link is genuine and fresh."""
    user = load_user(conn, claim.user)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM notification_link_uses WHERE notification_id = %s FOR UPDATE",
                (claim.notification_id,),
            )
            if cur.fetchone() is not None:
                raise LinkError("used")
            target = describe(conn, claim)
            if user is None:
                outcome = "user"
            elif target is None:
                outcome = "state"
            elif not _may_ack(user, target["ward_code"]):
                outcome = "user"
            else:
                outcome = _acknowledge(conn, cur, claim)
            cur.execute(
                "INSERT INTO notification_link_uses (notification_id, user_name, ref_kind, ref_id,"
                " addr, outcome) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (notification_id) DO NOTHING RETURNING 1",
                (claim.notification_id, claim.user, claim.ref_kind, claim.ref_id, addr, outcome),
            )
            if cur.fetchone() is None:  # another request spent it meanwhile
                conn.rollback()
                raise LinkError("used")
        if outcome != "acknowledged":
            # a refused use spends nothing: roll back, but keep no partial change
            conn.rollback()
            raise LinkError(outcome)
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    return outcome


def _may_ack(user: User, ward: str | None) -> bool:
    """The link's user may still see the alert's ward (a city-wide alert: not a ward leader).
    Any recipient who may see the ward may acknowledge from the message (docs)."""
    if ward is None:
        return not user.ward_scoped and user.role != "kiosk"
    return user.may_see_ward(ward)


def _acknowledge(conn: Connection, cur: Any, claim: Claim) -> str:
    if claim.ref_kind == "alert":
        cur.execute(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_at = now(),"
            " acknowledged_by = %s, updated_at = now() WHERE id::text = %s AND state = 'open'",
            (claim.user, claim.ref_id),
        )
        if cur.rowcount != 1:
            return "state"  # already acknowledged or resolved by someone
        # its reminders and escalations not yet sent stop at once, not at the next tick
        escalation.stop(cur, "alert", str(claim.ref_id), "acknowledged", dt.datetime.now(dt.UTC))
    else:
        # incidents acknowledge through their own module (it stops their escalation and
        # reminders and writes incident_events with source 'link'), in this transaction
        try:
            incidents.acknowledge(conn, int(claim.ref_id), actor=claim.user, source="link")
        except incidents.IncidentError:
            return "state"
    return "acknowledged"
