"""``/settings/notifications``: the signed-in user's own notification preferences.

Every callback acts on the current user only (never a name from the browser)."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html

from dashboards.components.common import require, who
from dashboards.components.layout import frame, refused, table
from dashboards.components.notify import recent_columns, recent_rows
from dashboards.i18n import t
from dashboards.state import state
from ioc.notify import prefs as prefs_mod
from ioc.notify.destinations import networks

dash.register_page(__name__, path="/settings/notifications", title="IOC — Nhận thông báo", order=20)

SEVERITIES = ("info", "warning", "critical")


def _field(label: str, control: Any) -> html.Div:
    return html.Div([html.Label(label), control], className="np-field", style={"margin": "10px 0"})


def layout(**_: Any) -> html.Div:
    user, lang = who()
    if not user.can("view"):
        return refused(lang)
    with state().pool.conn() as conn:
        p, email = prefs_mod.load(conn, user.name)
    return frame(
        user,
        "/settings/notifications",
        lang,
        [
            html.H1(t("notify_prefs", lang)),
            html.Div(
                className="card",
                style={"maxWidth": "640px"},
                children=[
                    _field(
                        t("np_email", lang),
                        html.Div(email or t("np_no_email", lang), id="nprefs-email"),
                    ),
                    dcc.Checklist(
                        id="nprefs-flags",
                        options=[
                            {"label": t("np_email_on", lang), "value": "email_on"},
                            {"label": t("np_digest_all", lang), "value": "digest_all"},
                        ],
                        value=[k for k in ("email_on", "digest_all") if getattr(p, k)],
                    ),
                    _field(
                        t("np_lang", lang),
                        dcc.RadioItems(
                            id="nprefs-lang",
                            options=[
                                {"label": "Tiếng Việt", "value": "vi"},
                                {"label": "English", "value": "en"},
                            ],
                            value=p.lang,
                            inline=True,
                        ),
                    ),
                    _field(
                        t("np_min_severity", lang),
                        dcc.RadioItems(
                            id="nprefs-sev",
                            options=[{"label": t(s, lang), "value": s} for s in SEVERITIES],
                            value=p.min_severity,
                            inline=True,
                        ),
                    ),
                    _field(
                        t("np_muted", lang),
                        dcc.Checklist(
                            id="nprefs-muted",
                            options=[
                                {"label": t(f"kind_{k}", lang), "value": k}
                                for k in prefs_mod.MUTABLE_KINDS
                            ],
                            value=p.muted_kinds,
                        ),
                    ),
                    _field(
                        t("np_quiet", lang),
                        html.Div(
                            [
                                dcc.Input(
                                    id="nprefs-qs",
                                    value=p.quiet_start or "",
                                    placeholder=t("np_quiet_start", lang),
                                    style={"width": "170px"},
                                ),
                                html.Span(" – "),
                                dcc.Input(
                                    id="nprefs-qe",
                                    value=p.quiet_end or "",
                                    placeholder=t("np_quiet_end", lang),
                                    style={"width": "170px"},
                                ),
                            ]
                        ),
                    ),
                    _field(
                        t("np_webhook", lang),
                        dcc.Input(
                            id="nprefs-hook",
                            value=p.webhook_url or "",
                            placeholder="https://",
                            style={"width": "100%"},
                        ),
                    ),
                    html.Button(t("np_save", lang), id="nprefs-save", className="btn", n_clicks=0),
                    html.Span(id="nprefs-msg", className="msg", style={"marginLeft": "12px"}),
                    html.Div(
                        [
                            html.Button(
                                t("np_test", lang),
                                id="nprefs-test",
                                className="btn secondary",
                                n_clicks=0,
                            ),
                            html.Span(
                                id="nprefs-test-msg", className="msg", style={"marginLeft": "12px"}
                            ),
                        ],
                        style={"marginTop": "12px"},
                    ),
                ],
            ),
            html.Div(
                className="card",
                style={"marginTop": "14px"},
                children=[
                    html.H2(t("n_recent_mine", lang)),
                    dcc.Interval(id="nprefs-interval", interval=15_000),
                    html.P(id="nprefs-recent-empty", className="muted"),
                    table(
                        "nprefs-recent",
                        [],
                        recent_columns(lang),
                        page_size=10,
                        sortable=False,
                    ),
                ],
            ),
        ],
    )


@callback(
    Output("nprefs-msg", "children"),
    Input("nprefs-save", "n_clicks"),
    State("nprefs-flags", "value"),
    State("nprefs-lang", "value"),
    State("nprefs-sev", "value"),
    State("nprefs-muted", "value"),
    State("nprefs-qs", "value"),
    State("nprefs-qe", "value"),
    State("nprefs-hook", "value"),
    prevent_initial_call=True,
)
def save(
    _n: int | None,
    flags: list[str] | None,
    lang_v: str | None,
    sev: str | None,
    muted: list[str] | None,
    qs: str | None,
    qe: str | None,
    hook: str | None,
) -> str:
    user = require("view")  # the current user's own row, whatever the browser sends
    _, lang = who()
    flags = [f for f in flags or [] if isinstance(f, str)]
    try:
        p = prefs_mod.validate(
            {
                "email_on": "email_on" in flags,
                "digest_all": "digest_all" in flags,
                "lang": lang_v,
                "min_severity": sev,
                "muted_kinds": [m for m in muted or [] if isinstance(m, str)],
                "quiet_start": qs if isinstance(qs, str) else None,
                "quiet_end": qe if isinstance(qe, str) else None,
                "webhook_url": hook if isinstance(hook, str) else None,
            },
            allow=networks(state().cfg.notifications.delivery.user_webhook_networks),
        )
    except prefs_mod.PrefsError as exc:
        key = f"np_err_{exc.reason}"
        return t(key, lang) if t(key, lang) != key else t("np_err_other", lang, field=exc.field)
    with state().pool.conn() as conn:
        prefs_mod.save(conn, user.name, p)
    return t("np_saved", lang)


@callback(
    Output("nprefs-test-msg", "children"),
    Input("nprefs-test", "n_clicks"),
    prevent_initial_call=True,
)
def send_test(_n: int | None) -> str:
    """A test message to the current user's own saved channels (never another user's)."""
    user = require("view")
    _, lang = who()
    st = state()
    with st.pool.conn() as conn:
        p, email = prefs_mod.load(conn, user.name)
        if not ((email and p.email_on) or p.webhook_url):
            return t("np_test_none", lang)
        channels = prefs_mod.send_test(conn, st.cfg, user.name)
    if not channels:
        return t("np_test_again", lang)
    names = {"email": "e-mail", "webhook": "webhook"}
    return t("np_test_sent", lang, channels=", ".join(names.get(c, c) for c in channels))


@callback(
    Output("nprefs-recent", "data"),
    Output("nprefs-recent-empty", "children"),
    Input("nprefs-interval", "n_intervals"),
    Input("nprefs-test-msg", "children"),
)
def recent_mine(_n: int | None, _msg: Any) -> tuple[list[dict[str, Any]], str]:
    """The newest messages to the current user (never another user's), every state."""
    user = require("view")
    _, lang = who()
    with state().pool.conn() as conn:
        rows = prefs_mod.recent(conn, user=user.name, limit=50)
    return recent_rows(rows, lang), "" if rows else t("n_recent_none", lang)
