"""The batched database writer shared by the MQTT and camera ingesters.

Producers ``submit`` units of work (rows per table, an optional idempotent ``apply`` step for
upserts, and a ``done`` callback — the MQTT ack). A named thread takes what is queued (group
commit: a batch closes at ``max_rows``, after ``linger_s`` without new units, or ``max_delay_s``
after its first unit) and writes it in ONE transaction. Rows of a table with a unique key are
first ``COPY``-ed straight into it inside a savepoint; if any row already exists (a
redelivery), that is rolled back and the rows go through ``COPY`` into a temporary staging
table and ``INSERT … SELECT … ON CONFLICT DO NOTHING`` (for the next 30 s the staging path is
used directly). Either way redelivered data creates no duplicates. ``done`` callbacks run only
after COMMIT.

Faults: a lost connection is retried with backoff, forever, on the same batch (nothing is acked
meanwhile, so nothing can be lost) — until ``stop(timeout)`` gives up on it: then the units not
committed are abandoned, never ``done`` (the broker redelivers them); a resource error with
the connection still open (out of shared memory, a timeout) retries the batch unit by unit,
each unit until it commits; a unit whose data the database refuses is retried alone and, if it
still fails, handed to its ``on_fail`` (the ingester stores a reject) so one bad message never
blocks the stream. A batch holds at most ``max_steps`` apply steps (savepoints) besides its
``max_rows`` rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
Cursor = psycopg2.extensions.cursor


@dataclass(frozen=True)
class TableSpec:
    """A target table: its columns in row order and the unique key that makes writes idempotent.

    ``insert_sql`` replaces the default ``INSERT … SELECT … ON CONFLICT DO NOTHING`` from the
    staging table (``{staging}`` in it is the staging table's name), e.g. for an upsert that
    aggregates the batch first. ``key`` tells apart specs of the same table. ``staging_extra``:
    column definitions the staging table has besides the target's (e.g. a per-row flag the
    ``insert_sql`` reads); they are part of ``columns``.
    """

    name: str
    columns: tuple[str, ...]
    conflict: tuple[str, ...] | None = None
    insert_sql: str | None = None
    key: str = ""
    staging_extra: str = ""

    @property
    def staging(self) -> str:
        return f"_stage_{self.name}{'_' + self.key if self.key else ''}"


READINGS = TableSpec(
    "readings", ("ts", "ward_code", "device_id", "metric", "value"), ("device_id", "metric", "ts")
)
CAMERA_METRICS = TableSpec(
    "camera_metrics",
    ("ts", "ward_code", "camera_id", "metric", "value"),
    ("camera_id", "metric", "ts"),
)
# Rejects are stored once per identity (docs/ingest.md, "Rejects are stored once"): a row whose
# match_earlier is true takes the received_at of an earlier row with the same msg_key, if there
# is one, and then conflicts with it (ON CONFLICT DO NOTHING); within a batch such rows count
# once. A row with match_earlier false is a new message: its own received_at.
INGEST_REJECTS = TableSpec(
    "ingest_rejects",
    ("received_at", "topic", "reason", "payload", "msg_key", "match_earlier"),
    ("msg_key", "received_at"),
    insert_sql=(
        "INSERT INTO ingest_rejects (received_at, topic, reason, payload, msg_key)"
        " SELECT DISTINCT ON (s.msg_key, CASE WHEN s.match_earlier THEN NULL"
        " ELSE s.received_at END)"
        " COALESCE(e.received_at, s.received_at), s.topic, s.reason, s.payload, s.msg_key"
        " FROM {staging} s LEFT JOIN LATERAL ("
        " SELECT r.received_at FROM ingest_rejects r"
        " WHERE s.match_earlier AND r.msg_key = s.msg_key"
        " ORDER BY r.received_at DESC LIMIT 1) e ON true"
        " ORDER BY s.msg_key, CASE WHEN s.match_earlier THEN NULL ELSE s.received_at END,"
        " s.received_at"
        " ON CONFLICT (msg_key, received_at) DO NOTHING"
    ),
    staging_extra="match_earlier boolean NOT NULL DEFAULT false",
)
# The same for one row (``reject_row``'s tuple), e.g. inside an apply step.
REJECT_ONE_SQL = (
    "INSERT INTO ingest_rejects (received_at, topic, reason, payload, msg_key)"
    " SELECT COALESCE((SELECT max(r.received_at) FROM ingest_rejects r"
    " WHERE %(match)s AND r.msg_key = %(key)s), %(at)s), %(topic)s, %(reason)s, %(payload)s,"
    " %(key)s ON CONFLICT (msg_key, received_at) DO NOTHING"
)


def reject_key(topic: bytes, payload: bytes, reason: str, mid: int | None) -> str:
    """``ingest_rejects.msg_key``: sha256 of topic, payload, reason (and the MQTT packet id of a
    message without an identity of its own), first 16 bytes as a uuid. Migration 0009 computes
    the same from stored text for rows without ``mid``."""
    h = hashlib.sha256(b"%s\0%s\0%s" % (topic, payload, reason.encode("utf-8", "replace")))
    if mid is not None:
        h.update(b"\0%d" % mid)
    return str(uuid.UUID(bytes=h.digest()[:16]))


def execute_reject(cur: Cursor, row: Row) -> None:
    """Store one row of :data:`INGEST_REJECTS` (same identity rules) with ``cur``."""
    at, topic, reason, payload, key, match = row
    params = {"at": at, "topic": topic, "reason": reason, "payload": payload, "key": key}
    cur.execute(REJECT_ONE_SQL, {**params, "match": match})


# Devices seen in a batch: registers new ones, moves last_seen (when a message was received)
# forward and first_seen (the oldest reading's time) back: history back-filled after a device's
# first live message still counts for its uptime.
DEVICES_SEEN = TableSpec(
    "devices",
    ("device_id", "ward_code", "device_type", "first_seen", "last_seen"),
    ("device_id",),
    insert_sql=(
        "INSERT INTO devices (device_id, ward_code, device_type, first_seen, last_seen)"
        " SELECT device_id, min(ward_code), min(device_type), min(first_seen), max(last_seen)"
        " FROM {staging} GROUP BY device_id"
        " ON CONFLICT (device_id) DO UPDATE"
        " SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen),"
        " first_seen = LEAST(devices.first_seen, EXCLUDED.first_seen)"
    ),
    key="seen",
)


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    s = str(value)
    if any(c in s for c in "\\\t\n\r"):
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s


def copy_lines(rows: Iterable[Row]) -> str:
    """Rows as PostgreSQL COPY text (one line each, tab-separated, escaped)."""
    return "".join("\t".join(_copy_text(v) for v in row) + "\n" for row in rows)


def copy_insert(
    cur: Cursor,
    spec: TableSpec,
    rows: Sequence[Row],
    lines: Sequence[str] = (),
    *,
    direct: bool = False,
) -> int:
    """Write ``rows`` (and ready-made COPY ``lines``) into ``spec`` through a staging table;
    returns rows actually inserted (conflicting ones are skipped).

    ``direct=True`` first tries ``COPY`` straight into the target inside a savepoint (half the
    database work: no staging table, no second pass); if any row conflicts with the unique key
    (a redelivery), the savepoint is rolled back and :class:`DirectCopyConflict` is raised:
    the caller then writes the same rows with ``direct=False``.
    """
    if not rows and not lines:
        return 0
    staging = sql.Identifier(spec.staging)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
    text = copy_lines(rows) + "".join(lines)
    if direct and spec.conflict and not spec.insert_sql:
        cur.execute("SAVEPOINT ioc_direct_copy")
        try:
            cur.copy_expert(
                sql.SQL("COPY {} ({}) FROM STDIN")
                .format(sql.Identifier(spec.name), cols)
                .as_string(cur),
                io.StringIO(text),
                size=1 << 20,
            )
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT ioc_direct_copy")
            raise DirectCopyConflict from None
        copied = cur.rowcount if cur.rowcount >= 0 else len(rows) + len(lines)
        cur.execute("RELEASE SAVEPOINT ioc_direct_copy")
        return int(copied)
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS{})"
            " ON COMMIT DELETE ROWS"
        ).format(
            staging,
            sql.Identifier(spec.name),
            sql.SQL(", " + spec.staging_extra if spec.staging_extra else ""),
        )
    )
    buf = io.StringIO(text)
    cur.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN").format(staging, cols).as_string(cur),
        buf,
        size=1 << 20,
    )
    if spec.insert_sql:
        cur.execute(spec.insert_sql.format(staging=staging.as_string(cur)))
    else:
        conflict: sql.Composable
        if spec.conflict:
            conflict = sql.SQL("ON CONFLICT ({}) DO NOTHING").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in spec.conflict)
            )
        else:
            conflict = sql.SQL("")
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} {}").format(
                sql.Identifier(spec.name), cols, cols, staging, conflict
            )
        )
    inserted = cur.rowcount
    cur.execute(sql.SQL("TRUNCATE {}").format(staging))
    return inserted


class DirectCopyConflict(Exception):
    """A direct COPY met an existing row (redelivery): redo this table through staging."""


@dataclass
class Work:
    """One producer's unit: rows per table, an idempotent extra step, and callbacks.

    ``lines``: rows already formatted as COPY text lines (each ending in a newline, fields
    escaped), the fast path of the MQTT ingester; they go with ``rows`` of the same table.
    ``steps``: how many separate steps ``apply`` runs (e.g. one per application event, each
    in its own savepoint); a batch holds at most ``BatchWriter.max_steps`` of them.
    """

    rows: dict[TableSpec, list[Row]] = field(default_factory=dict)
    apply: Callable[[Cursor], None] | None = None
    done: Callable[[], None] | None = None
    on_fail: Callable[[Exception], Work | None] | None = None
    lines: dict[TableSpec, list[str]] = field(default_factory=dict)
    steps: int = 0

    def size(self) -> int:
        return (
            sum(len(r) for r in self.rows.values())
            + sum(len(x) for x in self.lines.values())
            + self.steps
        ) or 1


@dataclass
class WriterStats:
    """Counters read by the ingesters' metrics (updated by the writer thread only)."""

    batches: int = 0
    rows_submitted: int = 0
    rows_inserted: int = 0
    units_failed: int = 0
    units_abandoned: int = 0  # not written: stop() gave up (database away); never ``done``
    db_errors: int = 0
    last_batch_s: float = 0.0
    last_commit_at: float = 0.0
    connected: bool = False


_STOP = object()


class _Abandon(Exception):
    """stop() gave up waiting: leave the batch in hand (and the queue) unwritten."""


class BatchWriter:
    """A named thread that writes submitted work in batches; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        *,
        max_rows: int = 5000,
        max_steps: int = 200,
        max_delay_s: float = 0.5,
        max_pending: int = 200_000,
        linger_s: float = 0.01,
        direct_copy: bool = True,
        name: str = "ioc-writer",
        application_name: str = "ioc-writer",
        on_batch: Callable[[int, float], None] | None = None,
        on_db_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.max_rows = max_rows
        # Each apply step may hold a savepoint (subtransaction) whose lock lives until COMMIT:
        # thousands in one transaction exhaust PostgreSQL's shared lock table ("out of shared
        # memory", for every session of the server). Measured in a 30-day back-fill.
        self.max_steps = max_steps
        self.max_delay_s = max_delay_s
        self.linger_s = min(linger_s, max_delay_s)
        self.direct_copy = direct_copy
        self._direct_off_until: dict[TableSpec, float] = {}
        self.application_name = application_name
        self.stats = WriterStats()
        self._on_batch = on_batch
        self._on_db_error = on_db_error
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._conn: psycopg2.extensions.connection | None = None
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- producer side -------------------------------------------------------------------
    def start(self) -> BatchWriter:
        self._thread.start()
        return self

    def submit(self, work: Work, timeout: float | None = None) -> None:
        """Queue a unit; blocks while the queue is full (back-pressure)."""
        if self._stopping.is_set():
            raise RuntimeError("writer is stopping")
        self.stats.rows_submitted += work.size()
        self._queue.put(work, timeout=timeout)

    def pending(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout: float = 30.0) -> bool:
        """Flush what is queued, then stop the thread and close the connection. Returns False
        when that did not finish within ``timeout`` (the database is away): the writer then
        abandons what it has not committed (``stats.units_abandoned``; their ``done`` never
        runs) and its thread ends within a few seconds (it is a daemon thread either way)."""
        if not self._thread.is_alive():
            return self.stats.units_abandoned == 0
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(2.0)
            return False
        return self.stats.units_abandoned == 0

    def _pause(self, seconds: float) -> None:
        """Back-off sleep of the writer thread; raises :class:`_Abandon` once stop() gave up."""
        if self._abandon.wait(seconds):
            raise _Abandon

    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- writer thread -------------------------------------------------------------------
    def _connect(self) -> psycopg2.extensions.connection:
        delay = 0.2
        while True:
            if self._abandon.is_set():
                raise _Abandon
            try:
                conn = psycopg2.connect(
                    self.dsn, application_name=self.application_name, connect_timeout=5
                )
                with conn.cursor() as cur:
                    cur.execute("SET TIME ZONE 'UTC'")
                    cur.execute("SET synchronous_commit = on")
                conn.commit()
                self.stats.connected = True
                return conn
            except psycopg2.Error as exc:
                self.stats.connected = False
                self.stats.db_errors += 1
                log.warning("database unavailable (%s); retrying in %.1fs", _one_line(exc), delay)
                if self._on_db_error:
                    self._on_db_error(exc)
                self._pause(delay)
                delay = min(delay * 2, 10.0)

    def _gather(self) -> tuple[list[Work], bool]:
        """Block for the first unit, then take what is queued (group commit): a batch closes
        at ``max_rows``, when the queue has been empty for ``linger_s``, or at
        ``max_delay_s`` after its first unit, whichever comes first. Under load, batches grow
        by themselves while the previous one commits."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch: list[Work] = [first]
        rows = first.size()
        steps = first.steps
        now = time.monotonic()
        deadline = now + self.max_delay_s
        get_nowait = self._queue.get_nowait
        while rows < self.max_rows and steps < self.max_steps:
            try:
                item = get_nowait()
            except queue.Empty:
                remaining = min(self.linger_s, deadline - time.monotonic())
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, True
            batch.append(item)
            rows += item.size()
            steps += item.steps
        return batch, False

    def _run(self) -> None:
        stop = False
        batch: list[Work] = []
        try:
            while not stop:
                batch, stop = self._gather()
                if batch:
                    self._write_until_done(batch)
                batch = []
            # drain anything submitted concurrently with stop
            batch = self._drain()
            if batch:
                self._write_until_done(batch)
            batch = []
        except _Abandon:
            left = len(batch) + len(self._drain())
            self.stats.units_abandoned += left
            log.warning("stopping: %d unit(s) not written (database unavailable)", left)
        self._close()

    def _drain(self) -> list[Work]:
        items: list[Work] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not _STOP:
                items.append(item)

    def _write_until_done(self, batch: list[Work]) -> None:
        delay = 0.2
        while True:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                t0 = time.monotonic()
                inserted = self._write(self._conn, batch)
                elapsed = time.monotonic() - t0
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                if len(batch) > 1 and self._conn is not None and self._conn.closed == 0:
                    # Not a lost connection but a resource error of this transaction (out of
                    # shared memory, a timeout): retrying the same batch could fail forever.
                    # Smaller transactions: unit by unit, each retried until it commits.
                    self._rollback()
                    self.stats.db_errors += 1
                    log.warning("batch failed (%s); retrying unit by unit", _one_line(exc))
                    self._write_one_by_one(batch)
                    return
                self._lost_connection(exc)
                self._pause(delay)
                delay = min(delay * 2, 10.0)
                continue
            except psycopg2.Error as exc:
                # The database refused some data: isolate the culprit(s).
                self._rollback()
                log.warning("batch refused (%s); retrying unit by unit", _one_line(exc))
                self._write_one_by_one(batch)
                return
            self._finish(batch, inserted, elapsed)
            return

    def _write(self, conn: psycopg2.extensions.connection, batch: Iterable[Work]) -> int:
        merged: dict[TableSpec, list[Row]] = {}
        texts: dict[TableSpec, list[str]] = {}
        applies: list[Callable[[Cursor], None]] = []
        for w in batch:
            for spec, rows in w.rows.items():
                merged.setdefault(spec, []).extend(rows)
            for spec, lines in w.lines.items():
                texts.setdefault(spec, []).extend(lines)
            if w.apply is not None:
                applies.append(w.apply)
        inserted = 0
        now = time.monotonic()
        with conn.cursor() as cur:
            for spec in list(dict.fromkeys([*merged, *texts])):
                rows, lines = merged.get(spec, []), texts.get(spec, [])
                if self.direct_copy and self._direct_off_until.get(spec, 0.0) <= now:
                    try:
                        inserted += copy_insert(cur, spec, rows, lines, direct=True)
                        continue
                    except DirectCopyConflict:
                        # redeliveries come in bursts (after a restart): stage for a while
                        self._direct_off_until[spec] = now + 30.0
                inserted += copy_insert(cur, spec, rows, lines)
            for fn in applies:
                fn(cur)
        conn.commit()
        return inserted

    def _write_one_by_one(self, batch: list[Work]) -> None:
        for w in batch:
            while True:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    t0 = time.monotonic()
                    n = self._write(self._conn, [w])
                    self._finish([w], n, time.monotonic() - t0)
                    break
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    self._lost_connection(exc)
                    self._pause(0.5)
                except psycopg2.Error as exc:
                    self._rollback()
                    self.stats.units_failed += 1
                    replacement = w.on_fail(exc) if w.on_fail else None
                    if replacement is None:
                        log.error("unit dropped after database refusal: %s", _one_line(exc))
                        if w.done:
                            w.done()
                        break
                    replacement.done = replacement.done or w.done
                    w = replacement  # e.g. the reject row for that message

    def _finish(self, batch: list[Work], inserted: int, elapsed: float) -> None:
        self.stats.batches += 1
        self.stats.rows_inserted += inserted
        self.stats.last_batch_s = elapsed
        self.stats.last_commit_at = time.time()
        if self._on_batch:
            self._on_batch(sum(w.size() for w in batch), elapsed)
        for w in batch:
            if w.done is not None:
                try:
                    w.done()
                except Exception:  # an ack that fails must not kill the writer
                    log.exception("done callback failed")

    def _rollback(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.rollback()
            except psycopg2.Error:
                self._close()

    def _lost_connection(self, exc: Exception) -> None:
        self.stats.connected = False
        self.stats.db_errors += 1
        log.warning("database connection lost (%s); retrying the batch", _one_line(exc))
        if self._on_db_error:
            self._on_db_error(exc)
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
            self._conn = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
