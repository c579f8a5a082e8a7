-- Core schema: the tables of the public contract and what IOC needs around them.
-- Time-series tables become hypertables on TimescaleDB (see ioc/db/timescale.py); here they are
-- plain tables, so that this file is the same on both paths.

CREATE TABLE IF NOT EXISTS ioc_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE IF NOT EXISTS wards (
    code      text PRIMARY KEY,
    name      text NOT NULL,
    type      text NOT NULL CHECK (type IN ('phường', 'xã', 'đặc khu')),
    lat       double precision NOT NULL,
    lon       double precision NOT NULL,
    area_km2  double precision NOT NULL,
    population integer
);

CREATE TABLE IF NOT EXISTS devices (
    device_id          text PRIMARY KEY,
    ward_code          text NOT NULL,
    device_type        text NOT NULL,
    status             text NOT NULL DEFAULT 'unknown'
                       CHECK (status IN ('online', 'offline', 'unknown')),
    first_seen         timestamptz NOT NULL DEFAULT now(),
    last_seen          timestamptz,
    status_changed_at  timestamptz
);
CREATE INDEX IF NOT EXISTS devices_ward ON devices (ward_code, device_type);

CREATE TABLE IF NOT EXISTS readings (
    ts         timestamptz NOT NULL,
    ward_code  text NOT NULL,
    device_id  text NOT NULL,
    metric     text NOT NULL,
    value      double precision NOT NULL,
    CONSTRAINT readings_device_metric_ts UNIQUE (device_id, metric, ts)
);
CREATE INDEX IF NOT EXISTS readings_ward_metric_ts ON readings (ward_code, metric, ts DESC);

CREATE TABLE IF NOT EXISTS ingest_rejects (
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text,
    reason       text NOT NULL,
    payload      text
);
CREATE INDEX IF NOT EXISTS ingest_rejects_received ON ingest_rejects (received_at DESC);

CREATE TABLE IF NOT EXISTS applications (
    id              text PRIMARY KEY,
    ward_code       text NOT NULL,
    procedure       text,
    channel         text CHECK (channel IN ('online', 'counter', 'postal')),
    received_at     timestamptz NOT NULL,
    due_at          timestamptz,
    completed_at    timestamptz,
    status          text NOT NULL
                    CHECK (status IN ('received', 'returned', 'completed', 'cancelled')),
    returned_at     timestamptz,
    return_count    integer NOT NULL DEFAULT 0,
    paused_seconds  double precision NOT NULL DEFAULT 0,
    cancelled_at    timestamptz,
    cancel_reason   text,
    last_event_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS applications_ward_received ON applications (ward_code, received_at);
CREATE INDEX IF NOT EXISTS applications_open_due ON applications (ward_code, due_at)
    WHERE status IN ('received', 'returned');

-- Every application event as received (idempotency and audit trail).
CREATE TABLE IF NOT EXISTS application_events (
    app_id     text NOT NULL,
    event      text NOT NULL,
    ts         timestamptz NOT NULL,
    ward_code  text NOT NULL,
    payload    jsonb NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, event, ts)
);

CREATE TABLE IF NOT EXISTS cameras (
    camera_id   text PRIMARY KEY,
    ward_code   text NOT NULL,
    name        text,
    status      text NOT NULL DEFAULT 'unknown'
                CHECK (status IN ('online', 'offline', 'unknown')),
    last_seen   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS camera_metrics (
    ts         timestamptz NOT NULL,
    ward_code  text NOT NULL,
    camera_id  text NOT NULL,
    metric     text NOT NULL,
    value      double precision NOT NULL,
    CONSTRAINT camera_metrics_camera_metric_ts UNIQUE (camera_id, metric, ts)
);
CREATE INDEX IF NOT EXISTS camera_metrics_ward_ts ON camera_metrics (ward_code, ts DESC);

-- Health events (offline, frozen, black, blurred, covered): one row per episode.
CREATE TABLE IF NOT EXISTS camera_events (
    camera_id   text NOT NULL,
    ward_code   text NOT NULL,
    kind        text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    details     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (camera_id, kind, started_at)
);
CREATE INDEX IF NOT EXISTS camera_events_open ON camera_events (camera_id) WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS alerts (
    id               bigserial PRIMARY KEY,
    rule_id          text NOT NULL,
    subject          text NOT NULL,
    ward_code        text,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state            text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    title            text NOT NULL,
    value            double precision,
    opened_at        timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    details          jsonb NOT NULL DEFAULT '{}'
);
-- Deduplication: one alert that is not resolved per rule and subject.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts (rule_id, subject)
    WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_ward_state ON alerts (ward_code, state);

-- KPI values per ward (ward_code) or for the whole city (ward_code = 'city').
CREATE TABLE IF NOT EXISTS kpi_values (
    kpi           text NOT NULL,
    ward_code     text NOT NULL,
    period        text NOT NULL CHECK (period IN ('hour', 'day', 'week', 'month')),
    period_start  timestamptz NOT NULL,
    value         double precision,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kpi, ward_code, period, period_start)
);

CREATE TABLE IF NOT EXISTS users (
    name           text PRIMARY KEY,
    password_hash  text NOT NULL,
    role           text NOT NULL
                   CHECK (role IN ('admin', 'operator', 'ward_leader', 'analyst', 'kiosk')),
    wards          text[] NOT NULL DEFAULT '{}',
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS login_attempts (
    name   text NOT NULL,
    addr   text,
    ts     timestamptz NOT NULL DEFAULT now(),
    ok     boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_name_ts ON login_attempts (name, ts DESC);

CREATE TABLE IF NOT EXISTS reports (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    schedule     text,
    format       text NOT NULL,
    path         text NOT NULL,
    period_from  timestamptz,
    period_to    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Roll-up progress on the plain-PostgreSQL path (TimescaleDB keeps its own).
CREATE TABLE IF NOT EXISTS rollup_watermarks (
    name                text PRIMARY KEY,
    materialized_until  timestamptz NOT NULL
);

-- Liveness of long-running services (ingesters, scheduler), for /healthz.
CREATE TABLE IF NOT EXISTS service_status (
    service     text NOT NULL,
    instance    text NOT NULL,
    status      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    details     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (service, instance)
);
