"""The ingester on the embedded amqtt broker (MQTT 3.1.1 only). Told the protocol
(``IOC_MQTT_PROTOCOL=3.1.1``, which ``ioc demo`` sets for amqtt) it connects at once; left on
``auto`` it still gets there, after its MQTT 5 attempt had no answer (amqtt waits for the rest
of a CONNECT it cannot parse). Either way it then stores what is published. (amqtt used to be
monkey-patched to close such a connection at once; no private part of amqtt is touched now.)"""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from ingest_helpers import wait_for_count

from ingest.mqtt import MqttIngester
from ioc.config import Config
from ioc.demo.embedded import EmbeddedBroker
from ioc.settings import parse_mqtt_url


@pytest.mark.parametrize("protocol", ["3.1.1", "auto"])
def test_ingester_on_amqtt(fresh_db_url: str, config: Config, protocol: str) -> None:
    with EmbeddedBroker(engine="amqtt") as broker:
        assert broker.url is not None
        target = parse_mqtt_url(broker.url)
        ing = MqttIngester(
            config,
            fresh_db_url,
            target,
            client_id=f"amqtt-{uuid.uuid4().hex[:6]}",
            protocol=protocol,
            connect_timeout_s=4.0,
        )
        t0 = time.monotonic()
        ing.start()
        try:
            elapsed = time.monotonic() - t0
            assert ing._protocol == mqtt.MQTTv311
            if protocol == "3.1.1":
                assert elapsed < 3.0, f"connecting took {elapsed:.1f} s"
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
            pub.username_pw_set(target.username, target.password)
            pub.connect(target.host, target.port)
            pub.loop_start()
            try:
                device = f"amqtt{uuid.uuid4().hex[:6]}"
                payload = {"ts": int(time.time() * 1000), "values": {"pm25": 12.5}}
                topic = f"{config.topic_prefix}/20197/air_quality/{device}/telemetry"
                pub.publish(topic, json.dumps(payload), qos=1).wait_for_publish(10)
                sql = "SELECT count(*) FROM readings WHERE device_id = %s"
                assert wait_for_count(fresh_db_url, sql, 1, 20, (device,)) == 1
            finally:
                pub.disconnect()
                pub.loop_stop()
        finally:
            ing.stop()
