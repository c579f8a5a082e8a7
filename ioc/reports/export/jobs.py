"""Exports as jobs (the /export page), run by the scheduler's :class:`ExportWorker`.

A job is a row in ``export_jobs`` (request, owner, status, rows done of the total). The click
only records it (:func:`create_job`, which NOTIFYs ``ioc_export_jobs``); an :class:`ExportWorker`
(a thread of every ``ioc scheduler``, on any host) claims it, writes the file to a temporary
file of its own and stores it in ``export_file_chunks`` (migration 0014) in the same
transaction that marks the job done. Whichever dashboard host answers reads progress from the
row and streams the file from the database. No state lives in a web process: a job whose
worker died (its pid gone on this host, or no heartbeat for JOB_STALE_AFTER) is marked failed
by the next sweep; files are deleted after JOB_KEEP.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql as psql

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.errors import IOCError, UsageError

from .request import CONTENT_TYPES, ExportRequest, request_args, request_from_args
from .writers import write_request

JOB_KEEP = dt.timedelta(hours=24)
JOB_STALE_AFTER = dt.timedelta(minutes=10)
JOB_MAX_ACTIVE_PER_USER = 2
JOBS_DIR = "exports"
JOB_CHANNEL = "ioc_export_jobs"
CHUNK_BYTES = 1 << 20
_HOST = socket.gethostname()

log = logging.getLogger("ioc.export")


class TooManyJobs(UsageError):
    """The user already has JOB_MAX_ACTIVE_PER_USER exports under way."""


def create_job(conn: Connection, req: ExportRequest, *, user: str, file_name: str) -> int:
    """Record a queued job for ``user`` and wake the workers. Raises UsageError when the user
    already has JOB_MAX_ACTIVE_PER_USER jobs under way."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM export_jobs WHERE user_name = %s"
            " AND status IN ('queued', 'running')",
            (user,),
        )
        row = cur.fetchone()
        if row and int(row[0]) >= JOB_MAX_ACTIVE_PER_USER:
            raise TooManyJobs(
                f"export: {JOB_MAX_ACTIVE_PER_USER} exports already under way; wait for one"
            )
        cur.execute(
            """
            INSERT INTO export_jobs (user_name, request, file_path, file_name, content_type)
            VALUES (%s, %s::jsonb, '', %s, %s) RETURNING id
            """,
            (user, json.dumps(request_args(req)), file_name, CONTENT_TYPES[req.fmt]),
        )
        job_id = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(psql.SQL("NOTIFY {}").format(psql.Identifier(JOB_CHANNEL)))
    conn.commit()
    return job_id


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, IOCError):
        text = f"{type(exc).__name__}: {text}"
    return text[:300]


def run_job(
    db_url: str,
    cfg: Config,
    job_id: int,
    *,
    now: dt.datetime | None = None,
    progress_every_s: float = 0.5,
    work_dir: Path | None = None,
) -> str:
    """Claim a queued job and run it to its end (in the caller's thread); returns its final
    status ('gone' when another worker claimed it first). Progress goes to the job's row at
    most every ``progress_every_s`` seconds; the file is written under ``work_dir`` (default:
    the system's temporary folder), stored in the database, then removed."""
    upd = connect(db_url, application_name="ioc-export-job", autocommit=True)
    tmp: Path | None = None
    try:
        with upd.cursor() as cur:
            cur.execute(
                """
                UPDATE export_jobs SET status = 'running', started_at = now(),
                    heartbeat_at = now(), host = %s, pid = %s
                WHERE id = %s AND status = 'queued' RETURNING request
                """,
                (_HOST, os.getpid(), job_id),
            )
            row = cur.fetchone()
        if row is None:
            return "gone"
        args = row[0]

        def hook(done: int, total: int) -> None:
            if done and done >= total:
                return  # the end: the 'done' update follows at once
            with upd.cursor() as cur:
                cur.execute(
                    "UPDATE export_jobs SET rows_done = %s, rows_total = %s, heartbeat_at = now()"
                    " WHERE id = %s AND status = 'running'",
                    (done, total, job_id),
                )

        try:
            req = request_from_args(cfg, args)
            folder = Path(work_dir or tempfile.gettempdir())
            folder.mkdir(parents=True, exist_ok=True)
            # the id in the name, plus a random part: the folder may be shared by workers
            tmp = folder / f"job-{job_id}-{secrets.token_hex(8)}.{req.fmt}.part"
            conn = connect(db_url, application_name="ioc-export-job")
            try:
                n = write_request(
                    conn,
                    cfg,
                    req,
                    out=tmp,
                    now=now,
                    progress=hook,
                    progress_every_s=progress_every_s,
                )
            finally:
                conn.close()
            return _store_file(db_url, job_id, tmp, n)
        except Exception as exc:
            if not isinstance(exc, IOCError):
                log.exception("export job %s failed", job_id)
            with upd.cursor() as cur:
                cur.execute(
                    "UPDATE export_jobs SET status = 'failed', error = %s, finished_at = now()"
                    " WHERE id = %s",
                    (_one_line(exc), job_id),
                )
            return "failed"
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    finally:
        upd.close()


def _store_file(db_url: str, job_id: int, path: Path, rows: int) -> str:
    """The file into ``export_file_chunks`` and the job 'done', in one transaction."""
    conn = connect(db_url, application_name="ioc-export-job")
    try:
        size = 0
        with conn.cursor() as cur, open(path, "rb") as fh:
            for seq in range(1 << 31):
                data = fh.read(CHUNK_BYTES)
                if not data:
                    break
                size += len(data)
                cur.execute(
                    "INSERT INTO export_file_chunks (job_id, seq, data) VALUES (%s, %s, %s)",
                    (job_id, seq, data),
                )
            cur.execute(
                """
                UPDATE export_jobs SET status = 'done', rows_done = %s, rows_total = %s,
                    size_bytes = %s, finished_at = now(), heartbeat_at = now()
                WHERE id = %s AND status = 'running'
                """,
                (rows, rows, size, job_id),
            )
            if cur.rowcount == 0:  # marked failed meanwhile (thought dead): not served
                conn.rollback()
                return "failed"
        conn.commit()
        return "done"
    finally:
        conn.close()


def job_chunk(conn: Connection, job_id: int, seq: int) -> bytes | None:
    """Chunk ``seq`` (from 0) of a job's stored file; None past the end."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT data FROM export_file_chunks WHERE job_id = %s AND seq = %s", (job_id, seq)
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else bytes(row[0])


def job_chunks(conn: Connection, job_id: int) -> Iterator[bytes]:
    """The stored file of a job, chunk by chunk (one short query per chunk)."""
    for seq in range(1 << 31):
        data = job_chunk(conn, job_id, seq)
        if data is None:
            return
        yield data


def job_file(conn: Connection, job_id: int) -> bytes:
    """The stored file of a job, whole (tests and small files)."""
    return b"".join(job_chunks(conn, job_id))


def next_queued(conn: Connection) -> int | None:
    """The oldest queued job, if any (a worker then claims it with :func:`run_job`)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM export_jobs WHERE status = 'queued' ORDER BY id LIMIT 1"
            " FOR UPDATE SKIP LOCKED"
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else int(row[0])


class ExportWorker:
    """Runs queued export jobs: ``threads`` named threads, each waiting on LISTEN
    ``ioc_export_jobs`` (with a poll every ``poll_s`` in case a notification was missed),
    claiming the oldest queued job and running it. Any number of workers, on any hosts, may
    run side by side: a job is claimed by exactly one (``UPDATE ... WHERE status = 'queued'``).
    """

    def __init__(
        self,
        db_url: str,
        cfg: Config,
        *,
        threads: int = 2,
        poll_s: float = 2.0,
        work_dir: Path | None = None,
    ) -> None:
        self.db_url = db_url
        self.cfg = cfg
        self.poll_s = poll_s
        self.work_dir = work_dir
        self.stop_event = threading.Event()
        self.done = 0
        self._threads = [
            threading.Thread(target=self._loop, name=f"ioc-export-worker-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> ExportWorker:
        for th in self._threads:
            th.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; a job under way runs to its end (bounded by ``timeout``)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for th in self._threads:
            th.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        listen: Connection | None = None
        while not self.stop_event.is_set():
            try:
                if listen is None or listen.closed:
                    listen = self._listen()
                self._run_queued(listen)
                if self.stop_event.is_set():
                    break
                self._wait(listen)
            except Exception as exc:  # the database went away: retry after a pause
                log.warning("export worker: %s", _one_line(exc))
                if listen is not None and not listen.closed:
                    listen.close()
                listen = None
                self.stop_event.wait(self.poll_s)
        if listen is not None and not listen.closed:
            listen.close()

    def _listen(self) -> Connection:
        listen = connect(self.db_url, application_name="ioc-export-worker", autocommit=True)
        with listen.cursor() as cur:
            cur.execute(psql.SQL("LISTEN {}").format(psql.Identifier(JOB_CHANNEL)))
        return listen

    def _run_queued(self, listen: Connection) -> None:
        """Claim and run queued jobs until none is left (or a stop)."""
        while not self.stop_event.is_set():
            job_id = next_queued(listen)
            if job_id is None:
                return
            status = run_job(self.db_url, self.cfg, job_id, work_dir=self.work_dir)
            if status != "gone":
                self.done += 1
                log.info("export job %s: %s", job_id, status)

    def _wait(self, listen: Connection) -> None:
        """Wait for a NOTIFY (or the poll), in slices so a stop is prompt."""
        import select

        waited = 0.0
        while waited < self.poll_s and not self.stop_event.is_set():
            ready, _, _ = select.select([listen], [], [], 0.5)
            waited += 0.5
            if ready:
                listen.poll()
                listen.notifies.clear()
                return


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Job:
    id: int
    user_name: str
    status: str
    rows_done: int
    rows_total: int | None
    error: str | None
    file_path: str
    file_name: str
    content_type: str
    size_bytes: int | None = None

    @property
    def percent(self) -> float | None:
        if not self.rows_total:
            return 100.0 if self.status == "done" else None
        return min(100.0, 100.0 * self.rows_done / self.rows_total)


def get_job(conn: Connection, job_id: int) -> Job | None:
    """The job, after marking it failed if it is under way in a process that is gone (or
    expired, its file deleted, if it finished more than JOB_KEEP ago)."""
    sweep_jobs(conn, only=job_id)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, user_name, status, rows_done, rows_total, error, file_path, file_name,"
            " content_type, size_bytes FROM export_jobs WHERE id = %s",
            (job_id,),
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else Job(*row)


def sweep_jobs(
    conn: Connection,
    *,
    only: int | None = None,
    keep: dt.timedelta = JOB_KEEP,
    stale_after: dt.timedelta = JOB_STALE_AFTER,
    folder: Path | None = None,
) -> tuple[int, int]:
    """Mark failed the jobs whose process is gone (its pid, on this host) or silent for
    ``stale_after``; delete the files of jobs finished more than ``keep`` ago (and, in
    ``folder``, a worker's stray temporary files that old). Returns (jobs marked failed,
    files removed)."""
    failed = 0
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, host, pid, heartbeat_at < now() - %s FROM export_jobs"
            " WHERE status IN ('queued', 'running') AND (%s::bigint IS NULL OR id = %s)",
            (stale_after, only, only),
        )
        dead = [
            r[0]
            for r in cur.fetchall()
            if r[3] or (r[1] == _HOST and r[2] is not None and not _pid_alive(int(r[2])))
        ]
        if dead:
            cur.execute(
                "UPDATE export_jobs SET status = 'failed', finished_at = now(),"
                " error = 'export interrupted: the server process stopped'"
                " WHERE id = ANY(%s) AND status IN ('queued', 'running')",
                (dead,),
            )
            failed = cur.rowcount
        cur.execute(
            "UPDATE export_jobs SET status = 'expired' WHERE status IN ('done', 'failed')"
            " AND coalesce(finished_at, created_at) < now() - %s"
            " AND (%s::bigint IS NULL OR id = %s) RETURNING id",
            (keep, only, only),
        )
        expired = [r[0] for r in cur.fetchall()]
        removed = 0
        if expired:
            cur.execute(
                "WITH d AS (DELETE FROM export_file_chunks WHERE job_id = ANY(%s)"
                " RETURNING job_id) SELECT count(DISTINCT job_id) FROM d",
                (expired,),
            )
            removed = int(cur.fetchone()[0])  # type: ignore[index]
    conn.commit()
    if folder is not None and only is None and folder.is_dir():
        cutoff = time.time() - keep.total_seconds()
        for p in folder.glob("job-*"):
            try:
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
    return failed, removed


def jobs_folder(var_dir: str | os.PathLike[str]) -> Path:
    """Where a worker writes its temporary files: ``exports/`` under its var dir."""
    return Path(var_dir).resolve() / JOBS_DIR
