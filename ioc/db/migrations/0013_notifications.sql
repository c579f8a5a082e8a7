-- Notifications (issue 13): the outbox, per-user preferences, escalations, one-use links.
-- users.email may also be added by 0010 (security): both use IF NOT EXISTS.
ALTER TABLE users ADD COLUMN IF NOT EXISTS email text;

-- The transactional outbox: one row per recipient × channel, written in the transaction of
-- the event that causes it (ioc.notify.outbox.enqueue) and sent by `ioc notify`.
CREATE TABLE IF NOT EXISTS notifications (
    id               bigserial PRIMARY KEY,
    idem_key         text NOT NULL UNIQUE,          -- Idempotency-Key / Message-ID
    kind             text NOT NULL,
    ref_kind         text,                          -- 'alert', 'incident', 'report_file', ...
    ref_id           text,
    ward_code        text,
    severity         text,
    category         text,
    level            integer NOT NULL DEFAULT 0,    -- escalation level (0 = first notice)
    channel          text NOT NULL CHECK (channel IN ('email', 'webhook', 'mqtt')),
    recipient        text NOT NULL,                 -- address, URL or topic
    user_name        text,                          -- the user it is for, when it is one
    lang             text NOT NULL DEFAULT 'vi',
    subject          text NOT NULL,
    body_text        text NOT NULL,
    body_html        text,
    payload          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'dead', 'cancelled',
                                       'digest', 'digested')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    lease_owner      text,
    digest_at        timestamptz,                   -- status digest: when the digest goes
    digest_id        bigint,                        -- status digested: the digest that held it
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    last_error       text
);
CREATE INDEX IF NOT EXISTS notifications_due
    ON notifications (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS notifications_digest
    ON notifications (digest_at) WHERE status = 'digest';
CREATE INDEX IF NOT EXISTS notifications_recipient_sent
    ON notifications (channel, recipient, sent_at) WHERE status = 'sent';
CREATE INDEX IF NOT EXISTS notifications_ref ON notifications (ref_kind, ref_id);
CREATE INDEX IF NOT EXISTS notifications_dead ON notifications (id) WHERE status = 'dead';
CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created_at);

-- Per-user preferences (/settings/notifications); no row = the defaults.
CREATE TABLE IF NOT EXISTS notification_prefs (
    user_name     text PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
    email_on      boolean NOT NULL DEFAULT true,
    webhook_url   text,
    lang          text NOT NULL DEFAULT 'vi' CHECK (lang IN ('vi', 'en')),
    min_severity  text NOT NULL DEFAULT 'info'
                  CHECK (min_severity IN ('info', 'warning', 'critical')),
    muted_kinds   text[] NOT NULL DEFAULT '{}',
    digest_all    boolean NOT NULL DEFAULT false,   -- everything but critical as a digest
    quiet_start   time,                             -- own quiet hours (local time)
    quiet_end     time,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Escalation of unacknowledged alerts: one row per alert, moved along by `ioc notify`.
CREATE TABLE IF NOT EXISTS notification_escalations (
    ref_kind      text NOT NULL,
    ref_id        text NOT NULL,
    ward_code     text,
    severity      text,
    started_at    timestamptz NOT NULL,
    level         integer NOT NULL DEFAULT 0,
    reminders     integer NOT NULL DEFAULT 0,
    last_sent_at  timestamptz NOT NULL,
    next_at       timestamptz NOT NULL,
    stopped_at    timestamptz,
    stop_reason   text,
    params        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (ref_kind, ref_id)
);
CREATE INDEX IF NOT EXISTS notification_escalations_due
    ON notification_escalations (next_at) WHERE stopped_at IS NULL;

-- One-use acknowledgement links: a link's notification id is recorded when it is used.
CREATE TABLE IF NOT EXISTS notification_link_uses (
    notification_id  bigint PRIMARY KEY,
    user_name        text NOT NULL,
    ref_kind         text NOT NULL,
    ref_id           text NOT NULL,
    used_at          timestamptz NOT NULL DEFAULT now(),
    addr             text,
    outcome          text NOT NULL
);
