-- Security (issue 14): server-side sessions, sign-in throttling with back-off, an audit log of
-- sign-ins and account changes, users' email addresses.

ALTER TABLE users ADD COLUMN IF NOT EXISTS email text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

-- One row per signed-in browser. The cookie carries a random id (signed); only its SHA-256 is
-- stored, so a copy of this table signs nobody in. Removing a user removes their sessions.
CREATE TABLE IF NOT EXISTS sessions (
    id_hash     text PRIMARY KEY,
    user_name   text NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    addr        text,
    user_agent  text
);
CREATE INDEX IF NOT EXISTS sessions_user_name ON sessions (user_name);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);

-- Failed sign-ins per (name, address), and per address over all names (name = ''): the row is
-- locked while a password is checked, so parallel attempts are counted one after the other.
CREATE TABLE IF NOT EXISTS login_throttle (
    name          text NOT NULL,
    addr          text NOT NULL,
    failures      integer NOT NULL DEFAULT 0,
    last_failure  timestamptz,
    blocked_until timestamptz,
    PRIMARY KEY (name, addr)
);

-- Append-only: sign-ins, failures, refusals, sign-outs, account and password changes.
CREATE TABLE IF NOT EXISTS auth_audit (
    id         bigserial PRIMARY KEY,
    ts         timestamptz NOT NULL DEFAULT now(),
    event      text NOT NULL,
    user_name  text,
    actor      text,
    addr       text,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS auth_audit_ts ON auth_audit (ts DESC);
CREATE INDEX IF NOT EXISTS auth_audit_user ON auth_audit (user_name, ts DESC);
