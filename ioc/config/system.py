"""``ioc.yaml``: MQTT, ingest limits, storage (retention, roll-ups, TimescaleDB), time zone."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ioc.config.base import Section


class MqttSection(Section):
    topic_prefix: str = Field(default="ioc", pattern=r"^[A-Za-z0-9_/-]+$", description="Topic root")
    client_id: str = Field(default="ioc-ingest", description="Base client id of the ingester")
    keepalive_s: int = Field(default=30, ge=5, description="MQTT keep-alive, seconds")
    session_expiry_s: int = Field(
        default=7 * 24 * 3600, ge=0, description="Persistent-session expiry (MQTT 5), seconds"
    )
    max_inflight: int = Field(
        default=1000, ge=1, le=65535, description="Unacknowledged QoS-1 messages at most"
    )


class IngestSection(Section):
    max_payload_bytes: int = Field(default=64 * 1024, ge=64, description="Larger payloads rejected")
    max_array_len: int = Field(default=1000, ge=1, description="Longest telemetry array accepted")
    max_future_skew_s: float = Field(
        default=300, ge=0, description="Readings further in the future are rejected"
    )
    auto_register: bool = Field(
        default=True, description="Register unknown devices on first sighting (else reject)"
    )
    batch_max_rows: int = Field(default=5000, ge=1, description="Writer flushes at this many rows")
    batch_max_delay_s: float = Field(
        default=0.5, gt=0, le=10, description="Writer flushes at least this often, seconds"
    )
    reject_payload_chars: int = Field(
        default=2048, ge=64, description="Stored length of a rejected payload"
    )


class RetentionSection(Section):
    readings_days: int = Field(default=400, ge=1, description="Raw readings kept, days")
    camera_metrics_days: int = Field(default=400, ge=1, description="Camera metrics kept, days")
    ingest_rejects_days: int = Field(default=30, ge=1, description="Rejects kept, days")
    hourly_days: int = Field(default=3 * 365, ge=1, description="Hourly roll-ups kept, days")


class StorageSection(Section):
    chunk_interval: str = Field(default="1 day", description="TimescaleDB chunk interval")
    compress_after: str = Field(default="7 days", description="Compress chunks older than this")
    retention: RetentionSection = Field(default_factory=RetentionSection)
    rollup_lookback_hours: int = Field(
        default=6, ge=1, description="Roll-ups recompute this far back (late data), hours"
    )


class SystemFile(Section):
    timezone: Literal["Asia/Ho_Chi_Minh"] = Field(
        default="Asia/Ho_Chi_Minh",
        description="Fixed: Vietnam's one time zone (ioc/localtime.py). Day boundaries of KPIs,"
        " roll-ups, working days and due dates use it; the key is accepted with this value only",
    )
    mqtt: MqttSection = Field(default_factory=MqttSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    storage: StorageSection = Field(default_factory=StorageSection)
