"""The acknowledge link in an incident's message (issue 13, item 4): it acknowledges the
incident for that recipient through the incidents module (the incident's trail records who,
and that it came from a link), once; a ward leader of another ward cannot use a link for it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_support import MailSink, load, rows

from ioc.db import connect
from ioc.incidents import core
from ioc.notify import links
from ioc.notify.worker import Worker
from ioc.settings import Settings
from ioc.users import add_user

pytestmark = pytest.mark.timeout(180)

KEY = "test-secret-key-" + "y" * 32
W1, W2 = "20195", "20197"
PASSWORD = "notify-test-pass-1"
BASE = "http://ioc.example:8050"


@pytest.fixture
def env(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    mail = MailSink().start()
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    cfg = load(tmp_path, {"delivery": {"poll_s": 0.2}, "rate_limit": {"per_hour": 1000}})
    conn = connect(fresh_db_url)
    for name, role, wards in [
        ("op1", "operator", []),
        ("lead1", "ward_leader", [W1]),
        ("lead2", "ward_leader", [W2]),
    ]:
        add_user(conn, name, PASSWORD, role, wards)
        with conn.cursor() as cur:
            cur.execute("UPDATE users SET email = %s WHERE name = %s", (f"{name}@example.vn", name))
        conn.commit()
    who = {"actor": "op1", "source": "web"}
    iid = core.create(conn, cfg, ward_code=W1, category="traffic", title="Đèn tín hiệu hỏng", **who)
    core.assign(conn, cfg, iid, W1, **who)
    conn.commit()
    settings = Settings(
        database_url=fresh_db_url,
        smtp_url=mail.url,
        var_dir=tmp_path / "var",
        secret_key=KEY,
        public_url=BASE,
    )
    w = Worker(cfg, fresh_db_url, settings)
    w.drain()
    w.close()
    mail.wait(2)
    from dashboards.app import create_app

    app = create_app(cfg, fresh_db_url, settings)
    client = app.server.test_client()
    client.get("/healthz")
    yield {"conn": conn, "mail": mail, "iid": iid, "client": client}
    app.server.config["IOC_STATE"].pool.close()
    conn.close()
    mail.stop()


def link_of(mail: MailSink, rcpt: str) -> str:
    msgs = [m for m in mail.to(rcpt) if "Sự vụ được giao" in str(m["Subject"])]
    assert msgs, [str(m["Subject"]) for m in mail.to(rcpt)]
    text = msgs[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    m = re.search(re.escape(BASE) + r"(/notify/ack/\S+)", text)
    assert m, text
    return m.group(1)


def test_an_incident_link_acknowledges_it_once_for_its_recipient(env: dict[str, Any]) -> None:
    client, conn, iid = env["client"], env["conn"], env["iid"]
    assert env["mail"].to("lead2@example.vn") == []  # another ward's leader is not told
    path = link_of(env["mail"], "lead1@example.vn")
    page = client.get(path)
    assert page.status_code == 200
    assert "Đèn tín hiệu hỏng" in page.get_data(as_text=True)
    # a ward leader of another ward, with a genuine token naming this incident: refused
    claim = links.read_token(KEY, path.rsplit("/", 1)[1], max_age_s=3600)
    forged = links.make_token(
        KEY,
        notification_id=claim.notification_id + 10**6,
        user="lead2",
        ref_kind="incident",
        ref_id=str(iid),
    )
    assert client.post(f"/notify/ack/{forged}").status_code == 403
    assert rows(conn, "SELECT acknowledged_at FROM incidents WHERE id = %s", (iid,)) == [(None,)]

    done = client.post(path)
    assert done.status_code == 200 and "data-reason='ok'" in done.get_data(as_text=True)
    ((acked_at,),) = rows(conn, "SELECT acknowledged_at FROM incidents WHERE id = %s", (iid,))
    assert isinstance(acked_at, dt.datetime)
    trail = rows(
        conn,
        "SELECT actor, source FROM incident_events WHERE incident_id = %s"
        " AND action = 'acknowledged'",
        (iid,),
    )
    assert trail == [("lead1", "link")]
    assert rows(conn, "SELECT user_name, outcome FROM notification_link_uses") == [
        ("lead1", "acknowledged")
    ]
    again = client.post(path)
    assert again.status_code == 409 and "data-reason='used'" in again.get_data(as_text=True)
    # the link signed nobody in
    assert client.get(f"/incidents/{iid}").status_code == 302
