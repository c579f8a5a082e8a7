-- The scheduler looks for application events that arrived for closed periods (late data):
-- a time-range scan of application_events, which grows by ~10^5 rows a day city-wide.
CREATE INDEX IF NOT EXISTS application_events_ts_brin ON application_events USING brin (ts);
CREATE INDEX IF NOT EXISTS application_events_stored_brin
    ON application_events USING brin (stored_at);
