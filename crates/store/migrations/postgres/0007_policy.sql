-- Wardgate schema 7 (PostgreSQL): numbered access-policy versions, registered devices, and
-- a privileged flag on accounts.

-- Every policy ever proposed, numbered 1, 2, 3, … and never deleted, so a number is never
-- reused. Only the status (and the approval that goes with activation) ever changes.
CREATE TABLE policy_versions (
    number         BIGINT PRIMARY KEY CHECK (number > 0),
    -- The policy document exactly as proposed (TOML).
    source         TEXT NOT NULL,
    author         TEXT NOT NULL,
    reason         TEXT NOT NULL,
    proposed_at_us BIGINT NOT NULL,
    -- The earlier version this one re-proposes (a rollback).
    restores       BIGINT REFERENCES policy_versions (number),
    status         TEXT NOT NULL CHECK (status IN ('proposed', 'active', 'superseded', 'rejected')),
    approved_by    TEXT,
    approved_at_us BIGINT
);
-- At most one policy in force.
CREATE UNIQUE INDEX policy_versions_one_active ON policy_versions (status) WHERE status = 'active';

-- Registered workstations, known by the SHA-256 of the secret they present. Retired ones
-- stay (revoked_at_us set), so a name or a secret is never given to another device.
CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    site             TEXT,
    managed          BOOLEAN NOT NULL,
    trusted          BOOLEAN NOT NULL,
    -- Posture, as last reported.
    disk_encrypted   BOOLEAN NOT NULL,
    patched          BOOLEAN NOT NULL,
    checked_in_at_us BIGINT,
    secret_digest    BYTEA NOT NULL UNIQUE CHECK (octet_length(secret_digest) = 32),
    created_at_us    BIGINT NOT NULL,
    revoked_at_us    BIGINT
);

-- Accounts that hold privileged access; to begin with, the administrators.
ALTER TABLE users ADD COLUMN privileged BOOLEAN NOT NULL DEFAULT false;
UPDATE users SET privileged = is_admin;

-- When role assignments end: a JSON object of role name to microseconds since the epoch.
-- Roles without an entry do not expire.
ALTER TABLE users ADD COLUMN role_expiry TEXT NOT NULL DEFAULT '{}';

-- The limits the access policy gave a session when it started; NULL means the
-- installation's defaults (sessions from before policies, or with no policy in force).
ALTER TABLE sessions ADD COLUMN idle_timeout_us BIGINT;
ALTER TABLE sessions ADD COLUMN lifetime_us BIGINT;
