"""Notifications end to end: routing, quiet hours, digests, escalation, delivery through a
real SMTP server (aiosmtpd) and a real HTTP receiver, retries, dead letters, bursts."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from notify_support import HookSink, MailSink, add_user, load, rows, wait_until

from ioc import alerts
from ioc.config import Config, ConfigError, load_config
from ioc.db import Connection, connect
from ioc.notify import escalation, outbox
from ioc.notify.channels import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from ioc.notify.worker import Worker
from ioc.settings import Settings

pytestmark = pytest.mark.timeout(180)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
W1, W2 = "20195", "20197"  # Phường Hải Vân, Phường Liên Chiểu
FAST = {
    "delivery": {"backoff_s": 0.2, "backoff_max_s": 1, "poll_s": 0.2, "lease_s": 2, "threads": 4},
    "rate_limit": {"per_hour": 100000},
}


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


@pytest.fixture
def mail() -> Iterator[MailSink]:
    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def hook() -> Iterator[HookSink]:
    sink = HookSink().start()
    yield sink
    sink.stop()


def users(conn: Connection) -> None:
    add_user(conn, "admin1", "admin", email_addr="admin1@example.vn")
    add_user(conn, "op_noemail", "operator")
    add_user(conn, "op1", "operator", email_addr="op1@example.vn")
    add_user(conn, "lead1", "ward_leader", wards=[W1], email_addr="lead1@example.vn")
    add_user(conn, "lead2", "ward_leader", wards=[W2], email_addr="lead2@example.vn")
    add_user(conn, "analyst1", "analyst", email_addr="an1@example.vn")
    add_user(conn, "kiosk1", "kiosk", email_addr="kiosk@example.vn")
    add_user(conn, "gone", "admin", email_addr="gone@example.vn", disabled=True)


def rule(cfg: Config, rule_id: str = "water_level_high") -> Any:
    return next(r for r in cfg.alerts.rules if r.id == rule_id)


def open_alert(
    conn: Connection,
    cfg: Config,
    ward: str | None = W1,
    *,
    rule_id: str = "water_level_high",
    value: float = 62.5,
    subject: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """An alert row and its notifications, in one transaction (as ioc.alerts does)."""
    r = rule(cfg, rule_id)
    now = now or dt.datetime.now(dt.UTC)
    subject = subject or f"dev-{ward}-{now.timestamp()}"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, value,"
            " opened_at) VALUES (%s, %s, %s, %s, 'open', %s, %s, %s) RETURNING id",
            (r.id, subject, ward, r.severity, r.label_vi, value, now),
        )
        row = cur.fetchone()
        assert row is not None
        outbox.alert_opened(
            cur,
            cfg,
            r,
            alert_id=row[0],
            subject=subject,
            ward_code=ward,
            value=value,
            opened_at=now,
        )
    conn.commit()
    return int(row[0])


def worker(cfg: Config, db_url: str, tmp: Path, smtp: str | None, **kw: Any) -> Worker:
    settings = Settings(
        database_url=db_url,
        smtp_url=smtp,
        var_dir=tmp / "var",
        secret_key="k" * 40,
        public_url="http://ioc.example:8050",
        **kw,
    )
    return Worker(cfg, db_url, settings)


def notif(conn: Connection, where: str = "TRUE", params: Any = None) -> list[dict[str, Any]]:
    cols = (
        "id",
        "kind",
        "channel",
        "recipient",
        "user_name",
        "status",
        "attempts",
        "level",
        "next_attempt_at",
        "ref_id",
        "subject",
        "body_text",
        "idem_key",
    )
    got = rows(
        conn, f"SELECT {', '.join(cols)} FROM notifications WHERE {where} ORDER BY id", params
    )
    return [dict(zip(cols, r, strict=True)) for r in got]


# --------------------------------------------------------------------------- routing


def test_default_routing_follows_the_wards_each_user_may_see(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:1")
    cfg = load(tmp_path)
    users(conn)
    open_alert(conn, cfg, W1)  # critical, ward 1
    got = {r["recipient"] for r in notif(conn)}
    assert got == {"admin1@example.vn", "op1@example.vn", "lead1@example.vn", "an1@example.vn"}
    # a warning in ward 2: lead2, not lead1; an info alert: nobody (the route is warning+)
    open_alert(conn, cfg, W2, rule_id="pm25_high")
    w2 = {r["recipient"] for r in notif(conn, "ward_code = %s", (W2,))}
    assert "lead2@example.vn" in w2 and "lead1@example.vn" not in w2
    assert open_alert(conn, cfg, W1, rule_id="camera_black")  # severity info
    assert notif(conn, "severity = 'info'") == []
    # a city-wide alert (no ward): no ward leader
    open_alert(conn, cfg, None, rule_id="pm25_high", subject="city")
    city = {r["recipient"] for r in notif(conn, "ward_code IS NULL")}
    assert city == {"admin1@example.vn", "op1@example.vn", "an1@example.vn"}


def test_routes_by_category_and_ward_and_no_email_without_smtp(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hook: HookSink,
) -> None:
    monkeypatch.delenv("IOC_SMTP_URL", raising=False)
    monkeypatch.delenv("IOC_MQTT_URL", raising=False)
    cfg = load(
        tmp_path,
        {
            "webhooks": {"bus": {"url": hook.url}},
            "routes": [
                {
                    "name": "flood_bus",
                    "events": ["alert_opened"],
                    "categories": ["water_level_high"],
                    "wards": [W1],
                    "to": {
                        "webhooks": ["bus"],
                        "mqtt": ["ioc/notify/{ward}"],
                        "emails": ["pctt@example.vn"],
                    },
                },
            ],
        },
    )
    users(conn)
    open_alert(conn, cfg, W1)
    open_alert(conn, cfg, W2)  # another ward: no route
    open_alert(conn, cfg, W1, rule_id="pm25_high")  # another category: no route
    got = {(r["channel"], r["recipient"]) for r in notif(conn)}
    assert got == {
        ("webhook", hook.url),
        ("mqtt", f"ioc/notify/{W1}"),
        ("email", "pctt@example.vn"),
    }
    # a worker without IOC_SMTP_URL (nor a broker): no e-mail (contract), nothing left waiting;
    # the webhook goes
    w = worker(cfg, fresh_db_url, tmp_path, None)
    try:
        assert w.drain() == 3
    finally:
        w.close()
    st = {r["channel"]: (r["status"], r["attempts"]) for r in notif(conn)}
    assert st == {"webhook": ("sent", 0), "email": ("cancelled", 0), "mqtt": ("cancelled", 0)}
    why = rows(conn, "SELECT last_error FROM notifications WHERE channel = 'email'")[0][0]
    assert why == "IOC_SMTP_URL is not set: not sent"
    assert len(hook.requests) == 1


def test_enqueue_is_part_of_the_event_transaction_and_idempotent(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:1")
    cfg = load(tmp_path)
    users(conn)
    r = rule(cfg)
    with conn.cursor() as cur:
        n = outbox.alert_opened(
            cur,
            cfg,
            r,
            alert_id=999,
            subject="s",
            ward_code=W1,
            value=60,
            opened_at=dt.datetime.now(dt.UTC),
        )
        assert n == 4
    conn.rollback()  # the event did not happen: neither did its notifications
    assert notif(conn) == []
    now = dt.datetime.now(dt.UTC)
    for _ in range(2):  # the same event twice: one set of rows
        with conn.cursor() as cur:
            outbox.alert_opened(
                cur, cfg, r, alert_id=998, subject="s", ward_code=W1, value=60, opened_at=now
            )
        conn.commit()
    assert len(notif(conn)) == 4


def test_preferences_mute_min_severity_language_and_own_webhook(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:1")
    cfg = load(tmp_path)
    users(conn)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO notification_prefs (user_name, min_severity) VALUES ('op1', 'critical')"
        )
        cur.execute(
            "INSERT INTO notification_prefs (user_name, muted_kinds) VALUES"
            " ('analyst1', '{alert_opened}')"
        )
        cur.execute(
            "INSERT INTO notification_prefs (user_name, email_on, webhook_url, lang) VALUES"
            " ('admin1', false, 'http://127.0.0.1:9/zalo', 'en')"
        )
    conn.commit()
    open_alert(conn, cfg, W1, rule_id="pm25_high")  # a warning
    got = {(r["channel"], r["recipient"]) for r in notif(conn)}
    assert got == {("email", "lead1@example.vn"), ("webhook", "http://127.0.0.1:9/zalo")}
    hook_row = notif(conn, "channel = 'webhook'")[0]
    assert hook_row["subject"].startswith("[IOC] Warning: High PM2.5")  # English by preference


# --------------------------------------------------------------------------- quiet hours, digest


def test_quiet_hours_hold_back_all_but_critical(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:1")
    cfg = load(tmp_path, {"quiet_hours": {"enabled": True, "start": "22:00", "end": "06:00"}})
    users(conn)
    night = dt.datetime(2026, 12, 5, 23, 30, tzinfo=TZ).astimezone(dt.UTC)
    open_alert(conn, cfg, W1, rule_id="pm25_high", now=night)  # warning
    open_alert(conn, cfg, W1, now=night)  # critical: bypass
    morning = dt.datetime(2026, 12, 6, 6, 0, tzinfo=TZ)
    for r in notif(conn, "severity = 'warning'"):
        assert r["next_attempt_at"] == morning
    for r in notif(conn, "severity = 'critical'"):
        assert r["next_attempt_at"] == night
    day = dt.datetime(2026, 12, 6, 10, 0, tzinfo=TZ).astimezone(dt.UTC)
    open_alert(conn, cfg, W2, rule_id="pm25_high", now=day)
    for r in notif(conn, "ward_code = %s", (W2,)):
        assert r["next_attempt_at"] == day
    # a user's own quiet hours (here: all morning) hold back their warnings only
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO notification_prefs (user_name, quiet_start, quiet_end)"
            " VALUES ('op1', '08:00', '12:00')"
        )
    conn.commit()
    open_alert(conn, cfg, W2, rule_id="congestion_high", now=day)
    held = {
        r["recipient"]: r["next_attempt_at"] for r in notif(conn, "category = 'congestion_high'")
    }
    assert held["op1@example.vn"] == dt.datetime(2026, 12, 6, 12, 0, tzinfo=TZ)
    assert held["admin1@example.vn"] == day


def test_digest_batches_low_severity_into_one_message(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(
        tmp_path,
        {
            **FAST,
            "routes": [{"name": "all", "events": ["alert_opened"], "to": {"roles": ["operator"]}}],
        },
    )
    users(conn)
    t0 = dt.datetime.now(dt.UTC)
    for i in range(5):
        open_alert(conn, cfg, W1, rule_id="camera_black", subject=f"cam{i}", now=t0)  # info
    open_alert(conn, cfg, W1, rule_id="pm25_high", now=t0)  # a warning goes at once
    assert {r["status"] for r in notif(conn, "severity = 'info'")} == {"digest"}
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    try:
        assert w.drain() == 1
        mail.wait(1)
        assert outbox.flush_digests(conn, cfg, now=t0) == 0  # not due yet
        later = t0 + dt.timedelta(minutes=61)
        assert outbox.flush_digests(conn, cfg, now=later) == 1  # one recipient: op1
        assert w.drain() == 1
        mail.wait(2)
    finally:
        w.close()
    digest = mail.to("op1@example.vn")[-1]
    assert "Tổng hợp 5 thông báo" in str(digest["Subject"])
    body = digest.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body.count("Camera mất hình") == 5
    assert {r["status"] for r in notif(conn, "kind = 'alert_opened' AND severity = 'info'")} == {
        "digested"
    }


# --------------------------------------------------------------------------- delivery


def test_alert_opened_by_the_rules_reaches_the_mailbox_in_vietnamese(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, FAST)
    users(conn)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=300)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings (ts, ward_code, device_id, metric, value) VALUES"
            " (%s, %s, 'wl-1', 'water_level_cm', 63.5)",
            (now, W1),
        )
    conn.commit()
    r = rule(cfg)
    alerts.evaluate(conn, cfg, now=now, rules=[r])
    res = alerts.evaluate(conn, cfg, now=now + dt.timedelta(seconds=r.for_s + 1), rules=[r])
    assert res.opened == 1
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    try:
        w.drain()
    finally:
        w.close()
    mail.wait(4)
    msg = mail.to("lead1@example.vn")[0]
    subject = str(msg["Subject"])
    assert subject == "[IOC] Nghiêm trọng: Mực nước vượt ngưỡng ngập – Phường Hải Vân"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Giá trị: 63,5 cm" in text and "Ngưỡng: >= 50 cm" in text
    assert "http://ioc.example:8050/notify/ack/" in text
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Phường Hải Vân" in html and "/notify/ack/" in html
    key = notif(conn, "recipient = 'lead1@example.vn'")[0]["idem_key"]
    assert msg["Message-ID"] == f"<{key}@localhost>"
    assert {r["status"] for r in notif(conn)} == {"sent"}


def test_smtp_down_for_a_while_loses_nothing_and_sends_once(
    conn: Connection, fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    mail = MailSink()  # not started: the mail server is down
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, FAST)
    users(conn)
    ids = [open_alert(conn, cfg, W1, subject=f"d{i}") for i in range(10)]
    total = len(notif(conn))
    assert total == 40
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    stop = threading.Event()
    t = threading.Thread(target=w.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: w.stats.deferred >= total, 30, "the worker to find SMTP down")
        # messages wait, uncounted: no attempt is spent on a server that is down
        st = rows(conn, "SELECT status, max(attempts) FROM notifications GROUP BY status")
        assert all(s in ("pending", "sending") and a == 0 for s, a in st), st
        mail.start()  # the server is back
        mail.wait(total, 60)
        wait_until(lambda: {r["status"] for r in notif(conn)} == {"sent"}, 30, "all sent")
    finally:
        stop.set()
        t.join(10)
        w.close()
        mail.stop()
    ids_seen = [m["Message-ID"] for _, m in mail.messages]
    assert len(ids_seen) == len(set(ids_seen)) == total  # each once, none lost
    assert len(ids) == 10


def test_one_bad_address_and_dead_letters_do_not_block_the_others(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, FAST)
    users(conn)
    mail.refuse.add("lead1@example.vn")
    open_alert(conn, cfg, W1)
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    try:
        w.drain()
    finally:
        w.close()
    mail.wait(3)
    st = {r["recipient"]: r["status"] for r in notif(conn)}
    assert st.pop("lead1@example.vn") == "dead"  # 550: permanent, dead-lettered at once
    assert set(st.values()) == {"sent"}
    dead = notif(conn, "status = 'dead'")[0]
    assert outbox.requeue(conn, [dead["id"]]) == 1  # the admin page's "send again"
    mail.refuse.clear()
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    try:
        w.drain()
    finally:
        w.close()
    mail.wait(4)
    assert len(mail.to("lead1@example.vn")) == 1


def test_webhook_is_signed_retried_with_backoff_then_dead_lettered(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    hook: HookSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IOC_SMTP_URL", raising=False)
    monkeypatch.setenv("IOC_WEBHOOK_BUS_SECRET", "bus-secret")
    cfg = load(
        tmp_path,
        {
            **FAST,
            "delivery": {**FAST["delivery"], "max_attempts": 3},
            "webhooks": {"bus": {"url": hook.url, "secret_env": "IOC_WEBHOOK_BUS_SECRET"}},
            "routes": [{"name": "bus", "events": ["alert_opened"], "to": {"webhooks": ["bus"]}}],
        },
    )
    aid = open_alert(conn, cfg, W1)
    w = worker(cfg, fresh_db_url, tmp_path, None)
    try:
        assert w.drain() == 1
        headers, body, _ = hook.requests[0]
        assert verify(
            b"bus-secret",
            headers[TIMESTAMP_HEADER.lower()],
            body,
            headers[SIGNATURE_HEADER.lower()],
        )
        assert not verify(
            b"other", headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()]
        )
        row = notif(conn)[0]
        assert headers[IDEMPOTENCY_HEADER.lower()] == row["idem_key"]
        payload = json.loads(body)
        assert payload["ref_id"] == str(aid) and payload["ward_code"] == W1
        assert payload["value"] == 62.5 and payload["threshold"] == 50
        # a failing endpoint: retried with back-off, then dead after max_attempts
        hook.status = 503
        open_alert(conn, cfg, W2)
        w.drain()
        r = notif(conn, "ward_code = %s", (W2,))[0]
        assert r["status"] == "pending" and r["attempts"] == 1
        assert r["next_attempt_at"] > dt.datetime.now(dt.UTC)
        wait_until(
            lambda: (
                (w.drain() or True) and notif(conn, "ward_code = %s", (W2,))[0]["status"] == "dead"
            ),
            30,
            "dead letter",
        )
        assert notif(conn, "ward_code = %s", (W2,))[0]["attempts"] == 3
        hook.status = 400  # a refusal: dead at once
        open_alert(conn, cfg, W1, subject="x400")
        w.drain()
        assert notif(conn, "subject LIKE %s AND status = 'dead' AND attempts = 1", ("%",))
    finally:
        w.close()


def test_mqtt_channel_publishes_through_the_broker(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mqtt_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import paho.mqtt.client as mqtt

    from ioc.settings import parse_mqtt_url

    monkeypatch.delenv("IOC_SMTP_URL", raising=False)
    cfg = load(
        tmp_path,
        {
            **FAST,
            "routes": [
                {
                    "name": "m",
                    "events": ["alert_opened"],
                    "to": {"mqtt": ["ioc/test-notify/{ward}"]},
                }
            ],
        },
    )
    got: list[dict[str, Any]] = []
    target = parse_mqtt_url(mqtt_url)
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    subscribed: list[int] = []
    sub.on_subscribe = lambda *a: subscribed.append(1)
    sub.connect(target.host, target.port)
    sub.subscribe("ioc/test-notify/#", qos=1)
    sub.loop_start()
    try:
        wait_until(lambda: bool(subscribed), 10, "subscription")
        open_alert(conn, cfg, W1)
        w = worker(cfg, fresh_db_url, tmp_path, None, mqtt_url=mqtt_url)
        try:
            assert w.drain() == 1
        finally:
            w.close()
        wait_until(lambda: bool(got), 10, "the MQTT message")
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert got[0]["ward_code"] == W1 and got[0]["severity"] == "critical"
    assert got[0]["subject"].startswith("[IOC] Nghiêm trọng")


def test_a_thousand_alerts_in_a_burst_all_delivered_once(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, {**FAST, "delivery": {**FAST["delivery"], "batch": 200}})
    add_user(conn, "admin1", "admin", email_addr="admin1@example.vn")
    add_user(conn, "lead1", "ward_leader", wards=[W1], email_addr="lead1@example.vn")
    r = rule(cfg)
    now = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    with conn.cursor() as cur:  # one evaluation opening 1,000 alerts: one transaction
        for i in range(1000):
            ward = W1 if i % 2 == 0 else W2
            cur.execute(
                "INSERT INTO alerts (rule_id, subject, ward_code, severity, state, title, value,"
                " opened_at) VALUES (%s, %s, %s, 'critical', 'open', 't', 60, %s) RETURNING id",
                (r.id, f"burst-{i}", ward, now),
            )
            row = cur.fetchone()
            assert row is not None
            outbox.alert_opened(
                cur,
                cfg,
                r,
                alert_id=row[0],
                subject=f"burst-{i}",
                ward_code=ward,
                value=60,
                opened_at=now,
            )
    conn.commit()
    enqueued_s = time.monotonic() - t0
    expected = 1000 + 500  # the admin every one, the ward leader those of W1
    assert len(notif(conn)) == expected
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    t1 = time.monotonic()
    try:
        w.drain(max_batches=100)
    finally:
        w.close()
    mail.wait(expected, 120)
    sent_s = time.monotonic() - t1
    keys = [m["Message-ID"] for _, m in mail.messages]
    assert len(keys) == len(set(keys)) == expected
    assert len(mail.to("lead1@example.vn")) == 500
    print(f"burst: enqueue {enqueued_s:.2f} s, delivery {expected / sent_s:.0f} msg/s")


def test_rate_limit_folds_the_excess_into_one_digest(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, {**FAST, "rate_limit": {"per_hour": 3, "overflow_min": 10}})
    add_user(conn, "lead1", "ward_leader", wards=[W1], email_addr="lead1@example.vn")
    for i in range(8):
        open_alert(conn, cfg, W1, rule_id="pm25_high", subject=f"rl{i}")  # warnings
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    try:
        w.drain()
        mail.wait(3)
        assert len(notif(conn, "status = 'digest'")) == 5
        assert (
            outbox.flush_digests(conn, cfg, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11))
            == 1
        )
        w.drain()
        mail.wait(4)
    finally:
        w.close()
    assert "Tổng hợp 5 thông báo" in str(mail.to("lead1@example.vn")[-1]["Subject"])


# --------------------------------------------------------------------------- escalation


def test_escalation_chain_and_reminders_stop_at_acknowledgement(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(
        tmp_path,
        {
            **FAST,
            "routes": [
                {
                    "name": "first",
                    "events": ["alert_opened"],
                    "to": {"emails": ["duty@example.vn"]},
                },
                {
                    "name": "chat",
                    "events": ["escalation"],
                    "wards": ["20197"],
                    "to": {"emails": ["chat@example.vn"]},
                },
            ],
            "escalation": {
                "severities": ["critical"],
                "reminder_every_min": 10,
                "levels": [
                    {"name": "Lãnh đạo phường", "after_min": 15, "to": {"roles": ["ward_leader"]}},
                    {"name": "Trực ban", "after_min": 30, "to": {"roles": ["operator"]}},
                    {"name": "Giám đốc", "after_min": 60, "to": {"users": ["admin1"]}},
                ],
            },
        },
    )
    users(conn)
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    aid = open_alert(conn, cfg, W1, now=t0)
    other = open_alert(conn, cfg, W2, now=t0, subject="other")

    def at(minutes: float) -> dict[str, int]:
        return escalation.tick(conn, cfg, now=t0 + dt.timedelta(minutes=minutes))

    def kinds(ref: int) -> list[tuple[str, int, str]]:
        return [
            (r["kind"], r["level"], r["recipient"])
            for r in notif(conn, "ref_id = %s AND kind <> 'alert_opened'", (str(ref),))
        ]

    assert at(14) == {"stopped": 0, "escalated": 0, "reminders": 0}
    assert at(15)["escalated"] == 2
    assert kinds(aid) == [("escalation", 1, "lead1@example.vn")]
    # a route for the kind adds its recipients (here: ward 2's escalations to a chat address)
    assert sorted(k[2] for k in kinds(other)) == ["chat@example.vn", "lead2@example.vn"]
    assert at(15)["escalated"] == 0  # run twice: nothing twice
    assert at(25)["reminders"] == 2  # 10 min later: a reminder to the ward leader
    assert at(30)["escalated"] == 2
    assert ("escalation", 2, "op1@example.vn") in kinds(aid)
    assert at(40)["reminders"] == 2
    reminded = [k for k in kinds(aid) if k[0] == "alert_unacknowledged"]
    assert sorted(r[2] for r in reminded) == [
        "lead1@example.vn",
        "lead1@example.vn",
        "op1@example.vn",
    ]
    # acknowledged on the dashboard: nothing more for this alert, the other goes on
    pending_before = [r for r in notif(conn, "ref_id = %s AND status = 'pending'", (str(aid),))]
    assert pending_before
    assert alerts.acknowledge(conn, aid, "op1")
    w = worker(cfg, fresh_db_url, tmp_path, mail.url)
    try:
        w.drain()  # reminders not yet sent are cancelled, not sent
    finally:
        w.close()
    assert not notif(
        conn, "ref_id = %s AND kind <> 'alert_opened' AND status = 'sent'", (str(aid),)
    )
    res = at(60)
    assert res["stopped"] == 1 and res["escalated"] == 1  # the other alert reaches the director
    assert ("escalation", 3, "admin1@example.vn") in kinds(other)
    assert ("escalation", 3, "admin1@example.vn") not in kinds(aid)
    assert at(200)["reminders"] == 1  # only the other one
    assert escalation.active(conn)[0]["ref_id"] == str(other)
    mail_to_lead1 = [str(m["Subject"]) for m in mail.to("lead1@example.vn")]
    assert all(str(aid) not in s for s in mail_to_lead1)


# --------------------------------------------------------------------------- configuration


def test_config_errors_name_file_line_and_key(tmp_path: Path) -> None:
    from notify_support import config_dir

    d = config_dir(
        tmp_path,
        {
            "routes": [
                {
                    "name": "x",
                    "events": ["alert_opened"],
                    "wards": ["99999"],
                    "to": {"webhooks": ["nope"]},
                },
                {"name": "y", "events": ["alert_openned"], "to": {"roles": ["admin"]}},
            ]
        },
    )
    with pytest.raises(ConfigError) as exc:
        load_config(d)
    text = "\n".join(str(i) for i in exc.value.issues)
    assert "notifications.yaml:" in text and "routes[1].events[0]" in text
    (d / "notifications.yaml").write_text(
        "routes:\n  - name: x\n    events: [alert_opened]\n    wards: ['99999']\n"
        "    to: {webhooks: [nope]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(d)
    issues = {str(i) for i in exc.value.issues}
    assert any(
        "notifications.yaml:4: routes[0].wards[0]: unknown ward '99999'" in i for i in issues
    )
    assert any(
        "notifications.yaml:5: routes[0].to.webhooks[0]: unknown webhook 'nope'" in i
        for i in issues
    )


def _stream_of_400(
    conn: Connection,
    db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
    tag: str,
) -> tuple[Config, set[str], Callable[..., subprocess.Popen[bytes]]]:
    """100 alerts × 4 e-mails waiting in the outbox, and a way to start ``ioc notify`` (batches
    of 20) on them: (config, the messages' keys, start(stderr=DEVNULL))."""
    from notify_support import config_dir

    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cdir = config_dir(tmp_path, {**FAST, "delivery": {**FAST["delivery"], "batch": 20}})
    cfg = load_config(cdir)
    users(conn)
    for i in range(100):
        open_alert(conn, cfg, W1, subject=f"{tag}{i}")
    keys = {r["idem_key"] for r in notif(conn)}
    assert len(keys) == 400
    env = dict(os.environ)
    env.update(
        IOC_DATABASE_URL=db_url,
        IOC_SMTP_URL=mail.url,
        IOC_CONFIG_DIR=str(cdir),
        IOC_VAR_DIR=str(tmp_path / "var"),
        IOC_SECRET_KEY="k" * 40,
    )

    def start(stderr: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "notify"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )

    return cfg, keys, start


def test_worker_killed_mid_batch_loses_nothing(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ioc notify`` killed with SIGKILL while sending: every message arrives, at most one
    duplicate per message in flight (``threads``), each with its own Message-ID."""

    cfg, keys, start = _stream_of_400(conn, fresh_db_url, tmp_path, mail, monkeypatch, "k")
    mail.delay_s = 0.01  # a slower mail server: the kill lands mid-batch

    first = start()
    try:
        mail.wait(60, 60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        at_kill = mail.count()
        assert at_kill < 400, "the worker finished before it was killed"
        in_flight = rows(conn, "SELECT count(*) FROM notifications WHERE status = 'sending'")
        second = start()
        try:
            wait_until(
                lambda: (
                    rows(conn, "SELECT count(*) FROM notifications WHERE status <> 'sent'")
                    == [(0,)]
                ),
                120,
                "every message sent after the restart",
            )
            mail.wait(400, 30)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
    finally:
        if first.poll() is None:
            first.kill()
    got = [str(m["Message-ID"]).strip("<>").split("@")[0] for _, m in mail.messages]
    assert set(got) == keys  # nothing lost
    duplicates = len(got) - len(set(got))
    assert duplicates <= cfg.notifications.delivery.threads, duplicates
    print(f"kill -9 at {at_kill} received, {in_flight[0][0]} leased; duplicates: {duplicates}")


def test_database_connections_cut_mid_stream_lose_nothing(
    conn: Connection,
    fresh_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ioc notify``'s database connections ended (pg_terminate_backend) twice while it sends:
    it reconnects and every message arrives; a message whose 'sent' mark was lost goes again
    after its lease (same Message-ID): at most one duplicate per message in flight per cut."""

    cfg, keys, start = _stream_of_400(conn, fresh_db_url, tmp_path, mail, monkeypatch, "c")
    mail.delay_s = 0.01  # a slower mail server: the cuts land mid-stream
    proc = start(subprocess.PIPE)
    cut_at = []
    try:
        for at in (60, 200):
            mail.wait(at, 60)
            ended = rows(
                conn,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name LIKE 'ioc-notify%%'",
            )[0][0]
            assert ended >= 1, "the worker had no connection to cut"
            cut_at.append(mail.count())
        assert cut_at[-1] < 400, "the worker finished before the last cut"
        wait_until(
            lambda: (
                rows(conn, "SELECT count(*) FROM notifications WHERE status <> 'sent'") == [(0,)]
            ),
            120,
            "every message sent after the cuts",
        )
        mail.wait(400, 30)
        assert proc.poll() is None, "the worker died with its connection"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    got = [str(m["Message-ID"]).strip("<>").split("@")[0] for _, m in mail.messages]
    assert set(got) == keys  # nothing lost
    duplicates = len(got) - len(set(got))
    assert duplicates <= 2 * cfg.notifications.delivery.threads, duplicates
    print(f"connections cut at {cut_at} received; duplicates: {duplicates}")


def test_device_offline_digest_once_per_ward_and_period(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ioc.notify.offline import offline_digest

    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:1")
    cfg = load(tmp_path)
    users(conn)
    now = dt.datetime(2026, 12, 5, 10, 5, tzinfo=dt.UTC)
    with conn.cursor() as cur:
        for dev, ward, mins in [("d1", W1, 20), ("d2", W1, 40), ("d3", W2, 30), ("d4", W1, 70)]:
            cur.execute(
                "INSERT INTO devices (device_id, ward_code, device_type, status,"
                " status_changed_at, first_seen) VALUES (%s, %s, 'water_level', 'offline', %s, %s)",
                (dev, ward, now - dt.timedelta(minutes=mins), now - dt.timedelta(days=1)),
            )
    conn.commit()
    assert offline_digest(conn, cfg, now=now) > 0
    assert offline_digest(conn, cfg, now=now) == 0  # once per ward and period
    got = {(r["recipient"], r["subject"]) for r in notif(conn)}
    lead1 = [s for r, s in got if r == "lead1@example.vn"]
    assert lead1 == ["[IOC] Thiết bị mất kết nối: 2 – Phường Hải Vân"]  # d1, d2 (d4: earlier)
    assert "op1@example.vn" in {r for r, _ in got} and "admin1@example.vn" not in {
        r for r, _ in got
    }
    body = notif(conn, "recipient = 'lead1@example.vn'")[0]["body_text"]
    assert "d1" in body and "d2" in body and "d3" not in body and "d4" not in body


def test_ioc_scheduler_alone_delivers_the_alert_email(
    conn: Connection, fresh_db_url: str, tmp_path: Path, mail: MailSink
) -> None:
    """The contract's commands only: `ioc scheduler` opens the alert and (its delivery worker)
    sends the e-mail, with no `ioc notify` running."""

    from notify_support import config_dir

    cdir = config_dir(tmp_path)
    alerts_yaml = cdir / "alerts.yaml"
    text = alerts_yaml.read_text(encoding="utf-8")
    alerts_yaml.write_text(text.replace("clear: 40, for_s: 120", "clear: 40, for_s: 0"), "utf-8")
    users(conn)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings (ts, ward_code, device_id, metric, value) VALUES"
            " (now(), %s, 'wl-sched', 'water_level_cm', 71)",
            (W1,),
        )
    conn.commit()
    env = dict(os.environ)
    env.update(
        IOC_DATABASE_URL=fresh_db_url,
        IOC_SMTP_URL=mail.url,
        IOC_CONFIG_DIR=str(cdir),
        IOC_VAR_DIR=str(tmp_path / "var"),
        IOC_SECRET_KEY="k" * 40,
        IOC_PUBLIC_URL="https://ioc.danang.example",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ioc.cli", "scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(mail.to("lead1@example.vn")) >= 1, 120, "the ward leader's e-mail")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    msg = mail.to("lead1@example.vn")[0]
    assert "Mực nước vượt ngưỡng ngập – Phường Hải Vân" in str(msg["Subject"])
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "71 cm" in text and "https://ioc.danang.example/notify/ack/" in text
    assert mail.to("lead2@example.vn") == []


def test_prune_forgets_finished_messages_but_keeps_dead_letters(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:1")
    cfg = load(tmp_path)
    users(conn)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    open_alert(conn, cfg, W1, now=old)
    open_alert(conn, cfg, W2, now=old)
    with conn.cursor() as cur:
        cur.execute("UPDATE notifications SET status = 'sent' WHERE ward_code = %s", (W1,))
        cur.execute("UPDATE notifications SET status = 'dead' WHERE ward_code = %s", (W2,))
    conn.commit()
    open_alert(conn, cfg, W1)  # new: kept
    assert outbox.prune(conn, cfg) == 4
    left = [r["status"] for r in notif(conn)]
    assert sorted(left) == ["dead"] * 4 + ["pending"] * 4


def test_incident_events_as_the_incidents_module_enqueues_them(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call ioc/incidents makes (its one call site): routes for incident_assigned, the
    escalation chain's roles for escalation; idempotent per (kind, incident, level, seq)."""
    from ioc.config.notifications import Recipients

    monkeypatch.setenv("IOC_SMTP_URL", "smtp://127.0.0.1:1")
    cfg = load(tmp_path)
    users(conn)
    common: dict[str, Any] = {
        "ward_code": W1,
        "severity": "critical",
        "category": "flooding",
        "ref_kind": "incident",
        "ref_id": 12,
        "cfg": cfg,
    }
    with conn.cursor() as cur:
        n = outbox.enqueue(cur, "incident_assigned", params={"title": "#12 Ngập"}, **common)
        assert n == 3  # admin1, op1, lead1 (not the analyst: the route's roles)
        for _ in range(2):
            outbox.enqueue(
                cur,
                "escalation",
                recipients=[Recipients(roles=["operator"])],
                level=2,
                seq=5,
                params={"title": "#12 Ngập", "level_name": "Trực ban thành phố"},
                **common,
            )
    conn.commit()
    esc = notif(conn, "kind = 'escalation'")
    assert [r["recipient"] for r in esc] == ["op1@example.vn"]
    assert esc[0]["subject"] == "[IOC] Nghiêm trọng: Chuyển cấp: #12 Ngập – Phường Hải Vân"
    assert "Cấp xử lý: Trực ban thành phố" in esc[0]["body_text"]
    assert "{{ack_url}}" in esc[0]["body_text"] and "/incidents/12" in esc[0]["body_text"]


def test_ioc_notify_command_once_and_its_one_line_errors(
    conn: Connection,
    fresh_db_url: str,
    empty_db_url: str,
    tmp_path: Path,
    mail: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path)
    users(conn)
    open_alert(conn, cfg, W1)

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        full = dict(os.environ, IOC_VAR_DIR=str(tmp_path / "var"), IOC_SECRET_KEY="k" * 40)
        full.update(env)
        return subprocess.run(
            [sys.executable, "-m", "ioc.cli", "notify", "--once"],
            env=full,
            capture_output=True,
            text=True,
            timeout=60,
        )

    bad = run(IOC_DATABASE_URL=fresh_db_url, IOC_SMTP_URL="http://mail.example")
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0
    assert "IOC_SMTP_URL must start with smtp:// or smtps://" in bad.stderr
    bare = run(IOC_DATABASE_URL=empty_db_url, IOC_SMTP_URL=mail.url)
    assert bare.returncode != 0 and "run `ioc db init` first" in bare.stderr
    ok = run(IOC_DATABASE_URL=fresh_db_url, IOC_SMTP_URL=mail.url)
    assert ok.returncode == 0, ok.stderr
    assert "4 sent" in ok.stdout
    mail.wait(4)
