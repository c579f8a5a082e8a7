"""Passwords, roles, ward scoping, DB-backed sign-in throttling and ``ioc users add``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ioc.auth import (
    MAX_FAILURES_PER_NAME,
    LoginThrottled,
    User,
    authenticate,
    hash_password,
    verify_password,
)
from ioc.db import connect
from ioc.errors import IOCError
from ioc.users import add_user

ROOT = Path(__file__).resolve().parents[2]


def test_hash_and_verify() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong horse")
    assert not verify_password("not-a-hash", "correct horse")
    with pytest.raises(IOCError):
        hash_password("short")


def test_roles_and_ward_scope() -> None:
    leader = User("l", "ward_leader", frozenset({"20195"}))
    assert leader.can("view") and not leader.can("ack") and not leader.can("export")
    assert leader.may_see_ward("20195") and not leader.may_see_ward("20197")
    assert leader.scope(["20197", "20195"]) == ["20195"]
    admin = User("a", "admin")
    assert admin.allowed_wards() is None and admin.may_see_ward("20197")
    kiosk = User("k", "kiosk")
    assert kiosk.can("wall") and not kiosk.can("view") and not kiosk.may_see_ward("20195")
    assert User("o", "operator").can("ack") and User("x", "analyst").can("export")


def test_authenticate_and_throttle(fresh_db_url: str, config) -> None:  # type: ignore[no-untyped-def]
    conn = connect(fresh_db_url)
    try:
        add_user(conn, "op1", "op1-password", "operator", known_wards=config.ward_codes)
        with pytest.raises(IOCError, match="already exists"):
            add_user(conn, "op1", "op1-password", "operator")
        user = authenticate(conn, "op1", "op1-password", addr="10.0.0.1")
        assert user is not None and user.role == "operator"
        for _ in range(MAX_FAILURES_PER_NAME):
            assert authenticate(conn, "op1", "nope-nope", addr="10.0.0.2") is None
        # now even the right password is refused for a while from that address (counted in
        # the database); from another address the user still signs in (no lock-out by name)
        with pytest.raises(LoginThrottled):
            authenticate(conn, "op1", "op1-password", addr="10.0.0.2")
        assert authenticate(conn, "op1", "op1-password", addr="10.0.0.3") is not None
        # an unknown user fails like a wrong password
        assert authenticate(conn, "ghost", "whatever-1", addr="10.0.0.4") is None
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM login_attempts WHERE NOT ok")
            assert (cur.fetchone() or (0,))[0] == MAX_FAILURES_PER_NAME + 1
    finally:
        conn.close()


def test_add_user_validation(fresh_db_url: str, config) -> None:  # type: ignore[no-untyped-def]
    conn = connect(fresh_db_url)
    try:
        with pytest.raises(IOCError, match="at least one --ward"):
            add_user(conn, "wl", "wl-password", "ward_leader", [], known_wards=config.ward_codes)
        with pytest.raises(IOCError, match="unknown ward"):
            add_user(
                conn, "wl", "wl-password", "ward_leader", ["99999"], known_wards=config.ward_codes
            )
        with pytest.raises(IOCError, match="applies only to ward_leader"):
            add_user(conn, "an", "an-password", "analyst", ["20195"], known_wards=config.ward_codes)
    finally:
        conn.close()


def _ioc(args: list[str], db_url: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IOC_DATABASE_URL=db_url, IOC_CONFIG_DIR=str(ROOT / "config"))
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_cli_users_add(fresh_db_url: str) -> None:
    r = _ioc(
        ["users", "add", "lan", "--role", "ward_leader", "--ward", "20195"],
        fresh_db_url,
        "lan-password-1\n",
    )
    assert r.returncode == 0, r.stderr
    assert "lan" in r.stdout
    conn = connect(fresh_db_url)
    try:
        assert authenticate(conn, "lan", "lan-password-1") == User(
            "lan", "ward_leader", frozenset({"20195"})
        )
    finally:
        conn.close()
    bad = _ioc(
        ["users", "add", "x", "--role", "ward_leader", "--ward", "00000"],
        fresh_db_url,
        "x-password-1\n",
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "unknown ward" in bad.stderr
    empty = _ioc(["users", "add", "y", "--role", "admin"], fresh_db_url, "")
    assert empty.returncode != 0 and "password" in empty.stderr
