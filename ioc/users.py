"""User accounts: ``ioc users add NAME --role ROLE [--ward CODE ...]`` (password from stdin)."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Iterable

from ioc.auth import ROLES, hash_password
from ioc.context import Context
from ioc.db import Connection, connect
from ioc.errors import IOCError, UsageError

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def add_user(
    conn: Connection,
    name: str,
    password: str,
    role: str,
    wards: Iterable[str] = (),
    *,
    known_wards: set[str] | None = None,
    replace: bool = False,
) -> None:
    """Create (or with ``replace`` update) a user; commits. One-line IOCError on bad input."""
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
    password_hash = hash_password(password)
    with conn.cursor() as cur:
        if replace:
            cur.execute(
                """
                INSERT INTO users (name, password_hash, role, wards) VALUES (%s, %s, %s, %s)
                ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                    role = EXCLUDED.role, wards = EXCLUDED.wards, disabled = false
                """,
                (name, password_hash, role, ward_list),
            )
        else:
            cur.execute(
                "INSERT INTO users (name, password_hash, role, wards) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, password_hash, role, ward_list),
            )
            if cur.rowcount == 0:
                conn.rollback()
                raise IOCError(f"user {name!r} already exists")
    conn.commit()


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
        )
    finally:
        conn.close()
    wards = f" for ward(s) {', '.join(args.ward)}" if args.ward else ""
    print(f"user {args.name} created with role {args.role}{wards}")
    return 0
