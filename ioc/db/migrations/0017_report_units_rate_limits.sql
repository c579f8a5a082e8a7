-- Citizen reports (issue 11, second pass): handling units as users, shared rate limits.

-- The handling units (đơn vị xử lý: ids of `units` in categories.yaml) a user belongs to: a
-- member of a report's handling unit sees the reporter's contact (Decree 13/2023), everyone
-- else but admins sees it masked.
ALTER TABLE users ADD COLUMN IF NOT EXISTS units text[] NOT NULL DEFAULT '{}';

-- Fixed-window request counters shared by every server process and host when there is no
-- Redis (IOC_REDIS_URL unset): POST /api/v1/reports per token, public tracking per client
-- address. One row per key, reset when its window changes; rows of old windows are pruned.
CREATE TABLE IF NOT EXISTS rate_limits (
    key           text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    n             integer NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limits_window ON rate_limits (window_start);
