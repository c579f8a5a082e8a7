"""What incidents need from the configuration: clocks, SOP steps, assignees (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ioc.config import Config
from ioc.config.incidents import IncidentsFile, SlaRule
from ioc.incidents.clock import Clock, parse_spans
from ioc.workdays import Holidays

DEFAULTS = IncidentsFile.model_validate({"sla": [{"response_hours": 4, "resolution_hours": 24}]})


def settings(cfg: Config) -> IncidentsFile:
    return cfg.incidents if cfg.incidents is not None else DEFAULTS


def clock_of(cfg: Config, rule: SlaRule) -> Clock:
    cats = getattr(cfg, "categories", None)
    spans = getattr(cats, "working_hours", None) or settings(cfg).working_hours
    return Clock(
        holidays=Holidays.of(cfg.holidays),
        spans=parse_spans(spans),
        continuous=rule.clock == "continuous",
    )


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
    cats = getattr(cfg, "categories", None)
    table: Any = getattr(cats, "categories", None) or {}
    cat = table.get(category) if hasattr(table, "get") else None
    out = []
    for s in getattr(cat, "sop", None) or []:
        get = s.get if isinstance(s, dict) else lambda k, s=s: getattr(s, k, None)
        out.append(Step(str(get("id")), str(get("vi") or ""), str(get("en") or ""), get("needs")))
    return out


def categories(cfg: Config) -> dict[str, tuple[str, str]]:
    """Category id → (Vietnamese, English) names (categories.yaml), else the ids in use."""
    cats = getattr(cfg, "categories", None)
    table: Any = getattr(cats, "categories", None) or {}
    out: dict[str, tuple[str, str]] = {}
    for cid, cat in dict(table).items():
        name = getattr(cat, "name", None)
        vi = getattr(name, "vi", None) or (name.get("vi") if isinstance(name, dict) else None)
        en = getattr(name, "en", None) or (name.get("en") if isinstance(name, dict) else None)
        out[str(cid)] = (str(vi or cid), str(en or vi or cid))
    if not out:
        for cid in FALLBACK_CATEGORIES:
            out[cid] = (cid, cid)
    return out


# the categories the contract names, used until categories.yaml is there
FALLBACK_CATEGORIES = (
    "traffic",
    "flooding",
    "environment",
    "lighting",
    "waste",
    "urban_order",
    "public_administration",
    "other",
)


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
