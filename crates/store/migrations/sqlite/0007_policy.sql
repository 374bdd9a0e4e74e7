-- Wardgate schema 7 (SQLite): numbered access-policy versions, registered devices, and a
-- privileged flag on accounts.

-- Every policy ever proposed, numbered 1, 2, 3, … and never deleted, so a number is never
-- reused. Only the status (and the approval that goes with activation) ever changes.
CREATE TABLE policy_versions (
    number         INTEGER PRIMARY KEY NOT NULL CHECK (number > 0),
    -- The policy document exactly as proposed (TOML).
    source         TEXT NOT NULL,
    author         TEXT NOT NULL,
    reason         TEXT NOT NULL,
    proposed_at_us INTEGER NOT NULL,
    -- The earlier version this one re-proposes (a rollback).
    restores       INTEGER REFERENCES policy_versions (number),
    status         TEXT NOT NULL CHECK (status IN ('proposed', 'active', 'superseded', 'rejected')),
    approved_by    TEXT,
    approved_at_us INTEGER
) STRICT;
-- At most one policy in force.
CREATE UNIQUE INDEX policy_versions_one_active ON policy_versions (status) WHERE status = 'active';

-- Registered workstations, known by the SHA-256 of the secret they present. Retired ones
-- stay (revoked_at_us set), so a name or a secret is never given to another device.
CREATE TABLE devices (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL UNIQUE,
    site             TEXT,
    managed          INTEGER NOT NULL CHECK (managed IN (0, 1)),
    trusted          INTEGER NOT NULL CHECK (trusted IN (0, 1)),
    -- Posture, as last reported.
    disk_encrypted   INTEGER NOT NULL CHECK (disk_encrypted IN (0, 1)),
    patched          INTEGER NOT NULL CHECK (patched IN (0, 1)),
    checked_in_at_us INTEGER,
    secret_digest    BLOB NOT NULL UNIQUE CHECK (length(secret_digest) = 32),
    created_at_us    INTEGER NOT NULL,
    revoked_at_us    INTEGER
) STRICT;

-- Accounts that hold privileged access; to begin with, the administrators.
ALTER TABLE users ADD COLUMN privileged INTEGER NOT NULL DEFAULT 0 CHECK (privileged IN (0, 1));
UPDATE users SET privileged = is_admin;

-- When role assignments end: a JSON object of role name to microseconds since the epoch.
-- Roles without an entry do not expire.
ALTER TABLE users ADD COLUMN role_expiry TEXT NOT NULL DEFAULT '{}';

-- The limits the access policy gave a session when it started; NULL means the
-- installation's defaults (sessions from before policies, or with no policy in force).
ALTER TABLE sessions ADD COLUMN idle_timeout_us INTEGER;
ALTER TABLE sessions ADD COLUMN lifetime_us INTEGER;
