-- Wardgate schema 1 (PostgreSQL). Released migrations are never edited: add a new file instead.
-- Unqualified names: the tables live in the connection's search_path schema.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Bumped by every administrative change; nodes poll it to reload.
CREATE TABLE revision (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    ts_us      BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    body       TEXT NOT NULL,
    hash       BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX audit_log_ts_us ON audit_log (ts_us);

-- The head is kept apart from audit_log so that it survives pruning every record, and so
-- that appenders on every node serialise on one row (SELECT … FOR UPDATE).
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Where verification starts: genesis until retention prunes, then the pruning checkpoint.
CREATE TABLE audit_anchor (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    ts_us     BIGINT NOT NULL,
    node      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BYTEA NOT NULL CHECK (octet_length(signature) = 64)
);

CREATE TABLE audit_marks (
    id           SMALLINT PRIMARY KEY CHECK (id = 1),
    exported_seq BIGINT NOT NULL,
    verified_seq BIGINT NOT NULL
);
INSERT INTO audit_marks (id, exported_seq, verified_seq) VALUES (1, 0, 0);

CREATE TABLE signing_keys (
    id             TEXT PRIMARY KEY,
    purpose        TEXT NOT NULL,
    public_key     BYTEA NOT NULL CHECK (octet_length(public_key) = 32),
    private_sealed TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL
);
CREATE INDEX signing_keys_purpose ON signing_keys (purpose, created_at_us);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL CONSTRAINT users_username_key UNIQUE,
    display_name  TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_at_us BIGINT NOT NULL
);

CREATE TABLE factors (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    kind            TEXT NOT NULL,
    label           TEXT NOT NULL,
    secret          TEXT NOT NULL,
    created_at_us   BIGINT NOT NULL,
    last_used_at_us BIGINT
);
CREATE INDEX factors_user_id ON factors (user_id);

-- At most one pending first-administrator link; only its SHA-256 digest is kept.
CREATE TABLE bootstrap (
    id            SMALLINT PRIMARY KEY CHECK (id = 1),
    digest        BYTEA NOT NULL CHECK (octet_length(digest) = 32),
    expires_at_us BIGINT NOT NULL
);
