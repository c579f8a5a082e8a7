"""Database access: connections with one-line errors, and small helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection

from ioc.errors import IOCError
from ioc.settings import check_db_url, redact_db_url

# libpq TCP keepalives: a connection to a host that vanished (power, network) fails within
# about 25 s instead of the kernel's two hours; used where a session holds a lock or lease
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def connect(
    url: str, *, application_name: str = "ioc", autocommit: bool = False, **params: Any
) -> Connection:
    """Open a connection; an unreachable server or bad URL becomes a one-line IOCError.
    ``params`` go to libpq (e.g. ``**KEEPALIVES``)."""
    check_db_url(url)
    try:
        conn = psycopg2.connect(
            url, application_name=application_name, connect_timeout=10, **params
        )
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed"
        raise IOCError(f"cannot connect to database {redact_db_url(url)}: {reason}") from None
    except psycopg2.ProgrammingError as exc:
        raise IOCError(f"invalid database URL {redact_db_url(url)}: {exc}".strip()) from None
    conn.autocommit = autocommit
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
    if not autocommit:
        conn.commit()
    return conn


@contextmanager
def connection(url: str, **kwargs: Any) -> Iterator[Connection]:
    """``with connection(url) as conn:`` — closed at the end, rolled back on error."""
    conn = connect(url, **kwargs)
    try:
        yield conn
        if not conn.autocommit:
            conn.commit()
    except BaseException:
        if not conn.closed and not conn.autocommit:
            conn.rollback()
        raise
    finally:
        conn.close()


def storage_mode(conn: Connection) -> str:
    """'timescaledb' or 'postgresql': which path ``ioc db init`` chose for this database."""
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM ioc_meta WHERE key = 'storage_mode'")
        row = cur.fetchone()
    return str(row[0]) if row else "postgresql"
