-- One row per application id, locked (SELECT ... FOR UPDATE) while its events are replayed.
-- Row locks live in the tuple, not in the shared lock table, so a batch of thousands of
-- application events in one transaction cannot exhaust max_locks_per_transaction (advisory
-- locks did: "out of shared memory" on a 30-day back-fill).
CREATE TABLE IF NOT EXISTS application_locks (
    app_id text PRIMARY KEY
);
