"""Validation of one citizen-report event (the payload of ``ioc/{ward}/reports``).

Pure: no I/O. :func:`event_from_mapping` returns a :class:`ReportEvent` or raises
:class:`ioc.applications.EventError` whose ``field`` names the first bad field (the HTTP API
answers 400 with it; the ingester stores ``"<code>: <message>"`` in ``ingest_rejects``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ioc.applications import EventError, parse_time
from ioc.config import Config
from ioc.config.categories import CategoriesFile
from ioc.workdays import WorkCalendar, add_working_hours, work_calendar, working_days_due

EVENTS = ("received", "assigned", "in_progress", "resolved", "rejected", "reopened")
CHANNELS = ("hotline_1022", "app", "web", "zalo", "field")
DOORS = ("mqtt", "api", "import", "web", "sim")
# The public tracking code: letters, digits and . _ : - (no '/', it is a URL path segment).
REPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
LIMITS = {"summary": 2000, "address": 300, "unit": 200, "contact": 200, "result": 2000}
KNOWN_FIELDS = frozenset(
    {"id", "event", "ts", "channel", "category", "summary", "lat", "lon", "address", "unit"}
    | {"contact", "result", "ward", "ward_code", "actor"}
)


class FieldError(EventError):
    """An :class:`EventError` that names the bad field."""

    def __init__(self, code: str, name: str, message: str) -> None:
        super().__init__(code, f"{name}: {message}")
        self.field = name


@dataclass(frozen=True)
class ReportEvent:
    """One validated report event. ``contact`` is personal data: never put in ``details``."""

    id: str
    event: str
    ts: dt.datetime
    ward_code: str
    channel: str | None = None
    category: str | None = None
    summary: str | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    unit: str | None = None
    contact: str | None = None
    result: str | None = None
    actor: str | None = None

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        return (self.id, self.event, self.ts)

    def sort_key(self) -> tuple[dt.datetime, int]:
        return (self.ts, EVENTS.index(self.event))

    def details(self) -> dict[str, Any]:
        """What ``report_events.details`` keeps (everything but the contact)."""
        out: dict[str, Any] = {}
        for name in ("channel", "category", "summary", "lat", "lon", "address", "unit", "result"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_stored(
        cls, report_id: str, event: str, ts: dt.datetime, ward_code: str, details: Mapping[str, Any]
    ) -> ReportEvent:
        return cls(
            id=report_id,
            event=event,
            ts=ts,
            ward_code=ward_code,
            **{k: details.get(k) for k in LIMITS if k != "contact"},
            channel=details.get("channel"),
            category=details.get("category"),
            lat=details.get("lat"),
            lon=details.get("lon"),
        )


@dataclass(frozen=True)
class Rules:
    """What validation and the lifecycle need from the configuration."""

    categories: CategoriesFile
    calendar: WorkCalendar
    wards: Mapping[str, str]  # code -> name

    @classmethod
    def from_config(cls, cfg: Config) -> Rules:
        cats = cfg.report_categories()
        return cls(
            categories=cats,
            calendar=work_calendar(cats, cfg.holidays),
            wards={w.code: w.name for w in cfg.wards},
        )

    def due(self, category: str, start: dt.datetime) -> dt.datetime | None:
        """When a report of ``category`` received (or reopened) at ``start`` is due."""
        cat = self.categories.categories.get(category)
        if cat is None:
            return None
        if cat.limit.working_hours is not None:
            return add_working_hours(start, cat.limit.working_hours, self.calendar)
        assert cat.limit.working_days is not None
        return working_days_due(start, cat.limit.working_days, self.calendar)

    def default_unit(self, category: str | None, ward_code: str) -> str | None:
        """The category's handling unit; ``{ward}`` in it is the ward's name."""
        cat = self.categories.categories.get(category or "")
        if cat is None:
            return None
        name = self.categories.unit_name(cat.unit)  # a unit id, or the unit's name
        return name.replace("{ward}", self.wards.get(ward_code, ward_code))


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(data: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldError("missing_field", key, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError("bad_field", key, f"must be a string, got {_kind(value)}")
    text = str(value).strip()
    limit = LIMITS.get(key, 100)
    if len(text) > limit:
        raise FieldError("bad_field", key, f"is longer than {limit} characters")
    if "\x00" in text:
        raise FieldError("bad_field", key, "contains a NUL character")
    return text


def _coord(data: Mapping[str, Any], key: str, bound: float) -> float | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise FieldError("bad_field", key, f"must be a number, got {_short(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError("bad_field", key, f"must be a number, got {_kind(value)}")
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise FieldError("bad_field", key, f"{value!r} is outside [-{bound:g}, {bound:g}]")
    return float(value)


def event_from_mapping(
    data: Any,
    ward_code: str,
    rules: Rules,
    *,
    naive_tz: dt.tzinfo | None = None,
    actor: str | None = None,
) -> ReportEvent:
    """Validate one event of ward ``ward_code``; raise :class:`FieldError` naming the field."""
    if not isinstance(data, Mapping):
        raise FieldError("bad_shape", "event", f"must be an object, got {_kind(data)}")
    if ward_code not in rules.wards:
        raise FieldError("unknown_ward", "ward", f"unknown ward code {_short(ward_code)}")
    raw_id = data.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if raw_id is None or raw_id == "":
        raise FieldError("missing_field", "id", "is required")
    if not isinstance(raw_id, str) or not REPORT_ID.match(raw_id):
        raise FieldError(
            "bad_field", "id", f"{_short(raw_id)} must be 1-64 letters, digits or . _ : -"
        )
    event = data.get("event")
    if event is None:
        raise FieldError("missing_field", "event", "is required")
    if event not in EVENTS:
        raise FieldError(
            "bad_event", "event", f"must be one of {', '.join(EVENTS)}, got {_short(event)}"
        )
    if data.get("ts") is None or data.get("ts") == "":
        raise FieldError("missing_field", "ts", "is required")
    try:
        ts = parse_time(data["ts"], "ts", naive_tz=naive_tz)
    except EventError as exc:
        raise FieldError("bad_ts", "ts", exc.message.removeprefix("ts ")) from None
    channel = _text(data, "channel")
    if channel is not None and channel not in CHANNELS:
        raise FieldError(
            "bad_field", "channel", f"must be one of {', '.join(CHANNELS)}, got {_short(channel)}"
        )
    received = event == "received"
    category = _text(data, "category", required=received)
    if category is not None and category not in rules.categories.categories:
        known = ", ".join(rules.categories.categories)
        raise FieldError(
            "bad_field", "category", f"unknown category {_short(category)} (known: {known})"
        )
    summary = _text(data, "summary", required=received)
    lat = _coord(data, "lat", 90)
    lon = _coord(data, "lon", 180)
    if (lat is None) != (lon is None):
        name = "lon" if lon is None else "lat"
        raise FieldError("missing_field", name, "lat and lon go together")
    return ReportEvent(
        id=raw_id,
        event=str(event),
        ts=ts,
        ward_code=ward_code,
        channel=channel,
        category=category,
        summary=summary,
        lat=lat,
        lon=lon,
        address=_text(data, "address"),
        unit=_text(data, "unit"),
        contact=_text(data, "contact"),
        result=_text(data, "result"),
        actor=actor,
    )


def ward_of(
    data: Any,
    locate: Callable[[float, float], str | None] | None = None,
    known: Mapping[str, str] | None = None,
) -> str:
    """The ward code of an API or file event: its ``ward`` (or ``ward_code``) when given;
    else, with ``locate``, the ward its ``lat``/``lon`` fall in; else the ward ``known`` gives
    its ``id`` (the stored report's, for a later event of a report that carries neither).

    A given ``ward`` wins over the position (boundaries are approximate, and a report near a
    border may be filed with the ward that handles it)."""
    if not isinstance(data, Mapping):
        raise FieldError("bad_shape", "event", f"must be an object, got {_kind(data)}")
    value = data.get("ward", data.get("ward_code"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or value == "":
        if locate is None:
            raise FieldError("missing_field", "ward", "is required")
        lat = _coord(data, "lat", 90)
        lon = _coord(data, "lon", 180)
        if lat is not None and lon is not None:
            code = locate(lat, lon)
            if code is None:
                raise FieldError(
                    "missing_field", "ward", f"is required: lat {lat}, lon {lon} is in no ward"
                )
            return code
        rid = data.get("id")
        if known is not None and isinstance(rid, str | int) and str(rid) in known:
            return known[str(rid)]
        raise FieldError("missing_field", "ward", "is required (or lat and lon inside a ward)")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError("bad_field", "ward", f"must be a string, got {_kind(value)}")
    return str(value).strip()
