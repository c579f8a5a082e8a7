"""API tokens of the systems that work incidents in the field (the wards' staff apps, the
simulator's ward staff): scope ``incidents`` in ``api_tokens`` (ioc/citizen/tokens.py keeps the
table, its hashing and revocation; ``ioc tokens list`` / ``revoke`` show and revoke these too).
"""

from __future__ import annotations

from ioc.citizen.tokens import add_token, check_token
from ioc.db import Connection

SCOPE = "incidents"


def add_staff_token(conn: Connection, name: str) -> str:
    """A new token of scope ``incidents``; returns the secret (shown once). Commits."""
    return add_token(conn, name, SCOPE)


def check_staff_token(conn: Connection, token: str) -> str | None:
    """The name of the valid token ``token`` of scope ``incidents``, else None. Commits."""
    return check_token(conn, token, SCOPE)
