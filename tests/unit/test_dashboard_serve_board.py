"""The ward page's KPI board (all KPIs ranked in one pass, once per cache period) gives the
same ranks and city values as ``kpiview.ranks`` / ``city_value`` that the pages used before."""

from __future__ import annotations

import random

import pandas as pd

from dashboards.components.common import board_from_latest
from dashboards.kpiview import city_value, ranks
from ioc.config import Config


def _latest(config: Config, seed: int) -> pd.DataFrame:
    rnd = random.Random(seed)
    rows = []
    for name in [*config.kpis.kpis, "not_configured"]:
        for code in [f"w{i:02d}" for i in range(12)] + ["city"]:
            value: float | None = rnd.choice([1.0, 2.0, 2.0, 3.5, None, rnd.uniform(0, 100)])
            rows.append({"kpi": name, "ward_code": code, "value": value, "prev_value": None})
    return pd.DataFrame(rows)


def test_board_matches_ranks_and_city_value(config: Config) -> None:
    kpis = config.kpis.kpis
    directions = {k.direction for k in kpis.values()}
    assert directions == {"higher_better", "lower_better"}  # both orders are exercised
    for seed in range(5):
        latest = _latest(config, seed)
        board = board_from_latest(latest, kpis)
        assert set(board) == set(kpis)
        for name, kpi in kpis.items():
            expected = ranks(latest, name, kpi)
            ranked = expected[expected["rank"].notna()]
            want = {
                str(c): (float(v), int(r))
                for c, v, r in zip(
                    ranked["ward_code"], ranked["value"], ranked["rank"], strict=True
                )
            }
            assert board[name]["wards"] == want, name
            assert board[name]["n_ranked"] == len(want)
            assert board[name]["city"] == city_value(latest, name)[0]


def test_board_without_data(config: Config) -> None:
    empty = pd.DataFrame(columns=["kpi", "ward_code", "value", "prev_value"])
    board = board_from_latest(empty, config.kpis.kpis)
    assert all(b == {"city": None, "n_ranked": 0, "wards": {}} for b in board.values())
