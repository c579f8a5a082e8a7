"""What an export asks for: :func:`make_request` validates the arguments of ``ioc export``, the
/export page and the scheduled reports into an :class:`ExportRequest` (a bad one raises a
one-line UsageError naming the option); :func:`request_args` / :func:`request_from_args` store
it with a job as JSON and read it back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ioc.config import Config
from ioc.errors import UsageError
from ioc.i18n import lang_or_default
from ioc.kpi import periods
from ioc.kpi.compute import CITY

# the Content-Type of each format (downloads and stored jobs)
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class ExportRequest:
    kpis: tuple[str, ...]
    metrics: tuple[str, ...]
    wards: tuple[str, ...]
    include_city: bool
    all_wards: bool
    start: dt.datetime
    end: dt.datetime
    every: str
    fmt: str
    lang: str


def make_request(
    cfg: Config,
    *,
    kpis: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    wards: Sequence[str] | None = None,
    start: dt.datetime,
    end: dt.datetime,
    every: str = "day",
    fmt: str = "csv",
    lang: str = "vi",
) -> ExportRequest:
    """Validate an export request; a bad one raises UsageError (one line, exit code 2)."""
    if bool(kpis) == bool(metrics):
        raise UsageError("export: give either --kpi or --metric (one of them)")
    _check_names(cfg, kpis or (), metrics or ())
    chosen, include_city = _choose_wards(cfg, wards)
    _check_options(start=start, end=end, every=every, fmt=fmt)
    return ExportRequest(
        kpis=tuple(dict.fromkeys(kpis or ())),
        metrics=tuple(dict.fromkeys(metrics or ())),
        wards=tuple(chosen),
        include_city=include_city if kpis else False,
        all_wards=not wards,
        start=start,
        end=end,
        every=every,
        fmt=fmt,
        lang=lang_or_default(lang),
    )


def _check_names(cfg: Config, kpis: Sequence[str], metrics: Sequence[str]) -> None:
    for k in kpis:
        if k not in cfg.kpis.kpis:
            raise UsageError(f"export: unknown KPI {k!r} (known: {', '.join(cfg.kpis.kpis)})")
    known_metrics = cfg.sensors.all_metric_names()
    for m in metrics:
        if m not in known_metrics:
            raise UsageError(f"export: unknown metric {m!r}")


def _choose_wards(cfg: Config, wards: Sequence[str] | None) -> tuple[list[str], bool]:
    """(ward codes without the city, whether the city is asked for): all wards and the city
    when none are given."""
    if not wards:
        return [w.code for w in cfg.wards], True
    for w in wards:
        if w != CITY and w not in cfg.ward_codes:
            raise UsageError(f"export: unknown ward {w!r} (codes are in config/wards.yaml)")
    return [w for w in dict.fromkeys(wards) if w != CITY], CITY in wards


def _check_options(*, start: dt.datetime, end: dt.datetime, every: str, fmt: str) -> None:
    if every not in periods.PERIODS:
        raise UsageError(f"export: --every must be one of {', '.join(periods.PERIODS)}")
    if fmt not in ("csv", "xlsx"):
        raise UsageError("export: --format must be csv or xlsx")
    if start.tzinfo is None or end.tzinfo is None:
        raise UsageError("export: --from/--to need a time zone")
    if start > end:
        raise UsageError(
            f"export: --from ({start.date().isoformat()}) is after --to ({end.date().isoformat()})"
        )


def request_args(req: ExportRequest) -> dict[str, Any]:
    """make_request's arguments for ``req``, as JSON (stored with the job)."""
    wards: list[str] | None = None
    if not req.all_wards:
        wards = list(req.wards) + ([CITY] if req.include_city else [])
    return {
        "kpis": list(req.kpis),
        "metrics": list(req.metrics),
        "wards": wards,
        "start": req.start.isoformat(),
        "end": req.end.isoformat(),
        "every": req.every,
        "fmt": req.fmt,
        "lang": req.lang,
    }


def request_from_args(cfg: Config, args: dict[str, Any]) -> ExportRequest:
    return make_request(
        cfg,
        kpis=args.get("kpis") or None,
        metrics=args.get("metrics") or None,
        wards=args.get("wards") or None,
        start=dt.datetime.fromisoformat(args["start"]),
        end=dt.datetime.fromisoformat(args["end"]),
        every=args["every"],
        fmt=args["fmt"],
        lang=args.get("lang", "vi"),
    )
