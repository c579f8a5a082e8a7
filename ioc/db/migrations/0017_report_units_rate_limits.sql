-- Citizen reports (issue 11, second pass): handling units as users, shared rate limits.

-- The handling units (đơn vị xử lý: ids of `units` in categories.yaml) a user belongs to: a
-- member of a report's handling unit sees the reporter's contact (Decree 13/2023), everyone
-- else but admins sees it masked.
ALTER TABLE users ADD COLUMN IF NOT EXISTS units text[] NOT NULL DEFAULT '{}';

-- Rate limits shared by every server process and host when there is no Redis (IOC_REDIS_URL
-- unset): POST /api/v1/reports per token, public tracking per client address. A token bucket
-- kept as its "theoretical arrival time" (GCRA): one row per key, one upsert per request; a
-- row whose tat has passed is a full bucket, the same as no row, and is pruned.
CREATE TABLE IF NOT EXISTS rate_limits (
    key  text PRIMARY KEY,
    tat  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limits_tat ON rate_limits (tat);
