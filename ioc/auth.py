"""Users, roles and ward scoping: shared by the dashboard, the CLI and exports.

Passwords are argon2id hashes (argon2-cffi), checked against a policy (length, a shipped list
of common passwords, context words). Failed sign-ins are counted in the database
(``login_throttle``, per name and address, with back-off) so that the limit holds across every
server process, and every sign-in, failure and account change lands in ``auth_audit``. Roles:

- ``admin``: everything;
- ``operator``: every page, acknowledges and resolves alerts;
- ``ward_leader``: only the wards granted to them (pages, callbacks, downloads);
- ``analyst``: every page, exports;
- ``kiosk``: the read-only wall display only.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

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
MIN_ADMIN_PASSWORD_LEN = 12
# Sign-in throttling (see authenticate): failures allowed per (name, address) before each
# further attempt from that address waits, the wait doubling from BACKOFF_BASE up to
# BACKOFF_MAX; and per address over every name. A success resets its (name, address).
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDR = 30
FAILURE_WINDOW = dt.timedelta(hours=1)
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(minutes=15)
# Words a password must not be built on (NIST SP 800-63B "context-specific words").
CONTEXT_WORDS = frozenset(
    {"ioc", "danang", "da nang", "đà nẵng", "vietnam", "admin", "operator", "password", "matkhau"}
)

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that both cases take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


class LoginThrottled(IOCError):
    """Too many failed sign-ins for this name or address: wait and try again."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WeakPassword(IOCError):
    """A password the policy refuses (too short, common, or built on a context word)."""


@dataclass(frozen=True)
class User:
    """A signed-in user (or the kiosk token), as the server sees it on each request."""

    name: str
    role: str
    wards: frozenset[str] = field(default_factory=frozenset)
    # handling units (ids of `units` in categories.yaml) the user belongs to: see
    # ioc.citizen.units (a member of a report's unit sees the reporter's contact)
    units: frozenset[str] = field(default_factory=frozenset)

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


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (ioc/data/common_passwords.txt), lowercased."""
    text = resources.files("ioc.data").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def _fold(text: str) -> str:
    """Lowercase, without Vietnamese diacritics (đ -> d), letters only."""
    text = unicodedata.normalize("NFKD", text.lower().replace("đ", "d"))
    return "".join(c for c in text if c.isalpha() and not unicodedata.combining(c))


def password_problem(password: str, *, name: str = "", role: str = "") -> str | None:
    """Why the policy refuses ``password`` for user ``name`` of ``role``, or None if it is fine.

    At least 8 characters (12 for admins); not one of the shipped common passwords; not a
    common password, the user's name or a context word ('ioc', 'danang', ...) with a few
    digits or symbols around it; more than two different characters."""
    need = MIN_ADMIN_PASSWORD_LEN if role == "admin" else MIN_PASSWORD_LEN
    if len(password) < need:
        who = "an admin's password" if role == "admin" else "a password"
        return f"{who} needs at least {need} characters"
    low = password.lower()
    common = common_passwords()
    if low in common or low.strip() in common:
        return "this password is one of the most common passwords"
    if len(set(low)) <= 2:
        return "this password repeats one or two characters"
    core = _fold(password)
    rest = len(password) - len(core)
    words = {_fold(w) for w in CONTEXT_WORDS} | ({_fold(name)} if _fold(name) else set())
    if not core or (rest <= 4 and core in common):
        return "this password is a common password with a few digits or symbols added"
    if any(w and len(w) >= 3 and not core.replace(w, "") for w in words) or (
        low.strip() == name.lower()
    ):
        return "this password is built on the user name or the system's name"
    return None


def check_password(password: str, *, name: str = "", role: str = "") -> None:
    problem = password_problem(password, name=name, role=role)
    if problem:
        raise WeakPassword(problem)


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
        cur.execute(
            "SELECT name, role, wards, units FROM users WHERE name = %s AND NOT disabled", (name,)
        )
        row = cur.fetchone()
    if row is None:
        return None
    return User(
        name=row[0], role=row[1], wards=frozenset(row[2] or ()), units=frozenset(row[3] or ())
    )


def audit(
    cur: Any,
    event: str,
    *,
    user_name: str | None = None,
    actor: str | None = None,
    addr: str | None = None,
    **details: Any,
) -> None:
    """Append one row to ``auth_audit`` (in the caller's transaction)."""
    cur.execute(
        "INSERT INTO auth_audit (event, user_name, actor, addr, details)"
        " VALUES (%s, %s, %s, %s, %s::jsonb)",
        (event, user_name, actor, addr, json.dumps(details, default=str)),
    )


def _backoff(failures: int, limit: int) -> dt.timedelta:
    """How long to wait after the ``failures``-th failure (none below ``limit``)."""
    if failures < limit:
        return dt.timedelta(0)
    return min(BACKOFF_BASE * 2 ** min(failures - limit, 20), BACKOFF_MAX)


def authenticate(
    conn: Connection, name: str, password: str, *, addr: str | None = None
) -> User | None:
    """Check a sign-in; records it (committed). Raises LoginThrottled while backing off.

    Throttling is per (name, address) and per address, never per name alone, so that nobody
    can lock another user out by failing with their name from elsewhere. Both throttle rows
    are locked (address-wide row first, one order for all) while the password is checked:
    parallel attempts are counted strictly one after the other."""
    now = dt.datetime.now(dt.UTC)
    name = name.strip()[:100]
    if not name:
        return None
    key = (addr or "-")[:100]
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO login_throttle (name, addr) VALUES ('', %s), (%s, %s)"
            " ON CONFLICT DO NOTHING",
            (key, name, key),
        )
        cur.execute(
            "SELECT name, failures, last_failure, blocked_until FROM login_throttle"
            " WHERE addr = %s AND name IN ('', %s) ORDER BY name FOR UPDATE",
            (key, name),
        )
        rows = {r[0]: list(r[1:]) for r in cur.fetchall()}
        for row in rows.values():  # failures long ago say nothing any more
            if row[1] is not None and now - row[1] > FAILURE_WINDOW:
                row[0], row[2] = 0, None
        blocked = [r[2] for r in rows.values() if r[2] is not None and r[2] > now]
        if blocked:
            wait = (max(blocked) - now).total_seconds()
            audit(cur, "login_throttled", user_name=name, addr=addr, retry_after=round(wait))
            conn.commit()
            raise LoginThrottled(
                "too many failed sign-ins; try again in a few minutes", retry_after=wait
            )
        cur.execute("SELECT password_hash FROM users WHERE name = %s AND NOT disabled", (name,))
        found = cur.fetchone()
        ok = verify_password(found[0] if found else _DUMMY_HASH, password) and found is not None
        cur.execute(
            "INSERT INTO login_attempts (name, addr, ts, ok) VALUES (%s, %s, %s, %s)",
            (name, addr, now, ok),
        )
        # keep the table small: attempts older than a day say nothing any more
        cur.execute("DELETE FROM login_attempts WHERE ts < %s", (now - dt.timedelta(days=1),))
        if ok:
            cur.execute("DELETE FROM login_throttle WHERE name = %s AND addr = %s", (name, key))
            audit(cur, "login_ok", user_name=name, actor=name, addr=addr)
        else:
            for row_name, limit in (("", MAX_FAILURES_PER_ADDR), (name, MAX_FAILURES_PER_NAME)):
                n = int(rows[row_name][0]) + 1
                wait = _backoff(n, limit)
                cur.execute(
                    "UPDATE login_throttle SET failures = %s, last_failure = %s,"
                    " blocked_until = %s WHERE name = %s AND addr = %s",
                    (n, now, now + wait if wait else None, row_name, key),
                )
            audit(
                cur,
                "login_failed",
                user_name=name,
                addr=addr,
                known_user=found is not None,
            )
    conn.commit()
    return load_user(conn, name) if ok else None


def unlock(conn: Connection, name: str, *, actor: str | None = None) -> int:
    """Forget ``name``'s failed sign-ins from every address (commits); how many were held."""
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM login_throttle WHERE name = %s AND name <> '' AND failures > 0", (name,)
        )
        n = cur.rowcount
        cur.execute("DELETE FROM login_throttle WHERE name = %s AND name <> ''", (name,))
        audit(cur, "unlock", user_name=name, actor=actor, addresses=n)
    conn.commit()
    return n
