-- Beyond one machine (issue 17).
--
-- 1. Export files in the database: the worker that ran an /export job stores its file here in
--    1 MiB chunks, in the same transaction that marks the job done, so any dashboard host
--    serves /export/job/<id> (streamed chunk by chunk); the sweep deletes them with the job's
--    expiry (24 h).
CREATE TABLE IF NOT EXISTS export_file_chunks (
    job_id  bigint NOT NULL REFERENCES export_jobs (id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- 2. Camera ingesters on several hosts split the configured cameras by leases: a camera is
--    analysed by the ingester holding its unexpired lease; holders renew every few seconds
--    and a dead holder's leases expire and are taken by the others. Members announce
--    themselves (same expiry) so each knows its fair share.
CREATE TABLE IF NOT EXISTS camera_leases (
    camera_id    text PRIMARY KEY,
    owner        text NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS camera_leases_owner ON camera_leases (owner);

CREATE TABLE IF NOT EXISTS camera_ingesters (
    instance     text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
