"""ingest.writer against the real PostgreSQL: idempotent COPY, ready-made lines, group commit,
callbacks after COMMIT only, connection loss, refused units, stop() flushing."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg2
from ingest_helpers import query_all, query_one, terminate_backends

from ingest.writer import (
    CAMERA_METRICS,
    DEVICES_SEEN,
    INGEST_REJECTS,
    READINGS,
    BatchWriter,
    TableSpec,
    Work,
    copy_insert,
    copy_lines,
    execute_reject,
    reject_key,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def reading(i: int, device: str = "w-dev") -> tuple[object, ...]:
    return (T0 + dt.timedelta(seconds=i), "20195", device, "pm25", float(i))


def reject(
    reason: str,
    payload: bytes = b"",
    *,
    at: dt.datetime = T0,
    mid: int | None = 1,
    match: bool = False,
    topic: str = "t",
) -> tuple[object, ...]:
    """An INGEST_REJECTS row as the MQTT ingester makes it."""
    key = reject_key(topic.encode(), payload, reason, mid)
    return (at, topic, reason, payload.decode(), key, match)


def test_copy_insert_is_idempotent_and_escapes(fresh_db_url: str) -> None:
    conn = psycopg2.connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            rows = [reading(i) for i in range(100)]
            assert copy_insert(cur, READINGS, rows) == 100
            assert copy_insert(cur, READINGS, rows) == 0  # redelivery: nothing new
            lines = [f"{T0.isoformat()}\t20195\tw-dev2\tpm10\t{i}\n" for i in range(1)]
            assert copy_insert(cur, READINGS, [reading(500)], lines) == 2
            why = "bad_json: tab\there\nnew\\line"
            odd = (T0, "ioc/x", why, None, reject_key(b"ioc/x", b"", why, 1), False)
            assert copy_insert(cur, INGEST_REJECTS, [odd]) == 1
            cam = [(T0, "20195", "cam1", "count_in", 3)]
            assert copy_insert(cur, CAMERA_METRICS, cam) == 1
            assert copy_insert(cur, CAMERA_METRICS, cam) == 0
        conn.commit()
    finally:
        conn.close()
    assert query_one(fresh_db_url, "SELECT count(*) FROM readings") == 102
    assert query_one(fresh_db_url, "SELECT reason FROM ingest_rejects") == odd[2]
    assert query_one(fresh_db_url, "SELECT payload IS NULL FROM ingest_rejects") is True


def test_copy_lines_formats_special_values() -> None:
    text = copy_lines([(None, True, 1.5, float("nan"), "a\tb", T0)])
    assert text == f"\\N\tt\t1.5\tNaN\ta\\tb\t{T0.isoformat()}\n"


def test_devices_seen_upsert_moves_last_seen_forward_only(fresh_db_url: str) -> None:
    conn = psycopg2.connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            later, earlier = T0 + dt.timedelta(hours=1), T0
            copy_insert(
                cur,
                DEVICES_SEEN,
                [
                    ("d1", "20195", "noise", later, later),
                    ("d1", "20195", "noise", earlier, earlier),
                ],
            )
            copy_insert(cur, DEVICES_SEEN, [("d1", "20195", "noise", earlier, earlier)])
        conn.commit()
    finally:
        conn.close()
    assert query_all(fresh_db_url, "SELECT device_id, last_seen, status FROM devices") == [
        ("d1", T0 + dt.timedelta(hours=1), "unknown")
    ]


def test_done_runs_after_commit_and_batches_group(fresh_db_url: str) -> None:
    seen_at_done: list[int] = []
    writer = BatchWriter(fresh_db_url, max_rows=10_000, max_delay_s=0.5).start()
    try:
        lock = threading.Lock()

        def done() -> None:
            # the unit's rows are visible to another connection when done() runs
            with lock:
                seen_at_done.append(query_one(fresh_db_url, "SELECT count(*) FROM readings"))

        n = 2000
        for i in range(n):
            w = Work(rows={READINGS: [reading(i)]})
            if i == n - 1:
                w.done = done
            writer.submit(w)
        deadline = time.monotonic() + 30
        while not seen_at_done and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        writer.stop()
    assert seen_at_done == [2000]
    assert writer.stats.rows_inserted == 2000
    assert writer.stats.batches < 200  # units were grouped into few transactions


def test_connection_loss_retries_without_loss(fresh_db_url: str) -> None:
    done_count = 0
    writer = BatchWriter(
        fresh_db_url, max_rows=200, max_delay_s=0.05, application_name="ioc-ingest-mqtt test"
    ).start()
    try:

        def done() -> None:
            nonlocal done_count
            done_count += 1

        total = 0
        for k in range(20):
            for i in range(200):
                writer.submit(Work(rows={READINGS: [reading(k * 200 + i)]}, done=done))
                total += 1
            if k in (5, 12):
                time.sleep(0.1)
                terminate_backends(fresh_db_url, "ioc-ingest-mqtt test")
        deadline = time.monotonic() + 60
        while done_count < total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        writer.stop()
    assert done_count == total
    assert query_one(fresh_db_url, "SELECT count(*) FROM readings") == total
    assert writer.stats.db_errors >= 1


def test_refused_unit_goes_to_on_fail_and_the_rest_is_written(fresh_db_url: str) -> None:
    failures: list[str] = []
    acked: list[int] = []
    writer = BatchWriter(fresh_db_url, max_rows=1000, max_delay_s=0.2).start()
    try:
        for i in range(10):
            rows = [reading(i)]
            if i == 4:  # NULL value violates NOT NULL: the database refuses this unit
                rows = [(T0, "20195", "w-dev", "pm25", None)]
            writer.submit(
                Work(
                    rows={READINGS: rows},
                    done=lambda i=i: acked.append(i),
                    on_fail=lambda exc: (
                        failures.append(type(exc).__name__)
                        or Work(rows={INGEST_REJECTS: [reject(f"db_refused: {exc}")]})
                    ),
                )
            )
    finally:
        writer.stop()
    assert sorted(acked) == list(range(10))  # the refused one is acked after its reject
    assert failures == ["NotNullViolation"]
    assert query_one(fresh_db_url, "SELECT count(*) FROM readings") == 9
    assert query_one(fresh_db_url, "SELECT count(*) FROM ingest_rejects") == 1


def test_apply_steps_run_in_the_batch_transaction(fresh_db_url: str) -> None:
    writer = BatchWriter(fresh_db_url, max_delay_s=0.05).start()
    try:
        for i in range(3):
            writer.submit(
                Work(
                    apply=lambda cur, i=i: cur.execute(
                        "INSERT INTO service_status (service, instance, status)"
                        " VALUES ('t', %s, 'ok')",
                        (str(i),),
                    )
                )
            )
    finally:
        writer.stop()
    assert query_one(fresh_db_url, "SELECT count(*) FROM service_status") == 3


def test_stop_flushes_everything_queued(fresh_db_url: str) -> None:
    writer = BatchWriter(fresh_db_url, max_rows=50, max_delay_s=5).start()
    for i in range(1234):
        writer.submit(Work(rows={READINGS: [reading(i)]}))
    writer.stop()
    assert query_one(fresh_db_url, "SELECT count(*) FROM readings") == 1234
    assert not writer.alive()


def test_custom_table_spec(fresh_db_url: str) -> None:
    spec = TableSpec("wards", ("code", "name", "type", "lat", "lon", "area_km2"), ("code",))
    conn = psycopg2.connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            assert copy_insert(cur, spec, [("20195", "x", "xã", 1, 2, 3)]) == 0  # exists
            assert copy_insert(cur, spec, [("T1", "x", "xã", 1, 2, 3)]) == 1
        conn.commit()
    finally:
        conn.close()


def test_direct_copy_falls_back_to_staging_on_redelivery(fresh_db_url: str) -> None:
    writer = BatchWriter(fresh_db_url, max_delay_s=0.05, direct_copy=True).start()
    try:
        writer.submit(Work(rows={READINGS: [reading(i) for i in range(10)]}))
        time.sleep(0.3)
        # a redelivery of 5 rows together with 5 new ones: direct COPY conflicts, staging wins
        writer.submit(Work(rows={READINGS: [reading(i) for i in range(5, 15)]}))
    finally:
        writer.stop()
    assert query_one(fresh_db_url, "SELECT count(*) FROM readings") == 15
    assert writer.stats.rows_inserted == 15
    assert writer._direct_off_until  # staging path chosen for a while after the conflict


def test_apply_steps_per_transaction_are_capped(fresh_db_url: str) -> None:
    """Units with many savepoints (application events) are not piled into one transaction:
    thousands of subtransaction locks exhaust PostgreSQL's shared lock table."""
    per_tx: dict[int, int] = {}

    def events(cur: psycopg2.extensions.cursor, k: int) -> None:
        cur.execute("SELECT txid_current()")
        row = cur.fetchone()
        assert row is not None
        for j in range(20):
            cur.execute("SAVEPOINT ev")
            cur.execute(
                "INSERT INTO service_status (service, instance, status) VALUES ('t', %s, 'ok')",
                (f"{k}-{j}",),
            )
            cur.execute("RELEASE SAVEPOINT ev")
        per_tx[row[0]] = per_tx.get(row[0], 0) + 20

    writer = BatchWriter(fresh_db_url, max_steps=50, max_delay_s=1.0)
    for k in range(50):  # all queued before the writer starts: one batch if uncapped
        writer.submit(Work(apply=lambda cur, k=k: events(cur, k), steps=20))
    writer.start()
    writer.stop()
    assert query_one(fresh_db_url, "SELECT count(*) FROM service_status") == 1000
    assert max(per_tx.values()) <= 60, per_tx  # closes at >= 50 steps: at most 50 + 20 - 10
    assert len(per_tx) >= 1000 // 60


def test_resource_error_with_the_connection_open_goes_unit_by_unit(fresh_db_url: str) -> None:
    """An OperationalError that is not a lost connection (here a statement timeout whenever
    the unit shares its transaction, like 'out of shared memory' for a too large batch) must
    not retry the same batch forever: the units are retried one by one and all commit."""
    units_in_tx: dict[int, int] = {}
    done: list[int] = []

    def apply(cur: psycopg2.extensions.cursor, k: int) -> None:
        cur.execute("SELECT txid_current()")
        row = cur.fetchone()
        assert row is not None
        units_in_tx[row[0]] = units_in_tx.get(row[0], 0) + 1
        cur.execute(
            "INSERT INTO service_status (service, instance, status) VALUES ('t', %s, 'ok')",
            (str(k),),
        )
        if k == 9 and units_in_tx[row[0]] > 1:
            cur.execute("SET LOCAL statement_timeout = 1")
            cur.execute("SELECT pg_sleep(0.05)")  # QueryCanceled, connection stays open

    writer = BatchWriter(fresh_db_url, max_delay_s=1.0)
    for k in range(10):
        writer.submit(
            Work(apply=lambda cur, k=k: apply(cur, k), steps=1, done=lambda k=k: done.append(k))
        )
    writer.start()
    deadline = time.monotonic() + 30
    while len(done) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop()
    assert sorted(done) == list(range(10))
    assert query_one(fresh_db_url, "SELECT count(*) FROM service_status") == 10
    assert writer.stats.db_errors >= 1


def test_devices_seen_moves_first_seen_back_for_back_filled_history(fresh_db_url: str) -> None:
    """A device first seen live, whose history arrives afterwards (a back-fill), counts from its
    oldest reading: sensor uptime of the back-filled days is not 'no data'."""
    conn = psycopg2.connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            live = T0 + dt.timedelta(days=7)
            copy_insert(cur, DEVICES_SEEN, [("d1", "20195", "noise", live, live)])
            # the history arrives later: its readings are old, the messages new
            arrived = live + dt.timedelta(minutes=1)
            copy_insert(
                cur,
                DEVICES_SEEN,
                [
                    ("d1", "20195", "noise", T0 + dt.timedelta(days=1), arrived),
                    ("d1", "20195", "noise", T0, arrived),
                ],
            )
        conn.commit()
    finally:
        conn.close()
    assert query_all(fresh_db_url, "SELECT first_seen, last_seen FROM devices") == [
        (T0, T0 + dt.timedelta(days=7, minutes=1))
    ]


def test_reject_rows_are_stored_once_per_identity(fresh_db_url: str) -> None:
    """INGEST_REJECTS: a row that may match (a redelivery, or a payload with its own identity)
    takes the receive time of an earlier row with the same key and adds nothing; a row that
    may not match (a new message) is kept even with the same topic, payload and reason."""
    later = T0 + dt.timedelta(minutes=5)
    garbage = reject("bad_json: x", b"{x", mid=7)
    conn = psycopg2.connect(fresh_db_url)
    try:
        with conn.cursor() as cur:
            assert copy_insert(cur, INGEST_REJECTS, [garbage]) == 1
            # its redelivery (DUP, same packet id) later: nothing new
            assert (
                copy_insert(
                    cur, INGEST_REJECTS, [reject("bad_json: x", b"{x", mid=7, at=later, match=True)]
                )
                == 0
            )
            # the same bytes published again (not a redelivery) later: a second message
            assert (
                copy_insert(cur, INGEST_REJECTS, [reject("bad_json: x", b"{x", mid=7, at=later)])
                == 1
            )
            # a redelivery of a message whose first delivery was never stored: stored
            assert (
                copy_insert(
                    cur, INGEST_REJECTS, [reject("bad_json: x", b"{x", mid=8, at=later, match=True)]
                )
                == 1
            )
            # a payload with its own identity (ts): the same whenever and however it arrives,
            # also twice in one batch
            own = b'{"ts": 1, "values": {"pm25": -1}}'
            rows = [
                reject(
                    "out_of_range: pm25", own, mid=None, match=True, at=T0 + dt.timedelta(seconds=s)
                )
                for s in (1, 2)
            ]
            assert copy_insert(cur, INGEST_REJECTS, rows) == 1
            assert (
                copy_insert(
                    cur,
                    INGEST_REJECTS,
                    [reject("out_of_range: pm25", own, mid=None, match=True, at=later)],
                )
                == 0
            )
        conn.commit()
        with conn.cursor() as cur:  # the single-row path (inside an apply step) agrees
            execute_reject(cur, reject("bad_json: x", b"{x", mid=7, at=later, match=True))
            execute_reject(cur, reject("bad_event: y", b"{y", mid=None, match=True, at=later))
            execute_reject(cur, reject("bad_event: y", b"{y", mid=None, match=True))
        conn.commit()
    finally:
        conn.close()
    rows = query_all(
        fresh_db_url,
        "SELECT reason, count(*), min(received_at) FROM ingest_rejects GROUP BY 1 ORDER BY 1",
    )
    assert rows == [
        ("bad_event: y", 1, later),
        ("bad_json: x", 3, T0),
        ("out_of_range: pm25", 1, T0 + dt.timedelta(seconds=1)),
    ]


def test_stop_gives_up_after_its_timeout_when_the_database_is_away(fresh_db_url: str) -> None:
    """stop(timeout) with nothing listening at the database's address: False after about the
    timeout, the thread ends, the units are abandoned and never done (never acked)."""
    from ingest_helpers import free_port

    done: list[int] = []
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    writer = BatchWriter(dsn, max_delay_s=0.05).start()
    for i in range(3):
        writer.submit(Work(rows={READINGS: [reading(i)]}, done=lambda i=i: done.append(i)))
    time.sleep(0.5)  # the writer is retrying its connection
    t0 = time.monotonic()
    assert writer.stop(timeout=1.0) is False
    assert 1.0 <= time.monotonic() - t0 < 3.5
    assert not writer.alive()
    assert done == []
    assert writer.stats.units_abandoned == 3
    # a writer whose database answers still flushes everything and says so
    ok = BatchWriter(fresh_db_url, max_delay_s=0.05).start()
    ok.submit(Work(rows={READINGS: [reading(1)]}, done=lambda: done.append(1)))
    assert ok.stop(timeout=10) is True
    assert done == [1]
