"""Sign-in, sessions and the server-side guard in front of every route and callback.

- Sessions are signed cookies (itsdangerous, the server's secret key): HttpOnly,
  SameSite=Lax, Secure behind TLS, 12 h expiry. The user's role and wards are re-read from the
  database (cached a few seconds) on each request, so a disabled user is out at once.
- ``/wall?token=KIOSK`` signs in the read-only kiosk (wall only).
- The guard (a Flask ``before_request``) refuses anonymous requests to everything but
  ``/login``, ``/healthz``, ``/metrics`` and static assets; checks each page route against the
  user's role and wards; and for ``/_dash-update-component`` checks the callback's page against
  the role and every ward code found in the callback's inputs against the user's wards.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import time
from typing import Any
from urllib.parse import urlsplit

import flask
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from dashboards.i18n import COOKIE as LANG_COOKIE
from dashboards.i18n import LANGS, t
from dashboards.state import AppState, state
from ioc.auth import LoginThrottled, User, authenticate, load_user

SESSION_COOKIE = "ioc_session"
SESSION_MAX_AGE = 12 * 3600
KIOSK = User(name="kiosk", role="kiosk")

OPEN_PATHS = {"/login", "/logout", "/healthz", "/metrics", "/_favicon.ico", "/favicon.ico"}
# Citizen reports: public tracking (no sign-in) and the intake API (its own bearer tokens).
OPEN_PATHS |= {"/track", "/api/v1/reports"}
# links inside notifications (acknowledge; a big report file): signed expiring tokens,
# checked by dashboards/notify_ack.py
OPEN_PREFIXES: tuple[str, ...] = ("/notify/ack/", "/notify/file/")
OPEN_PREFIXES += ("/api/v1/track/",)  # citizen reports: public tracking API
# Incidents API for field systems (its own bearer tokens, scope incidents)
OPEN_PATHS |= {"/api/v1/incidents"}
OPEN_PREFIXES += ("/api/v1/incidents/",)
DASH_INTERNAL = (
    "/_dash-layout",
    "/_dash-dependencies",
    "/_dash-component-suites/",
    "/_reload-hash",
)
CALLBACK_PATH = "/_dash-update-component"
WARD_PATH = re.compile(r"^/ward/([^/?#]+)/?$")

# component-id prefix -> permission needed to run callbacks writing to it
CALLBACK_PERMS = {
    "ov": "view",
    "ward": "view",
    "apps": "view",
    "cams": "view",
    "alerts": "view",
    "export": "export",
    "wall": "wall",
    "rep": "view",
    "inc": "view",  # incidents (pages/incidents.py, pages/incident.py): checked per id too
    "nprefs": "view",  # /settings/notifications: the user's own preferences
    "ndead": "admin",  # /admin/notifications: dead letters
}
PAGES_OUTPUTS = {"_pages_content", "_pages_store"}

PAGE_PERMS = {
    "/": "view",
    "/wall": "wall",
    "/applications": "view",
    "/cameras": "view",
    "/alerts": "view",
    "/export": "export",
    "/incidents": "view",
    "/settings/notifications": "view",
    "/admin/notifications": "admin",
}


def _serializer(st: AppState) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(st.secret_key, salt="ioc-session")


def _kiosk_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _secure() -> bool:
    req = flask.request
    return req.is_secure or req.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_session(resp: Response, payload: dict[str, Any]) -> None:
    value = _serializer(state()).dumps(payload)
    resp.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=_secure(),
        path="/",
    )


def session_user() -> User | None:
    """The user named by the session cookie, re-checked against the database."""
    st = state()
    raw = flask.request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        payload = _serializer(st).loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    if "k" in payload:
        if st.kiosk_token and hmac.compare_digest(
            str(payload["k"]), _kiosk_fingerprint(st.kiosk_token)
        ):
            return KIOSK
        return None
    name = payload.get("u")
    if not isinstance(name, str):
        return None

    def fetch() -> User | None:
        with st.pool.conn() as conn:
            return load_user(conn, name)

    return st.cache.get_or_compute(("user", name), fetch)


def route_permission(path: str) -> tuple[str, str | None]:
    """(permission, ward code or None) needed to see a page path."""
    path = path or "/"
    m = WARD_PATH.match(path)
    if m:
        return "view", m.group(1)
    return PAGE_PERMS.get(path.rstrip("/") or "/", "view"), None


def may_see_path(user: User, path: str) -> bool:
    perm, ward = route_permission(urlsplit(path).path)
    if not user.can(perm):
        return False
    return ward is None or user.may_see_ward(ward)


def _strings(value: Any, out: list[str], depth: int = 0) -> None:
    if depth > 6:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out, depth + 1)
    elif isinstance(value, list):
        for v in value[:5000]:
            _strings(v, out, depth + 1)


def _output_ids(body: dict[str, Any]) -> list[str]:
    """The component ids a callback request writes to (pattern ids by their 'type')."""
    outs = body.get("outputs")
    items = outs if isinstance(outs, list) else [outs]
    ids: list[str] = []

    def add(item: Any) -> None:
        if isinstance(item, list):
            for i in item:
                add(i)
        elif isinstance(item, dict):
            cid = item.get("id")
            if isinstance(cid, dict):
                ids.append(str(cid.get("type", "")))
            elif isinstance(cid, str):
                ids.append(cid)

    for item in items:
        add(item)
    if not ids and isinstance(body.get("output"), str):
        # "..a.children...b.figure.." or "a.children"
        ids = [p.rsplit(".", 1)[0] for p in body["output"].strip(".").split("...") if p]
    return ids


def check_callback(user: User, body: dict[str, Any]) -> bool:
    """May ``user`` run this callback request? Role by page, and every ward in its inputs."""
    st = state()
    ids = _output_ids(body)
    if not ids:
        return False
    values: list[Any] = []
    for group in ("inputs", "state"):
        for item in body.get(group) or []:
            items = item if isinstance(item, list) else [item]
            for it in items:
                if isinstance(it, dict):
                    values.append(it)
    if any(cid in PAGES_OUTPUTS for cid in ids):
        if not all(cid in PAGES_OUTPUTS for cid in ids):
            return False
        path = next(
            (
                v.get("value")
                for v in values
                if v.get("id") == "_pages_location" and v.get("property") == "pathname"
            ),
            None,
        )
        if not isinstance(path, str) or not may_see_path(user, path):
            return False
    else:
        for cid in ids:
            perm = CALLBACK_PERMS.get(cid.split("-", 1)[0])
            if perm is None or not user.can(perm):
                return False
    # every ward code anywhere in the inputs must be one the user may see
    codes = st.cfg.ward_codes
    found: list[str] = []
    for v in values:
        _strings(v.get("value"), found)
    for s in found:
        m = WARD_PATH.match(s)
        code = m.group(1) if m else s
        if code in codes and not user.may_see_ward(code):
            return False
    return True


def _want_html() -> bool:
    return "text/html" in flask.request.headers.get("Accept", "")


def _same_origin() -> bool:
    origin = flask.request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == flask.request.host


def guard() -> Response | None:
    """Flask before_request: refuse what the request's user may not do."""
    req = flask.request
    flask.g.t0 = time.perf_counter()
    lang_arg = req.args.get("lang")
    if lang_arg in LANGS:
        flask.g.lang = lang_arg
    path = req.path
    if path in OPEN_PATHS or path.startswith("/assets/") or path.startswith(OPEN_PREFIXES):
        return None
    st = state()
    user = session_user()
    if path.rstrip("/") == "/wall" and req.args.get("token"):
        token = req.args["token"]
        if st.kiosk_token and hmac.compare_digest(token, st.kiosk_token):
            user = user or KIOSK
            if user is KIOSK:
                flask.g.set_session = {"k": _kiosk_fingerprint(token)}
        elif user is None:
            return _refuse(403)
    if user is None:
        if path.startswith("/export/job/"):  # a download link, not a page: no sign-in redirect
            return _refuse(401)
        if req.method == "GET" and not path.startswith(DASH_INTERNAL) and path != CALLBACK_PATH:
            return flask.redirect("/login?next=" + _safe_next(req.full_path.rstrip("?")))
        return _refuse(401)
    flask.g.user = user
    if req.method not in ("GET", "HEAD") and not _same_origin():
        return _refuse(403)
    if path == CALLBACK_PATH:
        body = req.get_json(silent=True)
        if not isinstance(body, dict) or not check_callback(user, body):
            return _refuse(403)
        return None
    if path.startswith(DASH_INTERNAL):
        return None
    if path.startswith(("/export/report/", "/export/job/")):
        return None if user.can("export") else _refuse(403)
    if user.role == "kiosk" and path.rstrip("/") != "/wall":
        if path == "/":
            return flask.redirect("/wall")
        return _refuse(403)
    if not may_see_path(user, path):
        return _refuse(403)
    return None


def after(resp: Response) -> Response:
    lang_arg = flask.request.args.get("lang")
    if lang_arg in LANGS:
        resp.set_cookie(
            LANG_COOKIE, lang_arg, max_age=365 * 86400, samesite="Lax", secure=_secure()
        )
    payload = getattr(flask.g, "set_session", None)
    if payload:
        set_session(resp, payload)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp


def _refuse(code: int) -> Response:
    if _want_html():
        body = _page(t("forbidden"), f"<p class='refused'>{html.escape(t('forbidden'))}</p>")
        return flask.Response(body, status=code, mimetype="text/html")
    return flask.Response('{"error": "forbidden"}', status=code, mimetype="application/json")


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _page(title: str, body: str) -> str:
    lang = "en" if t("login") == "Sign in" else "vi"
    return (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<link rel='stylesheet' href='/assets/style.css'></head>"
        f"<body class='login-body'>{body}</body></html>"
    )


def login_page(message: str = "", status_code: int = 200) -> Response:
    nxt = _safe_next(flask.request.values.get("next"))
    other = "en" if t("login") != "Sign in" else "vi"
    msg = f"<p class='login-error' id='login-error'>{html.escape(message)}</p>" if message else ""
    body = (
        "<form class='login-box' method='post' action='/login'>"
        f"<h1>{html.escape(t('app_title'))}</h1>{msg}"
        f"<label>{html.escape(t('username'))}"
        "<input name='username' id='username' autocomplete='username' required autofocus>"
        "</label>"
        f"<label>{html.escape(t('password'))}"
        "<input name='password' id='password' type='password' autocomplete='current-password'"
        " required></label>"
        f"<input type='hidden' name='next' value='{html.escape(nxt)}'>"
        f"<button type='submit' id='login-submit'>{html.escape(t('login'))}</button>"
        f"<a class='login-lang' href='/login?lang={other}&next={html.escape(nxt)}'>"
        f"{html.escape(t('language'))}</a>"
        "</form>"
    )
    return flask.Response(_page(t("login"), body), status=status_code, mimetype="text/html")


def login() -> Response:
    req = flask.request
    if req.method == "GET":
        return login_page()
    if not _same_origin():
        return _refuse(403)
    name = (req.form.get("username") or "").strip()
    password = req.form.get("password") or ""
    st = state()
    try:
        with st.pool.conn() as conn:
            user = authenticate(conn, name, password, addr=req.remote_addr)
    except LoginThrottled:
        return login_page(t("throttled"), 429)
    if user is None:
        return login_page(t("bad_login"), 401)
    dest = _safe_next(req.form.get("next"))
    if user.role == "kiosk":
        dest = "/wall"
    elif user.ward_scoped and dest == "/" and len(user.wards) == 1:
        dest = f"/ward/{next(iter(user.wards))}"
    resp = flask.redirect(dest)
    set_session(resp, {"u": user.name, "iat": int(time.time())})
    return resp


def logout() -> Response:
    resp = flask.redirect("/login")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
