-- Idempotency-Key on POST /api/v1/incidents/{id}/actions (dashboards/incidents_api.py,
-- ioc/incidents/idempotency.py): the first request with a key claims it (INSERT ... ON CONFLICT
-- DO NOTHING), does the action and stores its answer in the same transaction; a repeat of the
-- key by the same client answers what is stored. A second request with the same key while the
-- first is under way waits on the primary key until the first commits (then replays) or rolls
-- back (then it acts). A plain table on both storage paths (PostgreSQL and TimescaleDB); rows
-- older than 7 days are deleted by the scheduler's retention job.
CREATE TABLE IF NOT EXISTS api_idempotency_keys (
    client       text NOT NULL,         -- the caller: the API token's name (api_tokens.name)
    key          text NOT NULL,         -- the Idempotency-Key header (1-200 printable ASCII)
    incident_id  bigint NOT NULL,       -- no foreign key: a 404 for an unknown id is stored too
    action       text NOT NULL,
    body_hash    text NOT NULL,         -- sha256 of the request body as canonical JSON
    status       integer,               -- the answer; NULL only inside the claiming transaction
    response     text,                  -- the JSON answer, byte for byte
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, key)
);
CREATE INDEX IF NOT EXISTS api_idempotency_keys_created ON api_idempotency_keys (created_at);
