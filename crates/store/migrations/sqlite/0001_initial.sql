-- Wardgate schema 1 (SQLite). Released migrations are never edited: add a new file instead.
-- STRICT tables so that a value of the wrong type is refused instead of silently coerced.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- Bumped by every administrative change; nodes poll it to reload.
CREATE TABLE revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
) STRICT;
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY NOT NULL,
    ts_us      INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    body       TEXT NOT NULL,
    hash       BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE INDEX audit_log_ts_us ON audit_log (ts_us);

-- The head is kept apart from audit_log so that it survives pruning every record, and so
-- that appenders serialise on one row.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Where verification starts: genesis until retention prunes, then the pruning checkpoint.
CREATE TABLE audit_anchor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY NOT NULL,
    hash      BLOB NOT NULL CHECK (length(hash) = 32),
    ts_us     INTEGER NOT NULL,
    node      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64)
) STRICT;

CREATE TABLE audit_marks (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    exported_seq INTEGER NOT NULL,
    verified_seq INTEGER NOT NULL
) STRICT;
INSERT INTO audit_marks (id, exported_seq, verified_seq) VALUES (1, 0, 0);

CREATE TABLE signing_keys (
    id             TEXT PRIMARY KEY NOT NULL,
    purpose        TEXT NOT NULL,
    public_key     BLOB NOT NULL CHECK (length(public_key) = 32),
    private_sealed TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL
) STRICT;
CREATE INDEX signing_keys_purpose ON signing_keys (purpose, created_at_us);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    is_admin      INTEGER NOT NULL CHECK (is_admin IN (0, 1)),
    disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at_us INTEGER NOT NULL
) STRICT;

CREATE TABLE factors (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    kind            TEXT NOT NULL,
    label           TEXT NOT NULL,
    secret          TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL,
    last_used_at_us INTEGER
) STRICT;
CREATE INDEX factors_user_id ON factors (user_id);

-- At most one pending first-administrator link; only its SHA-256 digest is kept.
CREATE TABLE bootstrap (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    digest        BLOB NOT NULL CHECK (length(digest) = 32),
    expires_at_us INTEGER NOT NULL
) STRICT;
