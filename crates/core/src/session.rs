//! Sessions (capability A3): idle timeout, absolute lifetime, revocation.
//!
//! The session id is a 256-bit bearer token; the store keeps only its SHA-256 digest, so a
//! copy of the database does not let anyone ride a session (see [`crate::token`]).

use time::{Duration, OffsetDateTime};

use crate::login::Aal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// HIPAA 164.312(a)(2)(iii), automatic logoff; SP 800-63B-4 §2.2.3 allows at most
    /// 30 minutes of inactivity at AAL2.
    pub idle_timeout: Duration,
    /// SP 800-63B-4: reauthenticate at least every 24 hours at AAL2; a clinical shift is 12.
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle_timeout: Duration::minutes(15), absolute_lifetime: Duration::hours(12) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Public handle for listing and revoking; not the bearer token.
    pub id: String,
    pub id_digest: [u8; 32],
    pub user_id: String,
    pub aal: Aal,
    pub amr: Vec<String>,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub client_ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    /// The login that made this session, to tie its audit records together.
    pub correlation_id: String,
    /// The limits the access policy gave this session at sign-in; `None` means the
    /// installation's defaults.
    pub limits: Option<SessionPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    IdleExpired,
    LifetimeExpired,
    Revoked,
}

impl Session {
    /// A new session and the token to hand to the browser (shown once, never stored).
    pub fn start(
        auth: &crate::login::Authenticated,
        now: OffsetDateTime,
        client_ip: Option<std::net::IpAddr>,
        user_agent: Option<String>,
    ) -> Result<(Session, String), crate::token::RandomError> {
        let token = crate::token::generate()?;
        let s = Session {
            id: crate::token::random_id()?,
            id_digest: crate::token::digest(&token),
            user_id: auth.user_id.clone(),
            aal: auth.aal,
            amr: auth.amr.clone(),
            created_at: now,
            last_seen_at: now,
            revoked_at: None,
            client_ip,
            user_agent,
            correlation_id: auth.correlation_id.clone(),
            limits: None,
        };
        Ok((s, token))
    }

    pub fn state(&self, defaults: &SessionPolicy, now: OffsetDateTime) -> SessionState {
        let policy = self.limits.as_ref().unwrap_or(defaults);
        if self.revoked_at.is_some_and(|r| r <= now) {
            SessionState::Revoked
        } else if now >= self.created_at + policy.absolute_lifetime {
            SessionState::LifetimeExpired
        } else if now >= self.last_seen_at + policy.idle_timeout {
            SessionState::IdleExpired
        } else {
            SessionState::Active
        }
    }

    /// When the session ends if nothing happens: the earlier of the two limits.
    pub fn expires_at(&self, defaults: &SessionPolicy) -> OffsetDateTime {
        let policy = self.limits.as_ref().unwrap_or(defaults);
        (self.last_seen_at + policy.idle_timeout).min(self.created_at + policy.absolute_lifetime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::{FactorUsed, Identified};

    const T0: OffsetDateTime = time::macros::datetime!(2026-11-28 07:00 UTC);

    fn session() -> (Session, String) {
        let auth = Identified { user_id: "u1".into(), correlation_id: "c".into() }
            .first_factor(FactorUsed::Passphrase)
            .unwrap()
            .second_factor(FactorUsed::Totp)
            .unwrap();
        Session::start(&auth, T0, None, None).unwrap()
    }

    #[test]
    fn the_token_is_not_what_is_stored() {
        let (s, token) = session();
        assert_eq!(token.len(), 43);
        assert_ne!(s.id_digest.to_vec(), token.as_bytes().to_vec());
        assert_eq!(s.id_digest, crate::token::digest(&token));
        assert_eq!((s.aal, s.amr.clone()), (Aal::Aal2, vec!["pwd".to_owned(), "otp".into(), "mfa".into()]));
    }

    #[test]
    fn idle_and_absolute_limits_and_revocation() {
        let p = SessionPolicy::default();
        let (mut s, _) = session();
        assert_eq!(s.state(&p, T0 + Duration::minutes(14)), SessionState::Active);
        assert_eq!(s.state(&p, T0 + Duration::minutes(15)), SessionState::IdleExpired);
        // Activity keeps it alive, but never past the absolute lifetime.
        s.last_seen_at = T0 + Duration::hours(11) + Duration::minutes(59);
        assert_eq!(s.state(&p, T0 + Duration::hours(12) - Duration::seconds(1)), SessionState::Active);
        assert_eq!(s.state(&p, T0 + Duration::hours(12)), SessionState::LifetimeExpired);
        assert_eq!(s.expires_at(&p), T0 + Duration::hours(12));
        s.revoked_at = Some(T0 + Duration::hours(1));
        assert_eq!(s.state(&p, T0 + Duration::hours(1)), SessionState::Revoked);
    }
}
