//! Named people and the factors bound to them (HIPAA 164.312(a)(2)(i): unique user
//! identification).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A login name: 1–64 characters of lowercase letters, digits, `.`, `_`, `-`, `@`.
/// Case-folded at the edge so `JSmith` and `jsmith` cannot be two people.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

#[derive(Debug, thiserror::Error)]
#[error("username must be 1-64 characters of a-z, 0-9, '.', '_', '-', '@'")]
pub struct InvalidUsername;

impl Username {
    pub fn parse(s: &str) -> Result<Self, InvalidUsername> {
        let s = s.trim().to_lowercase();
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
        if ok { Ok(Self(s)) } else { Err(InvalidUsername) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidUsername;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable, never reused (random 128-bit hex).
    pub id: String,
    pub username: Username,
    pub display_name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
}

/// The kinds of factor Wardgate knows; the string forms are stable (stored and audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    Passphrase,
    Totp,
    Webauthn,
    RecoveryCodes,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Passphrase => "passphrase",
            FactorKind::Totp => "totp",
            FactorKind::Webauthn => "webauthn",
            FactorKind::RecoveryCodes => "recovery_codes",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Passphrase, Self::Totp, Self::Webauthn, Self::RecoveryCodes].into_iter().find(|k| k.as_str() == s)
    }

    /// The RFC 8176 `amr` value this factor contributes.
    pub fn amr(self) -> &'static str {
        match self {
            FactorKind::Passphrase => "pwd",
            FactorKind::Totp => "otp",
            FactorKind::Webauthn => "hwk",
            FactorKind::RecoveryCodes => "otp",
        }
    }
}

/// A factor bound to a user. `secret` is either a sealed value (see [`crate::secrets`]) or,
/// for passphrases, an Argon2id PHC string — never plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    pub label: String,
    pub secret: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

impl Factor {
    /// The associated-data context a factor's sealed secret is bound to.
    pub fn seal_context(id: &str) -> String {
        format!("factor:{id}:secret")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_refuse_odd_characters() {
        assert_eq!(Username::parse(" JSmith ").unwrap().as_str(), "jsmith");
        assert!(Username::parse("a.b-c_d@example.org").is_ok());
        for bad in ["", "has space", "semi;colon", "ünï", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn factor_kinds_round_trip() {
        for k in [FactorKind::Passphrase, FactorKind::Totp, FactorKind::Webauthn, FactorKind::RecoveryCodes] {
            assert_eq!(FactorKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(FactorKind::parse("sms"), None);
    }
}
