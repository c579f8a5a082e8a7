"""Compute KPI values per ward and for the city, and store them in ``kpi_values``.

``compute_period`` runs each KPI's query function for one period and rolls the ward values up
to the city (``ward_code = 'city'``) by the KPI's rule; ``store`` upserts them (idempotent);
``rollup_value`` is the pure roll-up arithmetic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from psycopg2.extras import execute_values

from ioc.config import Config
from ioc.config.kpis import Kpi
from ioc.db import Connection
from ioc.errors import IOCError
from ioc.kpi import periods
from ioc.kpi.queries import QUERIES, KpiEnv
from ioc.workdays import Holidays

CITY = "city"


@dataclass(frozen=True)
class KpiValue:
    kpi: str
    ward_code: str
    period: str
    period_start: dt.datetime
    value: float | None


def kpi_env(cfg: Config) -> KpiEnv:
    sched = cfg.kpis.scheduler
    env = KpiEnv(
        timezone=cfg.system.timezone,
        holidays=Holidays.of(cfg.holidays),
        device_intervals={k: t.interval_s for k, t in cfg.sensors.device_types.items()},
        metric_intervals=_metric_intervals(cfg),
        offline_factor=sched.offline_factor,
        camera_interval_s=sched.camera_interval_s,
        incidents=cfg.incidents,
    )
    if cfg.categories is not None:  # citizen reports: office hours of working-hour limits
        env = dataclasses.replace(env, office_hours=cfg.categories.periods())
    return env


def _metric_intervals(cfg: Config) -> dict[str, float]:
    """Metric → expected interval of the device type reporting it (the longest if several)."""
    out: dict[str, float] = {}
    for dtype in cfg.sensors.device_types.values():
        for m in dtype.metrics:
            out[m.name] = max(out.get(m.name, 0.0), dtype.interval_s)
    return out


def tz_of(cfg: Config) -> ZoneInfo:
    return ZoneInfo(cfg.system.timezone)


def _clean(v: object) -> float | None:
    if v is None:
        return None
    f = float(v)  # type: ignore[arg-type]
    return None if math.isnan(f) else f


def rollup_value(
    rule: str,
    direction: str,
    values: Mapping[str, float | None],
    weights: Mapping[str, float | None] | None = None,
) -> float | None:
    """The city value from ward values; wards without data are left out; None if none has.

    ``sum``, ``mean``, ``weighted_mean`` (Σ v·w ÷ Σ w over wards having both; None when the
    weights sum to 0), ``worst`` (max when lower is better, else min), ``best`` (the other).
    """
    have = {w: v for w, v in values.items() if v is not None}
    if not have:
        return None
    if rule == "sum":
        return float(sum(have.values()))
    if rule == "mean":
        return float(sum(have.values()) / len(have))
    if rule == "weighted_mean":
        wts = weights or {}
        pairs = [(v, wts.get(w)) for w, v in have.items()]
        pairs2 = [(v, float(x)) for v, x in pairs if x is not None and x >= 0]
        total = sum(x for _, x in pairs2)
        if total <= 0:
            return None
        return float(sum(v * x for v, x in pairs2) / total)
    higher_worse = direction == "lower_better"
    if rule == "worst":
        return float(max(have.values()) if higher_worse else min(have.values()))
    if rule == "best":
        return float(min(have.values()) if higher_worse else max(have.values()))
    raise ValueError(f"unknown roll-up rule {rule!r}")


def ward_values(
    conn: Connection,
    cfg: Config,
    name: str,
    *,
    wards: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    env: KpiEnv | None = None,
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """(value per ward, volume per ward) of one KPI; every requested ward present (None = no
    data)."""
    kpi = cfg.kpis.kpis.get(name)
    if kpi is None:
        raise IOCError(f"unknown KPI {name!r}")
    fn = QUERIES.get(kpi.query)
    if fn is None:
        raise IOCError(f"KPI {name!r}: unknown query function {kpi.query!r}")
    df = fn(
        conn, wards=list(wards), start=start, end=end, env=env or kpi_env(cfg), params=kpi.params
    )
    vals: dict[str, float | None] = dict.fromkeys(wards)
    wts: dict[str, float | None] = dict.fromkeys(wards)
    for ward, value, weight in df[["ward_code", "value", "weight"]].itertuples(index=False):
        if ward == CITY and kpi.rollup == "query":  # the query's own city figure
            vals[CITY], wts[CITY] = _clean(value), _clean(weight)
        elif ward in vals:
            vals[ward] = _clean(value)
            wts[ward] = _clean(weight)
    return vals, wts


def compute_period(
    conn: Connection,
    cfg: Config,
    *,
    kpis: Iterable[str],
    period: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime | None = None,
    wards: Sequence[str] | None = None,
    city: bool = True,
) -> list[KpiValue]:
    """KPI values of every ward (and the city) for the period [start, end), measured at
    ``min(end, now)``. The city value always rolls up all wards of the configuration."""
    now = now or dt.datetime.now(dt.UTC)
    at = min(end, now)
    env = kpi_env(cfg)
    all_wards = [w.code for w in cfg.wards]
    want = list(wards) if wards is not None else all_wards
    # a city roll-up needs every ward
    fetch = all_wards if city else want
    cache: dict[str, tuple[dict[str, float | None], dict[str, float | None]]] = {}

    def get(name: str) -> tuple[dict[str, float | None], dict[str, float | None]]:
        if name not in cache:
            cache[name] = ward_values(conn, cfg, name, wards=fetch, start=start, end=at, env=env)
        return cache[name]

    out: list[KpiValue] = []
    for name in kpis:
        kpi = cfg.kpis.kpis[name]
        vals, vols = get(name)
        for w in want:
            out.append(KpiValue(name, w, period, start, _round(vals.get(w), kpi)))
        if city:
            weights = _weights(cfg, kpi, vols, get)
            out.append(
                KpiValue(
                    name,
                    CITY,
                    period,
                    start,
                    _round(
                        vals.get(CITY)
                        if kpi.rollup == "query"
                        else rollup_value(kpi.rollup, kpi.direction, vals, weights),
                        kpi,
                    ),
                )
            )
    return out


def _round(v: float | None, kpi: Kpi) -> float | None:
    # store a few more decimals than shown, so that roll-ups of stored values stay exact enough
    return None if v is None else round(v, kpi.decimals + 3)


def _weights(
    cfg: Config,
    kpi: Kpi,
    volumes: dict[str, float | None],
    get: object,
) -> dict[str, float | None] | None:
    if kpi.rollup != "weighted_mean":
        return None
    if kpi.weight == "volume":
        return volumes
    if kpi.weight == "population":
        return {
            w.code: (float(w.population) if w.population is not None else None) for w in cfg.wards
        }
    if kpi.weight == "area":
        return {w.code: w.area_km2 for w in cfg.wards}
    assert kpi.weight is not None and callable(get)
    return dict(get(kpi.weight)[0])


UPSERT = """
INSERT INTO kpi_values (kpi, ward_code, period, period_start, value, computed_at)
VALUES %s
ON CONFLICT (kpi, ward_code, period, period_start)
DO UPDATE SET value = EXCLUDED.value, computed_at = EXCLUDED.computed_at
"""


def store(conn: Connection, values: Sequence[KpiValue], *, commit: bool = True) -> int:
    """Upsert KPI values (idempotent); returns the number of rows written."""
    if not values:
        return 0
    now = dt.datetime.now(dt.UTC)
    with conn.cursor() as cur:
        execute_values(
            cur,
            UPSERT,
            [(v.kpi, v.ward_code, v.period, v.period_start, v.value, now) for v in values],
            page_size=1000,
        )
    if commit:
        conn.commit()
    return len(values)


def refresh_current(
    conn: Connection, cfg: Config, *, queries: Iterable[str], now: dt.datetime | None = None
) -> int:
    """Recompute the current period of every configured period kind for the KPIs whose query
    is in ``queries`` (e.g. ``open_alerts`` right after the alert job, so that the tile and
    the alert list beside it agree); returns the number of values stored."""
    now = now or dt.datetime.now(dt.UTC)
    names = [name for name, k in cfg.kpis.kpis.items() if k.query in set(queries)]
    if not names:
        return 0
    tz = tz_of(cfg)
    n = 0
    for period in cfg.kpis.scheduler.periods:
        start = periods.floor(now, period, tz)
        end = periods.next_start(start, period, tz)
        values = compute_period(conn, cfg, kpis=names, period=period, start=start, end=end, now=now)
        n += store(conn, values, commit=False)
    conn.commit()
    return n


# --------------------------------------------------------------------------- watermarks


def get_watermark(conn: Connection, job: str) -> dt.datetime | None:
    with conn.cursor() as cur:
        cur.execute("SELECT done_until FROM job_watermarks WHERE job = %s", (job,))
        row = cur.fetchone()
    return row[0] if row else None


def set_watermark(conn: Connection, job: str, until: dt.datetime) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO job_watermarks (job, done_until, updated_at) VALUES (%s, %s, now())"
            " ON CONFLICT (job) DO UPDATE SET done_until = EXCLUDED.done_until,"
            " updated_at = now()",
            (job, until),
        )
