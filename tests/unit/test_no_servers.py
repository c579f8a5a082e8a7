"""The unit tier's guard (tests/unit/conftest.py) refuses servers, so a test that needs one
fails here instead of passing on a machine that has it."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import psycopg2
import pytest

from ioc.db import connect


def test_postgresql_is_refused() -> None:
    with pytest.raises(ConnectionRefusedError, match="unit test must not use a server"):
        connect("postgresql://postgres@127.0.0.1:5432/postgres")
    with pytest.raises(ConnectionRefusedError, match="unit test must not use a server"):
        psycopg2.connect(host="/var/run/postgresql", dbname="postgres")


@pytest.mark.parametrize("port", [1883, 6379, 5432])
def test_server_ports_are_refused(port: int) -> None:
    with pytest.raises(ConnectionRefusedError, match=f"connection to port {port}"):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_subprocesses_get_urls_that_lead_nowhere() -> None:
    assert urlsplit(os.environ["IOC_DATABASE_URL"]).port == 9
    assert urlsplit(os.environ["IOC_MQTT_URL"]).port == 9
