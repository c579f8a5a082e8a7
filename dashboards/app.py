"""The Dash application: pages, the guard, sign-in, health and metrics routes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import dash
import flask
import psycopg2
from dash import html

from dashboards import admin, devices, ops, security
from dashboards.db import DatabaseUnavailable, Pool, RedisTTLCache
from dashboards.state import AppState, state
from ioc.config import Config
from ioc.errors import IOCError
from ioc.settings import Settings, redact_db_url

HERE = Path(__file__).resolve().parent


def secret_key(settings: Settings) -> str:
    """IOC_SECRET_KEY, or a key generated once under var/ (shared by every process there).

    The file appears complete or not at all (written to a temporary file, then hard-linked
    into place: of two servers starting at once, the second reads the first one's key), and a
    short or empty key file is refused rather than used to sign sessions."""
    if settings.secret_key:
        return settings.secret_key.get_secret_value()
    path = Path(settings.var_dir) / "dashboard_secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_urlsafe(48))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise IOCError(
            f"{path}: the session key file is too short ({len(key)} characters);"
            " delete it to have a new one generated, or set IOC_SECRET_KEY"
        )
    return key


def cache_prefix(database_url: str) -> str:
    """Redis key prefix of the query cache: one per database, so deployments (or test
    databases) sharing one Redis never read each other's results."""
    digest = hashlib.sha256(redact_db_url(database_url).encode()).hexdigest()[:12]
    return f"ioc:dash:{digest}:"


def report_download(report_id: int) -> flask.Response:
    """A scheduled report file listed in ``reports`` (analysts and admins; checked by guard)."""
    from dashboards import queries

    user = getattr(flask.g, "user", None)
    if user is None or not user.can("export"):
        flask.abort(403)
    if not 0 < report_id < 2**63:
        flask.abort(404)
    st = state()
    with st.pool.conn() as conn:
        row = queries.report(conn, report_id=report_id)
    if row is None:
        flask.abort(404)
    path = Path(row.path)
    if not path.is_file():
        flask.abort(404)
    return flask.send_file(path.resolve(), as_attachment=True, download_name=path.name)


def job_download(job_id: int) -> flask.Response:
    """An /export job's file, streamed from the database (any host serves it): only to the
    user who started it, or an admin."""
    from ioc.reports.export import get_job, job_chunk

    user = getattr(flask.g, "user", None)
    if user is None or not user.can("export"):
        flask.abort(403)
    if not 0 < job_id < 2**63:  # beyond bigint: no such job (PostgreSQL would refuse it)
        flask.abort(404)
    pool = state().pool
    with pool.conn() as conn:
        job = get_job(conn, job_id)
    if job is None:
        flask.abort(404)
    if job.user_name != user.name and not user.can("admin"):
        flask.abort(403)
    if job.status == "expired":
        flask.abort(410)
    if job.status != "done":
        flask.abort(404)

    def body() -> Iterator[bytes]:  # a pooled connection per 1 MiB chunk, not per download
        for seq in range(1 << 31):
            with pool.conn() as conn:
                data = job_chunk(conn, job_id, seq)
            if data is None:
                return
            yield data

    resp = flask.Response(body(), mimetype=job.content_type)
    resp.headers["Content-Disposition"] = content_disposition(job.file_name)
    if job.size_bytes is not None:
        resp.headers["Content-Length"] = str(job.size_bytes)
    return resp


def content_disposition(name: str) -> str:
    """``attachment`` with the file name, ASCII and RFC 5987 forms (as flask.send_file)."""
    from urllib.parse import quote

    ascii_name = name.encode("ascii", "ignore").decode("ascii").replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


class IOCDash(dash.Dash):
    """Dash with the page's ``<html lang>`` set to the user's language, through the override
    of :meth:`dash.Dash.interpolate_index` that Dash documents for a custom index page."""

    def interpolate_index(
        self,
        metas: Any = "",
        title: Any = "",
        css: Any = "",
        config: Any = "",
        scripts: Any = "",
        app_entry: Any = "",
        favicon: Any = "",
        renderer: Any = "",
    ) -> Any:
        from dashboards.i18n import lang

        index = super().interpolate_index(
            metas=metas,
            title=title,
            css=css,
            config=config,
            scripts=scripts,
            app_entry=app_entry,
            favicon=favicon,
            renderer=renderer,
        )
        return str(index).replace("{%lang%}", lang())


def create_app(
    cfg: Config, database_url: str, settings: Settings | None = None, *, max_connections: int = 8
) -> dash.Dash:
    """The dashboard; ``max_connections``: this process's PostgreSQL pool (``ioc serve`` makes
    it at least its threads + 1, so no thread finds the pool exhausted)."""
    settings = settings or Settings()
    st = AppState(
        cfg=cfg,
        pool=Pool(database_url, maxconn=max_connections),
        secret_key=secret_key(settings),
        kiosk_token=settings.secret("kiosk_token"),
        metrics_token=settings.secret("metrics_token"),
    )
    if settings.dash_cache_ttl is not None:
        st.cache.ttl = settings.dash_cache_ttl
    if settings.wall_period_s is not None:
        st.wall_period_s = settings.wall_period_s
    redis_url = settings.secret("redis_url")
    if redis_url:  # several hosts: one cache in Redis (clears seen by all)
        st.cache = RedisTTLCache(redis_url, ttl=st.cache.ttl, prefix=cache_prefix(database_url))
    server = flask.Flask("ioc-dashboard")
    server.config["IOC_STATE"] = st
    server.config["IOC_METRICS"] = ops.Metrics(st)
    server.config["IOC_VAR_DIR"] = str(settings.var_dir)  # this host's own files
    server.config["IOC_SETTINGS"] = settings  # sessions, proxies, public URL (security.py)
    server.secret_key = st.secret_key
    # The guard must run before Dash's own before_request hooks (its first-request set-up and
    # the pages router, registered when Dash is built on this server): Flask runs them in the
    # order they were registered, so it is registered first.
    server.before_request(security.guard)
    server.before_request(devices.guard)  # /devices/{id}: the device's ward (after sign-in)
    app = IOCDash(
        "ioc-dashboard",
        server=cast(Any, server),
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        serve_locally=True,
        suppress_callback_exceptions=True,
        title="IOC Đà Nẵng",
        update_title=cast(Any, None),
        compress=False,
    )
    app.layout = html.Div([dash.page_container], id="app-root")
    server.config["IOC_DASH"] = app  # the guard checks callback requests against its map
    app.index_string = app.index_string.replace("<html>", '<html lang="{%lang%}">')
    server.after_request(security.after)
    server.after_request(ops.timing_after)
    # the database lost or unreachable mid-request: 503 with Retry-After, never a 500
    for lost in (psycopg2.OperationalError, psycopg2.InterfaceError, DatabaseUnavailable):
        server.register_error_handler(lost, ops.database_unavailable)
    server.add_url_rule("/login", "login", security.login, methods=["GET", "POST"])
    server.add_url_rule("/logout", "logout", security.logout, methods=["GET", "POST"])
    server.add_url_rule("/healthz", "healthz", ops.healthz)
    server.add_url_rule("/metrics", "metrics", ops.metrics)
    server.add_url_rule("/export/report/<int:report_id>", "report", report_download)
    server.add_url_rule("/export/job/<int:job_id>", "export_job", job_download)
    admin.register(server)
    from dashboards import intake  # citizen reports: intake API and public tracking

    server.add_url_rule("/api/v1/reports", "api_reports", intake.post_reports, methods=["POST"])
    server.add_url_rule("/api/v1/track/<path:report_id>", "api_track", intake.get_track)
    server.add_url_rule("/track", "track", intake.track_page)
    from dashboards import incidents_api  # incidents: the field staff's API

    server.add_url_rule("/api/v1/incidents", "api_incidents", incidents_api.list_incidents)
    server.add_url_rule(
        "/api/v1/incidents", "api_incident_create", incidents_api.create_incident, methods=["POST"]
    )
    server.add_url_rule(
        "/api/v1/incidents/<int:incident_id>/actions",
        "api_incident_action",
        incidents_api.post_action,
        methods=["POST"],
    )
    from dashboards.notify_ack import ack as notify_ack
    from dashboards.notify_ack import report_file as notify_file

    server.add_url_rule("/notify/ack/<token>", "notify_ack", notify_ack, methods=["GET", "POST"])
    server.add_url_rule("/notify/file/<token>", "notify_file", notify_file)
    return app
