"""``/reports``: citizen reports (hotline 1022, "Góp ý Đà Nẵng"): the list with filters (ward,
category, status, SLA state), handling actions, and a CSV download.

Server-side scoping in every callback: a ward leader's lists and downloads hold only their wards
(whatever codes the request carries), and an action on a report of another ward is refused. The
contact (personal data, Decree 13/2023) is shown in full to admins and to the members of the
report's handling unit (:mod:`ioc.citizen.units`), decided row by row on the server; masked for
everyone else, and in every download. Actions (assigned, in progress, resolved, rejected) are
for admins, operators and ward leaders (the handling unit of their ward); analysts read. They go
through the same write path as MQTT and the API (door ``web``, actor = the user).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboards.components.common import require, scope_key, ward_options, who
from dashboards.components.layout import frame, refused, table
from dashboards.components.tables import card, controls
from dashboards.i18n import fmt_datetime, fmt_num
from dashboards.state import state
from ioc.auth import User
from ioc.citizen import queries as rq
from ioc.citizen.events import ReportEvent, Rules
from ioc.citizen.lifecycle import ENDED
from ioc.citizen.store import store_events
from ioc.citizen.units import Revealer

dash.register_page(__name__, path="/reports", title="IOC — Phản ánh hiện trường", order=4)

REFRESH_MS = 30_000
STATUSES = ("received", "assigned", "in_progress", "resolved", "rejected")
ACTIONS = ("assigned", "in_progress", "resolved", "rejected")
TEXT: dict[str, tuple[str, str]] = {
    "title": ("Phản ánh hiện trường", "Citizen reports"),
    "sub": (
        "Tổng đài 1022 · Góp ý Đà Nẵng. Trạng thái xử lý và thời hạn theo từng lĩnh vực.",
        "Hotline 1022 · Góp ý Đà Nẵng. Handling status and time limits by category.",
    ),
    "ward": ("Phường/xã", "Ward"),
    "category": ("Lĩnh vực", "Category"),
    "status": ("Tình trạng", "Status"),
    "sla": ("Thời hạn", "Time limit"),
    "all": ("Tất cả", "All"),
    "code": ("Mã", "Code"),
    "summary": ("Nội dung", "Summary"),
    "channel": ("Kênh", "Channel"),
    "received": ("Tiếp nhận", "Received"),
    "due": ("Hạn xử lý", "Due"),
    "resolved": ("Hoàn thành", "Completed"),
    "unit": ("Đơn vị xử lý", "Handling unit"),
    "contact": ("Người phản ánh", "Reporter"),
    "download": ("Tải CSV", "Download CSV"),
    "n_reports": ("{n} phản ánh", "{n} reports"),
    "act_assigned": ("Chuyển xử lý", "Assign"),
    "act_in_progress": ("Đang xử lý", "In progress"),
    "act_resolved": ("Đã xử lý xong", "Resolved"),
    "act_rejected": ("Từ chối", "Reject"),
    "result": (
        "Kết quả công khai (khi xử lý xong/từ chối)",
        "Published result (on resolve/reject)",
    ),
    "done": ("Đã cập nhật {n} phản ánh", "{n} report(s) updated"),
    "none_selected": ("Chưa chọn phản ánh nào", "No report selected"),
    "read_only": ("Chỉ xem", "Read only"),
}
STATUS_TEXT = {
    "received": ("Đã tiếp nhận", "Received"),
    "assigned": ("Đã chuyển xử lý", "Assigned"),
    "in_progress": ("Đang xử lý", "In progress"),
    "resolved": ("Đã xử lý xong", "Resolved"),
    "rejected": ("Từ chối", "Rejected"),
}
SLA_TEXT = {
    "open": ("Trong hạn", "Within limit"),
    "overdue": ("Quá hạn", "Overdue"),
    "on_time": ("Xong đúng hạn", "Done on time"),
    "late": ("Xong trễ hạn", "Done late"),
}
CHANNEL_TEXT = {
    "hotline_1022": ("Tổng đài 1022", "Hotline 1022"),
    "app": ("Ứng dụng Góp ý Đà Nẵng", "Góp ý Đà Nẵng app"),
    "web": ("Cổng Góp ý Đà Nẵng", "Góp ý Đà Nẵng portal"),
    "zalo": ("Zalo", "Zalo"),
    "field": ("Hiện trường", "Field"),
}


def _t(key: str, lang: str, **fmt: Any) -> str:
    vi, en = TEXT[key]
    text = en if lang == "en" else vi
    return text.format(**fmt) if fmt else text


def _pick(table_: dict[str, tuple[str, str]], key: Any, lang: str) -> str:
    vi, en = table_.get(str(key), (str(key), str(key)))
    return en if lang == "en" else vi


def may_act(user: User) -> bool:
    return user.role in ("admin", "operator", "ward_leader")


def _rules() -> Rules:
    cfg = state().cfg
    return Rules.from_config(cfg)


def category_options(lang: str) -> list[dict[str, str]]:
    cats = state().cfg.report_categories().categories
    return [
        {"label": c.name.en if lang == "en" else c.name.vi, "value": k} for k, c in cats.items()
    ]


def _dropdown(cid: str, label: str, options: list[dict[str, str]], lang: str) -> html.Div:
    return html.Div(
        [
            html.Label(label, htmlFor=cid),
            dcc.Dropdown(id=cid, options=options, multi=True, placeholder=_t("all", lang)),
        ]
    )


def layout(**_: Any) -> html.Div:
    user, lang = who()
    if not user.can("view"):
        return refused(lang)
    act = may_act(user)
    return frame(
        user,
        "/reports",
        lang,
        [
            dcc.Interval(id="rep-interval", interval=REFRESH_MS),
            dcc.Store(id="rep-version", data=0),
            dcc.Download(id="rep-download"),
            html.H1(_t("title", lang)),
            html.P(_t("sub", lang), className="muted"),
            html.Div(
                className="rep-filters",
                children=[
                    _dropdown("rep-ward", _t("ward", lang), ward_options(user), lang),
                    _dropdown("rep-category", _t("category", lang), category_options(lang), lang),
                    _dropdown(
                        "rep-status",
                        _t("status", lang),
                        [{"label": _pick(STATUS_TEXT, s, lang), "value": s} for s in STATUSES],
                        lang,
                    ),
                    _dropdown(
                        "rep-sla",
                        _t("sla", lang),
                        [{"label": _pick(SLA_TEXT, s, lang), "value": s} for s in rq.SLA_STATES],
                        lang,
                    ),
                ],
            ),
            controls(
                *[
                    html.Button(
                        _t(f"act_{a}", lang),
                        id=f"rep-act-{a}",
                        className="btn" if a != "rejected" else "btn secondary",
                        n_clicks=0,
                    )
                    for a in ACTIONS
                ],
                dcc.Input(
                    id="rep-result",
                    placeholder=_t("result", lang),
                    maxLength=2000,
                    style={"minWidth": "320px"},
                ),
                html.Span(id="rep-msg", className="msg"),
                style={} if act else {"display": "none"},
            ),
            card(
                controls(
                    html.Div(id="rep-count", className="muted"),
                    html.Button(_t("download", lang), id="rep-csv", className="btn", n_clicks=0),
                    html.Span("" if act else _t("read_only", lang), className="muted"),
                ),
                table("rep-table", [], _columns(lang), page_size=20, selectable=act),
            ),
        ],
    )


def _columns(lang: str) -> list[dict[str, Any]]:
    return [
        {"name": _t(k, lang), "id": k}
        for k in (
            "code",
            "ward",
            "category",
            "summary",
            "status",
            "sla",
            "received",
            "due",
            "resolved",
            "unit",
            "channel",
            "contact",
        )
    ]


def _scope(user: User, wards: list[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """(the wards the user may see or None for all, the ward filter kept within them)."""
    key = scope_key(user)
    scope = None if key is None else list(key)
    chosen = [w for w in wards or [] if isinstance(w, str) and user.may_see_ward(w)]
    return scope, chosen or None


def _clean(values: list[Any] | None, allowed: tuple[str, ...] | list[str]) -> list[str] | None:
    out = [v for v in values or [] if v in allowed]
    return out or None


def _list(
    user: User, wards: Any, cats: Any, statuses: Any, slas: Any, *, full: bool
) -> list[rq.ReportRow]:
    scope, chosen = _scope(user, wards)
    known = list(state().cfg.report_categories().categories)
    with state().pool.conn() as conn:
        return rq.report_list(
            conn,
            wards=scope,
            now=dt.datetime.now(dt.UTC),
            ward=chosen,
            category=_clean(cats, known),
            status=_clean(statuses, STATUSES),
            sla=_clean(slas, rq.SLA_STATES),
            # the contact in full only on screen, to admins and the report's handling unit
            reveal=Revealer(user, state().cfg.report_categories(), state().ward_names)
            if full
            else None,
            limit=2000,
        )


def _rows(reports: list[rq.ReportRow], lang: str) -> list[dict[str, Any]]:
    names = state().ward_names
    cats = state().cfg.report_categories().categories
    out = []
    for r in reports:
        cat = cats.get(r.category or "")
        out.append(
            {
                "id": r.id,
                "code": r.id,
                "ward": names.get(r.ward_code or "", r.ward_code or ""),
                "category": (cat.name.en if lang == "en" else cat.name.vi) if cat else r.category,
                "summary": r.summary or "",
                "status": _pick(STATUS_TEXT, r.status, lang),
                "sla": _pick(SLA_TEXT, r.sla, lang),
                "sla_state": r.sla,
                "received": fmt_datetime(r.received_at, lang),
                "due": fmt_datetime(r.due_at, lang),
                "resolved": fmt_datetime(r.resolved_at, lang) if r.resolved_at else "",
                "unit": r.unit or "",
                "channel": _pick(CHANNEL_TEXT, r.channel, lang) if r.channel else "",
                "contact": r.contact or "",
            }
        )
    return out


@callback(
    Output("rep-table", "data"),
    Output("rep-table", "selected_rows"),
    Output("rep-count", "children"),
    Input("rep-interval", "n_intervals"),
    Input("rep-ward", "value"),
    Input("rep-category", "value"),
    Input("rep-status", "value"),
    Input("rep-sla", "value"),
    Input("rep-version", "data"),
)
def refresh(
    _n: int | None, wards: Any, cats: Any, statuses: Any, slas: Any, _v: int | None
) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    rows = _rows(_list(user, wards, cats, statuses, slas, full=True), lang)
    return rows, [], _t("n_reports", lang, n=fmt_num(len(rows), 0, lang))


@callback(
    Output("rep-download", "data"),
    Input("rep-csv", "n_clicks"),
    State("rep-ward", "value"),
    State("rep-category", "value"),
    State("rep-status", "value"),
    State("rep-sla", "value"),
    prevent_initial_call=True,
)
def download(n: int | None, wards: Any, cats: Any, statuses: Any, slas: Any) -> Any:
    if not n:
        raise PreventUpdate
    user = require("view")
    _, lang = who()
    # exports: contact masked
    rows = _rows(_list(user, wards, cats, statuses, slas, full=False), lang)
    cols = [c["id"] for c in _columns(lang)]
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c["name"] for c in _columns(lang)])
    for r in rows:
        w.writerow([r[c] for c in cols])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    return {"content": "\ufeff" + buf.getvalue(), "filename": f"phan-anh-{stamp}.csv"}


def _action_inputs() -> list[Input]:
    return [Input(f"rep-act-{a}", "n_clicks") for a in ACTIONS]


@callback(
    Output("rep-msg", "children"),
    Output("rep-version", "data"),
    *_action_inputs(),
    State("rep-table", "selected_row_ids"),
    State("rep-result", "value"),
    State("rep-version", "data"),
    prevent_initial_call=True,
)
def act(*args: Any) -> tuple[Any, ...]:
    ids, result, version = args[len(ACTIONS) :]
    user = require("view")
    _, lang = who()
    if not may_act(user):
        return _t("read_only", lang), dash.no_update
    trigger = dash.ctx.triggered_id
    if not isinstance(trigger, str) or not trigger.startswith("rep-act-"):
        raise PreventUpdate
    action = trigger.removeprefix("rep-act-")
    if action not in ACTIONS:
        raise PreventUpdate
    wanted = sorted({str(i) for i in ids or [] if isinstance(i, str | int)})[:500]
    if not wanted:
        return _t("none_selected", lang), dash.no_update
    text = (str(result).strip()[:2000] or None) if result else None
    rules = _rules()
    now = dt.datetime.now(dt.UTC)
    with state().pool.conn() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, ward_code, status FROM reports WHERE id = ANY(%s)", (wanted,))
        events = [
            ReportEvent(
                id=rid,
                event=action,
                ts=now,
                ward_code=ward,
                result=text if action in ENDED else None,
                actor=f"user:{user.name}",
            )
            for rid, ward, _status in cur.fetchall()
            if user.may_see_ward(ward)  # another ward's report: refused (skipped)
        ]
        outcomes = store_events(cur, events, rules, door="web")
    done = sum(1 for o in outcomes if o.status == "stored")
    state().cache.clear()
    return _t("done", lang, n=done), (version or 0) + 1
