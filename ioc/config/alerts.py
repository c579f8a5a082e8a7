"""``alerts.yaml``: alert rules on readings, KPIs and camera health."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ioc.config.base import Section


class AlertRule(Section):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Rule id, unique")
    kind: Literal["reading", "kpi", "camera", "device"] = Field(description="What it watches")
    metric: str | None = Field(default=None, description="Sensor metric (kind reading)")
    kpi: str | None = Field(default=None, description="KPI name (kind kpi)")
    event: str | None = Field(default=None, description="Camera health event (kind camera)")
    op: Literal[">", ">=", "<", "<="] = Field(default=">", description="Comparison")
    threshold: float | None = Field(default=None, description="Opens when value op threshold")
    clear: float | None = Field(default=None, description="Hysteresis: resolves past this value")
    for_s: float = Field(default=0, ge=0, description="Condition must hold this long, seconds")
    severity: Literal["info", "warning", "critical"] = Field(default="warning")
    period: Literal["hour", "day", "week", "month"] = Field(
        default="day", description="KPI period watched (kind kpi): the current one"
    )
    city: bool = Field(default=False, description="Kind kpi: also watch the city roll-up")
    device_type: str | None = Field(
        default=None, description="Kind device/reading: only devices of this type"
    )
    window_s: float = Field(
        default=900, gt=0, description="Kind reading: latest reading no older than this"
    )
    label_vi: str = Field(description="Vietnamese title")
    label_en: str = Field(description="English title")

    @model_validator(mode="after")
    def _subject(self) -> AlertRule:
        need = {"reading": "metric", "kpi": "kpi", "camera": "event"}.get(self.kind)
        if need and getattr(self, need) is None:
            raise ValueError(f"a {self.kind} rule needs '{need}'")
        if self.kind in ("reading", "kpi") and self.threshold is None:
            raise ValueError(f"a {self.kind} rule needs 'threshold'")
        return self


class AlertsFile(Section):
    publish_mqtt: bool = Field(default=False, description="Publish alerts to ioc/alerts/{ward}")
    rules: list[AlertRule] = Field(default_factory=list)
