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
