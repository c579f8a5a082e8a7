"""The one notion of a missing value (ioc.missing), used by formatters, status and figures."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from dashboards.i18n import fmt_datetime, fmt_num
from ioc.missing import is_missing


@pytest.mark.parametrize("value", [None, float("nan"), np.float64("nan"), pd.NaT, pd.NA])
def test_missing_values(value: object) -> None:
    assert is_missing(value)


@pytest.mark.parametrize(
    "value", [0, 0.0, -1.5, "", "x", dt.datetime(2026, 1, 1), pd.Timestamp("2026-01-01"),
              np.int64(3), np.array([1.0, np.nan])],
)  # fmt: skip
def test_real_values(value: object) -> None:
    assert not is_missing(value)


def test_formatters_show_a_dash_for_each_kind_of_missing() -> None:
    frame = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "t": [pd.Timestamp(0), None]})
    assert fmt_num(frame["n"].iloc[1], 0, "vi") == fmt_num(None, 0, "vi")
    assert fmt_datetime(frame["t"].iloc[1], "vi") == "—"
