//! Registered relying parties.

use time::OffsetDateTime;

/// A relying party. Confidential clients authenticate with a secret (stored as a SHA-256
/// digest: it is 256 random bits, so a slow hash would add only latency); public clients
/// (apps on a device) cannot keep one and must use PKCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClient {
    /// Public identifier, random.
    pub id: String,
    pub name: String,
    /// Matched exactly (RFC 9700 §4.1.3): no wildcards, no prefixes.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// `None` for public clients.
    pub secret_digest: Option<[u8; 32]>,
    /// Scopes the client may ask for (`openid` always).
    pub scopes: Vec<String>,
    /// Operated by the hospital itself: no consent screen.
    pub first_party: bool,
    /// Where back-channel logout tokens are sent, if anywhere.
    pub backchannel_logout_uri: Option<String>,
    pub access_token_ttl_secs: u32,
    pub refresh_token_ttl_secs: u32,
    pub created_at: OffsetDateTime,
    /// For clients that authenticate with signed assertions (`private_key_jwt`): their
    /// public keys as a JWK Set.
    pub jwks: Option<String>,
    /// The `alg` its ID tokens are signed with: `ES256` (default) or `RS256` for clients
    /// that cannot verify EC signatures.
    pub signing_alg: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("client name must be 1-128 characters without control characters")]
    Name,
    #[error("{0:?} is not an acceptable redirect URI: {1}")]
    RedirectUri(String, &'static str),
    #[error("give at least one redirect URI")]
    NoRedirectUri,
    #[error("scope {0:?} is not a scope name")]
    Scope(String),
}

impl OidcClient {
    /// No secret and no keys: a device app that cannot authenticate, so PKCE is its proof.
    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none() && self.jwks.is_none()
    }

    /// Exact string comparison, as RFC 9700 requires.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }

    pub fn allows_post_logout_redirect(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|u| u == uri)
    }
}

/// Checks a redirect URI for registration: absolute, no fragment (RFC 6749 §3.1.2), and
/// HTTPS except on the loopback interface (RFC 8252 §7.3) or a private-use scheme for
/// native apps (RFC 8252 §7.1, with a dot in it, reverse-domain style).
pub fn check_redirect_uri(uri: &str) -> Result<(), ClientError> {
    let bad = |why| Err(ClientError::RedirectUri(uri.to_owned(), why));
    if uri.contains('#') {
        return bad("a fragment is not allowed");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) || uri.len() > 2000 {
        return bad("spaces, control characters or more than 2000 characters");
    }
    let Some((scheme, rest)) = uri.split_once("://").or_else(|| uri.split_once(":/")) else {
        return bad("not an absolute URI");
    };
    match scheme {
        "https" if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        "http" => {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            // `[::1]:8080`, `[::1]`, `127.0.0.1:8080`, `localhost`: strip a port, not IPv6 colons.
            let host = match authority.rsplit_once(':') {
                Some((h, port)) if !port.contains(']') => h,
                _ => authority,
            };
            if matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
                Ok(())
            } else {
                bad("http is allowed only for loopback addresses; use https")
            }
        }
        s if s.contains('.')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b)) =>
        {
            Ok(())
        }
        _ => bad("use https, loopback http, or a reverse-domain private scheme"),
    }
}

pub fn check_name(name: &str) -> Result<(), ClientError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 128 || n.chars().any(char::is_control) {
        return Err(ClientError::Name);
    }
    Ok(())
}

pub fn check_scope(scope: &str) -> Result<(), ClientError> {
    let ok =
        (1..=64).contains(&scope.len()) && scope.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-/".contains(&b));
    if ok { Ok(()) } else { Err(ClientError::Scope(scope.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_exact_https_or_loopback() {
        for ok in [
            "https://ehr.example.org/callback",
            "http://127.0.0.1:8400/cb",
            "http://localhost/cb",
            "http://[::1]/cb",
            "http://[::1]:8400/cb",
            "org.example.app:/oauth2redirect",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://ehr.example.org/cb#frag",
            "http://ehr.example.org/cb",
            "/relative",
            "javascript:alert(1)",
            "https:///nohost",
            "https://a.example/ with space",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
