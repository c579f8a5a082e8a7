"""What the server knows for its whole life: configuration, the pool, the cache, settings.

Nothing here changes per request or per user; callbacks reach it through :func:`state`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import flask

from dashboards.db import Pool, TTLCache
from ioc.auth import User
from ioc.config import Config, Kpi


@dataclass
class AppState:
    cfg: Config
    pool: Pool
    secret_key: str
    kiosk_token: str | None = None
    metrics_token: str | None = None
    cache: TTLCache = field(default_factory=lambda: TTLCache(ttl=5.0))
    # seconds a view may go without fresh data before the wall flags it
    stale_after_s: float = 900.0
    wall_period_s: float = 20.0

    @cached_property
    def geojson(self) -> dict[str, Any]:
        path = self.cfg.dir / "wards.geojson"
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
        return data

    @cached_property
    def ward_names(self) -> dict[str, str]:
        return {w.code: w.name for w in self.cfg.wards}

    @property
    def kpis(self) -> dict[str, Kpi]:
        return self.cfg.kpis.kpis


def state() -> AppState:
    st: AppState = flask.current_app.config["IOC_STATE"]
    return st


def current_user() -> User:
    """The user of this request; the guard has already refused anonymous requests."""
    user = getattr(flask.g, "user", None)
    if user is None:  # unreachable behind the guard; refuse rather than leak
        flask.abort(401)
    return user  # type: ignore[no-any-return]
