"""deploy/: every systemd unit and every Compose service runs an ``ioc`` command line that the
real argument parser accepts, and the Compose layout has the pieces docs/deploy.md describes."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
import yaml

from ioc.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def parses(argv: list[str]) -> None:
    build_parser().parse_args(argv)  # SystemExit on a bad command line


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_runs_a_valid_command(unit: Path) -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(unit, encoding="utf-8")
    service = cp["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/ioc/venv/bin/ioc"
    parses([a.replace("%H", "host").replace("%i", "1") for a in argv[1:]])
    assert service["EnvironmentFile"] == "/etc/ioc/ioc.env"
    assert service["User"] == "ioc"
    if service.get("Type") != "oneshot":
        assert service["Restart"] == "always"
    assert "Install" in cp


def test_every_service_has_a_unit() -> None:
    names = {u.name for u in UNITS}
    assert names == {
        "ioc-db-init.service",
        "ioc-serve.service",
        "ioc-ingest-mqtt@.service",
        "ioc-ingest-cameras.service",
        "ioc-scheduler.service",
    }
    env = (DEPLOY / "systemd" / "ioc.env.example").read_text(encoding="utf-8")
    for var in ("IOC_DATABASE_URL", "IOC_MQTT_URL", "IOC_REDIS_URL", "IOC_SECRET_KEY"):
        assert f"\n{var}=" in env


def test_compose_layout() -> None:
    doc = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text(encoding="utf-8"))
    services = doc["services"]
    assert "timescaledb" in services["db"]["image"]
    assert services["mqtt"]["image"].startswith("eclipse-mosquitto:2")
    assert services["redis"]["image"].startswith("redis:")
    ioc_services = {n: s for n, s in services.items() if s.get("image") == "ioc:latest"}
    assert set(ioc_services) == {"init", "web", "ingest-mqtt", "cameras", "scheduler"}
    for s in ioc_services.values():
        parses(s["command"])
        env = s["environment"]
        assert env["IOC_REDIS_URL"].startswith("redis://") and env["IOC_SECRET_KEY"]
    assert "--shared" in services["ingest-mqtt"]["command"]
    assert "--shared" in services["cameras"]["command"]
    assert services["web"]["deploy"]["replicas"] >= 2
    assert services["ingest-mqtt"]["deploy"]["replicas"] >= 2
    assert services["cameras"]["deploy"]["replicas"] >= 2
    assert services["scheduler"]["deploy"]["replicas"] == 2
    conf = (DEPLOY / "compose" / "mosquitto.conf").read_text(encoding="utf-8")
    assert "max_queued_messages 0" in conf and "allow_anonymous false" in conf
