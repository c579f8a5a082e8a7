"""The ingester on the embedded amqtt broker (MQTT 3.1.1 only): its MQTT 5 attempt ends at once
(amqtt closes the connection) and it falls back to 3.1.1 without waiting for a CONNACK timeout
(it took ~15 s), then stores what is published."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
from ingest_helpers import wait_for_count

from ingest.mqtt import MqttIngester
from ioc.config import Config
from ioc.embedded import EmbeddedBroker
from ioc.settings import parse_mqtt_url


def test_mqtt5_to_311_fallback_on_amqtt_is_immediate(fresh_db_url: str, config: Config) -> None:
    with EmbeddedBroker(engine="amqtt") as broker:
        assert broker.url is not None
        target = parse_mqtt_url(broker.url)
        ing = MqttIngester(config, fresh_db_url, target, client_id=f"amqtt-{uuid.uuid4().hex[:6]}")
        assert ing.connect_timeout_s >= 10  # what the fallback used to wait for
        t0 = time.monotonic()
        ing.start()
        try:
            elapsed = time.monotonic() - t0
            assert ing._protocol == mqtt.MQTTv311
            assert elapsed < 3.0, f"fallback took {elapsed:.1f} s"
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
