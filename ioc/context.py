"""What every command receives: settings, the configuration (loaded once) and service URLs."""

from __future__ import annotations

from dataclasses import dataclass, field

from ioc.config import Config, load_config
from ioc.errors import IOCError
from ioc.settings import (
    MqttTarget,
    Settings,
    check_db_url,
    parse_mqtt_url,
    refuse_placeholder_password,
)


@dataclass
class Context:
    settings: Settings
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.settings.config_dir)
        return self._config

    def database_url(self) -> str:
        url = str(self.settings.database_url or "")
        if not url:
            raise IOCError(
                "IOC_DATABASE_URL is not set (only `ioc demo` starts an embedded database)"
            )
        check_db_url(url)
        refuse_placeholder_password("IOC_DATABASE_URL", url, demo=self.settings.demo)
        return url

    def mqtt(self) -> MqttTarget:
        url = str(self.settings.mqtt_url or "")
        if not url:
            raise IOCError("IOC_MQTT_URL is not set (only `ioc demo` starts an embedded broker)")
        refuse_placeholder_password("IOC_MQTT_URL", url, demo=self.settings.demo)
        return parse_mqtt_url(url)
