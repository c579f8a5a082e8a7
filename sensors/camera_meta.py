"""Synthetic camera metadata for load tests: what N camera ingesters would write, not video.

At 20 times Da Nang a city has about 2,000 cameras. Their video analysis runs on the camera
hosts (measured apart: about 76 cameras per core at 2 analysed fps, README); what reaches the
database is one ``camera_metrics`` row per metric per camera per interval (10 s) plus the
camera's status. This feed writes exactly those rows, with the metric names and value shapes of
ingest/cameras (counts follow the day's traffic curve), straight into PostgreSQL as the camera
ingesters do (cameras do not speak MQTT here), so the database, the KPIs and the dashboards
carry the load of 2,000 cameras. It does not exercise OpenCV, leases or the camera hosts' CPUs.

Camera ids are ``sim-<ward>-<n>``, registered in ``cameras`` like real ones; rows are
idempotent (ON CONFLICT DO NOTHING on camera/metric/ts), intervals aligned to ``interval_s``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping

import numpy as np
from psycopg2.extras import execute_values

from ioc.db import Connection, connect
from sensors.rand import key64
from sensors.signals import traffic_level

log = logging.getLogger("ioc.simulate.cameras")

SQL_REGISTER = """
INSERT INTO cameras (camera_id, ward_code, name, status, lat, lon, updated_at)
SELECT c, w, 'simulated camera ' || c, 'online', la, lo, now()
FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[]) AS t(c, w, la, lo)
ON CONFLICT (camera_id) DO UPDATE
    SET ward_code = EXCLUDED.ward_code, lat = COALESCE(EXCLUDED.lat, cameras.lat),
        lon = COALESCE(EXCLUDED.lon, cameras.lon), updated_at = now()
"""

SQL_ROWS = """
INSERT INTO camera_metrics (ts, ward_code, camera_id, metric, value) VALUES %s
ON CONFLICT (camera_id, metric, ts) DO NOTHING
"""

SQL_SEEN = """
UPDATE cameras SET status = 'online', last_seen = %s, updated_at = now()
WHERE camera_id = ANY(%s) AND (last_seen IS NULL OR last_seen < %s)
"""


def camera_ids(wards: list[str], n: int) -> list[tuple[str, str]]:
    """``n`` cameras spread over the wards in turn: (id, ward)."""
    out = []
    for i in range(n):
        ward = wards[i % len(wards)]
        out.append((f"sim-{ward}-{i // len(wards) + 1:03d}", ward))
    return out


class CameraMetaFeed:
    """Writes each interval's rows for ``cameras`` once the interval has ended."""

    def __init__(
        self,
        db_url: str,
        cameras: list[tuple[str, str]],
        *,
        interval_s: float = 10.0,
        seed: int = 1,
        fps: float = 25.0,
        analysis_fps: float = 2.0,
        positions: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.db_url = db_url
        self.cameras = cameras
        self.positions = dict(positions or {})  # camera id -> (lat, lon), its map pin
        self.interval_s = interval_s
        self.seed = seed
        self.fps = fps
        self.analysis_fps = analysis_fps
        self.next_ts: float | None = None
        self.rows = 0
        self._conn: Connection | None = None
        self._rng = np.random.default_rng(seed)
        # each camera's traffic volume (vehicles per interval at the peak), fixed by its id
        self._peak = np.array(
            [4 + (key64("simcam", cam, seed) % 1000) / 1000 * 26 for cam, _ in cameras]
        )

    def _db(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.db_url, application_name="ioc-simulate-cameras")
        return self._conn

    def register(self) -> None:
        conn = self._db()
        with conn.cursor() as cur:
            where = [self.positions.get(c) for c, _ in self.cameras]
            cur.execute(
                SQL_REGISTER,
                (
                    [c for c, _ in self.cameras],
                    [w for _, w in self.cameras],
                    [p[0] if p else None for p in where],
                    [p[1] if p else None for p in where],
                ),
            )
        conn.commit()

    def interval_rows(self, ts: float) -> list[tuple[dt.datetime, str, str, str, float]]:
        n = len(self.cameras)
        level = float(traffic_level(np.array([ts]))[0])
        iv = self.interval_s
        received = self.fps * iv
        analysed = self.analysis_fps * iv
        vehicles = self._rng.poisson(self._peak * level)
        people = self._rng.poisson(self._peak * level * 0.3)
        split = self._rng.binomial(vehicles, 0.5)
        motion = np.clip(0.02 + 0.25 * level * self._rng.random(n), 0, 1)
        when = dt.datetime.fromtimestamp(ts, dt.UTC)
        rows: list[tuple[dt.datetime, str, str, str, float]] = []
        for i, (cam, ward) in enumerate(self.cameras):
            values = {
                "online": 1.0,
                "frames_received": received,
                "frames_analysed": analysed,
                "frames_dropped": received - analysed,
                "frames_late": 0.0,
                "fps_effective": self.analysis_fps,
                "motion_ratio": round(float(motion[i]), 5),
                "occupancy": round(float(motion[i]) * 0.6, 5),
                "objects": round(float(vehicles[i] + people[i]) / 4, 3),
                "brightness": 120.0,
                "sharpness": 300.0,
                "analysis_ms": 6.5,
                "line_road_in": float(split[i]),
                "line_road_out": float(vehicles[i] - split[i]),
                "line_road_vehicles": float(vehicles[i]),
                "line_road_people": float(people[i]),
            }
            rows.extend((when, ward, cam, k, v) for k, v in values.items())
        return rows

    def advance(self, now: float) -> int:
        """Write every interval that ended by ``now``; returns rows written."""
        iv = self.interval_s
        if self.next_ts is None:
            self.next_ts = math.floor(now / iv) * iv  # the interval under way: written at its end
            return 0
        written = 0
        while self.next_ts + iv <= now:
            rows = self.interval_rows(self.next_ts)
            conn = self._db()
            try:
                with conn.cursor() as cur:
                    execute_values(cur, SQL_ROWS, rows, page_size=5000)
                    end = dt.datetime.fromtimestamp(self.next_ts + iv, dt.UTC)
                    cur.execute(SQL_SEEN, (end, [c for c, _ in self.cameras], end))
                conn.commit()
            except Exception:
                if not conn.closed:
                    conn.close()
                raise
            written += len(rows)
            self.next_ts += iv
        self.rows += written
        return written

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
