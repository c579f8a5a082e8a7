"""``incidents.yaml``: SLA clocks, the escalation chain, departments and auto-open rules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ioc.config.base import Section
from ioc.config.loader import ConfigIssue, YamlDoc

Severity = Literal["info", "warning", "critical"]


class SlaRule(Section):
    category: str | None = Field(default=None, description="Only this category (any if unset)")
    severity: Severity | None = Field(default=None, description="Only this severity (any if unset)")
    response_hours: float = Field(gt=0, description="Time to acknowledge, hours of the clock")
    resolution_hours: float = Field(gt=0, description="Time to resolve, hours of the clock")
    clock: Literal["working", "continuous"] = Field(
        default="working",
        description="working: office hours of working days (holidays.yaml); continuous: 24/7",
    )

    @model_validator(mode="after")
    def _order(self) -> SlaRule:
        if self.response_hours > self.resolution_hours:
            raise ValueError("response_hours must not exceed resolution_hours")
        return self


class EscalationStep(Section):
    to: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Who is escalated to (a role id)")
    after_hours: float = Field(
        ge=0, description="Hours of the incident's clock after the breach before this step"
    )
    label_vi: str = Field(description="Vietnamese name of the role")
    label_en: str = Field(description="English name of the role")
    notify_roles: list[Literal["admin", "operator", "ward_leader", "analyst"]] = Field(
        default_factory=list,
        description="Users of these roles get the escalation message (notifications outbox)",
    )


class Department(Section):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Department id (an assignee)")
    name_vi: str = Field(description="Vietnamese name")
    name_en: str = Field(description="English name")


class AutoOpen(Section):
    alert_rule: str = Field(description="Alert rule id (alerts.yaml)")
    severity: Severity | None = Field(
        default=None, description="Only alerts of this severity (any if unset)"
    )
    category: str = Field(description="Category of the incident opened")


class IncidentsFile(Section):
    warn_share: float = Field(
        default=0.75, gt=0, lt=1, description="Share of a clock used when sla_warning is sent"
    )
    sla: list[SlaRule] = Field(
        min_length=1, description="First matching rule wins; the last must match everything"
    )
    escalation: list[EscalationStep] = Field(
        default_factory=list, description="Level 1, 2, ... after the assignee (level 0)"
    )
    reminder_every_min: float = Field(
        default=30,
        gt=0,
        description="While an open incident is not acknowledged past its response due time:"
        " a reminder every this many minutes (of its clock) to everyone told so far",
    )
    max_reminders: int | None = Field(
        default=None, ge=0, description="At most this many reminders per clock (null: no limit)"
    )
    departments: list[Department] = Field(default_factory=list)
    auto_open: list[AutoOpen] = Field(default_factory=list)
    report_merge_m: float = Field(
        default=300,
        ge=0,
        description="A citizen report taken up as an incident joins an open incident of its"
        " ward and category within this many metres (the same problem); 0: never",
    )
    require_sop_to_resolve: bool = Field(
        default=True, description="Resolving needs every SOP step of the category ticked"
    )

    @model_validator(mode="after")
    def _catch_all(self) -> IncidentsFile:
        last = self.sla[-1]
        if last.category is not None or last.severity is not None:
            raise ValueError("the last sla rule must have neither category nor severity")
        return self

    def sla_for(self, category: str, severity: str) -> SlaRule:
        for rule in self.sla:
            if rule.category not in (None, category):
                continue
            if rule.severity not in (None, severity):
                continue
            return rule
        return self.sla[-1]


def category_ids(cfg: Any) -> set[str] | None:
    """The configured categories (categories.yaml), or None when there is no such file."""
    cats = getattr(cfg, "categories", None)
    if cats is None:
        return None
    return set(getattr(cats, "categories", {}) or {})


def cross_check(cfg: Any, doc: YamlDoc) -> list[ConfigIssue]:
    """Rule and category names used by incidents.yaml exist; assignee ids do not clash."""
    inc: IncidentsFile = cfg.incidents
    issues: list[ConfigIssue] = []
    rules = {r.id for r in cfg.alerts.rules}
    cats = category_ids(cfg)
    for i, a in enumerate(inc.auto_open):
        if a.alert_rule not in rules:
            issues.append(
                doc.issue(("auto_open", i, "alert_rule"), f"unknown rule {a.alert_rule!r}")
            )
        if cats is not None and a.category not in cats:
            issues.append(
                doc.issue(("auto_open", i, "category"), f"unknown category {a.category!r}")
            )
    for i, s in enumerate(inc.sla):
        if cats is not None and s.category is not None and s.category not in cats:
            issues.append(doc.issue(("sla", i, "category"), f"unknown category {s.category!r}"))
    seen: set[str] = set()
    for i, d in enumerate(inc.departments):
        if d.id in seen or d.id in cfg.ward_codes:
            issues.append(doc.issue(("departments", i, "id"), f"duplicate assignee id {d.id!r}"))
        seen.add(d.id)
    return issues
