"""One-stop-shop application events: parsing, the state machine, storage and file import.

An application's row in ``applications`` is never edited in place by an event: every accepted
event is kept in ``application_events`` (primary key ``(app_id, event, ts)``, so a redelivered
event is a no-op) and the row is *recomputed* by replaying all of the application's events in
time order. Arrival order therefore does not matter, and duplicates change nothing.

State machine (contract: ``ioc/{ward}/applications``)::

    (none) --received--> received --completed--> completed
                         received --cancelled--> cancelled
                         received --returned---> returned --received--> received (clock resumes)
                                                 returned --cancelled--> cancelled

``returned`` means supplements were requested: the processing clock pauses until the next
``received`` (the time in between accumulates in ``paused_seconds``; that ``received`` carries
the possibly new ``due``). Anything else (a second ``completed``, ``returned`` twice, an event
before the first ``received`` in time order...) is an impossible transition: the event that does
not fit is not stored and the caller records a reject. Events of an application whose
``received`` has not arrived yet are stored and wait for it (out-of-order delivery).

Also ``ioc import applications FILE`` (:func:`import_main`): CSV or XLSX with the event's
fields plus the ward code.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioc.localtime import LOCAL_TZ

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as Cursor

    from ioc.context import Context

EVENTS = ("received", "returned", "completed", "cancelled")
CHANNELS = ("online", "counter", "postal")
# Tie-break for events with the same timestamp.
_EVENT_ORDER = {e: i for i, e in enumerate(EVENTS)}
UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
# Unix milliseconds accepted: years 1970..2200 (anything else is surely a unit mistake).
_MS_MAX = 7_258_118_400_000
MAX_ID_LEN = 128
MAX_TEXT_LEN = 500


class EventError(ValueError):
    """An event that cannot be accepted: ``code`` (stable, for counters) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_time(value: Any, name: str = "ts", *, naive_tz: dt.tzinfo | None = None) -> dt.datetime:
    """Unix milliseconds (number) or ISO-8601 text with offset → aware UTC datetime.

    ``naive_tz``: zone assumed for text or ``datetime`` without offset (file import only; MQTT
    payloads must carry the offset).
    """
    if isinstance(value, bool):
        raise EventError("bad_ts", f"{name} must be Unix ms or ISO-8601, got a boolean")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise EventError("bad_ts", f"{name} is not a finite number")
        if not 0 <= value <= _MS_MAX:
            raise EventError("bad_ts", f"{name} {value!r} is not Unix milliseconds")
        if isinstance(value, int):
            return _EPOCH + dt.timedelta(milliseconds=value)
        return _EPOCH + dt.timedelta(microseconds=round(value * 1000))
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 64:
            raise EventError("bad_ts", f"{name} {_short(value)} is not an ISO-8601 time")
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise EventError("bad_ts", f"{name} {_short(value)} is not an ISO-8601 time") from None
    else:
        raise EventError("bad_ts", f"{name} must be Unix ms or ISO-8601, got {_kind(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if naive_tz is None:
            raise EventError("bad_ts", f"{name} {_short(value)} has no UTC offset")
        parsed = parsed.replace(tzinfo=naive_tz)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise EventError("bad_ts", f"{name} {_short(value)} is out of range") from None


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _text(data: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise EventError("missing_field", f"{key!r} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventError("bad_field", f"{key!r} must be a string, got {_kind(value)}")
    text = str(value).strip()
    limit = MAX_ID_LEN if key == "id" else MAX_TEXT_LEN
    if not text or len(text) > limit or "\x00" in text:
        raise EventError("bad_field", f"{key!r} must be 1-{limit} characters")
    return text


@dataclass(frozen=True)
class AppEvent:
    """One validated application event."""

    id: str
    event: str
    ts: dt.datetime
    ward_code: str
    procedure: str | None = None
    channel: str | None = None
    due: dt.datetime | None = None
    reason: str | None = None

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.id, self.event, self.ts)

    def sort_key(self) -> tuple[dt.datetime, int]:
        return (self.ts, _EVENT_ORDER[self.event])

    def payload(self) -> dict[str, Any]:
        """The normalised event as stored in ``application_events.payload``."""
        out: dict[str, Any] = {"id": self.id, "event": self.event, "ts": self.ts.isoformat()}
        if self.procedure is not None:
            out["procedure"] = self.procedure
        if self.channel is not None:
            out["channel"] = self.channel
        if self.due is not None:
            out["due"] = self.due.isoformat()
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_stored(cls, ward_code: str, payload: Mapping[str, Any]) -> AppEvent:
        return event_from_mapping(payload, ward_code)


def event_from_mapping(data: Any, ward_code: str, *, naive_tz: dt.tzinfo | None = None) -> AppEvent:
    """Validate one event (the MQTT payload's fields); raise :class:`EventError`."""
    if not isinstance(data, Mapping):
        raise EventError("bad_shape", f"an application event must be an object, got {_kind(data)}")
    app_id = _text(data, "id", required=True)
    event = data.get("event")
    if event not in EVENTS:
        raise EventError(
            "bad_event", f"event must be one of {', '.join(EVENTS)}, got {_short(event)}"
        )
    if data.get("ts") is None:
        raise EventError("missing_field", "'ts' is required")
    ts = parse_time(data["ts"], "ts", naive_tz=naive_tz)
    channel = _text(data, "channel", required=False)
    if channel is not None and channel not in CHANNELS:
        raise EventError(
            "bad_field", f"channel must be one of {', '.join(CHANNELS)}, got {_short(channel)}"
        )
    due_raw = data.get("due")
    due = None if due_raw in (None, "") else parse_time(due_raw, "due", naive_tz=naive_tz)
    if event == "received" and due is None:
        raise EventError("missing_field", "'due' is required on a received event")
    assert app_id is not None
    return AppEvent(
        id=app_id,
        event=str(event),
        ts=ts,
        ward_code=ward_code,
        procedure=_text(data, "procedure", required=False),
        channel=channel,
        due=due,
        reason=_text(data, "reason", required=False),
    )


# -- the state machine ---------------------------------------------------------------------------


@dataclass
class AppState:
    """The ``applications`` row computed from an application's events."""

    id: str
    ward_code: str
    procedure: str | None
    channel: str | None
    received_at: dt.datetime
    due_at: dt.datetime | None
    status: str = "received"
    completed_at: dt.datetime | None = None
    returned_at: dt.datetime | None = None
    return_count: int = 0
    paused_seconds: float = 0.0
    cancelled_at: dt.datetime | None = None
    cancel_reason: str | None = None
    last_event_at: dt.datetime | None = None


@dataclass
class Replay:
    """What replaying an application's events gives."""

    state: AppState | None
    applied: list[AppEvent] = field(default_factory=list)
    skipped: list[tuple[AppEvent, str]] = field(default_factory=list)  # impossible, and why
    pending: list[AppEvent] = field(default_factory=list)  # waiting for their `received`


def transition(state: AppState | None, ev: AppEvent) -> AppState:
    """The state after ``ev``; raise EventError('impossible_transition') when it cannot happen.

    ``state`` is not modified. ``state is None`` means no ``received`` event yet.
    """
    cur = state.status if state is not None else None
    if state is None:
        if ev.event != "received":
            raise EventError("impossible_transition", f"{ev.event} before received")
        return AppState(
            id=ev.id,
            ward_code=ev.ward_code,
            procedure=ev.procedure,
            channel=ev.channel,
            received_at=ev.ts,
            due_at=ev.due,
            last_event_at=ev.ts,
        )
    new = replace(state, last_event_at=ev.ts)
    if cur in ("completed", "cancelled"):
        raise EventError("impossible_transition", f"{ev.event} after {cur}")
    if ev.event == "received":
        if cur != "returned":
            raise EventError("impossible_transition", "received twice without returned between")
        assert state.returned_at is not None
        new.status = "received"
        new.paused_seconds = state.paused_seconds + max(
            0.0, (ev.ts - state.returned_at).total_seconds()
        )
        new.due_at = ev.due or state.due_at
        new.procedure = state.procedure or ev.procedure
        new.channel = state.channel or ev.channel
    elif ev.event == "returned":
        if cur != "received":
            raise EventError("impossible_transition", f"returned while {cur}")
        new.status = "returned"
        new.returned_at = ev.ts
        new.return_count = state.return_count + 1
    elif ev.event == "completed":
        if cur != "received":
            raise EventError("impossible_transition", f"completed while {cur}")
        new.status = "completed"
        new.completed_at = ev.ts
    else:  # cancelled: from received or returned
        new.status = "cancelled"
        new.cancelled_at = ev.ts
        new.cancel_reason = ev.reason
    return new


def replay(events: Iterable[AppEvent]) -> Replay:
    """Apply events in time order (duplicates dropped); impossible ones are skipped."""
    unique = {ev.key: ev for ev in events}
    ordered = sorted(unique.values(), key=AppEvent.sort_key)
    if not any(ev.event == "received" for ev in ordered):
        return Replay(state=None, pending=ordered)
    out = Replay(state=None)
    for ev in ordered:
        try:
            out.state = transition(out.state, ev)
        except EventError as exc:
            out.skipped.append((ev, exc.message))
        else:
            out.applied.append(ev)
    return out


# -- storage -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreResult:
    accepted: bool
    duplicate: bool = False
    reason: str | None = None  # "code: message" when not accepted

    @property
    def code(self) -> str | None:
        return self.reason.split(":", 1)[0] if self.reason else None


_UPSERT_APP = """
INSERT INTO applications (id, ward_code, procedure, channel, received_at, due_at, completed_at,
    status, returned_at, return_count, paused_seconds, cancelled_at, cancel_reason,
    last_event_at, updated_at)
VALUES (%(id)s, %(ward_code)s, %(procedure)s, %(channel)s, %(received_at)s, %(due_at)s,
    %(completed_at)s, %(status)s, %(returned_at)s, %(return_count)s, %(paused_seconds)s,
    %(cancelled_at)s, %(cancel_reason)s, %(last_event_at)s, now())
ON CONFLICT (id) DO UPDATE SET ward_code = EXCLUDED.ward_code, procedure = EXCLUDED.procedure,
    channel = EXCLUDED.channel, received_at = EXCLUDED.received_at, due_at = EXCLUDED.due_at,
    completed_at = EXCLUDED.completed_at, status = EXCLUDED.status,
    returned_at = EXCLUDED.returned_at, return_count = EXCLUDED.return_count,
    paused_seconds = EXCLUDED.paused_seconds, cancelled_at = EXCLUDED.cancelled_at,
    cancel_reason = EXCLUDED.cancel_reason, last_event_at = EXCLUDED.last_event_at,
    updated_at = now()
"""


def store_event(cur: Cursor, ev: AppEvent) -> StoreResult:
    """Record ``ev`` idempotently and recompute its application row (inside the caller's
    transaction). An event that does not fit is not stored: the result says why."""
    # Serialise concurrent writers of the same application (several ingesters may run) with a
    # row lock: unlike advisory locks, row locks do not fill the shared lock table however many
    # events one transaction holds.
    cur.execute(
        "INSERT INTO application_locks (app_id) VALUES (%s) ON CONFLICT DO NOTHING", (ev.id,)
    )
    cur.execute("SELECT 1 FROM application_locks WHERE app_id = %s FOR UPDATE", (ev.id,))
    cur.execute(
        "SELECT event, ts, ward_code, payload FROM application_events WHERE app_id = %s",
        (ev.id,),
    )
    stored: list[AppEvent] = []
    for event, ts, ward_code, payload in cur.fetchall():
        if event == ev.event and ts == ev.ts:
            return StoreResult(accepted=True, duplicate=True)
        try:
            stored.append(AppEvent.from_stored(ward_code, payload))
        except EventError:  # stored by an older version with other rules: ignore it
            continue
    wards = {s.ward_code for s in stored}
    if wards and ev.ward_code not in wards:
        return StoreResult(
            False,
            reason=f"ward_mismatch: application {ev.id} belongs to ward {sorted(wards)[0]}",
        )
    result = replay([*stored, ev])
    for skipped, why in result.skipped:
        if skipped.key == ev.key:
            return StoreResult(
                False,
                reason=f"impossible_transition: {ev.event} of {ev.id} at "
                f"{ev.ts.isoformat()}: {why}",
            )
    cur.execute(
        "INSERT INTO application_events (app_id, event, ts, ward_code, payload)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (ev.id, ev.event, ev.ts, ev.ward_code, json.dumps(ev.payload(), ensure_ascii=False)),
    )
    if result.state is not None:
        cur.execute(_UPSERT_APP, vars(result.state))
    return StoreResult(accepted=True)


# -- ioc import applications FILE ----------------------------------------------------------------

COLUMNS = ("id", "event", "ts", "procedure", "channel", "due", "reason", "ward")
_ALIASES = {"ward_code": "ward", "app_id": "id"}


def _cell(value: Any) -> Any:
    """Normalise a spreadsheet cell: whole floats → int text for codes, blanks → None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number as the user sees it, fields) for each data row of a CSV or XLSX file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return
            names = _header(header)
            for number, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                yield number, {n: _cell(v) for n, v in zip(names, values, strict=False) if n}
    elif suffix in (".xlsx", ".xlsm"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            ws = wb.worksheets[0]
            rows = ws.iter_rows(values_only=True)
            first = next(rows, None)
            if first is None:
                return
            names = _header(["" if c is None else str(c) for c in first])
            for number, cells in enumerate(rows, start=2):
                if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                    continue
                yield number, {n: _cell(v) for n, v in zip(names, cells, strict=False) if n}
        finally:
            wb.close()
    else:
        from ioc.errors import IOCError

        raise IOCError(f"{path}: unsupported file type {suffix or '(none)'} (use .csv or .xlsx)")


def _header(cells: list[str]) -> list[str]:
    names = []
    for c in cells:
        key = c.strip().lower()
        names.append(_ALIASES.get(key, key))
    missing = [c for c in ("id", "event", "ts", "ward") if c not in names]
    if missing:
        from ioc.errors import IOCError

        raise IOCError(f"missing column(s) {', '.join(missing)} (header: {', '.join(cells)})")
    return names


def event_from_row(fields: dict[str, Any], ward_codes: set[str]) -> AppEvent:
    ward = fields.get("ward")
    if isinstance(ward, float) and ward.is_integer():
        ward = int(ward)
    ward_text = None if ward is None else str(ward).strip()
    if not ward_text:
        raise EventError("missing_field", "'ward' is required")
    if ward_text not in ward_codes:
        raise EventError("unknown_ward", f"unknown ward code {ward_text!r}")
    data = dict(fields)
    for key in ("ts", "due"):  # numbers in a sheet are Unix ms; whole floats → int
        v = data.get(key)
        if isinstance(v, float) and v.is_integer():
            data[key] = int(v)
    if isinstance(data.get("id"), float) and data["id"].is_integer():
        data["id"] = int(data["id"])
    return event_from_mapping(data, ward_text, naive_tz=LOCAL_TZ)


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def import_file(conn: Any, path: Path, ward_codes: set[str]) -> ImportReport:
    """Import every good row of ``path``; bad rows are listed with their row number."""
    report = ImportReport()
    parsed: list[tuple[int, AppEvent]] = []
    for number, fields in read_rows(path):
        report.rows += 1
        try:
            parsed.append((number, event_from_row(fields, ward_codes)))
        except EventError as exc:
            report.bad.append((number, str(exc)))
    # Time order keeps "impossible" verdicts meaningful whatever the file's order.
    parsed.sort(key=lambda item: item[1].sort_key())
    with conn.cursor() as cur:
        for number, ev in parsed:
            cur.execute("SAVEPOINT ioc_import_row")
            result = store_event(cur, ev)
            if result.accepted:
                cur.execute("RELEASE SAVEPOINT ioc_import_row")
                if result.duplicate:
                    report.duplicates += 1
                else:
                    report.imported += 1
            else:
                cur.execute("ROLLBACK TO SAVEPOINT ioc_import_row")
                report.bad.append((number, result.reason or "rejected"))
    conn.commit()
    report.bad.sort()
    return report


def import_main(args: argparse.Namespace, ctx: Context) -> int:
    """``ioc import applications FILE``: exit 0 when every row is imported, 1 when some were
    bad (the others are imported all the same)."""
    from ioc.db import connect
    from ioc.errors import IOCError

    path = Path(args.file)
    if not path.is_file():
        raise IOCError(f"{path}: no such file")
    cfg = ctx.config()
    conn = connect(ctx.database_url(), application_name="ioc-import")
    try:
        try:
            report = import_file(conn, path, cfg.ward_codes)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise IOCError(f"{path}: cannot read the file: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.startswith(("zipfile", "openpyxl")):
                raise IOCError(f"{path}: not a readable XLSX file ({exc})") from None
            raise
    finally:
        conn.close()
    for number, reason in report.bad:
        print(f"{path}: row {number}: {reason}", file=sys.stderr)
    print(
        f"{path}: {report.imported} event(s) imported, {report.duplicates} already present,"
        f" {len(report.bad)} bad row(s) of {report.rows}"
    )
    return 1 if report.bad else 0
