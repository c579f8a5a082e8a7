"""The table of notifications shared by /settings/notifications (a user's own) and
/admin/notifications (everyone's): when, what, by which channel, to whom, in which state."""

from __future__ import annotations

from typing import Any

from dashboards.i18n import fmt_datetime, t


def recent_columns(lang: str) -> list[dict[str, Any]]:
    return [
        {"name": t("opened", lang), "id": "created"},
        {"name": t("nd_kind", lang), "id": "kind"},
        {"name": t("nd_channel", lang), "id": "channel"},
        {"name": t("nd_recipient", lang), "id": "recipient"},
        {"name": t("n_status", lang), "id": "status"},
        {"name": t("n_sent_at", lang), "id": "sent"},
        {"name": t("title", lang), "id": "subject"},
        {"name": t("nd_error", lang), "id": "last_error"},
    ]


def recent_rows(rows: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "created": fmt_datetime(r["created_at"], lang),
            "kind": t(f"kind_{r['kind']}", lang),
            "channel": r["channel"],
            "recipient": r["recipient"],
            "status": t(f"nd_status_{r['status']}", lang),
            "sent": fmt_datetime(r["sent_at"], lang) if r["sent_at"] else "",
            "subject": r["subject"],
            "last_error": r["last_error"] or "",
        }
        for r in rows
    ]
