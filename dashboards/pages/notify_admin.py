"""``/admin/notifications`` (admins): the outbox by state, and the dead letters — messages
that failed ``max_attempts`` times or were refused for good — with a button to send the
selected ones again."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, html

from dashboards.components.common import require, selected_ids, who
from dashboards.components.layout import table
from dashboards.components.notify import recent_columns, recent_rows
from dashboards.components.tables import card, controls, view_page
from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.state import state
from ioc.auth import User
from ioc.notify import outbox
from ioc.notify.prefs import recent

dash.register_page(__name__, path="/admin/notifications", title="IOC — Thư lỗi", order=21)

REFRESH_MS = 15_000
STATES = ("pending", "sending", "sent", "dead", "cancelled", "digest", "digested")


def layout(**_: Any) -> html.Div:
    return view_page(
        "/admin/notifications",
        "nd_title",
        "ndead-interval",
        REFRESH_MS,
        _body,
        perm="admin",
        version_id="ndead-version",
    )


def _body(_user: User, lang: str) -> list[Any]:
    return [
        html.Div(id="ndead-counts", className="muted"),
        controls(
            html.Button(t("nd_retry", lang), id="ndead-retry", className="btn", n_clicks=0),
            html.Span(id="ndead-msg", className="msg"),
        ),
        html.P(id="ndead-empty", className="muted"),
        card(table("ndead-table", [], _columns(lang), page_size=20, selectable=True)),
        html.H2(t("n_recent", lang), style={"marginTop": "18px"}),
        card(table("ndead-recent", [], recent_columns(lang), page_size=15, filterable=True)),
    ]


def _columns(lang: str) -> list[dict[str, Any]]:
    return [
        {"name": "#", "id": "id"},
        {"name": t("opened", lang), "id": "created"},
        {"name": t("nd_kind", lang), "id": "kind"},
        {"name": t("nd_channel", lang), "id": "channel"},
        {"name": t("nd_recipient", lang), "id": "recipient"},
        {"name": t("nd_attempts", lang), "id": "attempts"},
        {"name": t("nd_error", lang), "id": "last_error"},
        {"name": t("title", lang), "id": "subject"},
    ]


@callback(
    Output("ndead-table", "data"),
    Output("ndead-table", "selected_rows"),
    Output("ndead-counts", "children"),
    Output("ndead-empty", "children"),
    Output("ndead-retry", "disabled"),
    Output("ndead-recent", "data"),
    Input("ndead-interval", "n_intervals"),
    Input("ndead-version", "data"),
)
def refresh(_n: int | None, _v: int | None) -> tuple[Any, ...]:
    require("admin")
    _, lang = who()
    with state().pool.conn() as conn:
        dead = recent(conn, status="dead", limit=500)
        counts = outbox.counts(conn)
        latest = recent(conn, limit=300)
    rows = [
        {
            "id": d["id"],
            "created": fmt_datetime(d["created_at"], lang),
            "kind": t(f"kind_{d['kind']}", lang),
            "channel": d["channel"],
            "recipient": d["recipient"],
            "attempts": d["attempts"],
            "last_error": d["last_error"] or "",
            "subject": d["subject"],
        }
        for d in dead
    ]
    summary = f"{t('nd_counts', lang)}: " + " · ".join(
        f"{t('nd_status_' + s, lang)} {fmt_num(counts.get(s, 0), 0, lang)}" for s in STATES
    )
    return (
        rows,
        [],
        summary,
        "" if rows else t("nd_none", lang),
        not rows,
        recent_rows(latest, lang),
    )


@callback(
    Output("ndead-msg", "children"),
    Output("ndead-version", "data"),
    Input("ndead-retry", "n_clicks"),
    State("ndead-table", "selected_row_ids"),
    State("ndead-version", "data"),
    prevent_initial_call=True,
)
def retry(_n: int | None, ids: list[Any] | None, version: int | None) -> tuple[Any, ...]:
    require("admin")
    _, lang = who()
    wanted = selected_ids(ids)
    if not wanted:
        return t("n_selected_none", lang), dash.no_update
    with state().pool.conn() as conn:
        n = outbox.requeue(conn, wanted)
    return t("nd_requeued", lang, n=n), (version or 0) + 1
