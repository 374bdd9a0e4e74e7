//! Authentication: the login flow, enrollment, factor checks and sessions.
//!
//! The services here speak in domain terms; `crate::api` (JSON) and `crate::pages` (HTML
//! forms) are thin shells over them, so the web pages and the API cannot drift apart.

pub mod enroll;
pub mod factor_check;
pub mod login;
pub mod reauth;
pub mod session;
pub mod session_cache;
pub mod webauthn;

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;
use wardgate_core::factors::totp::TotpParams;
use wardgate_core::lockout::{Attempts, LockoutPolicy};
use wardgate_core::passphrase::{HashParams, PassphrasePolicy};
use wardgate_core::session::SessionPolicy;
use wardgate_core::settings::AuthSettings;

/// Everything the authentication services need besides the store, built once at start.
pub struct Auth {
    pub settings: AuthSettings,
    pub lockout: LockoutPolicy,
    pub sessions: SessionPolicy,
    pub passphrases: PassphrasePolicy,
    pub hash: HashParams,
    pub totp: TotpParams,
    /// Checked instead of a real hash when the username is unknown, so that the answer
    /// takes as long as for a real account.
    pub decoy_phc: String,
    /// `None` when `public_url` has no domain name (WebAuthn binds credentials to a
    /// domain): the server runs, and security keys and passkeys are refused with a reason.
    rp: Option<::webauthn_rs::Webauthn>,
    /// Failed attempts against usernames that do not exist, so that they are throttled and
    /// "locked" exactly like real ones and guessing cannot tell the two apart. Node-local
    /// and bounded: it only needs to mirror what an attacker can observe from one node.
    unknown: Mutex<HashMap<String, Attempts>>,
    /// Live sessions as this node last read them (see [`session_cache`]).
    pub(crate) sessions_seen: session_cache::SessionCache,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot prepare the passphrase decoy: {0}")]
    Decoy(String),
}

/// Entries kept for unknown usernames; beyond this the oldest-looking half is dropped.
const UNKNOWN_CAP: usize = 100_000;

impl Auth {
    pub fn new(settings: &AuthSettings, base_url: &str) -> Result<Self, AuthSetupError> {
        let hash = settings.hash_params();
        Ok(Self {
            lockout: settings.lockout_policy(),
            sessions: settings.session_policy(),
            passphrases: settings.passphrase_policy(),
            totp: settings.totp_params(),
            decoy_phc: wardgate_core::passphrase::decoy_hash(hash).map_err(|e| AuthSetupError::Decoy(e.to_string()))?,
            rp: match webauthn::relying_party(base_url, settings.webauthn_rp_id.as_deref(), &settings.organization_name)
            {
                Ok(rp) => Some(rp),
                Err(e) => {
                    tracing::warn!(error = %e, "security keys and passkeys are unavailable: set public_url to an https:// URL with a domain name");
                    None
                }
            },
            hash,
            settings: settings.clone(),
            unknown: Mutex::new(HashMap::new()),
            sessions_seen: session_cache::SessionCache::default(),
        })
    }

    pub fn rp(&self) -> Option<&::webauthn_rs::Webauthn> {
        self.rp.as_ref()
    }

    pub(crate) fn unknown_attempts(&self, username: &str) -> Attempts {
        self.unknown.lock().map(|m| m.get(username).copied().unwrap_or_default()).unwrap_or_default()
    }

    pub(crate) fn unknown_failed(&self, username: &str, now: OffsetDateTime) {
        if let Ok(mut m) = self.unknown.lock() {
            if m.len() >= UNKNOWN_CAP {
                let policy = self.lockout;
                m.retain(|_, a| a.gate(&policy, now) != wardgate_core::lockout::Gate::Open);
                if m.len() >= UNKNOWN_CAP {
                    m.clear();
                }
            }
            let a = m.get(username).copied().unwrap_or_default().failed(&self.lockout, now);
            m.insert(username.to_owned(), a);
        }
    }
}
