"""The unit tier: no servers. Every test here runs with the server URLs pointing nowhere and
with connections to PostgreSQL, MQTT and Redis refused, so a test that needs a server fails
here at once (move it to tests/integration) instead of passing on a machine that has one."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

import psycopg2
import pytest

# Where the servers are: the usual ports, and those of the URLs the other tiers use.
SERVER_PORTS = {5432, 1883, 8883, 6379}
for _var in ("IOC_DATABASE_URL", "IOC_MQTT_URL", "IOC_TEST_REDIS_URL", "IOC_REDIS_URL"):
    try:
        _port = urlsplit(os.environ.get(_var, "")).port
    except ValueError:
        _port = None
    if _port:
        SERVER_PORTS.add(_port)
NOWHERE = {
    "IOC_DATABASE_URL": "postgresql://unit-tests@127.0.0.1:9/no_server_in_unit_tests",
    "IOC_MQTT_URL": "mqtt://127.0.0.1:9",
    "IOC_TEST_REDIS_URL": "redis://127.0.0.1:9/0",
    "IOC_REDIS_URL": "redis://127.0.0.1:9/0",
}


class ServerInUnitTest(ConnectionRefusedError):
    pass


def _refuse(what: str) -> NoReturn:
    raise ServerInUnitTest(f"{what}: a unit test must not use a server (tests/unit/conftest.py)")


@pytest.fixture(autouse=True)
def no_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var, url in NOWHERE.items():
        monkeypatch.setenv(var, url)  # subprocesses too

    def pg_connect(*_: Any, **__: Any) -> NoReturn:
        _refuse("PostgreSQL connection")

    monkeypatch.setattr(psycopg2, "_connect", pg_connect)  # what psycopg2.connect calls
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def blocked(sock: socket.socket, address: Any) -> bool:
        return (
            sock.family in (socket.AF_INET, socket.AF_INET6)
            and isinstance(address, tuple)
            and address[1] in SERVER_PORTS
        )

    def connect(sock: socket.socket, address: Any) -> None:
        if blocked(sock, address):
            _refuse(f"connection to port {address[1]}")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if blocked(sock, address):
            _refuse(f"connection to port {address[1]}")
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield


@pytest.fixture(scope="session")
def pg_server_url() -> NoReturn:
    pytest.fail("a unit test must not use PostgreSQL: move it to tests/integration")


@pytest.fixture(scope="session")
def mqtt_url() -> NoReturn:
    pytest.fail("a unit test must not use an MQTT broker: move it to tests/integration")


@pytest.fixture(scope="session")
def redis_url() -> NoReturn:
    pytest.fail("a unit test must not use Redis: move it to tests/integration")
