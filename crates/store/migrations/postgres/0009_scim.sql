-- Wardgate schema 9 (PostgreSQL): provisioning from the HR system over SCIM 2.0.

-- What the connector sent for an account beyond what `users` holds (names, title,
-- department, manager, every address), as JSON. The account row stays authoritative for
-- what Wardgate enforces.
CREATE TABLE scim_users (
    user_id       TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    attributes    TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

-- Groups as HR knows them; `[scim.group_roles]` turns membership into roles. Members are a
-- JSON array of user ids: a group is read and written whole, and a hospital's largest
-- holds a few thousand people.
CREATE TABLE scim_groups (
    id            TEXT PRIMARY KEY NOT NULL,
    display_name  TEXT NOT NULL,
    -- lower(display_name): names are unique regardless of case.
    display_key   TEXT NOT NULL UNIQUE,
    external_id   TEXT,
    members       TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

-- The connector's bearer tokens, as SHA-256 digests.
CREATE TABLE scim_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    label         TEXT NOT NULL,
    digest        BYTEA NOT NULL UNIQUE,
    created_by    TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT
);
