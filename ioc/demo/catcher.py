"""A local mail catcher for ``ioc demo``: an SMTP server (aiosmtpd) that keeps every message
under a folder, and a small web page listing them, so a newcomer sees notifications arrive.

    python -m ioc.demo.catcher --smtp-port 1025 --http-port 8025 --dir var/mail

Listens on 127.0.0.1 only; demo use, not a mail server.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import re
import signal
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

KEEP = 500  # newest messages kept on disk


class Mailbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._n = len(list(folder.glob("*.eml")))

    def add(self, data: bytes) -> None:
        with self._lock:
            self._n += 1
            name = f"{time.time_ns()}-{self._n:06d}.eml"
            (self.folder / name).write_bytes(data)
            files = sorted(self.folder.glob("*.eml"))
            for old in files[:-KEEP]:
                old.unlink(missing_ok=True)

    def names(self) -> list[str]:
        return sorted((p.name for p in self.folder.glob("*.eml")), reverse=True)

    def read(self, name: str) -> EmailMessage | None:
        if not re.fullmatch(r"[0-9]+-[0-9]{6}\.eml", name):
            return None
        path = self.folder / name
        if not path.is_file():
            return None
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        return msg


class _Smtp:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box.add(envelope.original_content or envelope.content)
        return "250 OK"


PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}"><title>IOC demo — hộp thư</title>
<style>body{{font-family:Arial,sans-serif;margin:24px}}table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}
pre{{white-space:pre-wrap;background:#f6f8fa;padding:12px}}</style></head><body>{body}</body></html>"""

URL = re.compile(r"(https?://[^\s<>\"']+)")


def _linkify(text: str) -> str:
    return URL.sub(
        lambda m: f"<a href='{m.group(1)}'>{m.group(1)}</a>", html.escape(text, quote=False)
    )


def make_handler(box: Mailbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: str, refresh: int = 0) -> None:
            data = PAGE.format(body=body, refresh=refresh or 86400).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", ""):
                rows = []
                for name in box.names()[:200]:
                    msg = box.read(name)
                    if msg is None:
                        continue
                    rows.append(
                        f"<tr><td>{html.escape(str(msg['Date'] or ''))}</td>"
                        f"<td>{html.escape(str(msg['To'] or ''))}</td>"
                        f"<td><a href='/m/{name}'>{html.escape(str(msg['Subject'] or ''))}</a>"
                        "</td></tr>"
                    )
                body = (
                    f"<h1>Hộp thư demo ({len(box.names())} thư)</h1>"
                    "<p>Thông báo IOC gửi trong demo (tự làm mới mỗi 5 giây).</p>"
                    "<table id='inbox'><tr><th>Ngày</th><th>Người nhận</th><th>Tiêu đề</th></tr>"
                    + "".join(rows)
                    + "</table>"
                )
                self._send(200, body, refresh=5)
                return
            if path.startswith("/m/"):
                msg = box.read(path[3:])
                if msg is None:
                    self._send(404, "<p>không tìm thấy</p>")
                    return
                part = msg.get_body(("plain",))
                text = part.get_content() if part is not None else ""
                names = [p.get_filename() for p in msg.iter_attachments()]
                body = (
                    "<p><a href='/'>← hộp thư</a></p>"
                    f"<h2>{html.escape(str(msg['Subject'] or ''))}</h2>"
                    f"<p>Tới: {html.escape(str(msg['To'] or ''))} · "
                    f"Message-ID: {html.escape(str(msg['Message-ID'] or ''))}</p>"
                    f"<pre>{_linkify(text)}</pre>"
                    + (
                        f"<p>Đính kèm: {html.escape(', '.join(str(n) for n in names))}</p>"
                        if names
                        else ""
                    )
                )
                self._send(200, body)
                return
            self._send(404, "<p>không tìm thấy</p>")

        def log_message(self, *args: Any) -> None:
            return None

    return Handler


def main(argv: list[str] | None = None) -> int:
    from aiosmtpd.controller import Controller

    ap = argparse.ArgumentParser(prog="ioc-mail-catcher")
    ap.add_argument("--smtp-port", type=int, default=1025)
    ap.add_argument("--http-port", type=int, default=8025)
    ap.add_argument("--dir", default="var/mail")
    args = ap.parse_args(argv)
    box = Mailbox(Path(args.dir))
    controller = Controller(_Smtp(box), hostname="127.0.0.1", port=args.smtp_port)
    controller.start()
    web = ThreadingHTTPServer(("127.0.0.1", args.http_port), make_handler(box))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=web.serve_forever, name="catcher-web", daemon=True)
    thread.start()
    print(
        f"mail catcher: SMTP 127.0.0.1:{args.smtp_port}, inbox http://127.0.0.1:{args.http_port}/",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        web.shutdown()
        web.server_close()
        controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
