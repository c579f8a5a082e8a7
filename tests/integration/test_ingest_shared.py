"""Two ingesters in one shared subscription group split a stream: no loss, no duplicates."""

from __future__ import annotations

import os
import time
from pathlib import Path

import mqtt_support
import pytest
from ingest_helpers import (
    IngesterProcess,
    Publisher,
    make_config_dir,
    query_all,
    reading_messages,
    unique_prefix,
    wait_for_count,
)

WARD = "20197"


def test_shared_group_splits_the_stream(tmp_path: Path, fresh_db_url: str, mqtt_url: str) -> None:
    if reason := mqtt_support.lacks(mqtt_url, "shared_subscriptions"):
        pytest.skip(f"{reason}; `ioc ingest mqtt --shared` needs them")
    prefix = unique_prefix()
    cfg = make_config_dir(tmp_path / "cfg", prefix)
    group = f"g{os.getpid()}"
    ings = [
        IngesterProcess(
            fresh_db_url,
            mqtt_url,
            cfg,
            f"{prefix.split('/')[0]}-{i}",
            shared=group,
            log=tmp_path / f"ing{i}.log",
        )
        for i in range(2)
    ]
    n = 4000
    pub = None
    try:
        for ing in ings:
            ing.start()
        pub = Publisher(mqtt_url)
        t0 = int(time.time() * 1000) - n
        for topic, payload in reading_messages(prefix, WARD, n, metrics=2, t0=t0):
            pub.publish(topic, payload)
        pub.wait_all(120)
        got = wait_for_count(fresh_db_url, "SELECT count(*) FROM readings", 2 * n, 120)
        assert got == 2 * n
        for ing in ings:
            assert ing.terminate() == 0, ing.log_text()[-2000:]
    finally:
        if pub is not None:
            pub.close()
        for ing in ings:
            ing.ensure_stopped()
    rows = query_all(
        fresh_db_url,
        "SELECT count(*), count(DISTINCT (device_id, metric, ts)) FROM readings",
    )
    assert rows == [(2 * n, 2 * n)]
    shares = query_all(
        fresh_db_url,
        "SELECT instance, (details->>'received')::int, status FROM service_status ORDER BY 1",
    )
    assert len(shares) == 2 and all(s[2] == "stopped" for s in shares)
    received = [s[1] for s in shares]
    # each got a real share, and together exactly the stream (nothing delivered twice)
    assert min(received) > n // 10, received
    assert sum(received) == n, received
