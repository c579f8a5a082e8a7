-- Incidents (ioc/incidents/): what operators work on. A citizen report, an alert or an
-- operator opens one; it is assigned to a ward or a city department, worked through its
-- category's SOP steps and closed, with response and resolution clocks (working time) and an
-- escalation chain. Every change is a row of incident_events (append-only, see the trigger).

CREATE TABLE IF NOT EXISTS incidents (
    id                   bigserial PRIMARY KEY,
    ward_code            text,                       -- NULL: city-wide
    category             text NOT NULL,
    severity             text NOT NULL DEFAULT 'warning'
                         CHECK (severity IN ('info', 'warning', 'critical')),
    status               text NOT NULL DEFAULT 'new'
                         CHECK (status IN ('new', 'assigned', 'in_progress', 'resolved',
                                           'closed', 'rejected')),
    title                text NOT NULL,
    description          text,
    lat                  double precision,
    lon                  double precision,
    origin               text NOT NULL DEFAULT 'manual'
                         CHECK (origin IN ('manual', 'report', 'alert', 'rule', 'split')),
    auto_rule            text,                       -- the alert rule that opened it (origin rule)
    assignee             text,                       -- a ward code or a department id
    assignee_kind        text CHECK (assignee_kind IN ('ward', 'department')),
    opened_at            timestamptz NOT NULL,
    opened_by            text NOT NULL,
    assigned_at          timestamptz,
    acknowledged_at      timestamptz,                -- first acknowledgement (response)
    acknowledged_by      text,
    last_ack_at          timestamptz,                -- latest acknowledgement (stops escalation)
    started_at           timestamptz,
    resolved_at          timestamptz,
    resolution           text,
    closed_at            timestamptz,
    rejected_at          timestamptz,
    reject_reason        text,
    merged_into          bigint REFERENCES incidents (id),
    clock_start          timestamptz NOT NULL,       -- opened, or reopened
    response_due_at      timestamptz NOT NULL,
    response_warn_at     timestamptz NOT NULL,
    due_at               timestamptz NOT NULL,       -- resolution due
    warn_at              timestamptz NOT NULL,
    response_warned_at   timestamptz,
    response_breached_at timestamptz,
    warned_at            timestamptz,
    breached_at          timestamptz,
    escalation_level     integer NOT NULL DEFAULT 0,
    escalated_at         timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- an automatic rule opens one incident per ward while that incident is open
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_auto_open ON incidents (auto_rule, ward_code)
    WHERE auto_rule IS NOT NULL AND status IN ('new', 'assigned', 'in_progress');
CREATE INDEX IF NOT EXISTS incidents_status_due ON incidents (status, due_at);
CREATE INDEX IF NOT EXISTS incidents_ward_status ON incidents (ward_code, status, due_at);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at);
CREATE INDEX IF NOT EXISTS incidents_resolved ON incidents (resolved_at)
    WHERE resolved_at IS NOT NULL;

-- Reports and alerts linked to an incident; a ref belongs to one incident at a time.
CREATE TABLE IF NOT EXISTS incident_links (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id),
    kind         text NOT NULL CHECK (kind IN ('report', 'alert')),
    ref          text NOT NULL,
    linked_at    timestamptz NOT NULL,
    linked_by    text NOT NULL,
    unlinked_at  timestamptz,
    unlinked_by  text
);
CREATE UNIQUE INDEX IF NOT EXISTS incident_links_active ON incident_links (kind, ref)
    WHERE unlinked_at IS NULL;
CREATE INDEX IF NOT EXISTS incident_links_incident ON incident_links (incident_id);

-- The audit trail: who did what, when, from where. Append-only (trigger below).
CREATE TABLE IF NOT EXISTS incident_events (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id),
    ts           timestamptz NOT NULL,
    actor        text NOT NULL,
    source       text NOT NULL
                 CHECK (source IN ('web', 'api', 'cli', 'scheduler', 'rule', 'link', 'sim')),
    action       text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS incident_events_incident ON incident_events (incident_id, ts);
CREATE INDEX IF NOT EXISTS incident_events_action_ts ON incident_events (action, ts);

CREATE OR REPLACE FUNCTION incident_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'incident_events is append-only (% refused)', TG_OP;
END;
$$;
DROP TRIGGER IF EXISTS incident_events_no_change ON incident_events;
CREATE TRIGGER incident_events_no_change BEFORE UPDATE OR DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_events_append_only();

-- SOP steps ticked (the step ids come from the category's `sop` in categories.yaml).
CREATE TABLE IF NOT EXISTS incident_steps (
    incident_id  bigint NOT NULL REFERENCES incidents (id),
    step_id      text NOT NULL,
    done_by      text NOT NULL,
    done_at      timestamptz NOT NULL,
    note         text,
    photo_ref    text,
    PRIMARY KEY (incident_id, step_id)
);

-- API tokens (migration 0011) get the scope of the incidents API for field systems.
DO $$
BEGIN
    IF to_regclass('api_tokens') IS NOT NULL THEN
        ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_scope_check;
        ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check
            CHECK (scope IN ('intake', 'incidents'));
    END IF;
END
$$;
