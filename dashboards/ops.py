"""``/healthz`` (open JSON: is each part up; no data), ``/metrics`` (Prometheus), and the
answer to a request the database could not serve (503, :func:`database_unavailable`)."""

from __future__ import annotations

import hmac
import html
import json
import logging
import os
import time
from typing import Any

import flask
import psycopg2
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from dashboards.db import connection_lost
from dashboards.state import AppState, state

log = logging.getLogger("ioc.dashboard")

# a service that has not reported for this long is stale
STALE_AFTER_S = 120.0
# the states a service reports when all is well (the scheduler: leader or stand-by)
OK_STATES = {"ok", "running", "online", "connected", "up", "idle", "leader", "standby"}


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The server's own Prometheus registry (one per app, so tests can build several).

    Under ``ioc serve``'s worker processes the request counters live in files shared by the
    processes and ``/metrics`` sums them, whichever process answers the scrape: prometheus_client's
    documented multiprocess mode, which ``ioc serve`` turns on by setting
    ``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is first imported
    (:func:`dashboards.server.prepare_metrics_dir`)."""

    def __init__(self, st: AppState) -> None:
        self.registry = CollectorRegistry()
        own = self.registry
        shared_dir = os.environ.get(MULTIPROC_ENV)
        if shared_dir:
            own = CollectorRegistry()  # the live objects; the files are what is exposed
            MultiProcessCollector(self.registry, path=shared_dir)
        self.requests = Counter(
            "ioc_dashboard_requests_total",
            "HTTP requests by kind and status code",
            ["kind", "code"],
            registry=own,
        )
        self.latency = Histogram(
            "ioc_dashboard_request_seconds",
            "Request latency by kind",
            ["kind"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10),
            registry=own,
        )
        self.registry.register(_DbCollector(st))

    def observe(self, path: str, code: int, seconds: float) -> None:
        if path == "/_dash-update-component":
            kind = "callback"
        elif path.startswith(("/_dash-component-suites/", "/assets/")):
            kind = "static"
        elif path in ("/healthz", "/metrics"):
            kind = path.strip("/")
        else:
            kind = "page"
        self.requests.labels(kind, str(code)).inc()
        self.latency.labels(kind).observe(seconds)


class _DbCollector(Collector):
    """Gauges read from the database at scrape time (counts only, no ward data)."""

    def __init__(self, st: AppState) -> None:
        self.st = st

    def collect(self) -> Any:
        alerts = GaugeMetricFamily(
            "ioc_alerts_active", "Alerts not resolved", labels=["severity", "state"]
        )
        devices = GaugeMetricFamily("ioc_devices", "Devices by status", labels=["status"])
        cams = GaugeMetricFamily("ioc_cameras", "Cameras by status", labels=["status"])
        up = GaugeMetricFamily("ioc_dashboard_database_up", "Database reachable")
        notes = GaugeMetricFamily(
            "ioc_notifications", "Notifications waiting, being sent or dead", labels=["status"]
        )
        try:
            with self.st.pool.conn() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT severity, state, count(*) FROM alerts WHERE state <> 'resolved'"
                    " GROUP BY 1, 2"
                )
                for sev, st_, n in cur.fetchall():
                    alerts.add_metric([sev, st_], n)
                cur.execute("SELECT status, count(*) FROM devices GROUP BY 1")
                for s, n in cur.fetchall():
                    devices.add_metric([s], n)
                cur.execute("SELECT status, count(*) FROM cameras GROUP BY 1")
                for s, n in cur.fetchall():
                    cams.add_metric([s], n)
                cur.execute(  # the outbox (issue 13): partial indexes make this cheap
                    "SELECT status, count(*) FROM notifications"
                    " WHERE status IN ('pending', 'sending', 'dead', 'digest') GROUP BY 1"
                )
                for s, n in cur.fetchall():
                    notes.add_metric([s], n)
            up.add_metric([], 1)
        except Exception:
            up.add_metric([], 0)
        yield from (alerts, devices, cams, notes, up)


def _broker_seen(service: str, status: str, details: Any) -> str | None:
    """'ok' / 'down' as one service last saw the broker, or None when it does not use one.

    ``details.broker`` is the broker's (redacted) URL, not a state: what counts is
    ``details.broker_connected`` (the ingester's own flag) or, without it, the service's
    status."""
    d = details if isinstance(details, dict) else {}
    connected = d.get("broker_connected")
    if isinstance(connected, bool):
        return "ok" if connected else "down"
    if "mqtt" in str(service).lower() or "broker" in d:
        return "ok" if status in OK_STATES else "down"
    return None


def background_job_failures(conn: Any) -> list[dict[str, Any]] | None:
    """The failed TimescaleDB jobs, or None when the database is on the plain-PostgreSQL path
    (no background jobs there)."""
    from ioc.db import storage_mode, timescale

    if storage_mode(conn) != "timescaledb":
        return None
    return timescale.failed_jobs(conn)


def health_report(st: AppState) -> tuple[dict[str, Any], int]:
    """Status of the database, the broker (as the ingesters last saw it) and each service."""
    out: dict[str, Any] = {"status": "ok", "database": "ok", "broker": "unknown", "services": {}}
    try:
        with st.pool.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.execute(
                "SELECT service, status, details, extract(epoch FROM now() - updated_at)"
                " FROM service_status"
            )
            rows = cur.fetchall()
            try:
                jobs = background_job_failures(conn)
            except psycopg2.Error:  # e.g. a role that may not read the job views
                conn.rollback()
                jobs, out["jobs"] = None, "unknown"
    except Exception:
        out.update(status="down", database="down")
        return out, 503
    services: dict[str, str] = {}
    broker: str | None = None
    for service, status, details, age in rows:
        fresh = age is not None and float(age) <= STALE_AFTER_S
        s = str(status).lower()
        value = ("ok" if s in OK_STATES else s) if fresh else "stale"
        # best of the instances of a service
        if services.get(service) != "ok":
            services[service] = value
        seen = _broker_seen(service, s, details) if fresh else "unknown"
        if seen is not None and broker != "ok":
            broker = seen
    out["services"] = {k: services[k] for k in sorted(services)}
    out["ingest"] = {k: v for k, v in out["services"].items() if "ingest" in k} or "unknown"
    if broker is not None:
        out["broker"] = broker
    if jobs is not None:  # the TimescaleDB path: its policies run as background jobs
        out["jobs"] = {"failed": len(jobs), "failing": sorted({str(j["name"]) for j in jobs})}
    if any(v != "ok" for v in services.values()) or out["broker"] == "down" or jobs:
        out["status"] = "degraded"
    return out, 200


def healthz() -> flask.Response:
    body, code = health_report(state())
    resp = flask.Response(json.dumps(body), status=code, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def metrics() -> flask.Response:
    st = state()
    if st.metrics_token:
        auth = flask.request.headers.get("Authorization", "")
        # the header only: a ?token= would land in access logs and browser histories
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), st.metrics_token.encode()):
            return flask.Response("unauthorized\n", status=401, mimetype="text/plain")
    m: Metrics = flask.current_app.config["IOC_METRICS"]
    return flask.Response(generate_latest(m.registry), mimetype="text/plain; version=0.0.4")


def timing_after(resp: flask.Response) -> flask.Response:
    t0 = getattr(flask.g, "t0", None)
    m: Metrics | None = flask.current_app.config.get("IOC_METRICS")
    if t0 is not None and m is not None:
        m.observe(flask.request.path, resp.status_code, time.perf_counter() - t0)
    return resp


# seconds a client is asked to wait before trying again when the database is unavailable
RETRY_AFTER_S = 5

_UNAVAILABLE_VI = "Tạm thời không truy cập được cơ sở dữ liệu. Vui lòng thử lại sau ít giây."
_UNAVAILABLE_EN = "The database is briefly unavailable. Please try again in a few seconds."


def database_unavailable(exc: Exception) -> flask.Response:
    """Flask error handler (``register_error_handler``) of psycopg2.OperationalError and
    InterfaceError and :class:`dashboards.db.DatabaseUnavailable`: a request the database could
    not serve because its connection was lost or none could be had (:func:`connection_lost`)
    answers 503 with ``Retry-After`` — one line of JSON for the API and Dash's callbacks, a
    short page for a browser — and one WARNING line naming the route (no traceback). Nothing is
    done again here: the client decides whether to repeat (docs/dashboards.md). Any other
    OperationalError (a statement timeout: QueryCanceled) is raised again: Flask's own 500,
    with its traceback in the log, as for any fault of the code."""
    if not connection_lost(exc):
        raise exc
    req = flask.request
    rule = req.url_rule.rule if req.url_rule is not None else req.path
    if rule.startswith("/<path:"):  # Dash's catch-all of its pages: the page's path
        rule = req.path
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    log.warning("database unavailable: %s %s answered 503 (%s)", req.method, rule, reason)
    if req.path.startswith("/api/") or "text/html" not in req.headers.get("Accept", ""):
        body = json.dumps({"error": "database unavailable: try again later"})
        resp = flask.Response(body + "\n", status=503, mimetype="application/json")
    else:
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>503</title></head><body><p id='db-unavailable'>{html.escape(_UNAVAILABLE_VI)}"
            f"</p><p>{html.escape(_UNAVAILABLE_EN)}</p></body></html>"
        )
        resp = flask.Response(page, status=503, mimetype="text/html")
    resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    resp.headers["Cache-Control"] = "no-store"
    return resp
