"""``Idempotency-Key`` for the incidents API's actions (``api_idempotency_keys``, migration 0018).

The first request with a key :func:`claim`\\ s it — one ``INSERT ... ON CONFLICT DO NOTHING`` in
the transaction that then does the action — and :func:`record`\\ s its answer in the same
transaction: either the action and its key are both committed or neither is. A repeat finds the
stored answer (:class:`Stored`). Two requests with the same key at once: the second one's INSERT
waits on the primary key until the first transaction ends, then finds its answer (committed) or
claims the key itself (rolled back): never both act. Keys are per client (the API token's
name), kept :data:`KEEP_DAYS` days (:func:`prune`, the scheduler's retention job).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ioc.db import Connection

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP_DAYS = 7
_KEY = re.compile(r"[\x20-\x7e]{1,200}")


def valid_key(value: str) -> bool:
    """1 to 200 printable ASCII characters (space to tilde)."""
    return _KEY.fullmatch(value) is not None


def body_hash(body: Any) -> str:
    """sha256 of the request body as canonical JSON (key order and spacing do not count)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Stored:
    """The first request of a key: what it asked and what it was answered."""

    incident_id: int
    action: str
    body_hash: str
    status: int
    response: str

    def same_request(self, incident_id: int, digest: str) -> bool:
        return self.incident_id == incident_id and self.body_hash == digest


def claim(
    conn: Connection, client: str, key: str, incident_id: int, action: str, digest: str
) -> Stored | None:
    """Claim ``key`` of ``client`` in the connection's transaction: None when it is ours now
    (do the action, then :func:`record`), else the answer stored by its first request. Waits
    while another transaction holds the same key."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO api_idempotency_keys (client, key, incident_id, action, body_hash)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (client, key) DO NOTHING",
            (client, key, incident_id, action, digest),
        )
        if cur.rowcount == 1:
            return None
        cur.execute(
            "SELECT incident_id, action, body_hash, status, response FROM api_idempotency_keys"
            " WHERE client = %s AND key = %s",
            (client, key),
        )
        row = cur.fetchone()
    # a conflict means a committed row (an uncommitted one makes the INSERT wait), and the
    # claiming transaction records its answer before it commits
    assert row is not None and row[3] is not None, f"key {key!r} claimed without an answer"
    return Stored(int(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]))


def record(conn: Connection, client: str, key: str, status: int, response: str) -> None:
    """The answer to the request that claimed ``key`` (same transaction as :func:`claim`)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE api_idempotency_keys SET status = %s, response = %s"
            " WHERE client = %s AND key = %s",
            (status, response, client, key),
        )


def prune(conn: Connection, *, days: int = KEEP_DAYS, now: dt.datetime | None = None) -> int:
    """Delete keys older than ``days``; does not commit. Returns how many."""
    now = now or dt.datetime.now(dt.UTC)
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM api_idempotency_keys WHERE created_at < %s",
            (now - dt.timedelta(days=days),),
        )
        return int(cur.rowcount)
