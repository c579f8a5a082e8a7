"""One status rule (ioc.config.Kpi.status) from the target and the KPI's direction: tiles,
tables, the map's colour scale and exports all follow it."""

from __future__ import annotations

from dashboards.components.figures import map_colours
from dashboards.kpiview import COLORS, status
from ioc.config import Config


def colour_at(scale: list[list[object]], pos: float, reverse: bool = False) -> str:
    pos = 1.0 - pos if reverse else pos
    best = str(scale[0][1])
    for edge, colour in scale:
        if float(edge) <= pos:  # type: ignore[arg-type]
            best = str(colour)
    return best


def test_missing_the_target_is_never_green(config: Config) -> None:
    k = config.kpis.kpis
    # the examples
    assert k["on_time_rate"].status(91.1) == "amber"  # target 95: was green
    assert k["flood_risk"].status(66) == "amber"  # target 50: was green
    assert k["applications_received"].status(0) == "neutral"  # no target: was green
    # met, missed, past red, both directions
    assert k["on_time_rate"].status(95) == "green"
    assert k["on_time_rate"].status(80) == "red"
    assert k["flood_risk"].status(50) == "green"
    assert k["flood_risk"].status(100) == "red"
    assert k["overdue_applications"].status(0) == "green"
    assert k["overdue_applications"].status(1) == "amber"
    assert k["aqi"].status(97) == "amber"
    assert k["on_time_rate"].status(None) == "none"
    assert k["on_time_rate"].status(float("nan")) == "none"
    # the dashboards use the same rule, and have a colour for each outcome
    for name, kpi in k.items():
        for v in (0.0, 10.0, 50.0, 91.1, 99.0, None):
            assert status(v, kpi) == kpi.status(v), name
            assert status(v, kpi) in COLORS


def test_map_colours_agree_with_the_status(config: Config) -> None:
    green, amber, red = COLORS["green"], COLORS["amber"], COLORS["red"]
    for name, value, want in (
        ("on_time_rate", 91.1, "amber"),
        ("on_time_rate", 96.0, "green"),
        ("on_time_rate", 80.0, "red"),
        ("flood_risk", 66.0, "amber"),
        ("flood_risk", 40.0, "green"),
        ("flood_risk", 100.0, "red"),
    ):
        kpi = config.kpis.kpis[name]
        c = map_colours(name, kpi)
        pos = (min(max(value, c["zmin"]), c["zmax"]) - c["zmin"]) / (c["zmax"] - c["zmin"])
        got = colour_at(c["colorscale"], pos, c["reversescale"])
        assert kpi.status(value) == want
        if want == "green":
            assert got == green, (name, value)
        elif want == "red":
            assert got == red, (name, value)
        else:
            assert got not in (green, red), (name, value)
            assert got == amber or got.startswith("#f"), (name, value)
    received = map_colours("applications_received", config.kpis.kpis["applications_received"])
    assert green not in str(received["colorscale"]) and red not in str(received["colorscale"])


def test_wall_labels_do_not_depend_on_row_order(config: Config) -> None:
    import pandas as pd

    from dashboards.components.figures import pick_labelled

    codes = [w.code for w in config.wards]
    # many ties (a fresh demo: every ward at 100 %)
    df = pd.DataFrame({"ward_code": codes, "value": [100.0] * len(codes), "rank": [1.0] * 94})
    kpi = config.kpis.kpis["on_time_rate"]
    first = pick_labelled(df, kpi, {codes[5]})
    for seed in range(5):
        shuffled = df.sample(frac=1.0, random_state=seed)
        assert pick_labelled(shuffled, kpi, {codes[5]}) == first
