-- ingest_rejects gets an identity, so that a redelivered invalid message is stored once
-- (docs/ingest.md, "Rejects are stored once"). msg_key = the first 16 bytes of
-- sha256(topic, 0x00, payload, 0x00, reason [, 0x00, MQTT packet id]) as a uuid, computed by the
-- ingester; unique together with received_at (TimescaleDB: a unique index of a hypertable must
-- hold its time column, and ingest_rejects is one, partitioned by received_at).
-- The contract's columns are unchanged.
ALTER TABLE ingest_rejects ADD COLUMN IF NOT EXISTS msg_key uuid;

-- Rows stored before this migration: the key of a message that carries its own identity, from
-- the stored text (the same as the ingester's when the payload was stored whole).
UPDATE ingest_rejects
SET msg_key = encode(substring(sha256(
        convert_to(coalesce(topic, ''), 'UTF8') || '\x00'::bytea
        || convert_to(coalesce(payload, ''), 'UTF8') || '\x00'::bytea
        || convert_to(reason, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid
WHERE msg_key IS NULL;

-- Identical rows (same key, same receive time) would block the unique index: keep one. Both
-- rows of a pair have the same received_at, so they are in the same chunk of a hypertable and
-- their ctids can be compared.
DELETE FROM ingest_rejects a
USING ingest_rejects b
WHERE a.msg_key = b.msg_key AND a.received_at = b.received_at AND a.ctid > b.ctid;

-- Writers that do not know the column (an older ingester during an upgrade) still insert.
ALTER TABLE ingest_rejects ALTER COLUMN msg_key SET DEFAULT gen_random_uuid();
ALTER TABLE ingest_rejects ALTER COLUMN msg_key SET NOT NULL;

CREATE UNIQUE INDEX IF NOT EXISTS ingest_rejects_key ON ingest_rejects (msg_key, received_at);
