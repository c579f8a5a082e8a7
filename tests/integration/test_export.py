"""``ioc export``: XLSX opens in openpyxl with the right values, CSV round-trips through pandas,
bad arguments give one line and exit 2."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from test_kpi_helpers import add_app, add_readings, execute, t

from ioc.config import Config
from ioc.db import Connection, connect
from ioc.db.migrate import refresh_rollups
from ioc.reports.export import write_export

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Connection]:
    c = connect(fresh_db_url)
    yield c
    c.close()


@pytest.fixture
def data(conn: Connection, config: Config) -> tuple[str, str]:
    a, b = config.wards[0].code, config.wards[1].code
    # 10/03: A has 2 applications, 1 on time (a1) and 1 overdue (a2, due 07/03) → 50 %
    add_app(
        conn,
        "a1",
        a,
        "2025-03-10 08:00",
        "2025-03-12 17:00",
        status="completed",
        completed="2025-03-10 10:00",
    )
    add_app(conn, "a2", a, "2025-03-03 08:00", "2025-03-07 17:00")
    # B: one on time, received 10/03 → 100 % on 10/03; on 11/03 still open, due 12/03 → 100 %
    add_app(conn, "b1", b, "2025-03-10 09:00", "2025-03-12 17:00", channel="online")
    # stored by "the scheduler" for 09/03: the export must use it as is
    execute(
        conn,
        "INSERT INTO kpi_values (kpi, ward_code, period, period_start, value)"
        " VALUES ('on_time_rate', %s, 'day', %s, 12.345)",
        a,
        t("2025-03-09 00:00"),
    )
    return a, b


def run_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IOC_DATABASE_URL=db_url, IOC_CONFIG_DIR=str(ROOT / "config"))
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", "export", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_xlsx_opens_in_openpyxl_with_the_right_values(
    fresh_db_url: str, data: tuple[str, str], tmp_path: Path, config: Config
) -> None:
    a, b = data
    out = tmp_path / "otr.xlsx"
    r = run_cli(
        fresh_db_url,
        "--kpi",
        "on_time_rate",
        "--every",
        "day",
        "--from",
        "2025-03-09",
        "--to",
        "2025-03-11",
        "--format",
        "xlsx",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["Thông tin", "Dữ liệu"]
    info = "\n".join(str(c.value) for row in wb["Thông tin"].iter_rows() for c in row if c.value)
    for needle in (
        "Tỷ lệ hồ sơ xử lý trước hạn, đúng hạn",
        "Thời điểm lập",
        "Tất cả 94 phường, xã, đặc khu",
        "09/03/2025 – 11/03/2025",
        "theo ngày",
    ):
        assert needle in info
    ws = wb["Dữ liệu"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == (
        "Kỳ (bắt đầu)",
        "Mã đơn vị",
        "Tên đơn vị",
        "Mã chỉ tiêu",
        "Chỉ tiêu",
        "Giá trị",
        "Đơn vị tính",
        "Trạng thái",
    )
    assert len(rows) == 1 + 3 * 95  # 3 days × (94 wards + city)
    got = {(r[0].strftime("%d/%m"), r[1]): r[5] for r in rows[1:]}
    assert got[("09/03", a)] == 12.3  # stored value, rounded to the KPI's 1 decimal
    assert got[("10/03", a)] == 50.0
    assert got[("10/03", b)] == 100.0
    assert got[("10/03", "city")] == pytest.approx(200 / 3, abs=0.05)  # 2 of 3 applications
    assert got[("11/03", a)] == 0.0  # a2 still overdue, a1 ended before 11/03
    assert got[("10/03", config.wards[2].code)] is None  # no data: an empty cell, not 0
    # the dashboards' status rule: on time 50 % vs target 95 / red 80 is red, 100 % green
    state = {(r[0].strftime("%d/%m"), r[1]): r[7] for r in rows[1:]}
    assert state[("10/03", a)] == "vượt ngưỡng đỏ"
    assert state[("10/03", b)] == "đạt mục tiêu"
    assert state[("10/03", config.wards[2].code)] is None  # no data, no status
    # number format and date format of the data cells
    cell = ws.cell(row=2, column=6)
    assert ws.cell(row=2, column=1).number_format == "dd/mm/yyyy"
    assert ws.cell(row=2, column=3).value == config.wards[0].name
    assert cell.number_format in ("#,##0.0", "General") or cell.value is None
    assert any(c.number_format == "#,##0.0" for c in ws["F"][1:] if c.value is not None)


def test_csv_round_trips_through_pandas(
    conn: Connection, config: Config, data: tuple[str, str]
) -> None:
    a, b = data
    buf = io.BytesIO()
    n = write_export(
        conn,
        config,
        kpis=["on_time_rate", "online_share"],
        wards=[a, b],
        start=t("2025-03-10 00:00"),
        end=t("2025-03-10 00:00"),
        every="day",
        fmt="csv",
        out=buf,
        lang="en",
    )
    assert n == 4  # 1 day × 2 wards × 2 KPIs; no city row when wards are chosen
    df = pd.read_csv(io.BytesIO(buf.getvalue()), dtype={"Ward code": str})
    assert list(df.columns) == [
        "Period start",
        "Ward code",
        "Ward",
        "KPI code",
        "KPI",
        "Value",
        "Unit",
        "Status",
    ]
    df["Period start"] = pd.to_datetime(df["Period start"])
    assert (df["Period start"] == pd.Timestamp("2025-03-10 00:00", tz="Asia/Ho_Chi_Minh")).all()
    vals = {(r["Ward code"], r["KPI code"]): r["Value"] for _, r in df.iterrows()}
    assert vals == {
        (a, "on_time_rate"): 50.0,
        (a, "online_share"): 0.0,
        (b, "on_time_rate"): 100.0,
        (b, "online_share"): 100.0,
    }


def test_no_data_is_empty_in_csv(conn: Connection, config: Config, data: tuple) -> None:
    c = config.wards[2].code
    buf = io.BytesIO()
    write_export(
        conn,
        config,
        kpis=["on_time_rate"],
        wards=[c, "city"],
        start=t("2025-03-10 00:00"),
        end=t("2025-03-10 00:00"),
        fmt="csv",
        out=buf,
    )
    df = pd.read_csv(io.BytesIO(buf.getvalue()))
    assert df["Mã đơn vị"].astype(str).tolist() == [c, "city"]
    assert pd.isna(df["Giá trị"].iloc[0]) and df["Giá trị"].iloc[1] == pytest.approx(66.7)


def test_metric_export(conn: Connection, config: Config) -> None:
    a = config.wards[0].code
    add_readings(
        conn,
        a,
        "aq1",
        "pm25",
        [("2025-03-10 01:00", 10), ("2025-03-10 02:30", 30), ("2025-03-11 01:00", 5)],
    )
    refresh_rollups(conn, config, now=t("2025-03-12 00:00"))
    buf = io.BytesIO()
    n = write_export(
        conn,
        config,
        metrics=["pm25"],
        wards=[a],
        start=t("2025-03-10 00:00"),
        end=t("2025-03-11 00:00"),
        every="day",
        fmt="csv",
        out=buf,
        lang="en",
    )
    df = pd.read_csv(io.BytesIO(buf.getvalue()))
    assert n == 2
    assert df[["Readings", "Mean", "Min", "Max"]].values.tolist() == [[2, 20, 10, 30], [1, 5, 5, 5]]
    assert df["Unit"].tolist() == ["µg/m³"] * 2
    buf = io.BytesIO()
    write_export(
        conn,
        config,
        metrics=["pm25"],
        wards=[a],
        start=t("2025-03-10 00:00"),
        end=t("2025-03-11 00:00"),
        every="month",
        fmt="xlsx",
        out=buf,
        lang="en",
    )
    rows = list(openpyxl.load_workbook(buf)["Data"].iter_rows(values_only=True))
    assert rows[1][4:8] == (3, 15, 5, 30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kpi", "nope"], "unknown KPI 'nope'"),
        (["--kpi", "aqi", "--ward", "99999"], "unknown ward '99999'"),
        (["--kpi", "aqi", "--from", "2025-03-12"], "is after --to"),
        (["--kpi", "aqi", "--every", "year"], "invalid choice"),
        ([], "either --kpi or --metric"),
    ],
)
def test_bad_arguments_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    base = {"--from": "2025-03-01", "--to": "2025-03-10", "--out": str(tmp_path / "x.csv")}
    for i, a in enumerate(args):
        if a in base and i + 1 < len(args):
            base[a] = args[i + 1]
    rest = [a for i, a in enumerate(args) if a not in base and (i == 0 or args[i - 1] not in base)]
    flat = [x for kv in base.items() for x in kv]
    r = run_cli("postgresql://postgres@127.0.0.1:1/none", *rest, *flat)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "x.csv").exists()
