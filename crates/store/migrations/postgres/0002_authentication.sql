-- Wardgate schema 2 (PostgreSQL): accounts with a life cycle, factor counters, enrollment
-- links, flows between login steps, sessions and API tokens.

ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN employee_id TEXT;
-- JSON array of role names, sorted; `is_admin` is kept in step with it (role "admin").
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('invited', 'active', 'disabled', 'terminated'));
ALTER TABLE users ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_failure_at_us BIGINT;
ALTER TABLE users ADD COLUMN locked_until_us BIGINT;
UPDATE users SET roles = '["admin"]' WHERE is_admin;
UPDATE users SET status = 'disabled' WHERE disabled;
ALTER TABLE users DROP COLUMN disabled;

ALTER TABLE factors ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
ALTER TABLE factors ADD COLUMN counter BIGINT;
ALTER TABLE factors ADD COLUMN credential_id TEXT;
CREATE UNIQUE INDEX factors_credential_id ON factors (credential_id) WHERE credential_id IS NOT NULL;

CREATE TABLE enrollment_links (
    user_id       TEXT PRIMARY KEY REFERENCES users (id),
    digest        BYTEA NOT NULL UNIQUE CHECK (octet_length(digest) = 32),
    expires_at_us BIGINT NOT NULL
);

CREATE TABLE flows (
    digest        BYTEA PRIMARY KEY CHECK (octet_length(digest) = 32),
    kind          TEXT NOT NULL,
    user_id       TEXT,
    state         TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL
);
CREATE INDEX flows_expires_at_us ON flows (expires_at_us);

CREATE TABLE sessions (
    digest          BYTEA PRIMARY KEY CHECK (octet_length(digest) = 32),
    id              TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL REFERENCES users (id),
    aal             TEXT NOT NULL,
    amr             TEXT NOT NULL,
    correlation_id  TEXT NOT NULL,
    client_ip       TEXT,
    user_agent      TEXT,
    created_at_us   BIGINT NOT NULL,
    last_seen_at_us BIGINT NOT NULL,
    revoked_at_us   BIGINT
);
CREATE INDEX sessions_user_id ON sessions (user_id, created_at_us);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    digest        BYTEA NOT NULL UNIQUE CHECK (octet_length(digest) = 32),
    label         TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT
);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);
