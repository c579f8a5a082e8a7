"""The ``ioc`` command: the one place that knows every package, to start them.

Each sub-command names a ``module:function`` taking ``(args, ctx)`` and returning an exit code.
Modules are imported only when their command runs. Errors are one line on stderr, exit != 0;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ioc.config import ConfigError
from ioc.context import Context
from ioc.errors import IOCError, NotAvailableYet, UsageError
from ioc.localtime import LOCAL_TZ
from ioc.settings import get_settings

log = logging.getLogger("ioc")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _datetime(text: str) -> dt.datetime:
    """YYYY-MM-DD (local midnight, Asia/Ho_Chi_Minh) or ISO-8601 with or without offset."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date {text!r} (expected YYYY-MM-DD or an ISO-8601 date-time)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0 (got {text})")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535 (got {text})")
    return value


def _cmd(parser: argparse.ArgumentParser, target: str) -> None:
    parser.set_defaults(target=target)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ioc", description="IOC: Intelligent Operations Center for Da Nang")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument(
        "--config-dir", help="configuration folder (default: $IOC_CONFIG_DIR or ./config)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("demo", help="the whole system on one machine, no set-up")
    d.add_argument("--port", type=_port, default=8050, help="dashboard port (default 8050)")
    d.add_argument("--host", default="127.0.0.1", help="dashboard host (default 127.0.0.1)")
    d.add_argument("--rate", type=_positive_float, default=1.0, help="simulator rate multiplier")
    d.add_argument("--seed", type=int, default=1, help="simulator seed")
    d.add_argument("--backfill", type=int, default=7, help="days of history to simulate first")
    _cmd(d, "ioc.demo:main")

    db = sub.add_parser("db", help="database schema")
    dbs = db.add_subparsers(
        dest="db_command", metavar="ACTION", parser_class=_Parser, required=True
    )
    _cmd(
        dbs.add_parser("init", help="create or upgrade the schema (idempotent)"), "ioc.cli:db_init"
    )

    ing = sub.add_parser("ingest", help="ingesters")
    ings = ing.add_subparsers(
        dest="ingest_command", metavar="SOURCE", parser_class=_Parser, required=True
    )
    m = ings.add_parser("mqtt", help="the MQTT ingester (runs until stopped)")
    m.add_argument("--shared", metavar="GROUP", help="subscribe via $share/GROUP/... to split load")
    m.add_argument("--client-id", help="MQTT client id (default from ioc.yaml + --shared group)")
    m.add_argument("--metrics-port", type=_port, help="serve Prometheus metrics on this port")
    _cmd(m, "ingest.mqtt:main")
    c = ings.add_parser("cameras", help="the camera ingester for config/cameras.yaml")
    c.add_argument("--camera", action="append", metavar="ID", help="only these cameras")
    c.add_argument("--workers", choices=["threads", "processes"], default="threads")
    c.add_argument(
        "--shared",
        action="store_true",
        help="split the cameras with the other --shared ingesters (leases in PostgreSQL)",
    )
    _cmd(c, "ingest.cameras.service:main")

    s = sub.add_parser("simulate", help="publish simulated readings and application events")
    s.add_argument("--rate", type=_positive_float, default=1.0, help="rate multiplier (1 = real)")
    s.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    s.add_argument("--seed", type=int, default=1, help="random seed (same seed, same stream)")
    s.add_argument("--wards", nargs="+", metavar="CODE", help="only these wards")
    s.add_argument("--speedup", type=_positive_float, default=1.0, help="simulated s per real s")
    s.add_argument("--backfill", type=int, metavar="DAYS", help="write DAYS of history fast")
    s.add_argument("--no-faults", action="store_true", help="no injected faults")
    s.add_argument(
        "--scale",
        type=_positive_float,
        default=1.0,
        help="a city K times Da Nang (K x devices and applications; load tests)",
    )
    s.add_argument(
        "--cameras",
        type=int,
        metavar="N",
        help="N cameras' metadata written to PostgreSQL (default 100 x --scale when scaled)",
    )
    _cmd(s, "sensors.simulate:main")

    sv = sub.add_parser("serve", help="the dashboard web server")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=_port, default=8050)
    sv.add_argument(
        "--workers", type=int, help="worker processes (default: one per core, at most 4)"
    )
    sv.add_argument("--threads", type=int, default=4, help="threads per worker process")
    _cmd(sv, "dashboards.server:main")

    _cmd(
        sub.add_parser("scheduler", help="scheduled jobs (roll-ups, KPIs, alerts, reports)"),
        "ioc.scheduler:main",
    )

    e = sub.add_parser("export", help="write a KPI or readings report")
    e.add_argument("--kpi", nargs="+", metavar="NAME", help="KPIs to export")
    e.add_argument("--metric", nargs="+", metavar="NAME", help="sensor metrics to export")
    e.add_argument("--ward", nargs="+", metavar="CODE", help="wards (default all)")
    e.add_argument("--from", dest="start", type=_datetime, required=True, help="start date")
    e.add_argument("--to", dest="end", type=_datetime, required=True, help="end date")
    e.add_argument("--every", choices=["hour", "day", "week", "month"], default="day")
    e.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    e.add_argument("--out", required=True, metavar="FILE", help="output file")
    e.add_argument("--lang", choices=["vi", "en"], default="vi", help="column titles")
    _cmd(e, "ioc.reports.export:main")

    im = sub.add_parser("import", help="import records")
    ims = im.add_subparsers(
        dest="import_command", metavar="KIND", parser_class=_Parser, required=True
    )
    ia = ims.add_parser("applications", help="application records from CSV or XLSX")
    ia.add_argument("file", metavar="FILE")
    _cmd(ia, "ioc.applications:import_main")
    ir = ims.add_parser("reports", help="citizen reports from CSV or XLSX")
    ir.add_argument("file", metavar="FILE")
    _cmd(ir, "ioc.citizen.importer:import_main")

    mp = sub.add_parser("map", help="ward boundaries")
    mps = mp.add_subparsers(
        dest="map_command", metavar="ACTION", parser_class=_Parser, required=True
    )
    mi = mps.add_parser("import", help="real ward boundaries from GeoJSON or a shapefile")
    mi.add_argument("file", metavar="FILE", help=".geojson/.json or .shp (with its .dbf)")
    mi.add_argument("--out", help="where to write (default: wards.geojson in the config folder)")
    mi.add_argument(
        "--tolerance", type=float, default=15.0, help="area difference reported, %% (default 15)"
    )
    mi.add_argument("--partial", action="store_true", help="write even if units are missing")
    mi.add_argument("--strict", action="store_true", help="exit 1 on an area mismatch")
    _cmd(mi, "ioc.mapimport:main")

    u = sub.add_parser("users", help="user accounts")
    us = u.add_subparsers(
        dest="users_command", metavar="ACTION", parser_class=_Parser, required=True
    )
    ua = us.add_parser("add", help="create a user (password read from standard input)")
    ua.add_argument("name")
    ua.add_argument(
        "--role", required=True, choices=["admin", "operator", "ward_leader", "analyst", "kiosk"]
    )
    ua.add_argument("--ward", nargs="+", metavar="CODE", default=[], help="wards granted")
    ua.add_argument("--email", metavar="ADDR", default=None, help="for notifications")
    ua.add_argument(
        "--unit",
        action="extend",
        nargs="+",
        metavar="UNIT",
        default=[],
        help="handling unit(s) of categories.yaml the user belongs to (sees their reports'"
        " contacts); repeatable",
    )
    _cmd(ua, "ioc.users:add_main")
    _cmd(
        us.add_parser("list", help="one line per user (never a password hash)"),
        "ioc.users:list_main",
    )
    for action, text in (
        ("passwd", "set a new password (from standard input); ends the user's sessions"),
        ("disable", "disable a user; ends their sessions at once"),
        ("enable", "enable a disabled user"),
        ("remove", "remove a user; ends their sessions at once"),
        ("unlock", "forget a user's failed sign-ins (ends the back-off)"),
    ):
        ux = us.add_parser(action, help=text)
        ux.add_argument("name")
        _cmd(ux, f"ioc.users:{action}_main")

    ue = us.add_parser("email", help="set or clear the address a user's notifications go to")
    ue.add_argument("name")
    ue.add_argument("address", nargs="?", metavar="ADDR", help="the new address")
    ue.add_argument("--clear", action="store_true", help="remove the address (no e-mail)")
    _cmd(ue, "ioc.users:email_main")

    tk = sub.add_parser("tokens", help="API tokens of systems that push reports")
    tks = tk.add_subparsers(
        dest="tokens_command", metavar="ACTION", parser_class=_Parser, required=True
    )
    tka = tks.add_parser("add", help="create a token (printed once)")
    tka.add_argument("name")
    tka.add_argument("--scope", required=True, choices=["intake", "incidents"])
    _cmd(tka, "ioc.citizen.tokens:add_main")
    _cmd(
        tks.add_parser("list", help="list tokens (never their secret)"),
        "ioc.citizen.tokens:list_main",
    )
    tkr = tks.add_parser("revoke", help="revoke a token at once")
    tkr.add_argument("name")
    _cmd(tkr, "ioc.citizen.tokens:revoke_main")
    nt = sub.add_parser("notify", help="deliver notifications (e-mail, webhooks, MQTT)")
    nt.add_argument("--once", action="store_true", help="send what is due now, then exit")
    _cmd(nt, "ioc.notify.worker:main")

    cfg = sub.add_parser("config", help="configuration")
    cfgs = cfg.add_subparsers(
        dest="config_command", metavar="ACTION", parser_class=_Parser, required=True
    )
    _cmd(cfgs.add_parser("check", help="validate the configuration"), "ioc.cli:config_check")
    return p


def _resolve(target: str) -> Callable[[argparse.Namespace, Context], int]:
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise NotAvailableYet(f"this command is not available yet ({module_name})") from None
        raise
    func = getattr(module, func_name, None)
    if func is None:
        raise NotAvailableYet(f"this command is not available yet ({target})")
    return func  # type: ignore[no-any-return,unused-ignore]


def config_check(args: argparse.Namespace, ctx: Context) -> int:
    from ioc.config.check import deep_check

    try:
        cfg = ctx.config()
        issues = deep_check(cfg)
    except ConfigError as exc:
        issues = exc.issues
    if issues:
        for issue in issues:
            print(issue, file=sys.stderr)
        print(f"{len(issues)} error(s) in {ctx.settings.config_dir}", file=sys.stderr)
        return 1
    cams = len(cfg.cameras.cameras)
    print(
        f"configuration OK: {len(cfg.wards)} wards, {len(cfg.sensors.device_types)} device types,"
        f" {cams} cameras, {len(cfg.kpis.kpis)} KPIs, {len(cfg.alerts.rules)} alert rules"
    )
    return 0


def db_init(args: argparse.Namespace, ctx: Context) -> int:
    from ioc.db import connect
    from ioc.db.migrate import init_db

    cfg = ctx.config()
    conn = connect(ctx.database_url(), application_name="ioc-db-init")
    try:
        report = init_db(conn, cfg)
    finally:
        conn.close()
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "target", None):
            raise UsageError("ioc: a command is required (see `ioc --help`)")
        settings = get_settings()
        if args.config_dir:
            settings.config_dir = type(settings.config_dir)(args.config_dir)
        ctx = Context(settings=settings, debug=debug)
        return int(_resolve(args.target)(args, ctx) or 0)
    except IOCError as exc:
        if debug:
            log.exception("failed")
        print(f"ioc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            raise
        print(
            f"ioc: error: unexpected {type(exc).__name__}: {exc} (run with --debug)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
