"""``/system`` (admins): each service as ``/healthz`` sees it and, on TimescaleDB, the
background jobs (columnstore, retention, aggregate refresh) whose last run failed."""

from __future__ import annotations

from typing import Any

import dash
from dash import html

from dashboards.components.common import who
from dashboards.components.layout import frame, refused, table
from dashboards.i18n import fmt_datetime, fmt_num, t
from dashboards.ops import background_job_failures, health_report
from dashboards.state import state

dash.register_page(__name__, path="/system", title="IOC — Hệ thống", order=8)


STATUS_WORDS = ("ok", "stale", "degraded", "down", "unknown", "stopped", "backlog")


def status_word(value: Any, lang: str) -> str:
    """A state of /healthz in the page's language (an unknown one as it is)."""
    v = str(value)
    return t(f"health_{v}", lang) if v in STATUS_WORDS else v


def degraded_because(health: dict[str, Any], lang: str) -> list[str]:
    """Why /healthz is not ok, one line a cause: a service not ok, the broker down, failed
    background jobs."""
    out = [
        t("why_service", lang, name=name, state=status_word(value, lang))
        for name, value in health.get("services", {}).items()
        if value != "ok"
    ]
    if health.get("broker") == "down":
        out.append(t("why_broker", lang))
    jobs = health.get("jobs")
    if isinstance(jobs, dict) and jobs.get("failed"):
        out.append(t("why_jobs", lang, n=jobs["failed"]))
    return out


def layout(**_: Any) -> html.Div:
    user, lang = who()
    if not user.can("admin"):
        return refused(lang)
    st = state()
    health, _code = health_report(st)
    with st.pool.conn() as conn:
        try:
            jobs = background_job_failures(conn)
            unreadable = False
        except Exception:  # the job views refused us: say so rather than fail the page
            conn.rollback()
            jobs, unreadable = [], True
    services = [
        {"service": name, "status": status_word(value, lang)}
        for name, value in health.get("services", {}).items()
    ]
    why = degraded_because(health, lang)
    body: list[Any] = [
        html.H1(t("system", lang)),
        html.P(
            [
                html.B(f"{t('overall', lang)}: "),
                html.Span(status_word(health["status"], lang), id="system-status"),
                f" · {t('database', lang)}: {status_word(health['database'], lang)}",
                f" · {t('broker', lang)}: ",
                html.Span(status_word(health["broker"], lang), id="system-broker"),
            ]
        ),
        html.Ul([html.Li(w) for w in why], id="system-why", className="refused") if why else None,
        html.H2(t("services", lang)),
        table(
            "system-services",
            services,
            [
                {"name": t("service", lang), "id": "service"},
                {"name": t("status", lang), "id": "status"},
            ],
        ),
        html.H2(t("background_jobs", lang)),
    ]
    if jobs is None:
        body.append(html.P(t("jobs_plain_pg", lang), id="system-jobs"))
    elif unreadable:
        body.append(html.P(t("jobs_unreadable", lang), id="system-jobs", className="refused"))
    elif not jobs:
        body.append(html.P(t("jobs_all_ok", lang), id="system-jobs"))
    else:
        body.append(
            html.P(
                t("jobs_failed", lang, n=len(jobs)),
                id="system-jobs",
                className="refused",
            )
        )
        body.append(
            table(
                "system-jobs-table",
                [
                    {
                        "job": j["name"],
                        "table": j["hypertable"] or "",
                        "last_run": fmt_datetime(j["last_run_started_at"], lang),
                        "failures": f"{fmt_num(j['total_failures'], 0, lang)}"
                        f" / {fmt_num(j['total_runs'], 0, lang)}",
                        "error": j["error"] or "",
                    }
                    for j in jobs
                ],
                [
                    {"name": t("job", lang), "id": "job"},
                    {"name": t("table_name", lang), "id": "table"},
                    {"name": t("last_run", lang), "id": "last_run"},
                    {"name": t("failures", lang), "id": "failures"},
                    {"name": t("error", lang), "id": "error"},
                ],
            )
        )
    return frame(user, "/system", lang, body)
