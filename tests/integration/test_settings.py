"""One settings object: every IOC_* variable is read and checked by ioc.settings.Settings
(typed URLs, SecretStr secrets), and a bad value is one line naming the variable, never its
value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ioc.errors import IOCError
from ioc.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("IOC_DATABASE_URL", "mysql://root:secretpw@localhost/db", "must start with postgresql://"),
        ("IOC_MQTT_URL", "http://u:secretpw@localhost", "IOC_MQTT_URL must start with mqtt://"),
        ("IOC_WALL_PERIOD_S", "2", "IOC_WALL_PERIOD_S: Input should be greater than or equal to 5"),
        ("IOC_DASH_CACHE_TTL", "-1", "IOC_DASH_CACHE_TTL"),
        ("IOC_INGEST_STOP_GRACE_S", "nan", "IOC_INGEST_STOP_GRACE_S"),
        ("IOC_EMBEDDED_BROKER", "hivemq", "IOC_EMBEDDED_BROKER"),
        ("IOC_MQTT_PROTOCOL", "4", "IOC_MQTT_PROTOCOL"),
    ],
)
def test_bad_values_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(IOCError) as err:
        get_settings()
    text = str(err.value)
    assert needle in text and "\n" not in text
    assert "secretpw" not in text and value not in text.replace(var, "")


def test_values_are_read_typed_and_secrets_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "IOC_DATABASE_URL": "postgresql://ioc:pw%40x@db.example:5432/ioc",
        "IOC_MQTT_URL": "mqtts://dev:tok@broker.example:8883",
        "IOC_SECRET_KEY": "k" * 40,
        "IOC_KIOSK_TOKEN": "kiosk-secret",
        "IOC_WALL_PERIOD_S": "30",
        "IOC_DASH_CACHE_TTL": "0",
        "IOC_INGEST_STOP_GRACE_S": "2.5",
        "IOC_EMBEDDED_BROKER": " AMQTT ",
        "IOC_METRICS_TOKEN": "",  # empty: unset
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = get_settings()
    assert str(s.database_url) == env["IOC_DATABASE_URL"]  # unchanged, password encoding too
    assert str(s.mqtt_url) == env["IOC_MQTT_URL"]
    assert s.secret("kiosk_token") == "kiosk-secret" and s.metrics_token is None
    assert (s.wall_period_s, s.dash_cache_ttl, s.ingest_stop_grace_s) == (30, 0, 2.5)
    assert s.embedded_broker == "amqtt"
    assert "kiosk-secret" not in repr(s) and "k" * 40 not in repr(s)


def test_the_dashboard_takes_its_settings(tmp_path: Path, db_url: str, config: object) -> None:
    from dashboards.app import create_app

    s = Settings(
        secret_key="s" * 40, var_dir=tmp_path, wall_period_s=42, dash_cache_ttl=0, kiosk_token="kt"
    )
    app = create_app(config, db_url, s)  # type: ignore[arg-type]
    st = app.server.config["IOC_STATE"]
    try:
        assert (st.wall_period_s, st.cache.ttl, st.kiosk_token, st.secret_key) == (
            42,
            0,
            "kt",
            "s" * 40,
        )
    finally:
        st.pool.close()


def test_command_line_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "config", "check"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "IOC_WALL_PERIOD_S": "abc", "IOC_VAR_DIR": str(tmp_path)},
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ioc: error: IOC_WALL_PERIOD_S"), out.stderr
