#!/usr/bin/env python3
"""Regenerate ``config/wards.yaml`` from two PyPI data packages (dev-time only).

Sources:

* ``vietnam-provinces``: names, official codes and types, from the General Statistics Office
  (GSO) catalogue of administrative units. Authoritative for ``code``, ``name`` and ``type``.
* ``vietnamadminunits``: a location (lat/lon) and the area of each unit. Its codes and names
  are used only to cross-check the first source and to join the two.

The script lists the units of Thành phố Đà Nẵng in each source, checks that both have
exactly 94, joins them (by code, then by name for units whose codes differ), prints a report of
every code, name or type that differs, and fails if a difference is not one of the reviewed
ones in ``KNOWN_CODE_DIFFERENCES``. Neither package is a runtime dependency of IOC::

    pip install vietnam-provinces vietnamadminunits pyyaml
    python scripts/gen_wards.py            # writes config/wards.yaml
    python scripts/gen_wards.py --check    # exits 1 if the committed file is out of date
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "config" / "wards.yaml"

DA_NANG_PROVINCE_CODE = 48
EXPECTED_COUNT = 94
WARD_TYPES = ("phường", "xã", "đặc khu")

# Reviewed differences between the two sources: vietnamadminunits code -> vietnam-provinces code.
# vietnamadminunits took its 2025 codes from a third-party address kit dated 2025-07-01; in all
# three cases its code is that of another former unit merged into the new one. vietnam-provinces
# takes codes from the GSO catalogue, the official registrar of the codes, so its code is kept.
# Any difference not listed here makes the script fail until someone has reviewed it.
KNOWN_CODE_DIFFERENCES: dict[str, str] = {
    "20194": "20195",  # Phường Hải Vân (20194 = former Phường Hòa Hiệp Bắc)
    "20305": "20224",  # Phường An Khê (20305 = former Phường Hòa Phát)
    "20875": "20872",  # Xã Lãnh Ngọc (20875 = former Xã Tiên Hiệp)
}


class SourceError(RuntimeError):
    """The sources are missing, incomplete or disagree in an unreviewed way."""


@dataclass(frozen=True)
class NamedUnit:
    """A unit as ``vietnam-provinces`` lists it."""

    code: str
    name: str
    type: str


@dataclass(frozen=True)
class LocatedUnit:
    """A unit as ``vietnamadminunits`` lists it."""

    code: str
    name: str
    type: str
    lat: float
    lon: float
    area_km2: float


@dataclass(frozen=True)
class Ward:
    code: str
    name: str
    type: str
    lat: float
    lon: float
    area_km2: float


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError as e:
        raise SourceError(f"package {dist!r} is not installed: pip install {dist}") from e


def load_vietnam_provinces() -> list[NamedUnit]:
    """The Đà Nẵng units of ``vietnam-provinces`` (official names, codes and types)."""
    try:
        from vietnam_provinces import ProvinceCode
        from vietnam_provinces import Ward as VpWard
    except ImportError as e:
        raise SourceError(
            "vietnam-provinces is not installed: pip install vietnam-provinces"
        ) from e
    units = []
    for w in VpWard.iter_by_province(ProvinceCode(DA_NANG_PROVINCE_CODE)):
        division = w.division_type.value
        units.append(NamedUnit(code=f"{int(w.code):05d}", name=_nfc(w.name), type=division))
    return sorted(units, key=lambda u: u.code)


def load_vietnamadminunits() -> list[LocatedUnit]:
    """The Đà Nẵng units of ``vietnamadminunits`` (location and area)."""
    try:
        from vietnamadminunits.database import query
    except ImportError as e:
        raise SourceError(
            "vietnamadminunits is not installed: pip install vietnamadminunits"
        ) from e
    rows = query(
        "SELECT DISTINCT wardCode, ward, wardType, wardLat, wardLon, wardAreaKm2 "
        f"FROM admin_units WHERE provinceCode = '{DA_NANG_PROVINCE_CODE:02d}'"
    )
    units = []
    for r in rows:
        for key in ("wardLat", "wardLon", "wardAreaKm2"):
            if r[key] is None:
                raise SourceError(f"vietnamadminunits: {r['ward']} ({r['wardCode']}) has no {key}")
        units.append(
            LocatedUnit(
                code=f"{int(r['wardCode']):05d}",
                name=_nfc(r["ward"]),
                type=_nfc(r["wardType"]).lower(),
                lat=float(r["wardLat"]),
                lon=float(r["wardLon"]),
                area_km2=float(r["wardAreaKm2"]),
            )
        )
    return sorted(units, key=lambda u: u.code)


def check_count(source: str, codes: list[str]) -> None:
    if len(codes) != EXPECTED_COUNT:
        raise SourceError(f"{source}: {len(codes)} units for Đà Nẵng, expected {EXPECTED_COUNT}")
    dupes = sorted(c for c, n in Counter(codes).items() if n > 1)
    if dupes:
        raise SourceError(f"{source}: duplicate codes {dupes}")


def reconcile(
    named: list[NamedUnit], located: list[LocatedUnit]
) -> tuple[list[Ward], list[str], dict[str, str]]:
    """Join the two sources.

    Returns the wards, the report lines (every difference found) and the per-ward notes for the
    YAML. Raises ``SourceError`` if a unit cannot be joined or a difference is unreviewed.
    """
    check_count("vietnam-provinces", [u.code for u in named])
    check_count("vietnamadminunits", [u.code for u in located])

    by_code = {u.code: u for u in located}
    pairs: dict[str, LocatedUnit] = {}
    report: list[str] = []
    notes: dict[str, str] = {}
    unreviewed: list[str] = []

    for u in named:
        if u.code in by_code:
            pairs[u.code] = by_code.pop(u.code)
    # Units whose codes differ: join on the full name, which is unique within a province.
    leftover_by_name = {u.name: u for u in by_code.values()}
    for u in named:
        if u.code in pairs:
            continue
        match = leftover_by_name.pop(u.name, None)
        if match is None:
            raise SourceError(
                f"{u.name} ({u.code}, vietnam-provinces) has no counterpart in vietnamadminunits"
            )
        pairs[u.code] = match
        line = f"code differs: {u.name}: vietnam-provinces {u.code}, vietnamadminunits {match.code}"
        report.append(line)
        if KNOWN_CODE_DIFFERENCES.get(match.code) != u.code:
            unreviewed.append(line)
        notes[u.code] = (
            f"code {u.code} from vietnam-provinces (GSO catalogue); vietnamadminunits gives "
            f"{match.code}. Joined on the name; lat/lon/area are those of its {match.code} entry."
        )
    if leftover_by_name:
        extra = ", ".join(f"{u.name} ({u.code})" for u in leftover_by_name.values())
        raise SourceError(f"units only in vietnamadminunits: {extra}")

    wards = []
    for u in named:
        loc = pairs[u.code]
        for field, ours, theirs in (("name", u.name, loc.name), ("type", u.type, loc.type)):
            if ours != theirs:
                line = (
                    f"{field} differs: {u.code}: "
                    f"vietnam-provinces {ours!r}, vietnamadminunits {theirs!r}"
                )
                report.append(line)
                unreviewed.append(line)
        if u.type not in WARD_TYPES:
            raise SourceError(f"{u.name} ({u.code}): unknown type {u.type!r}")
        if round(loc.lat, 4) != loc.lat or round(loc.lon, 4) != loc.lon:
            raise SourceError(f"{u.name}: lat/lon have more than 4 decimals; widen the format")
        wards.append(Ward(u.code, u.name, u.type, lat=loc.lat, lon=loc.lon, area_km2=loc.area_km2))

    stale = set(KNOWN_CODE_DIFFERENCES) - {pairs[c].code for c in pairs}
    if stale:
        report.append(f"reviewed differences no longer seen (update the script): {sorted(stale)}")
    if unreviewed:
        raise SourceError(
            "unreviewed differences between the sources:\n  "
            + "\n  ".join(unreviewed)
            + "\nreview them and update KNOWN_CODE_DIFFERENCES in scripts/gen_wards.py"
        )
    return wards, report, notes


def _q(text: str) -> str:
    """A double-quoted YAML scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_yaml(wards: list[Ward], notes: dict[str, str], vp: str, vau: str) -> str:
    vp_id = f"vietnam-provinces {vp}"
    vau_id = f"vietnamadminunits {vau}"
    counts = Counter(w.type for w in wards)
    lines = [
        "# generated by scripts/gen_wards.py — do not edit by hand",
        f"# {len(wards)} units of Thành phố Đà Nẵng: "
        + ", ".join(f"{counts[t]} {t}" for t in WARD_TYPES),
        "source:",
        f"  code: {_q(vp_id + ' (GSO catalogue of administrative units)')}",
        f"  name: {_q(vp_id)}",
        f"  type: {_q(vp_id)}",
        f"  lat: {_q(vau_id + ' (admin_units.wardLat)')}",
        f"  lon: {_q(vau_id + ' (admin_units.wardLon)')}",
        f"  area_km2: {_q(vau_id + ' (admin_units.wardAreaKm2)')}",
        f"  population: {_q('not carried by either package: the key is omitted')}",
        "  remarks:",
        "    - "
        + _q(
            "lat/lon is the location the package gives for the unit (published to 3-4 "
            "decimals, about 10-100 m), not a centroid computed from official boundaries"
        ),
        "    - "
        + _q(
            "Đặc khu Hoàng Sa: lat/lon is the archipelago, far offshore; "
            "config/wards.geojson draws it as a small inset near the coast"
        ),
    ]
    if notes:
        lines.append("  notes:")
        lines.extend(f"    {_q(code)}: {_q(notes[code])}" for code in sorted(notes))
    lines.append("wards:")
    for w in sorted(wards, key=lambda w: w.code):
        lines += [
            f"  - code: {_q(w.code)}",
            f"    name: {_q(w.name)}",
            f"    type: {_q(w.type)}",
            f"    lat: {w.lat:.4f}",
            f"    lon: {w.lon:.4f}",
            f"    area_km2: {w.area_km2!r}",
        ]
    return "\n".join(lines) + "\n"


def verify_yaml(text: str, wards: list[Ward]) -> None:
    """The rendered text parses back to exactly the wards it was made from."""
    data = yaml.safe_load(text)
    back = [Ward(**{k: v for k, v in d.items()}) for d in data["wards"]]
    if back != sorted(wards, key=lambda w: w.code):
        raise SourceError("internal error: the YAML does not round-trip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if --out is out of date"
    )
    args = parser.parse_args(argv)
    try:
        vp, vau = package_version("vietnam-provinces"), package_version("vietnamadminunits")
        named = load_vietnam_provinces()
        located = load_vietnamadminunits()
        print(f"vietnam-provinces {vp}: {len(named)} units, {dict(Counter(u.type for u in named))}")
        print(
            f"vietnamadminunits {vau}: {len(located)} units, "
            f"{dict(Counter(u.type for u in located))}"
        )
        wards, report, notes = reconcile(named, located)
    except SourceError as e:
        print(f"gen_wards: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"differences between the sources: {len(report) or 'none'}")
    for line in report:
        print(f"  {line}")
    text = render_yaml(wards, notes, vp, vau)
    verify_yaml(text, wards)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run scripts/gen_wards.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(wards)} wards to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
