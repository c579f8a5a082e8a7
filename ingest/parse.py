"""Decode and validate MQTT messages (no broker, no database: pure, testable functions).

:class:`Parser` turns ``(topic, payload bytes, received time)`` into a :class:`Parsed`:
readings already formatted as COPY text lines for the writer, the status of a ``status``
message or the event of an ``applications`` message, and a list of :class:`Problem` s. A
problem is always stored as one ``ingest_rejects`` row whose ``reason`` is
``"<code>: <detail>"``; ``code`` (e.g. ``out_of_range``) is stable and labels the counters.

Granularity: a message that cannot be read at all (size, UTF-8, JSON, topic, shape) is rejected
whole; inside a readable telemetry message each bad item of an array (``[3]: ...``) or each bad
metric value is rejected alone and everything valid is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ioc.applications import AppEvent, EventError, event_from_mapping, parse_time
from ioc.citizen.events import ReportEvent, Rules
from ioc.citizen.events import event_from_mapping as report_from_mapping
from ioc.config import Config

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_PROBLEMS = 50  # reject rows per message at most (then one summary row)

# Every reject code, for documentation and for pre-creating counters.
REASONS = (
    "payload_too_large",
    "bad_utf8",
    "bad_json",
    "bad_topic",
    "unknown_ward",
    "unknown_device_type",
    "unknown_device",
    "device_conflict",
    "bad_shape",
    "empty",
    "array_too_long",
    "unknown_metric",
    "not_a_number",
    "not_finite",
    "out_of_range",
    "bad_ts",
    "ts_in_future",
    "ts_too_old",
    "duplicate_in_message",
    "bad_status",
    "bad_event",
    "bad_field",
    "missing_field",
    "impossible_transition",
    "ward_mismatch",
    "db_refused",
    "too_many_problems",
)


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(slots=True)
class Parsed:
    """The outcome of one message."""

    kind: str  # "telemetry" | "status" | "application" | "report" | "invalid"
    ward: str | None = None
    device_type: str | None = None
    device_id: str | None = None
    lines: list[str] = field(default_factory=list)  # readings as COPY text lines
    status: str | None = None
    event: AppEvent | None = None
    report: ReportEvent | None = None  # a citizen report event (ioc/{ward}/reports)
    problems: list[Problem] = field(default_factory=list)
    newest_ts: float | None = None  # epoch seconds of the newest reading
    oldest_ts: float | None = None  # epoch seconds of the oldest reading


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def truncate_payload(payload: bytes | bytearray, limit: int) -> str:
    """Payload text for ``ingest_rejects``: invalid UTF-8 and NUL shown as escapes, cut."""
    text = payload[: limit * 4].decode("utf-8", errors="backslashreplace")
    text = text.replace("\x00", "\\x00")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def clean_topic(topic: str, limit: int = 512) -> str:
    text = topic.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Parser:
    """Validation rules taken from the configuration (wards, sensors, ioc.yaml limits)."""

    def __init__(self, config: Config, *, clock: Any = time.time) -> None:
        ing = config.system.ingest
        self.prefix = config.topic_prefix
        self._prefix_slash = self.prefix + "/"
        self.wards = frozenset(config.ward_codes)
        self.metrics: dict[str, dict[str, tuple[float, float]]] = {
            name: {m.name: (m.min, m.max) for m in dtype.metrics}
            for name, dtype in config.sensors.device_types.items()
        }
        self.max_payload = ing.max_payload_bytes
        self.max_array = ing.max_array_len
        self.max_future = ing.max_future_skew_s
        self.max_age = config.system.storage.retention.readings_days * 86400.0
        self.clock = clock
        self.report_rules = Rules.from_config(config) if config.categories is not None else None
        self._ts_cache: dict[int, str] = {}

    # -- topic ------------------------------------------------------------------------------
    def split_topic(self, topic: str) -> tuple[str, list[str]] | Problem:
        """("telemetry"|"status"|"applications", parts after the prefix) or a problem."""
        if not topic.startswith(self._prefix_slash):
            return Problem("bad_topic", f"topic is not under {self.prefix}/")
        parts = topic[len(self._prefix_slash) :].split("/")
        if len(parts) == 4 and parts[3] in ("telemetry", "status"):
            kind = parts[3]
        elif len(parts) == 2 and parts[1] in ("applications", "reports"):
            kind = parts[1]
        else:
            return Problem(
                "bad_topic",
                "expected {ward}/{type}/{device}/telemetry|status, {ward}/applications"
                " or {ward}/reports",
            )
        if parts[0] not in self.wards:
            return Problem("unknown_ward", f"unknown ward code {_short(parts[0])}")
        if kind not in ("applications", "reports"):
            if parts[1] not in self.metrics:
                return Problem("unknown_device_type", f"unknown device type {_short(parts[1])}")
            if not DEVICE_ID.match(parts[2]):
                return Problem(
                    "bad_topic", f"device id {_short(parts[2])} must match {DEVICE_ID.pattern}"
                )
        return kind, parts

    # -- whole message ----------------------------------------------------------------------
    def parse(
        self, topic: str, payload: bytes | bytearray, received: float | None = None
    ) -> Parsed:
        """Never raises: anything wrong is a :class:`Problem` in the result."""
        received = self.clock() if received is None else received
        try:
            return self._parse(topic, payload, received)
        except RecursionError:
            return Parsed("invalid", problems=[Problem("bad_json", "nested too deeply")])

    def _parse(self, topic: str, payload: bytes | bytearray, received: float) -> Parsed:
        split = self.split_topic(topic)
        if isinstance(split, Problem):
            return Parsed("invalid", problems=[split])
        kind, parts = split
        if len(payload) > self.max_payload:
            return Parsed(
                "invalid",
                ward=parts[0],
                problems=[
                    Problem("payload_too_large", f"{len(payload)} bytes > limit {self.max_payload}")
                ],
            )
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Parsed(
                "invalid", ward=parts[0], problems=[Problem("bad_utf8", f"at byte {exc.start}")]
            )
        if kind == "status":
            return self._status(parts, text)
        try:
            data = json.loads(text)
        except RecursionError:
            raise
        except ValueError as exc:  # JSONDecodeError, and int too large to convert
            return Parsed("invalid", ward=parts[0], problems=[Problem("bad_json", str(exc)[:120])])
        if kind == "applications":
            return self._application(parts, data)
        if kind == "reports":
            return self._report(parts, data)
        return self._telemetry(parts, data, received)

    def identified(self, topic: str, payload: bytes | bytearray) -> bool:
        """The payload carries its own identity: every telemetry item has a ``ts``, or an
        application event has ``id`` and ``ts``. Then identical bytes on the same topic are
        the same message whenever they arrive (one reject row: docs/ingest.md, "Rejects are
        stored once"). Asked on the reject path only: it decodes the payload again, so that
        :meth:`parse`, the hot path, does no work for it."""
        split = self.split_topic(topic)
        if isinstance(split, Problem) or split[0] == "status" or len(payload) > self.max_payload:
            return False
        try:
            data = json.loads(payload.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return False
        if split[0] in ("applications", "reports"):
            return isinstance(data, dict) and "id" in data and "ts" in data
        if isinstance(data, dict):
            data = [data]
        return (
            isinstance(data, list)
            and bool(data)
            and all(isinstance(i, dict) and i.get("ts") is not None for i in data)
        )

    def _status(self, parts: list[str], text: str) -> Parsed:
        out = Parsed("status", ward=parts[0], device_type=parts[1], device_id=parts[2])
        value = text.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]  # tolerate a JSON string
        value = value.lower()
        if value in ("online", "offline"):
            out.status = value
        else:
            out.kind = "invalid"
            out.problems.append(
                Problem("bad_status", f"status must be online or offline, got {_short(text)}")
            )
        return out

    def _application(self, parts: list[str], data: Any) -> Parsed:
        out = Parsed("application", ward=parts[0])
        try:
            out.event = event_from_mapping(data, parts[0])
        except EventError as exc:
            out.kind = "invalid"
            out.problems.append(Problem(exc.code, exc.message))
        return out

    def _report(self, parts: list[str], data: Any) -> Parsed:
        out = Parsed("report", ward=parts[0])
        if self.report_rules is None:
            out.kind = "invalid"
            out.problems.append(Problem("bad_topic", "no report categories configured"))
            return out
        try:
            out.report = report_from_mapping(data, parts[0], self.report_rules)
        except EventError as exc:
            out.kind = "invalid"
            out.problems.append(Problem(exc.code, exc.message))
        return out

    # -- telemetry --------------------------------------------------------------------------
    def _ts_text(self, ms: int) -> str:
        text = self._ts_cache.get(ms)
        if text is None:
            if len(self._ts_cache) > 50_000:
                self._ts_cache.clear()
            text = (_EPOCH + dt.timedelta(milliseconds=ms)).isoformat()
            self._ts_cache[ms] = text
        return text

    def _telemetry(self, parts: list[str], data: Any, received: float) -> Parsed:
        ward, dtype, device = parts[0], parts[1], parts[2]
        out = Parsed("telemetry", ward=ward, device_type=dtype, device_id=device)
        if isinstance(data, list):
            if not data:
                out.problems.append(Problem("empty", "empty array"))
            elif len(data) > self.max_array:
                out.problems.append(
                    Problem("array_too_long", f"{len(data)} items > limit {self.max_array}")
                )
            else:
                seen: set[tuple[str, str]] = set()
                for i, item in enumerate(data):
                    self._item(out, item, received, f"[{i}]", seen)
        elif isinstance(data, dict):
            self._item(out, data, received, "", None)
        else:
            out.problems.append(
                Problem("bad_shape", f"telemetry must be an object or array, got {_kind(data)}")
            )
        if len(out.problems) > MAX_PROBLEMS:
            extra = len(out.problems) - MAX_PROBLEMS
            out.problems = out.problems[:MAX_PROBLEMS]
            out.problems.append(Problem("too_many_problems", f"{extra} more problem(s) not stored"))
        if not out.lines and out.problems:
            out.kind = "invalid"
        return out

    def _item(
        self,
        out: Parsed,
        item: Any,
        received: float,
        where: str,
        seen: set[tuple[str, str]] | None,
    ) -> None:
        at = f"{where}: " if where else ""
        if not isinstance(item, dict):
            out.problems.append(Problem("bad_shape", f"{at}expected an object, got {_kind(item)}"))
            return
        if "values" in item or "ts" in item:
            extra = set(item) - {"ts", "values"}
            if extra:
                names = ", ".join(sorted(_short(k, 20) for k in extra)[:5])
                out.problems.append(Problem("bad_shape", f"{at}unexpected key(s) {names}"))
                return
            values = item.get("values")
            if not isinstance(values, dict):
                out.problems.append(
                    Problem("bad_shape", f"{at}'values' must be an object, got {_kind(values)}")
                )
                return
            raw_ts = item.get("ts")
        else:
            values, raw_ts = item, None
        if not values:
            out.problems.append(Problem("empty", f"{at}no readings"))
            return
        # timestamp → epoch ms (int) → COPY text
        if raw_ts is None:
            ms = int(received * 1000)
        elif type(raw_ts) is int and 0 <= raw_ts <= 7_258_118_400_000:
            ms = raw_ts
        else:
            try:
                when = parse_time(raw_ts, "ts")
            except EventError as exc:
                out.problems.append(Problem("bad_ts", f"{at}{exc.message}"))
                return
            delta = when - _EPOCH
            ms = (delta.days * 86_400_000) + delta.seconds * 1000 + delta.microseconds // 1000
            if delta.microseconds % 1000:  # keep sub-millisecond precision as given
                ts_text: str | None = when.isoformat()
            else:
                ts_text = None
        if raw_ts is None or type(raw_ts) is int:
            ts_text = None
        secs = ms / 1000.0
        if secs > received + self.max_future:
            out.problems.append(
                Problem(
                    "ts_in_future",
                    f"{at}ts {self._ts_text(ms)} is {secs - received:.0f} s ahead"
                    f" (limit {self.max_future:.0f} s)",
                )
            )
            return
        if secs < received - self.max_age:
            out.problems.append(
                Problem(
                    "ts_too_old",
                    f"{at}ts {self._ts_text(ms)} is older than the retention"
                    f" ({self.max_age / 86400:.0f} days)",
                )
            )
            return
        if ts_text is None:
            ts_text = self._ts_text(ms)
        if out.newest_ts is None or secs > out.newest_ts:
            out.newest_ts = secs
        if out.oldest_ts is None or secs < out.oldest_ts:
            out.oldest_ts = secs
        ranges = self.metrics[out.device_type or ""]
        prefix = f"{ts_text}\t{out.ward}\t{out.device_id}\t"
        lines = out.lines
        for metric, value in values.items():
            rng = ranges.get(metric)
            if rng is None:
                out.problems.append(
                    Problem(
                        "unknown_metric",
                        f"{at}{_short(metric, 30)} is not a metric of {out.device_type}",
                    )
                )
                continue
            tv = type(value)
            if tv is float:
                if not math.isfinite(value):
                    out.problems.append(Problem("not_finite", f"{at}{metric} is {value!r}"))
                    continue
                text = repr(value)
            elif tv is int:
                text = str(value)
            else:
                out.problems.append(
                    Problem("not_a_number", f"{at}{metric} must be a number, got {_kind(value)}")
                )
                continue
            if not rng[0] <= value <= rng[1]:
                out.problems.append(
                    Problem(
                        "out_of_range",
                        f"{at}{metric}={_short(value, 24)} outside [{rng[0]:g}, {rng[1]:g}]",
                    )
                )
                continue
            if seen is not None:
                key = (metric, ts_text)
                if key in seen:
                    out.problems.append(
                        Problem("duplicate_in_message", f"{at}{metric} at {ts_text} given twice")
                    )
                    continue
                seen.add(key)
            lines.append(f"{prefix}{metric}\t{text}\n")
