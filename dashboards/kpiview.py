"""Pure functions from KPI rows to what pages show: status colours, trends, ranks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ioc.config import Kpi
from ioc.missing import is_missing

COLORS = {
    "green": "#1a9850",
    "amber": "#f0a202",
    "red": "#d73027",
    "neutral": "#4a78b5",  # a count with no target: information, neither good nor bad
    "none": "#9e9e9e",
}


def status(value: float | None, kpi: Kpi) -> str:
    """'green', 'amber', 'red', 'neutral' or 'none': :meth:`ioc.config.Kpi.status`, the one
    rule (from the target and the KPI's direction) that exports use too."""
    return kpi.status(None if value is None or is_missing(value) else float(value))


def trend(value: float | None, prev: float | None, kpi: Kpi) -> tuple[str, str]:
    """(arrow, colour): ▲/▼/▶ and whether the change is good (green) or bad (red)."""
    if is_missing(value) or is_missing(prev):
        return "", COLORS["none"]
    assert value is not None and prev is not None
    diff = float(value) - float(prev)
    scale = max(abs(float(prev)), 1e-9)
    if abs(diff) / scale < 0.005:
        return "▶", COLORS["none"]
    arrow = "▲" if diff > 0 else "▼"
    if kpi.target is None:  # a figure for information (a count): its change is neither
        return arrow, COLORS["neutral"]
    better = diff > 0 if kpi.direction == "higher_better" else diff < 0
    return arrow, COLORS["green" if better else "red"]


def ranks(latest: pd.DataFrame, kpi_name: str, kpi: Kpi) -> pd.DataFrame:
    """Wards of one KPI ranked best first: ward_code, value, prev_value, rank (1 = best).

    Wards with no data get no rank (NaN) and sort last. 'city' is excluded.
    """
    df = latest[(latest["kpi"] == kpi_name) & (latest["ward_code"] != "city")][
        ["kpi", "ward_code", "value", "prev_value"]
    ].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["rank"] = rank_column(df, {kpi_name: kpi})
    df = df.drop(columns=["kpi"])
    return df.sort_values(["rank", "ward_code"], na_position="last").reset_index(drop=True)


def rank_column(df: pd.DataFrame, kpis: Mapping[str, Kpi]) -> pd.Series:
    """The one ranking rule, for rows ``kpi``, ``value`` of wards (not the city): per KPI,
    1 = best in the KPI's direction, ties share the best rank, no value no rank (NaN)."""
    # higher is better: rank the negated values ascending (same ties, same order)
    sign = df["kpi"].map(lambda k: -1.0 if kpis[k].direction == "higher_better" else 1.0)
    values = pd.to_numeric(df["value"], errors="coerce") * sign
    return values.groupby(df["kpi"]).rank(method="min")


def city_value(
    latest: pd.DataFrame,
    kpi_name: str,
    kpi: Kpi | None = None,
    *,
    period: dt.timedelta = dt.timedelta(days=1),
    now: dt.datetime | None = None,
) -> tuple[float | None, float | None]:
    """(value, previous value) of the city roll-up of a KPI.

    With ``kpi``: a running total (``rollup: sum``, a count) of a period not yet over has no
    previous value to compare with (121 applications by 08:40 against all of yesterday's
    is not a fall)."""
    row = latest[(latest["kpi"] == kpi_name) & (latest["ward_code"] == "city")]
    if row.empty:
        return None, None
    v, p = row.iloc[0]["value"], row.iloc[0]["prev_value"]
    value, prev = (None if is_missing(v) else float(v)), (None if is_missing(p) else float(p))
    start: Any = row.iloc[0].get("period_start")
    if kpi is not None and kpi.rollup == "sum" and start is not None and not is_missing(start):
        ends = pd.Timestamp(start).to_pydatetime() + period
        if ends > (now or dt.datetime.now(dt.UTC)):
            prev = None
    return value, prev


def decimals(kpi: Kpi) -> int:
    """The KPI's own ``decimals`` (kpis.yaml); else counts as integers, rates with one."""
    own = getattr(kpi, "decimals", None)
    if isinstance(own, int):
        return min(own, 2)
    return 0 if kpi.rollup == "sum" else 1
