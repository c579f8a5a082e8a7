-- Export jobs started from the dashboard's /export page (issue 7, item 6): the request, who
-- asked, progress (rows written of the total) and the file written under the var dir. The row
-- is the only state: any server process can report progress or serve the file, and a job left
-- 'running' by a process that died is found by its pid/host or its stale heartbeat.
CREATE TABLE IF NOT EXISTS export_jobs (
    id            bigserial PRIMARY KEY,
    user_name     text NOT NULL,
    request       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'failed', 'expired')),
    rows_done     bigint NOT NULL DEFAULT 0,
    rows_total    bigint,
    error         text,
    file_path     text NOT NULL,
    file_name     text NOT NULL,
    content_type  text NOT NULL,
    size_bytes    bigint,
    host          text,
    pid           integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX IF NOT EXISTS export_jobs_user ON export_jobs (user_name, created_at DESC);
CREATE INDEX IF NOT EXISTS export_jobs_active ON export_jobs (status)
    WHERE status IN ('queued', 'running');
