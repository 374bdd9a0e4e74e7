-- Wardgate schema 8 (PostgreSQL): break-glass access, just-in-time elevation, business
-- associates and their accounts, access review campaigns, and what finding expired and
-- dormant accounts needs.

-- Business associates (V1). Never deleted while an account names them.
CREATE TABLE vendors (
    name          TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    baa_reference TEXT NOT NULL CHECK (baa_reference <> ''),
    -- Calendar days, ISO 8601 (YYYY-MM-DD): the agreement covers baa_effective up to, not
    -- including, baa_expires (both at 00:00 UTC).
    baa_effective TEXT NOT NULL CHECK (length(baa_effective) = 10),
    baa_expires   TEXT NOT NULL CHECK (length(baa_expires) = 10),
    -- A username of the hospital's own staff.
    sponsor       TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    CHECK (baa_expires > baa_effective)
);

-- Accounts: their vendor (NULL for the hospital's staff), their own expiry, the username
-- of their manager, and their last successful sign-in (NULL: never).
ALTER TABLE users ADD COLUMN vendor TEXT REFERENCES vendors (name);
ALTER TABLE users ADD COLUMN account_expires_us BIGINT;
ALTER TABLE users ADD COLUMN manager TEXT;
ALTER TABLE users ADD COLUMN last_login_at_us BIGINT;
CREATE INDEX users_vendor ON users (vendor) WHERE vendor IS NOT NULL;
CREATE INDEX users_account_expires ON users (account_expires_us) WHERE account_expires_us IS NOT NULL;

-- Emergency access (HIPAA 164.312(a)(2)(ii)). Kept for good: the evidence of each use and
-- its review. The review columns are all set, once, or all NULL.
CREATE TABLE break_glass (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    username       TEXT NOT NULL,
    reason_code    TEXT NOT NULL,
    justification  TEXT NOT NULL,
    opened_at_us   BIGINT NOT NULL,
    expires_at_us  BIGINT NOT NULL CHECK (expires_at_us > opened_at_us),
    session_id     TEXT,
    client_ip      TEXT,
    ended_at_us    BIGINT,
    reviewer       TEXT,
    review_outcome TEXT CHECK (review_outcome IN ('justified', 'not_justified', 'needs_follow_up')),
    review_comment TEXT,
    reviewed_at_us BIGINT,
    CHECK ((reviewer IS NULL) = (review_outcome IS NULL) AND (reviewer IS NULL) = (review_comment IS NULL)
        AND (reviewer IS NULL) = (reviewed_at_us IS NULL))
);
CREATE INDEX break_glass_user ON break_glass (user_id, opened_at_us);
CREATE INDEX break_glass_unreviewed ON break_glass (opened_at_us) WHERE reviewed_at_us IS NULL;

-- Just-in-time elevation requests (A4). The decision columns are set with the status;
-- expires_at_us only for an approval.
CREATE TABLE elevations (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    username        TEXT NOT NULL,
    role            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    duration_us     BIGINT NOT NULL CHECK (duration_us > 0),
    requested_at_us BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'cancelled')),
    decided_by      TEXT,
    decided_at_us   BIGINT,
    expires_at_us   BIGINT,
    comment         TEXT,
    CHECK ((status = 'pending') = (decided_at_us IS NULL)),
    CHECK ((status = 'approved') = (expires_at_us IS NOT NULL))
);
CREATE INDEX elevations_pending ON elevations (requested_at_us) WHERE status = 'pending';

-- Access review campaigns (A6) and their items, one per role of one account.
CREATE TABLE review_campaigns (
    id             TEXT PRIMARY KEY,
    -- role:NAME, manager:USERNAME or vendor:NAME
    scope          TEXT NOT NULL,
    reviewer       TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    deadline_us    BIGINT NOT NULL CHECK (deadline_us > created_at_us),
    default_action TEXT NOT NULL CHECK (default_action IN ('revoke', 'escalate')),
    closed_at_us   BIGINT
);

CREATE TABLE review_items (
    id            TEXT PRIMARY KEY,
    campaign_id   TEXT NOT NULL REFERENCES review_campaigns (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    username      TEXT NOT NULL,
    role          TEXT NOT NULL,
    decision      TEXT CHECK (decision IN ('keep', 'revoke')),
    decided_by    TEXT,
    decided_at_us BIGINT,
    comment       TEXT,
    CHECK ((decision IS NULL) = (decided_by IS NULL) AND (decision IS NULL) = (decided_at_us IS NULL)),
    UNIQUE (campaign_id, user_id, role)
);
