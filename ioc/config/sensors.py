"""``sensors.yaml``: device types and the metrics each reports."""

from __future__ import annotations

from pydantic import Field, model_validator

from ioc.config.base import Section


class Metric(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Metric key used in payloads")
    unit: str = Field(description="Unit shown to users, e.g. 'µg/m³'")
    min: float = Field(description="Smallest valid value; below it a reading is rejected")
    max: float = Field(description="Largest valid value; above it a reading is rejected")
    label_vi: str | None = Field(default=None, description="Vietnamese label")
    label_en: str | None = Field(default=None, description="English label")

    @model_validator(mode="after")
    def _range(self) -> Metric:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class DeviceType(Section):
    label_vi: str = Field(description="Vietnamese name of the device type")
    label_en: str = Field(description="English name of the device type")
    interval_s: float = Field(gt=0, description="Expected reporting interval, seconds")
    metrics: list[Metric] = Field(min_length=1, description="Metrics the device reports")

    def metric(self, name: str) -> Metric | None:
        for m in self.metrics:
            if m.name == name:
                return m
        return None


class SensorsFile(Section):
    device_types: dict[str, DeviceType] = Field(description="Device types by key")

    def all_metric_names(self) -> set[str]:
        return {m.name for dt in self.device_types.values() for m in dt.metrics}
