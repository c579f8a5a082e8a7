"""``ioc.yaml``: MQTT, ingest limits, storage (retention, roll-ups, TimescaleDB), time zone."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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


class BaseMapSection(Section):
    """An optional base map under the ward maps, from the city's own tile or style server
    (none by default: the dashboards must work with no internet)."""

    tiles: str | None = Field(
        default=None,
        description="Raster tile URL template with {z}, {x} and {y}, e.g."
        " https://gis.danang.example/tiles/{z}/{x}/{y}.png",
    )
    style: str | None = Field(default=None, description="A MapLibre style JSON URL instead")
    attribution: str = Field(default="", description="Shown on the map, e.g. '© Sở TN&MT'")
    opacity: float = Field(default=0.75, ge=0.1, le=1, description="Ward colours over it")

    @model_validator(mode="after")
    def _one(self) -> BaseMapSection:
        if self.tiles and self.style:
            raise ValueError("give either 'tiles' or 'style', not both")
        for key in ("tiles", "style"):
            url = getattr(self, key)
            if url and not url.startswith(("http://", "https://", "/")):
                raise ValueError(f"{key}: an http(s) URL or a path on this server")
        if self.tiles and not all(p in self.tiles for p in ("{z}", "{x}", "{y}")):
            raise ValueError("tiles: the URL template needs {z}, {x} and {y}")
        if (self.tiles or self.style) and not self.attribution.strip():
            raise ValueError("attribution: say whose map it is (shown on the map)")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.tiles or self.style)


class SystemFile(Section):
    timezone: Literal["Asia/Ho_Chi_Minh"] = Field(
        default="Asia/Ho_Chi_Minh",
        description="Fixed: Vietnam's one time zone (ioc/localtime.py). Day boundaries of KPIs,"
        " roll-ups, working days and due dates use it; the key is accepted with this value only",
    )
    mqtt: MqttSection = Field(default_factory=MqttSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    basemap: BaseMapSection = Field(default_factory=BaseMapSection)
