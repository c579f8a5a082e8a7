"""ioc.applications: the state machine (pure), storage (real PostgreSQL) and the file import."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from ingest_helpers import ROOT, query_all, query_one

from ioc.applications import (
    AppEvent,
    EventError,
    event_from_mapping,
    import_file,
    parse_time,
    replay,
    store_event,
)

W = "20195"
D0 = dt.datetime(2026, 9, 1, 1, 0, tzinfo=dt.UTC)


def ev(event: str, hours: float, app: str = "A1", **kw: object) -> AppEvent:
    due = kw.pop("due", D0 + dt.timedelta(days=10) if event == "received" else None)
    return AppEvent(
        id=app,
        event=event,
        ts=D0 + dt.timedelta(hours=hours),
        ward_code=str(kw.pop("ward", W)),
        procedure=kw.pop("procedure", "P1" if event == "received" else None),  # type: ignore[arg-type]
        channel=kw.pop("channel", "online" if event == "received" else None),  # type: ignore[arg-type]
        due=due,  # type: ignore[arg-type]
        reason=kw.pop("reason", None),  # type: ignore[arg-type]
    )


# -- pure ---------------------------------------------------------------------------------------


def test_received_then_completed() -> None:
    r = replay([ev("received", 0), ev("completed", 5)])
    assert r.state is not None and not r.skipped
    assert r.state.status == "completed"
    assert r.state.completed_at == D0 + dt.timedelta(hours=5)
    assert r.state.received_at == D0 and r.state.channel == "online"


def test_returned_pauses_the_clock_and_received_resumes_with_new_due() -> None:
    new_due = D0 + dt.timedelta(days=20)
    r = replay(
        [
            ev("received", 0),
            ev("returned", 10),
            ev("received", 34, due=new_due),
            ev("returned", 40),
            ev("received", 41, due=new_due),
            ev("completed", 50),
        ]
    )
    s = r.state
    assert s is not None and not r.skipped
    assert s.status == "completed" and s.return_count == 2
    assert s.paused_seconds == (24 + 1) * 3600
    assert s.due_at == new_due and s.received_at == D0
    assert s.returned_at == D0 + dt.timedelta(hours=40)


def test_every_arrival_order_gives_the_same_row() -> None:
    events = [
        ev("received", 0),
        ev("returned", 3),
        ev("received", 7, due=D0 + dt.timedelta(days=12)),
        ev("cancelled", 9, reason="withdrawn"),
    ]
    states = {repr(replay(list(p)).state) for p in itertools.permutations(events)}
    assert len(states) == 1
    final = replay(events).state
    assert final is not None and final.status == "cancelled"
    assert final.cancel_reason == "withdrawn" and final.paused_seconds == 4 * 3600


def test_duplicates_change_nothing() -> None:
    a = replay([ev("received", 0), ev("completed", 1)])
    b = replay([ev("received", 0), ev("received", 0), ev("completed", 1), ev("completed", 1)])
    assert a.state == b.state and not b.skipped


@pytest.mark.parametrize(
    ("events", "bad"),
    [
        (["received@0", "completed@1", "completed@2"], "completed@2"),
        (["received@0", "cancelled@1", "completed@2"], "completed@2"),
        (["received@0", "received@1"], "received@1"),
        (["received@0", "returned@1", "returned@2"], "returned@2"),
        (["received@0", "returned@1", "completed@2"], "completed@2"),
        (["completed@0", "received@1"], "completed@0"),
    ],
)
def test_impossible_transitions_are_skipped(events: list[str], bad: str) -> None:
    parsed = [ev(e.split("@")[0], float(e.split("@")[1])) for e in events]
    r = replay(parsed)
    assert [f"{s.event}@{int((s.ts - D0).total_seconds() // 3600)}" for s, _ in r.skipped] == [bad]


def test_events_before_any_received_wait() -> None:
    r = replay([ev("completed", 5)])
    assert r.state is None and len(r.pending) == 1 and not r.skipped


def test_event_validation() -> None:
    good = {"id": "X", "event": "received", "ts": 1790000000000, "due": "2026-10-01T00:00+07:00"}
    e = event_from_mapping(good, W)
    assert e.due == dt.datetime(2026, 9, 30, 17, 0, tzinfo=dt.UTC)
    for bad, code in [
        ({**good, "event": "done"}, "bad_event"),
        ({**good, "due": None}, "missing_field"),
        ({**good, "ts": "2026-10-01 08:00"}, "bad_ts"),
        ({**good, "channel": "pigeon"}, "bad_field"),
        ({**good, "id": {"x": 1}}, "bad_field"),
        ({**good, "id": "x" * 500}, "bad_field"),
    ]:
        with pytest.raises(EventError) as info:
            event_from_mapping(bad, W)
        assert info.value.code == code
    assert parse_time("2026-10-01 08:00", naive_tz=dt.timezone(dt.timedelta(hours=7))) == (
        dt.datetime(2026, 10, 1, 1, 0, tzinfo=dt.UTC)
    )


# -- storage ------------------------------------------------------------------------------------


def store_all(url: str, events: list[AppEvent]) -> list[str | None]:
    conn = psycopg2.connect(url)
    out = []
    try:
        with conn.cursor() as cur:
            for e in events:
                res = store_event(cur, e)
                out.append(None if res.accepted else res.code)
        conn.commit()
    finally:
        conn.close()
    return out


def test_store_out_of_order_duplicates_and_rejects(fresh_db_url: str) -> None:
    events = [
        ev("completed", 30),  # before its received: waits
        ev("returned", 10),
        ev("received", 0),
        ev("received", 20, due=D0 + dt.timedelta(days=15)),
        ev("received", 0),  # duplicate
        ev("completed", 40),  # impossible: completed twice
        ev("received", 1, app="B", ward="20197"),
        ev("completed", 2, app="B"),  # ward W, but B belongs to 20197
    ]
    assert store_all(fresh_db_url, events) == [
        None,
        None,
        None,
        None,
        None,
        "impossible_transition",
        None,
        "ward_mismatch",
    ]
    rows = query_all(
        fresh_db_url,
        "SELECT id, ward_code, status, received_at, due_at, completed_at, return_count,"
        " paused_seconds FROM applications ORDER BY id",
    )
    assert rows == [
        (
            "A1",
            W,
            "completed",
            D0,
            D0 + dt.timedelta(days=15),
            D0 + dt.timedelta(hours=30),
            1,
            10 * 3600.0,
        ),
        (
            "B",
            "20197",
            "received",
            D0 + dt.timedelta(hours=1),
            D0 + dt.timedelta(days=10),
            None,
            0,
            0.0,
        ),
    ]
    assert query_one(fresh_db_url, "SELECT count(*) FROM application_events") == 5


# -- import -------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


HEADER = ["id", "event", "ts", "procedure", "channel", "due", "reason", "ward"]


def test_import_csv_reports_bad_rows_and_imports_the_rest(
    fresh_db_url: str, tmp_path: Path
) -> None:
    f = tmp_path / "apps.csv"
    write_csv(
        f,
        [
            HEADER,
            ["I1", "received", "2026-09-01T08:00:00+07:00", "P", "counter", "2026-09-10", "", W],
            ["I1", "completed", "2026-09-03 09:00", "", "", "", "", W],  # naive = local time
            ["I2", "received", "2026-09-01T08:00:00+07:00", "P", "fax", "2026-09-10", "", W],
            ["I3", "received", "1790000000000", "P", "online", "1790900000000", "", "99999"],
            ["I1", "cancelled", "2026-09-04T09:00:00+07:00", "", "", "", "late", W],
            ["I4", "received", "2026-09-01T08:00:00+07:00", "P", "postal", "2026-09-10", "", W],
        ],
    )
    conn = psycopg2.connect(fresh_db_url)
    try:
        report = import_file(conn, f, {W, "20197"})
    finally:
        conn.close()
    assert report.rows == 6 and report.imported == 3
    assert [(n, r.split(":")[0]) for n, r in report.bad] == [
        (4, "bad_field"),
        (5, "unknown_ward"),
        (6, "impossible_transition"),
    ]
    assert query_all(
        fresh_db_url, "SELECT id, status, completed_at FROM applications ORDER BY id"
    ) == [
        ("I1", "completed", dt.datetime(2026, 9, 3, 2, 0, tzinfo=dt.UTC)),
        ("I4", "received", None),
    ]


def test_import_cli_xlsx(fresh_db_url: str, tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER)
    ws.append(
        [
            "X1",
            "received",
            dt.datetime(2026, 9, 1, 8, 0),
            "P",
            "online",
            dt.datetime(2026, 9, 9),
            None,
            int(W),
        ]
    )
    ws.append(["X1", "returned", dt.datetime(2026, 9, 2, 8, 0), None, None, None, None, W])
    ws.append(["X2", "received", "not a date", "P", "online", dt.datetime(2026, 9, 9), None, W])
    path = tmp_path / "apps.xlsx"
    wb.save(path)
    env = {**os.environ, "IOC_DATABASE_URL": fresh_db_url, "IOC_CONFIG_DIR": str(ROOT / "config")}
    proc = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "import", "applications", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "row 4: bad_ts" in proc.stderr
    assert "2 event(s) imported" in proc.stdout
    assert query_all(fresh_db_url, "SELECT id, status, return_count FROM applications") == [
        ("X1", "returned", 1)
    ]
    # a second import changes nothing (idempotent)
    proc = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "import", "applications", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "0 event(s) imported, 2 already present" in proc.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "import", "applications", str(tmp_path / "no.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_many_events_in_one_transaction(fresh_db_url: str) -> None:
    """A back-fill batch holds thousands of applications' events in one transaction: the
    per-application lock must not exhaust PostgreSQL's shared lock table (advisory locks did,
    'out of shared memory', with max_locks_per_transaction = 64)."""
    n = 40_000
    conn = psycopg2.connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            for i in range(n):
                assert store_event(cur, ev("received", i / 1000, app=f"bulk-{i}")).accepted
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM applications WHERE id LIKE 'bulk-%'")
            assert cur.fetchone() == (n,)
    finally:
        conn.close()
