"""A user's own webhook cannot reach this machine or the city's internal network (server-side
request forgery), through what it says, what its name resolves to, or a redirect; endpoints
an administrator configured are trusted. Real HTTP receivers in the test process."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from notify_support import HookSink, config_dir

from ioc.config import load_config
from ioc.errors import IOCError
from ioc.notify.channels import Message, PermanentError, TransientError, WebhookChannel
from ioc.notify.destinations import Refused, literal_refusal, networks, resolve_checked
from ioc.notify.prefs import PrefsError, validate


@pytest.fixture()
def hook() -> Iterator[HookSink]:
    sink = HookSink().start()
    yield sink
    sink.stop()


def msg(url: str) -> Message:
    return Message(
        id=1, idem_key="k1", channel="webhook", recipient=url, subject="s", body_text="t"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://localhost/x",
        "http://app.localhost/x",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8050/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:8050/",
        "http://100.64.0.1/",
    ],
)
def test_internal_addresses_are_refused_when_saved(url: str) -> None:
    assert literal_refusal(url) is not None
    with pytest.raises(PrefsError) as err:
        validate({"webhook_url": url})
    assert err.value.field == "webhook_url"
    assert err.value.reason == "webhook_url_private"


def test_public_and_allowed_addresses_pass() -> None:
    assert literal_refusal("https://8.8.8.8/hook") is None
    assert literal_refusal("https://hooks.example.vn/zalo") is None  # a name: checked on send
    allow = networks(["10.20.0.0/16"])
    assert literal_refusal("http://10.20.1.1/relay", allow) is None
    assert literal_refusal("http://10.21.1.1/relay", allow) is not None
    assert validate({"webhook_url": "http://10.20.1.1/relay"}, allow).webhook_url
    with pytest.raises(ValueError, match=r"10\.20\.0\.0/33"):
        networks(["10.20.0.0/33"])


def test_a_name_that_resolves_inside_is_refused_on_send() -> None:
    name = socket.gethostname()  # this machine's name resolves to one of its own addresses
    addrs = {ipaddress.ip_address(i[4][0]) for i in socket.getaddrinfo(name, 80)}
    assert addrs and all(not a.is_global for a in addrs)
    url = f"http://{name}:9/hook"
    assert literal_refusal(url) is None  # a name alone says nothing
    with pytest.raises(Refused, match="resolves to"):
        resolve_checked(url)


def test_user_webhook_to_this_machine_is_not_sent(hook: HookSink) -> None:
    ch = WebhookChannel({}, b"key", timeout=5)
    with pytest.raises(PermanentError, match="refused"):
        ch.send(msg(hook.url))
    assert hook.requests == []
    # the same address configured by an administrator (notifications.yaml webhooks:) is sent to
    WebhookChannel({}, b"key", timeout=5, trusted=[hook.url]).send(msg(hook.url))
    # and so is a user's, once the network is allowed
    WebhookChannel({}, b"key", timeout=5, allow=networks(["127.0.0.0/8"])).send(msg(hook.url))
    assert len(hook.requests) == 2


def test_webhooks_do_not_follow_redirects(hook: HookSink) -> None:
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", hook.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with pytest.raises(PermanentError, match="HTTP 307"):
            WebhookChannel({}, b"key", timeout=5, trusted=[url]).send(msg(url))
        assert hook.requests == []
    finally:
        server.shutdown()
        server.server_close()


def test_bad_network_in_config_names_the_key(tmp_path: Path) -> None:
    cfg = config_dir(tmp_path, {"delivery": {"user_webhook_networks": ["10.0.0.0/8", "intranet"]}})
    with pytest.raises(IOCError) as err:
        load_config(cfg)
    text = str(err.value)
    assert "notifications.yaml" in text and "user_webhook_networks" in text and "intranet" in text


# --------------------------------------------------------------------------- heartbeat


def test_the_delivery_worker_reports_itself_on_healthz(fresh_db_url: str, tmp_path: Path) -> None:
    """``ioc notify`` (and the scheduler's delivery thread) record ``service_status`` rows:
    running, a backlog when a due message waits too long (/healthz degraded), stopped."""
    from dashboards.db import Pool
    from dashboards.ops import health_report
    from dashboards.state import AppState
    from ioc.notify.worker import BACKLOG_S, Worker
    from ioc.settings import Settings

    cfg = load_config(config_dir(tmp_path))
    settings = Settings(database_url=fresh_db_url, var_dir=tmp_path / "var", secret_key="k" * 40)
    w = Worker(cfg, fresh_db_url, settings)
    st = AppState(cfg=cfg, pool=Pool(fresh_db_url), secret_key="x" * 40)
    try:
        w.housekeeping()
        body, _ = health_report(st)
        assert body["services"]["notify"] == "ok", body
        conn = w.db()
        with conn.cursor() as cur:  # a message due long ago, through a channel not configured
            cur.execute(
                "INSERT INTO notifications (idem_key, kind, channel, recipient, subject,"
                " body_text, next_attempt_at) VALUES ('hb1', 'alert_opened', 'email',"
                " 'a@example.vn', 's', 't', now() - make_interval(secs => %s))",
                (BACKLOG_S + 60,),
            )
        conn.commit()
        w.housekeeping()
        body, _ = health_report(st)
        assert body["services"]["notify"] == "backlog" and body["status"] == "degraded", body
        with conn.cursor() as cur:
            cur.execute("SELECT details FROM service_status WHERE service = 'notify'")
            details = cur.fetchone()[0]
        assert details["due"] == 1 and details["oldest_due_s"] >= BACKLOG_S
    finally:
        w.close()
    body, _ = health_report(st)
    assert body["services"]["notify"] == "stopped"
    st.pool.close()


# --------------------------------------------------------------------------- DNS rebinding

REBIND_HOST = "hooks.rebind.test"


class Receiver:
    """A local HTTP(S) server on ``host`` recording each POST's headers (``tls``: HTTPS)."""

    def __init__(self, host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        self.sni: list[str | None] = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec.requests.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer((host, port), H)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def pair() -> Iterator[tuple[Receiver, Receiver]]:
    """The checked receiver on 127.0.0.2 and an internal one on 127.0.0.1, same port."""
    for _ in range(20):
        checked = Receiver("127.0.0.2")
        try:
            internal = Receiver("127.0.0.1", checked.port)
        except OSError:  # the port is taken on 127.0.0.1: another
            checked.stop()
            continue
        yield checked, internal
        checked.stop()
        internal.stop()
        return
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


def rebinding(monkeypatch: pytest.MonkeyPatch, first: str) -> list[str]:
    """``REBIND_HOST`` resolves to ``first`` once, to 127.0.0.1 after (a rebinding DNS
    server); the answers given are returned."""
    real = socket.getaddrinfo
    answers: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != REBIND_HOST:
            return real(host, port, *args, **kwargs)
        addr = first if not answers else "127.0.0.1"
        answers.append(addr)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return answers


def test_a_rebinding_name_reaches_only_the_checked_address(
    pair: tuple[Receiver, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked, internal = pair
    answers = rebinding(monkeypatch, "127.0.0.2")
    ch = WebhookChannel({}, b"key", timeout=5, allow=networks(["127.0.0.2/32"]))
    ch.send(msg(f"http://{REBIND_HOST}:{checked.port}/hook"))
    assert internal.requests == []
    assert answers == ["127.0.0.2"]  # looked up once, not again when connecting
    assert [r["host"] for r in checked.requests] == [f"{REBIND_HOST}:{checked.port}"]


def test_a_rebinding_name_that_was_public_does_not_reach_this_machine(
    pair: tuple[Receiver, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked as public (8.8.8.8), then answering 127.0.0.1: the connection goes to the
    public address (refused here, so that the test sends nothing outside), never inside."""
    _, internal = pair
    answers = rebinding(monkeypatch, "8.8.8.8")
    real = socket.create_connection
    tried: list[Any] = []

    def connect(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        tried.append(address[0])
        if address[0] == "8.8.8.8":
            raise ConnectionRefusedError("test: not leaving this machine")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    with pytest.raises(TransientError, match="unreachable"):
        WebhookChannel({}, b"key", timeout=5).send(msg(f"http://{REBIND_HOST}:{internal.port}/"))
    assert internal.requests == []
    assert answers == ["8.8.8.8"] and tried == ["8.8.8.8"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for ``REBIND_HOST``."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "crt.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            f"/CN={REBIND_HOST}",
            "-addext",
            f"subjectAltName=DNS:{REBIND_HOST}",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def test_https_to_the_checked_address_verifies_the_name(
    cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TLS the pinned connection still sends the name (SNI, Host) and checks the
    certificate against it: a certificate for the name passes, the same server reached
    through another name fails."""
    crt, key = cert
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(crt, key)
    rec = Receiver("127.0.0.2", tls=server_tls)
    try:
        answers = rebinding(monkeypatch, "127.0.0.2")
        client_tls = ssl.create_default_context(cafile=str(crt))
        ch = WebhookChannel({}, b"key", timeout=5, allow=networks(["127.0.0.2/32"]), tls=client_tls)
        ch.send(msg(f"https://{REBIND_HOST}:{rec.port}/hook"))
        assert answers == ["127.0.0.2"]
        assert rec.sni == [REBIND_HOST]
        assert [r["host"] for r in rec.requests] == [f"{REBIND_HOST}:{rec.port}"]
        # the same server by its address, which the certificate does not name
        with pytest.raises(TransientError, match="certificate"):
            ch.send(msg(f"https://127.0.0.2:{rec.port}/hook"))
        assert len(rec.requests) == 1
    finally:
        rec.stop()
