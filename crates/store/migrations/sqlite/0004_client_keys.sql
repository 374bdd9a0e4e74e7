-- Clients that authenticate with signed assertions (private_key_jwt, RFC 7523) instead
-- of a secret: their public keys as a JWK Set (JSON).
ALTER TABLE oidc_clients ADD COLUMN jwks TEXT;
