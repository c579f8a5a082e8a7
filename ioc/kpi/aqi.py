"""VN_AQI, Decision 1459/QĐ-TCMT (12 November 2019): pure arithmetic, no database.

* Sub-index of one pollutant: linear between breakpoints,
  ``AQI = (I_hi − I_lo) / (BP_hi − BP_lo) × (C − BP_lo) + I_lo``.
* Hourly: PM2.5 and PM10 use the NowCast of the last 12 hourly means
  (weight ``w = max(Cmin / Cmax, 1/2)``, at least 2 of the latest 3 hours present);
  NO₂, SO₂, CO and O₃ use the 1-hour mean.
* Daily: PM uses the 24-hour mean; the gases use the largest 1-hour mean of the day.
* The AQI is the largest sub-index over the pollutants available, rounded (half up).

Concentrations above the top breakpoint continue the last segment (the index exceeds 500
rather than being capped), so that a station far beyond "hazardous" stays visible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# AQI index levels and the concentration breakpoints (µg/m³) of each pollutant.
INDEX_LEVELS: tuple[float, ...] = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS: dict[str, tuple[float, ...]] = {
    "pm25": (0, 25, 50, 80, 150, 250, 350, 500),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "co": (0, 10000, 30000, 45000, 60000, 90000, 120000, 150000),
    "o3": (0, 160, 200, 300, 400, 800, 1000, 1200),
}
PM = ("pm25", "pm10")
GASES = ("no2", "so2", "co", "o3")
POLLUTANTS = PM + GASES

# (upper bound of the band, key, Vietnamese, English, RGB)
BANDS: tuple[tuple[int, str, str, str, tuple[int, int, int]], ...] = (
    (50, "good", "Tốt", "Good", (0, 228, 0)),
    (100, "moderate", "Trung bình", "Moderate", (255, 255, 0)),
    (150, "poor", "Kém", "Poor", (255, 126, 0)),
    (200, "bad", "Xấu", "Bad", (255, 0, 0)),
    (300, "very_bad", "Rất xấu", "Very bad", (143, 63, 151)),
    (10**9, "hazardous", "Nguy hại", "Hazardous", (126, 0, 35)),
)


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def sub_index(pollutant: str, concentration: float | None) -> float | None:
    """The (unrounded) AQI of one pollutant at one concentration; None if no value."""
    if concentration is None or math.isnan(concentration):
        return None
    bps = BREAKPOINTS[pollutant]
    c = max(0.0, float(concentration))
    for i in range(1, len(bps)):
        if c <= bps[i] or i == len(bps) - 1:
            lo, hi = bps[i - 1], bps[i]
            i_lo, i_hi = INDEX_LEVELS[i - 1], INDEX_LEVELS[i]
            return (i_hi - i_lo) / (hi - lo) * (c - lo) + i_lo
    raise AssertionError("unreachable")


def nowcast(hourly: Sequence[float | None]) -> float | None:
    """NowCast of hourly means, latest hour first (up to 12 used; None = missing hour).

    None when fewer than 2 of the latest 3 hours are present.
    """
    values = list(hourly[:12])
    recent = [v for v in values[:3] if v is not None and not math.isnan(v)]
    if len(recent) < 2:
        return None
    present = [(i, float(v)) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    cmax = max(v for _, v in present)
    cmin = min(v for _, v in present)
    w = 1.0 if cmax <= 0 else max(cmin / cmax, 0.5)
    num = sum(w**i * v for i, v in present)
    den = sum(w**i for i, _ in present)
    return num / den


def combine(sub: Mapping[str, float | None]) -> tuple[int | None, str | None]:
    """(AQI, dominant pollutant): the largest sub-index, rounded; (None, None) if none."""
    best: tuple[float, str] | None = None
    for p in POLLUTANTS:
        v = sub.get(p)
        if v is not None and (best is None or v > best[0]):
            best = (v, p)
    if best is None:
        return None, None
    return round_half_up(best[0]), best[1]


def hourly_aqi(
    pm_hours: Mapping[str, Sequence[float | None]], gases_1h: Mapping[str, float | None]
) -> tuple[int | None, str | None]:
    """Hourly VN_AQI: ``pm_hours[p]`` = hourly means latest first; ``gases_1h[g]`` = 1-h mean."""
    sub: dict[str, float | None] = {}
    for p in PM:
        series = pm_hours.get(p)
        sub[p] = sub_index(p, nowcast(series)) if series else None
    for g in GASES:
        sub[g] = sub_index(g, gases_1h.get(g))
    return combine(sub)


def daily_aqi(
    pm_24h_mean: Mapping[str, float | None], gases_max_1h: Mapping[str, float | None]
) -> tuple[int | None, str | None]:
    """Daily VN_AQI: PM from the 24-hour mean, gases from the day's largest 1-hour mean."""
    sub: dict[str, float | None] = {p: sub_index(p, pm_24h_mean.get(p)) for p in PM}
    for g in GASES:
        sub[g] = sub_index(g, gases_max_1h.get(g))
    return combine(sub)


def band(aqi: float | None) -> tuple[str, str, str, tuple[int, int, int]] | None:
    """(key, Vietnamese, English, RGB) of the band an AQI falls in; None for no data."""
    if aqi is None:
        return None
    for upper, key, vi, en, rgb in BANDS:
        if aqi <= upper:
            return key, vi, en, rgb
    raise AssertionError("unreachable")
