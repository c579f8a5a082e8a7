"""``ioc serve``: the dashboard behind a production WSGI server.

On Linux (and any system with ``fork``) it is gunicorn: ``--workers`` processes, pre-forked
from a master that loaded the app once, each answering with ``--threads`` threads (gthread
workers), so callbacks use every core instead of one GIL. Elsewhere it is waitress, one
process with ``--threads`` threads.

Nothing a user sees depends on which process answers: the session key is the same in every
process (IOC_SECRET_KEY or ``var/dashboard_secret_key``, read before the fork), and the short
TTL cache of heavy queries is :class:`dashboards.db.SharedTTLCache` under ``var/`` — one entry
per query for all processes, computed once by whichever process misses first. With
``IOC_REDIS_URL`` it is :class:`dashboards.db.RedisTTLCache` instead, shared by every host.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from dashboards.db import RedisTTLCache, SharedTTLCache
from ioc.context import Context
from ioc.errors import IOCError, UsageError

log = logging.getLogger("ioc.serve")

CACHE_DIR = "dashboard-cache"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when imported
METRICS_DIR = "dashboard-metrics"


def port_free(host: str, port: int) -> None:
    """One line and a non-zero exit when another program listens on ``host:port`` (instead of a
    success line followed by the server's own bind errors)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            s.bind((host, port))
        except OSError as exc:
            raise IOCError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                " (another program uses that port? choose another with --port)"
            ) from None


def default_workers() -> int:
    """One process per core, at most 4 (PostgreSQL does the heavy lifting)."""
    return max(1, min(4, os.cpu_count() or 1))


def prepare_metrics_dir(path: os.PathLike[str] | str) -> bool:
    """prometheus_client's documented multiprocess recipe: ``PROMETHEUS_MULTIPROC_DIR`` names
    an emptied folder (counters start again at 0 with the server, as Prometheus expects) before
    prometheus_client is first imported, and is inherited by the forked workers, whose values
    then live in files that ``/metrics`` sums. False (and each process counts alone) when
    prometheus_client was imported already: its mode is fixed at import."""
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_ENV):
        log.warning("prometheus_client already imported: each worker reports its own counts")
        return False
    d = os.fspath(path)
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    for name in os.listdir(d):
        if name.endswith(".db"):
            os.unlink(os.path.join(d, name))
    os.environ[MULTIPROC_ENV] = d
    return True


def main(args: argparse.Namespace, ctx: Context) -> int:
    workers = getattr(args, "workers", None)
    workers = default_workers() if workers is None else int(workers)
    threads = getattr(args, "threads", None)
    threads = 4 if threads is None else int(threads)
    if not 1 <= workers <= 32:
        raise UsageError(f"--workers must be 1-32 (got {workers})")
    if not 1 <= threads <= 64:
        raise UsageError(f"--threads must be 1-64 (got {threads})")
    cfg = ctx.config()
    url = ctx.database_url()
    forking = hasattr(os, "fork")
    if forking:  # request metrics summed over the worker processes
        prepare_metrics_dir(Path(ctx.settings.var_dir) / METRICS_DIR)
    from dashboards.app import create_app

    # a connection for every thread (and one spare): a thread never finds the pool exhausted
    app = create_app(cfg, url, ctx.settings, max_connections=max(8, threads + 1))
    state = app.server.config["IOC_STATE"]
    if not isinstance(state.cache, RedisTTLCache):  # no IOC_REDIS_URL: this host's processes
        state.cache = SharedTTLCache(
            Path(ctx.settings.var_dir) / CACHE_DIR, ttl=state.cache.ttl, max_entries=1024
        )
    with state.pool.conn():  # fail fast, one line, when the database is unreachable
        pass
    port_free(args.host, args.port)  # before saying where the dashboard is
    # Dash registers the pages' callbacks on its first request, and a second request arriving
    # meanwhile finds none (HTTP 500); answer one request here, before the workers exist
    app.server.test_client().get("/healthz")
    # no connection may cross the fork: each worker opens its own pool on first use
    state.pool.close()
    print(
        f"IOC dashboard on http://{args.host}:{args.port}/ "
        f"({workers if forking else 1} worker processes × {threads} threads)",
        flush=True,
    )
    try:
        if forking:
            _gunicorn(app.server, args.host, args.port, workers, threads)
        else:  # pragma: no cover - Windows
            _waitress(app.server, args.host, args.port, threads)
    finally:
        state.pool.close()
    return 0


def _gunicorn(wsgi: Any, host: str, port: int, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    options: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "preload_app": True,  # imports and config once, shared copy-on-write
        "timeout": 60,  # a worker stuck this long is replaced
        "graceful_timeout": 5,
        "keepalive": 5,
        "worker_connections": 200,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "ioc-serve",
        "forwarded_allow_ips": "127.0.0.1",
        "control_socket_disable": True,
        # the multiprocess recipe's clean-up of a dead worker's live-gauge files
        "child_exit": _mark_dead,
        # the line waitress prints once it listens (ioc demo's output, tests wait for it)
        "when_ready": lambda _arbiter: print(f"Serving on http://{options['bind']}", flush=True),
    }

    class Server(BaseApplication):  # type: ignore[misc,unused-ignore]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return wsgi

    Server().run()


def _mark_dead(_arbiter: Any, worker: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _waitress(wsgi: Any, host: str, port: int, threads: int) -> None:  # pragma: no cover
    import waitress

    waitress.serve(
        wsgi,
        host=host,
        port=port,
        threads=threads,
        ident="ioc",
        channel_timeout=60,
        connection_limit=200,
        clear_untrusted_proxy_headers=True,
    )
