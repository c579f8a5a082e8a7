"""Issue 14: server-side sessions (database and Redis), the user lifecycle of ``ioc users``
and of /admin/users, the audit log, atomic sign-in throttling with back-off per name and
address, trusted proxies, and the password policy. Real PostgreSQL and Redis."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ioc.auth import (
    MAX_FAILURES_PER_NAME,
    LoginThrottled,
    authenticate,
    password_problem,
    unlock,
)
from ioc.db import Connection, connect
from ioc.errors import IOCError
from ioc.settings import Settings
from ioc.users import add_user, set_password

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "accounts-test-pass-1"
ORIGIN = {"Origin": "http://localhost"}
REDIS_URL = os.environ.get("IOC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def _events(conn: Connection, event: str, name: str | None = None) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM auth_audit WHERE event = %s"
            " AND (%s::text IS NULL OR user_name = %s)",
            (event, name, name),
        )
        n = int((cur.fetchone() or (0,))[0])
    conn.rollback()
    return n


# --- password policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["12345678", "password", "changeme", "Password1", "iloveyou!", "qwertyuiop",
     "danang2025", "Đà Nẵng 2025", "ioc-ioc-ioc", "nguyenvana", "nguyenvana1990",
     "aaaaaaaaaaaa", "abababababab"],
)  # fmt: skip
def test_common_and_context_passwords_are_refused(password: str) -> None:
    assert password_problem(password, name="nguyenvana", role="operator") is not None


def test_length_and_good_passwords() -> None:
    assert password_problem("x7#Kp2v", role="operator")  # 7 characters
    assert password_problem("x7#Kp2vQ", role="operator") is None
    assert password_problem("x7#Kp2vQ", role="admin")  # admins: 12
    assert password_problem("x7#Kp2vQ-lm9", role="admin") is None
    assert password_problem("lan-password-1", name="lan", role="ward_leader") is None
    # what `ioc demo` generates for its admin is always accepted
    for _ in range(300):
        assert password_problem(secrets.token_urlsafe(12), name="admin", role="admin") is None


def test_policy_applies_to_add_and_passwd(conn: Connection) -> None:
    with pytest.raises(IOCError, match="common"):
        add_user(conn, "op", "password123", "operator")
    with pytest.raises(IOCError, match="12 characters"):
        add_user(conn, "boss", "x7#Kp2vQ-l", "admin")
    add_user(conn, "op", PASSWORD, "operator")
    with pytest.raises(IOCError):
        set_password(conn, "op", "12345678")
    assert authenticate(conn, "op", PASSWORD, addr="10.0.0.1") is not None


# --- throttling ------------------------------------------------------------------------------


def test_parallel_wrong_passwords_are_counted_atomically(fresh_db_url: str) -> None:
    conn = connect(fresh_db_url)
    add_user(conn, "target", PASSWORD, "operator")
    conn.close()
    start = threading.Barrier(24)
    outcome: list[str] = []

    def attempt() -> None:
        c = connect(fresh_db_url)
        try:
            start.wait()
            try:
                ok = authenticate(c, "target", "wrong-password-x", addr="192.0.2.7")
                outcome.append("ok" if ok else "failed")
            except LoginThrottled:
                outcome.append("throttled")
        finally:
            c.close()

    threads = [threading.Thread(target=attempt) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcome).count("failed") == MAX_FAILURES_PER_NAME, outcome
    assert outcome.count("throttled") == 24 - MAX_FAILURES_PER_NAME
    c = connect(fresh_db_url)
    try:
        assert _events(c, "login_failed", "target") == MAX_FAILURES_PER_NAME
        assert _events(c, "login_throttled", "target") == 24 - MAX_FAILURES_PER_NAME
    finally:
        c.close()


def test_back_off_per_name_and_address_and_admin_unlock(conn: Connection) -> None:
    add_user(conn, "boss", "x7#Kp2vQ-lm9", "admin")
    for _ in range(MAX_FAILURES_PER_NAME):
        assert authenticate(conn, "boss", "wrong-password", addr="203.0.113.9") is None
    with pytest.raises(LoginThrottled) as exc:
        authenticate(conn, "boss", "x7#Kp2vQ-lm9", addr="203.0.113.9")
    assert 0 < exc.value.retry_after <= 30
    # the real admin, elsewhere, is not locked out by the attacker's failures
    assert authenticate(conn, "boss", "x7#Kp2vQ-lm9", addr="198.51.100.1") is not None
    # back-off: once the wait is over one more try is checked; failing doubles the wait
    with conn.cursor() as cur:
        cur.execute("UPDATE login_throttle SET blocked_until = now() WHERE name = 'boss'")
    conn.commit()
    assert authenticate(conn, "boss", "wrong-again", addr="203.0.113.9") is None
    with pytest.raises(LoginThrottled) as exc:
        authenticate(conn, "boss", "wrong-again", addr="203.0.113.9")
    assert 30 < exc.value.retry_after <= 60
    # an admin unlocks: the right password works from that address at once
    unlock(conn, "boss", actor="cli:test")
    assert authenticate(conn, "boss", "x7#Kp2vQ-lm9", addr="203.0.113.9") is not None
    assert _events(conn, "unlock", "boss") == 1


# --- sessions through the web app ------------------------------------------------------------


def _app(url: str, tmp: Path, redis_url: str | None = None) -> Any:
    from dashboards.app import create_app
    from ioc.config import load_config

    cfg = load_config(ROOT / "config")
    settings = Settings(secret_key="k" * 40, var_dir=tmp / "var", redis_url=redis_url)
    app = create_app(cfg, url, settings)
    app.server.config["IOC_STATE"].cache.ttl = 0.0
    return app


def _login(client: Any, name: str, password: str = PASSWORD) -> None:
    r = client.post(
        "/login", data={"username": name, "password": password, "next": "/"}, headers=ORIGIN
    )
    assert r.status_code == 302, r.data[:300]


def _signed_in(client: Any) -> bool:
    r = client.get("/alerts")
    assert r.status_code in (200, 302)
    return r.status_code == 200


@pytest.fixture
def two_hosts(fresh_db_url: str, tmp_path: Path, conn: Connection) -> Iterator[tuple[Any, Any]]:
    """Two dashboard apps on one database, as two web hosts behind a load balancer."""
    add_user(conn, "op", PASSWORD, "operator", email="op@example.org")
    add_user(conn, "boss", "x7#Kp2vQ-lm9", "admin")
    a, b = _app(fresh_db_url, tmp_path / "a"), _app(fresh_db_url, tmp_path / "b")
    yield a, b
    for app in (a, b):
        app.server.config["IOC_STATE"].pool.close()


def _cookie(client: Any) -> str:
    cookie = client.get_cookie("ioc_session")
    assert cookie is not None
    return str(cookie.value)


def test_logout_ends_the_session_on_every_host(two_hosts: tuple[Any, Any]) -> None:
    a, b = two_hosts
    ca = a.server.test_client()
    _login(ca, "op")
    stolen = _cookie(ca)
    cb = b.server.test_client()
    cb.set_cookie("ioc_session", stolen)
    assert _signed_in(cb)  # the other host knows the session
    # GET /logout does not sign out: it shows a form that posts
    page = ca.get("/logout")
    assert page.status_code == 200 and "method='post'" in page.get_data(as_text=True)
    assert _signed_in(ca)
    # a POST from another site does not either
    assert ca.post("/logout", headers={"Origin": "http://evil.example"}).status_code == 403
    assert _signed_in(cb)
    r = ca.post("/logout", headers=ORIGIN)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    # the old cookie is dead everywhere
    assert not _signed_in(cb)
    again = b.server.test_client()
    again.set_cookie("ioc_session", stolen)
    assert not _signed_in(again)


def test_passwd_disable_remove_end_sessions_at_once(
    two_hosts: tuple[Any, Any], fresh_db_url: str
) -> None:
    a, _ = two_hosts
    steps = [("passwd", "new-op-secret-9\n", PASSWORD), ("disable", "", "new-op-secret-9")]
    for action, stdin, password in steps:
        c = a.server.test_client()
        _login(c, "op", password)
        assert _signed_in(c)
        r = _ioc(["users", action, "op"], fresh_db_url, stdin)
        assert r.returncode == 0, r.stderr
        assert "1 session(s) ended" in r.stdout
        assert not _signed_in(c), action
    assert _ioc(["users", "enable", "op"], fresh_db_url).returncode == 0
    c = a.server.test_client()
    _login(c, "op", "new-op-secret-9")
    assert _signed_in(c)
    r = _ioc(["users", "remove", "op"], fresh_db_url)
    assert r.returncode == 0 and "1 session(s) ended" in r.stdout, r.stdout + r.stderr
    assert not _signed_in(c)


def test_idle_timeout(two_hosts: tuple[Any, Any], conn: Connection) -> None:
    a, _ = two_hosts
    c = a.server.test_client()
    _login(c, "op")
    assert _signed_in(c)
    with conn.cursor() as cur:  # an hour and a bit without a request
        cur.execute("UPDATE sessions SET last_seen = now() - interval '61 minutes'")
    conn.commit()
    assert not _signed_in(c)


def test_old_stateless_cookies_no_longer_sign_in(two_hosts: tuple[Any, Any]) -> None:
    from itsdangerous import URLSafeTimedSerializer

    a, _ = two_hosts
    forged = URLSafeTimedSerializer("k" * 40, salt="ioc-session").dumps({"u": "boss", "iat": 1})
    c = a.server.test_client()
    c.set_cookie("ioc_session", forged)
    assert not _signed_in(c)


def test_admin_page_is_for_admins_and_manages_users(
    two_hosts: tuple[Any, Any], conn: Connection
) -> None:
    a, _ = two_hosts
    op = a.server.test_client()
    _login(op, "op")
    assert op.get("/admin/users").status_code == 403
    assert op.post("/admin/users", data={"action": "remove", "name": "boss"},
                   headers=ORIGIN).status_code == 403  # fmt: skip
    boss = a.server.test_client()
    _login(boss, "boss", "x7#Kp2vQ-lm9")
    page = boss.get("/admin/users")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "op@example.org" in text and "argon2" not in text

    def act(**form: str) -> Any:
        return boss.post("/admin/users", data=form, headers=ORIGIN)

    assert act(action="add", name="wl", role="ward_leader", wards="20195",
               password="leader-pass-77").status_code == 200  # fmt: skip
    assert act(action="add", name="weak", role="operator", password="12345678").status_code == 400
    assert act(action="set_role", name="op", role="analyst", wards="").status_code == 200
    assert _signed_in(op)  # a role change keeps the session (the new role holds)
    assert act(action="disable", name="op").status_code == 200
    assert not _signed_in(op)
    assert act(action="passwd", name="wl", password="leader-pass-78").status_code == 200
    # the address notifications go to: set, refused when malformed, cleared; each audited
    assert act(action="set_email", name="wl", email="wl@danang.example").status_code == 200
    assert "value='wl@danang.example'" in boss.get("/admin/users").get_data(as_text=True)
    bad_mail = act(action="set_email", name="wl", email="wl at danang")
    assert bad_mail.status_code == 400 and "invalid email" in bad_mail.get_data(as_text=True)
    assert act(action="set_email", name="nobody", email="x@danang.example").status_code == 400
    with conn.cursor() as cur:
        cur.execute("SELECT email FROM users WHERE name = 'wl'")
        assert cur.fetchone() == ("wl@danang.example",)
    conn.rollback()
    assert act(action="set_email", name="wl", email="").status_code == 200
    with conn.cursor() as cur:
        cur.execute(
            "SELECT details->>'old_email', details->>'email', actor FROM auth_audit"
            " WHERE event = 'email_changed' AND user_name = 'wl' ORDER BY id"
        )
        assert cur.fetchall() == [
            (None, "wl@danang.example", "web:boss"),
            ("wl@danang.example", None, "web:boss"),
        ]
    conn.rollback()
    assert act(action="remove", name="boss").status_code == 400  # not oneself
    assert _events(conn, "role_changed", "op") == 1
    assert _events(conn, "user_disabled", "op") == 1
    with conn.cursor() as cur:
        cur.execute("SELECT actor FROM auth_audit WHERE event = 'password_changed'")
        assert [r[0] for r in cur.fetchall()] == ["web:boss"]
    conn.rollback()
    # the audit log shows sign-ins and failures too
    bad = a.server.test_client()
    bad.post("/login", data={"username": "boss", "password": "nope-nope-1"}, headers=ORIGIN)
    assert _events(conn, "login_failed", "boss") == 1
    assert _events(conn, "login_ok", "boss") == 1


def test_trusted_proxies(two_hosts: tuple[Any, Any]) -> None:
    from dashboards import security

    a, _ = two_hosts
    config = a.server.config
    xff = {"X-Forwarded-For": "6.6.6.6, 203.0.113.50"}
    with a.server.test_request_context("/", headers=xff, environ_base={"REMOTE_ADDR": "10.0.0.2"}):
        assert security.client_addr() == "10.0.0.2"  # no trusted proxy: the peer
        config["IOC_SETTINGS"] = Settings(secret_key="k" * 40, trusted_proxies="10.0.0.0/24, ::1")
        # the nearest untrusted hop; the left part (6.6.6.6) is the client's to forge
        assert security.client_addr() == "203.0.113.50"
    with a.server.test_request_context(
        "/", headers={"X-Forwarded-For": "10.0.0.7"}, environ_base={"REMOTE_ADDR": "10.0.0.2"}
    ):
        assert security.client_addr() == "10.0.0.7"
    with a.server.test_request_context("/", headers=xff, environ_base={"REMOTE_ADDR": "8.8.8.8"}):
        assert security.client_addr() == "8.8.8.8"  # an untrusted peer's header is ignored


# --- Redis sessions --------------------------------------------------------------------------


def _redis() -> Any:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    return client


def test_redis_sessions_shared_and_ended_by_the_cli(
    fresh_db_url: str, tmp_path: Path, conn: Connection
) -> None:
    r = _redis()
    name = f"op-{uuid.uuid4().hex[:8]}"
    add_user(conn, name, PASSWORD, "operator")
    a = _app(fresh_db_url, tmp_path / "a", REDIS_URL)
    b = _app(fresh_db_url, tmp_path / "b", REDIS_URL)
    try:
        ca = a.server.test_client()
        _login(ca, name)
        cb = b.server.test_client()
        cb.set_cookie("ioc_session", _cookie(ca))
        assert _signed_in(cb)
        with conn.cursor() as cur:  # held in Redis, not in the table
            cur.execute("SELECT count(*) FROM sessions")
            assert (cur.fetchone() or (0,))[0] == 0
        conn.rollback()
        assert r.scard(f"ioc:user-sessions:{name}") == 1
        out = _ioc(["users", "passwd", name], fresh_db_url, "another-op-pass-5\n",
                   {"IOC_REDIS_URL": REDIS_URL})  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert not _signed_in(ca) and not _signed_in(cb)
        assert r.exists(f"ioc:user-sessions:{name}") == 0
    finally:
        for app in (a, b):
            app.server.config["IOC_STATE"].pool.close()


# --- the command line ------------------------------------------------------------------------


def _ioc(
    args: list[str], db_url: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "IOC_REDIS_URL"}
    base.update(IOC_DATABASE_URL=db_url, IOC_CONFIG_DIR=str(ROOT / "config"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=base,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_users_lifecycle_cli(fresh_db_url: str, conn: Connection) -> None:
    add = _ioc(
        ["users", "add", "lan", "--role", "ward_leader", "--ward", "20195", "20197",
         "--email", "lan@danang.example"],
        fresh_db_url,
        "lan-secret-pass-1\n",
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    assert _ioc(["users", "add", "an", "--role", "analyst"], fresh_db_url,
                "analyst-pass-22\n").returncode == 0  # fmt: skip
    weak = _ioc(["users", "add", "x", "--role", "analyst"], fresh_db_url, "password1\n")
    assert weak.returncode != 0 and weak.stderr.count("\n") == 1 and "common" in weak.stderr
    listed = _ioc(["users", "list"], fresh_db_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert lines == [
        "an\tanalyst\t-\t-\tenabled",
        "lan\tward_leader\t20195,20197\tlan@danang.example\tenabled",
    ]
    assert "argon2" not in listed.stdout
    assert _ioc(["users", "disable", "lan"], fresh_db_url).returncode == 0
    assert (
        "lan\tward_leader\t20195,20197\tlan@danang.example\tdisabled"
        in _ioc(["users", "list"], fresh_db_url).stdout
    )
    assert authenticate(conn, "lan", "lan-secret-pass-1") is None  # disabled
    assert _ioc(["users", "enable", "lan"], fresh_db_url).returncode == 0
    assert _ioc(["users", "passwd", "lan"], fresh_db_url, "lan-secret-pass-2\n").returncode == 0
    assert authenticate(conn, "lan", "lan-secret-pass-2", addr="10.1.1.1") is not None
    for _ in range(MAX_FAILURES_PER_NAME):
        authenticate(conn, "lan", "wrong-wrong", addr="10.1.1.2")
    with pytest.raises(LoginThrottled):
        authenticate(conn, "lan", "lan-secret-pass-2", addr="10.1.1.2")
    un = _ioc(["users", "unlock", "lan"], fresh_db_url)
    assert un.returncode == 0 and "2 address(es)" in un.stdout, un.stdout + un.stderr
    assert authenticate(conn, "lan", "lan-secret-pass-2", addr="10.1.1.2") is not None
    # the address for notifications, changed and cleared later
    changed = _ioc(["users", "email", "lan", "lan.nguyen@danang.example"], fresh_db_url)
    assert changed.returncode == 0, changed.stderr
    assert "lan.nguyen@danang.example" in _ioc(["users", "list"], fresh_db_url).stdout
    for args in (["lan"], ["lan", "a@b.example", "--clear"], ["lan", "no-at-sign"]):
        bad = _ioc(["users", "email", *args], fresh_db_url)
        assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert _ioc(["users", "email", "lan", "--clear"], fresh_db_url).returncode == 0
    assert (
        "lan\tward_leader\t20195,20197\t-\tenabled" in _ioc(["users", "list"], fresh_db_url).stdout
    )
    assert _events(conn, "email_changed", "lan") == 2
    assert _ioc(["users", "remove", "lan"], fresh_db_url).returncode == 0
    for action in ("disable", "enable", "remove", "unlock", "email"):
        gone = _ioc(["users", action, "lan", *(["x@y.example"] if action == "email" else [])],
                    fresh_db_url)  # fmt: skip
        assert gone.returncode != 0 and gone.stderr.strip().count("\n") == 0
        assert "no user 'lan'" in gone.stderr
    gone = _ioc(["users", "passwd", "lan"], fresh_db_url, "whatever-pass-3\n")
    assert gone.returncode != 0 and "no user" in gone.stderr
    bad_mail = _ioc(["users", "add", "m", "--role", "operator", "--email", "not-an-address"],
                    fresh_db_url, "operator-pass-4\n")  # fmt: skip
    assert bad_mail.returncode != 0 and "email" in bad_mail.stderr
    events = {
        e: _events(conn, e, "lan")
        for e in ("user_added", "user_disabled", "user_enabled", "password_changed",
                  "unlock", "user_removed")
    }  # fmt: skip
    assert all(n == 1 for n in events.values()), events
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT actor FROM auth_audit WHERE event = 'user_added'")
        assert all(str(r[0]).startswith("cli") for r in cur.fetchall())
    conn.rollback()


def test_email_column_and_tables_exist(conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE (table_name, column_name) IN (('users', 'email'), ('sessions', 'id_hash'),"
            " ('auth_audit', 'event'), ('login_throttle', 'blocked_until'))"
        )
        assert len(cur.fetchall()) == 4
    conn.rollback()


def test_unreachable_redis_refuses_with_503(
    fresh_db_url: str, tmp_path: Path, conn: Connection
) -> None:
    add_user(conn, "op", PASSWORD, "operator")
    app = _app(fresh_db_url, tmp_path, "redis://127.0.0.1:1/0")
    try:
        c = app.server.test_client()
        r = c.post("/login", data={"username": "op", "password": PASSWORD}, headers=ORIGIN)
        assert r.status_code == 503 and "Redis" in r.get_data(as_text=True)
        from itsdangerous import URLSafeTimedSerializer

        c.set_cookie(
            "ioc_session",
            URLSafeTimedSerializer("k" * 40, salt="ioc-session").dumps({"s": "x" * 43}),
        )
        assert c.get("/alerts").status_code == 503
    finally:
        app.server.config["IOC_STATE"].pool.close()
