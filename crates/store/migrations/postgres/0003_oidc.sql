-- Wardgate schema 3 (PostgreSQL): the OpenID Connect provider — relying parties, authorization
-- codes, grants with their rotating refresh tokens, and token-signing keys.
--
-- Codes, grants and refresh tokens go when their client goes (ON DELETE CASCADE): the
-- database follows the references, so a token minted while the client is being deleted
-- cannot be left behind.

CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    -- JSON arrays of strings, compared exactly.
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    -- SHA-256 of the secret; NULL for a public client.
    secret_digest             BYTEA CHECK (octet_length(secret_digest) = 32),
    scopes                    TEXT NOT NULL,
    first_party               BOOLEAN NOT NULL,
    backchannel_logout_uri    TEXT,
    access_token_ttl_secs     BIGINT NOT NULL CHECK (access_token_ttl_secs >= 0),
    refresh_token_ttl_secs    BIGINT NOT NULL CHECK (refresh_token_ttl_secs >= 0),
    created_at_us             BIGINT NOT NULL
);

CREATE TABLE oidc_codes (
    digest         BYTEA PRIMARY KEY CHECK (octet_length(digest) = 32),
    client_id      TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    scopes         TEXT NOT NULL,
    acr            TEXT NOT NULL,
    amr            TEXT NOT NULL,
    auth_time_us   BIGINT NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    expires_at_us  BIGINT NOT NULL,
    -- Set when redeemed: the grant a replay of the code revokes. Kept after expiry so that
    -- a late replay is still recognised as one.
    grant_id       TEXT
);
CREATE INDEX oidc_codes_expires_at_us ON oidc_codes (expires_at_us);
CREATE INDEX oidc_codes_client_id ON oidc_codes (client_id);

CREATE TABLE oidc_grants (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    -- NULL for the client-credentials grant.
    user_id        TEXT,
    session_id     TEXT,
    scopes         TEXT NOT NULL,
    acr            TEXT,
    amr            TEXT NOT NULL,
    auth_time_us   BIGINT,
    correlation_id TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    revoked_at_us  BIGINT
);
CREATE INDEX oidc_grants_session_id ON oidc_grants (session_id);
CREATE INDEX oidc_grants_client_id ON oidc_grants (client_id);

CREATE TABLE oidc_refresh_tokens (
    digest        BYTEA PRIMARY KEY CHECK (octet_length(digest) = 32),
    grant_id      TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    -- Set when exchanged for its successor; presenting it again is reuse.
    used_at_us    BIGINT
);
CREATE INDEX oidc_refresh_tokens_grant_id ON oidc_refresh_tokens (grant_id);

CREATE TABLE oidc_keys (
    id             TEXT PRIMARY KEY,
    algorithm      TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    retired_at_us  BIGINT
);
