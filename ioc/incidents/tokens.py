"""API tokens of the systems that work incidents in the field (the wards' staff apps, the
simulator's ward staff): scope ``incidents`` in ``api_tokens`` (ioc/citizen/tokens.py keeps the
table, its hashing and revocation; ``ioc tokens list`` / ``revoke`` show and revoke these too).
"""

from __future__ import annotations

import secrets

from ioc.citizen.tokens import NAME_RE, PREFIX, check_token, token_hash
from ioc.db import Connection
from ioc.errors import UsageError

SCOPE = "incidents"


def add_staff_token(conn: Connection, name: str) -> str:
    """A new token of scope ``incidents``; returns the secret (shown once). Commits.

    (``ioc tokens add --scope`` takes the scopes of ``ioc.citizen.tokens.SCOPES``; this makes
    the same kind of row for scope ``incidents``, e.g. for the demo's simulator.)"""
    if not NAME_RE.match(name):
        raise UsageError(f"invalid token name {name!r} (letters, digits, _ . @ -; at most 64)")
    token = PREFIX + secrets.token_urlsafe(32)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO api_tokens (name, token_hash, scope) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING",
            (name, token_hash(token), SCOPE),
        )
        if cur.rowcount == 0:
            conn.rollback()
            raise UsageError(f"token {name!r} exists (revoke it first, or choose another name)")
    conn.commit()
    return token


def check_staff_token(conn: Connection, token: str) -> str | None:
    """The name of the valid token ``token`` of scope ``incidents``, else None. Commits."""
    return check_token(conn, token, SCOPE)
