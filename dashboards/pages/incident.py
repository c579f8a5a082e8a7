"""``/incidents/{id}``: one incident — state and clocks, timeline (the audit trail), SOP
checklist, location with the ward's cameras and sensors, linked alerts and reports, and the
actions; ``/incidents/new``: a new incident by hand, or from an alert or a citizen report.

Every callback takes the incident id from the page and checks it on the server against the
user (``ioc.incidents.access``) before reading or changing anything: a ward leader replaying a
request with another ward's incident id gets nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash
from dash import ALL, Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboards.components.common import alert_title, channel_label, require, ward_options, who
from dashboards.components.figures import MAP_CONFIG
from dashboards.components.incidents import (
    SLA_COLORS,
    assignee_label,
    assignee_options,
    category_label,
    category_options,
    countdown,
    sla_label,
    status_label,
)
from dashboards.components.layout import frame, refused
from dashboards.components.tables import card, cards_2
from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.state import state
from ioc.auth import User
from ioc.incidents import access, core, rules, sla
from ioc.incidents import queries as iq

dash.register_page(
    __name__, path_template="/incidents/<incident_id>", title="IOC — Sự cố", order=11
)

REFRESH_MS = 30_000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parse_id(value: Any) -> int | None:
    try:
        iid = int(str(value))
    except (TypeError, ValueError):
        return None
    return iid if 0 < iid < 2**63 else None


def _load(user: User, value: Any) -> dict[str, Any] | None:
    """The incident if it exists and the user may see it (else None: the same answer for
    "not there" and "not yours")."""
    iid = _parse_id(value)
    if iid is None:
        return None
    with state().pool.conn() as conn:
        inc = core.get(conn, iid)
    if inc is None or not access.may_view(user, inc["ward_code"]):
        return None
    return inc


def layout(incident_id: str | None = None, **_: Any) -> html.Div:
    user, lang = who()
    if not user.can("view"):
        return refused(lang)
    if incident_id == "new":
        return _new_layout(user, lang)
    inc = _load(user, incident_id)
    if inc is None:
        return html.Div(t("not_found", lang), className="refused", id="inc-not-found")
    can_act = access.may_act(user, inc["ward_code"])
    return frame(
        user,
        f"/incidents/{inc['id']}",
        lang,
        [
            dcc.Interval(id="inc-d-interval", interval=REFRESH_MS),
            dcc.Store(id="inc-d-id", data=inc["id"]),
            dcc.Store(id="inc-d-version", data=0),
            html.Div(
                className="page-head",
                children=[
                    html.H1(f"#{inc['id']} {inc['title']}", id="inc-d-title"),
                    dcc.Link(t("inc_queue", lang), href="/incidents"),
                ],
            ),
            html.Div(id="inc-d-head", className="card"),
            html.Div(
                className="card",
                style={} if can_act else {"display": "none"},
                children=_actions(user, inc, lang),
            ),
            cards_2(
                card(title=t("inc_sop", lang), body_id="inc-d-sop"),
                card(title=t("inc_timeline", lang), body_id="inc-d-timeline"),
            ),
            cards_2(
                card(
                    dcc.Graph(
                        id="inc-d-map",
                        figure=_map(inc, lang),
                        config=MAP_CONFIG,
                        style={"height": "360px"},
                    ),
                    html.H3(t("inc_nearby", lang)),
                    title=t("inc_location", lang),
                    body_id="inc-d-nearby",
                ),
                card(
                    html.Div(id="inc-d-links"),
                    dcc.Checklist(
                        id="inc-d-split-sel", options=[], value=[], className="link-list"
                    ),
                    html.Button(
                        t("inc_split", lang),
                        id="inc-d-split",
                        className="btn secondary",
                        n_clicks=0,
                        style={} if can_act else {"display": "none"},
                    ),
                    title=t("inc_links", lang),
                ),
            ),
        ],
    )


def _actions(user: User, inc: dict[str, Any], lang: str) -> list[Any]:
    btn = "btn"
    sec = "btn secondary"
    return [
        html.Div(
            className="controls",
            children=[
                dcc.Dropdown(
                    id="inc-d-assignee",
                    options=assignee_options(user, lang, inc["ward_code"]),
                    value=inc["assignee"],
                    placeholder=t("inc_assignee", lang),
                    style={"minWidth": "300px"},
                ),
                html.Button(t("inc_assign", lang), id="inc-d-assign", className=btn, n_clicks=0),
                html.Button(t("inc_ack", lang), id="inc-d-ack", className=btn, n_clicks=0),
                html.Button(t("inc_start", lang), id="inc-d-start", className=btn, n_clicks=0),
                html.Button(t("inc_resolve", lang), id="inc-d-resolve", className=btn, n_clicks=0),
                html.Button(
                    t("inc_close", lang),
                    id="inc-d-close",
                    className=sec,
                    n_clicks=0,
                    style={} if access.may_close(user, inc["ward_code"]) else {"display": "none"},
                ),
                html.Button(t("inc_reject", lang), id="inc-d-reject", className=sec, n_clicks=0),
                html.Button(t("inc_reopen", lang), id="inc-d-reopen", className=sec, n_clicks=0),
            ],
        ),
        html.Div(
            className="controls",
            children=[
                dcc.Textarea(
                    id="inc-d-text",
                    placeholder=t("inc_text", lang),
                    style={"width": "100%", "minHeight": "60px"},
                    maxLength=core.MAX_TEXT,
                ),
                html.Button(t("inc_comment", lang), id="inc-d-comment", className=sec, n_clicks=0),
            ],
        ),
        html.Div(
            className="controls",
            children=[
                dcc.Input(
                    id="inc-d-link-ref", placeholder=t("inc_link", lang), style={"width": "320px"}
                ),
                html.Button(t("inc_link_btn", lang), id="inc-d-link", className=sec, n_clicks=0),
                dcc.Input(
                    id="inc-d-merge-ids", placeholder=t("inc_merge", lang), style={"width": "320px"}
                ),
                html.Button(t("inc_merge_btn", lang), id="inc-d-merge", className=sec, n_clicks=0),
            ],
        ),
        html.Span(id="inc-d-msg", className="msg"),
    ]


def _map(inc: dict[str, Any], lang: str) -> dict[str, Any]:
    """The incident's ward outlined and its place marked (no tiles, no network)."""
    st = state()
    feats = [f for f in st.geojson["features"] if str(f["id"]) == inc["ward_code"]]
    data: list[dict[str, Any]] = []
    if feats:
        data.append(
            {
                "type": "choropleth",
                "geojson": {"type": "FeatureCollection", "features": feats},
                "locations": [inc["ward_code"]],
                "z": [0],
                "featureidkey": "id",
                "colorscale": [[0, "#d9dde3"], [1, "#d9dde3"]],
                "showscale": False,
                "marker": {"line": {"color": "#4a5568", "width": 1}},
                "hovertemplate": st.ward_names.get(inc["ward_code"], "") + "<extra></extra>",
            }
        )
    if inc["lat"] is not None and inc["lon"] is not None:
        data.append(
            {
                "type": "scattergeo",
                "lat": [inc["lat"]],
                "lon": [inc["lon"]],
                "mode": "markers",
                "marker": {"size": 16, "color": SLA_COLORS["breached"], "symbol": "circle"},
                "hovertemplate": f"#{inc['id']}<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": {
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "geo": {
                "fitbounds": "locations" if feats else False,
                "visible": False,
                "projection": {"type": "mercator"},
            },
            "showlegend": False,
        },
    }


# --------------------------------------------------------------------------- read callbacks


@callback(
    Output("inc-d-head", "children"),
    Output("inc-d-timeline", "children"),
    Output("inc-d-links", "children"),
    Output("inc-d-split-sel", "options"),
    Output("inc-d-nearby", "children"),
    Input("inc-d-interval", "n_intervals"),
    Input("inc-d-version", "data"),
    State("inc-d-id", "data"),
)
def refresh(_n: int | None, _v: int | None, incident_id: Any) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    inc = _load(user, incident_id)
    if inc is None:
        raise PreventUpdate
    now = _now()
    with state().pool.conn() as conn:
        trail = core.events(conn, inc["id"])
        alerts = iq.linked_alerts(conn, incident_id=inc["id"])
        reports = iq.linked_reports(conn, incident_id=inc["id"])
        cams, devs = iq.nearby(conn, ward_code=inc["ward_code"], lat=inc["lat"], lon=inc["lon"])
    head, opts = _links(alerts, reports, lang)
    return (_head(inc, now, lang), _timeline(trail, lang), head, opts, _nearby(cams, devs, lang))


@callback(
    Output("inc-d-sop", "children"),
    Input("inc-d-version", "data"),
    State("inc-d-id", "data"),
)
def sop(_v: int | None, incident_id: Any) -> Any:
    user = require("view")
    _, lang = who()
    inc = _load(user, incident_id)
    if inc is None:
        raise PreventUpdate
    with state().pool.conn() as conn:
        done = core.steps_done(conn, inc["id"])
    can_act = access.may_act(user, inc["ward_code"]) and inc["status"] in (
        "assigned",
        "in_progress",
    )
    items = []
    for step in rules.sop_steps(state().cfg, inc["category"]):
        d = done.get(step.id)
        needs = t(f"inc_step_needs_{step.needs}", lang) if step.needs else ""
        if d is not None:
            extra = " · ".join(x for x in (d["note"], d["photo_ref"]) if x)
            right: Any = html.Span(
                f"✔ {d['done_by']} {fmt_datetime(d['done_at'], lang)}"
                + (f" · {extra}" if extra else ""),
                className="step-done",
            )
        elif can_act:
            right = html.Span(
                [
                    dcc.Input(
                        id={"type": "inc-step-text", "step": step.id},
                        placeholder=needs or t("inc_step_input", lang),
                        style={"width": "220px"},
                    ),
                    html.Button(
                        t("inc_step_done", lang),
                        id={"type": "inc-step-btn", "step": step.id},
                        className="btn",
                        n_clicks=0,
                    ),
                ]
            )
        else:
            right = html.Span(needs, className="muted")
        items.append(
            html.Li(
                [html.Span(("☑ " if d else "☐ ") + step.label(lang)), right],
                className="sop-step",
                id=f"inc-step-{step.id}",
            )
        )
    if not items:
        return html.Div(t("no_rows", lang), className="muted")
    return html.Ul(items, className="sop-list")


def _head(inc: dict[str, Any], now: dt.datetime, lang: str) -> html.Div:
    s = sla.sla_state(inc, now)
    names = state().ward_names
    is_open = inc["status"] in core.OPEN

    def field(label: str, value: Any, fid: str | None = None) -> html.Div:
        kw: dict[str, Any] = {"id": fid} if fid else {}
        return html.Div(
            [html.Div(label, className="tile-label"), html.Div(value, **kw)], className="inc-field"
        )

    return html.Div(
        className="inc-head",
        children=[
            field(t("state", lang), status_label(inc["status"], lang), "inc-d-status"),
            field(
                t("inc_sla", lang),
                html.Span(
                    sla_label(s, lang),
                    className="sla-badge",
                    style={
                        "backgroundColor": SLA_COLORS[s],
                        "color": "black" if s == "warning" else "white",
                    },
                ),
                "inc-d-sla",
            ),
            field(t("severity", lang), t(inc["severity"], lang)),
            field(t("ward", lang), names.get(inc["ward_code"] or "", t("city", lang))),
            field(t("inc_category", lang), category_label(inc["category"], lang)),
            field(
                t("inc_assignee", lang),
                assignee_label(inc["assignee"], lang) or "—",
                "inc-d-assignee-now",
            ),
            field(
                t("inc_response_due", lang),
                f"{fmt_datetime(inc['response_due_at'], lang)} · "
                + countdown(inc["response_due_at"], now, lang, done=inc["acknowledged_at"])
                if is_open or inc["acknowledged_at"]
                else fmt_datetime(inc["response_due_at"], lang),
            ),
            field(
                t("inc_resolution_due", lang),
                f"{fmt_datetime(inc['due_at'], lang)} · "
                + countdown(inc["due_at"], now, lang, done=inc["resolved_at"]),
            ),
            field(
                t("inc_escalation", lang),
                t("inc_level", lang, n=inc["escalation_level"]),
                "inc-d-level",
            ),
            field(
                t("inc_opened_by", lang),
                f"{inc['opened_by']} · {fmt_datetime(inc['opened_at'], lang)} · "
                + t(f"inc_origin_{inc['origin']}", lang),
            ),
        ]
        + ([field(t("resolved", lang), inc["resolution"])] if inc["resolution"] else [])
        + ([field(t("inc_reject", lang), inc["reject_reason"])] if inc["reject_reason"] else []),
    )


def _timeline(trail: list[dict[str, Any]], lang: str) -> html.Ul:
    items = []
    for e in reversed(trail):
        d = e["details"] or {}
        bits = []
        for k in ("assignee", "step", "clock", "to", "level", "kind", "ref", "into", "incident"):
            if k in d and d[k] not in (None, ""):
                v = d[k]
                if k == "assignee":
                    v = assignee_label(v, lang)
                elif k == "clock":
                    v = t(f"inc_clock_{v}", lang)
                elif k == "to" and e["action"] == "escalated":
                    v = escalation_label(str(v), lang)
                elif k == "level":
                    v = t("inc_level", lang, n=v)
                elif k == "kind":
                    v = t(f"inc_kind_{v}", lang)
                bits.append(str(v))
        for k in ("text", "note", "photo_ref", "reason", "resolution"):
            if d.get(k):
                bits.append(f"“{d[k]}”")
        items.append(
            html.Li(
                [
                    html.Span(fmt_datetime(e["ts"], lang), className="muted"),
                    " ",
                    html.B(e["actor"]),
                    f" ({e['source']}) ",
                    t(f"inc_action_{e['action']}", lang),
                    (": " + " · ".join(bits)) if bits else "",
                ],
                className=f"ev-{e['action']}",
            )
        )
    return html.Ul(items, className="timeline", id="inc-d-events")


def escalation_label(role: str, lang: str) -> str:
    for step in rules.settings(state().cfg).escalation:
        if step.to == role:
            return step.label_en if lang == "en" else step.label_vi
    return role


def _links(
    alerts: list[iq.LinkedAlert], reports: list[iq.LinkedReport], lang: str
) -> tuple[html.Div, list[dict[str, str]]]:
    """A count line and the split checklist's options (one per linked alert and report)."""
    opts = [
        {
            "label": f"#{r.id} {alert_title(r.rule_id, r.subject, r.title, lang)}"
            f" · {t(r.state, lang)} · {fmt_datetime(r.opened_at, lang)}",
            "value": f"alert:{r.id}",
        }
        for r in alerts
    ] + [
        {
            "label": f"{r.id} · {r.summary or ''} · {channel_label(r.channel, lang)}"
            f" · {fmt_datetime(r.received_at, lang)}",
            "value": f"report:{r.id}",
        }
        for r in reports
    ]
    head = html.Div(
        f"{t('inc_linked_alerts', lang)}: {fmt_num(len(alerts), 0, lang)} · "
        f"{t('inc_linked_reports', lang)}: {fmt_num(len(reports), 0, lang)}",
        className="muted",
    )
    return head, opts


def _nearby(cams: list[iq.NearbyCamera], devs: list[iq.NearbyDevice], lang: str) -> html.Div:
    def li(name: str, status: str, seen: Any) -> html.Li:
        return html.Li(
            [html.Span(name), " · ", t(status, lang), " · ", fmt_datetime(seen, lang)],
            className=f"dev-{status}",
        )

    def far(r: iq.NearbyDevice) -> str:  # how far from the incident's place, when it has one
        d = r.distance_m
        return "" if d is None else f" · {fmt_num(d, 0, lang)} m"

    items = [li(f"Camera {r.name or r.camera_id}", r.status, r.last_seen) for r in cams]
    items += [li(f"{r.device_type} {r.device_id}{far(r)}", r.status, r.last_seen) for r in devs]
    if not items:
        return html.Div(t("no_rows", lang), className="muted")
    return html.Div(html.Ul(items[:40], className="nearby-list"))


# --------------------------------------------------------------------------- actions


ACTION_BUTTONS = (
    "inc-d-assign",
    "inc-d-ack",
    "inc-d-start",
    "inc-d-resolve",
    "inc-d-close",
    "inc-d-reject",
    "inc-d-reopen",
    "inc-d-comment",
    "inc-d-link",
    "inc-d-merge",
    "inc-d-split",
)


@callback(
    Output("inc-d-msg", "children"),
    Output("inc-d-version", "data"),
    *[Input(b, "n_clicks") for b in ACTION_BUTTONS],
    Input({"type": "inc-step-btn", "step": ALL}, "n_clicks"),
    State("inc-d-id", "data"),
    State("inc-d-version", "data"),
    State("inc-d-text", "value"),
    State("inc-d-assignee", "value"),
    State("inc-d-link-ref", "value"),
    State("inc-d-merge-ids", "value"),
    State("inc-d-split-sel", "value"),
    State({"type": "inc-step-text", "step": ALL}, "value"),
    State({"type": "inc-step-text", "step": ALL}, "id"),
    prevent_initial_call=True,
)
def act(*args: Any) -> tuple[Any, ...]:
    n = len(ACTION_BUTTONS)
    incident_id, version, text, assignee, link_ref, merge_ids, split_sel, step_texts, step_ids = (
        args[n + 1 :]
    )
    user = require("view")
    _, lang = who()
    trigger = dash.ctx.triggered_id
    fired = dash.ctx.triggered[0].get("value") if dash.ctx.triggered else None
    if trigger is None or not fired:  # a redrawn button (n_clicks 0), not a click
        raise PreventUpdate
    inc = _load(user, incident_id)
    if inc is None:
        return t("inc_err_not_found", lang), dash.no_update
    ward = inc["ward_code"]
    if not access.may_act(user, ward) or (
        trigger == "inc-d-close" and not access.may_close(user, ward)
    ):
        return t("inc_err_forbidden", lang), dash.no_update
    cfg = state().cfg
    iid = int(inc["id"])
    who_: dict[str, Any] = {"actor": user.name, "source": "web"}
    try:
        with state().pool.conn() as conn:
            if isinstance(trigger, dict) and trigger.get("type") == "inc-step-btn":
                step = str(trigger.get("step"))
                texts = {
                    str(i.get("step")): v
                    for i, v in zip(step_ids or [], step_texts or [], strict=False)
                }
                value = texts.get(step)
                kind = next(
                    (s.needs for s in rules.sop_steps(cfg, inc["category"]) if s.id == step), None
                )
                core.tick_step(
                    conn,
                    cfg,
                    iid,
                    step,
                    note=None if kind == "photo" else value,
                    photo_ref=value if kind == "photo" else None,
                    **who_,
                )
            elif trigger == "inc-d-assign":
                kinds = rules.assignees(cfg)
                if not isinstance(assignee, str) or assignee not in kinds:
                    return t("inc_err_bad_assignee", lang), dash.no_update
                if not access.may_assign_to(user, assignee, kinds[assignee]):
                    return t("inc_err_forbidden", lang), dash.no_update
                core.assign(conn, cfg, iid, assignee, **who_)
            elif trigger == "inc-d-ack":
                core.acknowledge(conn, iid, **who_)
            elif trigger == "inc-d-start":
                core.start(conn, iid, **who_)
            elif trigger == "inc-d-resolve":
                core.resolve(conn, cfg, iid, text or "", **who_)
            elif trigger == "inc-d-close":
                core.close(conn, iid, **who_)
            elif trigger == "inc-d-reject":
                core.reject(conn, iid, text or "", **who_)
            elif trigger == "inc-d-reopen":
                core.reopen(conn, cfg, iid, text or "", **who_)
            elif trigger == "inc-d-comment":
                core.comment(conn, iid, text or "", **who_)
            elif trigger == "inc-d-link":
                ref = (link_ref or "").strip().lstrip("#")
                kind, ref = _link_kind(conn, user, ref)
                if kind is None:
                    return t("inc_err_bad_link", lang), dash.no_update
                core.link(conn, iid, kind, ref, **who_)
            elif trigger == "inc-d-merge":
                ids = _ids(merge_ids)
                if not ids:
                    return t("inc_err_bad_link", lang), dash.no_update
                wards = iq.wards_of(conn, ids=ids)
                if set(ids) - set(wards) or not all(access.may_act(user, wards[i]) for i in ids):
                    return t("inc_err_forbidden", lang), dash.no_update
                core.merge(conn, iid, ids, **who_)
            elif trigger == "inc-d-split":
                refs = [tuple(str(v).split(":", 1)) for v in split_sel or [] if ":" in str(v)]
                core.split(conn, cfg, iid, [(k, r) for k, r in refs], **who_)
            else:
                raise PreventUpdate
    except core.IncidentError as exc:
        return t(f"inc_err_{exc.code}", lang), dash.no_update
    state().cache.clear()
    return t("inc_saved", lang), (version or 0) + 1


def _ids(text: Any) -> list[int]:
    out = []
    for part in str(text or "").replace(",", " ").replace("#", " ").split():
        iid = _parse_id(part)
        if iid is None:
            return []
        out.append(iid)
    return out


def _link_kind(conn: Any, user: User, ref: str) -> tuple[Any, str]:
    """('alert', id) for an alert number, ('report', code) for a report code — only one the
    user may see (its ward), else (None, ref)."""
    if not ref:
        return None, ref
    with conn.cursor() as cur:
        if ref.isdigit():
            cur.execute("SELECT ward_code FROM alerts WHERE id = %s", (int(ref),))
            row = cur.fetchone()
            if row is not None and access.may_view(user, row[0]):
                return "alert", ref
        cur.execute("SELECT ward_code FROM reports WHERE id = %s", (ref,))
        row = cur.fetchone()
        if row is not None and access.may_view(user, row[0]):
            return "report", ref
    return None, ref


# --------------------------------------------------------------------------- new incident


def _new_layout(user: User, lang: str) -> html.Div:
    if user.role not in access.ACTING_ROLES:
        return refused(lang)
    return frame(
        user,
        "/incidents/new",
        lang,
        [
            dcc.Location(id="inc-new-go", refresh=True),
            html.H1(t("inc_new", lang)),
            html.Div(
                className="card new-incident",
                children=[
                    html.Label(t("ward", lang)),
                    dcc.Dropdown(id="inc-new-ward", options=ward_options(user)),
                    html.Label(t("inc_category", lang)),
                    dcc.Dropdown(
                        id="inc-new-category", options=category_options(lang), value="other"
                    ),
                    html.Label(t("severity", lang)),
                    dcc.Dropdown(
                        id="inc-new-severity",
                        options=[{"label": t(s, lang), "value": s} for s in core.SEVERITIES],
                        value="warning",
                        clearable=False,
                    ),
                    html.Label(t("title", lang)),
                    dcc.Input(id="inc-new-title", style={"width": "100%"}, maxLength=200),
                    html.Label(t("inc_text", lang)),
                    dcc.Textarea(
                        id="inc-new-text", style={"width": "100%"}, maxLength=core.MAX_TEXT
                    ),
                    html.Label(t("inc_link", lang)),
                    dcc.Input(id="inc-new-from", style={"width": "100%"}),
                    html.Button(
                        t("inc_create", lang), id="inc-new-create", className="btn", n_clicks=0
                    ),
                    html.Span(id="inc-new-msg", className="msg"),
                ],
            ),
        ],
    )


@callback(
    Output("inc-new-msg", "children"),
    Output("inc-new-go", "href"),
    Input("inc-new-create", "n_clicks"),
    State("inc-new-ward", "value"),
    State("inc-new-category", "value"),
    State("inc-new-severity", "value"),
    State("inc-new-title", "value"),
    State("inc-new-text", "value"),
    State("inc-new-from", "value"),
    prevent_initial_call=True,
)
def create(
    _n: int | None,
    ward: Any,
    category: Any,
    severity: Any,
    title: Any,
    text: Any,
    source_ref: Any,
) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    cfg = state().cfg
    ref = str(source_ref or "").strip().lstrip("#")
    try:
        with state().pool.conn() as conn:
            if ref:
                kind, ref = _link_kind(conn, user, ref)
                if kind is None:
                    return t("inc_err_bad_link", lang), dash.no_update
                src = core.alert_row(conn, int(ref)) if kind == "alert" else None
                src_ward = src["ward_code"] if src else _report_ward(conn, ref)
                if not access.may_create(user, src_ward):
                    return t("inc_err_forbidden", lang), dash.no_update
                if kind == "alert":
                    iid = core.from_alert(
                        conn,
                        cfg,
                        int(ref),
                        actor=user.name,
                        source="web",
                        category=category
                        if isinstance(category, str) and category in rules.categories(cfg)
                        else None,
                    )
                else:
                    iid = core.from_report(conn, cfg, ref, actor=user.name, source="web")
            else:
                if not isinstance(ward, str) or ward not in cfg.ward_codes:
                    return t("inc_err_bad_ward", lang), dash.no_update
                if not access.may_create(user, ward):
                    return t("inc_err_forbidden", lang), dash.no_update
                iid = core.create(
                    conn,
                    cfg,
                    ward_code=ward,
                    category=str(category or ""),
                    severity=str(severity or "warning"),
                    title=str(title or ""),
                    description=str(text or "") or None,
                    actor=user.name,
                    source="web",
                )
    except core.IncidentError as exc:
        return t(f"inc_err_{exc.code}", lang), dash.no_update
    state().cache.clear()
    return t("inc_saved", lang), f"/incidents/{iid}"


def _report_ward(conn: Any, ref: str) -> str | None:
    with conn.cursor() as cur:
        cur.execute("SELECT ward_code FROM reports WHERE id = %s", (ref,))
        row = cur.fetchone()
    return None if row is None else row[0]
