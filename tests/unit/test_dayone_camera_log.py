"""The camera worker logs health events with a readable local time, not a raw epoch."""

from __future__ import annotations

import re

from ingest.cameras.worker import when


def test_health_event_time_is_readable() -> None:
    text = when(1_765_000_000.25)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d", text), text
    assert "1765000000" not in text
    assert text.endswith("+07:00")  # Vietnam's time, whatever the host's zone
