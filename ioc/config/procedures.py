"""``procedures.yaml`` (one-stop-shop procedures) and ``holidays.yaml`` (public holidays)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from ioc.config.base import Section


class Procedure(Section):
    code: str = Field(description="Procedure code (as on the national procedures database)")
    name: str = Field(description="Vietnamese name")
    name_en: str | None = Field(default=None, description="English name")
    field: str = Field(description="Field (lĩnh vực), e.g. 'Hộ tịch'")
    days: float = Field(ge=0, description="Legal processing time in working days (0 = same day)")
    weight: float = Field(default=1.0, ge=0, description="Relative frequency, for the simulator")
    online_share: float = Field(default=0.5, ge=0, le=1, description="Share submitted online")


class ProceduresFile(Section):
    procedures: list[Procedure] = Field(min_length=1)


class Holiday(Section):
    date: dt.date = Field(description="A day off (public holiday or compensatory day off)")
    name: str = Field(description="Vietnamese name")


class HolidaysFile(Section):
    holidays: list[Holiday] = Field(default_factory=list, description="Days off on weekdays")
    working_weekends: list[dt.date] = Field(
        default_factory=list, description="Saturdays/Sundays worked in exchange for a bridge day"
    )
