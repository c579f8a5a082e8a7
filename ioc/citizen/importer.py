"""``ioc import reports FILE``: citizen reports from CSV or XLSX.

Columns: the MQTT event's fields (``id, event, ts, channel, category, summary, lat, lon,
address, unit, contact, result``) plus ``ward`` (or ``ward_code``; a row without it goes to the
ward its ``lat``/``lon`` fall in, ``wards.geojson``). A time without an offset is
local time (Asia/Ho_Chi_Minh). Every bad row is reported with its line and field; the good rows
are stored all the same, through the same write path as MQTT and the HTTP API (a row already
stored, e.g. sent before over MQTT, is counted as already present).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioc.applications import LOCAL_TZ, EventError, read_rows
from ioc.citizen.events import ReportEvent, Rules, event_from_mapping, ward_of
from ioc.citizen.store import store_events
from ioc.citizen.wardmap import WardMap
from ioc.context import Context
from ioc.errors import IOCError

BATCH = 1000


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def event_from_row(
    fields: dict[str, Any],
    rules: Rules,
    actor: str | None,
    locate: Callable[[float, float], str | None] | None = None,
) -> ReportEvent:
    data = dict(fields)
    for key in ("id", "ts", "ward", "ward_code", "contact", "unit", "address", "summary"):
        if key in data:
            data[key] = _whole(data[key])
    ward = ward_of(data, locate)
    return event_from_mapping(data, ward, rules, naive_tz=LOCAL_TZ, actor=actor)


def import_file(
    conn: Any,
    path: Path,
    rules: Rules,
    *,
    actor: str | None = None,
    locate: Callable[[float, float], str | None] | None = None,
) -> ImportReport:
    """Import ``path``; ``locate`` (``WardMap.locate``) gives the ward of a row without one
    from its ``lat``/``lon``."""
    report = ImportReport()
    parsed: list[tuple[int, ReportEvent]] = []
    for number, fields in read_rows(path):
        report.rows += 1
        try:
            parsed.append((number, event_from_row(fields, rules, actor, locate)))
        except EventError as exc:
            report.bad.append((number, exc.message))
    with conn.cursor() as cur:
        for i in range(0, len(parsed), BATCH):
            chunk = parsed[i : i + BATCH]
            outcomes = store_events(cur, [ev for _, ev in chunk], rules, door="import")
            for (number, _), out in zip(chunk, outcomes, strict=True):
                if out.status == "stored":
                    report.imported += 1
                elif out.status == "duplicate":
                    report.duplicates += 1
                else:
                    report.bad.append((number, out.reason or "refused"))
    conn.commit()
    report.bad.sort()
    return report


def import_main(args: argparse.Namespace, ctx: Context) -> int:
    """Exit 0 when every row is stored (or already present), 1 when some were bad."""
    from ioc.db import connect

    path = Path(args.file)
    if not path.is_file():
        raise IOCError(f"{path}: no such file")
    cfg = ctx.config()
    rules = Rules.from_config(cfg)
    boundaries = cfg.dir / "wards.geojson"
    locate = WardMap.load(boundaries).locate if boundaries.is_file() else None
    conn = connect(ctx.database_url(), application_name="ioc-import-reports")
    try:
        actor = f"import:{getpass.getuser()}:{path.name}"[:100]
        try:
            report = import_file(conn, path, rules, actor=actor, locate=locate)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise IOCError(f"{path}: cannot read the file: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.startswith(("zipfile", "openpyxl")):
                raise IOCError(f"{path}: not a readable XLSX file ({exc})") from None
            raise
    finally:
        conn.close()
    for number, reason in report.bad:
        print(f"{path}: line {number}: {reason}", file=sys.stderr)
    print(
        f"{path}: {report.imported} report event(s) imported, {report.duplicates} already"
        f" present, {len(report.bad)} bad row(s) of {report.rows}"
    )
    return 1 if report.bad else 0
