-- Day one: runs asked for by the demo or a page (a KPI never computed), positions of devices
-- and cameras (pins on the ward map).

-- One row per job: when someone last asked for a run now, and when a run began that served
-- every request made before it (a request is pending while requested_at > served_at).
CREATE TABLE IF NOT EXISTS job_requests (
    job           text PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    reason        text,
    served_at     timestamptz
);

ALTER TABLE devices ADD COLUMN IF NOT EXISTS lat double precision;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS lon double precision;
ALTER TABLE cameras ADD COLUMN IF NOT EXISTS lat double precision;
ALTER TABLE cameras ADD COLUMN IF NOT EXISTS lon double precision;

-- Each device's status changes (online / offline / unknown), whoever writes them (ingester,
-- offline detection): the device page's status history.
CREATE TABLE IF NOT EXISTS device_status_events (
    device_id  text NOT NULL,
    ts         timestamptz NOT NULL,
    status     text NOT NULL,
    PRIMARY KEY (device_id, ts, status)
);

CREATE OR REPLACE FUNCTION ioc_device_status_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO device_status_events (device_id, ts, status)
        VALUES (NEW.device_id, COALESCE(NEW.status_changed_at, NEW.last_seen, now()), NEW.status)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS devices_status_event ON devices;
CREATE TRIGGER devices_status_event AFTER INSERT OR UPDATE OF status ON devices
    FOR EACH ROW EXECUTE FUNCTION ioc_device_status_event();

-- Each device's daily summary of each metric (local days, closed days only): what a device
-- page shows for ranges of months (a year of raw readings is ~500k rows per metric).
-- Written by the scheduler's roll-up job (ioc/device_rollup.py).
CREATE TABLE IF NOT EXISTS device_daily (
    device_id  text NOT NULL,
    metric     text NOT NULL,
    day        date NOT NULL,
    n          bigint NOT NULL,
    avg        double precision,
    min        double precision,
    max        double precision,
    PRIMARY KEY (device_id, metric, day)
);
