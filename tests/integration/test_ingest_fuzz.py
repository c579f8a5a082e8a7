"""Fuzz through the broker: 1,200 hypothesis-generated messages plus fixed cases (wrong
types, NaN, huge numbers, nested junk, bad UTF-8, wrong topics) into a running ingester. It
never stops; every problem the parser finds is a stored reject with its reason; every valid
reading is stored. (The 10k-payload fuzz of the parser alone is in test_parse.py.)"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import Publisher, query_all, query_one
from test_ingest_mqtt import wait_until, with_prefix
from test_parse import json_junk, json_leaf

from ingest.mqtt import MqttIngester
from ingest.parse import REASONS, Parser
from ioc.config import Config
from ioc.settings import parse_mqtt_url

W = "20195"
N = 1200
NOW_MS = int(time.time() * 1000)

metric = st.sampled_from(["pm25", "pm10", "no2", "co", "humidity", "rain_mm", "💥"])
values = st.dictionaries(metric, json_leaf, max_size=5)
ts = st.one_of(
    st.integers(min_value=NOW_MS - 30 * 86_400_000, max_value=NOW_MS - 60_000),  # valid
    st.integers(min_value=NOW_MS + 3_600_000, max_value=NOW_MS + 86_400_000),  # future
    st.just("2026-01-01T00:00:00"),  # no offset
    json_leaf,
)
item = st.one_of(values, st.fixed_dictionaries({"ts": ts, "values": values}))
body = st.one_of(
    item.map(json.dumps).map(str.encode),
    st.lists(item, max_size=6).map(json.dumps).map(str.encode),
    json_junk.map(json.dumps).map(str.encode),
    st.binary(max_size=64),
    st.sampled_from([b"online", b"offline", b"ONLINE", b"on"]),
)
kinds = st.sampled_from(
    ["telemetry"] * 6 + ["status", "applications", "bad_ward", "bad_type", "bad_device", "deep"]
)


def generate(n: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(kind=kinds, payload=body)
    def collect(kind: str, payload: bytes) -> None:
        out.append((kind, payload))

    collect()
    return out


def topic_for(prefix: str, kind: str, i: int, run: str) -> str:
    dev = f"fz{run}-{i}"
    return {
        "telemetry": f"{prefix}/{W}/air_quality/{dev}/telemetry",
        "deep": f"{prefix}/{W}/air_quality/{dev}/telemetry",
        "status": f"{prefix}/{W}/noise/{dev}/status",
        "applications": f"{prefix}/{W}/applications",
        "bad_ward": f"{prefix}/00000/air_quality/{dev}/telemetry",
        "bad_type": f"{prefix}/{W}/toaster/{dev}/telemetry",
        "bad_device": f"{prefix}/{W}/air_quality/{dev}!/telemetry",
    }[kind]


def test_fuzz_through_the_broker(config: Config, fresh_db_url: str, mqtt_url: str) -> None:
    run = uuid.uuid4().hex[:6]
    prefix = f"fz{run}/ioc"
    cfg = with_prefix(config, prefix)
    reference = Parser(cfg)
    generated = generate(N)
    # plus fixed cases, so each category below is present whatever hypothesis drew
    generated += [
        ("telemetry", b'{"pm25": NaN, "pm10": Infinity}'),
        ("telemetry", b'{"pm25": 1e400, "co": "12"}'),
        ("telemetry", b'{"pm25": 123456789012345678901234567890}'),
        ("telemetry", b'{"pm25": {"nested": [1, {"junk": null}]}}'),
        ("telemetry", b"\xff\xfe{"),
        ("telemetry", b'{"pm25": '),
        ("bad_ward", b'{"pm25": 1}'),
        ("bad_type", b'{"pm25": 1}'),
    ]
    generated += [
        ("telemetry", json.dumps({"pm25": i % 500, "pm10": 1.5}).encode()) for i in range(50)
    ]
    messages: list[tuple[str, bytes]] = []
    for i, (kind, payload) in enumerate(generated):
        if kind == "deep":
            payload = b"[" * 5000 + b"]" * 5000
        messages.append((topic_for(prefix, kind, i, run), payload))
    messages.append((f"{prefix}/{W}/air_quality/last-{run}/telemetry", b'{"pm25": 42}'))
    expect_lines = 0
    expect_problems: dict[str, int] = {}
    app_ok = 0
    for topic, payload in messages:
        parsed = reference.parse(topic, payload)
        expect_lines += len(parsed.lines)
        for p in parsed.problems:
            expect_problems[p.code] = expect_problems.get(p.code, 0) + 1
        if parsed.kind == "application":
            app_ok += 1
    ing = MqttIngester(cfg, fresh_db_url, parse_mqtt_url(mqtt_url), client_id=f"fz-{run}")
    ing.start()
    try:
        pub = Publisher(mqtt_url)
        try:
            for topic, payload in messages:
                pub.publish(topic, payload)
            pub.wait_all(120)
        finally:
            pub.close()
        wait_until(lambda: ing.stats.acked >= len(messages), 120, "every message acked")
        assert ing.writer.alive()
    finally:
        ing.stop()
    assert ing.stats.received_total == len(messages)
    # the last, valid message went through after all the junk
    assert (
        query_one(fresh_db_url, "SELECT value FROM readings WHERE device_id = %s", (f"last-{run}",))
        == 42.0
    )
    assert query_one(fresh_db_url, "SELECT count(*) FROM readings") == expect_lines
    stored: dict[str, int] = {}
    for (reason,) in query_all(fresh_db_url, "SELECT reason FROM ingest_rejects"):
        code = reason.split(":")[0]
        assert code in REASONS
        stored[code] = stored.get(code, 0) + 1
    late = {k: v for k, v in stored.items() if k in ("impossible_transition", "ward_mismatch")}
    assert sum(late.values()) <= app_ok
    assert {k: v for k, v in stored.items() if k not in late} == expect_problems
    assert sum(expect_problems.values()) > N // 2  # the fuzz really produced junk
    assert expect_lines > N // 50  # and valid readings
    kinds_seen: set[Any] = set(expect_problems)
    for reason in (
        "bad_json",
        "bad_utf8",
        "not_finite",
        "not_a_number",
        "out_of_range",
        "unknown_ward",
        "unknown_device_type",
    ):
        assert reason in kinds_seen, f"fuzz never produced {reason}"
