-- Citizen reports (phản ánh hiện trường: hotline 1022, "Góp ý Đà Nẵng"; issue 11) and API tokens.
--
-- Name clash: 0001 created `reports` for the written scheduled export files. The contract now
-- gives `reports` to citizen reports, so the old table becomes `report_files` (only when
-- `reports` still has the old shape and `report_files` does not exist yet: idempotent).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'reports'
                 AND column_name = 'path')
       AND NOT EXISTS (SELECT 1 FROM information_schema.tables
                       WHERE table_schema = current_schema() AND table_name = 'report_files')
    THEN
        ALTER TABLE reports RENAME TO report_files;
        ALTER SEQUENCE IF EXISTS reports_id_seq RENAME TO report_files_id_seq;
        ALTER INDEX IF EXISTS reports_pkey RENAME TO report_files_pkey;
        ALTER INDEX IF EXISTS reports_scheduled_once RENAME TO report_files_scheduled_once;
    END IF;
END $$;

-- One row per report, recomputed from its events (report_events) on every accepted event.
-- `id` is the public tracking code (the sender's id, stable across redelivery).
CREATE TABLE IF NOT EXISTS reports (
    id                  text PRIMARY KEY,
    ward_code           text NOT NULL,
    channel             text,
    category            text NOT NULL,
    summary             text,
    lat                 double precision,
    lon                 double precision,
    address             text,
    unit                text,                  -- handling unit
    contact             text,                  -- personal data (Decree 13/2023): name or phone
    contact_removed_at  timestamptz,           -- set by the retention job
    status              text NOT NULL
                        CHECK (status IN ('received', 'assigned', 'in_progress', 'resolved',
                                          'rejected')),
    received_at         timestamptz NOT NULL,  -- first received (the citizen's report)
    due_at              timestamptz,           -- from the category's limit, in working time
    assigned_at         timestamptz,
    resolved_at         timestamptz,           -- resolved or rejected (the report's end)
    result              text,                  -- the published result
    reopen_count        integer NOT NULL DEFAULT 0,
    last_event_at       timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reports_ward_received ON reports (ward_code, received_at);
CREATE INDEX IF NOT EXISTS reports_open_due ON reports (ward_code, due_at)
    WHERE status IN ('received', 'assigned', 'in_progress');
CREATE INDEX IF NOT EXISTS reports_contact_retention ON reports (resolved_at)
    WHERE contact IS NOT NULL;

-- Append-only history: every accepted event, who sent it and through which door. A redelivered
-- event (same report, event and time) is stored once. `details` never holds the contact.
CREATE TABLE IF NOT EXISTS report_events (
    report_id  text NOT NULL,
    event      text NOT NULL,
    ts         timestamptz NOT NULL,
    ward_code  text NOT NULL,
    door       text NOT NULL CHECK (door IN ('mqtt', 'api', 'import', 'web', 'sim')),
    actor      text,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT report_events_once UNIQUE (report_id, event, ts)
);
-- time-range scans: the scheduler's late-data check (ts), recent activity (stored_at)
CREATE INDEX IF NOT EXISTS report_events_ts_brin ON report_events USING brin (ts);
CREATE INDEX IF NOT EXISTS report_events_stored_brin ON report_events USING brin (stored_at);

-- Tokens of the systems that push reports (POST /api/v1/reports). Only a hash is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
    name          text PRIMARY KEY,
    token_hash    text NOT NULL UNIQUE,
    scope         text NOT NULL CHECK (scope IN ('intake')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

-- Row locks that serialise concurrent writers of one report (several ingesters and API
-- workers may run): unlike advisory locks, row locks do not fill the shared lock table however
-- many reports one transaction holds.
CREATE TABLE IF NOT EXISTS report_locks (
    report_id  text PRIMARY KEY
);
