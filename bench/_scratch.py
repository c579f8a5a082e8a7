"""A scratch database for a benchmark: created on ``IOC_DATABASE_URL``'s server, schema
initialised with the project's config, dropped afterwards (unless kept)."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ioc.config import Config, load_config  # noqa: E402
from ioc.db import connect  # noqa: E402
from ioc.db.migrate import init_db  # noqa: E402


def server_url() -> str:
    """IOC_DATABASE_URL, or exit with the one-line reason."""
    url = os.environ.get("IOC_DATABASE_URL")
    if not url:
        raise SystemExit("set IOC_DATABASE_URL to a PostgreSQL server we may create databases on")
    return url


@contextlib.contextmanager
def scratch_database(label: str, *, keep: bool = False) -> Iterator[tuple[str, Config]]:
    """Yield (url, config) of a new database ``ioc_bench_<label>_<hex>`` with the schema."""
    server = server_url()
    cfg = load_config(ROOT / "config")
    name = f"ioc_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        url = urlunsplit(urlsplit(server)._replace(path="/" + name))
        try:
            conn = connect(url)
            try:
                init_db(conn, cfg)
            finally:
                conn.close()
            yield url, cfg
        finally:
            if keep:
                print(f"kept the scratch database {name}")
            else:
                with admin.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
