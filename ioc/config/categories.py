"""``categories.yaml``: citizen-report categories (handling unit, time limit, SOP), the office
hours that working-hour limits count, and the intake and personal-data settings of reports."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from ioc.config.base import Section

# The contract's category ids: every deployment has at least these.
REQUIRED_CATEGORIES = (
    "traffic",
    "flooding",
    "environment",
    "lighting",
    "waste",
    "urban_order",
    "public_administration",
    "other",
)
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


def fold_unit(text: str) -> str:
    """A unit name compared ignoring case and runs of spaces."""
    return " ".join(text.split()).casefold()


def parse_hhmm(text: str) -> dt.time:
    """'07:30' → time(7, 30); '24:00' → time.max (the end of the day)."""
    if text == "24:00":
        return dt.time.max
    hh, mm = text.split(":")
    return dt.time(int(hh), int(mm))


class LocalText(Section):
    vi: str = Field(min_length=1, description="Vietnamese text (shown by default)")
    en: str = Field(min_length=1, description="English text")


class Limit(Section):
    """The time allowed to resolve a report: working hours or working days (one of them)."""

    working_hours: float | None = Field(
        default=None, gt=0, description="Limit in working (office) hours"
    )
    working_days: float | None = Field(default=None, gt=0, description="Limit in working days")

    @model_validator(mode="after")
    def _one(self) -> Limit:
        if (self.working_hours is None) == (self.working_days is None):
            raise ValueError("give exactly one of working_hours or working_days")
        return self


class SopStep(Section):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Step id, unique in its category")
    vi: str = Field(min_length=1, description="What to do, in Vietnamese")
    en: str = Field(min_length=1, description="What to do, in English")
    needs: Literal["photo", "note"] | None = Field(
        default=None, description="Evidence the step needs before it can be ticked"
    )


class Category(Section):
    name: LocalText = Field(description="Display name")
    unit: str = Field(
        min_length=1, description="Default handling unit (đơn vị xử lý); {ward} = the ward name"
    )
    limit: Limit = Field(description="Time allowed from receipt to resolution")
    sop: list[SopStep] = Field(default_factory=list, description="Standard operating procedure")

    @model_validator(mode="after")
    def _unique_steps(self) -> Category:
        ids = [s.id for s in self.sop]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate SOP step id(s): {', '.join(dup)}")
        return self


class IntakeSection(Section):
    """Limits of ``POST /api/v1/reports`` and of the public tracking API."""

    rate_per_s: float = Field(
        default=5000,
        gt=0,
        description="Events per second one token may push (all processes and hosts together)",
    )
    burst: int = Field(default=20000, ge=1, description="Events one token may push at once")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted, bytes"
    )
    max_events: int = Field(default=1000, ge=1, description="Most events in one request")
    track_per_minute: int = Field(
        default=30,
        ge=1,
        description="Public tracking look-ups per client address per minute (all hosts together)",
    )


CategoryId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
UnitId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class HandlingUnit(Section):
    """A handling unit (đơn vị xử lý) whose staff may be users (``ioc users add --unit ID``)."""

    name: str = Field(
        min_length=1,
        max_length=200,
        description="Its name as reports carry it; {ward} = the name of the report's ward",
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names senders use for it (matched ignoring case and spaces)",
    )


class CategoriesFile(Section):
    working_hours: list[tuple[str, str]] = Field(
        default=[("07:30", "11:30"), ("13:30", "17:00")],
        description="Office hours (local time) of a working day, as [start, end] pairs",
    )
    contact_retention_days: int = Field(
        default=90,
        ge=1,
        description="Days after a report ends before the reporter's contact is removed",
    )
    intake: IntakeSection = Field(default_factory=IntakeSection)
    units: dict[UnitId, HandlingUnit] = Field(
        default_factory=dict,
        description="Handling units by id: a user of a report's unit sees the reporter's contact",
    )
    categories: dict[CategoryId, Category] = Field(description="Report categories by id")

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if not value:
            raise ValueError("at least one [start, end] period is needed")
        prev: dt.time | None = None
        for a, b in value:
            for v in (a, b):
                if not re.match(_HHMM, v):
                    raise ValueError(f'{v!r} is not HH:MM (quote it: "07:30")')
            ta, tb = parse_hhmm(a), parse_hhmm(b)
            if tb <= ta:
                raise ValueError(f"{a}-{b} ends before it starts")
            if prev is not None and ta < prev:
                raise ValueError(f"{a}-{b} overlaps the period before it or is out of order")
            prev = tb
        return value

    @field_validator("categories")
    @classmethod
    def _required(cls, value: dict[str, Category]) -> dict[str, Category]:
        missing = [c for c in REQUIRED_CATEGORIES if c not in value]
        if missing:
            raise ValueError(f"missing required categor(y/ies): {', '.join(missing)}")
        return value

    @model_validator(mode="after")
    def _known_units(self) -> CategoriesFile:
        """With ``units`` given, every category's unit is one of them (by id or name)."""
        if not self.units:
            return self
        for cid, cat in self.categories.items():
            if self.unit_id(cat.unit) is None:
                raise ValueError(
                    f"categories.{cid}.unit: {cat.unit!r} is not a unit of `units`"
                    f" (known: {', '.join(self.units)})"
                )
        return self

    def unit_id(self, text: str) -> str | None:
        """The id of the unit called ``text`` (its id, name or an alias), else None. A
        ``{ward}`` name matches only its template here; see :mod:`ioc.citizen.units`."""
        key = fold_unit(text)
        for uid, unit in self.units.items():
            if key in {uid, fold_unit(unit.name), *(fold_unit(a) for a in unit.aliases)}:
                return uid
        return None

    def unit_name(self, text: str) -> str:
        """The display name of a category's ``unit`` (a unit id or a name)."""
        unit = self.units.get(text)
        return unit.name if unit is not None else text

    def periods(self) -> tuple[tuple[dt.time, dt.time], ...]:
        """The office hours as ``time`` pairs."""
        return tuple((parse_hhmm(a), parse_hhmm(b)) for a, b in self.working_hours)
