"""VN_AQI arithmetic (Decision 1459) against hand-computed values."""

from __future__ import annotations

import pytest

from ioc.kpi import aqi


@pytest.mark.parametrize(
    ("pollutant", "c", "expected"),
    [
        ("pm25", 0, 0.0),
        ("pm25", 25, 50.0),
        ("pm25", 35, 70.0),  # 50 + (100-50)/(50-25) * (35-25)
        ("pm25", 600, 400 + 100 / 150 * 250),  # beyond 500 µg/m³: last segment continued
        ("pm10", 200, 125.0),  # 100 + 50/100 * 50
        ("no2", 150, 75.0),
        ("no2", 250, 105.0),  # 100 + 50/500 * 50
        ("so2", 125, 50.0),
        ("co", 20000, 75.0),
        ("o3", 250, 125.0),
        ("o3", 1200, 500.0),
    ],
)
def test_sub_index(pollutant: str, c: float, expected: float) -> None:
    assert aqi.sub_index(pollutant, c) == pytest.approx(expected)


def test_sub_index_missing() -> None:
    assert aqi.sub_index("pm25", None) is None
    assert aqi.sub_index("pm25", float("nan")) is None


def test_round_half_up() -> None:
    assert aqi.round_half_up(60.5) == 61
    assert aqi.round_half_up(60.49) == 60


def test_nowcast_weight_floor_half_and_missing_hours() -> None:
    # latest first; Cmin/Cmax = 20/40 = 0.5 → w = 0.5; hour 3 missing is skipped
    nc = aqi.nowcast([40, 20, None, 30])
    assert nc == pytest.approx((40 + 0.5 * 20 + 0.125 * 30) / (1 + 0.5 + 0.125))


def test_nowcast_weight_above_half() -> None:
    nc = aqi.nowcast([30, 24, 27])
    assert nc == pytest.approx((30 + 0.8 * 24 + 0.64 * 27) / (1 + 0.8 + 0.64))


def test_nowcast_needs_two_of_latest_three() -> None:
    assert aqi.nowcast([40, None, None, 30, 30]) is None
    assert aqi.nowcast([None, 10, 12]) is not None
    assert aqi.nowcast([]) is None


def test_nowcast_all_zero() -> None:
    assert aqi.nowcast([0, 0, 0]) == 0


def test_nowcast_uses_twelve_hours_only() -> None:
    assert aqi.nowcast([10.0] * 12 + [1000.0]) == pytest.approx(10.0)


def test_hourly_aqi_max_over_pollutants() -> None:
    # PM2.5 NowCast of [60, 40, 20]: w = 0.5 → 85/1.75 = 48.571 → 97.14; NO₂ 150 → 75
    value, dominant = aqi.hourly_aqi({"pm25": [60, 40, 20]}, {"no2": 150})
    assert (value, dominant) == (97, "pm25")
    value, dominant = aqi.hourly_aqi({"pm25": [60, 40, 20]}, {"no2": 250, "o3": 250})
    assert (value, dominant) == (125, "o3")


def test_daily_aqi() -> None:
    assert aqi.daily_aqi({"pm25": 40}, {"no2": 250}) == (105, "no2")
    assert aqi.daily_aqi({"pm10": 100}, {}) == (75, "pm10")
    assert aqi.daily_aqi({}, {}) == (None, None)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (0, "good"),
        (50, "good"),
        (51, "moderate"),
        (150, "poor"),
        (151, "bad"),
        (201, "very_bad"),
        (301, "hazardous"),
        (567, "hazardous"),
    ],
)
def test_bands(value: int, key: str) -> None:
    b = aqi.band(value)
    assert b is not None and b[0] == key
    assert aqi.band(None) is None
