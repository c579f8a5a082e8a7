"""Scheduled reports e-mailed to subscribers: attached, a ward leader's file holds only their
wards, a file too big to attach goes as a download link."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from notify_support import MailSink, add_user, load, rows

from ioc.db import Connection, connect
from ioc.notify import links
from ioc.notify.worker import Worker
from ioc.reports.scheduled import run_due_reports
from ioc.settings import Settings

pytestmark = pytest.mark.timeout(180)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
W1, W2 = "20195", "20197"
KEY = "k" * 40


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def local(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=TZ)


def values_of(data: bytes) -> set[str]:
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    out = set()
    for ws in wb.worksheets:
        for row in ws.iter_rows(values_only=True):
            out |= {str(v) for v in row if v is not None}
    return out


def test_reports_are_emailed_and_a_ward_leader_gets_only_their_wards(
    conn: Connection, fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail = MailSink().start()
    monkeypatch.setenv("IOC_SMTP_URL", mail.url)
    subs = {
        "reports": [
            {
                "report": "daily_kpis",
                "to": {"roles": ["admin", "ward_leader"], "emails": ["so@example.vn"]},
            }
        ]
    }
    cfg = load(tmp_path, subs)
    rep = cfg.kpis.reports[0].model_copy(update={"kpis": ["on_time_rate"], "every": "day"})
    cfg = dataclasses.replace(cfg, kpis=cfg.kpis.model_copy(update={"reports": [rep]}))
    add_user(conn, "admin1", "admin", email_addr="admin1@example.vn")
    add_user(conn, "lead1", "ward_leader", wards=[W1], email_addr="lead1@example.vn")
    add_user(conn, "op1", "operator", email_addr="op1@example.vn")  # not a subscriber
    day = local("2025-03-10 00:00")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings (ts, ward_code, device_id, metric, value) VALUES (%s, %s,"
            " 'd1', 'pm25', 10)",
            (day + dt.timedelta(hours=8), W1),
        )
        for ward, v in ((W1, 91.5), (W2, 77.25)):
            cur.execute(
                "INSERT INTO kpi_values (kpi, ward_code, period, period_start, value)"
                " VALUES ('on_time_rate', %s, 'day', %s, %s)",
                (ward, day, v),
            )
    conn.commit()
    files = run_due_reports(conn, cfg, now=local("2025-03-11 01:00"), reports_dir=tmp_path / "r")
    assert [f.name for f in files] == ["daily_kpis_2025-03-10.xlsx"]
    got = {r[0]: r[1] for r in rows(conn, "SELECT recipient, payload->>'file' FROM notifications")}
    assert got == {
        "admin1@example.vn": "daily_kpis_2025-03-10.xlsx",
        "so@example.vn": "daily_kpis_2025-03-10.xlsx",
        "lead1@example.vn": f"daily_kpis_2025-03-10_wards-{W1}.xlsx",
    }
    settings = Settings(
        database_url=fresh_db_url, smtp_url=mail.url, secret_key=KEY, var_dir=tmp_path / "var"
    )
    w = Worker(cfg, fresh_db_url, settings)
    try:
        w.drain()
        mail.wait(3)
        lead = mail.to("lead1@example.vn")[0]
        # the subject says which day it covers; the text names the leader's ward
        assert str(lead["Subject"]) == "[IOC] Báo cáo định kỳ: daily_kpis – KPI ngày 10/03/2025"
        body = lead.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        ward_name = next(w.name for w in cfg.wards if w.code == W1)
        assert f"Phường/xã: {ward_name}\n" in body
        assert f"Tệp: daily_kpis_2025-03-10_wards-{W1}.xlsx (đính kèm)" in body
        parts = list(lead.iter_attachments())
        assert [p.get_filename() for p in parts] == [f"daily_kpis_2025-03-10_wards-{W1}.xlsx"]
        mine = values_of(parts[0].get_content())
        assert W1 in mine and W2 not in mine  # only the ward leader's ward
        city = values_of(next(mail.to("admin1@example.vn")[0].iter_attachments()).get_content())
        assert W1 in city and W2 in city
        # a file over the attachment limit goes as the recipient's download link
        big = dataclasses.replace(
            cfg,
            notifications=cfg.notifications.model_copy(
                update={
                    "delivery": cfg.notifications.delivery.model_copy(
                        update={"attach_max_bytes": 10}
                    )
                }
            ),
        )
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO kpi_values (kpi, ward_code, period, period_start, value)"
                " VALUES ('on_time_rate', %s, 'day', %s, 50)",
                (W1, day + dt.timedelta(days=1)),
            )
        conn.commit()
        run_due_reports(conn, big, now=local("2025-03-12 01:00"), reports_dir=tmp_path / "r")
        w.drain()
        mail.wait(6)
    finally:
        w.close()
        mail.stop()
    msg = mail.to("lead1@example.vn")[-1]
    assert list(msg.iter_attachments()) == []
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    m = re.search(r"/notify/file/(\S+)", text)
    assert m, text
    path = links.read_file_token(KEY, m.group(1), max_age_s=3600)
    assert path.endswith(f"daily_kpis_2025-03-11_wards-{W1}.xlsx") and Path(path).is_file()
