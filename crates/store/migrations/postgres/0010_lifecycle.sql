-- Wardgate schema 10 (postgres): the identity life cycle (issue 8, L1-L3). Independent of
-- schema 9: it touches only factors, users (by reference) and its own tables.

-- L2: a factor's expiry (NULL: none) and who enrolled it (NULL: before this was kept).
ALTER TABLE factors ADD COLUMN expires_at_us BIGINT;
ALTER TABLE factors ADD COLUMN enrolled_by TEXT;
CREATE INDEX factors_expiring ON factors (expires_at_us) WHERE expires_at_us IS NOT NULL;

-- L1: identity proofing records. Kept for good (the evidence of who vouched for whom);
-- evidence_ref is a ticket or case number, never the document or its image.
CREATE TABLE identity_proofing (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id),
    username      TEXT NOT NULL,
    method        TEXT NOT NULL CHECK (method IN ('in_person', 'remote_supervised')),
    document      TEXT NOT NULL,
    evidence_ref  TEXT NOT NULL CHECK (length(evidence_ref) BETWEEN 1 AND 64),
    verified_by   TEXT NOT NULL,
    reason        TEXT,
    proofed_at_us BIGINT NOT NULL
);
CREATE INDEX identity_proofing_user ON identity_proofing (user_id, proofed_at_us);

-- L3: help-desk recovery requests. The link is kept only as its SHA-256 digest. Every
-- decision is a conditional update on status, so it happens once across nodes.
CREATE TABLE recovery_requests (
    id                 TEXT PRIMARY KEY NOT NULL,
    user_id            TEXT NOT NULL REFERENCES users (id),
    username           TEXT NOT NULL,
    opened_by          TEXT NOT NULL,
    reason             TEXT NOT NULL CHECK (reason <> ''),
    opened_at_us       BIGINT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    decided_by         TEXT,
    decided_at_us      BIGINT,
    comment            TEXT,
    link_digest        BYTEA UNIQUE,
    link_expires_at_us BIGINT,
    used_at_us         BIGINT,
    factor_id          TEXT,
    CHECK ((status = 'pending') = (decided_by IS NULL)),
    CHECK ((status IN ('approved', 'used')) = (link_digest IS NOT NULL AND link_expires_at_us IS NOT NULL)),
    CHECK ((status = 'used') = (used_at_us IS NOT NULL))
);
CREATE INDEX recovery_requests_pending ON recovery_requests (opened_at_us) WHERE status = 'pending';
