"""The e-mail channel against aiosmtpd with STARTTLS + AUTH, and with TLS from the first
byte (smtps://), using a self-signed certificate the client is told to trust."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from notify_support import free_port

from ioc.notify.channels import ChannelDown, EmailChannel, Message, parse_smtp_url

pytestmark = pytest.mark.timeout(60)


class Box:
    def __init__(self) -> None:
        self.got: list[tuple[Any, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.got.append((session.authenticated, msg))
        return "250 OK"


def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ioc", b"p@ss w0rd")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(crt))  # the client's default context trusts it
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    return ctx


def message(to: str) -> Message:
    return Message(
        id=7, idem_key="tls-key-1", channel="email", recipient=to,
        subject="[IOC] Nghiêm trọng: Mực nước vượt ngưỡng ngập – Phường Hải Châu",
        body_text="Giá trị: 63,5 cm\n", body_html="<p>Giá trị: 63,5 cm</p>",
    )  # fmt: skip


def test_starttls_with_auth(cert: ssl.SSLContext) -> None:
    box, port = Box(), free_port()
    ctl = Controller(
        box, hostname="127.0.0.1", port=port, tls_context=cert, require_starttls=True,
        authenticator=auth, auth_required=True, auth_require_tls=True,
    )  # fmt: skip
    ctl.start()
    try:
        chan = EmailChannel(
            parse_smtp_url(f"smtp://ioc:p%40ss%20w0rd@127.0.0.1:{port}"), "ioc@x.vn"
        )
        chan.send(message("a@example.vn"))
        chan.close()
        authed, msg = box.got[0]
        assert authed and msg["Message-ID"] == "<tls-key-1@x.vn>"
        assert str(msg["Subject"]).endswith("Phường Hải Châu")
        assert msg.get_body(("html",)).get_content().strip() == "<p>Giá trị: 63,5 cm</p>"
        # a wrong password: the channel is down (nothing counted against the message)
        bad = EmailChannel(parse_smtp_url(f"smtp://ioc:nope@127.0.0.1:{port}"), "ioc@x.vn")
        with pytest.raises(ChannelDown, match="authentication"):
            bad.send(message("b@example.vn"))
        # STARTTLS refused by the client's settings: the server requires it, nothing sent
        plain = EmailChannel(
            parse_smtp_url(f"smtp://ioc:p%40ss%20w0rd@127.0.0.1:{port}?starttls=never"), "ioc@x.vn"
        )
        with pytest.raises(ChannelDown):
            plain.send(message("c@example.vn"))
        assert len(box.got) == 1
    finally:
        ctl.stop()


def test_smtps_tls_from_the_first_byte(cert: ssl.SSLContext) -> None:
    box, port = Box(), free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port, ssl_context=cert)
    ctl.start()
    try:
        target = parse_smtp_url(f"smtps://127.0.0.1:{port}")
        assert target.tls and target.starttls == "never"
        chan = EmailChannel(target, "ioc@localhost")
        chan.send(message("a@example.vn"))
        chan.send(message("b@example.vn"))  # the connection is reused
        chan.close()
        assert [str(m["To"]) for _, m in box.got] == ["a@example.vn", "b@example.vn"]
    finally:
        ctl.stop()
