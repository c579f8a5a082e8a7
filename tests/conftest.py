"""Shared fixtures: real PostgreSQL and a real MQTT broker.

``IOC_DATABASE_URL`` / ``IOC_MQTT_URL`` point at the servers to use (CI: the machine's
PostgreSQL 15 and Mosquitto). When unset, the same embedded servers as ``ioc demo`` are started
(under a temporary folder), so the suite runs on a machine with neither installed.
Each test session works in its own freshly created database; ``fresh_db_url`` gives a test a
database of its own. Both are copies of one template database per test process (the migrations
run once per session).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_support import (  # noqa: F401 - also importable from here, as before
    create_database,
    create_schema_database,
    drop_database,
    drop_templates,
    init_schema,
    schema_template,
)

from ioc.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"

# The tiers: tests/unit (no servers), tests/integration (real servers), tests/e2e (browser,
# demo). Shared helpers (this folder: ingest_helpers, dash_fixtures, ...) are importable as
# pytest puts this folder on sys.path; the tiers' folders too, for the few test modules that
# import from another one (test_ingest_fuzz uses test_parse's generators).
for _tier in ("unit", "integration", "e2e"):
    if str(ROOT / "tests" / _tier) not in sys.path:
        sys.path.append(str(ROOT / "tests" / _tier))


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(CONFIG_DIR)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server we may create databases on."""
    url = os.environ.get("IOC_DATABASE_URL")
    if url:
        yield url
        return
    from ioc.demo.embedded import EmbeddedPostgres

    # Not under pytest's temporary root: every pytest session of the same user resets
    # /tmp/pytest-of-<user> to 0700, and as root the server runs as another user, which then
    # cannot reach its data folder any more (PANIC at the next checkpoint).
    folder = Path(tempfile.mkdtemp(prefix="ioc-test-pg-"))
    server = EmbeddedPostgres(folder)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def schema_templates(pg_server_url: str, config: Config) -> Iterator[str]:
    """The session's template database (requested by the fixtures below, so that it is dropped
    at the end of the session, before the server it lives on stops)."""
    yield schema_template(pg_server_url, config)
    drop_templates()


@pytest.fixture(scope="session")
def db_url(pg_server_url: str, config: Config, schema_templates: str) -> Iterator[str]:
    """A database created for this test session, with the schema initialised."""
    url = create_schema_database(pg_server_url, config)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture
def fresh_db_url(pg_server_url: str, config: Config, schema_templates: str) -> Iterator[str]:
    """A database of this test's own, with the schema initialised."""
    url = create_schema_database(pg_server_url, config)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A database of this test's own, with no schema."""
    url = create_database(pg_server_url)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """URL of a running MQTT broker (the machine's, or an embedded one)."""
    url = os.environ.get("IOC_MQTT_URL")
    if url:
        yield url
        return
    import mqtt_support

    from ioc.demo.embedded import EmbeddedBroker

    broker = EmbeddedBroker()
    url = broker.start()
    mqtt_support.register_embedded(url, broker.engine)  # amqtt lacks MQTT 5, $share, redelivery
    yield url
    broker.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis of the multi-host tests: IOC_TEST_REDIS_URL, default the machine's
    127.0.0.1:6379 (the tests' keys carry a prefix of their own database)."""
    import redis

    url = os.environ.get("IOC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url}: {exc}")
    return url
