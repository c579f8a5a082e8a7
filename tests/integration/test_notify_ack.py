"""The one-use acknowledge link in messages, on the dashboard's Flask server: valid once,
expired, tampered, another user's; and the notification pages' server-side checks."""

from __future__ import annotations

import datetime as dt
import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import itsdangerous.timed
import pytest
from notify_support import MailSink, load, rows

from ioc.db import Connection, connect
from ioc.notify import escalation, links
from ioc.notify.worker import Worker
from ioc.settings import Settings
from ioc.users import add_user as add_real_user

pytestmark = pytest.mark.timeout(180)

KEY = "test-secret-key-" + "x" * 32
W1, W2 = "20195", "20197"
PASSWORD = "notify-test-pass-1"


@pytest.fixture
def env(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    from test_notify import open_alert

    mail = MailSink().start()
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, {"delivery": {"poll_s": 0.2}, "rate_limit": {"per_hour": 1000}})
    conn = connect(fresh_db_url)
    for name, role, wards, addr in [
        ("admin1", "admin", [], "admin1@example.vn"),
        ("lead1", "ward_leader", [W1], "lead1@example.vn"),
        ("lead2", "ward_leader", [W2], "lead2@example.vn"),
    ]:
        add_real_user(conn, name, PASSWORD, role, wards)
        with conn.cursor() as cur:
            cur.execute("UPDATE users SET email = %s WHERE name = %s", (addr, name))
        conn.commit()
    aid = open_alert(conn, cfg, W1, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    settings = Settings(
        database_url=fresh_db_url,
        smtp_url=mail.url,
        var_dir=tmp_path / "var",
        secret_key=KEY,
        public_url="http://ioc.example:8050",
    )
    w = Worker(cfg, fresh_db_url, settings)
    w.drain()
    w.close()
    mail.wait(2)
    from dashboards.app import create_app

    app = create_app(cfg, fresh_db_url, settings)
    client = app.server.test_client()
    client.get("/healthz")
    yield {"cfg": cfg, "conn": conn, "mail": mail, "aid": aid, "client": client, "app": app}
    app.server.config["IOC_STATE"].pool.close()
    conn.close()
    mail.stop()


def link_of(mail: MailSink, rcpt: str) -> str:
    msg = mail.to(rcpt)[0]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    m = re.search(r"http://ioc\.example:8050(/notify/ack/\S+)", text)
    assert m, text
    return m.group(1)


def sign_in(client: Any, name: str) -> None:
    resp = client.post("/login", data={"username": name, "password": PASSWORD, "next": "/"})
    assert resp.status_code == 302, resp.status_code


def alert_row(conn: Connection, aid: int) -> tuple[Any, ...]:
    return rows(conn, "SELECT state, acknowledged_by FROM alerts WHERE id = %s", (aid,))[0]


def test_the_link_acknowledges_once_for_its_recipient_without_sign_in(env: dict[str, Any]) -> None:
    client, conn, aid = env["client"], env["conn"], env["aid"]
    path = link_of(env["mail"], "lead1@example.vn")
    page = client.get(path)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "ack-confirm" in body and "Phường Hải Vân" in body and "lead1" in body
    assert alert_row(conn, aid) == ("open", None)  # a GET (a mail scanner) changes nothing
    done = client.post(path)
    assert done.status_code == 200 and "data-reason='ok'" in done.get_data(as_text=True)
    assert alert_row(conn, aid) == ("acknowledged", "lead1")
    used = rows(conn, "SELECT user_name, outcome FROM notification_link_uses")
    assert used == [("lead1", "acknowledged")]
    # once only: again, or the admin's own link for the same alert after it was acknowledged
    again = client.post(path)
    assert again.status_code == 409 and "data-reason='used'" in again.get_data(as_text=True)
    assert client.get(path).status_code == 409
    admin_link = link_of(env["mail"], "admin1@example.vn")
    late = client.post(admin_link)
    assert late.status_code == 409 and "data-reason='state'" in late.get_data(as_text=True)
    assert alert_row(conn, aid) == ("acknowledged", "lead1")
    # the link signed nobody in
    assert client.get("/alerts").status_code == 302
    # and the escalation of this alert has stopped
    assert escalation.active(conn) == []


def test_expired_tampered_and_other_users_links_are_refused(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, conn, aid = env["client"], env["conn"], env["aid"]
    path = link_of(env["mail"], "lead1@example.vn")
    token = path.rsplit("/", 1)[1]
    # tampered: one character changed, or a token signed with another key
    bad = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert client.post(f"/notify/ack/{bad}").status_code == 400
    forged = links.make_token(
        "another-key-" + "y" * 32,
        notification_id=1,
        user="admin1",
        ref_kind="alert",
        ref_id=str(aid),
    )
    assert client.get(f"/notify/ack/{forged}").status_code == 400
    assert client.get("/notify/ack/not-a-token").status_code == 400
    # expired: signed 73 hours ago (links live 72 h)
    real = itsdangerous.timed.time.time()
    monkeypatch.setattr(
        itsdangerous.timed, "time", types.SimpleNamespace(time=lambda: real - 73 * 3600)
    )
    old = links.make_token(
        KEY, notification_id=10**6, user="lead1", ref_kind="alert", ref_id=str(aid)
    )
    monkeypatch.undo()
    resp = client.post(f"/notify/ack/{old}")
    assert resp.status_code == 410 and "data-reason='expired'" in resp.get_data(as_text=True)
    # a genuine link for a user who may not see that ward (lead2: ward 2): refused
    lead2 = links.make_token(
        KEY, notification_id=10**6 + 1, user="lead2", ref_kind="alert", ref_id=str(aid)
    )
    assert client.post(f"/notify/ack/{lead2}").status_code == 403
    # another user's link, opened while signed in as someone else: refused
    sign_in(client, "admin1")
    resp = client.post(path)
    assert resp.status_code == 403 and "data-reason='other'" in resp.get_data(as_text=True)
    assert alert_row(conn, aid) == ("open", None)
    assert rows(conn, "SELECT count(*) FROM notification_link_uses") == [(0,)]
    # the right user, signed in or not, still can
    client.get("/logout")
    sign_in(client, "lead1")
    assert client.post(path).status_code == 200
    assert alert_row(conn, aid) == ("acknowledged", "lead1")


def _callback(
    client: Any,
    outputs: list[tuple[str, str]],
    inputs: list[dict[str, Any]],
    state: list[dict[str, Any]] | None = None,
) -> Any:
    single = len(outputs) == 1
    body = {
        "output": f"{outputs[0][0]}.{outputs[0][1]}"
        if single
        else ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
        "outputs": {"id": outputs[0][0], "property": outputs[0][1]}
        if single
        else [{"id": i, "property": p} for i, p in outputs],
        "inputs": inputs,
        "state": state or [],
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
    }
    return client.post(
        "/_dash-update-component", data=json.dumps(body), content_type="application/json"
    )


def test_pages_check_the_user_on_the_server(env: dict[str, Any]) -> None:
    client, conn = env["client"], env["conn"]
    sign_in(client, "lead1")
    # a ward leader replays the admin's dead-letter callbacks: refused
    assert client.get("/admin/notifications").status_code == 403
    retry = _callback(
        client,
        [("ndead-msg", "children"), ("ndead-version", "data")],
        [{"id": "ndead-retry", "property": "n_clicks", "value": 1}],
        [
            {"id": "ndead-table", "property": "selected_row_ids", "value": [1]},
            {"id": "ndead-version", "property": "data", "value": 0},
        ],
    )
    assert retry.status_code == 403
    # preferences: saved for the signed-in user only; a bad webhook is named, not a 500
    states = [
        {"id": "nprefs-flags", "property": "value", "value": ["email_on"]},
        {"id": "nprefs-lang", "property": "value", "value": "en"},
        {"id": "nprefs-sev", "property": "value", "value": "critical"},
        {"id": "nprefs-muted", "property": "value", "value": ["scheduled_report"]},
        {"id": "nprefs-qs", "property": "value", "value": ""},
        {"id": "nprefs-qe", "property": "value", "value": ""},
        {"id": "nprefs-hook", "property": "value", "value": "ftp://x"},
    ]
    save = [{"id": "nprefs-save", "property": "n_clicks", "value": 1}]
    resp = _callback(client, [("nprefs-msg", "children")], save, states)
    assert resp.status_code == 200 and "Webhook" in resp.get_data(as_text=True)
    assert rows(conn, "SELECT count(*) FROM notification_prefs") == [(0,)]
    states[-1]["value"] = "https://hooks.example.vn/lead1"
    resp = _callback(client, [("nprefs-msg", "children")], save, states)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    got = rows(
        conn,
        "SELECT user_name, lang, min_severity, muted_kinds, webhook_url FROM notification_prefs",
    )
    assert got == [
        ("lead1", "en", "critical", ["scheduled_report"], "https://hooks.example.vn/lead1")
    ]
    # the outbox in /metrics: counts by state only
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE ioc_notifications gauge" in metrics
    client.get("/logout")
    sign_in(client, "admin1")
    assert client.get("/admin/notifications").status_code == 200
