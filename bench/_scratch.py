"""A scratch database for a benchmark: created on ``IOC_DATABASE_URL``'s server, schema
initialised with the project's config, dropped afterwards (unless kept)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2.extensions import connection as Connection
from psycopg2.extras import execute_values

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


def seed_daily_kpis(
    conn: Connection, cfg: Config, kpis: list[str], first: dt.datetime, days: int
) -> int:
    """Daily values (random 60-100) of ``kpis`` for every ward and the city from ``first``,
    stored in ``kpi_values`` as the scheduler would; committed. Returns the row count."""
    rng = random.Random(1)
    codes = [*(w.code for w in cfg.wards), "city"]
    rows = [
        (k, code, "day", first + dt.timedelta(days=d), round(rng.uniform(60, 100), 4))
        for k in kpis
        for d in range(days)
        for code in codes
    ]
    with conn.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO kpi_values (kpi, ward_code, period, period_start, value) VALUES %s",
            rows,
            page_size=5000,
        )
    conn.commit()
    return len(rows)
