"""``/incidents``: the incident queue — filters by ward, category, state and SLA state; countdowns
to the response and resolution due times; bulk assignment; a CSV download; a new incident.

Every callback re-checks the user on the server: the wards a ward leader asks for are cut to
theirs (the guard refuses other wards' codes before that), every incident id sent back is
looked up and checked against the user's wards before anything is done with it.

The incident figures of the overview and the ward pages are filled here too (their cards are
``inc-ov-summary`` and ``inc-ward-summary``), on those pages' own refresh intervals.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboards.components.common import require, scope_key, selected_ids, who
from dashboards.components.incidents import (
    ALL_STATUSES,
    OPEN_STATUSES,
    SLA_COLORS,
    SLA_FILTERS,
    assignee_label,
    assignee_options,
    category_label,
    category_options,
    countdown,
    sla_label,
    status_label,
    summary_block,
)
from dashboards.components.layout import table
from dashboards.components.tables import (
    card,
    checklist,
    controls,
    dropdown,
    view_page,
    ward_dropdown,
)
from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.state import state
from ioc.auth import User
from ioc.incidents import access, core, rules
from ioc.incidents import queries as iq

dash.register_page(__name__, path="/incidents", title="IOC — Sự cố", order=4)

REFRESH_MS = 15_000
QUEUE_LIMIT = 200  # the most urgent first; filters narrow it down (the table pages 25)
COUNT_UP_TO = 10_000  # beyond, the count says "10.000+" (counting 100,000 rows costs time)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def layout(**_: Any) -> html.Div:
    return view_page(
        "/incidents",
        "inc_queue",
        "inc-interval",
        REFRESH_MS,
        _body,
        version_id="inc-version",
        download_id="inc-download",
        updated_id="inc-count",
    )


def _body(user: User, lang: str) -> list[Any]:
    can_act = user.role in access.ACTING_ROLES
    return [
        controls(
            ward_dropdown(user, lang, "inc-ward", width="280px"),
            dropdown(
                t("inc_category", lang),
                "inc-category",
                category_options(lang),
                width="240px",
                multi=True,
                placeholder=t("all", lang),
            ),
            checklist(
                t("state", lang),
                "inc-status",
                [{"label": status_label(s, lang), "value": s} for s in ALL_STATUSES],
                value=list(OPEN_STATUSES),
                inline=True,
            ),
            checklist(
                t("inc_sla", lang),
                "inc-sla",
                [{"label": sla_label(s, lang), "value": s} for s in SLA_FILTERS],
                value=[],
                inline=True,
            ),
        ),
        controls(
            html.Div(
                [
                    dcc.Dropdown(
                        id="inc-assignee",
                        options=assignee_options(user, lang),
                        placeholder=t("inc_assignee", lang),
                        style={"minWidth": "280px"},
                    ),
                    html.Button(
                        t("inc_bulk_assign", lang),
                        id="inc-assign-btn",
                        className="btn",
                        n_clicks=0,
                    ),
                ],
                style={"display": "flex", "gap": "8px"} if can_act else {"display": "none"},
            ),
            html.Button(
                t("inc_download", lang),
                id="inc-download-btn",
                className="btn secondary",
                n_clicks=0,
            ),
            html.A(
                t("inc_new", lang),
                href="/incidents/new",
                className="btn secondary",
                id="inc-new-link",
                style={} if can_act else {"display": "none"},
            ),
            html.Span(id="inc-msg", className="msg"),
        ),
        card(
            table(
                "inc-table",
                [],
                _columns(lang),
                page_size=25,
                selectable=can_act,
                style_data_conditional=_sla_styles(),
            )
        ),
    ]


def _columns(lang: str) -> list[dict[str, Any]]:
    return [
        {"name": "#", "id": "link", "presentation": "markdown"},
        {"name": t("title", lang), "id": "title"},
        {"name": t("ward", lang), "id": "ward"},
        {"name": t("inc_category", lang), "id": "category_label"},
        {"name": t("severity", lang), "id": "severity_label"},
        {"name": t("state", lang), "id": "status_label"},
        {"name": t("inc_assignee", lang), "id": "assignee_label"},
        {"name": t("inc_response_due", lang), "id": "response"},
        {"name": t("inc_resolution_due", lang), "id": "resolution"},
        {"name": t("inc_sla", lang), "id": "sla_label"},
        {"name": t("inc_escalation", lang), "id": "level"},
    ]


def _sla_styles() -> list[dict[str, Any]]:
    return [
        {
            "if": {"filter_query": f'{{sla}} = "{s}"', "column_id": "sla_label"},
            "backgroundColor": c,
            "color": "black" if s == "warning" else "white",
        }
        for s, c in SLA_COLORS.items()
    ]


def scoped_wards(user: User, wanted: list[str] | None) -> list[str] | None:
    """The wards a query may read: those asked for, cut to the user's (None = all)."""
    key = scope_key(user)
    if wanted:
        return [w for w in wanted if isinstance(w, str) and user.may_see_ward(w)]
    return None if key is None else list(key)


def _clean(values: Any, allowed: tuple[str, ...] | list[str]) -> list[str]:
    return [v for v in values or [] if isinstance(v, str) and v in allowed]


def queue_rows(
    user: User,
    lang: str,
    wards: list[str] | None,
    cats: list[str] | None,
    statuses: list[str] | None,
    slas: list[str] | None,
    now: dt.datetime,
) -> tuple[list[dict[str, Any]], int]:
    scope = scoped_wards(user, wards)
    with state().pool.conn() as conn:  # not cached: people act on what they see
        found, total = iq.queue(
            conn,
            now=now,
            wards=scope,
            categories=_clean(cats, list(rules.categories(state().cfg))),
            statuses=_clean(statuses, ALL_STATUSES),
            sla=_clean(slas, SLA_FILTERS),
            limit=QUEUE_LIMIT,
            count_up_to=COUNT_UP_TO,
        )
    names = state().ward_names
    # labels looked up once per request, not per row (500 rows)
    cat_names = {
        c: (en if lang == "en" else vi) for c, (vi, en) in rules.categories(state().cfg).items()
    }
    who_names: dict[Any, str] = {
        d.id: d.name_en if lang == "en" else d.name_vi
        for d in rules.settings(state().cfg).departments
    }
    who_names.update(names)
    rows = []
    for r in found:
        is_open = r.status in OPEN_STATUSES
        rows.append(
            {
                "id": r.id,
                "link": f"[#{r.id}](/incidents/{r.id})",
                "title": r.title,
                "ward": names.get(r.ward_code or "", r.ward_code or t("city", lang)),
                "category_label": cat_names.get(r.category) or category_label(r.category, lang),
                "severity": r.severity,
                "severity_label": t(r.severity, lang),
                "status_label": status_label(r.status, lang),
                "assignee_label": who_names.get(r.assignee) or assignee_label(r.assignee, lang),
                "response": countdown(r.response_due_at, now, lang, done=r.acknowledged_at)
                if is_open
                else "",
                "resolution": countdown(r.due_at, now, lang, done=r.resolved_at),
                "sla": r.sla,
                "sla_label": sla_label(r.sla, lang),
                "level": t("inc_level", lang, n=r.escalation_level) if r.escalation_level else "",
            }
        )
    return rows, total


@callback(
    Output("inc-table", "data"),
    Output("inc-count", "children"),
    Input("inc-interval", "n_intervals"),
    Input("inc-ward", "value"),
    Input("inc-category", "value"),
    Input("inc-status", "value"),
    Input("inc-sla", "value"),
    Input("inc-version", "data"),
)
def refresh(
    _n: int | None,
    wards: list[str] | None,
    cats: list[str] | None,
    statuses: list[str] | None,
    slas: list[str] | None,
    _v: int | None,
) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    rows, total = queue_rows(user, lang, wards, cats, statuses, slas, _now())
    shown = fmt_num(total, 0, lang) if total <= COUNT_UP_TO else f"{fmt_num(COUNT_UP_TO, 0, lang)}+"
    return rows, t("inc_shown", lang, n=fmt_num(len(rows), 0, lang), total=shown)


@callback(
    Output("inc-msg", "children"),
    Output("inc-version", "data"),
    Input("inc-assign-btn", "n_clicks"),
    State("inc-table", "selected_row_ids"),
    State("inc-assignee", "value"),
    State("inc-version", "data"),
    prevent_initial_call=True,
)
def bulk_assign(
    _n: int | None, ids: list[Any] | None, assignee: str | None, version: int | None
) -> tuple[Any, ...]:
    user = require("view")
    _, lang = who()
    if user.role not in access.ACTING_ROLES:
        return t("inc_err_forbidden", lang), dash.no_update
    kinds = rules.assignees(state().cfg)
    if not isinstance(assignee, str) or assignee not in kinds:
        return t("inc_err_bad_assignee", lang), dash.no_update
    if not access.may_assign_to(user, assignee, kinds[assignee]):
        return t("inc_err_forbidden", lang), dash.no_update
    wanted = selected_ids(ids)
    if not wanted:
        return t("n_selected_none", lang), dash.no_update
    done = refused = 0
    with state().pool.conn() as conn:
        wards = iq.wards_of(conn, ids=wanted)
        for iid in wanted:
            if iid not in wards or not access.may_act(user, wards[iid]):
                refused += 1
                continue
            try:
                if core.assign(conn, state().cfg, iid, assignee, actor=user.name, source="web"):
                    done += 1
            except core.IncidentError:
                refused += 1
    state().cache.clear()
    msg = t("done_n", lang, n=done)
    if refused:
        msg += f" · {t('inc_err_forbidden', lang)}: {refused}"
    return msg, (version or 0) + 1


@callback(
    Output("inc-download", "data"),
    Input("inc-download-btn", "n_clicks"),
    State("inc-ward", "value"),
    State("inc-category", "value"),
    State("inc-status", "value"),
    State("inc-sla", "value"),
    prevent_initial_call=True,
)
def download(
    _n: int | None,
    wards: list[str] | None,
    cats: list[str] | None,
    statuses: list[str] | None,
    slas: list[str] | None,
) -> Any:
    user = require("view")
    _, lang = who()
    now = _now()
    rows, _total = queue_rows(user, lang, wards, cats, statuses, slas, now)
    cols = [c for c in _columns(lang) if c["id"] != "link"]
    df = pd.DataFrame(
        [{"#": r["id"], **{c["name"]: r[c["id"]] for c in cols}} for r in rows],
        columns=["#", *[c["name"] for c in cols]],
    )
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    stamp = fmt_datetime(now, "en").replace(" ", "_").replace(":", "")
    return {"content": buf.getvalue(), "filename": f"incidents_{stamp}.csv", "type": "text/csv"}


# --------------------------------------------------------------------------- overview, ward


def summary_for(user: User, wards: list[str] | None, lang: str, scope: str) -> Any:
    from dashboards.components.common import cached

    key = None if wards is None else tuple(sorted(wards))
    now = _now()
    summary = cached(("inc_summary", key), lambda c: iq.summary(c, now=now, wards=wards))
    return summary_block(summary, lang, scope=scope)


@callback(Output("inc-ov-summary", "children"), Input("ov-interval", "n_intervals"))
def overview_section(_n: int | None) -> Any:
    user = require("view")
    _, lang = who()
    key = scope_key(user)
    return summary_for(user, None if key is None else list(key), lang, "inc-ov")


@callback(
    Output("inc-ward-summary", "children"),
    Input("ward-interval", "n_intervals"),
    State("ward-code", "data"),
)
def ward_section(_n: int | None, code: str | None) -> Any:
    if not isinstance(code, str) or code not in state().ward_names:
        raise PreventUpdate
    user = require("view", code)
    _, lang = who()
    return summary_for(user, [code], lang, "inc-ward")
