"""The demo's mail catcher: a message sent over SMTP shows in its inbox page."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from notify_support import free_port, wait_until

from ioc.notify.channels import EmailChannel, Message, parse_smtp_url

pytestmark = pytest.mark.timeout(60)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def test_catcher_keeps_messages_and_lists_them(tmp_path: Path) -> None:
    smtp, web = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ioc.demo.catcher", "--smtp-port", str(smtp),
         "--http-port", str(web), "--dir", str(tmp_path / "mail")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        inbox = f"http://127.0.0.1:{web}/"
        wait_until(lambda: "Hộp thư demo" in _get(inbox), 20, "the inbox page")
        chan = EmailChannel(parse_smtp_url(f"smtp://127.0.0.1:{smtp}"), "ioc@localhost")
        chan.send(
            Message(
                id=1, idem_key="abc123", channel="email", recipient="demo@localhost",
                subject="[IOC] Nghiêm trọng: Mực nước <cao>",
                body_text="Xác nhận: http://127.0.0.1:8050/notify/ack/tok.en\n",
                body_html="<p>x</p>",
            )
        )  # fmt: skip
        chan.close()
        wait_until(lambda: "Mực nước &lt;cao&gt;" in _get(inbox), 20, "the message listed")
        page = _get(inbox)
        name = page.split("href='/m/", 1)[1].split("'", 1)[0]
        one = _get(f"{inbox}m/{name}")
        assert "<a href='http://127.0.0.1:8050/notify/ack/tok.en'>" in one
        assert "&lt;abc123@localhost&gt;" in one
        assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
