"""Configuration loading: the shipped config is valid; errors name file, line and key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ioc.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    dst = tmp_path / "config"
    shutil.copytree(ROOT / "config", dst)
    return dst


def _issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return [str(i) for i in err.value.issues]


def _line_of(path: Path, needle: str, start: int = 0) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if i > start and needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


def test_shipped_config_is_valid() -> None:
    cfg = load_config(ROOT / "config")
    assert len(cfg.wards) == 94
    assert len(cfg.ward_codes) == 94
    assert {"air_quality", "water_level", "rainfall", "traffic", "noise"} <= set(
        cfg.sensors.device_types
    )


def test_duplicate_ward_code(cfg_dir: Path) -> None:
    path = cfg_dir / "wards.yaml"
    cfg = load_config(cfg_dir)
    first, second = cfg.wards[0].code, cfg.wards[1].code
    text = path.read_text(encoding="utf-8")
    text = text.replace(f'code: "{second}"', f'code: "{first}"', 1)
    path.write_text(text, encoding="utf-8")
    line = _line_of(path, f'code: "{first}"', _line_of(path, f'code: "{first}"'))
    issues = _issues(cfg_dir)
    assert any(
        f"{path}:{line}: wards[1].code: duplicate ward code '{first}'" in i for i in issues
    ), issues


def test_unknown_metric_in_threshold(cfg_dir: Path) -> None:
    path = cfg_dir / "alerts.yaml"
    path.write_text(
        "rules:\n"
        "  - id: pm25_high\n"
        "    kind: reading\n"
        "    metric: pm25\n"
        "    threshold: 55\n"
        "    label_vi: Bụi mịn cao\n"
        "    label_en: High PM2.5\n"
        "  - id: bogus\n"
        "    kind: reading\n"
        "    metric: not_a_metric\n"
        "    threshold: 1\n"
        "    label_vi: x\n"
        "    label_en: x\n",
        encoding="utf-8",
    )
    issues = _issues(cfg_dir)
    assert f"{path}:10: rules[1].metric: unknown metric 'not_a_metric'" in issues


def test_camera_in_unknown_ward(cfg_dir: Path) -> None:
    path = cfg_dir / "cameras.yaml"
    path.write_text(
        "cameras:\n  - id: cam-1\n    ward: '99999'\n    source: video.mp4\n",
        encoding="utf-8",
    )
    issues = _issues(cfg_dir)
    assert f"{path}:3: cameras[0].ward: unknown ward '99999'" in issues


def test_yaml_syntax_error(cfg_dir: Path) -> None:
    path = cfg_dir / "sensors.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(3, "  bad: [unclosed")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    issues = _issues(cfg_dir)
    assert len(issues) == 1
    assert issues[0].startswith(f"{path}:")
    assert "YAML syntax error" in issues[0]


def test_unknown_key_and_bad_type(cfg_dir: Path) -> None:
    path = cfg_dir / "ioc.yaml"
    path.write_text("ingest:\n  max_payload_bytes: lots\n  colour: blue\n", encoding="utf-8")
    issues = _issues(cfg_dir)
    assert any(i.startswith(f"{path}:2: ingest.max_payload_bytes:") for i in issues), issues
    assert f"{path}:3: ingest.colour: unknown key" in issues


def test_every_error_reported_at_once(cfg_dir: Path) -> None:
    (cfg_dir / "ioc.yaml").write_text("timezone: [\n", encoding="utf-8")
    (cfg_dir / "cameras.yaml").write_text("cameras:\n  - id: x\n", encoding="utf-8")
    issues = _issues(cfg_dir)
    assert any("ioc.yaml" in i for i in issues)
    assert any("cameras.yaml:2: cameras[0].ward: required key is missing" in i for i in issues)


def test_config_check_command(cfg_dir: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "--config-dir", str(cfg_dir), "config", "check"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "94 wards" in ok.stdout
    (cfg_dir / "cameras.yaml").write_text(
        "cameras:\n  - id: c\n    ward: nowhere\n    source: x\n", encoding="utf-8"
    )
    bad = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "--config-dir", str(cfg_dir), "config", "check"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "cameras.yaml:3: cameras[0].ward: unknown ward 'nowhere'" in bad.stderr
    assert "Traceback" not in bad.stderr


def _check(cfg_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", "--config-dir", str(cfg_dir), "config", "check"],
        capture_output=True,
        text=True,
    )


def test_config_check_names_unknown_kpi_query_and_param(cfg_dir: Path) -> None:
    path = cfg_dir / "kpis.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("    query: online_share\n", "    query: online_shares\n", 1)
    text = text.replace("      threshold_cm: 50", "      threshold_cn: 50", 1)
    path.write_text(text, encoding="utf-8")
    load_config(cfg_dir)  # the light loader does not import the query registry
    bad = _check(cfg_dir)
    assert bad.returncode == 1
    q_line = _line_of(path, "query: online_shares")
    p_line = _line_of(path, "threshold_cn: 50")
    assert (
        f"kpis.yaml:{q_line}: kpis.online_share.query: unknown query function 'online_shares'"
        in (bad.stderr)
    )
    assert (
        f"kpis.yaml:{p_line}: kpis.flood_risk.params.threshold_cn: query 'flood_risk' takes no"
        " parameter 'threshold_cn'"
    ) in bad.stderr
    assert "2 error(s)" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_config_check_validates_simulator_file(cfg_dir: Path) -> None:
    path = cfg_dir / "simulator.yaml"
    path.write_text("history_interval_s: 5\n", encoding="utf-8")
    bad = _check(cfg_dir)
    assert bad.returncode == 1
    assert "simulator.yaml:1: history_interval_s:" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_camera_position_errors_name_file_line_and_key(cfg_dir: Path) -> None:
    path = cfg_dir / "cameras.yaml"
    cams = (
        "cameras:\n"
        "  - {id: in-ward, ward: '20242', source: a.mp4, lat: 16.0762, lon: 108.218}\n"
        "  - {id: no-lon, ward: '20242', source: b.mp4, lat: 16.0762}\n"
        "  - {id: far, ward: '20242', source: c.mp4, lat: 16.2, lon: 108.0}\n"
    )
    path.write_text(cams, encoding="utf-8")
    issues = _issues(cfg_dir)
    assert issues[0] == f"{path}:3: cameras[1].lat: lat given without lon", issues
    assert issues[1].startswith(f"{path}:4: cameras[2].lat: position (16.2, 108.0) is ")
    assert "km outside ward 20242 (Phường Hải Châu)" in issues[1]
    assert len(issues) == 2  # the camera inside its ward is fine
    # without the outlines (wards.geojson), the ward's centre and area decide
    (cfg_dir / "wards.geojson").unlink()
    assert [i.split(": ")[1] for i in _issues(cfg_dir)] == ["cameras[1].lat", "cameras[2].lat"]
    # a number out of range, or not a number
    path.write_text(
        "cameras:\n  - {id: x, ward: '20242', source: a.mp4, lat: 95, lon: east}\n",
        encoding="utf-8",
    )
    issues = _issues(cfg_dir)
    assert any(i.startswith(f"{path}:2: cameras[0].lat: ") and "90" in i for i in issues), issues
    assert any(i.startswith(f"{path}:2: cameras[0].lon: ") for i in issues), issues


def test_incident_reminder_settings_are_checked(cfg_dir: Path) -> None:
    path = cfg_dir / "incidents.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("reminder_every_min: 30\n", "reminder_every_min: 0\n", 1)
    text = text.replace("max_reminders: null\n", "max_reminders: -1\n", 1)
    path.write_text(text, encoding="utf-8")
    issues = _issues(cfg_dir)
    every, most = _line_of(path, "reminder_every_min: 0"), _line_of(path, "max_reminders: -1")
    assert any(i.startswith(f"{path}:{every}: reminder_every_min:") for i in issues), issues
    assert any(i.startswith(f"{path}:{most}: max_reminders:") for i in issues), issues
