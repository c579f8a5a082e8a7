"""The tiles' trend arrows: a count with no target is information (neutral colour, not red),
and a running total of a period not yet over is not compared with the whole previous period
(121 applications by 08:40 against all of yesterday's is not a fall)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboards.kpiview import COLORS, city_value, trend
from ioc.config import Kpi


def kpi(rollup: str, target: float | None) -> Kpi:
    return Kpi(
        label_vi="x", label_en="x", unit="hồ sơ", direction="higher_better", target=target,
        rollup=rollup, query="q",
    )  # fmt: skip


def latest(start: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {"kpi": ["k"], "ward_code": ["city"], "period_start": [start], "value": [121.0],
         "prev_value": [980.0]}
    )  # fmt: skip


def test_a_count_without_target_changes_in_a_neutral_colour() -> None:
    assert trend(121, 980, kpi("sum", None)) == ("▼", COLORS["neutral"])
    assert trend(121, 980, kpi("sum", 500))[1] == COLORS["red"]


def test_a_running_total_is_not_compared_before_its_period_ends() -> None:
    today = dt.datetime(2026, 12, 6, 17, 0, tzinfo=dt.UTC)  # 00:00 on 7/12 in Da Nang
    now = today + dt.timedelta(hours=8)
    assert city_value(latest(today), "k", kpi("sum", None), now=now) == (121.0, None)
    # a rate or a mean is comparable at any time; a count once its day is over
    assert city_value(latest(today), "k", kpi("mean", 95), now=now) == (121.0, 980.0)
    later = today + dt.timedelta(days=1, minutes=1)
    assert city_value(latest(today), "k", kpi("sum", None), now=later) == (121.0, 980.0)
    assert city_value(latest(today), "k") == (121.0, 980.0)  # without the KPI: as stored
