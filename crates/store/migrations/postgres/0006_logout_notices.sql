-- Wardgate schema 6 (PostgreSQL): back-channel logout notices — an outbox of logout tokens
-- owed to applications, written in the same transaction that revokes a session's grants
-- and delivered (with retries) by a running server.

CREATE TABLE logout_notices (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id         TEXT NOT NULL,
    -- A deleted client is told nothing more.
    client_id          TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    user_id            TEXT,
    correlation_id     TEXT NOT NULL,
    -- Why the session ended.
    reason             TEXT NOT NULL,
    created_at_us      BIGINT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at_us BIGINT NOT NULL,
    -- The lease: the node delivering it, and until when no other node may claim it.
    claimed_by         TEXT,
    claimed_until_us   BIGINT,
    last_error         TEXT,
    delivered_at_us    BIGINT,
    -- Set when the retry schedule ran out.
    gave_up_at_us      BIGINT
);
-- What is still owed, by when: the deliverer's only query.
CREATE INDEX logout_notices_due ON logout_notices (next_attempt_at_us)
    WHERE delivered_at_us IS NULL AND gave_up_at_us IS NULL;
-- What housekeeping deletes.
CREATE INDEX logout_notices_done ON logout_notices (coalesce(delivered_at_us, gave_up_at_us))
    WHERE delivered_at_us IS NOT NULL OR gave_up_at_us IS NOT NULL;
CREATE INDEX logout_notices_client_id ON logout_notices (client_id);

-- Live grants by session: what ends with a session, and how the sweep for sessions that
-- expired unobserved finds the ones that matter. Revoked grants are most of the table.
CREATE INDEX oidc_grants_live_session ON oidc_grants (session_id)
    WHERE revoked_at_us IS NULL AND session_id IS NOT NULL;
-- Housekeeping: revoked grants by age.
CREATE INDEX oidc_grants_revoked_at_us ON oidc_grants (revoked_at_us) WHERE revoked_at_us IS NOT NULL;
CREATE INDEX oidc_refresh_tokens_expires_at_us ON oidc_refresh_tokens (expires_at_us);
