//! What the provider remembers between requests: authorization codes, grants and their
//! rotating refresh tokens, the consents people gave, and its signing keys.

use time::OffsetDateTime;

/// A one-time authorization code (RFC 6749 §4.1.2), stored as a digest. It carries what the
/// token endpoint needs to issue tokens without looking at the session again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub digest: [u8; 32],
    pub client_id: String,
    pub user_id: String,
    /// The session that authorized it: `sid` in the ID token, and what logout ends.
    pub session_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub acr: String,
    pub amr: Vec<String>,
    pub auth_time: OffsetDateTime,
    /// The login's correlation id, so the grant's audit records join the session's.
    pub correlation_id: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Set when redeemed; a second redemption revokes the grant it produced (RFC 6749 §4.1.2).
    pub grant_id: Option<String>,
}

/// The result of an authorization: what a client was allowed, for which person and
/// session. Refresh tokens belong to a grant; revoking the grant ends them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    /// `None` for the client-credentials grant (the client acts for itself).
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub scopes: Vec<String>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub auth_time: Option<OffsetDateTime>,
    pub correlation_id: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What a person agreed to share with a (third-party) client: asked once, remembered
/// until revoked. One per person and client; consenting again replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    /// The scopes agreed to, in the order given.
    pub scopes: Vec<String>,
    pub granted_at: OffsetDateTime,
}

/// One refresh token of a grant. Each use replaces it with a new one; presenting a
/// replaced token again means it was stolen (or the client is broken), so the whole grant
/// is revoked (RFC 9700 §4.14.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub digest: [u8; 32],
    pub grant_id: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// When it was exchanged for its successor.
    pub used_at: Option<OffsetDateTime>,
}

/// A token-signing key. The private half is sealed under the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcKey {
    /// The JWK `kid`.
    pub id: String,
    /// `ES256`, `RS256` or `EdDSA`.
    pub algorithm: String,
    /// The public key as a JWK (JSON), served in the JWKS.
    pub public_jwk: String,
    /// PKCS#8 DER, sealed.
    pub private_sealed: String,
    pub created_at: OffsetDateTime,
    /// No longer signs; still published until the tokens it signed have expired.
    pub retired_at: Option<OffsetDateTime>,
}

impl OidcKey {
    pub fn seal_context(id: &str) -> String {
        format!("oidc_key:{id}:private")
    }
}
