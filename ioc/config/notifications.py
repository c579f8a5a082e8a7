"""``notifications.yaml``: who is told what, how, and when (issue 13).

Routes match an event by kind, severity, ward and category, and name recipients: users by
role (a ward leader only for the wards granted to them), fixed e-mail addresses, webhooks and
MQTT topics. Quiet hours hold back everything but the bypass severities; digest severities
are batched; the escalation chain says who hears of an alert nobody acknowledged.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ioc.config.base import Section

EVENT_KINDS = (
    "alert_opened",
    "alert_unacknowledged",
    "incident_assigned",
    "sla_warning",
    "sla_breached",
    "escalation",
    "device_offline_digest",
    "scheduled_report",
)
EventKind = Literal[
    "alert_opened",
    "alert_unacknowledged",
    "incident_assigned",
    "sla_warning",
    "sla_breached",
    "escalation",
    "device_offline_digest",
    "scheduled_report",
]
Severity = Literal["info", "warning", "critical"]
Channel = Literal["email", "webhook", "mqtt"]
Role = Literal["admin", "operator", "ward_leader", "analyst", "kiosk"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def _critical() -> list[Severity]:
    return ["critical"]


def _info() -> list[Severity]:
    return ["info"]


def _warn_crit() -> list[Severity]:
    return ["critical", "warning"]


def _email() -> list[Channel]:
    return ["email"]


def _hhmm(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a time of day HH:MM: {value!r}") from None


class Webhook(Section):
    url: str = Field(pattern=r"^https?://", description="Endpoint receiving the JSON POST")
    secret_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="Environment variable holding the HMAC-SHA256 key (unset: IOC_SECRET_KEY)",
    )


class Recipients(Section):
    roles: list[Role] = Field(
        default_factory=list,
        description="Users holding these roles (ward leaders only for their own wards),"
        " by e-mail and their own webhook",
    )
    users: list[str] = Field(default_factory=list, description="Named users")
    emails: list[str] = Field(default_factory=list, description="Fixed e-mail addresses")
    webhooks: list[str] = Field(default_factory=list, description="Names under `webhooks:`")
    mqtt: list[str] = Field(
        default_factory=list,
        description="MQTT topics; {ward} is replaced by the ward code (or 'city')",
    )

    @field_validator("emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for e in v:
            if "@" not in e or " " in e:
                raise ValueError(f"not an e-mail address: {e!r}")
        return v

    def empty(self) -> bool:
        return not (self.roles or self.users or self.emails or self.webhooks or self.mqtt)


class Route(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Route name, unique")
    events: list[EventKind] = Field(min_length=1, description="Event kinds it carries")
    severities: list[Severity] = Field(
        default_factory=list, description="Only these severities (empty: all)"
    )
    wards: list[str] = Field(default_factory=list, description="Only these wards (empty: all)")
    categories: list[str] = Field(
        default_factory=list,
        description="Only these categories (alert rule ids, incident categories; empty: all)",
    )
    to: Recipients = Field(description="Who receives it")


class QuietHours(Section):
    start: str = Field(default="22:00", description="Local time quiet hours begin")
    end: str = Field(default="06:00", description="Local time they end (may be next day)")
    bypass: list[Severity] = Field(
        default_factory=_critical, description="Severities sent even in quiet hours"
    )
    enabled: bool = Field(default=True)

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _hhmm(v)
        return v

    def window(self) -> tuple[dt.time, dt.time]:
        return _hhmm(self.start), _hhmm(self.end)


class Digest(Section):
    severities: list[Severity] = Field(
        default_factory=_info, description="Sent batched, not one by one"
    )
    every_min: int = Field(default=60, ge=1, le=1440, description="How often a digest goes")


class RateLimit(Section):
    per_hour: int = Field(
        default=30, ge=1, description="Messages per recipient per hour; the rest into a digest"
    )
    channels: list[Channel] = Field(
        default_factory=_email, description="Channels the limit applies to"
    )
    overflow_min: int = Field(
        default=10, ge=1, description="Held-back messages go out as one digest this much later"
    )
    bypass: list[Severity] = Field(
        default_factory=_critical, description="Severities never held back"
    )


class Delivery(Section):
    max_attempts: int = Field(
        default=8, ge=1, description="Failures of one message before it is dead-lettered"
    )
    backoff_s: float = Field(default=5, gt=0, description="First retry after this")
    backoff_max_s: float = Field(default=1800, gt=0, description="Retries at most this far apart")
    lease_s: float = Field(
        default=60, gt=0, description="A claimed message not sent within this is claimed again"
    )
    batch: int = Field(default=50, ge=1, le=1000, description="Messages claimed at once")
    threads: int = Field(default=4, ge=1, le=32, description="Messages sent at once")
    poll_s: float = Field(default=2, gt=0, description="Poll interval (LISTEN wakes it sooner)")
    housekeeping_s: float = Field(
        default=15, gt=0, description="Escalations and digests checked this often"
    )
    smtp_timeout_s: float = Field(default=20, gt=0)
    webhook_timeout_s: float = Field(default=10, gt=0)
    user_webhook_networks: list[str] = Field(
        default_factory=list,
        description="Private networks (CIDR) a user's own webhook may reach; by default only"
        " public addresses (named `webhooks:` are trusted as configured)",
    )
    attach_max_bytes: int = Field(
        default=5_000_000, ge=0, description="Report files larger than this go as a link"
    )
    link_ttl_hours: float = Field(default=72, gt=0, description="Acknowledge links expire")
    keep_days: int = Field(
        default=30, ge=1, description="Sent, cancelled and digested messages kept this long"
    )
    in_scheduler: bool = Field(
        default=True,
        description="`ioc scheduler` also runs a delivery worker (besides any `ioc notify`)",
    )

    @field_validator("user_webhook_networks")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        from ioc.notify.destinations import networks

        networks(v)  # ValueError naming the bad one
        return v


class EscalationLevel(Section):
    name: str = Field(description="Who this level is, e.g. 'ward leader'")
    after_min: float = Field(gt=0, description="Minutes after the alert opened, unacknowledged")
    to: Recipients = Field(description="Who is told at this level")


class Escalation(Section):
    severities: list[Severity] = Field(
        default_factory=_warn_crit, description="Alerts that escalate"
    )
    levels: list[EscalationLevel] = Field(default_factory=list, description="In order")
    reminder_every_min: float = Field(
        default=15, gt=0, description="Reminders to the current level until acknowledged"
    )
    max_reminders: int | None = Field(
        default=None, ge=0, description="Stop reminding after this many (null: never)"
    )

    @model_validator(mode="after")
    def _order(self) -> Escalation:
        after = [lv.after_min for lv in self.levels]
        if after != sorted(after) or len(set(after)) != len(after):
            raise ValueError("escalation levels must have increasing after_min")
        return self


class ReportSubscription(Section):
    report: str = Field(description="A report name from kpis.yaml `reports:`")
    to: Recipients = Field(description="Subscribers (ward leaders get only their wards)")


class NotificationsFile(Section):
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    digest: Digest = Field(default_factory=Digest)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    delivery: Delivery = Field(default_factory=Delivery)
    webhooks: dict[str, Webhook] = Field(default_factory=dict, description="Named endpoints")
    routes: list[Route] = Field(default_factory=list)
    escalation: Escalation = Field(default_factory=Escalation)
    reports: list[ReportSubscription] = Field(
        default_factory=list, description="Scheduled reports e-mailed to subscribers"
    )


def default_notifications() -> NotificationsFile:
    """The contract's default routing, used when ``notifications.yaml`` is absent: critical
    and warning alerts by e-mail to every user who may see the ward."""
    return NotificationsFile(
        routes=[
            Route(
                name="alerts_to_users",
                events=["alert_opened"],
                severities=["critical", "warning"],
                to=Recipients(roles=["admin", "operator", "analyst", "ward_leader"]),
            )
        ]
    )
