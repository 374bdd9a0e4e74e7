//! The HR connector's bearer token: not bound to a person, shown once, kept as a SHA-256
//! digest (machine-generated, 256 bits: a slow hash would add only latency).

use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimToken {
    /// Public handle, for listing and revoking.
    pub id: String,
    pub label: String,
    pub digest: [u8; 32],
    /// The administrator (or `cli`) who created it.
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl ScimToken {
    pub fn usable_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// `active`, `expired` or `revoked`.
    pub fn state_at(&self, now: OffsetDateTime) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if now >= self.expires_at {
            "expired"
        } else {
            "active"
        }
    }

    /// Who the audit log names when this token acts.
    pub fn actor(&self) -> String {
        format!("scim:{}", self.label)
    }
}

/// A label: 1–64 characters of letters, digits, `.`, `_`, `-` (it appears in audit actors).
pub fn valid_label(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_revoke() {
        let t0 = time::macros::datetime!(2026-11-28 07:00 UTC);
        let mut t = ScimToken {
            id: "i".into(),
            label: "workday".into(),
            digest: [0; 32],
            created_by: "cli".into(),
            created_at: t0,
            expires_at: t0 + time::Duration::days(1),
            revoked_at: None,
        };
        assert!(t.usable_at(t0) && t.state_at(t0) == "active");
        assert!(!t.usable_at(t0 + time::Duration::days(1)));
        t.revoked_at = Some(t0);
        assert_eq!(t.state_at(t0), "revoked");
        assert_eq!(t.actor(), "scim:workday");
        assert!(valid_label("entra-prod") && !valid_label("a b") && !valid_label(""));
    }
}
