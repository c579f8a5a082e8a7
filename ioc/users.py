"""User accounts: ``ioc users add|list|passwd|disable|enable|remove|unlock`` (contract), and
``ioc users email`` (a user's address for notifications, set or cleared later).

Passwords are read from standard input and checked against the policy of
:func:`ioc.auth.password_problem`. A password change, disabling or removing ends every session
of the user at once (database and Redis, see :mod:`ioc.sessions`). Every change is written to
``auth_audit`` with who made it (``cli:<OS user>`` from the command line).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from ioc.auth import ROLES, audit, check_password, hash_password, unlock
from ioc.citizen.units import check_units
from ioc.config import Config
from ioc.context import Context
from ioc.db import Connection, connect
from ioc.errors import IOCError, UsageError
from ioc.sessions import end_user_sessions

T = TypeVar("T")

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
EMAIL_RE = re.compile(r"^[^@\s<>,;\"']{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,63}$")


def _cli_actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):  # no user name in this environment
        return "cli"


def check_email(email: str | None) -> str | None:
    if email is None or email == "":
        return None
    if not EMAIL_RE.match(email):
        raise UsageError(f"invalid email address {email!r}")
    return email


def add_user(
    conn: Connection,
    name: str,
    password: str,
    role: str,
    wards: Iterable[str] = (),
    *,
    known_wards: set[str] | None = None,
    replace: bool = False,
    email: str | None = None,
    actor: str | None = None,
    redis_url: str | None = None,
    units: Iterable[str] = (),
    known_units: Iterable[str] | None = None,
) -> None:
    """Create (or with ``replace`` update) a user; commits. One-line IOCError on bad input.

    ``units``: the handling units (ids of ``units`` in categories.yaml) the user belongs to,
    checked against ``known_units`` when given."""
    if not NAME_RE.match(name):
        raise UsageError(f"invalid user name {name!r} (letters, digits, _ . @ -; at most 64)")
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    ward_list = sorted(set(wards))
    if known_wards is not None:
        unknown = [w for w in ward_list if w not in known_wards]
        if unknown:
            raise UsageError(f"unknown ward code(s): {', '.join(unknown)}")
    if role == "ward_leader" and not ward_list:
        raise UsageError("a ward_leader needs at least one --ward CODE")
    if role != "ward_leader" and ward_list:
        raise UsageError(f"--ward applies only to ward_leader (role {role} sees every ward)")
    email = check_email(email)
    unit_list = check_units(units, known_units)
    check_password(password, name=name, role=role)
    password_hash = hash_password(password)
    with conn.cursor() as cur:
        if replace:
            cur.execute(
                """
                INSERT INTO users (name, password_hash, role, wards, email, units)
                VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                    role = EXCLUDED.role, wards = EXCLUDED.wards, disabled = false,
                    email = coalesce(EXCLUDED.email, users.email), units = EXCLUDED.units,
                    updated_at = now()
                RETURNING (xmax = 0)
                """,
                (name, password_hash, role, ward_list, email, unit_list),
            )
            created = bool((cur.fetchone() or (True,))[0])
            if not created:  # the old password and grants no longer hold
                end_user_sessions(conn, name, redis_url=redis_url)
        else:
            cur.execute(
                "INSERT INTO users (name, password_hash, role, wards, email, units)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (name, password_hash, role, ward_list, email, unit_list),
            )
            if cur.rowcount == 0:
                conn.rollback()
                raise IOCError(f"user {name!r} already exists")
            created = True
        audit(
            cur,
            "user_added" if created else "user_replaced",
            user_name=name,
            actor=actor,
            role=role,
            wards=ward_list,
            units=unit_list or None,
        )
    conn.commit()


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    wards: list[str]
    email: str | None
    disabled: bool
    units: list[str] = field(default_factory=list)


def list_users(conn: Connection) -> list[UserRow]:
    with conn.cursor() as cur:
        cur.execute("SELECT name, role, wards, email, disabled, units FROM users ORDER BY name")
        rows = [
            UserRow(r[0], r[1], list(r[2] or []), r[3], bool(r[4]), list(r[5] or []))
            for r in cur.fetchall()
        ]
    conn.rollback()
    return rows


def set_password(
    conn: Connection,
    name: str,
    password: str,
    *,
    actor: str | None = None,
    redis_url: str | None = None,
) -> int:
    """New password (policy-checked); ends every session of the user. Commits; sessions ended."""
    with conn.cursor() as cur:
        cur.execute("SELECT role FROM users WHERE name = %s", (name,))
        row = cur.fetchone()
        if row is None:
            conn.rollback()
            raise IOCError(f"no user {name!r}")
        check_password(password, name=name, role=row[0])
        cur.execute(
            "UPDATE users SET password_hash = %s, updated_at = now() WHERE name = %s",
            (hash_password(password), name),
        )
        n = end_user_sessions(conn, name, redis_url=redis_url)
        audit(cur, "password_changed", user_name=name, actor=actor, sessions_ended=n)
    conn.commit()
    return n


def set_enabled(
    conn: Connection,
    name: str,
    enabled: bool,
    *,
    actor: str | None = None,
    redis_url: str | None = None,
) -> int:
    """Enable or disable a user (disabling ends every session). Commits; sessions ended."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE users SET disabled = %s, updated_at = now() WHERE name = %s",
            (not enabled, name),
        )
        if cur.rowcount == 0:
            conn.rollback()
            raise IOCError(f"no user {name!r}")
        n = 0 if enabled else end_user_sessions(conn, name, redis_url=redis_url)
        audit(cur, "user_enabled" if enabled else "user_disabled", user_name=name, actor=actor)
    conn.commit()
    return n


def set_role(
    conn: Connection,
    name: str,
    role: str,
    wards: Iterable[str] = (),
    *,
    known_wards: set[str] | None = None,
    actor: str | None = None,
    units: Iterable[str] | None = None,
    known_units: Iterable[str] | None = None,
) -> None:
    """Change a user's role and wards, and their handling units unless ``units`` is None
    (recorded in the audit log). Commits."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    unit_list = None if units is None else check_units(units, known_units)
    ward_list = sorted(set(wards))
    if known_wards is not None and any(w not in known_wards for w in ward_list):
        raise UsageError("unknown ward code(s)")
    if (role == "ward_leader") != bool(ward_list):
        raise UsageError("a ward_leader needs wards; other roles see every ward")
    with conn.cursor() as cur:
        cur.execute("SELECT role, wards, units FROM users WHERE name = %s FOR UPDATE", (name,))
        old = cur.fetchone()
        if old is None:
            conn.rollback()
            raise IOCError(f"no user {name!r}")
        old_units = list(old[2] or [])
        new_units = old_units if unit_list is None else unit_list
        cur.execute(
            "UPDATE users SET role = %s, wards = %s, units = %s, updated_at = now()"
            " WHERE name = %s",
            (role, ward_list, new_units, name),
        )
        audit(
            cur,
            "role_changed",
            user_name=name,
            actor=actor,
            old_role=old[0],
            old_wards=list(old[1] or []),
            role=role,
            wards=ward_list,
            old_units=old_units if new_units != old_units else None,
            units=new_units if new_units != old_units else None,
        )
    conn.commit()


def set_email(conn: Connection, name: str, email: str | None, *, actor: str | None = None) -> None:
    """Set (or, with None, clear) the address a user's notifications go to; recorded in the
    audit log with the old and the new address. Commits."""
    address = check_email(email)
    with conn.cursor() as cur:
        cur.execute("SELECT email FROM users WHERE name = %s FOR UPDATE", (name,))
        old = cur.fetchone()
        if old is None:
            conn.rollback()
            raise IOCError(f"no user {name!r}")
        cur.execute(
            "UPDATE users SET email = %s, updated_at = now() WHERE name = %s", (address, name)
        )
        audit(cur, "email_changed", user_name=name, actor=actor, old_email=old[0], email=address)
    conn.commit()


def remove_user(
    conn: Connection, name: str, *, actor: str | None = None, redis_url: str | None = None
) -> int:
    """Remove a user and end every session of theirs. Commits; sessions ended."""
    with conn.cursor() as cur:
        n = end_user_sessions(conn, name, redis_url=redis_url)
        cur.execute("DELETE FROM users WHERE name = %s", (name,))
        if cur.rowcount == 0:
            conn.rollback()
            raise IOCError(f"no user {name!r}")
        cur.execute("DELETE FROM login_throttle WHERE name = %s AND name <> ''", (name,))
        audit(cur, "user_removed", user_name=name, actor=actor)
    conn.commit()
    return n


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise IOCError("the passwords do not match")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def add_main(args: argparse.Namespace, ctx: Context) -> int:
    cfg = ctx.config()
    password = _read_password()
    if not password:
        raise UsageError("no password on standard input")
    conn = connect(ctx.database_url(), application_name="ioc-users")
    try:
        add_user(
            conn,
            args.name,
            password,
            args.role,
            args.ward or [],
            known_wards=cfg.ward_codes,
            email=getattr(args, "email", None),
            actor=_cli_actor(),
            units=getattr(args, "unit", None) or [],
            known_units=_known_units(cfg),
        )
    finally:
        conn.close()
    wards = f" for ward(s) {', '.join(args.ward)}" if args.ward else ""
    units = getattr(args, "unit", None)
    of_units = f", handling unit(s) {', '.join(sorted(set(units)))}" if units else ""
    print(f"user {args.name} created with role {args.role}{wards}{of_units}")
    return 0


def _known_units(cfg: Config) -> list[str]:
    """The unit ids of categories.yaml (none without the file)."""
    return list(cfg.categories.units) if cfg.categories is not None else []


def _redis(ctx: Context) -> str | None:
    """IOC_REDIS_URL: sessions held there are ended too."""
    return ctx.settings.secret("redis_url")


def _with_conn(ctx: Context, fn: Callable[[Connection], T]) -> T:
    conn = connect(ctx.database_url(), application_name="ioc-users")
    try:
        return fn(conn)
    finally:
        conn.close()


def list_main(args: argparse.Namespace, ctx: Context) -> int:
    for u in _with_conn(ctx, list_users):
        wards = ",".join(u.wards) if u.wards else "-"
        state = "disabled" if u.disabled else "enabled"
        # the contract's five columns; a sixth only for members of handling units
        units = f"\tunits={','.join(u.units)}" if u.units else ""
        print(f"{u.name}\t{u.role}\t{wards}\t{u.email or '-'}\t{state}{units}")
    return 0


def passwd_main(args: argparse.Namespace, ctx: Context) -> int:
    password = _read_password()
    if not password:
        raise UsageError("no password on standard input")
    n = _with_conn(
        ctx,
        lambda c: set_password(c, args.name, password, actor=_cli_actor(), redis_url=_redis(ctx)),
    )
    print(f"password of {args.name} changed; {n} session(s) ended")
    return 0


def disable_main(args: argparse.Namespace, ctx: Context) -> int:
    n = _with_conn(
        ctx, lambda c: set_enabled(c, args.name, False, actor=_cli_actor(), redis_url=_redis(ctx))
    )
    print(f"user {args.name} disabled; {n} session(s) ended")
    return 0


def enable_main(args: argparse.Namespace, ctx: Context) -> int:
    _with_conn(ctx, lambda c: set_enabled(c, args.name, True, actor=_cli_actor()))
    print(f"user {args.name} enabled")
    return 0


def email_main(args: argparse.Namespace, ctx: Context) -> int:
    if (args.address is None) == (not args.clear):
        raise UsageError("give the user's new address, or --clear to remove it")
    address = None if args.clear else args.address
    _with_conn(ctx, lambda c: set_email(c, args.name, address, actor=_cli_actor()))
    print(f"e-mail of {args.name}: {address or 'none'}")
    return 0


def remove_main(args: argparse.Namespace, ctx: Context) -> int:
    n = _with_conn(
        ctx, lambda c: remove_user(c, args.name, actor=_cli_actor(), redis_url=_redis(ctx))
    )
    print(f"user {args.name} removed; {n} session(s) ended")
    return 0


def unlock_main(args: argparse.Namespace, ctx: Context) -> int:
    def run(conn: Connection) -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM users WHERE name = %s", (args.name,))
            if cur.fetchone() is None:
                raise IOCError(f"no user {args.name!r}")
        return unlock(conn, args.name, actor=_cli_actor())

    n = _with_conn(ctx, run)
    print(f"user {args.name} unlocked ({n} address(es) were backing off)")
    return 0
