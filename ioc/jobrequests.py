"""Asking the scheduler to run a job now, and the demo's back-fill state.

A page that finds a KPI never computed, or the demo once its back-filled history has been
ingested, calls :func:`request_run`; the scheduler's leader polls :func:`pending` every few
seconds and runs the job at once; the job calls :func:`mark_served` when it begins. Requests
are rows of ``job_requests`` (one per job), so any process on any host may ask.
"""

from __future__ import annotations

import datetime as dt

from ioc.db import Connection

# a job that ran this recently is not asked again by a page (a KPI that stays empty after a
# run, e.g. no cameras at all, must not make every page refresh start a run)
MIN_GAP_S = 60.0
BACKFILL_KEY = "backfill"


def request_run(conn: Connection, job: str, reason: str, *, min_gap_s: float = 0.0) -> bool:
    """Ask for a run of ``job``; True if a new request was recorded (False: one is pending
    already, or a run was served less than ``min_gap_s`` ago). Commits."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO job_requests (job, requested_at, reason) VALUES (%(job)s, now(), %(r)s)
            ON CONFLICT (job) DO UPDATE SET requested_at = now(), reason = EXCLUDED.reason
            WHERE job_requests.served_at IS NOT NULL
              AND job_requests.requested_at <= job_requests.served_at
              AND job_requests.served_at < now() - make_interval(secs => %(gap)s)
            RETURNING 1
            """,
            {"job": job, "r": reason[:200], "gap": float(min_gap_s)},
        )
        made = cur.fetchone() is not None
    conn.commit()
    return made


def pending(conn: Connection, job: str) -> dt.datetime | None:
    """When the oldest unserved request for ``job`` was made, or None."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT requested_at FROM job_requests WHERE job = %s"
            " AND (served_at IS NULL OR requested_at > served_at)",
            (job,),
        )
        row = cur.fetchone()
    return row[0] if row else None


def mark_served(conn: Connection, job: str) -> bool:
    """A run of ``job`` begins now: requests made until now are served. True when one was
    pending. Commits."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE job_requests SET served_at = now() WHERE job = %s"
            " AND (served_at IS NULL OR requested_at > served_at) RETURNING 1",
            (job,),
        )
        was = cur.fetchone() is not None
    conn.commit()
    return was


def set_backfill(conn: Connection, state: str) -> None:
    """The demo's history back-fill: 'running' (data still arriving) or 'done'. Commits."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ioc_meta (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (BACKFILL_KEY, state),
        )
    conn.commit()


def backfill_running(conn: Connection) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM ioc_meta WHERE key = %s", (BACKFILL_KEY,))
        row = cur.fetchone()
    return bool(row and row[0] == "running")


def ingest_snapshot(conn: Connection, since: dt.datetime) -> int | None:
    """Messages received by the MQTT ingesters if every one reported after ``since`` with
    nothing in flight and nothing queued for the database; None otherwise (still working, or
    no report yet). Two equal snapshots in a row: what was published has landed."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT count(*),
                   bool_and(coalesce((details->>'inflight')::bigint, 0) = 0
                            AND coalesce((details->>'writer_queue')::bigint, 0) = 0
                            AND updated_at > %s),
                   sum(coalesce((details->>'received')::bigint, 0))
            FROM service_status WHERE service = 'mqtt-ingest' AND status = 'running'
            """,
            (since,),
        )
        row = cur.fetchone()
    conn.commit()
    if not row or not row[0] or not row[1]:
        return None
    return int(row[2] or 0)
