"""API tokens of the systems that push reports (``ioc tokens add NAME --scope intake``).

A token is 32 random bytes (``secrets.token_urlsafe``), printed once; only its SHA-256 is kept
(``api_tokens.token_hash``): a random token of that length needs no slow password hash, and a
look-up by hash is one index probe per request. Revoking sets ``revoked_at``; the API refuses a
revoked token at once (it looks the hash up on every request).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from ioc.context import Context
from ioc.db import Connection, connect
from ioc.errors import UsageError

SCOPES = ("intake", "incidents")
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
PREFIX = "ioc_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_token(conn: Connection, name: str, scope: str = "intake") -> str:
    """Create a token; returns the secret (shown once). Commits."""
    if not NAME_RE.match(name):
        raise UsageError(f"invalid token name {name!r} (letters, digits, _ . @ -; at most 64)")
    if scope not in SCOPES:
        raise UsageError(f"unknown scope {scope!r} (one of {', '.join(SCOPES)})")
    token = PREFIX + secrets.token_urlsafe(32)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO api_tokens (name, token_hash, scope) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING",
            (name, token_hash(token), scope),
        )
        if cur.rowcount == 0:
            conn.rollback()
            raise UsageError(f"token {name!r} exists (revoke it first, or choose another name)")
    conn.commit()
    return token


def revoke_token(conn: Connection, name: str) -> None:
    """Revoke ``name`` at once; its name stays (kept for the record). Commits."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
            (name,),
        )
        if cur.rowcount == 0:
            cur.execute("SELECT 1 FROM api_tokens WHERE name = %s", (name,))
            known = cur.fetchone() is not None
            conn.rollback()
            raise UsageError(f"token {name!r} {'is already revoked' if known else 'not found'}")
    conn.commit()


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


def list_tokens(conn: Connection) -> list[TokenInfo]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT name, scope, created_at, revoked_at, last_used_at FROM api_tokens ORDER BY name"
        )
        return [TokenInfo(*row) for row in cur.fetchall()]


def check_token(conn: Connection, token: str, scope: str = "intake") -> str | None:
    """The name of the valid (not revoked) token ``token`` of ``scope``, else None.

    Marks it used (at most once a minute, to keep writes off the hot path). Commits."""
    if not token or len(token) > 200:
        return None
    with conn.cursor() as cur:
        cur.execute(
            "SELECT name, last_used_at FROM api_tokens"
            " WHERE token_hash = %s AND scope = %s AND revoked_at IS NULL",
            (token_hash(token), scope),
        )
        row = cur.fetchone()
        if row is None:
            conn.rollback()
            return None
        name, last = row
        now = dt.datetime.now(dt.UTC)
        if last is None or now - last > dt.timedelta(minutes=1):
            cur.execute("UPDATE api_tokens SET last_used_at = now() WHERE name = %s", (name,))
    conn.commit()
    return str(name)


def _fmt(ts: dt.datetime | None) -> str:
    return "-" if ts is None else ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def add_main(args: argparse.Namespace, ctx: Context) -> int:
    conn = connect(ctx.database_url(), application_name="ioc-tokens")
    try:
        token = add_token(conn, args.name, args.scope)
    finally:
        conn.close()
    print(token)
    import sys

    print(
        f"token {args.name!r} (scope {args.scope}) created; it is shown only this once",
        file=sys.stderr,
    )
    return 0


def list_main(args: argparse.Namespace, ctx: Context) -> int:
    conn = connect(ctx.database_url(), application_name="ioc-tokens")
    try:
        tokens = list_tokens(conn)
    finally:
        conn.close()
    for t in tokens:
        state = f"revoked {_fmt(t.revoked_at)}" if t.revoked_at else "active"
        print(
            f"{t.name}\t{t.scope}\tcreated {_fmt(t.created_at)}\tlast used {_fmt(t.last_used_at)}"
            f"\t{state}"
        )
    return 0


def revoke_main(args: argparse.Namespace, ctx: Context) -> int:
    conn = connect(ctx.database_url(), application_name="ioc-tokens")
    try:
        revoke_token(conn, args.name)
    finally:
        conn.close()
    print(f"token {args.name!r} revoked")
    return 0
