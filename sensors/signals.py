"""Believable signals: pure functions of (device, ward profile, times, seed) → metric arrays.

``t`` is a numpy array of Unix seconds (UTC); local time is UTC+7 (Asia/Ho_Chi_Minh). The same
arguments always give the same values, whatever the order or the batch size, so live readings,
history and tests agree. Values are clipped to the valid range of ``sensors.yaml`` by the caller.

* weather: storm episodes drawn per 4-day slot (frequent in the wet season Sep-Dec, rare
  otherwise), reaching the coast first; rain_mm is the rain of a 5-minute interval;
* water level: depth at a flood-prone spot, 5-20 cm at rest (below the 50 cm flood threshold);
  rises after a storm, earlier and higher in low-lying wards, then recedes; a tide on top in
  the delta;
* traffic: rush hours 7-8h and 17-18h local on weekdays, a flatter weekend, slower in rain;
* air quality: worse near traffic, at rush hours, under the morning inversion and in the dry
  season (Jan-Aug), washed out by rain;
* noise follows traffic; street lights switch at dusk/dawn and dim after 23h;
* waste bins fill through the day and are emptied on collection rounds (some rounds missed).
"""

from __future__ import annotations

import math

import numpy as np

from sensors.fleet import Device, WardProfile
from sensors.rand import F64, key64, normal, smooth, uniform, uniform1

TZ_S = 7 * 3600
DAY = 86400.0
HOUR = 3600.0
STORM_SLOT = 4 * DAY


def local_hour(t: F64) -> F64:
    return ((t + TZ_S) % DAY) / HOUR


def local_weekday(t: F64) -> F64:
    """0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday)."""
    return (np.floor((t + TZ_S) / DAY) + 3) % 7


def day_of_year(t: F64) -> F64:
    """Approximate day of year (0..365) from Unix seconds, local time."""
    return ((t + TZ_S) / DAY - 0.0) % 365.2425


def month(t: F64) -> F64:
    """Approximate month 1..12 (good to a day or so)."""
    return np.floor(day_of_year(t) / 30.44) % 12 + 1


def _bump(x: F64, centre: float, width: float) -> F64:
    return np.exp(-0.5 * ((x - centre) / width) ** 2)


def wet_season(t: F64) -> F64:
    """1 in the wet season (Sep-Dec), 0 in the dry season (Jan-Aug), smooth in between."""
    doy = day_of_year(t)
    # peak around mid-October (day ~ 290), spans ~ Sep-Dec
    return np.clip(1.2 * _bump(doy, 295, 45) + 1.2 * _bump(doy, 295 - 365.2425, 45), 0, 1)


# ---------------------------------------------------------------- weather
def _storms(seed: int, t0: float, t1: float) -> list[tuple[float, float, float]]:
    """Storms (start, duration s, peak mm/h) touching [t0 - 4 days, t1]."""
    key = key64(seed, "storm")
    out: list[tuple[float, float, float]] = []
    first = math.floor((t0 - 2 * STORM_SLOT) / STORM_SLOT)
    last = math.floor(t1 / STORM_SLOT)
    for k in range(first, last + 1):
        u = uniform(key, np.array([k * 8 + i for i in range(5)]))
        slot_t = np.array([k * STORM_SLOT + STORM_SLOT / 2])
        p = 0.06 + 0.42 * float(wet_season(slot_t)[0])
        if u[0] >= p:
            continue
        start = k * STORM_SLOT + u[1] * 3 * DAY
        duration = (10 + 38 * u[2]) * HOUR
        peak = 3 + 27 * u[3] ** 1.5 * (0.4 + 0.6 * float(wet_season(slot_t)[0]))
        out.append((float(start), float(duration), float(peak)))
    return out


def rain_rate(p: WardProfile, t: F64, seed: int) -> F64:
    """Rain intensity at the ward, mm/h."""
    t = np.asarray(t, dtype=np.float64)
    rate = np.zeros_like(t)
    if t.size == 0:
        return rate
    wkey = key64(seed, "rain", p.code)
    for start, dur, peak in _storms(seed, float(t.min()), float(t.max())):
        s = start + p.storm_delay_h * HOUR
        x = (t - s) / dur
        inside = (x > 0) & (x < 1)
        shape = np.where(inside, np.sin(np.pi * np.clip(x, 0, 1)) ** 1.5, 0.0)
        cells = 0.55 + 0.45 * smooth(wkey, t, 40 * 60)  # convective cells
        rate += peak * p.rain_factor * shape * np.clip(cells, 0.05, 1)
    # light showers in the wet season
    shower = smooth(key64(seed, "shower", p.code), t, 3 * HOUR)
    rate += np.where(shower > 0.75, (shower - 0.75) * 12 * wet_season(t), 0.0)
    return rate


def flood_rise_cm(p: WardProfile, t: F64, seed: int) -> F64:
    """Water-level rise from recent storms: later and smaller on higher ground, then recedes."""
    t = np.asarray(t, dtype=np.float64)
    rise = np.zeros_like(t)
    if t.size == 0:
        return rise
    for start, dur, peak in _storms(seed, float(t.min()) - 3 * DAY, float(t.max())):
        lag = (2 + 14 * (1 - p.lowness)) * HOUR + p.storm_delay_h * HOUR
        # recedes within a day or two of the storm's end; high ground barely floods (a
        # storm of ~1,000 mm floods most low-lying stations for two days, a small one few)
        tau = dur * 0.3 + 4 * HOUR
        x = (t - start - lag) / tau
        resp = np.where(x > 0, x * np.exp(1 - np.clip(x, 0, 50)), 0.0)
        total_mm = peak * dur / HOUR * 0.55 * p.rain_factor
        amp = total_mm * 0.25 * (0.05 + p.lowness**1.5)
        rise += np.minimum(amp, 220.0) * resp
    return rise


# ---------------------------------------------------------------- traffic
_CONGESTION_CLASS = {"core": 1.0, "urban": 0.9, "lowland": 0.75, "highland": 0.55}


def traffic_level(t: F64) -> F64:
    """Relative traffic 0..1.1 by local hour and weekday."""
    h = local_hour(t)
    wd = local_weekday(t)
    weekday = 0.08 + 0.95 * _bump(h, 7.5, 0.8) + 0.95 * _bump(h, 17.6, 0.9)
    weekday += 0.55 * _bump(h, 12.0, 3.5) + 0.35 * _bump(h, 20.5, 1.5)
    weekend = 0.08 + 0.5 * _bump(h, 9.5, 2.0) + 0.7 * _bump(h, 18.5, 2.2) + 0.3 * _bump(h, 14, 3)
    return np.where(wd >= 5, weekend, weekday)


def _sun(t: F64) -> tuple[F64, F64]:
    """Local sunrise and sunset hours at ~16°N (about 5:25-6:20 / 17:15-18:20)."""
    doy = day_of_year(t)
    dl = 12.0 + 1.05 * np.sin(2 * np.pi * (doy - 80) / 365.2425)  # day length, h
    noon = 11.95 + 0.25 * np.sin(2 * np.pi * (doy - 10) / 365.2425)
    return noon - dl / 2, noon + dl / 2


def temperature(t: F64) -> F64:
    doy = day_of_year(t)
    seasonal = 25.8 - 4.3 * np.cos(2 * np.pi * (doy - 15) / 365.2425)  # 21.5 Jan .. 30 Jul
    diurnal = 3.8 * np.cos(2 * np.pi * (local_hour(t) - 14) / 24)
    return seasonal + diurnal


# ---------------------------------------------------------------- per device type
def device_values(dev: Device, p: WardProfile, t: F64, seed: int) -> dict[str, F64]:
    """The readings of ``dev`` at times ``t``: metric name → values (unclipped)."""
    t = np.asarray(t, dtype=np.float64)
    k = key64(seed, dev.id)
    n = np.floor(t / 60).astype(np.int64)  # a fresh noise draw per minute

    def noise(name: str) -> F64:
        return normal(key64(k, name), n)

    if dev.type == "rainfall":
        r = rain_rate(p, t, seed) * (0.9 + 0.2 * uniform1(key64(k, "g"), 0))
        mm5 = r * 5 / 60
        mm5 = np.where(mm5 < 0.05, 0.0, np.round(mm5 * 5) / 5)  # 0.2 mm tipping bucket
        return {"rain_mm": mm5}
    if dev.type == "water_level":
        # water depth at a flood-prone spot: 5-20 cm at rest (below the flood threshold of
        # config/alerts.yaml and kpis.yaml, 50 cm, and its clear level, 40 cm, even at high
        # tide); storms lift it above the threshold, low-lying wards first
        base = 5 + 15 * uniform1(key64(k, "base"), 0)
        tide: float | F64 = 0.0
        if p.lowness > 0.85:
            tide = 8 * np.sin(2 * np.pi * t / (12.42 * HOUR) + dev.phase * 6.28)
        level = base + tide + flood_rise_cm(p, t, seed) * (0.7 + 0.6 * dev.exposure)
        return {"water_level_cm": level + 1.5 * noise("wl")}
    if dev.type == "traffic":
        cap = float({"core": 90, "urban": 60, "lowland": 30, "highland": 10}.get(p.cls, 5))
        cap = cap * (0.5 + dev.exposure)
        rain = rain_rate(p, t, seed)
        wet = 1 / (1 + rain / 25)
        mean = cap * traffic_level(t) * (0.85 + 0.15 * wet)
        count = np.maximum(0, np.round(mean + np.sqrt(mean + 1) * noise("c")))
        # how close the road runs to its capacity at a given traffic level: busy roads of the
        # centre jam at rush hour, most roads slow down, roads in the hills do not (otherwise
        # every sensor of the city reads 100 % at 17:40 and opens a congestion alert)
        demand = (0.35 + 0.5 * dev.exposure) * _CONGESTION_CLASS.get(p.cls, 0.5)
        load = traffic_level(t) * (0.85 + 0.15 * wet) * demand
        congestion = np.clip((load - 0.55) / 0.5, 0, 1) * 100
        free = {"core": 42, "urban": 48, "lowland": 55, "highland": 50}.get(p.cls, 40)
        speed = free * (1 - 0.65 * congestion / 100) * (0.85 + 0.15 * wet) + 2.5 * noise("s")
        return {
            "vehicle_count": count,
            "avg_speed_kmh": np.maximum(3, speed),
            "congestion": np.clip(congestion + 3 * noise("g"), 0, 100),
        }
    if dev.type == "noise":
        lvl = traffic_level(t) * (0.3 + dev.exposure)
        db = 38 + 11 * np.log10(1 + 40 * lvl) + 2.0 * noise("n")
        return {"noise_db": db}
    if dev.type == "street_light":
        h = local_hour(t)
        rise, sset = _sun(t)
        on = (h >= sset + 0.1) | (h < rise - 0.1)
        rated = 100 + 25 * math.floor(uniform1(key64(k, "r"), 0) * 7)  # 100..250 W
        dim = (h >= 23) | (h < 4.5)
        power = np.where(on, np.where(dim, 0.6, 1.0) * rated + 2 * noise("p"), 1.2)
        return {"lamp_on": on.astype(np.float64), "power_w": np.maximum(0, power)}
    if dev.type == "waste_bin":
        return {"fill_pct": _waste_fill(dev, p, t, seed)}
    if dev.type == "air_quality":
        dry = 1 - wet_season(t)
        rain = rain_rate(p, t, seed)
        wash = 1 / (1 + rain / 3)
        traffic = traffic_level(t)
        h = local_hour(t)
        inversion = 1 + 0.35 * _bump(h, 6.0, 1.5) + 0.2 * _bump(h, 21, 2)
        regional = 1 + 0.35 * smooth(key64(seed, "aq", p.code), t, 18 * HOUR)
        pm25 = (8 + 14 * dry + 30 * dev.exposure * traffic) * inversion * regional * wash
        pm25 = pm25 * (1 + 0.12 * noise("pm"))
        sun = np.clip(np.sin(np.pi * (h - 6) / 12), 0, 1)
        temp = temperature(t) - np.minimum(rain, 20) * 0.15
        hum = 72 + 10 * (1 - dry) - 2.2 * (temp - temperature(t).mean()) + np.minimum(rain, 15)
        return {
            "pm25": pm25,
            "pm10": pm25 * (1.6 + 0.2 * dev.phase) * (1 + 0.05 * noise("pm10")),
            "no2": (12 + 55 * dev.exposure * traffic) * inversion * (1 + 0.1 * noise("no2")),
            "so2": (4 + 6 * dev.exposure) * (1 + 0.15 * noise("so2")),
            "co": (350 + 1400 * dev.exposure * traffic) * inversion * (1 + 0.1 * noise("co")),
            "o3": (25 + 70 * sun * (0.6 + 0.4 * dry)) * wash**0.3 * (1 + 0.1 * noise("o3")),
            "temperature": temp + 0.3 * noise("t"),
            "humidity": np.clip(hum + 1.5 * noise("h"), 20, 100),
        }
    # A device type the simulator does not model: a calm mid-range value per metric.
    return {}


def _waste_fill(dev: Device, p: WardProfile, t: F64, seed: int) -> F64:
    """Fill level: accumulates since the last collection round that was not missed."""
    rounds = [5.0, 18.0] if p.cls in ("core", "urban") else [6.0]
    every_other = p.cls == "highland"
    rate = {"core": 4.2, "urban": 3.6, "lowland": 1.9, "highland": 1.6}.get(p.cls, 1.0)
    rate *= 0.75 + 0.5 * uniform1(key64(dev.key, "rate"), 0)
    local = t + TZ_S
    day0 = np.floor(local / DAY)
    miss_key = key64(seed, "miss", dev.id)
    last = np.full_like(t, -np.inf)
    for back in range(0, 5):
        d = day0 - back
        for r in rounds:
            c = d * DAY + r * HOUR
            ok = c <= local
            if every_other:
                ok &= (d % 2) == 0
            ok &= uniform(miss_key, (d * 4 + r).astype(np.int64)) >= 0.05  # 5% rounds missed
            last = np.where(ok, np.maximum(last, c), last)
    hours = np.where(np.isfinite(last), (local - last) / HOUR, 96.0)
    h = local_hour(t)
    # faster in the day than at night: integrate approximately with a day weight
    fill = rate * hours * (0.8 + 0.3 * np.sin(np.pi * np.clip(h - 6, 0, 14) / 14))
    since = np.floor(np.where(np.isfinite(last), last, 0) / HOUR).astype(np.int64)
    fill = fill + 2 * uniform(key64(dev.key, "res"), since)
    return np.clip(fill, 0, 100)
