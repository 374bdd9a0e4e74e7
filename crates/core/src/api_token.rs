//! API tokens for the admin API: bound to a privileged account, scoped, expiring, shown
//! once and stored as a digest.

use time::OffsetDateTime;

/// What a token may do. The string forms are stable (stored, and given on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read users, their factors and sessions.
    UsersRead,
    /// Create, change, disable, unlock and delete users; revoke factors and sessions.
    UsersWrite,
    /// Read registered OpenID Connect clients.
    ClientsRead,
    /// Register, change and delete OpenID Connect clients, rotate their secrets.
    ClientsWrite,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::UsersRead, Scope::UsersWrite, Scope::ClientsRead, Scope::ClientsWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::ClientsRead => "clients:read",
            Scope::ClientsWrite => "clients:write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public handle, for listing and revoking.
    pub id: String,
    pub user_id: String,
    pub digest: [u8; 32],
    pub label: String,
    pub scopes: Vec<Scope>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl ApiToken {
    pub fn allows(&self, scope: Scope, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && self.scopes.contains(&scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_expired_or_revoked_tokens_allow_nothing() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("root"), None);
        let t0 = time::macros::datetime!(2026-11-28 07:00 UTC);
        let t = ApiToken {
            id: "t".into(),
            user_id: "u".into(),
            digest: [0; 32],
            label: "ci".into(),
            scopes: vec![Scope::UsersRead],
            created_at: t0,
            expires_at: t0 + time::Duration::days(1),
            revoked_at: None,
        };
        assert!(t.allows(Scope::UsersRead, t0));
        assert!(!t.allows(Scope::UsersWrite, t0));
        assert!(!t.allows(Scope::UsersRead, t0 + time::Duration::days(1)));
        assert!(!ApiToken { revoked_at: Some(t0), ..t }.allows(Scope::UsersRead, t0));
    }
}
