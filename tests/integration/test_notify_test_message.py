"""The preferences page's test message (ioc.notify.prefs.send_test): through the outbox to the
user's own saved channels, due at once even in their quiet hours, at most once a minute, and
delivered by the worker like any message (real PostgreSQL, a real SMTP server)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from notify_support import MailSink, add_user, load, rows

from ioc.db import connect
from ioc.notify import prefs
from ioc.notify.worker import Worker
from ioc.settings import Settings

pytestmark = pytest.mark.timeout(120)


def test_a_test_message_reaches_the_users_own_channels_once_a_minute(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail = MailSink().start()
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, {"delivery": {"poll_s": 0.2}})
    conn = connect(fresh_db_url)
    try:
        add_user(conn, "lan", "ward_leader", wards=["20195"], email_addr="lan@example.vn")
        add_user(conn, "mai", "operator", email_addr="mai@example.vn")
        add_user(conn, "nam", "analyst")  # no address at all
        # lan is in her own quiet hours all day long: a test she asked for still goes now
        prefs.save(
            conn,
            "lan",
            prefs.validate({"quiet_start": "00:00", "quiet_end": "23:59", "lang": "en"}),
        )
        now = dt.datetime.now(dt.UTC)
        assert prefs.send_test(conn, cfg, "lan", now=now) == ["email"]
        assert prefs.send_test(conn, cfg, "lan", now=now + dt.timedelta(seconds=30)) == []
        assert prefs.send_test(conn, cfg, "nam", now=now) == []
        # mai switched e-mail off: nothing to send to
        prefs.save(conn, "mai", prefs.validate({"email_on": False}))
        assert prefs.send_test(conn, cfg, "mai", now=now) == []
        assert rows(
            conn, "SELECT recipient, status, next_attempt_at <= now() FROM notifications"
        ) == [("lan@example.vn", "pending", True)]
        settings = Settings(
            database_url=fresh_db_url,
            smtp_url=mail.url,
            secret_key="k" * 40,
            var_dir=tmp_path / "var",
        )
        w = Worker(cfg, fresh_db_url, settings)
        try:
            w.drain()
            mail.wait(1)
        finally:
            w.close()
        (msg,) = mail.to("lan@example.vn")
        assert str(msg["Subject"]) == "[IOC] Test message from IOC"  # her language
        body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "User: lan" in body and "/settings/notifications" in body
        # a minute later she may test again
        assert prefs.send_test(conn, cfg, "lan", now=now + dt.timedelta(seconds=61)) == ["email"]
    finally:
        conn.close()
        mail.stop()
