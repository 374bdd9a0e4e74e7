//! The OpenID Connect provider (capability I1): discovery, keys, the authorization code
//! flow with PKCE, tokens, userinfo, introspection and revocation.
//!
//! Protocol errors follow RFC 6749 §5.2 and OIDC Core §3.1.2.6 — JSON `error` objects at
//! the token endpoint, redirects with `error` to a *registered* redirect URI from the
//! authorization endpoint, and a page (never a redirect) when the client or its redirect
//! URI cannot be trusted.

pub mod authorize;
pub mod backchannel;
pub mod consent;
pub mod discovery;
pub mod gate_cache;
pub mod keys;
pub mod logout;
pub mod signer;
pub mod token;
pub mod tokens;

use std::sync::{Arc, RwLock};

use keys::KeySet;
use wardgate_core::oidc::OidcClient;
use wardgate_store::{Store, StoreError};

/// Endpoint paths, relative to the issuer.
pub const AUTHORIZE: &str = "/oidc/authorize";
pub const TOKEN: &str = "/oidc/token";
pub const USERINFO: &str = "/oidc/userinfo";
pub const JWKS: &str = "/oidc/jwks";
pub const REVOKE: &str = "/oidc/revoke";
pub const INTROSPECT: &str = "/oidc/introspect";
pub const LOGOUT: &str = "/oidc/logout";

/// How long an authorization code lives: one redirect and one back-channel call.
pub const CODE_TTL: time::Duration = time::Duration::seconds(60);
/// ID tokens are read once by the client at sign-in.
pub const ID_TOKEN_TTL: time::Duration = time::Duration::minutes(5);
/// How long revoked grants, expired codes and tokens, and delivered or abandoned logout
/// notices stay in the database before housekeeping deletes them: long enough to look into
/// a complaint about an application; the audit log keeps the events themselves.
pub const HISTORY_KEPT: time::Duration = time::Duration::days(30);

pub struct Provider {
    /// The `iss` of every token: the public URL, without a trailing slash.
    pub issuer: String,
    keys: RwLock<Arc<KeySet>>,
    /// `jti`s of client assertions already used, with their expiry (RFC 7523 §3: one use).
    /// Node-local: an assertion replayed to another node within its minutes of life is
    /// caught only by that node's own record.
    used_assertions: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// Which claims each scope releases (standard scopes plus configuration).
    pub scope_claims: std::collections::BTreeMap<String, Vec<String>>,
    /// Registered clients as last read: every token request names one, and they change
    /// rarely. Emptied whenever the store's revision moves (a client added, changed or
    /// deleted here, by the CLI or by another node: within a second, see `node.rs`) and at
    /// once by this node's own client administration. Unknown ids are never kept.
    clients: RwLock<std::collections::HashMap<String, OidcClient>>,
    /// Rung when logout notices were queued here, so that they go out now rather than at
    /// the deliverer's next poll.
    deliveries: tokio::sync::Notify,
    /// Verified gateway tickets and recent identity assertions (see `gate_cache.rs`).
    pub gate_cache: gate_cache::GateCache,
}

impl Provider {
    pub fn new(issuer: String, keys: KeySet, settings: &wardgate_core::settings::OidcSettings) -> Self {
        signer::install();
        Self {
            issuer,
            keys: RwLock::new(Arc::new(keys)),
            used_assertions: Default::default(),
            scope_claims: settings.effective_scope_claims(),
            clients: Default::default(),
            deliveries: tokio::sync::Notify::new(),
            gate_cache: gate_cache::GateCache::default(),
        }
    }

    /// Tells the back-channel deliverer that notices are waiting. A wake while it is busy
    /// is kept for its next round, never lost.
    pub fn wake_deliverer(&self) {
        self.deliveries.notify_one();
    }

    /// Completes at the next [`Provider::wake_deliverer`] (or at once, for one made since
    /// the last wait).
    pub async fn deliveries_waiting(&self) {
        self.deliveries.notified().await;
    }

    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Picks up keys made or retired by `wardgate keys rotate-signing` or another node.
    pub fn replace_keys(&self, keys: KeySet) {
        match self.keys.write() {
            Ok(mut k) => *k = Arc::new(keys),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
        }
        self.gate_cache.clear();
    }

    /// A registered client, from memory when it was read since the last change.
    pub async fn client(&self, store: &dyn Store, id: &str) -> Result<Option<OidcClient>, StoreError> {
        if let Ok(known) = self.clients.read()
            && let Some(c) = known.get(id)
        {
            return Ok(Some(c.clone()));
        }
        let found = store.client(id).await?;
        if let (Some(c), Ok(mut known)) = (&found, self.clients.write()) {
            known.insert(c.id.clone(), c.clone());
        }
        Ok(found)
    }

    /// Called when anything may have changed a client.
    pub fn forget_clients(&self) {
        match self.clients.write() {
            Ok(mut k) => k.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }

    /// Records an assertion's `jti`; false if it was seen before (a replay).
    pub fn first_use_of_assertion(&self, jti: &str, exp: i64, now: i64) -> bool {
        let Ok(mut seen) = self.used_assertions.lock() else { return false };
        seen.retain(|_, e| *e >= now);
        seen.insert(jti.to_owned(), exp).is_none()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}
