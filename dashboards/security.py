"""Sign-in, sessions and the server-side guard in front of every route and callback.

- Sessions live on the server (:mod:`ioc.sessions`: the ``sessions`` table, or Redis when
  ``IOC_REDIS_URL`` is set); the cookie holds only the session's random id, signed
  (itsdangerous, the server's secret key): HttpOnly, SameSite=Lax, Secure behind TLS. Signing
  out (POST /logout), a password change, disabling or removing the user ends it at once on every
  host; so do 1 h without a request and 12 h after sign-in. The user's role and wards are
  re-read from the database (cached a few seconds).
- The client's address is the peer's, or, when the peer is one of ``IOC_TRUSTED_PROXIES``,
  the last address in X-Forwarded-For that is not a trusted proxy (sign-in throttling uses it).
- ``/wall?token=KIOSK`` signs in the read-only kiosk (wall only).
- The guard (a Flask ``before_request``) refuses anonymous requests to everything but
  ``/login``, ``/healthz``, ``/metrics`` and static assets; checks each page route against the
  user's role and wards; and for ``/_dash-update-component`` checks the callback's page against
  the role and every ward code found in the callback's inputs against the user's wards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import logging
import re
import time
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

import flask
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from dashboards.i18n import COOKIE as LANG_COOKIE
from dashboards.i18n import LANGS, t
from dashboards.state import AppState, state
from ioc.auth import LoginThrottled, User, audit, authenticate, load_user
from ioc.errors import IOCError
from ioc.settings import Settings

log = logging.getLogger("ioc.dashboard.security")

SESSION_COOKIE = "ioc_session"
SESSION_MAX_AGE = 12 * 3600  # the cookie's; the server-side session decides (ioc.sessions)
KIOSK = User(name="kiosk", role="kiosk")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8050"

# Bounds on a callback request, checked once before Dash parses it
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_JSON_DEPTH = 24
MAX_JSON_ITEMS = 50_000
MAX_OUTPUTS = 200

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
    "admin": "admin",
    "rep": "view",
    "inc": "view",  # incidents (pages/incidents.py, pages/incident.py): checked per id too
    "nprefs": "view",  # /settings/notifications: the user's own preferences
    "ndead": "admin",  # /admin/notifications: dead letters
    "dev": "view",  # /devices/{id}; its callback checks the device's ward
}
PAGES_OUTPUTS = {"_pages_content", "_pages_store"}

PAGE_PERMS = {
    "/": "view",
    "/wall": "wall",
    "/applications": "view",
    "/cameras": "view",
    "/alerts": "view",
    "/export": "export",
    "/admin/users": "admin",
    "/incidents": "view",
    "/settings/notifications": "view",
    "/admin/notifications": "admin",
}


def _serializer(st: AppState) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(st.secret_key, salt="ioc-session")


def _kiosk_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def settings() -> Settings:
    got = flask.current_app.config.get("IOC_SETTINGS")
    return got if isinstance(got, Settings) else Settings()


def trusted_proxies() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _proxies(settings().trusted_proxies)


@cache
def _proxies(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """IOC_TRUSTED_PROXIES: addresses or networks (comma or space separated) of the reverse
    proxies whose X-Forwarded-For and X-Forwarded-Proto are believed. Unset: none."""
    nets = []
    for item in re.split(r"[,\s]+", raw.strip()):
        if item:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                log.warning("IOC_TRUSTED_PROXIES: %r is not an address or network; ignored", item)
    return tuple(nets)


def _trusted(addr: str | None) -> bool:
    if not addr:
        return False
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return False
    return any(ip in net for net in trusted_proxies())


def client_addr() -> str | None:
    """The client's address: the peer, or behind trusted proxies the nearest untrusted
    address of X-Forwarded-For (read from the right: the left part is the client's to forge)."""
    req = flask.request
    addr = req.remote_addr
    if not _trusted(addr):
        return addr
    hops = [h.strip() for h in ",".join(req.headers.getlist("X-Forwarded-For")).split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return addr  # garbage in the header: the proxy's own address
        if not _trusted(hop):
            return hop
        addr = hop
    return addr


def _secure() -> bool:
    req = flask.request
    if req.is_secure:
        return True
    proto = req.headers.get("X-Forwarded-Proto", "").lower()
    return proto == "https" and _trusted(req.remote_addr)


def sessions() -> Any:
    """The app's session store (database or Redis), made on first use in each process."""
    app = flask.current_app
    store = app.config.get("IOC_SESSIONS")
    if store is None:
        from ioc.sessions import make_store

        store = make_store(state().pool.conn, settings())
        app.config["IOC_SESSIONS"] = store
    return store


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


def _cookie_payload() -> dict[str, Any] | None:
    raw = flask.request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        payload = _serializer(state()).loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    return payload if isinstance(payload, dict) else None


def session_user() -> User | None:
    """The user of the request's live server-side session (or the kiosk), else None."""
    st = state()
    payload = _cookie_payload()
    if payload is None:
        return None
    if "k" in payload:
        if st.kiosk_token and hmac.compare_digest(
            str(payload["k"]), _kiosk_fingerprint(st.kiosk_token)
        ):
            return KIOSK
        return None
    token = payload.get("s")
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None  # includes the stateless cookies of older versions ({"u": name})
    try:
        name = sessions().lookup(token)
    except IOCError as exc:  # the session store is down: nobody is signed in meanwhile
        log.warning("%s", exc)
        from dashboards.ops import RETRY_AFTER_S

        flask.abort(503, retry_after=RETRY_AFTER_S)
    if name is None:
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


def _strings(value: Any, out: list[str]) -> None:
    """Every string in ``value`` (keys too), at any depth: the body's depth and size are
    bounded by :func:`check_body` first."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)


class BadBody(ValueError):
    """A callback body out of bounds; the message names what."""


def check_body(value: Any) -> None:
    """Refuse a parsed callback body nested deeper than MAX_JSON_DEPTH, with more than
    MAX_JSON_ITEMS values, or with a NUL in a string (PostgreSQL refuses those)."""
    items = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        items += 1
        if items > MAX_JSON_ITEMS:
            raise BadBody(f"more than {MAX_JSON_ITEMS} values")
        if depth > MAX_JSON_DEPTH:
            raise BadBody(f"nested deeper than {MAX_JSON_DEPTH}")
        if isinstance(v, str):
            if "\x00" in v:
                raise BadBody("NUL character in a string")
        elif isinstance(v, dict):
            for k, x in v.items():
                if "\x00" in k:
                    raise BadBody("NUL character in a key")
                stack.append((x, depth + 1))
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


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
    if not ids or len(ids) > MAX_OUTPUTS:
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
        if not isinstance(path, str) or not path.startswith("/") or not may_see_path(user, path):
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


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, default ports filled in; None if malformed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def public_origin() -> tuple[str, str, int] | None:
    """IOC_PUBLIC_URL's (scheme, host, port): the dashboard as users reach it (contract)."""
    return _origin_tuple(settings().public_url or DEFAULT_PUBLIC_URL)


def _same_origin() -> bool:
    """A state-changing request must come from this site: no Origin header (same-origin form
    posts of old browsers, tools), or an Origin equal in scheme, host and port to
    IOC_PUBLIC_URL or to the request's own scheme and host."""
    origin = flask.request.headers.get("Origin")
    if origin is None:
        return True
    given = _origin_tuple(origin)
    if given is None:
        return False
    req = flask.request
    own = _origin_tuple(f"{'https' if _secure() else req.scheme}://{req.host}")
    return given == public_origin() or given == own


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
            nxt = _safe_next(req.full_path.rstrip("?"))
            return flask.redirect("/login?next=" + quote(nxt, safe="/"))
        return _refuse(401)
    flask.g.user = user
    if req.method not in ("GET", "HEAD") and not _same_origin():
        return _refuse(403)
    if path == CALLBACK_PATH:
        body, problem = _callback_body()
        if problem:
            return _bad_request(problem)
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
    if resp.mimetype == "text/html" and not resp.direct_passthrough:
        resp.headers.setdefault("Content-Security-Policy", content_security_policy(resp))
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp


def _callback_body() -> tuple[Any, str | None]:
    """The callback request's JSON, parsed once (Flask keeps it: Dash reads the same object),
    or the reason it is refused."""
    req = flask.request
    if req.content_length is None or req.content_length > MAX_BODY_BYTES:
        return None, f"request body missing or larger than {MAX_BODY_BYTES} bytes"
    try:
        body = req.get_json(silent=False)
    except RecursionError:
        return None, f"JSON nested deeper than {MAX_JSON_DEPTH}"
    except Exception:  # werkzeug's BadRequest (malformed JSON, wrong type)
        return None, "the body is not valid JSON"
    try:
        check_body(body)
    except BadBody as exc:
        return None, str(exc)
    outs = body.get("outputs") if isinstance(body, dict) else None
    if isinstance(outs, list) and len(outs) > MAX_OUTPUTS:
        return None, f"more than {MAX_OUTPUTS} outputs"
    if not isinstance(body, dict) or not isinstance(body.get("output"), str):
        return None, "output: missing"
    callbacks = getattr(flask.current_app.config.get("IOC_DASH"), "callback_map", None)
    if callbacks:  # (empty before Dash's set-up on the first request)
        entry = callbacks.get(body["output"])
        if not isinstance(entry, dict) or entry.get("callback") is None:
            return None, "output: no such server callback"
    if isinstance(body, dict):
        for group in ("inputs", "state"):
            items = body.get(group) or []
            for item in items if isinstance(items, list) else [items]:
                for it in item if isinstance(item, list) else [item]:
                    if not isinstance(it, dict):
                        return None, f"{group}: not an object"
                    prop = it.get("property")
                    if not _typed_ok(prop, it.get("value")):
                        return None, f"{it.get('id')}.{prop}: a value of the wrong type"
    return body, None


_SCALAR = (str, int, float)
_INT_PROPS = {"n_intervals", "n_clicks", "n_submit", "n_blur", "n_clicks_timestamp"}
_STR_PROPS = {"pathname", "search", "hash", "href"}


def _typed_ok(prop: Any, value: Any) -> bool:
    """What the browser can send for the properties our callbacks read: counters are whole
    numbers, locations strings, a dropdown's or input's value a scalar or a flat list of
    them, selected rows a list of whole numbers. Other properties (stores) are checked by
    their callbacks."""
    if value is None:
        return True
    if prop in _INT_PROPS:
        return isinstance(value, int) and not isinstance(value, bool)
    if prop in _STR_PROPS:
        return isinstance(value, str)
    if prop == "value":
        if isinstance(value, list):
            return all(isinstance(v, _SCALAR) for v in value)
        return isinstance(value, (*_SCALAR, bool))
    if prop in ("selected_rows", "derived_virtual_selected_rows"):
        return isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
    return True


def _bad_request(reason: str) -> Response:
    import json

    return flask.Response(json.dumps({"error": reason}), status=400, mimetype="application/json")


_INLINE_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def content_security_policy(resp: Response) -> str:
    """Scripts only from this server, plus the page's own inline scripts by their SHA-256
    (Dash's renderer start and its clientside callbacks); styles from this server and inline
    (Plotly and React set styles); no plugins, no framing by other sites."""
    hashes = []
    for attrs, code in _INLINE_SCRIPT.findall(resp.get_data(as_text=True)):
        if "src=" in attrs or "application/json" in attrs:
            continue
        digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    return (
        "default-src 'self'; "
        f"script-src 'self' {' '.join(sorted(set(hashes)))}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
        "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'self'"
    )


def _refuse(code: int) -> Response:
    if _want_html():
        return flask.Response(_refusal_page(code), status=code, mimetype="text/html")
    return flask.Response('{"error": "forbidden"}', status=code, mimetype="application/json")


def _refusal_page(code: int) -> str:
    """The refusal as a page a person can leave: the reason in the UI language (with the other
    language below), a way back, the menu's home, sign-in or sign-out, the language switch."""
    lang = "en" if t("login") == "Sign in" else "vi"
    other = "vi" if lang == "en" else "en"
    key = "forbidden" if code == 403 else "sign_in_needed"
    user = getattr(flask.g, "user", None)
    home = "/wall" if user is not None and user.role == "kiosk" else "/"
    here = html.escape(flask.request.path)
    links = [
        f"<a id='refused-home' href='{home}'>{html.escape(t('back_home', lang))}</a>",
        f"<a id='refused-lang' href='{here}?lang={other}'>{html.escape(t('language', lang))}</a>",
        (
            f"<a id='refused-logout' href='/logout'>{html.escape(t('logout', lang))}</a>"
            if user is not None
            else f"<a id='refused-login' href='/login'>{html.escape(t('login', lang))}</a>"
        ),
    ]
    body = (
        "<div class='login-box refused-box'>"
        f"<h1>{html.escape(t('app_title', lang))}</h1>"
        f"<p class='refused' id='refused'>{html.escape(t(key, lang))}</p>"
        f"<p class='muted'>{html.escape(t(key, other))}</p>"
        f"<nav class='refused-nav'>{' · '.join(links)}</nav>"
        "</div>"
    )
    return _page(t(key, lang), body)


_UNSAFE_NEXT = re.compile(r"[\x00-\x20\x7f\\]|%(?:[01][0-9a-f]|20|7f|5c|2f)", re.IGNORECASE)


def _safe_next(value: str | None) -> str:
    """A local path to go to after sign-in, else "/". Refused: anything not starting with
    one "/", backslashes, and any control or blank character (browsers and Werkzeug drop
    tabs and newlines, which turned "/\t/evil.example" into "//evil.example")."""
    if not value or len(value) > 2000 or _UNSAFE_NEXT.search(value):
        return "/"
    if not value.startswith("/") or value.startswith("//"):
        return "/"
    return value


def _page(title: str, body: str, body_class: str = "login-body") -> str:
    lang = "en" if t("login") == "Sign in" else "vi"
    return (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<link rel='stylesheet' href='/assets/style.css'></head>"
        f"<body class='{body_class}'>{body}</body></html>"
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
        f"<a class='login-lang' href='/login?lang={other}&next={html.escape(quote(nxt))}'>"
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
            user = authenticate(conn, name, password, addr=client_addr())
    except LoginThrottled as exc:
        resp = login_page(t("throttled"), 429)
        resp.headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        return resp
    if user is None:
        return login_page(t("bad_login"), 401)
    dest = _safe_next(req.form.get("next"))
    if user.role == "kiosk":
        dest = "/wall"
    elif user.ward_scoped and dest == "/" and len(user.wards) == 1:
        dest = f"/ward/{next(iter(user.wards))}"
    # a new session id at every sign-in (never one the browser brought along)
    old = _cookie_payload()
    try:
        if old and isinstance(old.get("s"), str):
            sessions().end(old["s"])
        token = sessions().create(
            user.name, addr=client_addr(), user_agent=req.headers.get("User-Agent", "")
        )
    except IOCError as exc:
        log.warning("%s", exc)
        return login_page(str(exc), 503)
    resp = flask.redirect(dest)
    set_session(resp, {"s": token})
    return resp


def logout() -> Response:
    """POST ends the session (on the server) and clears the cookie. GET only shows a small
    form that posts here: a link or an image elsewhere cannot sign anyone out."""
    req = flask.request
    if req.method != "POST":
        body = (
            "<form class='login-box' method='post' action='/logout'>"
            f"<h1>{html.escape(t('app_title'))}</h1>"
            f"<button type='submit' id='logout-submit'>{html.escape(t('logout'))}</button>"
            "</form>"
        )
        return flask.Response(_page(t("logout"), body), mimetype="text/html")
    if not _same_origin():
        return _refuse(403)
    payload = _cookie_payload()
    if payload and isinstance(payload.get("s"), str):
        store = sessions()
        name = store.lookup(payload["s"])
        store.end(payload["s"])
        if name:
            with state().pool.conn() as conn, conn.cursor() as cur:
                audit(cur, "logout", user_name=name, actor=name, addr=client_addr())
    resp = flask.redirect("/login", code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
