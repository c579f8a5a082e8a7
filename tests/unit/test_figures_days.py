"""A chart over days has one tick per day (or per few days), never the same date twice (the
applications page's trend repeated "04/12" under each hour)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboards.components.figures import lines


def frame(n: int) -> pd.DataFrame:
    days = [dt.date(2026, 12, 1) + dt.timedelta(days=i) for i in range(n)]
    return pd.DataFrame({"day": days, "received": range(n)})


def test_a_few_days_get_one_tick_each() -> None:
    fig = lines(frame(3), "day", [("received", "Tiếp nhận", "#000")], lang="vi")
    assert fig.layout.xaxis.dtick == 86_400_000
    assert fig.layout.xaxis.tickformat == "%d/%m"


def test_a_month_gets_a_tick_every_few_days() -> None:
    fig = lines(frame(30), "day", [("received", "Received", "#000")], lang="en")
    assert fig.layout.xaxis.dtick == 3 * 86_400_000
