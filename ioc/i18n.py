"""The core's Vietnamese (default) and English text: one table of ``key -> (vi, en)``, used by
the reports (``ioc export``, scheduled reports, the /export page's files). The dashboards have
their own table (``dashboards/i18n.py``) for the pages and take the texts they share with the
reports (the city's name) from here; the core never imports the dashboards."""

from __future__ import annotations

from typing import Any

LANGS = ("vi", "en")

TEXT: dict[str, tuple[str, str]] = {
    "city": ("Toàn thành phố", "Whole city"),
    # ---- report files: the "About" sheet and the data sheet
    "sheet_about": ("Thông tin", "About"),
    "sheet_data": ("Dữ liệu", "Data"),
    "report_title": ("Báo cáo IOC Đà Nẵng", "IOC Da Nang report"),
    "report": ("Báo cáo", "Report"),
    "report_kpis": ("Chỉ tiêu: {what}", "KPIs: {what}"),
    "report_metrics": ("Số liệu cảm biến: {what}", "Sensor readings: {what}"),
    "created": ("Thời điểm lập", "Created"),
    "wards": ("Đơn vị hành chính", "Wards"),
    "all_wards": ("Tất cả {n} phường, xã, đặc khu", "All {n} wards and communes"),
    "period": ("Kỳ báo cáo", "Period"),
    "per_every": ("theo {every}", "per {every}"),
    "source": ("Nguồn", "Source"),
    "time_zone": ("Múi giờ", "Time zone"),
    "empty_cell": ("Ô trống", "Empty cell"),
    "empty_cell_means": ("không có dữ liệu (không phải 0)", "no data (not zero)"),
    "number_format": ("Định dạng số", "Number format"),
    "number_format_means": (
        "Ngày dd/mm/yyyy; số thập phân theo từng chỉ tiêu (cột Giá trị); dấu thập phân theo "
        "cài đặt vùng của Excel",
        "Dates yyyy-mm-dd; decimals per KPI (Value column); decimal mark follows Excel's locale",
    ),
    "every_hour": ("giờ", "hour"),
    "every_day": ("ngày", "day"),
    "every_week": ("tuần", "week"),
    "every_month": ("tháng", "month"),
    # the KPI definitions listed on the "About" sheet
    "def_code": ("Mã", "Code"),
    "def_kpi": ("Chỉ tiêu", "KPI"),
    "def_unit": ("Đơn vị", "Unit"),
    "def_decimals": ("Số chữ số thập phân", "Decimals"),
    "def_rollup": ("Tổng hợp toàn TP", "City roll-up"),
    "def_definition": ("Định nghĩa", "Definition"),
    # data columns
    "col_period": ("Kỳ (bắt đầu)", "Period start"),
    "col_ward_code": ("Mã đơn vị", "Ward code"),
    "col_ward": ("Tên đơn vị", "Ward"),
    "col_kpi_code": ("Mã chỉ tiêu", "KPI code"),
    "col_kpi": ("Chỉ tiêu", "KPI"),
    "col_value": ("Giá trị", "Value"),
    "col_unit": ("Đơn vị tính", "Unit"),
    "col_metric": ("Chỉ số đo", "Metric"),
    "col_readings": ("Số lần đo", "Readings"),
    "col_mean": ("Trung bình", "Mean"),
    "col_min": ("Nhỏ nhất", "Min"),
    "col_max": ("Lớn nhất", "Max"),
}

# column keys of the export files, in order
COLUMNS = {
    "kpi": (
        "col_period",
        "col_ward_code",
        "col_ward",
        "col_kpi_code",
        "col_kpi",
        "col_value",
        "col_unit",
    ),
    "metric": (
        "col_period",
        "col_ward_code",
        "col_ward",
        "col_metric",
        "col_readings",
        "col_mean",
        "col_min",
        "col_max",
        "col_unit",
    ),
}
# the KPI definitions listed on the "About" sheet
DEFINITION_COLUMNS = (
    "def_code",
    "def_kpi",
    "def_unit",
    "def_decimals",
    "def_rollup",
    "def_definition",
)
# dates in text (strftime) and in Excel cells (number format)
DATE_FORMAT = {"vi": "%d/%m/%Y", "en": "%Y-%m-%d"}
EXCEL_DATE_FORMAT = {"vi": "dd/mm/yyyy", "en": "yyyy-mm-dd"}


def lang_or_default(lang: str | None) -> str:
    return lang if lang in LANGS else "vi"


def tr(key: str, lang: str, **fmt: object) -> str:
    """The text of ``key`` in ``lang`` (``vi`` for anything else), formatted with ``fmt``."""
    vi, en = TEXT[key]
    text = en if lang == "en" else vi
    return text.format(**fmt) if fmt else text


def columns(kind: str, lang: str) -> list[str]:
    """The column titles of an export of ``kind`` (``kpi`` or ``metric``)."""
    return [tr(k, lang) for k in COLUMNS[kind]]


def localized(obj: Any, field: str, lang: str) -> str:
    """``obj.<field>_vi`` or ``obj.<field>_en`` (configuration labels and descriptions)."""
    return str(getattr(obj, f"{field}_{'en' if lang == 'en' else 'vi'}") or "")
