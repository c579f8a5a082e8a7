"""``/notify/ack/<token>``: acknowledge an alert (or incident) from a message, no sign-in.

GET shows what the link acknowledges and a button (mail scanners that fetch links must not
acknowledge anything); POST acknowledges it for the link's user, once. The link signs nobody
in and does nothing else; a signed-in user opening another user's link is refused. Every
refusal is a plain page with a 4xx status, never a 500.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlsplit

import flask

from dashboards.i18n import fmt_datetime, fmt_num, lang, t
from dashboards.state import state
from ioc.notify import links

PREFIX = "/notify/ack/"

STATUS = {"invalid": 400, "expired": 410, "used": 409, "user": 403, "state": 409, "other": 403}


def _page(title: str, body: str, status: int = 200) -> flask.Response:
    doc = (
        f"<!doctype html><html lang='{lang()}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<link rel='stylesheet' href='/assets/style.css'></head>"
        f"<body class='login-body'><div class='login-box' id='ack-box'>"
        f"<h1>{html.escape(t('app_title'))}</h1>{body}</div></body></html>"
    )
    resp = flask.Response(doc, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token stays out of referrers
    return resp


def _refused(reason: str) -> flask.Response:
    msg = t(f"ack_err_{reason}")
    return _page(
        msg,
        f"<p class='login-error' id='ack-result' data-reason='{reason}'>{html.escape(msg)}</p>",
        STATUS.get(reason, 400),
    )


def _same_origin() -> bool:
    """No other site's page may POST here. ("null": the page's no-referrer policy makes the
    browser send that for its own form; the token in the path is the secret anyway.)"""
    origin = flask.request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == flask.request.host


def ack(token: str) -> flask.Response:
    from dashboards.security import session_user

    st = state()
    ttl = st.cfg.notifications.delivery.link_ttl_hours * 3600
    try:
        claim = links.read_token(st.secret_key, token, max_age_s=ttl)
    except links.LinkError as exc:
        return _refused(exc.reason)
    signed_in = session_user()
    if signed_in is not None and signed_in.name != claim.user:
        return _refused("other")
    if flask.request.method == "POST":
        if not _same_origin():
            return _refused("invalid")
        try:
            with st.pool.conn() as conn:
                links.use(conn, claim, addr=flask.request.remote_addr)
        except links.LinkError as exc:
            return _refused(exc.reason)
        st.cache.clear()
        key = "ack_done_incident" if claim.ref_kind == "incident" else "ack_done"
        msg = t(key, n=claim.ref_id, user=claim.user)
        return _page(
            msg,
            f"<p id='ack-result' data-reason='ok'>{html.escape(msg)}</p>"
            "<p><a href='/alerts'>" + html.escape(t("alerts")) + "</a></p>",
        )
    with st.pool.conn() as conn:
        target = links.describe(conn, claim)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM notification_link_uses WHERE notification_id = %s",
                (claim.notification_id,),
            )
            used = cur.fetchone() is not None
        conn.commit()
    if used:
        return _refused("used")
    if target is None:
        return _refused("state")
    names = st.ward_names
    rows = [
        (t("ward"), names.get(target["ward_code"] or "", target["ward_code"] or t("city"))),
        (t("title"), str(target["title"])),
        (t("severity"), t(str(target["severity"]))),
        (t("value"), fmt_num(target["value"], 1) if target["value"] is not None else "—"),
        (t("opened"), fmt_datetime(target["opened_at"])),
        (t("state"), t(str(target["state"]))),
    ]
    if target["by"]:
        rows.append((t("acknowledged"), f"{target['by']} {fmt_datetime(target['at'])}"))
    table = "".join(
        f"<tr><th style='text-align:left;padding-right:10px'>{html.escape(k)}</th>"
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    button = (
        f"<form method='post'><button type='submit' id='ack-confirm'>"
        f"{html.escape(t('ack_confirm', user=claim.user))}</button></form>"
        if target["state"] == "open"
        else f"<p id='ack-result' data-reason='state'>{html.escape(t('ack_err_state'))}</p>"
    )
    return _page(
        t("ack_title"), f"<h2>{html.escape(t('ack_title'))}</h2><table>{table}</table>{button}"
    )


def report_file(token: str) -> flask.Response:
    """A scheduled report's file from the download link of its message (files too big to
    attach): signed for one recipient, expiring; a report file, nothing else."""
    st = state()
    ttl = st.cfg.notifications.delivery.link_ttl_hours * 3600
    try:
        name = links.read_file_token(st.secret_key, token, max_age_s=ttl)
    except links.LinkError as exc:
        return _refused(exc.reason)
    path = Path(name)
    if path.suffix not in (".csv", ".xlsx") or not path.is_file():
        return _refused("state")
    return flask.send_file(path, as_attachment=True, download_name=path.name)
