//! Registering OpenID Connect clients: shared by `wardgate client …` and the admin API.
//! Every change is audited with the acting operator or administrator.

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::oidc::OidcClient;
use wardgate_core::oidc::client::{ClientError, check_name, check_redirect_uri, check_scope};
use wardgate_core::secrets::Keyring;
use wardgate_core::token;
use wardgate_store::{Store, StoreError};

/// Access tokens live 5 minutes unless a client needs otherwise: short enough that
/// revocation by expiry is quick, long enough for a page of API calls.
pub const DEFAULT_ACCESS_TTL_SECS: u32 = 300;
/// Refresh tokens: one 12-hour shift.
pub const DEFAULT_REFRESH_TTL_SECS: u32 = 12 * 3600;

#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (a device app) gets no secret and must use PKCE.
    pub public: bool,
    pub scopes: Vec<String>,
    /// Not operated by the hospital: the person is asked to consent before it gets anything.
    pub third_party: bool,
    pub backchannel_logout_uri: Option<String>,
    pub access_token_ttl_secs: Option<u32>,
    pub refresh_token_ttl_secs: Option<u32>,
    /// Public keys (a JWK Set) for a client that authenticates with signed assertions
    /// (`private_key_jwt`) instead of a secret; it then gets no secret.
    pub jwks: Option<String>,
    /// The `alg` its tokens are signed with: `ES256` (default), `RS256` for relying parties
    /// that only verify RSA, or `EdDSA`.
    pub signing_alg: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error(transparent)]
    Invalid(#[from] ClientError),
    #[error("no client with id {0}")]
    Unknown(String),
    #[error("a public client has no secret to rotate")]
    Public,
    #[error("lifetimes: access tokens 60-3600 s, refresh tokens 300-2592000 s")]
    Lifetime,
    #[error("the client's keys must be a JWK Set with at least one usable public key")]
    Jwks,
    #[error("signing algorithm {0:?}: choose ES256, RS256 or EdDSA")]
    SigningAlg(String),
    #[error(transparent)]
    Key(#[from] crate::oidc::keys::KeyError),
    #[error("system random number generator failed")]
    Random,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Clients<'a> {
    store: &'a dyn Store,
    actor: &'a str,
    now: OffsetDateTime,
    /// To make the signing key a client's algorithm needs, when it registers.
    keyring: Option<&'a Keyring>,
}

fn event(now: OffsetDateTime, actor: &str, t: &'static str, c: &OidcClient) -> AuditEvent {
    AuditEvent::known(now, t, Outcome::Success)
        .actor(actor.to_owned())
        .detail("client_id", c.id.clone())
        .detail("name", c.name.clone())
}

impl<'a> Clients<'a> {
    pub fn new(store: &'a dyn Store, actor: &'a str, now: OffsetDateTime) -> Self {
        Self { store, actor, now, keyring: None }
    }

    /// Registering a client that needs an RS256 or EdDSA key makes that key at once, so it
    /// is in every node's JWKS before the first token it signs.
    pub fn with_keyring(self, keyring: &'a Keyring) -> Self {
        Self { keyring: Some(keyring), ..self }
    }

    /// Registers a client; returns it and, for a confidential one, its secret (shown once;
    /// only its SHA-256 digest is kept).
    pub async fn add(&self, new: NewClient) -> Result<(OidcClient, Option<String>), ClientsError> {
        check_name(&new.name)?;
        if new.redirect_uris.is_empty() {
            return Err(ClientError::NoRedirectUri.into());
        }
        for u in new.redirect_uris.iter().chain(&new.post_logout_redirect_uris) {
            check_redirect_uri(u)?;
        }
        if let Some(u) = &new.backchannel_logout_uri {
            check_redirect_uri(u)?;
        }
        let mut scopes = vec!["openid".to_owned()];
        for s in &new.scopes {
            check_scope(s)?;
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let access = new.access_token_ttl_secs.unwrap_or(DEFAULT_ACCESS_TTL_SECS);
        let refresh = new.refresh_token_ttl_secs.unwrap_or(DEFAULT_REFRESH_TTL_SECS);
        if !(60..=3600).contains(&access) || !(300..=30 * 86400).contains(&refresh) {
            return Err(ClientsError::Lifetime);
        }
        if let Some(j) = &new.jwks {
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(j).map_err(|_| ClientsError::Jwks)?;
            if set.keys.is_empty() || set.keys.iter().any(|k| jsonwebtoken::DecodingKey::from_jwk(k).is_err()) {
                return Err(ClientsError::Jwks);
            }
        }
        let alg = match new.signing_alg.as_deref() {
            None => jsonwebtoken::Algorithm::ES256,
            Some(name) => {
                crate::oidc::keys::parse_alg(name).ok_or_else(|| ClientsError::SigningAlg(name.to_owned()))?
            }
        };
        let secret = if new.public || new.jwks.is_some() {
            None
        } else {
            Some(token::generate().map_err(|_| ClientsError::Random)?)
        };
        let client = OidcClient {
            id: token::random_id().map_err(|_| ClientsError::Random)?,
            name: new.name.trim().to_owned(),
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            secret_digest: secret.as_deref().map(token::digest),
            scopes,
            first_party: !new.third_party,
            backchannel_logout_uri: new.backchannel_logout_uri,
            access_token_ttl_secs: access,
            refresh_token_ttl_secs: refresh,
            created_at: self.now,
            jwks: new.jwks,
            signing_alg: crate::oidc::keys::alg_name(alg).into(),
        };
        let e = event(self.now, self.actor, types::OIDC_CLIENT_CREATED, &client)
            .detail("public", client.is_public())
            .detail("redirect_uris", client.redirect_uris.clone());
        if let Some(ring) = self.keyring {
            crate::oidc::keys::ensure(self.store, ring, alg, self.now, self.actor).await?;
        }
        self.store.create_client(&client, &e).await?;
        Ok((client, secret))
    }

    pub async fn list(&self) -> Result<Vec<OidcClient>, ClientsError> {
        Ok(self.store.list_clients().await?)
    }

    pub async fn show(&self, id: &str) -> Result<OidcClient, ClientsError> {
        self.store.client(id).await?.ok_or_else(|| ClientsError::Unknown(id.to_owned()))
    }

    /// A new secret; the old one stops working at once.
    pub async fn rotate_secret(&self, id: &str) -> Result<(OidcClient, String), ClientsError> {
        let mut c = self.show(id).await?;
        if c.is_public() {
            return Err(ClientsError::Public);
        }
        let secret = token::generate().map_err(|_| ClientsError::Random)?;
        c.secret_digest = Some(token::digest(&secret));
        let e = event(self.now, self.actor, types::OIDC_CLIENT_UPDATED, &c).reason("secret rotated");
        self.store.update_client(&c, &e).await?;
        Ok((c, secret))
    }

    /// Removes the client and everything it was granted.
    pub async fn delete(&self, id: &str) -> Result<OidcClient, ClientsError> {
        let c = self.show(id).await?;
        let e = event(self.now, self.actor, types::OIDC_CLIENT_DELETED, &c);
        match self.store.delete_client(id, &e).await {
            Ok(()) => Ok(c),
            Err(StoreError::NotFound) => Err(ClientsError::Unknown(id.to_owned())),
            Err(e) => Err(e.into()),
        }
    }
}

/// A client as shown to operators: never the secret or its digest.
pub fn view(c: &OidcClient) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id,
        "name": c.name,
        "type": if c.is_public() { "public" } else { "confidential" },
        "third_party": !c.first_party,
        "token_endpoint_auth_method": match (&c.secret_digest, &c.jwks) {
            (_, Some(_)) => "private_key_jwt",
            (Some(_), None) => "client_secret_basic",
            (None, None) => "none",
        },
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "scopes": c.scopes,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "access_token_ttl_secs": c.access_token_ttl_secs,
        "refresh_token_ttl_secs": c.refresh_token_ttl_secs,
        "signing_alg": c.signing_alg,
        "created_at": wardgate_core::audit::record::format_ts(c.created_at),
    })
}
