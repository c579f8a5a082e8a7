"""The whole configuration: load every file under the config folder, validate, cross-check.

``load_config(dir)`` returns a :class:`Config` or raises :class:`ConfigError` listing every
problem with its file, line and key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ioc.config.alerts import AlertRule, AlertsFile
from ioc.config.cameras import NEAR_KM, Camera, CamerasFile, km_from_centre, km_outside
from ioc.config.categories import CategoriesFile
from ioc.config.incidents import IncidentsFile
from ioc.config.kpis import Kpi, KpisFile
from ioc.config.loader import ConfigError, ConfigIssue, YamlDoc, load_yaml, validate
from ioc.config.notifications import NotificationsFile, default_notifications
from ioc.config.procedures import HolidaysFile, Procedure, ProceduresFile
from ioc.config.sensors import DeviceType, Metric, SensorsFile
from ioc.config.system import SystemFile
from ioc.config.wards import Ward, WardsFile

__all__ = [
    "AlertRule",
    "Camera",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DeviceType",
    "Kpi",
    "Metric",
    "Procedure",
    "Ward",
    "load_config",
]

M = TypeVar("M", bound=BaseModel)

# file name -> (model, required?)
FILES: dict[str, tuple[type[BaseModel], bool]] = {
    "wards.yaml": (WardsFile, True),
    "sensors.yaml": (SensorsFile, True),
    "cameras.yaml": (CamerasFile, False),
    "kpis.yaml": (KpisFile, False),
    "alerts.yaml": (AlertsFile, False),
    "procedures.yaml": (ProceduresFile, False),
    "holidays.yaml": (HolidaysFile, False),
    "ioc.yaml": (SystemFile, False),
    "categories.yaml": (CategoriesFile, False),
    "incidents.yaml": (IncidentsFile, False),
    "notifications.yaml": (NotificationsFile, False),
}


@dataclass
class Config:
    """Every configuration section, validated and cross-checked."""

    dir: Path
    wards_file: WardsFile
    sensors: SensorsFile
    cameras: CamerasFile = field(default_factory=CamerasFile)
    kpis: KpisFile = field(default_factory=lambda: KpisFile(kpis={}))
    alerts: AlertsFile = field(default_factory=AlertsFile)
    procedures: ProceduresFile | None = None
    holidays: HolidaysFile = field(default_factory=HolidaysFile)
    system: SystemFile = field(default_factory=SystemFile)
    categories: CategoriesFile | None = None  # citizen reports (categories.yaml)
    incidents: IncidentsFile | None = None
    notifications: NotificationsFile = field(default_factory=default_notifications)

    @property
    def wards(self) -> list[Ward]:
        return self.wards_file.wards

    @property
    def ward_codes(self) -> set[str]:
        return {w.code for w in self.wards_file.wards}

    def ward(self, code: str) -> Ward | None:
        for w in self.wards_file.wards:
            if w.code == code:
                return w
        return None

    def report_categories(self) -> CategoriesFile:
        """``categories.yaml``; citizen reports cannot work without it."""
        if self.categories is None:
            from ioc.errors import IOCError

            raise IOCError(f"{self.dir / 'categories.yaml'}: file not found (report categories)")
        return self.categories

    @property
    def topic_prefix(self) -> str:
        return self.system.mqtt.topic_prefix


def _cross_check(cfg: Config, docs: dict[str, YamlDoc]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    wdoc = docs["wards.yaml"]
    seen: dict[str, int] = {}
    for i, w in enumerate(cfg.wards):
        if w.code in seen:
            first = wdoc.line_of(("wards", seen[w.code]))
            issues.append(
                wdoc.issue(
                    ("wards", i, "code"), f"duplicate ward code {w.code!r} (first at line {first})"
                )
            )
        else:
            seen[w.code] = i
    expected = cfg.wards_file.expected_count
    if len(seen) != expected:
        issues.append(
            wdoc.issue(("wards",), f"expected {expected} unique ward codes, found {len(seen)}")
        )

    metrics = cfg.sensors.all_metric_names()
    codes = cfg.ward_codes
    if "cameras.yaml" in docs:
        cdoc = docs["cameras.yaml"]
        outlines = _ward_outlines(cfg.dir) if cfg.cameras.cameras else {}
        ids: set[str] = set()
        for i, cam in enumerate(cfg.cameras.cameras):
            if cam.ward not in codes:
                issues.append(cdoc.issue(("cameras", i, "ward"), f"unknown ward {cam.ward!r}"))
            if cam.id in ids:
                issues.append(cdoc.issue(("cameras", i, "id"), f"duplicate camera id {cam.id!r}"))
            ids.add(cam.id)
            issues.extend(_camera_position(cfg, cdoc, i, cam, outlines))
            names = [ln.name for ln in cam.lines]
            for j, n in enumerate(names):
                if names.index(n) != j:
                    issues.append(
                        cdoc.issue(("cameras", i, "lines", j, "name"), f"duplicate line {n!r}")
                    )
    if "kpis.yaml" in docs:
        kdoc = docs["kpis.yaml"]
        for name, kpi in cfg.kpis.kpis.items():
            if kpi.metric is not None and kpi.metric not in metrics:
                issues.append(
                    kdoc.issue(("kpis", name, "metric"), f"unknown metric {kpi.metric!r}")
                )
    if "alerts.yaml" in docs:
        adoc = docs["alerts.yaml"]
        rule_ids: set[str] = set()
        for i, rule in enumerate(cfg.alerts.rules):
            if rule.id in rule_ids:
                issues.append(adoc.issue(("rules", i, "id"), f"duplicate rule id {rule.id!r}"))
            rule_ids.add(rule.id)
            if rule.metric is not None and rule.metric not in metrics:
                issues.append(adoc.issue(("rules", i, "metric"), f"unknown metric {rule.metric!r}"))
            if rule.kpi is not None and rule.kpi not in cfg.kpis.kpis:
                issues.append(adoc.issue(("rules", i, "kpi"), f"unknown KPI {rule.kpi!r}"))
    if "incidents.yaml" in docs and cfg.incidents is not None:
        from ioc.config.incidents import cross_check as incidents_check

        issues.extend(incidents_check(cfg, docs["incidents.yaml"]))
    if "notifications.yaml" in docs:
        issues.extend(_check_notifications(cfg, docs["notifications.yaml"]))
    return issues


def _ward_outlines(config_dir: Path) -> dict[str, dict[str, Any]]:
    """Each ward's geometry from ``wards.geojson`` (by feature id); empty without the file (a
    broken file is the map's problem, reported where it is read)."""
    try:
        data = json.loads((config_dir / "wards.geojson").read_text(encoding="utf-8"))
        return {str(f.get("id")): f.get("geometry") or {} for f in data.get("features", [])}
    except (OSError, ValueError, AttributeError):
        return {}


def _camera_position(
    cfg: Config, doc: YamlDoc, i: int, cam: Camera, outlines: dict[str, dict[str, Any]]
) -> list[ConfigIssue]:
    """``lat`` and ``lon`` come together and put the camera inside its ward or near it: within
    NEAR_KM of its outline (wards.geojson), or without an outline, of a disc twice the ward's
    area around its centre."""
    if cam.lat is None and cam.lon is None:
        return []
    if cam.lat is None or cam.lon is None:
        missing = "lat" if cam.lat is None else "lon"
        given = "lon" if missing == "lat" else "lat"
        return [doc.issue(("cameras", i, given), f"{given} given without {missing}")]
    ward = cfg.ward(cam.ward)
    if ward is None:  # reported as an unknown ward
        return []
    away = km_outside(cam.lat, cam.lon, outlines.get(cam.ward) or {})
    if away is None:
        radius = math.sqrt(2 * max(ward.area_km2, 0.01) / math.pi)
        away = max(0.0, km_from_centre(cam.lat, cam.lon, ward.lat, ward.lon) - radius)
    if away <= NEAR_KM:
        return []
    return [
        doc.issue(
            ("cameras", i, "lat"),
            f"position ({cam.lat}, {cam.lon}) is {away:.1f} km outside ward {cam.ward}"
            f" ({ward.name}); at most {NEAR_KM:g} km allowed",
        )
    ]


def _check_notifications(cfg: Config, doc: YamlDoc) -> list[ConfigIssue]:
    """Routes name known wards and webhooks; subscriptions name known reports."""
    n = cfg.notifications
    issues: list[ConfigIssue] = []

    def recipients(path: tuple[str | int, ...], to: object) -> None:
        for j, hook in enumerate(getattr(to, "webhooks", [])):
            if hook not in n.webhooks:
                issues.append(doc.issue((*path, "webhooks", j), f"unknown webhook {hook!r}"))

    names: set[str] = set()
    for i, route in enumerate(n.routes):
        if route.name in names:
            issues.append(doc.issue(("routes", i, "name"), f"duplicate route {route.name!r}"))
        names.add(route.name)
        for j, w in enumerate(route.wards):
            if w not in cfg.ward_codes:
                issues.append(doc.issue(("routes", i, "wards", j), f"unknown ward {w!r}"))
        if route.to.empty():
            issues.append(doc.issue(("routes", i, "to"), "a route needs at least one recipient"))
        recipients(("routes", i, "to"), route.to)
    for i, level in enumerate(n.escalation.levels):
        recipients(("escalation", "levels", i, "to"), level.to)
    # (subscriptions naming a report kpis.yaml lacks: `ioc config check`, ioc/config/check.py)
    for i, sub in enumerate(n.reports):
        recipients(("reports", i, "to"), sub.to)
    return issues


def load_config(config_dir: Path | str | None = None) -> Config:
    """Load and validate every file of the config folder; raise ConfigError with all issues."""
    base = Path(config_dir) if config_dir is not None else Path("config")
    if not base.is_dir():
        raise ConfigError([ConfigIssue(str(base), None, "", "configuration folder not found")])
    issues: list[ConfigIssue] = []
    docs: dict[str, YamlDoc] = {}
    models: dict[str, BaseModel] = {}
    for fname, (model, required) in FILES.items():
        path = base / fname
        if not path.exists():
            if required:
                issues.append(ConfigIssue(str(path), None, "", "file not found"))
            continue
        try:
            doc = load_yaml(path)
            docs[fname] = doc
            models[fname] = validate(doc, model)
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ConfigError(issues)

    def get(name: str, cls: type[M], default: Callable[[], M]) -> M:
        m = models.get(name)
        return m if isinstance(m, cls) else default()

    cfg = Config(
        dir=base,
        wards_file=get("wards.yaml", WardsFile, lambda: WardsFile(wards=[])),
        sensors=get("sensors.yaml", SensorsFile, lambda: SensorsFile(device_types={})),
        cameras=get("cameras.yaml", CamerasFile, CamerasFile),
        kpis=get("kpis.yaml", KpisFile, lambda: KpisFile(kpis={})),
        alerts=get("alerts.yaml", AlertsFile, AlertsFile),
        procedures=models.get("procedures.yaml"),  # type: ignore[arg-type]
        holidays=get("holidays.yaml", HolidaysFile, HolidaysFile),
        system=get("ioc.yaml", SystemFile, SystemFile),
        categories=models.get("categories.yaml"),  # type: ignore[arg-type]
        incidents=models.get("incidents.yaml"),  # type: ignore[arg-type]
        notifications=get("notifications.yaml", NotificationsFile, default_notifications),
    )
    issues = _cross_check(cfg, docs)
    if issues:
        raise ConfigError(issues)
    return cfg


# Re-exported for type hints elsewhere.
_ = (AlertRule, Camera, DeviceType, Kpi, Metric, Procedure)
