"""Message texts of incident reminders (pure: ioc.notify.render)."""

from __future__ import annotations

from ioc.notify.render import ACK_URL, render

REMINDER = {
    "kind": "sla_breached",
    "ref_kind": "incident",
    "ref_id": "42",
    "title": "#42 Ngập sâu",
    "severity": "critical",
    "ward_name": "Phường Hải Vân",
    "reminder": 3,
    "minutes": 90.0,
    "due_at": "2026-12-02T09:30:00+07:00",
}


def test_an_incident_reminder_says_which_and_keeps_the_acknowledge_link() -> None:
    subject, text, html = render("sla_breached", REMINDER, "vi")
    assert subject == (
        "[IOC] Nghiêm trọng: Nhắc lại lần 3: sự vụ chưa được tiếp nhận, quá hạn 90 phút"
        " – #42 Ngập sâu – Phường Hải Vân"
    )
    assert f"Xác nhận đã nhận sự vụ: {ACK_URL}" in text and ACK_URL in html
    subject, text, _ = render("sla_breached", REMINDER, "en")
    assert subject == (
        "[IOC] Critical: Reminder 3: incident not acknowledged, 90 min past due"
        " – #42 Ngập sâu – Phường Hải Vân"
    )
    assert f"Acknowledge this incident: {ACK_URL}" in text
    # the breach itself (no reminder number) reads as before
    breach = {k: v for k, v in REMINDER.items() if k not in ("reminder", "minutes")}
    assert render("sla_breached", breach, "en")[0] == (
        "[IOC] Critical: Due time passed: #42 Ngập sâu – Phường Hải Vân"
    )
