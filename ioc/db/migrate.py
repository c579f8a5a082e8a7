"""``ioc db init``: numbered SQL migrations, the storage path (TimescaleDB or plain), ward sync.

Idempotent and safe while other processes use the database: a session advisory lock makes
concurrent inits wait for each other; each migration runs in its own transaction and is recorded
in ``schema_migrations``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib import resources

from ioc.config import Config
from ioc.db import Connection, plain, storage_mode, timescale

LOCK_KEY = 7_140_2025  # arbitrary constant shared by every `ioc db init`


@dataclass
class InitReport:
    mode: str
    applied: list[str] = field(default_factory=list)
    storage: list[str] = field(default_factory=list)
    wards_changed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.storage or self.wards_changed)

    def summary(self) -> str:
        if not self.changed:
            return f"schema up to date ({self.mode}); nothing to do"
        parts = []
        if self.applied:
            parts.append(f"applied {len(self.applied)} migration(s): {', '.join(self.applied)}")
        if self.storage:
            parts.append("created " + ", ".join(self.storage))
        if self.wards_changed:
            parts.append(f"{self.wards_changed} ward(s) synced from config")
        return f"schema initialised ({self.mode}): " + "; ".join(parts)


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every bundled migration, in order."""
    out = []
    for entry in resources.files("ioc.db.migrations").iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            out.append((int(entry.name[:4]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def _apply_migrations(conn: Connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()
        cur.execute("SELECT version FROM schema_migrations")
        done = {r[0] for r in cur.fetchall()}
    applied = []
    for version, name, text in migration_files():
        if version in done:
            continue
        with conn.cursor() as cur:
            cur.execute(text)
            cur.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
        conn.commit()
        applied.append(name)
    return applied


def _choose_mode(conn: Connection) -> str:
    """The storage path, decided at first init and kept (recorded in ioc_meta)."""
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM ioc_meta WHERE key = 'storage_mode'")
        row = cur.fetchone()
        if row:
            return str(row[0])
        mode = "timescaledb" if timescale.available(conn) else "postgresql"
        cur.execute("INSERT INTO ioc_meta (key, value) VALUES ('storage_mode', %s)", (mode,))
    conn.commit()
    return mode


def _sync_wards(conn: Connection, cfg: Config) -> int:
    changed = 0
    with conn.cursor() as cur:
        for w in cfg.wards:
            cur.execute(
                """
                INSERT INTO wards (code, name, type, lat, lon, area_km2, population)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
                    lat = EXCLUDED.lat, lon = EXCLUDED.lon, area_km2 = EXCLUDED.area_km2,
                    population = EXCLUDED.population
                WHERE (wards.name, wards.type, wards.lat, wards.lon, wards.area_km2,
                       wards.population)
                      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.type, EXCLUDED.lat,
                       EXCLUDED.lon, EXCLUDED.area_km2, EXCLUDED.population)
                """,
                (w.code, w.name, w.type, w.lat, w.lon, w.area_km2, w.population),
            )
            changed += cur.rowcount
    conn.commit()
    return changed


def init_db(conn: Connection, cfg: Config) -> InitReport:
    """Create or upgrade the schema. The connection must not be in autocommit mode."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    conn.commit()
    try:
        applied = _apply_migrations(conn)
        mode = _choose_mode(conn)
        if mode == "timescaledb":
            created = timescale.setup(conn, cfg.system.storage)
        else:
            created = plain.setup(conn, cfg.system.storage)
        conn.commit()
        report = InitReport(mode=mode, applied=applied, storage=created)
        report.wards_changed = _sync_wards(conn, cfg)
        return report
    except BaseException:
        conn.rollback()
        raise
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.commit()


def refresh_rollups(
    conn: Connection, cfg: Config, *, now: dt.datetime | None = None
) -> dict[str, int]:
    """Bring readings_hourly/readings_daily up to ``now`` (plain path: the scheduler's job;
    TimescaleDB: its policies do it continuously, this forces it at once)."""
    if storage_mode(conn) == "timescaledb":
        return timescale.refresh(conn, now=now)
    return plain.refresh_rollups(
        conn, lookback_hours=cfg.system.storage.rollup_lookback_hours, now=now
    )


def apply_retention(
    conn: Connection, cfg: Config, *, now: dt.datetime | None = None
) -> dict[str, int]:
    """Drop data past retention on the plain path (TimescaleDB's retention policies do it)."""
    if storage_mode(conn) == "timescaledb":
        return {}
    return plain.apply_retention(conn, cfg.system.storage.retention, now=now)
