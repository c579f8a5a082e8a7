"""``kpis.yaml``: KPI definitions, targets, thresholds and city roll-up rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ioc.config.base import Section


class Kpi(Section):
    label_vi: str = Field(description="Vietnamese name")
    label_en: str = Field(description="English name")
    unit: str = Field(default="", description="Unit shown next to values")
    direction: Literal["higher_better", "lower_better"] = Field(description="Which way is good")
    target: float | None = Field(default=None, description="Target value for each ward")
    amber: float | None = Field(default=None, description="Amber from this value on")
    red: float | None = Field(default=None, description="Red from this value on")
    rollup: Literal["sum", "mean", "weighted_mean", "worst", "best"] = Field(
        description="How ward values roll up to the city"
    )
    weight: str | None = Field(
        default=None, description="Weight of weighted_mean: population, area or a volume KPI"
    )
    query: str = Field(description="Name of the SQL-backed query function that computes it")
    metric: str | None = Field(default=None, description="Sensor metric the query reads, if any")

    @model_validator(mode="after")
    def _weights(self) -> Kpi:
        if self.rollup == "weighted_mean" and not self.weight:
            raise ValueError("rollup weighted_mean needs a weight")
        return self


class KpisFile(Section):
    kpis: dict[str, Kpi] = Field(description="KPIs by name")
