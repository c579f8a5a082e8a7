"""Scheduled reports are written under IOC_VAR_DIR (a host's own folder), not under whatever
folder the scheduler was started from; an absolute reports_dir stays as configured."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ioc.config import Config
from ioc.scheduler import with_reports_under


def test_relative_reports_dir_is_under_the_var_dir(config: Config, tmp_path: Path) -> None:
    assert not Path(config.kpis.scheduler.reports_dir).is_absolute()  # the shipped default
    got = with_reports_under(config, tmp_path / "var")
    assert got.kpis.scheduler.reports_dir == str(tmp_path / "var" / "reports")
    assert config.kpis.scheduler.reports_dir == "reports"  # the loaded config is not changed


def test_absolute_reports_dir_is_kept(config: Config, tmp_path: Path) -> None:
    sched = config.kpis.scheduler.model_copy(update={"reports_dir": str(tmp_path / "r")})
    cfg = dataclasses.replace(config, kpis=config.kpis.model_copy(update={"scheduler": sched}))
    assert with_reports_under(cfg, tmp_path / "var").kpis.scheduler.reports_dir == str(
        tmp_path / "r"
    )
