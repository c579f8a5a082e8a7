"""What a QA run of the demo found on the pages (screenshots looked at as each role):

* the AQI map painted AQI 30 (good) red, its colours relative to the day's values, and the
  on-time map painted 88 % red next to a 90 % amber threshold;
* "Lượt đếm 1 giờ" (count in the last hour) empty for every camera: the query looked for
  metrics named ``count%`` while the ingester writes ``line_<name>_in/out``;
* the wall's highest water levels (323 cm) were single gauge spikes;
* English in the Vietnamese UI ("filter data...", channel "counter", camera fault "offline"),
  procedure codes with no name, "1546" instead of "1.546" in tables, "VN_AQI ()" headings.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from types import SimpleNamespace

import flask
import pytest

from dashboards import queries
from dashboards.components.common import (
    channel_label,
    fault_labels,
    kpi_heading,
    procedure_label,
)
from dashboards.components.figures import AQI_SCALE, map_colours
from dashboards.components.layout import rank_line, table, with_count_format
from ioc.config import Config
from ioc.db import Connection, connect


def colour_at(scale: list[list[object]], x: float) -> object:
    """The colour a discrete (stepped) Plotly scale gives at position x in [0, 1]."""
    for (p0, c0), (p1, _) in itertools.pairwise(scale):
        if float(p0) <= x < float(p1):  # type: ignore[arg-type]
            return c0
    return scale[-1][1]


def test_aqi_map_uses_the_vn_aqi_band_colours(config: Config) -> None:
    c = map_colours("aqi", config.kpis.kpis["aqi"])
    assert (c["zmin"], c["zmax"]) == (0.0, 300.0)
    assert colour_at(c["colorscale"], 30 / 300) == "rgb(0,228,0)"  # good
    assert colour_at(c["colorscale"], 61 / 300) == "rgb(255,255,0)"  # moderate
    assert colour_at(c["colorscale"], 160 / 300) == "rgb(255,0,0)"  # bad
    assert c["colorscale"] is AQI_SCALE and not c["reversescale"]


def test_threshold_kpis_are_coloured_from_red_threshold_to_target(config: Config) -> None:
    on_time = map_colours("on_time_rate", config.kpis.kpis["on_time_rate"])
    # red threshold .. target, and a tenth of the bar past the target (green: met)
    assert (on_time["zmin"], on_time["reversescale"]) == (80.0, False)
    assert on_time["zmax"] == pytest.approx(95.0 + 15.0 / 9)
    flood = map_colours("flood_risk", config.kpis.kpis["flood_risk"])
    assert (flood["zmax"], flood["reversescale"]) == (100.0, True)
    assert flood["zmin"] == pytest.approx(50.0 - 50.0 / 9)
    received = map_colours("applications_received", config.kpis.kpis["applications_received"])
    assert "zmin" not in received  # no thresholds: relative to the values


@pytest.fixture
def app(config: Config) -> Iterator[flask.Flask]:
    app = flask.Flask(__name__)
    app.config["IOC_STATE"] = SimpleNamespace(cfg=config)
    yield app


def test_vietnamese_labels_for_codes(app: flask.Flask) -> None:
    with app.test_request_context("/"):
        assert procedure_label("1.001193", "vi") == "Đăng ký khai sinh (1.001193)"
        assert procedure_label("1.001193", "en") == "Birth registration (1.001193)"
        assert procedure_label("9.999999", "vi") == "9.999999"  # unknown: the code
        assert channel_label("counter", "vi") == "Trực tiếp"
        assert channel_label("online", "vi") == "Trực tuyến"
        assert fault_labels("offline", "vi") == "Mất kết nối"
        assert fault_labels("blurred, frozen", "vi") == "Hình mờ, Hình đứng"
        assert fault_labels("something_new", "vi") == "something_new"
        # what a DataFrame hands over for "none": NaN (the cameras page failed with it)
        assert fault_labels(float("nan"), "vi") == "" and fault_labels(None, "vi") == ""
        assert procedure_label(float("nan"), "vi") == channel_label(float("nan"), "vi") == ""


@pytest.mark.filterwarnings(
    r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning"
)
def test_tables_in_vietnamese(app: flask.Flask, config: Config) -> None:
    rows = [{"n": 1546, "x": 2.5}]
    cols = with_count_format(
        rows,
        [{"name": "n", "id": "n", "type": "numeric"}, {"name": "x", "id": "x", "type": "numeric"}],
    )
    assert cols[0]["format"]["locale"] == {"decimal": ",", "group": "."}
    assert cols[0]["format"]["specifier"] == ",.0f"
    assert "format" not in cols[1]  # not whole numbers: left as the page set it
    with app.test_request_context("/"):
        t = table("x", rows, cols, filterable=True)
        assert t.filter_options == {"placeholder_text": "lọc…", "case": "insensitive"}
    with app.test_request_context("/?lang=en"):
        assert table("x", rows, cols, filterable=True).filter_options == {
            "placeholder_text": "filter…",
            "case": "insensitive",
        }
    assert kpi_heading(config.kpis.kpis["aqi"], "vi") == "Chỉ số chất lượng không khí (VN_AQI)"
    assert kpi_heading(config.kpis.kpis["on_time_rate"], "en") == "Applications on time (%)"


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


def test_camera_counts_of_the_last_hour(conn: Connection, config: Config) -> None:
    ward = config.wards[0].code
    now = dt.datetime.now(dt.UTC)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO cameras (camera_id, ward_code) VALUES ('c1', %s)", (ward,))
        for i, (metric, value) in enumerate(
            [
                ("line_road_in", 3),
                ("line_road_out", 2),
                ("line_road_vehicles", 5),  # the same crossings, split by kind
                ("line_walk_in", 1),
                ("online", 1),
            ]
        ):
            cur.execute(
                "INSERT INTO camera_metrics (ts, ward_code, camera_id, metric, value)"
                " VALUES (%s, %s, 'c1', %s, %s)",
                (now - dt.timedelta(minutes=5 + i), ward, metric, value),
            )
    conn.commit()
    (c1,) = [c for c in queries.cameras(conn, wards=[ward]) if c.camera_id == "c1"]
    assert c1.count_1h == 6.0


def test_wall_water_level_is_not_a_spike(conn: Connection, config: Config) -> None:
    ward = config.wards[0].code
    bucket = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO readings_hourly (bucket, ward_code, metric, n, sum, avg, min, max)"
            " VALUES (%s, %s, 'water_level_cm', 60, 1880, 31.33, 20, 700)",
            (bucket - dt.timedelta(hours=1), ward),
        )
    conn.commit()
    (env,) = queries.environment(conn, wards=[ward])
    assert env.water_level_max == pytest.approx(31.33)


def test_best_and_worst_lists_show_the_wards_rank() -> None:
    """A ward leader's overview listed their ward as "1." under "best" while it ranks 16th."""
    item = {"code": "20242", "rank": 16, "value": 97.6}
    assert rank_line(item, {"20242": "Phường Hải Châu"}, 1, "%", "vi") == (
        "16. Phường Hải Châu: 97,6 %"
    )


def test_report_schedules_in_vietnamese() -> None:
    from dashboards.i18n import t

    assert [t(f"schedule_{s}", "vi") for s in ("daily", "weekly", "monthly")] == [
        "Hằng ngày",
        "Hằng tuần",
        "Hằng tháng",
    ]


def test_english_ui_has_english_units_and_alert_titles(app: flask.Flask, config: Config) -> None:
    """The English overview showed '510 hồ sơ', '0.93 ngày làm việc', '36 cảnh báo' and alert
    titles in Vietnamese (stored when the alert opened)."""
    from dashboards.components.common import alert_title
    from dashboards.i18n import unit_label

    assert unit_label("hồ sơ", "en") == "applications"
    assert unit_label("ngày làm việc", "en") == "working days"
    assert unit_label("hồ sơ", "vi") == "hồ sơ" and unit_label("%", "en") == "%"
    assert kpi_heading(config.kpis.kpis["overdue_applications"], "en") == (
        "Overdue applications (open) (applications)"
    )
    rule = next(r for r in config.alerts.rules if r.id == "water_level_high")
    with app.test_request_context("/"):
        stored = f"{rule.label_vi}: wl-1"
        assert alert_title(rule.id, "wl-1", stored, "en") == f"{rule.label_en}: wl-1"
        assert alert_title(rule.id, "wl-1", stored, "vi") == stored
        assert alert_title("gone_rule", "x", "Tiêu đề cũ", "en") == "Tiêu đề cũ"
