-- Each device's hourly summary of each metric over the last weeks (hours of closed local
-- days): what a device page shows for ranges of days to a month, instead of averaging up to
-- 45k raw readings per metric on every view. Written with device_daily by the scheduler's
-- roll-up job (ioc/device_rollup.py), which also drops hours older than it keeps.
-- (Cameras' positions, cameras.lat/lon, came with 0015_dayone.sql.)
CREATE TABLE IF NOT EXISTS device_hourly (
    device_id  text NOT NULL,
    metric     text NOT NULL,
    hour       timestamptz NOT NULL,
    n          bigint NOT NULL,
    avg        double precision,
    min        double precision,
    max        double precision,
    PRIMARY KEY (device_id, metric, hour)
);
CREATE INDEX IF NOT EXISTS device_hourly_hour ON device_hourly (hour);
