"""Citizen-report routes of the dashboard server that need no sign-in.

- ``POST /api/v1/reports``: intake for systems that push reports (hotline CRM, feedback portal):
  ``Authorization: Bearer TOKEN`` (scope intake, :mod:`ioc.citizen.tokens`); the MQTT report
  event as JSON plus ``ward``, an object or an array. Without ``ward`` the ward is the one
  ``lat``/``lon`` fall in (``wards.geojson``, :mod:`ioc.citizen.wardmap`), or for an event
  with neither, the ward of the same report earlier in the request or already stored; else 400
  naming ``ward``. A given ``ward`` wins over the position. Validation is all or nothing: the first
  bad field gives 400 ``{"error": "[i].field: ..."}`` and nothing is stored, so the sender
  fixes and resends the whole request (idempotent: what was stored before is not stored twice).
  An event the lifecycle refuses (e.g. ``assigned`` of a resolved report) does not fail the
  others: it is recorded in ``ingest_rejects`` and listed under ``rejected``. 202
  ``{"stored": n}`` once committed (n counts the events now stored, duplicates included).
  Per-token rate limit (a token bucket of events shared by every process and host: Redis, else
  PostgreSQL, :mod:`ioc.citizen.ratelimit`; 429 with Retry-After), body-size and event-count
  limits from ``categories.yaml`` ``intake``.
- ``GET /api/v1/track/{id}`` and ``GET /track``: public tracking, rate-limited per client
  address (shared the same way); never personal data (no contact, no summary, no address, no
  position).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
from collections.abc import Callable
from typing import Any

import flask
from werkzeug.wrappers import Response

from dashboards.i18n import LANGS, fmt_datetime, lang, t
from dashboards.security import client_addr, settings
from dashboards.state import state
from ioc.applications import EventError
from ioc.citizen import queries
from ioc.citizen.events import REPORT_ID, Rules, event_from_mapping, ward_of
from ioc.citizen.ratelimit import RateLimiter, retry_after
from ioc.citizen.store import store_events
from ioc.citizen.tokens import check_token
from ioc.citizen.wardmap import WardMap

_RULES: dict[int, Rules] = {}
_WARD_MAPS: dict[int, WardMap] = {}


def _rules() -> Rules:
    cfg = state().cfg
    rules = _RULES.get(id(cfg))
    if rules is None:
        rules = _RULES[id(cfg)] = Rules.from_config(cfg)
    return rules


def limiter() -> RateLimiter:
    """This app's rate limiter: shared by every process and host through Redis
    (``IOC_REDIS_URL``) or else PostgreSQL (:mod:`ioc.citizen.ratelimit`)."""
    app = flask.current_app
    got = app.config.get("IOC_RATE_LIMITER")
    if not isinstance(got, RateLimiter):
        got = RateLimiter(settings().secret("redis_url"), namespace=state().pool.url)
        app.config["IOC_RATE_LIMITER"] = got
    return got


def _ward_map() -> WardMap:
    """The wards' boundaries (``wards.geojson``), loaded once per configuration."""
    cfg = state().cfg
    got = _WARD_MAPS.get(id(cfg))
    if got is None:
        got = _WARD_MAPS[id(cfg)] = WardMap.load(cfg.dir / "wards.geojson")
    return got


def _known_wards(items: list[Any], locate: Callable[[float, float], str | None]) -> dict[str, str]:
    """Report id -> ward for events that carry neither ``ward`` nor a position (a CRM's later
    event): the ward of the same report earlier in the request, else of the stored report."""
    bare = {
        str(it["id"])
        for it in items
        if isinstance(it, dict)
        and isinstance(it.get("id"), str | int)
        and it.get("ward", it.get("ward_code")) in (None, "")
        and (it.get("lat") in (None, "") or it.get("lon") in (None, ""))
    }
    if not bare:
        return {}
    found: dict[str, str] = {}
    for it in items:
        if not isinstance(it, dict) or str(it.get("id")) not in bare:
            continue
        try:
            found.setdefault(str(it["id"]), ward_of(it, locate))
        except EventError:
            continue
    missing = sorted(bare - set(found))
    if missing:
        with state().pool.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT id, ward_code FROM reports WHERE id = ANY(%s)", (missing,))
            found.update({str(rid): str(w) for rid, w in cur.fetchall()})
    return found


def _json(body: dict[str, Any], status: int, **headers: str) -> Response:
    resp = flask.Response(json.dumps(body, ensure_ascii=False), status=status)
    resp.mimetype = "application/json"
    for k, v in headers.items():
        resp.headers[k] = v
    return resp


def _bearer() -> str | None:
    auth = flask.request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def post_reports() -> Response:
    st = state()
    limits = _rules().categories.intake
    token = _bearer()
    if token is None:
        return _json(
            {"error": "Authorization: a Bearer token is required"},
            401,
            **{"WWW-Authenticate": 'Bearer realm="ioc"'},
        )
    with st.pool.conn() as conn:
        name = check_token(conn, token, "intake")
    if name is None:
        return _json(
            {"error": "Authorization: invalid or revoked token"},
            401,
            **{"WWW-Authenticate": 'Bearer realm="ioc", error="invalid_token"'},
        )
    req = flask.request
    if req.content_length is not None and req.content_length > limits.max_body_bytes:
        return _json({"error": f"body: larger than {limits.max_body_bytes} bytes"}, 413)
    req.max_content_length = limits.max_body_bytes
    raw = req.get_data(cache=False)
    if len(raw) > limits.max_body_bytes:
        return _json({"error": f"body: larger than {limits.max_body_bytes} bytes"}, 413)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _json({"error": f"body: not valid JSON ({str(exc)[:80]})"}, 400)
    items = data if isinstance(data, list) else [data]
    if isinstance(data, list) and not data:
        return _json({"error": "body: an empty array"}, 400)
    if len(items) > limits.max_events:
        return _json({"error": f"body: more than {limits.max_events} events"}, 400)
    with st.pool.conn() as conn:
        wait = limiter().take(
            conn, f"intake:{name}", len(items), rate=limits.rate_per_s, burst=limits.burst
        )
    if wait:
        return _json(
            {"error": f"rate limit of token {name!r} exceeded"},
            429,
            **{"Retry-After": retry_after(wait)},
        )
    rules = _rules()
    locate = _ward_map().locate
    known = _known_wards(items, locate)
    events = []
    for i, item in enumerate(items):
        where = f"[{i}]." if isinstance(data, list) else ""
        try:
            ward = ward_of(item, locate, known)
            events.append(event_from_mapping(item, ward, rules, actor=f"token:{name}"))
        except EventError as exc:
            return _json({"error": f"{where}{exc.message}"}, 400)
    rejected: list[dict[str, Any]] = []
    with st.pool.conn() as conn, conn.cursor() as cur:
        outcomes = store_events(cur, events, rules, door="api")
        for i, out in enumerate(outcomes):
            if not out.accepted:
                reason = out.reason or "refused"
                rejected.append({"index": i, "id": events[i].id, "error": reason})
                payload = json.dumps(items[i], ensure_ascii=False, default=str)[:2048]
                cur.execute(
                    "INSERT INTO ingest_rejects (topic, reason, payload) VALUES (%s, %s, %s)",
                    (f"api:/api/v1/reports token={name}", reason, payload),
                )
    body: dict[str, Any] = {"stored": sum(1 for o in outcomes if o.accepted)}
    if rejected:
        body["rejected"] = rejected
    return _json(body, 202)


def _client_key() -> str:
    """The client's address (behind trusted proxies: the forwarded one), hashed."""
    addr = client_addr() or flask.request.remote_addr or "?"
    return "track:" + hashlib.sha256(addr.encode()).hexdigest()[:16]


def _track_limited() -> float:
    per_min = _rules().categories.intake.track_per_minute
    with state().pool.conn() as conn:
        return limiter().take(conn, _client_key(), 1, rate=per_min / 60.0, burst=per_min)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def get_track(report_id: str) -> Response:
    wait = _track_limited()
    if wait:
        return _json(
            {"error": "too many requests: try again later"},
            429,
            **{"Retry-After": retry_after(wait)},
        )
    if not REPORT_ID.match(report_id):
        return _json({"error": "id: not a report code"}, 404)
    with state().pool.conn() as conn:
        row = queries.track(conn, report_id)
    if row is None:
        return _json({"error": "not found"}, 404)
    body = {k: row[k] for k in queries.TRACK_KEYS}
    for k in ("received_at", "due_at", "resolved_at"):
        body[k] = _iso(body[k])
    resp = _json(body, 200)
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- the public /track page ------------------------------------------------------------------

STATUS_TEXT = {
    "received": ("Đã tiếp nhận", "Received"),
    "assigned": ("Đã chuyển đơn vị xử lý", "Assigned"),
    "in_progress": ("Đang xử lý", "In progress"),
    "resolved": ("Đã xử lý xong", "Resolved"),
    "rejected": ("Không thuộc thẩm quyền / từ chối", "Rejected"),
    "reopened": ("Mở lại theo đề nghị của người dân", "Reopened"),
}


def status_text(status: str, language: str) -> str:
    vi, en = STATUS_TEXT.get(status, (status, status))
    return en if language == "en" else vi


def _tr(vi: str, en: str, language: str) -> str:
    return en if language == "en" else vi


def track_page() -> Response:
    language = lang()
    code = (flask.request.args.get("id") or "").strip()[:80]
    result_html = ""
    status_code = 200
    wait = 0.0
    if code:
        wait = _track_limited()
        if wait:
            status_code = 429
            result_html = (
                "<p class='track-error' id='track-error'>"
                + html.escape(
                    _tr(
                        "Bạn tra cứu quá nhiều lần, vui lòng thử lại sau một phút.",
                        "Too many look-ups; please try again in a minute.",
                        language,
                    )
                )
                + "</p>"
            )
        else:
            row = None
            if REPORT_ID.match(code):
                with state().pool.conn() as conn:
                    row = queries.track(conn, code)
            if row is None:
                status_code = 404
                result_html = (
                    "<p class='track-error' id='track-error'>"
                    + html.escape(
                        _tr(
                            f"Không tìm thấy phản ánh có mã {code}. Vui lòng kiểm tra lại mã.",
                            f"No report with code {code}. Please check the code.",
                            language,
                        )
                    )
                    + "</p>"
                )
            else:
                result_html = _track_result(row, language)
    other = "en" if language == "vi" else "vi"
    q = f"&id={html.escape(code)}" if code else ""
    body = f"""<main class='track'>
<header class='track-head'><h1>{
        html.escape(_tr("Tra cứu phản ánh hiện trường", "Track a citizen report", language))
    }</h1>
<p class='track-sub'>{
        html.escape(
            _tr(
                "Tổng đài 1022 · Góp ý Đà Nẵng. Nhập mã phản ánh để xem tình trạng xử lý.",
                "Hotline 1022 · Góp ý Đà Nẵng. Enter your report's code to see how it is handled.",
                language,
            )
        )
    }</p>
<a class='track-lang' id='track-lang' href='/track?lang={other}{q}'>{
        "English" if language == "vi" else "Tiếng Việt"
    }</a></header>
<form class='track-form' method='get' action='/track'>
<label for='track-id'>{html.escape(_tr("Mã phản ánh", "Report code", language))}</label>
<input id='track-id' name='id' value='{html.escape(code)}' required maxlength='64'
 autocomplete='off' inputmode='text' placeholder='PA-20261205-0001'>
<button id='track-submit' type='submit'>{html.escape(_tr("Tra cứu", "Look up", language))}</button>
</form>
{result_html}
</main>"""
    page = (
        f"<!doctype html><html lang='{language}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(_tr('Tra cứu phản ánh', 'Track a report', language))}</title>"
        "<link rel='stylesheet' href='/assets/style.css'></head>"
        f"<body class='track-body'>{body}</body></html>"
    )
    resp = flask.Response(page, status=status_code, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    if wait:
        resp.headers["Retry-After"] = retry_after(wait)
    return resp


def _track_result(row: dict[str, Any], language: str) -> str:
    cats = _rules().categories.categories
    cat = cats.get(str(row.get("category")))
    cat_name = (cat.name.en if language == "en" else cat.name.vi) if cat else row.get("category")
    due = row["due_at"]
    end = row["resolved_at"]
    now = dt.datetime.now(dt.UTC)
    if row["status"] in ("resolved", "rejected"):
        on_time = due is None or (end is not None and end <= due)
        sla = _tr("Đúng hạn", "On time", language) if on_time else _tr("Trễ hạn", "Late", language)
    elif due is not None and due < now:
        sla = _tr("Quá hạn", "Overdue", language)
    else:
        sla = _tr("Trong hạn", "Within the time limit", language)

    def item(label_vi: str, label_en: str, value: str, key: str) -> str:
        return (
            f"<div class='track-item'><dt>{html.escape(_tr(label_vi, label_en, language))}</dt>"
            f"<dd id='track-{key}'>{html.escape(value)}</dd></div>"
        )

    items = [
        item("Mã phản ánh", "Code", str(row["id"]), "code"),
        item("Lĩnh vực", "Category", str(cat_name), "category"),
        item("Tình trạng", "Status", status_text(str(row["status"]), language), "status"),
        item("Thời hạn", "Time limit", sla, "sla"),
        item("Tiếp nhận lúc", "Received", fmt_datetime(row["received_at"], language), "received"),
        item("Hạn xử lý", "Due", fmt_datetime(due, language), "due"),
        item("Hoàn thành lúc", "Completed", fmt_datetime(end, language), "resolved"),
        item("Đơn vị xử lý", "Handling unit", str(row["unit"] or "—"), "unit"),
    ]
    if row.get("result"):
        items.append(item("Kết quả xử lý", "Result", str(row["result"]), "result"))
    hist = "".join(
        f"<li><span>{html.escape(fmt_datetime(h['ts'], language))}</span> "
        f"{html.escape(status_text(h['event'], language))}</li>"
        for h in row.get("history", [])
    )
    title = _tr("Quá trình xử lý", "History", language)
    return (
        f"<section class='track-result' id='track-result'><dl>{''.join(items)}</dl>"
        f"<h2>{html.escape(title)}</h2><ol class='track-history' id='track-history'>{hist}</ol>"
        "</section>"
    )


_ = (LANGS, t)
