"""``/export``: analysts pick KPIs, wards, period and granularity and download CSV or XLSX
(written by ioc.reports.export, the same code as ``ioc export``); scheduled reports listed
from the ``reports`` table and downloaded through /export/report/<id>.

An export is a job (``export_jobs``): the click records it and an export worker (a thread of
``ioc scheduler``, on any host) writes the file into the database; the page polls the job's row
(any process of any host may answer) and shows a progress bar, then downloads the file from
/export/job/<id> (only its owner or an admin)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashboards import queries
from dashboards.components.common import require, who
from dashboards.components.layout import frame, refused, table
from dashboards.components.tables import card, controls, dropdown, labelled, ward_dropdown
from dashboards.i18n import TZ, fmt_datetime, fmt_num, t
from dashboards.state import state
from ioc.auth import User
from ioc.errors import IOCError
from ioc.reports.export import (
    JOB_MAX_ACTIVE_PER_USER,
    Job,
    TooManyJobs,
    create_job,
    get_job,
    make_request,
    sweep_jobs,
)

dash.register_page(__name__, path="/export", title="IOC — Xuất báo cáo", order=4)

EVERY = ("hour", "day", "week", "month")
POLL_MS = 600
BAR_STYLE = {"width": "100%", "height": "18px", "display": "block"}


def layout(**_: Any) -> html.Div:
    user, lang = who()
    if not user.can("export"):
        return refused(lang)
    st = state()
    with st.pool.conn() as conn:
        sweep_jobs(conn)
    today = dt.datetime.now(TZ).date()
    kpi_opts = [
        {"label": k.label_en if lang == "en" else k.label_vi, "value": name}
        for name, k in st.kpis.items()
    ]
    return frame(
        user,
        "/export",
        lang,
        [
            html.H1(t("export", lang)),
            card(
                controls(
                    dropdown(
                        t("kpis", lang),
                        "export-kpis",
                        kpi_opts,
                        width="360px",
                        multi=True,
                        value=[o["value"] for o in kpi_opts[:1]],
                    ),
                    ward_dropdown(user, lang, "export-wards"),
                    labelled(
                        f"{t('from', lang)} – {t('to', lang)}",
                        dcc.DatePickerRange(
                            id="export-range",
                            start_date=(today - dt.timedelta(days=30)).isoformat(),
                            end_date=today.isoformat(),
                            display_format="DD/MM/YYYY" if lang == "vi" else "YYYY-MM-DD",
                            first_day_of_week=1,
                        ),
                    ),
                    labelled(
                        t("granularity", lang),
                        dcc.RadioItems(
                            id="export-every",
                            options=[{"label": t(e, lang), "value": e} for e in EVERY],
                            value="day",
                            inline=True,
                        ),
                    ),
                    labelled(
                        t("format", lang),
                        dcc.RadioItems(
                            id="export-format",
                            options=[
                                {"label": "XLSX", "value": "xlsx"},
                                {"label": "CSV", "value": "csv"},
                            ],
                            value="xlsx",
                            inline=True,
                        ),
                    ),
                    html.Button(t("download", lang), id="export-go", className="btn", n_clicks=0),
                ),
                # the job's progress (rows written of the total) while it runs, polled from
                # its export_jobs row by whichever server process answers
                html.Div(id="export-progress"),
                html.Div(id="export-msg", className="msg"),
                html.Div(id="export-result"),
                dcc.Store(id="export-job"),
                dcc.Store(id="export-ready"),
                html.Div(id="export-autodl", style={"display": "none"}),
                dcc.Interval(id="export-poll", interval=POLL_MS, disabled=True),
            ),
            card(
                html.Div(_recent(user.name, lang), id="export-recent-box"),
                title=t("export_recent", lang),
            ),
            card(_reports(lang), title=t("reports", lang)),
        ],
    )


def _reports(lang: str) -> Any:
    with state().pool.conn() as conn:
        files = queries.reports(conn)
    if not files:
        return html.Div(t("no_rows", lang), className="muted", id="export-no-reports")
    rows = [
        {
            "name": f"[{r.name}](/export/report/{r.id})",
            "schedule": t(f"schedule_{r.schedule}", lang) if r.schedule else "",
            "format": r.format.upper(),
            "period": f"{fmt_datetime(r.period_from, lang)} – {fmt_datetime(r.period_to, lang)}",
            "created": fmt_datetime(r.created_at, lang),
        }
        for r in files
    ]
    cols = [
        {"name": t("name", lang), "id": "name", "presentation": "markdown"},
        {"name": t("period", lang), "id": "period"},
        {"name": "Lịch" if lang == "vi" else "Schedule", "id": "schedule"},
        {"name": t("format", lang), "id": "format"},
        {"name": t("created", lang), "id": "created"},
    ]
    return table("export-reports", rows, cols, page_size=15)


def _recent(user_name: str, lang: str) -> Any:
    """This user's exports of the last day that can still be downloaded."""
    with state().pool.conn() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, file_name, rows_done, finished_at FROM export_jobs"
            " WHERE user_name = %s AND status = 'done' ORDER BY id DESC LIMIT 10",
            (user_name,),
        )
        rows = cur.fetchall()
    if not rows:
        return html.Div(t("no_rows", lang), className="muted", id="export-recent")
    return html.Ul(
        id="export-recent",
        children=[
            html.Li(
                [
                    html.A(name, href=job_url(int(i)), download=name),
                    f" — {fmt_num(n, 0, lang)} {t('export_rows', lang)},"
                    f" {fmt_datetime(done_at, lang)}",
                ]
            )
            for i, name, n, done_at in rows
        ],
    )


def job_url(job_id: int) -> str:
    return f"/export/job/{job_id}"


def _day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _bar(job: Job | None, lang: str) -> html.Div:
    """A real progress bar: rows written of the total, and the percentage."""
    if job is None or job.rows_total is None:
        return html.Div(
            [html.Progress(id="export-bar", style=BAR_STYLE), html.Span(t("preparing", lang))],
            className="export-progress",
        )
    pct = job.percent or 0.0
    text = (
        f"{fmt_num(pct, 0, lang)} % — {fmt_num(job.rows_done, 0, lang)} / "
        f"{fmt_num(job.rows_total, 0, lang)} {t('export_rows', lang)}"
    )
    return html.Div(
        [
            html.Progress(
                id="export-bar",
                value=str(job.rows_done),
                max=str(max(job.rows_total, 1)),
                style=BAR_STYLE,
            ),
            html.Span(text, id="export-progress-text"),
        ],
        className="export-progress",
    )


@callback(
    Output("export-job", "data"),
    Output("export-poll", "disabled"),
    Output("export-progress", "children"),
    Output("export-msg", "children"),
    Output("export-result", "children"),
    Output("export-ready", "data"),
    Output("export-go", "disabled"),
    Input("export-go", "n_clicks"),
    Input("export-poll", "n_intervals"),
    State("export-kpis", "value"),
    State("export-wards", "value"),
    State("export-range", "start_date"),
    State("export-range", "end_date"),
    State("export-every", "value"),
    State("export-format", "value"),
    State("export-job", "data"),
    prevent_initial_call=True,
)
def export_job(
    n: int | None,
    _ticks: int | None,
    kpis: list[str] | None,
    wards: list[str] | None,
    start: str | None,
    end: str | None,
    every: str | None,
    fmt: str | None,
    job_id: int | None,
) -> tuple[Any, ...]:
    """Export clicked: validate (ioc.reports.export.make_request), record the job (an export
    worker runs it) and start polling. A poll: show the job's progress from its row; when it
    is done, offer (and start) the download; when it failed, its one-line error."""
    user = require("export")
    _, lang = who()
    if ctx.triggered_id == "export-go":
        if not n:
            raise PreventUpdate
        return _start(user, lang, kpis, wards, start, end, every, fmt)
    if not isinstance(job_id, int):
        return _out(dash.no_update, True, dash.no_update, dash.no_update, dash.no_update, None)
    with state().pool.conn() as conn:
        job = get_job(conn, job_id)
    if job is None or (job.user_name != user.name and not user.can("admin")):
        raise PreventUpdate
    if job.status in ("queued", "running"):
        return _out(dash.no_update, False, _bar(job, lang), t("export_running", lang), [], None)
    if job.status == "done":
        url = job_url(job.id)
        link = html.A(
            f"{t('download', lang)} {job.file_name}",
            href=url,
            download=job.file_name,
            id="export-link",
            className="btn",
        )
        msg = f"{job.file_name}: {fmt_num(job.rows_done, 0, lang)} {t('export_rows', lang)}"
        return _out(None, True, _bar(job, lang), msg, link, url)
    error = f"{t('export_failed', lang)}: {job.error or job.status}"
    return _out(None, True, [], html.Span(error, id="export-error"), [], None)


def _out(*values: Any) -> tuple[Any, ...]:
    """The callback's outputs; the button is disabled while the poll runs (a job under way)."""
    return (*values, values[1] is False)


def _start(
    user: User,
    lang: str,
    kpis: list[str] | None,
    wards: list[str] | None,
    start: str | None,
    end: str | None,
    every: str | None,
    fmt: str | None,
) -> tuple[Any, ...]:
    st = state()
    d0, d1 = _day(start), _day(end)
    if not kpis or d0 is None or d1 is None:
        return _out(None, True, [], t("export_bad", lang), [], None)
    if wards:
        if any(not user.may_see_ward(w) for w in wards):
            raise PreventUpdate
        chosen: list[str] | None = list(wards)
    else:
        allowed = user.allowed_wards()
        chosen = None if allowed is None else sorted(allowed)
    try:
        req = make_request(
            st.cfg,
            kpis=kpis,
            wards=chosen,
            start=dt.datetime.combine(d0, dt.time(0), TZ),
            end=dt.datetime.combine(d1, dt.time(23, 59, 59), TZ),
            every=every or "",
            fmt=fmt or "",
            lang=lang,
        )
        name = f"ioc_kpis_{d0.isoformat()}_{d1.isoformat()}_{req.every}.{req.fmt}"
        with st.pool.conn() as conn:
            sweep_jobs(conn)
            job_id = create_job(conn, req, user=user.name, file_name=name)
    except TooManyJobs:
        return _out(None, True, [], t("export_busy", lang, n=JOB_MAX_ACTIVE_PER_USER), [], None)
    except IOCError as exc:
        return _out(None, True, [], str(exc).removeprefix("export: "), [], None)
    return _out(job_id, False, _bar(None, lang), t("export_running", lang), [], None)


@callback(
    Output("export-recent-box", "children"),
    Input("export-ready", "data"),
    prevent_initial_call=True,
)
def recent_after_export(url: str | None) -> Any:
    """A finished export joins the list of recent exports at once (not on the next visit)."""
    if not url:
        raise PreventUpdate
    user = require("export")
    _, lang = who()
    return _recent(user.name, lang)


# the finished file downloads by itself (the link stays for another copy)
clientside_callback(
    """
    function (url) {
        if (!url) { return window.dash_clientside.no_update; }
        const a = document.createElement("a");
        a.href = url;
        a.download = "";
        document.body.appendChild(a);
        a.click();
        a.remove();
        return url;
    }
    """,
    Output("export-autodl", "title"),
    Input("export-ready", "data"),
    prevent_initial_call=True,
)
