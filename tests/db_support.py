"""Test databases on a PostgreSQL server (shared by tests/conftest.py's fixtures, tests that
need a database of their own and bench/): create, initialise, drop; databases with the schema
are copies of one template database per process. Import it as ``db_support``, not through
``conftest`` (tests/unit has a conftest of its own, and pytest keeps only one module named
``conftest``)."""

from __future__ import annotations

import atexit
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from ioc.config import Config


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def create_database(server_url: str) -> str:
    name = f"ioc_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return _with_db(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def init_schema(url: str, cfg: Config) -> None:
    from ioc.db import connect
    from ioc.db.migrate import init_db

    conn = connect(url)
    try:
        init_db(conn, cfg)
    finally:
        conn.close()


# One template database per test process: the migrations run once, then every database a test
# asks for is a copy (CREATE DATABASE ... TEMPLATE), a fraction of the time. Names are unique
# per process (pid + random), so concurrent test processes on one server never share one.
_templates: dict[str, str] = {}


def schema_template(server_url: str, cfg: Config) -> str:
    """Name of this process's template database on ``server_url`` (the schema initialised with
    ``cfg``; created at the first call, dropped at exit by :func:`drop_templates`)."""
    name = _templates.get(server_url)
    if name is None:
        url = create_database(server_url)
        init_schema(url, cfg)
        name = urlsplit(url).path.lstrip("/")
        conn = psycopg2.connect(server_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            # no one may connect to it: a connected session would make the copies fail
            cur.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            # nor stay connected: on TimescaleDB its background scheduler has joined the new
            # database (it leaves templates and closed databases alone once it is gone)
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        conn.close()
        _templates[server_url] = name
        atexit.register(drop_templates)  # outside a pytest session (bench); else a no-op
    return name


def create_schema_database(server_url: str, cfg: Config) -> str:
    """A new database with the schema initialised (a copy of the template); its URL."""
    template = schema_template(server_url, cfg)
    name = f"ioc_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    conn.close()
    return _with_db(server_url, name)


def drop_templates() -> None:
    """Drop this process's template databases (a server already stopped has taken its own)."""
    for server_url, name in list(_templates.items()):
        del _templates[server_url]
        try:
            conn = psycopg2.connect(server_url)
        except psycopg2.OperationalError:
            continue
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
