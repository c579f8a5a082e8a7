"""ingest.parse: every payload form, every reject reason, and >= 10k fuzzed payloads."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.parse import MAX_PROBLEMS, REASONS, Parsed, Parser
from ioc.config import Config

NOW = 1_790_000_000.0  # fixed clock (2026-09-21)
NOW_MS = int(NOW * 1000)
WARD = "20195"
T = f"ioc/{WARD}/air_quality/aq-1/telemetry"


@pytest.fixture(scope="module")
def parser(config: Config) -> Parser:
    return Parser(config, clock=lambda: NOW)


def rows(p: Parsed) -> list[tuple[str, str, str, str, float]]:
    out = []
    for line in p.lines:
        ts, ward, dev, metric, value = line.rstrip("\n").split("\t")
        out.append((ts, ward, dev, metric, float(value)))
    return out


def codes(p: Parsed) -> list[str]:
    return [pr.code for pr in p.problems]


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


# -- the three telemetry forms -------------------------------------------------------------


def test_plain_object_uses_receive_time(parser: Parser) -> None:
    p = parser.parse(T, b'{"pm25": 12.5, "pm10": 30}', NOW)
    assert p.kind == "telemetry" and not p.problems
    assert rows(p) == [
        (iso(NOW_MS), WARD, "aq-1", "pm25", 12.5),
        (iso(NOW_MS), WARD, "aq-1", "pm10", 30.0),
    ]


def test_ts_values_form_unix_ms_and_iso_with_offset(parser: Parser) -> None:
    p = parser.parse(T, json.dumps({"ts": NOW_MS - 5000, "values": {"pm25": 1}}).encode(), NOW)
    assert rows(p) == [(iso(NOW_MS - 5000), WARD, "aq-1", "pm25", 1.0)]
    local = dt.datetime.fromtimestamp(NOW - 60, dt.timezone(dt.timedelta(hours=7)))
    p = parser.parse(T, json.dumps({"ts": local.isoformat(), "values": {"pm10": 2}}).encode(), NOW)
    assert not p.problems
    assert rows(p)[0][0] == local.astimezone(dt.UTC).isoformat()
    p = parser.parse(T, b'{"ts": "2026-09-21T14:00:00Z", "values": {"pm10": 2}}', NOW)
    assert rows(p)[0][0] == "2026-09-21T14:00:00+00:00"


def test_array_keeps_good_items_and_names_the_bad_one(parser: Parser) -> None:
    items: list[Any] = [
        {"ts": NOW_MS - 3000, "values": {"pm25": 1}},
        {"ts": NOW_MS - 2000, "values": {"pm25": 5000}},  # out of range
        {"ts": "yesterday", "values": {"pm25": 3}},  # bad ts
        {"ts": NOW_MS - 1000, "values": {"pm25": 4, "pm10": 5}},
        "junk",
    ]
    p = parser.parse(T, json.dumps(items).encode(), NOW)
    assert [r[4] for r in rows(p)] == [1.0, 4.0, 5.0]
    assert codes(p) == ["out_of_range", "bad_ts", "bad_shape"]
    assert p.problems[0].detail.startswith("[1]: pm25=5000")
    assert p.problems[1].detail.startswith("[2]: ")
    assert p.problems[2].detail.startswith("[4]: ")


def test_duplicate_reading_inside_one_array(parser: Parser) -> None:
    items = [{"ts": NOW_MS, "values": {"pm25": 1}}, {"ts": NOW_MS, "values": {"pm25": 2}}]
    p = parser.parse(T, json.dumps(items).encode(), NOW)
    assert len(p.lines) == 1 and codes(p) == ["duplicate_in_message"]


# -- every reason --------------------------------------------------------------------------

CASES: list[tuple[str, bytes, str]] = [
    (T, b"x" * 70_000, "payload_too_large"),
    (T, b'{"pm25": "\xff"}', "bad_utf8"),
    (T, b'{"pm25": ', "bad_json"),
    (T, b"[" * 60_000, "bad_json"),  # nested too deeply for the decoder
    (T, b'{"pm25": 1' + b"0" * 5000 + b"}", "bad_json"),  # integer too long to convert
    ("elsewhere/20195/air_quality/a/telemetry", b"{}", "bad_topic"),
    (f"ioc/{WARD}/air_quality/a/b/telemetry", b"{}", "bad_topic"),
    (f"ioc/{WARD}/air_quality/bad id/telemetry", b'{"pm25": 1}', "bad_topic"),
    ("ioc/99999/air_quality/a/telemetry", b'{"pm25": 1}', "unknown_ward"),
    (f"ioc/{WARD}/toaster/a/telemetry", b'{"pm25": 1}', "unknown_device_type"),
    (T, b"42", "bad_shape"),
    (T, b'{"ts": 1, "values": 3}', "bad_shape"),
    (T, b'{"ts": 1, "values": {}, "extra": 1}', "bad_shape"),
    (T, b"{}", "empty"),
    (T, b"[]", "empty"),
    (T, json.dumps([{"pm25": 1}] * 1001).encode(), "array_too_long"),
    (T, b'{"rain_mm": 1}', "unknown_metric"),
    (T, b'{"pm25": "12"}', "not_a_number"),
    (T, b'{"pm25": true}', "not_a_number"),
    (T, b'{"pm25": null}', "not_a_number"),
    (T, b'{"pm25": [1]}', "not_a_number"),
    (T, b'{"pm25": NaN}', "not_finite"),
    (T, b'{"pm25": Infinity}', "not_finite"),
    (T, b'{"pm25": 1e999}', "not_finite"),
    (T, b'{"pm25": -0.1}', "out_of_range"),
    (T, b'{"pm25": 1000.5}', "out_of_range"),
    (T, b'{"pm25": 10000000000000000000000000000}', "out_of_range"),
    (T, b'{"ts": "2026-09-21T10:00:00", "values": {"pm25": 1}}', "bad_ts"),  # no offset
    (T, b'{"ts": true, "values": {"pm25": 1}}', "bad_ts"),
    (T, b'{"ts": -5, "values": {"pm25": 1}}', "bad_ts"),
    (T, b'{"ts": 99999999999999999, "values": {"pm25": 1}}', "bad_ts"),
    (T, json.dumps({"ts": NOW_MS + 301_000, "values": {"pm25": 1}}).encode(), "ts_in_future"),
    (
        T,
        json.dumps({"ts": NOW_MS - 401 * 86_400_000, "values": {"pm25": 1}}).encode(),
        "ts_too_old",
    ),
    (T.replace("telemetry", "status"), b"maybe", "bad_status"),
    (f"ioc/{WARD}/applications", b'{"id": "A", "event": "lost", "ts": 1}', "bad_event"),
    (f"ioc/{WARD}/applications", b'{"event": "received", "ts": 1}', "missing_field"),
    (f"ioc/{WARD}/applications", b'{"id": "A", "event": "received", "ts": 1}', "missing_field"),
    (
        f"ioc/{WARD}/applications",
        b'{"id": "A", "event": "completed", "ts": 1, "channel": "fax"}',
        "bad_field",
    ),
    (f"ioc/{WARD}/applications", b'{"id": "A", "event": "completed", "ts": "soon"}', "bad_ts"),
    (f"ioc/{WARD}/applications", b"[1, 2]", "bad_shape"),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), CASES)
def test_each_reason(parser: Parser, topic: str, payload: bytes, reason: str) -> None:
    p = parser.parse(topic, payload, NOW)
    assert reason in codes(p), p.problems
    assert not p.lines
    assert all(pr.code in REASONS for pr in p.problems)


def test_limits_are_exact(parser: Parser) -> None:
    ok = json.dumps({"ts": NOW_MS + 300_000, "values": {"pm25": 1000}}).encode()
    assert not parser.parse(T, ok, NOW).problems  # bounds are inclusive
    at_limit = b'{"pm25": 1' + b" " * (65536 - 11) + b"}"
    assert len(at_limit) == 65536 and not parser.parse(T, at_limit, NOW).problems
    over = at_limit[:-1] + b" }"
    assert codes(parser.parse(T, over, NOW)) == ["payload_too_large"]
    assert not parser.parse(T, json.dumps([{"pm25": 1}]).encode(), NOW).problems


def test_problems_per_message_are_capped(parser: Parser) -> None:
    items = [{"ts": NOW_MS - i, "values": {"pm25": -1}} for i in range(200)]
    p = parser.parse(T, json.dumps(items).encode(), NOW)
    assert len(p.problems) == MAX_PROBLEMS + 1
    assert p.problems[-1].code == "too_many_problems" and "150 more" in p.problems[-1].detail


def test_status_and_application(parser: Parser) -> None:
    s = parser.parse(T.replace("telemetry", "status"), b"offline", NOW)
    assert (s.kind, s.status, s.device_id) == ("status", "offline", "aq-1")
    a = parser.parse(
        f"ioc/{WARD}/applications",
        b'{"id": "HS-1", "event": "received", "ts": "2026-09-01T08:00:00+07:00",'
        b' "due": 1790000000000, "channel": "online", "procedure": "P1"}',
        NOW,
    )
    assert a.kind == "application" and a.event is not None
    assert a.event.ts == dt.datetime(2026, 9, 1, 1, 0, tzinfo=dt.UTC)
    assert a.event.ward_code == WARD and a.event.channel == "online"


# -- fuzzing: >= 10,000 generated payloads ----------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_junk = st.recursive(
    json_leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5), st.dictionaries(st.text(max_size=8), kids, max_size=5)
    ),
    max_leaves=25,
)
metric_names = st.sampled_from(["pm25", "pm10", "no2", "co", "humidity", "rain_mm", "x"])
values_dict = st.dictionaries(metric_names, json_leaf, min_size=0, max_size=6)
ts_value = st.one_of(
    st.integers(min_value=NOW_MS - 500 * 86_400_000, max_value=NOW_MS + 1_000_000),
    st.text(max_size=30),
    st.just("2026-09-21T08:00:00+07:00"),
    json_leaf,
)
item = st.one_of(values_dict, st.fixed_dictionaries({"ts": ts_value, "values": values_dict}))
telemetry = st.one_of(item, st.lists(item, max_size=8), json_junk)
topics = st.one_of(
    st.just(T),
    st.just(T.replace("telemetry", "status")),
    st.just(f"ioc/{WARD}/applications"),
    st.builds(
        lambda w, t, d, k: f"ioc/{w}/{t}/{d}/{k}",
        st.sampled_from([WARD, "20197", "0", "ward"]),
        st.sampled_from(["air_quality", "noise", "nope"]),
        st.text(max_size=10),
        st.sampled_from(["telemetry", "status", "other"]),
    ),
    st.text(max_size=40),
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


payloads = st.one_of(
    telemetry.map(_encode),
    st.binary(max_size=200),  # bad UTF-8, garbage
    st.text(max_size=50).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


def check(parser: Parser, topic: str, payload: bytes) -> None:
    p = parser.parse(topic, payload, NOW)  # must never raise
    assert p.kind in ("telemetry", "status", "application", "invalid")
    for pr in p.problems:
        assert pr.code in REASONS and pr.detail
    if p.kind == "invalid":
        assert p.problems and not p.lines
    if not p.problems:
        assert p.kind != "invalid"
    for ts, ward, dev, metric, value in rows(p):
        v = float(value)
        assert math.isfinite(v)
        lo, hi = parser.metrics[p.device_type or ""][metric]
        assert lo <= v <= hi
        when = dt.datetime.fromisoformat(ts).timestamp()
        assert NOW - 400 * 86400 <= when <= NOW + 300
        assert ward == p.ward and dev == p.device_id


FUZZ = settings(
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)


@FUZZ
@given(payload=payloads)
def test_fuzz_telemetry_payloads(parser: Parser, payload: bytes) -> None:
    check(parser, T, payload)


@FUZZ
@given(topic=topics, payload=payloads)
def test_fuzz_topics_and_payloads(parser: Parser, topic: str, payload: bytes) -> None:
    check(parser, topic, payload)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    values=st.dictionaries(
        st.sampled_from(["pm25", "pm10", "no2", "so2", "humidity"]),
        st.floats(min_value=0, max_value=100, allow_nan=False),
        min_size=1,
    ),
    age_ms=st.integers(min_value=0, max_value=399 * 86_400_000),
)
def test_valid_payloads_are_kept_whole(
    parser: Parser, values: dict[str, float], age_ms: int
) -> None:
    p = parser.parse(T, json.dumps({"ts": NOW_MS - age_ms, "values": values}).encode(), NOW)
    assert not p.problems
    assert {(r[3], r[4]) for r in rows(p)} == set(values.items())
