"""What incidents need from the configuration: clocks, SOP steps, assignees (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ioc.config import Config
from ioc.config.categories import REQUIRED_CATEGORIES
from ioc.config.incidents import IncidentsFile, SlaRule
from ioc.incidents.clock import Clock
from ioc.workdays import work_calendar

DEFAULTS = IncidentsFile.model_validate({"sla": [{"response_hours": 4, "resolution_hours": 24}]})


def settings(cfg: Config) -> IncidentsFile:
    return cfg.incidents if cfg.incidents is not None else DEFAULTS


def clock_of(cfg: Config, rule: SlaRule) -> Clock:
    return Clock(work_calendar(cfg.categories, cfg.holidays), continuous=rule.clock == "continuous")


@dataclass(frozen=True)
class Clocks:
    response_due_at: dt.datetime
    response_warn_at: dt.datetime
    due_at: dt.datetime
    warn_at: dt.datetime


def clocks(cfg: Config, category: str, severity: str, start: dt.datetime) -> Clocks:
    """The response and resolution due (and warning) times of a clock started at ``start``."""
    rule = settings(cfg).sla_for(category, severity)
    clock = clock_of(cfg, rule)
    share = settings(cfg).warn_share
    return Clocks(
        response_due_at=clock.add_hours(start, rule.response_hours),
        response_warn_at=clock.add_hours(start, rule.response_hours * share),
        due_at=clock.add_hours(start, rule.resolution_hours),
        warn_at=clock.add_hours(start, rule.resolution_hours * share),
    )


@dataclass(frozen=True)
class Step:
    id: str
    vi: str
    en: str
    needs: str | None  # None | "note" | "photo"

    def label(self, lang: str) -> str:
        return self.en if lang == "en" and self.en else self.vi


def sop_steps(cfg: Config, category: str) -> list[Step]:
    """The SOP checklist of a category (categories.yaml ``sop``); none for an unknown one."""
    cat = cfg.categories.categories.get(category) if cfg.categories is not None else None
    return [Step(s.id, s.vi, s.en, s.needs) for s in (cat.sop if cat is not None else [])]


def categories(cfg: Config) -> dict[str, tuple[str, str]]:
    """Category id → (Vietnamese, English) names (categories.yaml)."""
    if cfg.categories is None:
        return {c: (c, c) for c in REQUIRED_CATEGORIES}
    return {cid: (c.name.vi, c.name.en) for cid, c in cfg.categories.categories.items()}


def assignees(cfg: Config) -> dict[str, str]:
    """Assignee id → kind: every ward code ('ward') and every department ('department')."""
    out = dict.fromkeys(cfg.ward_codes, "ward")
    for d in settings(cfg).departments:
        out[d.id] = "department"
    return out


def department_name(cfg: Config, dept: str, lang: str) -> str | None:
    for d in settings(cfg).departments:
        if d.id == dept:
            return d.name_en if lang == "en" else d.name_vi
    return None
