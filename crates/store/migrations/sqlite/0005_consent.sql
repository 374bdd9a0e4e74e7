-- Wardgate schema 5 (SQLite): what people agreed to share with third-party clients, and
-- the algorithm each client's ID tokens are signed with.

-- 'ES256', or 'RS256' for clients that cannot verify EC signatures.
ALTER TABLE oidc_clients ADD COLUMN signing_alg TEXT NOT NULL DEFAULT 'ES256';

-- One consent per person and client; consenting again replaces the scopes and the time.
-- It goes when its client goes (ON DELETE CASCADE), so a client registered later under
-- the same id inherits nothing.
CREATE TABLE oidc_consents (
    user_id       TEXT NOT NULL REFERENCES users (id),
    client_id     TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    -- JSON array of strings.
    scopes        TEXT NOT NULL,
    granted_at_us INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;
CREATE INDEX oidc_consents_client_id ON oidc_consents (client_id);
