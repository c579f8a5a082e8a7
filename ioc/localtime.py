"""IOC's local time: Vietnam's one time zone, Asia/Ho_Chi_Minh (UTC+7, no daylight saving
since 1975). Day boundaries of KPIs and roll-ups (also the daily aggregates in the database),
working days and due dates, reports and pages all use it, from here.

It is fixed, not configurable: ``system.timezone`` in ``config/ioc.yaml`` is accepted with this
value only (``ioc/config/system.py``). Supporting another zone would mean rebuilding the
database's daily aggregates and re-checking every day boundary; a city outside Vietnam would
also need its own holiday calendar and KPI rules."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

TZ_NAME = "Asia/Ho_Chi_Minh"
TZ = ZoneInfo(TZ_NAME)
UTC_OFFSET = dt.timedelta(hours=7)
# the same zone as a fixed offset: cheaper to convert, and equal to TZ at every instant IOC
# handles (tests/test_localtime.py)
LOCAL_TZ = dt.timezone(UTC_OFFSET, "ICT")
OFFSET_LABEL = "GMT+7"  # as shown to users
