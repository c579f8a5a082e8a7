"""The local time zone is one fixed definition (ioc/localtime.py): Vietnam's, with no daylight
saving, so the fixed UTC+7 offset used for speed equals the zone at every instant; the
configuration accepts no other zone (it used to accept any and then ignore it in half of the
modules)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from ioc.config import ConfigError, load_config
from ioc.localtime import LOCAL_TZ, TZ, TZ_NAME, UTC_OFFSET

ROOT = Path(__file__).resolve().parents[2]


def test_the_fixed_offset_is_the_zone_at_every_hour_of_years_of_data() -> None:
    t = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    while t.year < 2040:
        assert t.astimezone(TZ).utcoffset() == UTC_OFFSET
        assert t.astimezone(TZ).replace(tzinfo=None) == t.astimezone(LOCAL_TZ).replace(tzinfo=None)
        t += dt.timedelta(hours=97)  # every hour of the day, every month


def test_configuration_accepts_only_the_supported_zone(tmp_path: Path) -> None:
    cfg_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg_dir)
    ioc_yaml = cfg_dir / "ioc.yaml"
    text = ioc_yaml.read_text(encoding="utf-8")
    assert load_config(cfg_dir).system.timezone == TZ_NAME  # the default
    ioc_yaml.write_text(f"timezone: {TZ_NAME}\n" + text, encoding="utf-8")
    assert load_config(cfg_dir).system.timezone == TZ_NAME  # older files: still accepted
    ioc_yaml.write_text("timezone: Europe/Paris\n" + text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg_dir)
    assert "timezone" in str(err.value) and "ioc.yaml" in str(err.value)
