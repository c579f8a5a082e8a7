"""Ward profiles and device fleets, derived from ``wards.yaml`` and ``sensors.yaml``.

wards.yaml carries no population, so each ward gets an *estimate* from its type, area and place:
the dense core of the former Đà Nẵng city, other urban wards (Tam Kỳ, Hội An, Điện Bàn...),
lowland communes of the Vu Gia - Thu Bồn plain and coast, and highland communes in the west and
south. The estimate sizes the fleets and the one-stop-shop arrivals; it is not census data.

The fleet depends only on the configuration (never on the seed), so device ids are stable
between runs: ``aq-20242-01`` is always the first air-quality station of Phường Hải Châu.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ioc.config import Config, Ward
from sensors.rand import key64, uniform1
from sensors.settings import SimulatorFile

WardClass = Literal["core", "urban", "lowland", "highland", "island"]

ABBR = {
    "air_quality": "aq",
    "water_level": "wl",
    "rainfall": "rf",
    "traffic": "tr",
    "noise": "ns",
    "street_light": "sl",
    "waste_bin": "wb",
}
# Stations with their own cellular modem and their own MQTT connection (and last will); the
# other types hang off the ward's gateway (LoRaWAN/NB-IoT style) and share its connection.
DIRECT_TYPES = frozenset({"air_quality", "water_level", "rainfall"})

# Type factor by ward class: how much of the per-population density a class gets.
_CLASS_FACTOR: dict[str, dict[str, float]] = {
    "core": {"traffic": 1.3, "noise": 1.3, "air_quality": 1.2, "water_level": 0.8},
    "urban": {"traffic": 1.0, "water_level": 1.2},
    "lowland": {"traffic": 0.6, "noise": 0.5, "street_light": 0.8, "water_level": 2.2},
    "highland": {"traffic": 0.4, "noise": 0.3, "street_light": 0.7, "water_level": 2.0},
    "island": {},
}


@dataclass(frozen=True)
class WardProfile:
    code: str
    name: str
    cls: WardClass
    population: int  # estimate
    lowness: float  # 0 (hills) .. 1 (floods first and most)
    rain_factor: float  # orographic rain: mountains wetter
    storm_delay_h: float  # storms come from the sea: coast first


@dataclass(frozen=True)
class Device:
    id: str
    ward: str
    type: str
    index: int
    direct: bool
    exposure: float  # 0..1: closeness to heavy traffic (air quality, noise, traffic capacity)
    phase: float  # 0..1: offset of its reporting instant within the interval
    key: int  # 64-bit hash of the id
    lat: float = 0.0  # where it stands: near its ward's centre, within the ward's size
    lon: float = 0.0

    def topic(self, prefix: str, kind: str) -> str:
        return f"{prefix}/{self.ward}/{self.type}/{self.id}/{kind}"


def ward_class(w: Ward) -> WardClass:
    if w.type == "đặc khu":
        return "island"
    if w.type == "phường":
        core = w.lat >= 15.95 and w.lon >= 108.15 and w.area_km2 < 60
        return "core" if core else "urban"
    highland = w.lon < 107.95 or (w.lat < 15.42 and w.lon < 108.45)
    return "highland" if highland else "lowland"


def estimate_population(w: Ward, cls: WardClass) -> int:
    if w.population is not None:
        return w.population
    if cls == "island":
        return 0
    if cls == "core":
        return int(min(130_000, max(50_000, w.area_km2 * 9_000)))
    if cls == "urban":
        if w.area_km2 > 100:  # large peri-urban ward (Hải Vân)
            return 50_000
        return int(min(90_000, max(30_000, w.area_km2 * 2_800)))
    if cls == "lowland":
        return int(min(36_000, max(8_000, w.area_km2 * 360)))
    return int(min(14_000, max(3_000, w.area_km2 * 40)))


def ward_profile(w: Ward) -> WardProfile:
    cls = ward_class(w)
    # Low-lying: the Vu Gia - Thu Bồn delta (Đại Lộc, Điện Bàn, Hội An, Duy Xuyên) and the Cẩm Lệ
    # / Hòa Xuân / Ngũ Hành Sơn riverside floods first; the highlands least.
    delta = 15.75 <= w.lat <= 16.02 and 108.05 <= w.lon <= 108.40
    if cls == "highland":
        lowness = 0.15
    elif delta:
        lowness = 0.95
    elif cls in ("core", "urban"):
        lowness = 0.6
    else:
        lowness = 0.45
    lowness = min(1.0, lowness + 0.1 * (uniform1(key64("low", w.code), 0) - 0.5))
    rain = 1.35 if cls == "highland" else 1.0
    delay = max(0.0, (108.7 - w.lon) * 4.0)  # hours: the coast first, the west later
    return WardProfile(
        code=w.code,
        name=w.name,
        cls=cls,
        population=estimate_population(w, cls),
        lowness=lowness,
        rain_factor=rain,
        storm_delay_h=delay,
    )


def fleet_counts(p: WardProfile, device_types: list[str], sim: SimulatorFile) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in device_types:
        if p.cls == "island":  # Hoàng Sa: one weather station
            out[t] = 1 if t in ("rainfall", "air_quality") else 0
            continue
        dens = sim.fleet.per_10k_people.get(t, 0.5)
        factor = _CLASS_FACTOR.get(p.cls, {}).get(t, 1.0)
        n = round(dens * factor * p.population / 10_000)
        out[t] = max(sim.fleet.minimum.get(t, 1), n)
    return out


def position(w: Ward, u: float, v: float) -> tuple[float, float]:
    """(lat, lon) of a device from two uniforms: within half the radius of a disc of the
    ward's area around its centre (so it falls inside the ward, whatever its shape)."""
    import math

    radius_km = 0.5 * math.sqrt(max(w.area_km2, 0.01) / math.pi)
    r = radius_km * math.sqrt(u)
    a = 2 * math.pi * v
    dlat = r * math.sin(a) / 110.57
    dlon = r * math.cos(a) / (111.32 * math.cos(math.radians(w.lat)))
    return round(w.lat + dlat, 6), round(w.lon + dlon, 6)


def camera_position(w: Ward, camera_id: str) -> tuple[float, float]:
    """(lat, lon) of a simulated camera inside its ward, fixed by its id (as a device's)."""
    k = key64("camera", camera_id)
    return position(w, uniform1(k, 1), uniform1(k, 2))


def _abbr(t: str) -> str:
    return ABBR.get(t, t[:2])


def build_fleet(
    cfg: Config, sim: SimulatorFile, wards: list[str] | None = None
) -> tuple[dict[str, WardProfile], list[Device]]:
    """Ward profiles (all selected wards) and their devices, in a stable order."""
    selected = [w for w in cfg.wards if wards is None or w.code in wards]
    types = list(cfg.sensors.device_types)
    profiles: dict[str, WardProfile] = {}
    devices: list[Device] = []
    for w in selected:
        p = ward_profile(w)
        profiles[w.code] = p
        for t, n in fleet_counts(p, types, sim).items():
            for i in range(1, n + 1):
                dev_id = f"{_abbr(t)}-{w.code}-{i:02d}"
                k = key64("device", dev_id)
                base_exp = {"core": 0.7, "urban": 0.5, "lowland": 0.3, "highland": 0.15}.get(
                    p.cls, 0.05
                )
                exposure = min(1.0, max(0.0, base_exp + 0.5 * (uniform1(k, 1) - 0.5)))
                pos = position(w, uniform1(k, 3), uniform1(k, 4))
                devices.append(
                    Device(
                        id=dev_id,
                        ward=w.code,
                        type=t,
                        index=i,
                        direct=t in DIRECT_TYPES,
                        exposure=exposure,
                        phase=uniform1(k, 2),
                        key=k,
                        lat=pos[0],
                        lon=pos[1],
                    )
                )
    return profiles, devices
