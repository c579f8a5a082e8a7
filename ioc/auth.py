"""Users, roles and ward scoping: shared by the dashboard, the CLI and exports.

Passwords are argon2id hashes (argon2-cffi). Failed sign-ins are counted in the database
(``login_attempts``) so that the limit holds across every server process. Roles:

- ``admin``: everything;
- ``operator``: every page, acknowledges and resolves alerts;
- ``ward_leader``: only the wards granted to them (pages, callbacks, downloads);
- ``analyst``: every page, exports;
- ``kiosk``: the read-only wall display only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ioc.db import Connection
from ioc.errors import IOCError

ROLES = ("admin", "operator", "ward_leader", "analyst", "kiosk")

# permission -> roles holding it
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset({"admin", "operator", "ward_leader", "analyst"}),
    "wall": frozenset({"admin", "operator", "ward_leader", "analyst", "kiosk"}),
    "ack": frozenset({"admin", "operator"}),
    "export": frozenset({"admin", "analyst"}),
    "admin": frozenset({"admin"}),
}

MIN_PASSWORD_LEN = 8
# Failed sign-ins allowed per name (and per address) in the window before refusing.
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDR = 20
FAILURE_WINDOW = dt.timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that both cases take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


class LoginThrottled(IOCError):
    """Too many failed sign-ins for this name or address: wait and try again."""


@dataclass(frozen=True)
class User:
    """A signed-in user (or the kiosk token), as the server sees it on each request."""

    name: str
    role: str
    wards: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS.get(permission, frozenset())

    @property
    def ward_scoped(self) -> bool:
        """True when the user sees only the wards granted to them."""
        return self.role == "ward_leader"

    def allowed_wards(self) -> frozenset[str] | None:
        """The wards this user may see, or None for all of them."""
        return self.wards if self.ward_scoped else None

    def may_see_ward(self, code: str) -> bool:
        if self.role == "kiosk":
            return False
        return not self.ward_scoped or code in self.wards

    def scope(self, codes: Iterable[str]) -> list[str]:
        """``codes`` restricted to the wards this user may see (order kept)."""
        allowed = self.allowed_wards()
        return [c for c in codes if allowed is None or c in allowed]


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LEN:
        raise IOCError(f"password too short (at least {MIN_PASSWORD_LEN} characters)")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def load_user(conn: Connection, name: str) -> User | None:
    """The enabled user called ``name``, or None."""
    with conn.cursor() as cur:
        cur.execute("SELECT name, role, wards FROM users WHERE name = %s AND NOT disabled", (name,))
        row = cur.fetchone()
    if row is None:
        return None
    return User(name=row[0], role=row[1], wards=frozenset(row[2] or ()))


def failures(conn: Connection, *, name: str, addr: str | None, now: dt.datetime) -> tuple[int, int]:
    """Failed sign-ins in the window: (for this name since its last success, from this addr)."""
    since = now - FAILURE_WINDOW
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT count(*) FROM login_attempts
            WHERE name = %(name)s AND NOT ok AND ts > %(since)s
              AND ts > coalesce((SELECT max(ts) FROM login_attempts
                                 WHERE name = %(name)s AND ok), '-infinity')
            """,
            {"name": name, "since": since},
        )
        by_name = int((cur.fetchone() or (0,))[0])
        by_addr = 0
        if addr:
            cur.execute(
                "SELECT count(*) FROM login_attempts WHERE addr = %s AND NOT ok AND ts > %s",
                (addr, since),
            )
            by_addr = int((cur.fetchone() or (0,))[0])
    return by_name, by_addr


def authenticate(
    conn: Connection, name: str, password: str, *, addr: str | None = None
) -> User | None:
    """Check a sign-in; records the attempt (committed). Raises LoginThrottled when limited."""
    now = dt.datetime.now(dt.UTC)
    name = name.strip()[:100]
    by_name, by_addr = failures(conn, name=name, addr=addr, now=now)
    if by_name >= MAX_FAILURES_PER_NAME or by_addr >= MAX_FAILURES_PER_ADDR:
        conn.rollback()
        raise LoginThrottled("too many failed sign-ins; try again in a few minutes")
    with conn.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE name = %s AND NOT disabled", (name,))
        row = cur.fetchone()
    ok = verify_password(row[0] if row else _DUMMY_HASH, password) and row is not None
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO login_attempts (name, addr, ts, ok) VALUES (%s, %s, %s, %s)",
            (name, addr, now, ok),
        )
        # keep the table small: attempts older than a day say nothing any more
        cur.execute("DELETE FROM login_attempts WHERE ts < %s", (now - dt.timedelta(days=1),))
    conn.commit()
    return load_user(conn, name) if ok else None
