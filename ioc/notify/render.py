"""Message texts: Vietnamese (default) or English, plain text plus HTML.

Rendered when the notification is enqueued, from the event's parameters. Two placeholders are
filled in only when the message is sent: ``{{ack_url}}`` (the recipient's one-use acknowledge
link, made by the worker with the dashboard's key) and ``{{public_url}}`` (IOC_PUBLIC_URL).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

ACK_URL = "{{ack_url}}"
FILE_URL = "{{file_url}}"
PUBLIC_URL = "{{public_url}}"

SEVERITY = {
    "vi": {"critical": "Nghiêm trọng", "warning": "Cảnh báo", "info": "Thông tin"},
    "en": {"critical": "Critical", "warning": "Warning", "info": "Info"},
}
WORDS = {
    "vi": {
        "ward": "Phường/xã",
        "what": "Sự việc",
        "value": "Giá trị",
        "threshold": "Ngưỡng",
        "at": "Thời điểm",
        "ack": "Xác nhận đã nhận cảnh báo",
        "ack_incident": "Xác nhận đã nhận sự vụ",
        "see": "Xem trên IOC",
        "city": "Toàn thành phố",
        "reminder": "Nhắc lại lần {n}: cảnh báo chưa được xác nhận",
        "incident_reminder": "Nhắc lại lần {n}: sự vụ chưa được tiếp nhận, quá hạn {minutes} phút",
        "escalated": "Chuyển cấp ({level}): cảnh báo chưa được xác nhận sau {minutes} phút",
        "ack_note": "Liên kết xác nhận dùng một lần, hết hạn sau {hours} giờ.",
        "digest": "Tổng hợp {n} thông báo",
        "report": "Báo cáo định kỳ",
        "report_attached": "đính kèm",
        "report_link": "Tải tệp về (quá lớn để đính kèm)",
        "file": "Tệp",
        "period": "Kỳ báo cáo",
        "offline": "Thiết bị mất kết nối",
        "due": "Hạn xử lý",
        "incident": "Sự vụ",
        "subject": "Thiết bị / đối tượng",
        "level": "Cấp xử lý",
        "footer": "Thư tự động từ Trung tâm Điều hành Đà Nẵng (IOC). Đổi tùy chọn nhận tin:",
        "test": "Thư thử từ IOC",
        "test_text": "Thông báo của IOC đến được bạn qua kênh này.",
        "asked": "Yêu cầu lúc",
        "user": "Người dùng",
        "result": "Kết quả",
    },
    "en": {
        "ward": "Ward",
        "what": "What happened",
        "value": "Value",
        "threshold": "Threshold",
        "at": "At",
        "ack": "Acknowledge this alert",
        "ack_incident": "Acknowledge this incident",
        "see": "Open in IOC",
        "city": "Whole city",
        "reminder": "Reminder {n}: alert not acknowledged",
        "incident_reminder": "Reminder {n}: incident not acknowledged, {minutes} min past due",
        "escalated": "Escalated ({level}): alert not acknowledged after {minutes} minutes",
        "ack_note": "The acknowledge link works once and expires after {hours} hours.",
        "digest": "Digest of {n} notifications",
        "report": "Scheduled report",
        "report_attached": "attached",
        "report_link": "Download the file (too large to attach)",
        "file": "File",
        "period": "Period",
        "offline": "Devices offline",
        "due": "Due",
        "incident": "Incident",
        "subject": "Device / subject",
        "level": "Level",
        "footer": "Automatic message from the Da Nang Operations Center (IOC). Preferences:",
        "test": "Test message from IOC",
        "test_text": "IOC's notifications reach you through this channel.",
        "asked": "Asked for at",
        "user": "User",
        "result": "Result",
    },
}
KIND_TITLE = {
    "vi": {
        "incident_assigned": "Sự vụ được giao",
        "sla_warning": "Sắp hết hạn xử lý",
        "sla_breached": "Quá hạn xử lý",
        "device_offline_digest": "Tổng hợp thiết bị mất kết nối",
        "escalation": "Chuyển cấp",
        "alert_unacknowledged": "Nhắc lại: chưa xác nhận",
    },
    "en": {
        "incident_assigned": "Incident assigned",
        "sla_warning": "Due time approaching",
        "sla_breached": "Due time passed",
        "device_offline_digest": "Devices offline digest",
        "escalation": "Escalated",
        "alert_unacknowledged": "Reminder: not acknowledged",
    },
}

SCHEDULE = {
    "vi": {"daily": "KPI ngày", "weekly": "KPI tuần", "monthly": "KPI tháng"},
    "en": {"daily": "daily KPIs", "weekly": "weekly KPIs", "monthly": "monthly KPIs"},
}

Rendered = tuple[str, str, str]  # subject, text, html


def fmt_num(value: float | None, lang: str, decimals: int = 1) -> str:
    """1.234,5 in Vietnamese, 1,234.5 in English."""
    if value is None:
        return "—"
    if float(value).is_integer():
        decimals = 0
    text = f"{value:,.{decimals}f}"
    if lang == "vi":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def fmt_time(value: str | dt.datetime | None, lang: str, tz: str) -> str:
    if value is None:
        return "—"
    ts = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    ts = ts.astimezone(ZoneInfo(tz))
    return ts.strftime("%H:%M %d/%m/%Y" if lang == "vi" else "%Y-%m-%d %H:%M")


def fmt_period(start: str | None, end: str | None, lang: str, tz: str) -> str:
    """A report's period as local dates, its end included: 05/12/2026 for a day,
    30/11/2026 – 06/12/2026 for a week (``end`` is the exclusive end the report covers)."""
    if not start or not end:
        return "—"
    zone = ZoneInfo(tz)
    first = dt.datetime.fromisoformat(start).astimezone(zone)
    last = (dt.datetime.fromisoformat(end) - dt.timedelta(microseconds=1)).astimezone(zone)
    pattern = "%d/%m/%Y" if lang == "vi" else "%Y-%m-%d"
    if first.date() == last.date():
        return first.strftime(pattern)
    return f"{first.strftime(pattern)} – {last.strftime(pattern)}"


def _lines_html(
    title: str, rows: Sequence[tuple[str, str]], links: Sequence[tuple[str, str]], lang: str
) -> str:
    e = html.escape
    cells = "".join(
        f"<tr><th style='text-align:left;padding:2px 12px 2px 0'>{e(k)}</th><td>{e(v)}</td></tr>"
        for k, v in rows
    )
    buttons = "".join(
        f"<p><a href='{e(url, quote=True)}' style='display:inline-block;padding:8px 14px;"
        f"background:#0b5394;color:#fff;text-decoration:none;border-radius:4px'>{e(label)}</a></p>"
        for label, url in links
    )
    return (
        f"<!doctype html><html lang='{lang}'><body style='font-family:Arial,sans-serif'>"
        f"<h2 style='margin:0 0 8px'>{e(title)}</h2><table>{cells}</table>{buttons}"
        f"<p style='color:#666;font-size:12px'>{e(WORDS[lang]['footer'])} "
        f"<a href='{PUBLIC_URL}/settings/notifications'>{PUBLIC_URL}/settings/notifications</a>"
        "</p></body></html>"
    )


def _text(
    title: str, rows: Sequence[tuple[str, str]], links: Sequence[tuple[str, str]], lang: str
) -> str:
    out = [title, ""]
    out += [f"{k}: {v}" for k, v in rows]
    out.append("")
    out += [f"{label}: {url}" for label, url in links]
    out += ["", "--", f"{WORDS[lang]['footer']} {PUBLIC_URL}/settings/notifications"]
    return "\n".join(out) + "\n"


def render(kind: str, p: Mapping[str, Any], lang: str, tz: str = "Asia/Ho_Chi_Minh") -> Rendered:
    """Subject, text and HTML of one notification."""
    lang = lang if lang in WORDS else "vi"
    w = WORDS[lang]
    sev = SEVERITY[lang].get(str(p.get("severity") or ""), str(p.get("severity") or ""))
    ward = str(p.get("ward_name") or p.get("ward_code") or w["city"])
    if p.get("ref_kind") == "alert" or kind in ("alert_opened", "alert_unacknowledged"):
        label = str(p.get("label_en" if lang == "en" else "label_vi") or p.get("title") or "")
        unit = f" {p['unit']}" if p.get("unit") else ""
        op = str(p.get("op") or "")
        rows: list[tuple[str, str]] = [(w["ward"], ward), (w["what"], label)]
        if p.get("alert_subject") and p.get("alert_subject") != p.get("ward_code"):
            rows.append((w["subject"], str(p["alert_subject"])))
        if p.get("value") is not None:
            rows.append((w["value"], fmt_num(p.get("value"), lang) + unit))
        if p.get("threshold") is not None:
            rows.append((w["threshold"], f"{op} {fmt_num(p.get('threshold'), lang)}{unit}".strip()))
        rows.append((w["at"], fmt_time(p.get("opened_at"), lang, tz)))
        head = f"{sev}: {label} – {ward}"
        if kind == "alert_unacknowledged":
            head = w["reminder"].format(n=p.get("reminder", 1)) + f" – {label} – {ward}"
        elif kind == "escalation":
            head = (
                w["escalated"].format(
                    level=p.get("level_name", ""), minutes=fmt_num(p.get("minutes"), lang, 0)
                )
                + f" – {label} – {ward}"
            )
        links = [(w["ack"], ACK_URL), (w["see"], f"{PUBLIC_URL}/alerts")]
        note = w["ack_note"].format(hours=fmt_num(p.get("link_ttl_hours", 72), lang, 0))
        subject = f"[IOC] {head}"
        text = _text(head, rows, links, lang).replace("\n\n--", f"\n{note}\n\n--", 1)
        return subject, text, _lines_html(head, rows, links, lang)
    if kind == "test":
        rows = [
            (w["user"], str(p.get("user", ""))),
            (w["asked"], fmt_time(p.get("at"), lang, tz)),
            (w["result"], w["test_text"]),
        ]
        links = [(w["see"], f"{PUBLIC_URL}/settings/notifications")]
        head = w["test"]
        return f"[IOC] {head}", _text(head, rows, links, lang), _lines_html(head, rows, links, lang)
    if kind == "scheduled_report":
        period = fmt_period(p.get("period_from"), p.get("period_to"), lang, tz)
        what = SCHEDULE[lang].get(str(p.get("schedule") or ""), "")
        rows = [(w["report"], str(p.get("report", ""))), (w["period"], period)]
        if p.get("wards"):
            names = list(p.get("ward_names") or p["wards"])
            rows.append((w["ward"], ", ".join(names)))
        links = [] if p.get("attach") else [(w["report_link"], FILE_URL)]
        if p.get("attach"):
            rows.append((w["file"], f"{p.get('file', '')} ({w['report_attached']})"))
        head = f"{w['report']}: {p.get('report', '')} – {f'{what} ' if what else ''}{period}"
        return f"[IOC] {head}", _text(head, rows, links, lang), _lines_html(head, rows, links, lang)
    if kind == "device_offline_digest":
        devices = list(p.get("devices") or [])
        rows = [
            (
                str(d.get("device_id")),
                f"{d.get('ward_name') or d.get('ward_code')} · "
                + fmt_time(d.get("since"), lang, tz),
            )
            for d in devices
        ]
        head = f"{w['offline']}: {fmt_num(len(devices), lang, 0)} – {ward}"
        links = [(w["see"], f"{PUBLIC_URL}/")]
        return f"[IOC] {head}", _text(head, rows, links, lang), _lines_html(head, rows, links, lang)
    # incidents and anything else: a title, the ward, a due time
    title = str(p.get("title") or KIND_TITLE[lang].get(kind, kind))
    rows = [(w["ward"], ward), (w["incident"], title)]
    if p.get("due_at"):
        rows.append((w["due"], fmt_time(p.get("due_at"), lang, tz)))
    if p.get("level_name"):
        rows.append((w["level"], str(p["level_name"])))
    head = f"{KIND_TITLE[lang].get(kind, kind)}: {title} – {ward}"
    if kind == "sla_breached" and p.get("reminder"):  # a reminder of the breach (incidents.sla)
        what = w["incident_reminder"].format(
            n=p["reminder"], minutes=fmt_num(p.get("minutes"), lang)
        )
        head = f"{what} – {title} – {ward}"
    links = []
    if p.get("ref_kind") == "incident":
        links = [
            (w["ack_incident"], ACK_URL),
            (w["see"], f"{PUBLIC_URL}/incidents/{p.get('ref_id')}"),
        ]
    if sev:
        head = f"{sev}: {head}"
    return f"[IOC] {head}", _text(head, rows, links, lang), _lines_html(head, rows, links, lang)


def render_digest(items: Sequence[Mapping[str, Any]], lang: str) -> Rendered:
    """One message listing several held-back notifications (subject and time of each)."""
    lang = lang if lang in WORDS else "vi"
    w = WORDS[lang]
    head = w["digest"].format(n=fmt_num(len(items), lang, 0))
    rows = [
        (str(i.get("when", "")), str(i.get("subject", "")).removeprefix("[IOC] ")) for i in items
    ]
    links = [(w["see"], f"{PUBLIC_URL}/alerts")]
    return f"[IOC] {head}", _text(head, rows, links, lang), _lines_html(head, rows, links, lang)
