"""Settings from the environment: one object, :class:`Settings`, read once by the command line
(:func:`get_settings`) and passed down; nothing else reads ``IOC_*`` variables.

URLs are typed (a PostgreSQL DSN, an MQTT URL) and checked when read; secrets are
``SecretStr`` (shown as ``**********``) and stay inside these objects: ``redacted()`` is what
logs and error messages show. A bad value is one line naming the variable, never its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AnyUrl, Field, PostgresDsn, SecretStr, UrlConstraints, ValidationError
from pydantic import field_validator as _field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ioc.errors import IOCError

DatabaseUrl = Annotated[PostgresDsn, UrlConstraints(allowed_schemes=["postgresql", "postgres"])]
MqttUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["mqtt", "mqtts", "tcp", "ssl"])]

PLACEHOLDER_PASSWORDS = frozenset({"changeme", "change-me", "password", "secret", "ioc"})


class Settings(BaseSettings):
    """Process settings; every field comes from an ``IOC_`` environment variable."""

    model_config = SettingsConfigDict(env_prefix="IOC_", extra="ignore", env_ignore_empty=True)

    database_url: DatabaseUrl | None = Field(
        default=None,
        description="PostgreSQL URL postgresql://user:pass@host:port/db; unset = embedded (demo)",
    )
    mqtt_url: MqttUrl | None = Field(
        default=None,
        description="Broker URL mqtt://user:pass@host:port or mqtts:// for TLS; unset = embedded",
    )
    mqtt_protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto",
        description="MQTT version the ingester speaks: auto = 5, or 3.1.1 when the broker"
        " refuses 5; `ioc demo` sets 3.1.1 for its embedded amqtt broker (MQTT 3.1.1 only)",
    )
    config_dir: Path = Field(default=Path("config"), description="Folder of the YAML config")
    var_dir: Path = Field(default=Path("var"), description="Data of the embedded servers")
    secret_key: SecretStr | None = Field(
        default=None, description="Key that signs session cookies; generated under var/ if unset"
    )
    kiosk_token: SecretStr | None = Field(
        default=None, description="Read-only token for wall displays (/wall?token=...)"
    )
    demo: bool = Field(
        default=False, description="Set by `ioc demo` for its children: placeholder passwords OK"
    )
    demo_inbox_url: str | None = Field(
        default=None,
        description="Set by `ioc demo`: its local mail catcher's inbox page, linked from every"
        " page's menu bar so a newcomer sees the notifications arrive",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token for /metrics; unset = /metrics is open"
    )
    # incidents: the token (scope incidents) the simulator's ward staff work incidents with,
    # through the same dashboard base URL (IOC_INTAKE_URL)
    incidents_token: SecretStr | None = Field(
        default=None, description="Token of scope incidents for the simulator's ward staff"
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis shared by several dashboard hosts (query cache); unset = one host",
    )
    dash_cache_ttl: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="Dashboard query cache lifetime, seconds (0 = off); unset = 5",
    )
    wall_period_s: float | None = Field(
        default=None,
        ge=5,
        le=3600,
        allow_inf_nan=False,
        description="Seconds each /wall view is shown; unset = 20",
    )
    ingest_stop_grace_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="On SIGTERM, how long the MQTT ingester keeps trying to store what it holds",
    )
    embedded_broker: Literal["auto", "mosquitto", "amqtt"] = Field(
        default="auto",
        description="Engine of the embedded broker: auto = mosquitto when installed, else amqtt",
    )
    # notifications (issue 13)
    smtp_url: SecretStr | None = Field(
        default=None,
        description="Mail server for notifications smtp://user:pass@host:port (smtps:// for"
        " TLS); unset = no e-mail",
    )
    smtp_from: str = Field(default="ioc@localhost", description="Sender of notifications")
    public_url: str = Field(
        default="http://127.0.0.1:8050",
        description="The dashboard's base URL as users reach it (links inside messages)",
    )

    # citizen reports: where `ioc simulate` pushes the reports of the Góp ý Đà Nẵng portal
    intake_url: str | None = Field(
        default=None, description="Dashboard base URL for the simulator's POST /api/v1/reports"
    )
    intake_token: SecretStr | None = Field(
        default=None, description="Intake token (`ioc tokens add`) the simulator pushes with"
    )

    # security (issue 14): sessions (in Redis when redis_url is set), proxies; public_url
    # above is also what the Origin check compares with
    trusted_proxies: str = Field(
        default="",
        description="Reverse proxies (addresses or networks, comma separated) whose"
        " X-Forwarded-For / X-Forwarded-Proto are believed; unset = none",
    )
    session_idle_s: float = Field(
        default=3600.0,
        ge=60,
        le=30 * 86400,
        allow_inf_nan=False,
        description="A session ends after this many seconds without a request",
    )
    session_max_age_s: float = Field(
        default=12 * 3600.0,
        ge=60,
        le=30 * 86400,
        allow_inf_nan=False,
        description="A session ends at the latest this many seconds after sign-in",
    )

    @_field_validator("embedded_broker", "mqtt_protocol", mode="before")
    @classmethod
    def _stripped_lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    def secret(self, name: str) -> str | None:
        """The plain value of a ``SecretStr`` setting (None when unset)."""
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None


def get_settings() -> Settings:
    """The settings from the environment; a bad value is an IOCError naming the variable
    (never its value: it may hold a password)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise IOCError(settings_error(exc)) from None


def settings_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = err.get("loc") or ("?",)
    name = f"IOC_{str(loc[0]).upper()}"
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind == "url_scheme":
        schemes = str(ctx.get("expected_schemes", "")).replace("'", "").split(" or ")[0]
        return f"{name} must start with {schemes.split(',')[0].strip()}://"
    if kind == "url_parsing":
        return f"{name} is not a valid URL: {ctx.get('error', err.get('msg'))}"
    return f"{name}: {err.get('msg')}"


@dataclass(frozen=True)
class MqttTarget:
    """A parsed broker URL."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def redacted(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """Parse ``mqtt://user:pass@host:port`` (or ``mqtts://``); one-line error if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise IOCError(f"IOC_MQTT_URL is not a valid URL: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise IOCError(
            f"IOC_MQTT_URL must start with mqtt:// or mqtts:// (got {parts.scheme or 'no'} scheme)"
        )
    if not parts.hostname:
        raise IOCError("IOC_MQTT_URL has no host name")
    tls = parts.scheme in ("mqtts", "ssl")
    return MqttTarget(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def redact_db_url(url: str) -> str:
    """The database URL with its password replaced, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def refuse_placeholder_password(name: str, url: str, *, demo: bool) -> None:
    """Outside the demo, a well-known placeholder password in a URL is refused."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password and not demo and unquote(password).lower() in PLACEHOLDER_PASSWORDS:
        raise IOCError(
            f"{name} uses a placeholder password; set a real one (allowed only in `ioc demo`)"
        )


def check_db_url(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise IOCError(f"IOC_DATABASE_URL is not a valid URL: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise IOCError(
            "IOC_DATABASE_URL must start with postgresql:// "
            f"(got {redact_db_url(url).split(':', 1)[0] or 'nothing'})"
        )
