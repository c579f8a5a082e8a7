"""``ioc serve``: the dashboard behind waitress (a production WSGI server, several threads)."""

from __future__ import annotations

import argparse
import logging

from ioc.context import Context
from ioc.errors import UsageError

log = logging.getLogger("ioc.serve")


def main(args: argparse.Namespace, ctx: Context) -> int:
    import waitress

    from dashboards.app import create_app

    threads = int(getattr(args, "workers", 4) or 4)
    if not 1 <= threads <= 64:
        raise UsageError(f"--workers must be 1-64 (got {threads})")
    cfg = ctx.config()
    url = ctx.database_url()
    app = create_app(cfg, url, ctx.settings)
    state = app.server.config["IOC_STATE"]
    with state.pool.conn():  # fail fast, one line, when the database is unreachable
        pass
    print(
        f"IOC dashboard on http://{args.host}:{args.port}/ ({threads} worker threads)", flush=True
    )
    try:
        waitress.serve(
            app.server,
            host=args.host,
            port=args.port,
            threads=threads,
            ident="ioc",
            channel_timeout=60,
            connection_limit=200,
            clear_untrusted_proxy_headers=True,
        )
    finally:
        state.pool.close()
    return 0
