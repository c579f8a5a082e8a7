"""Camera ingesters on several hosts split the configured cameras by leases in PostgreSQL.

Every ``ioc ingest cameras --shared`` announces itself in ``camera_ingesters`` and, every
``every_s`` seconds, in one short transaction per step:

1. renews the leases of the cameras it analyses (``expires_at = now() + ttl``); a camera whose
   lease it no longer holds is stopped at once;
2. counts the live ingesters and its fair share, ``ceil(cameras / ingesters)``;
3. gives back what it holds above that share (after its worker stopped and flushed), and the
   cameras no longer in the configuration;
4. takes free or expired leases up to its share (``INSERT ... ON CONFLICT DO UPDATE ... WHERE
   camera_leases.expires_at < now()``: of two ingesters racing for a camera, one wins).

Times are the database's (``now()``), so the hosts' clocks do not matter. A host that dies
stops renewing: its leases expire after ``ttl`` and the others take them at their next step
(within ``ttl + every_s``, 25 s by default). A host that cannot reach the database stops its
own workers once ``ttl - 2 * every_s`` has passed since its last renewal, before anyone else
may take them: a camera is analysed by at most one ingester at any time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import psycopg2

from ioc.db import Connection, connect

log = logging.getLogger(__name__)

SQL_MEMBER = """
INSERT INTO camera_ingesters (instance, expires_at)
VALUES (%(me)s, now() + %(ttl)s * interval '1 second')
ON CONFLICT (instance) DO UPDATE SET expires_at = EXCLUDED.expires_at
"""

SQL_RENEW = """
UPDATE camera_leases SET expires_at = now() + %(ttl)s * interval '1 second'
WHERE owner = %(me)s AND expires_at > now()
RETURNING camera_id
"""

SQL_MEMBERS = """
SELECT count(*) FROM camera_ingesters WHERE expires_at > now()
"""

SQL_TAKE = """
INSERT INTO camera_leases (camera_id, owner, acquired_at, expires_at)
VALUES (%(cam)s, %(me)s, now(), now() + %(ttl)s * interval '1 second')
ON CONFLICT (camera_id) DO UPDATE
    SET owner = EXCLUDED.owner, acquired_at = now(), expires_at = EXCLUDED.expires_at
    WHERE camera_leases.expires_at < now()
RETURNING camera_id
"""

SQL_FREE = """
SELECT c FROM unnest(%(cams)s::text[]) AS c
WHERE NOT EXISTS (SELECT 1 FROM camera_leases l WHERE l.camera_id = c AND l.expires_at > now())
ORDER BY c
"""

SQL_RELEASE = """
DELETE FROM camera_leases WHERE owner = %(me)s AND camera_id = ANY(%(cams)s)
"""

SQL_LEAVE = """
DELETE FROM camera_ingesters WHERE instance = %(me)s
"""


@dataclass
class Plan:
    """What one step decided: cameras to start, to stop (lease lost), to give back."""

    start: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    surplus: list[str] = field(default_factory=list)
    members: int = 1
    share: int = 0


def fair_share(cameras: int, members: int) -> int:
    return math.ceil(cameras / max(1, members))


class Leases:
    """One ingester's side of the lease table (its own autocommit connection)."""

    def __init__(self, dsn: str, instance: str, *, ttl_s: float = 20.0, every_s: float = 5.0):
        if ttl_s < 3 * every_s:
            raise ValueError("the lease must outlive three renewal steps (ttl_s >= 3 * every_s)")
        self.dsn = dsn
        self.me = instance
        self.ttl_s = ttl_s
        self.every_s = every_s
        self.held: set[str] = set()
        self.last_renewed: float | None = None  # monotonic, of the last successful step
        self._conn: Connection | None = None

    @property
    def safe_for_s(self) -> float:
        """How long after a renewal this ingester may go on analysing without a new one."""
        return self.ttl_s - 2 * self.every_s

    def expired_locally(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.last_renewed is not None and now - self.last_renewed > self.safe_for_s

    def _db(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn, application_name="ioc-ingest-cameras-leases")
            with self._conn.cursor() as cur:  # a step never hangs past the lease
                cur.execute("SET statement_timeout = %s", (int(1000 * self.every_s),))
            self._conn.commit()
        return self._conn

    def step(self, wanted: Collection[str]) -> Plan:
        """Renew, count members, plan; takes leases for ``plan.start`` (the caller starts
        them) and expects the caller to stop ``lost`` at once and ``surplus`` then call
        :meth:`release`. Raises psycopg2.Error / IOCError when the database is away."""
        t0 = time.monotonic()
        conn = self._db()
        args = {"me": self.me, "ttl": self.ttl_s}
        plan = Plan()
        try:
            with conn.cursor() as cur:
                cur.execute(SQL_MEMBER, args)
                cur.execute(SQL_RENEW, args)
                renewed = {r[0] for r in cur.fetchall()}
                plan.lost = sorted(self.held - renewed)
                held = renewed
                cur.execute(SQL_MEMBERS)
                plan.members = int(cur.fetchone()[0])  # type: ignore[index]
                wanted_set = set(wanted)
                plan.share = fair_share(len(wanted_set), plan.members)
                gone = sorted(held - wanted_set)  # removed from the configuration
                keep = sorted(held & wanted_set)
                plan.surplus = gone + keep[plan.share :]
                room = plan.share - min(len(keep), plan.share)
                if room > 0:
                    cur.execute(SQL_FREE, {"cams": sorted(wanted_set - held)})
                    for (cam,) in cur.fetchall():
                        if room <= 0:
                            break
                        cur.execute(SQL_TAKE, {**args, "cam": cam})
                        if cur.fetchone() is not None:
                            plan.start.append(cam)
                            room -= 1
            conn.commit()
        except BaseException:
            if not conn.closed:
                try:
                    conn.rollback()
                except psycopg2.Error:
                    conn.close()
            raise
        self.held = held | set(plan.start)
        self.last_renewed = t0
        return plan

    def release(self, cameras: Collection[str]) -> None:
        """Give leases back (after their workers stopped): others may take them at once."""
        if not cameras:
            return
        conn = self._db()
        with conn.cursor() as cur:
            cur.execute(SQL_RELEASE, {"me": self.me, "cams": sorted(cameras)})
        conn.commit()
        self.held -= set(cameras)

    def leave(self) -> None:
        """On a clean stop: every lease back and out of the member list."""
        try:
            self.release(set(self.held))
            conn = self._db()
            with conn.cursor() as cur:
                cur.execute(SQL_LEAVE, {"me": self.me})
            conn.commit()
        except Exception as exc:  # the leases then simply expire
            log.warning("camera leases: could not give them back (%s)", exc)
        finally:
            self.close()

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
