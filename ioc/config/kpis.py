"""``kpis.yaml``: KPI definitions, targets, thresholds, city roll-up rules, the scheduler's
settings and the scheduled reports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ioc.config.base import Section
from ioc.missing import is_missing

Period = Literal["hour", "day", "week", "month"]
ALL_PERIODS: tuple[Period, ...] = ("hour", "day", "week", "month")


class Kpi(Section):
    label_vi: str = Field(description="Vietnamese name")
    label_en: str = Field(description="English name")
    unit: str = Field(default="", description="Unit shown next to values")
    direction: Literal["higher_better", "lower_better"] = Field(description="Which way is good")
    target: float | None = Field(default=None, description="Target value for each ward")
    amber: float | None = Field(default=None, description="Amber from this value on")
    red: float | None = Field(default=None, description="Red from this value on")
    rollup: Literal["sum", "mean", "weighted_mean", "worst", "best", "query"] = Field(
        description="How ward values roll up to the city (query: the query's own 'city' row, "
        "for figures such as a median that ward values cannot give)"
    )
    weight: str | None = Field(
        default=None,
        description="Weight of weighted_mean: population, area, volume (the KPI's own "
        "denominator, e.g. applications counted) or the name of another KPI",
    )
    query: str = Field(description="Name of the SQL-backed query function in ioc/kpi/queries.py")
    metric: str | None = Field(default=None, description="Sensor metric the query reads, if any")
    decimals: int = Field(default=1, ge=0, le=6, description="Decimals shown and exported")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword parameters of the query function"
    )
    description_vi: str | None = Field(default=None, description="Definition, Vietnamese")
    description_en: str | None = Field(default=None, description="Definition, English")

    @model_validator(mode="after")
    def _weights(self) -> Kpi:
        if self.rollup == "weighted_mean" and not self.weight:
            raise ValueError("rollup weighted_mean needs a weight")
        if self.amber is not None and self.red is not None:
            if self.direction == "higher_better" and self.red > self.amber:
                raise ValueError("higher_better: red must be at or below amber")
            if self.direction == "lower_better" and self.red < self.amber:
                raise ValueError("lower_better: red must be at or above amber")
        return self

    def meets_target(self, value: float) -> bool:
        assert self.target is not None
        if self.direction == "higher_better":
            return value >= self.target
        return value <= self.target

    def past(self, value: float, threshold: float | None) -> bool:
        """Is ``value`` at or beyond ``threshold`` on the bad side?"""
        if threshold is None:
            return False
        if self.direction == "higher_better":
            return value <= threshold
        return value >= threshold

    def status(self, value: float | None) -> str:
        """The one status rule of every tile, table, map, wall and export:

        - 'none': no data;
        - with a target: 'green' only when the target is met, 'red' at or past the red
          threshold, 'amber' in between (missing the target is never green);
        - without a target: 'red' / 'amber' past those thresholds, else 'green';
        - with neither a target nor thresholds (a plain count such as applications
          received): 'neutral', neither good nor bad.
        """
        if value is None or is_missing(value):
            return "none"
        v = float(value)
        if self.past(v, self.red):
            return "red"
        if self.target is not None:
            return "green" if self.meets_target(v) else "amber"
        if self.past(v, self.amber):
            return "amber"
        if self.amber is None and self.red is None:
            return "neutral"
        return "green"


class Backfill(Section):
    hour: int = Field(default=48, ge=1, description="Hours computed on the very first run")
    day: int = Field(default=31, ge=1, description="Days computed on the very first run")
    week: int = Field(default=8, ge=1, description="Weeks computed on the very first run")
    month: int = Field(default=3, ge=1, description="Months computed on the very first run")


class SchedulerSection(Section):
    rollups_every_s: float = Field(default=60, gt=0, description="Roll-up refresh interval")
    kpis_every_s: float = Field(default=300, gt=0, description="KPI computation interval")
    alerts_every_s: float = Field(default=60, gt=0, description="Alert evaluation interval")
    offline_every_s: float = Field(default=60, gt=0, description="Offline detection interval")
    reports_every_s: float = Field(default=900, gt=0, description="Due reports checked this often")
    retention_every_s: float = Field(default=6 * 3600, gt=0, description="Retention interval")
    heartbeat_every_s: float = Field(default=10, gt=0, description="service_status heartbeat")
    leader_retry_s: float = Field(default=5, gt=0, description="Stand-by retries the lock")
    misfire_grace_s: int = Field(default=600, ge=1, description="APScheduler misfire grace")
    periods: list[Period] = Field(
        default_factory=lambda: list(ALL_PERIODS),
        description="Periods computed into kpi_values",
    )
    backfill: Backfill = Field(default_factory=Backfill)
    offline_factor: float = Field(
        default=3, gt=0, description="Offline after this many expected intervals without data"
    )
    camera_interval_s: float = Field(
        default=10, gt=0, description="Expected interval of camera metrics, seconds"
    )
    reports_dir: str = Field(
        default="reports",
        description="Folder of scheduled reports; a relative one is under IOC_VAR_DIR",
    )


class ReportDef(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Report name (file name prefix)")
    schedule: Literal["daily", "weekly", "monthly"] = Field(description="Which periods it covers")
    kpis: list[str] = Field(min_length=1, description="KPIs included")
    every: Period = Field(default="day", description="Rows per this period")
    format: Literal["csv", "xlsx"] = Field(default="xlsx")
    lang: Literal["vi", "en"] = Field(default="vi")
    catch_up: int = Field(default=7, ge=0, description="Missed periods written after downtime")


class KpisFile(Section):
    kpis: dict[str, Kpi] = Field(description="KPIs by name")
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)
    reports: list[ReportDef] = Field(default_factory=list, description="Scheduled reports")

    @model_validator(mode="after")
    def _refs(self) -> KpisFile:
        for rep in self.reports:
            for k in rep.kpis:
                if k not in self.kpis:
                    raise ValueError(f"report {rep.name!r}: unknown KPI {k!r}")
        for name, kpi in self.kpis.items():
            w = kpi.weight
            if w and w not in ("population", "area", "volume") and w not in self.kpis:
                raise ValueError(f"KPI {name!r}: unknown weight {w!r}")
        return self
