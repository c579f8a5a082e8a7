"""Rejects are stored once: a redelivered invalid message adds no row (the ingester killed after
its commit and before its PUBACK reached the broker), a payload with its own identity is one
row however often it arrives, and the same bad bytes published again are a second row.
Migration 0009 dedupes and keys rows stored before it. Real Mosquitto and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import psycopg2
from ingest_helpers import (
    IngesterProcess,
    Mosquitto,
    Publisher,
    TcpProxy,
    make_config_dir,
    query_all,
    query_one,
    unique_prefix,
    wait_for_count,
    wait_until,
)

from ingest.parse import Parser
from ingest.writer import reject_key
from ioc.config import Config
from ioc.db import connect
from ioc.db.migrate import init_db

WARD = "20197"
REJECTS_BY_REASON = (
    "SELECT split_part(reason, ':', 1), count(*) FROM ingest_rejects GROUP BY 1 ORDER BY 1"
)


def _summary(db_url: str, client_id: str) -> dict[str, object]:
    details = query_one(
        db_url, "SELECT details FROM service_status WHERE instance = %s", (client_id,)
    )
    assert isinstance(details, dict)
    return details


def test_invalid_message_redelivered_after_a_kill_is_stored_once(
    tmp_path: Path, fresh_db_url: str
) -> None:
    broker = Mosquitto(tmp_path / "broker").start()
    proxy = TcpProxy(broker.port).start()  # between the ingester and the broker
    prefix = unique_prefix()
    cfg = make_config_dir(tmp_path / "cfg", prefix)
    client_id = "rejects-once"
    ing = IngesterProcess(
        fresh_db_url,
        proxy.url("mqtt://127.0.0.1:{port}"),
        cfg,
        client_id,
        log=tmp_path / "ingester.log",
    )
    telemetry = f"{prefix}/{WARD}/air_quality/rej1/telemetry"
    ts = int(time.time() * 1000) - 60_000
    pub = Publisher(broker.url)
    try:
        ing.start()
        pub.publish(telemetry, json.dumps({"ts": ts, "values": {"pm25": 10.0}}))
        assert wait_for_count(fresh_db_url, "SELECT count(*) FROM readings", 1, 30) == 1
        # its PUBACK leaves right after the commit
        wait_until(lambda: proxy.pubacks_forwarded >= 1, 30, "the first PUBACK")
        proxy.swallow_upstream = True  # from now on no PUBACK reaches the broker
        bad = [
            (telemetry, b"{not json"),  # no identity of its own
            (telemetry, json.dumps({"ts": ts + 1, "values": {"pm25": -5}}).encode()),  # has one
            (f"{prefix}/{WARD}/air_quality/rej1/status", b"asleep"),
        ]
        for topic, payload in bad:
            pub.publish(topic, payload)
        pub.wait_all(30)
        assert wait_for_count(fresh_db_url, "SELECT count(*) FROM ingest_rejects", 3, 30) == 3
        # the PUBACKs after that commit (4 bytes each): swallowed
        wait_until(lambda: proxy.swallowed >= 12, 30, "the three swallowed PUBACKs")
        ing.kill9()  # the broker still holds the three messages as unacknowledged
        proxy.swallow_upstream = False
        ing.start()
        # redelivered first; a valid message published now is stored after them
        pub.publish(telemetry, json.dumps({"ts": ts + 2, "values": {"pm25": 11.0}}))
        assert wait_for_count(fresh_db_url, "SELECT count(*) FROM readings", 2, 30) == 2
        time.sleep(0.5)
        assert ing.terminate() == 0, ing.log_text()[-2000:]
        # the broker did redeliver them (DUP; the first reading too if its PUBACK was late),
        # and they added nothing
        assert _summary(fresh_db_url, client_id)["redelivered"] in (3, 4)
        assert query_all(fresh_db_url, REJECTS_BY_REASON) == [
            ("bad_json", 1),
            ("bad_status", 1),
            ("out_of_range", 1),
        ]

        # published again (not redelivered): the same bytes without an identity of their own
        # are a new message; with one (its ts) they are the same message
        ing.start()
        for topic, payload in bad[:2]:
            pub.publish(topic, payload)
        pub.publish(telemetry, json.dumps({"ts": ts + 3, "values": {"pm25": 12.0}}))
        pub.wait_all(30)
        assert wait_for_count(fresh_db_url, "SELECT count(*) FROM readings", 3, 30) == 3
        time.sleep(0.5)
        assert ing.terminate() == 0, ing.log_text()[-2000:]
        assert _summary(fresh_db_url, client_id)["redelivered"] == 0
        assert query_all(fresh_db_url, REJECTS_BY_REASON) == [
            ("bad_json", 2),
            ("bad_status", 1),
            ("out_of_range", 1),
        ]
    finally:
        pub.close()
        ing.ensure_stopped()
        proxy.stop()
        broker.stop()


def test_migration_0009_dedupes_and_keys_existing_rows(fresh_db_url: str, config: Config) -> None:
    # recent receive times: on TimescaleDB the retention policy (ingest_rejects_days) drops older
    # chunks as soon as the schema is initialised
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    t0, t1 = base, base + dt.timedelta(minutes=1)
    conn = psycopg2.connect(fresh_db_url)
    with conn.cursor() as cur:  # back to the schema before 0009, with rows of that time
        cur.execute("DROP INDEX ingest_rejects_key")
        cur.execute("ALTER TABLE ingest_rejects DROP COLUMN msg_key")
        cur.execute("DELETE FROM schema_migrations WHERE version = 9")
        rows = [
            (t0, "ioc/20197/air_quality/d/telemetry", "bad_json: x", "{x"),
            (t0, "ioc/20197/air_quality/d/telemetry", "bad_json: x", "{x"),
            (t0, "ioc/20197/air_quality/d/telemetry", "bad_json: x", "{x"),
            (t1, "ioc/20197/air_quality/d/telemetry", "bad_json: x", "{x"),
            (t0, "ioc/20197/air_quality/d/telemetry", "bad_json: y", "{x"),
            (t0, None, "bad_topic: z", None),
        ]
        cur.executemany(
            "INSERT INTO ingest_rejects (received_at, topic, reason, payload)"
            " VALUES (%s, %s, %s, %s)",
            rows,
        )
    conn.commit()
    conn.close()
    conn = connect(fresh_db_url)
    try:
        report = init_db(conn, config)
    finally:
        conn.close()
    assert report.applied == ["0009_ingest_rejects_key.sql"]
    stored = query_all(
        fresh_db_url,
        "SELECT received_at, topic, reason, payload, msg_key::text FROM ingest_rejects"
        " ORDER BY 1, 3",
    )
    assert [r[:4] for r in stored] == [
        (t0, "ioc/20197/air_quality/d/telemetry", "bad_json: x", "{x"),
        (t0, "ioc/20197/air_quality/d/telemetry", "bad_json: y", "{x"),
        (t0, None, "bad_topic: z", None),
        (t1, "ioc/20197/air_quality/d/telemetry", "bad_json: x", "{x"),
    ]
    # the key the ingester computes for that payload (one with its own identity: no packet id)
    topic = b"ioc/20197/air_quality/d/telemetry"
    assert stored[0][4] == stored[3][4] == reject_key(topic, b"{x", "bad_json: x", None)
    assert stored[1][4] == reject_key(topic, b"{x", "bad_json: y", None)
    assert stored[2][4] == reject_key(b"", b"", "bad_topic: z", None)
    # a writer that does not know the column still inserts (rolling upgrade)
    conn = psycopg2.connect(fresh_db_url)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO ingest_rejects (topic, reason) VALUES ('t', 'old: writer')")
        cur.execute("INSERT INTO ingest_rejects (topic, reason) VALUES ('t', 'old: writer')")
    conn.commit()
    conn.close()
    assert query_one(fresh_db_url, "SELECT count(*) FROM ingest_rejects WHERE topic = 't'") == 2


def test_which_payloads_carry_their_own_identity(config: Config) -> None:
    """Parser.identified: every telemetry item has a ts, or an application event has id and
    ts — whatever else is wrong with the message."""
    parser = Parser(config)
    now = time.time()
    ts = int(now * 1000)
    tele = f"{config.topic_prefix}/{WARD}/air_quality/d1/telemetry"
    apps = f"{config.topic_prefix}/{WARD}/applications"
    cases = [
        (tele, {"ts": ts, "values": {"pm25": -5}}, True),
        (tele, [{"ts": ts, "values": {"pm25": 1}}, {"ts": ts + 1, "values": {"pm25": -5}}], True),
        (tele, [{"ts": ts, "values": {"pm25": 1}}, {"values": {"pm25": -5}}], False),
        (tele, [{"ts": ts, "values": {"pm25": 1}}, 7], False),
        (tele, {"pm25": -5}, False),  # timestamp = time received
        (tele, {"ts": None, "values": {"pm25": -5}}, False),
        (tele, [], False),
        (tele, 5, False),
        (apps, {"id": "A1", "event": "completed", "ts": ts}, True),
        (apps, {"id": "A1", "event": "teleported", "ts": ts}, True),
        (apps, {"event": "completed", "ts": ts}, False),
    ]
    for topic, data, identified in cases:
        assert parser.identified(topic, json.dumps(data).encode()) is identified, data
    assert parser.identified(tele, b"{not json") is False
    assert parser.identified(tele, b'{"ts": 1, "values": {"pm25": "high"}}') is True
    assert parser.identified(tele, b'{"ts": 1, "values": {"pm25": 1}}\xff') is False  # not UTF-8
    assert parser.identified(f"{config.topic_prefix}/{WARD}/air_quality/d1/status", b"x") is False
