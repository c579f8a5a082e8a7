"""Vietnamese (default) and English UI text, and locale-aware number and date formats.

The language comes from ``?lang=en|vi`` (which also sets the ``ioc_lang`` cookie) or the
cookie; Vietnamese formats are 1.234,5 and dd/mm/yyyy, English 1,234.5 and yyyy-mm-dd.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import flask

from ioc.i18n import TEXT as CORE_TEXT
from ioc.localtime import TZ as LOCAL_ZONE
from ioc.missing import is_missing

LANGS = ("vi", "en")
COOKIE = "ioc_lang"
TZ = LOCAL_ZONE

TEXT: dict[str, tuple[str, str]] = {
    "app_title": ("Trung tâm Điều hành Đà Nẵng", "Da Nang Operations Center"),
    "overview": ("Tổng quan", "Overview"),
    "wall": ("Màn hình lớn", "Wall"),
    "applications": ("Hồ sơ hành chính", "Applications"),
    "cameras": ("Camera", "Cameras"),
    "alerts": ("Cảnh báo", "Alerts"),
    "export": ("Xuất báo cáo", "Export"),
    "logout": ("Đăng xuất", "Sign out"),
    "demo_inbox": ("Hộp thư demo", "Demo inbox"),
    "login": ("Đăng nhập", "Sign in"),
    "username": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "bad_login": ("Sai tên đăng nhập hoặc mật khẩu", "Wrong user name or password"),
    "throttled": (
        "Quá nhiều lần đăng nhập sai; vui lòng thử lại sau ít phút",
        "Too many failed sign-ins; try again in a few minutes",
    ),
    "forbidden": ("Bạn không có quyền xem nội dung này", "You may not see this"),
    "not_found": ("Không tìm thấy", "Not found"),
    "city": CORE_TEXT["city"],  # the reports' name of the city roll-up
    "ward": ("Phường/xã", "Ward"),
    "kpi": ("Chỉ số", "KPI"),
    "value": ("Giá trị", "Value"),
    "target": ("Mục tiêu", "Target"),
    "city_avg": ("Toàn TP", "City"),
    "rank": ("Hạng", "Rank"),
    "no_data": ("không có dữ liệu", "no data"),
    "last_update": ("Cập nhật lúc", "Last update"),
    "color_by": ("Tô màu theo", "Colour by"),
    "ranking": ("Xếp hạng phường/xã", "Ward ranking"),
    "best": ("Tốt nhất", "Best"),
    "worst": ("Kém nhất", "Worst"),
    "open_alerts": ("Cảnh báo đang mở", "Open alerts"),
    "no_open_alerts": ("Không có cảnh báo đang mở", "No open alerts"),
    "severity": ("Mức độ", "Severity"),
    "state": ("Trạng thái", "State"),
    "title": ("Nội dung", "Title"),
    "opened": ("Thời điểm", "Opened"),
    "acknowledge": ("Xác nhận", "Acknowledge"),
    "resolve": ("Đóng cảnh báo", "Resolve"),
    "acknowledged": ("Đã xác nhận", "Acknowledged"),
    "escalated_to": ("Chuyển cấp tới", "Escalated to"),
    "n_reminders": ("nhắc {n} lần", "{n} reminder(s)"),
    "resolved": ("Đã đóng", "Resolved"),
    "open": ("Đang mở", "Open"),
    "critical": ("Nghiêm trọng", "Critical"),
    "warning": ("Cảnh báo", "Warning"),
    "info": ("Thông tin", "Info"),
    "history": ("Diễn biến 30 ngày", "Last 30 days"),
    "devices": ("Thiết bị", "Devices"),
    "device_type": ("Loại thiết bị", "Device type"),
    "online": ("Hoạt động", "Online"),
    "offline": ("Mất kết nối", "Offline"),
    "unknown": ("Chưa rõ", "Unknown"),
    "last_seen": ("Lần cuối", "Last seen"),
    "overdue_list": ("Hồ sơ quá hạn", "Overdue applications"),
    "procedure": ("Thủ tục", "Procedure"),
    "received": ("Tiếp nhận", "Received"),
    "due": ("Hạn trả", "Due"),
    "days_late": ("Số ngày làm việc trễ", "Working days late"),
    "channel": ("Kênh", "Channel"),
    "channel_online": ("Trực tuyến", "Online"),
    "channel_counter": ("Trực tiếp", "At the counter"),
    "channel_postal": ("Bưu chính", "Postal"),
    "fault_offline": ("Mất kết nối", "Offline"),
    "fault_frozen": ("Hình đứng", "Frozen image"),
    "fault_black": ("Màn hình đen", "Black image"),
    "fault_blurred": ("Hình mờ", "Blurred"),
    "fault_covered": ("Bị che", "Lens covered"),
    "filter_placeholder": ("lọc…", "filter…"),
    "schedule_daily": ("Hằng ngày", "Daily"),
    "schedule_weekly": ("Hằng tuần", "Weekly"),
    "schedule_monthly": ("Hằng tháng", "Monthly"),
    "on_time": ("Đúng hạn", "On time"),
    "late": ("Trễ hạn", "Late"),
    # the late-procedures table: completed late and still open past the due time, together
    "late_or_overdue": ("Trễ + quá hạn", "Late or overdue"),
    "overdue": ("Quá hạn (đang xử lý)", "Overdue (open)"),
    "returned": ("Yêu cầu bổ sung", "Supplements requested"),
    "completed": ("Đã giải quyết", "Completed"),
    "period_days": ("Khoảng thời gian", "Period"),
    "days": ("ngày", "days"),
    "group_by": ("Nhóm theo", "Group by"),
    "worst_procedures": ("Thủ tục trễ hạn nhiều nhất", "Procedures most often late"),
    "trend": ("Xu hướng theo ngày", "Daily trend"),
    "camera": ("Camera", "Camera"),
    "status": ("Trạng thái", "Status"),
    "health": ("Sự cố", "Health issue"),
    "count_1h": ("Lượt đếm 1 giờ", "Count, last hour"),
    "all": ("Tất cả", "All"),
    "filter": ("Lọc", "Filter"),
    "selected": ("đã chọn", "selected"),
    "kpis": ("Chỉ số", "KPIs"),
    "wards": ("Phường/xã", "Wards"),
    "all_wards": ("Tất cả phường/xã", "All wards"),
    "from": ("Từ ngày", "From"),
    "to": ("Đến ngày", "To"),
    "granularity": ("Chu kỳ", "Granularity"),
    "hour": ("Giờ", "Hour"),
    "day": ("Ngày", "Day"),
    "week": ("Tuần", "Week"),
    "month": ("Tháng", "Month"),
    "format": ("Định dạng", "Format"),
    "download": ("Tải xuống", "Download"),
    "reports": ("Báo cáo định kỳ", "Scheduled reports"),
    "name": ("Tên", "Name"),
    "created": ("Tạo lúc", "Created"),
    "period": ("Kỳ", "Period"),
    "stale": ("DỮ LIỆU CŨ", "STALE DATA"),
    "disconnected": ("MẤT KẾT NỐI MÁY CHỦ", "SERVER UNREACHABLE"),
    "env_flood": ("Môi trường & ngập lụt", "Environment & flooding"),
    "map": ("Bản đồ", "Map"),
    "map_title": ("Bản đồ 94 phường/xã", "Map of the 94 wards"),
    "aqi_by_ward": ("Chỉ số AQI theo phường/xã", "AQI by ward"),
    "flood_by_ward": ("Nguy cơ ngập theo phường/xã", "Flood risk by ward"),
    "water_level": ("Mực nước cao nhất (cm)", "Highest water level (cm)"),
    "rain_24h": ("Lượng mưa 24 giờ (mm)", "Rainfall 24 h (mm)"),
    "cameras_online": ("Camera hoạt động", "Cameras online"),
    "devices_online": ("Thiết bị hoạt động", "Devices online"),
    "n_selected_none": ("Chọn cảnh báo trong bảng", "Select alerts in the table"),
    "done_n": ("Đã cập nhật {n} cảnh báo", "{n} alert(s) updated"),
    "not_allowed_ack": ("Bạn không có quyền xác nhận cảnh báo", "You may not acknowledge alerts"),
    "export_empty": ("Không có dữ liệu trong khoảng đã chọn", "No data in the chosen range"),
    "export_bad": ("Chọn ít nhất một chỉ số và khoảng thời gian", "Pick KPIs and a period"),
    "export_running": ("Đang xuất dữ liệu…", "Exporting…"),
    "export_failed": ("Xuất dữ liệu thất bại", "Export failed"),
    "export_rows": ("dòng", "rows"),
    "export_recent": ("Tệp đã xuất (24 giờ qua)", "Your exports (last 24 h)"),
    "export_busy": (
        "Bạn đang có {n} lần xuất dữ liệu chưa xong; vui lòng chờ",
        "You have {n} exports under way; wait for one to finish",
    ),
    "preparing": ("Đang chuẩn bị tệp…", "Preparing the file…"),
    "ward_page": ("Trang phường/xã", "Ward page"),
    "vs_target": ("so với mục tiêu", "vs target"),
    "language": ("English", "Tiếng Việt"),
    "no_rows": ("Không có dòng nào", "No rows"),
    "signed_in_as": ("Người dùng", "Signed in as"),
    "kpi_missing": (
        "Chưa có định nghĩa chỉ số (config/kpis.yaml)",
        "No KPI definitions yet (config/kpis.yaml)",
    ),
    # notifications (issue 13)
    "ack_title": ("Xác nhận cảnh báo", "Acknowledge alert"),
    "ack_confirm": ("Xác nhận đã nhận (với tên {user})", "Acknowledge (as {user})"),
    "ack_done": ("Đã xác nhận cảnh báo #{n} với tên {user}", "Alert #{n} acknowledged as {user}"),
    "ack_done_incident": (
        "Đã xác nhận sự vụ #{n} với tên {user}",
        "Incident #{n} acknowledged as {user}",
    ),
    "ack_err_invalid": ("Liên kết không hợp lệ", "This link is not valid"),
    "ack_err_expired": ("Liên kết đã hết hạn", "This link has expired"),
    "ack_err_used": ("Liên kết đã được sử dụng", "This link has already been used"),
    "ack_err_user": (
        "Tài khoản nhận liên kết này không còn quyền với cảnh báo này",
        "The account this link was sent to may no longer act on this alert",
    ),
    "ack_err_other": (
        "Liên kết này dành cho người dùng khác",
        "This link belongs to another user",
    ),
    "ack_err_state": (
        "Cảnh báo đã được xác nhận hoặc đã đóng",
        "The alert is already acknowledged or resolved",
    ),
    "notify_prefs": ("Nhận thông báo", "Notifications"),
    "notify_admin": ("Thư lỗi", "Dead letters"),
    "np_email": ("Địa chỉ e-mail", "E-mail address"),
    "np_no_email": (
        "Chưa có địa chỉ e-mail (quản trị viên đặt tại Quản lý người dùng hoặc bằng"
        " ioc users email)",
        "No e-mail address yet (an admin sets it on the users page or with ioc users email)",
    ),
    "np_email_on": ("Nhận thông báo qua e-mail", "Receive notifications by e-mail"),
    "np_lang": ("Ngôn ngữ thông báo", "Language of messages"),
    "np_min_severity": ("Mức độ tối thiểu", "Lowest severity"),
    "np_muted": ("Không nhận các loại", "Do not send me"),
    "np_digest_all": (
        "Gộp thông báo không nghiêm trọng thành bản tổng hợp",
        "Batch all but critical into a digest",
    ),
    "np_quiet": ("Giờ yên lặng riêng (trừ nghiêm trọng)", "My quiet hours (critical still sent)"),
    "np_quiet_start": ("Bắt đầu (HH:MM)", "Start (HH:MM)"),
    "np_quiet_end": ("Kết thúc (HH:MM)", "End (HH:MM)"),
    "np_webhook": ("Webhook riêng (Zalo OA, Telegram...)", "My webhook (Zalo OA, Telegram...)"),
    "np_save": ("Lưu", "Save"),
    "np_test": ("Gửi thử", "Send a test"),
    "np_test_sent": (
        "Đã gửi thư thử qua {channels} (theo tùy chọn đã lưu); thư đến sau vài giây.",
        "A test message is on its way by {channels} (saved preferences); it arrives in seconds.",
    ),
    "np_test_none": (
        "Chưa có kênh nhận: cần địa chỉ e-mail (đang bật) hoặc webhook riêng đã lưu.",
        "No channel yet: an e-mail address (switched on) or a saved webhook of your own.",
    ),
    "np_test_again": (
        "Đã gửi thư thử trong phút này; thử lại sau một phút.",
        "A test was sent this minute already; try again in a minute.",
    ),
    "np_saved": ("Đã lưu", "Saved"),
    "np_err_webhook_url": (
        "Webhook: địa chỉ phải bắt đầu bằng http:// hoặc https://",
        "Webhook: the address must start with http:// or https://",
    ),
    "np_err_webhook_url_private": (
        "Webhook: chỉ nhận địa chỉ công khai (không nhận địa chỉ nội bộ hay của máy chủ này)",
        "Webhook: only a public address (not an internal one or this server's)",
    ),
    "np_err_quiet_start": (
        "Giờ yên lặng: nhập giờ bắt đầu dạng HH:MM",
        "Quiet hours: give the start as HH:MM",
    ),
    "np_err_quiet_end": (
        "Giờ yên lặng: nhập giờ kết thúc dạng HH:MM",
        "Quiet hours: give the end as HH:MM",
    ),
    "np_err_other": ("Giá trị không hợp lệ: {field}", "Invalid value: {field}"),
    "kind_alert_opened": ("Cảnh báo mới", "New alert"),
    "kind_alert_unacknowledged": ("Nhắc cảnh báo chưa xác nhận", "Unacknowledged alert reminders"),
    "kind_incident_assigned": ("Sự vụ được giao", "Incident assigned"),
    "kind_sla_warning": ("Sắp hết hạn xử lý", "Due time approaching"),
    "kind_sla_breached": ("Quá hạn xử lý", "Due time passed"),
    "kind_escalation": ("Chuyển cấp", "Escalation"),
    "kind_device_offline_digest": ("Tổng hợp thiết bị mất kết nối", "Devices offline digest"),
    "kind_scheduled_report": ("Báo cáo định kỳ", "Scheduled reports"),
    "kind_digest": ("Bản tổng hợp", "Digest"),
    "kind_test": ("Thư thử", "Test message"),
    "n_recent": ("Thông báo gần đây", "Recent notifications"),
    "n_recent_mine": ("Thông báo gửi tới bạn gần đây", "Recent notifications to you"),
    "n_recent_none": ("Chưa có thông báo nào.", "No notification yet."),
    "n_status": ("Trạng thái", "Status"),
    "n_sent_at": ("Gửi lúc", "Sent at"),
    "nd_title": ("Thông báo không gửi được", "Notifications that could not be sent"),
    "nd_retry": ("Gửi lại", "Send again"),
    "nd_requeued": ("Đã đưa {n} thông báo vào hàng đợi", "{n} notification(s) queued again"),
    "nd_counts": ("Hàng đợi", "Queue"),
    "nd_none": (
        "Không có thông báo lỗi: mọi thông báo đã gửi được hoặc đang chờ gửi.",
        "No dead letters: every notification was sent or is waiting to go.",
    ),
    "nd_channel": ("Kênh", "Channel"),
    "nd_recipient": ("Người nhận", "Recipient"),
    "nd_attempts": ("Số lần thử", "Attempts"),
    "nd_error": ("Lỗi", "Error"),
    "nd_kind": ("Loại", "Kind"),
    "nd_status_pending": ("chờ gửi", "pending"),
    "nd_status_sending": ("đang gửi", "sending"),
    "nd_status_sent": ("đã gửi", "sent"),
    "nd_status_dead": ("lỗi", "dead"),
    "nd_status_cancelled": ("đã hủy", "cancelled"),
    "nd_status_digest": ("chờ tổng hợp", "in a digest"),
    "nd_status_digested": ("đã gộp", "digested"),
}


def lang() -> str:
    """The language of the current request."""
    if flask.has_request_context():
        value = getattr(flask.g, "lang", None)
        if value in LANGS:
            return str(value)
        arg = flask.request.args.get("lang")
        if arg in LANGS:
            return str(arg)
        cookie = flask.request.cookies.get(COOKIE)
        if cookie in LANGS:
            return str(cookie)
    return "vi"


def t(key: str, language: str | None = None, **fmt: object) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    text = pair[1] if (language or lang()) == "en" else pair[0]
    return text.format(**fmt) if fmt else text


def fmt_num(value: float | int | None, decimals: int = 1, language: str | None = None) -> str:
    """1.234,5 in Vietnamese, 1,234.5 in English; '—' for no data."""
    if is_missing(value):
        return "—"
    text = f"{value:,.{decimals}f}"
    if (language or lang()) == "vi":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def local(ts: dt.datetime) -> dt.datetime:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(TZ)


def fmt_date(value: dt.datetime | dt.date | None, language: str | None = None) -> str:
    if is_missing(value):
        return "—"
    assert value is not None
    if isinstance(value, dt.datetime):
        value = local(value).date()
    return value.strftime("%d/%m/%Y" if (language or lang()) == "vi" else "%Y-%m-%d")


def fmt_datetime(value: dt.datetime | None, language: str | None = None) -> str:
    if value is None or is_missing(value):
        return "—"
    v = local(value)
    return v.strftime("%d/%m/%Y %H:%M" if (language or lang()) == "vi" else "%Y-%m-%d %H:%M")


def plotly_separators(language: str | None = None) -> str:
    """Plotly's ``layout.separators``: decimal then thousands."""
    return ",." if (language or lang()) == "vi" else ".,"


def date_axis_format(language: str | None = None) -> str:
    return "%d/%m" if (language or lang()) == "vi" else "%m-%d"


def time_axis(language: str | None = None) -> dict[str, Any]:
    """A plotly time axis's tick and hover formats in numbers only, day before month in
    Vietnamese (plotly's own ticks write English month names: "Dec 5, 2026"), whatever the
    zoom: hours within a day, days within a month, months beyond."""
    vi = (language or lang()) == "vi"
    day_ms = 86_400_000
    return {
        "tickformatstops": [
            {"dtickrange": [None, day_ms], "value": "%H:%M<br>%d/%m" if vi else "%H:%M<br>%m-%d"},
            {"dtickrange": [day_ms, "M1"], "value": "%d/%m" if vi else "%m-%d"},
            {"dtickrange": ["M1", None], "value": "%m/%Y" if vi else "%Y-%m"},
        ],
        "hoverformat": "%d/%m/%Y %H:%M" if vi else "%Y-%m-%d %H:%M",
    }


# KPI units are written in Vietnamese in config/kpis.yaml; their English for the English UI
_UNIT_EN = {"hồ sơ": "applications", "ngày làm việc": "working days", "cảnh báo": "alerts"}
_UNIT_EN.update({"phản ánh": "reports", "giờ làm việc": "working hours"})  # citizen reports
_UNIT_EN["giờ SLA"] = "SLA hours"  # incidents: each on its own clock
TEXT["citizen_reports"] = ("Phản ánh", "Citizen reports")


def unit_label(unit: str, language: str | None = None) -> str:
    """A KPI's unit in the UI language."""
    return _UNIT_EN.get(unit, unit) if (language or lang()) == "en" else unit


# day-one additions (system page, devices, data still arriving, status words)
TEXT.update(
    {
        "system": ("Hệ thống", "System"),
        "overall": ("Tổng thể", "Overall"),
        "database": ("Cơ sở dữ liệu", "Database"),
        "broker": ("Máy chủ MQTT", "MQTT broker"),
        "services": ("Dịch vụ", "Services"),
        "service": ("Dịch vụ", "Service"),
        "ok": ("bình thường", "ok"),
        "stale": ("không báo cáo", "not reporting"),
        "health_ok": ("bình thường", "ok"),
        "health_stale": ("không báo cáo", "not reporting"),
        "health_degraded": ("suy giảm", "degraded"),
        "health_down": ("ngừng", "down"),
        "health_unknown": ("chưa rõ", "unknown"),
        "health_stopped": ("đã dừng", "stopped"),
        "health_backlog": ("tồn đọng", "backlog"),
        "why_service": ("Dịch vụ {name}: {state}", "Service {name}: {state}"),
        "why_broker": (
            "Máy chủ MQTT: bộ thu dữ liệu không kết nối được",
            "MQTT broker: the ingester is not connected",
        ),
        "why_jobs": ("{n} tác vụ nền TimescaleDB bị lỗi", "{n} TimescaleDB background jobs failed"),
        "background_jobs": ("Tác vụ nền TimescaleDB", "TimescaleDB background jobs"),
        "jobs_plain_pg": (
            "PostgreSQL thường: không có tác vụ nền",
            "Plain PostgreSQL: no background jobs",
        ),
        "jobs_unreadable": (
            "Không đọc được trạng thái tác vụ nền",
            "The background jobs' state could not be read",
        ),
        "jobs_all_ok": ("Mọi tác vụ nền đều chạy tốt", "Every background job ran well"),
        "jobs_failed": (
            "{n} tác vụ nền bị lỗi ở lần chạy gần nhất",
            "{n} background jobs failed on their last run",
        ),
        "job": ("Tác vụ", "Job"),
        "table_name": ("Bảng", "Table"),
        "last_run": ("Lần chạy gần nhất", "Last run"),
        "failures": ("Lỗi / lần chạy", "Failures / runs"),
        "error": ("Lỗi", "Error"),
        "cameras_online_now": ("Camera trực tuyến lúc này", "Cameras online now"),
        "devices_online_now": ("Thiết bị trực tuyến lúc này", "Devices online now"),
        "online_now_def": ("theo trạng thái mới nhất", "by each one's latest status"),
        "uptime_def": (
            "trung bình các giờ hôm nay: đã gửi số liệu đúng chu kỳ",
            "today's hourly average of those that reported on time",
        ),
        "more_cameras": ("và {n} camera khác", "and {n} more cameras"),
        "per_hour": ("lượt/giờ", "per hour"),
        "no_issue": ("không có sự cố", "no issue"),
        "back_home": ("← Về trang chính", "← Back to the main page"),
        "sign_in_needed": ("Cần đăng nhập", "Please sign in"),
        "your_wards": ("Xếp hạng phường/xã của bạn", "Your wards' ranks"),
        "of_n": ("trên {n}", "of {n}"),
        "ward_map": ("Bản đồ thiết bị và camera", "Devices and cameras on the map"),
        "cameras_map": ("Bản đồ camera", "Cameras on the map"),
        "last_n_days": ("{n} ngày qua", "Last {n} days"),
        "kpi_history": ("Diễn biến các chỉ số", "KPI history"),
        "device_list": ("Danh sách thiết bị", "Devices"),
        "device": ("Thiết bị", "Device"),
        "first_seen": ("Lần đầu thấy", "First seen"),
        "time_range": ("Khoảng thời gian", "Time range"),
        "status_history": ("Lịch sử trạng thái", "Status history"),
        "time": ("Thời điểm", "Time"),
        "resolution": ("Độ phân giải", "Resolution"),
        "resolution_raw": ("số liệu gốc", "raw readings"),
        "resolution_hour": ("trung bình theo giờ", "hourly averages"),
        "resolution_day": ("trung bình theo ngày", "daily averages"),
        "points": ("điểm", "points"),
        "ward_median": ("Trung vị các phường/xã", "Median of the wards"),
        "status_green": ("Đạt mục tiêu", "Meets target"),
        "status_amber": ("Chưa đạt mục tiêu", "Below target"),
        "status_red": ("Vượt ngưỡng đỏ", "Past red threshold"),
        "status_neutral": ("Không có mục tiêu", "No target"),
        "status_none": ("Chưa có dữ liệu", "No data"),
        "arriving_backfill": (
            "Dữ liệu đang về: lịch sử đang được nạp, các chỉ số được tính ngay khi nạp xong.",
            "Data still arriving: the history is being loaded; the KPIs are computed as soon"
            " as it has landed.",
        ),
        "arriving_computing": (
            "Dữ liệu đang về: các chỉ số đang được tính lần đầu; trang tự cập nhật.",
            "Data still arriving: the KPIs are being computed for the first time; this page"
            " updates itself.",
        ),
    }
)


# the incident pages' texts (dashboards/i18n_incidents.py)
from dashboards.i18n_incidents import TEXT as _INCIDENT_TEXT  # noqa: E402
from dashboards.i18n_incidents import UNITS_EN as _INCIDENT_UNITS  # noqa: E402

TEXT.update(_INCIDENT_TEXT)
_UNIT_EN.update(_INCIDENT_UNITS)
