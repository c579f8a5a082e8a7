-- KPIs, alerts, reports and the scheduler (issue 6).

-- Progress of jobs that work "since the last run" (KPI periods, reports): the scheduler
-- catches up from here after downtime.
CREATE TABLE IF NOT EXISTS job_watermarks (
    job         text PRIMARY KEY,
    done_until  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Alert conditions seen but not yet held for the rule's minimum duration (for_s).
CREATE TABLE IF NOT EXISTS alert_pending (
    rule_id    text NOT NULL,
    subject    text NOT NULL,
    ward_code  text,
    since      timestamptz NOT NULL,
    value      double precision,
    PRIMARY KEY (rule_id, subject)
);

-- A scheduled report is written once per period.
CREATE UNIQUE INDEX IF NOT EXISTS reports_scheduled_once ON reports (name, period_from)
    WHERE schedule IS NOT NULL;

-- History and ranks by KPI and period.
CREATE INDEX IF NOT EXISTS kpi_values_kpi_period ON kpi_values (kpi, period, period_start);
CREATE INDEX IF NOT EXISTS alerts_state_opened ON alerts (state, opened_at DESC);
