//! The login as a state machine: `Identified → FirstFactorPassed → Authenticated`.
//!
//! Each state is its own type and each transition consumes the previous state, so a
//! session can only be made from an `Authenticated`, and an `Authenticated` only from
//! factors that were actually checked. The result carries the RFC 8176 `amr` values and
//! the NIST SP 800-63B assurance level reached.

use serde::{Deserialize, Serialize};

/// One checked factor, as the login saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FactorUsed {
    Passphrase,
    Totp,
    RecoveryCode,
    /// A WebAuthn credential: `user_verified` when the authenticator checked a PIN or
    /// biometric; `hardware_bound` when its key cannot leave the device (a security key,
    /// not a synced passkey).
    Webauthn {
        user_verified: bool,
        hardware_bound: bool,
    },
}

/// What kind of proof a factor is (SP 800-63B §4: something you know / have / are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Know,
    Have,
    /// A device that is itself two factors (possession plus its own PIN or biometric).
    HaveAndVerified,
}

impl FactorUsed {
    fn kind(self) -> Kind {
        match self {
            FactorUsed::Passphrase => Kind::Know,
            FactorUsed::Totp | FactorUsed::RecoveryCode => Kind::Have,
            FactorUsed::Webauthn { user_verified: true, .. } => Kind::HaveAndVerified,
            FactorUsed::Webauthn { user_verified: false, .. } => Kind::Have,
        }
    }

    /// RFC 8176 authentication method references.
    fn amr(self) -> &'static [&'static str] {
        match self {
            FactorUsed::Passphrase => &["pwd"],
            // A recovery code is a look-up secret: a one-time password from a printed list.
            FactorUsed::Totp | FactorUsed::RecoveryCode => &["otp"],
            FactorUsed::Webauthn { user_verified, hardware_bound } => match (user_verified, hardware_bound) {
                (true, true) => &["hwk", "user"],
                (true, false) => &["swk", "user"],
                (false, true) => &["hwk"],
                (false, false) => &["swk"],
            },
        }
    }

    fn phishing_resistant_hardware(self) -> bool {
        matches!(self, FactorUsed::Webauthn { hardware_bound: true, .. })
    }
}

/// NIST SP 800-63B authenticator assurance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aal {
    Aal1,
    Aal2,
    Aal3,
}

impl Aal {
    /// The `acr` value (as used with OpenID Connect).
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
            Aal::Aal3 => "aal3",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("a recovery code or a one-time code cannot be the first factor")]
    NotAFirstFactor,
    #[error("the second factor must be of another kind than the first")]
    SameKind,
    #[error("this login needs a second factor")]
    SecondFactorRequired,
}

/// A username was given and looked up (or, for an unknown name, a decoy was, so that the
/// following steps take the same time and answer the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    pub user_id: String,
    pub correlation_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstFactorPassed {
    pub user_id: String,
    pub correlation_id: String,
    first: FactorUsed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    pub user_id: String,
    pub correlation_id: String,
    pub factors: Vec<FactorUsed>,
    pub amr: Vec<String>,
    pub aal: Aal,
}

impl Identified {
    pub fn first_factor(self, f: FactorUsed) -> Result<FirstFactorPassed, LoginError> {
        // One-time codes prove possession only after someone has claimed an identity with
        // something stronger; alone they would be a six-digit password.
        if matches!(f.kind(), Kind::Have) && !matches!(f, FactorUsed::Webauthn { .. }) {
            return Err(LoginError::NotAFirstFactor);
        }
        Ok(FirstFactorPassed { user_id: self.user_id, correlation_id: self.correlation_id, first: f })
    }
}

impl FirstFactorPassed {
    pub fn first(&self) -> FactorUsed {
        self.first
    }

    /// Whether the first factor alone is multi-factor (a passkey or key with its own PIN
    /// or biometric), so the login may finish without a second.
    pub fn is_multi_factor(&self) -> bool {
        self.first.kind() == Kind::HaveAndVerified
    }

    pub fn second_factor(self, f: FactorUsed) -> Result<Authenticated, LoginError> {
        // Something known with something held, either way round.
        let distinct = matches!(
            (self.first.kind(), f.kind()),
            (Kind::Know, Kind::Have | Kind::HaveAndVerified) | (Kind::Have | Kind::HaveAndVerified, Kind::Know)
        );
        if !distinct {
            return Err(LoginError::SameKind);
        }
        Ok(authenticated(self.user_id, self.correlation_id, vec![self.first, f]))
    }

    /// Finishes with a single factor at AAL1, for a context where the access policy asks no
    /// more (a trusted clinical workstation, say). The session says `aal1`, so anything
    /// that needs more gets a step-up.
    pub fn finish_single_factor(self) -> Authenticated {
        authenticated(self.user_id, self.correlation_id, vec![self.first])
    }

    /// Finishes with the first factor alone: allowed only when it is multi-factor.
    pub fn finish(self) -> Result<Authenticated, LoginError> {
        if !self.is_multi_factor() {
            return Err(LoginError::SecondFactorRequired);
        }
        Ok(authenticated(self.user_id, self.correlation_id, vec![self.first]))
    }
}

fn authenticated(user_id: String, correlation_id: String, factors: Vec<FactorUsed>) -> Authenticated {
    let mut amr: Vec<String> = Vec::new();
    for f in &factors {
        for a in f.amr() {
            if !amr.iter().any(|x| x == a) {
                amr.push((*a).to_owned());
            }
        }
    }
    let multi = factors.len() >= 2 || factors.iter().any(|f| f.kind() == Kind::HaveAndVerified);
    if multi {
        amr.push("mfa".into());
    }
    // AAL3: a hardware-bound, phishing-resistant key, plus verification of the person
    // (the key's own PIN or biometric, or a passphrase). AAL2: any two kinds.
    let aal = if multi && factors.iter().any(|f| f.phishing_resistant_hardware()) {
        Aal::Aal3
    } else if multi {
        Aal::Aal2
    } else {
        Aal::Aal1
    };
    Authenticated { user_id, correlation_id, factors, amr, aal }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identified {
        Identified { user_id: "u1".into(), correlation_id: "c1".into() }
    }
    const KEY_UV: FactorUsed = FactorUsed::Webauthn { user_verified: true, hardware_bound: true };
    const KEY: FactorUsed = FactorUsed::Webauthn { user_verified: false, hardware_bound: true };
    const SYNCED_PASSKEY: FactorUsed = FactorUsed::Webauthn { user_verified: true, hardware_bound: false };

    #[test]
    fn passphrase_and_totp_reach_aal2() {
        let a = id().first_factor(FactorUsed::Passphrase).unwrap().second_factor(FactorUsed::Totp).unwrap();
        assert_eq!(a.amr, ["pwd", "otp", "mfa"]);
        assert_eq!(a.aal, Aal::Aal2);
        let a = id().first_factor(FactorUsed::Passphrase).unwrap().second_factor(FactorUsed::RecoveryCode).unwrap();
        assert_eq!((a.amr, a.aal), (vec!["pwd".to_owned(), "otp".into(), "mfa".into()], Aal::Aal2));
    }

    #[test]
    fn hardware_keys_reach_aal3_synced_passkeys_aal2() {
        let a = id().first_factor(KEY_UV).unwrap().finish().unwrap();
        assert_eq!((a.amr.clone(), a.aal), (vec!["hwk".to_owned(), "user".into(), "mfa".into()], Aal::Aal3));
        let a = id().first_factor(FactorUsed::Passphrase).unwrap().second_factor(KEY).unwrap();
        assert_eq!((a.amr.clone(), a.aal), (vec!["pwd".to_owned(), "hwk".into(), "mfa".into()], Aal::Aal3));
        let a = id().first_factor(SYNCED_PASSKEY).unwrap().finish().unwrap();
        assert_eq!((a.amr.clone(), a.aal), (vec!["swk".to_owned(), "user".into(), "mfa".into()], Aal::Aal2));
    }

    #[test]
    fn single_factor_logins_need_a_second() {
        let first = id().first_factor(FactorUsed::Passphrase).unwrap();
        assert!(!first.is_multi_factor());
        assert_eq!(first.finish(), Err(LoginError::SecondFactorRequired));
        assert_eq!(id().first_factor(KEY).unwrap().finish(), Err(LoginError::SecondFactorRequired));
    }

    #[test]
    fn codes_are_never_first_and_two_of_a_kind_are_not_two_factors() {
        assert_eq!(id().first_factor(FactorUsed::Totp), Err(LoginError::NotAFirstFactor));
        assert_eq!(id().first_factor(FactorUsed::RecoveryCode), Err(LoginError::NotAFirstFactor));
        let first = id().first_factor(FactorUsed::Passphrase).unwrap();
        assert_eq!(first.second_factor(FactorUsed::Passphrase), Err(LoginError::SameKind));
        let first = id().first_factor(KEY).unwrap();
        assert_eq!(first.second_factor(FactorUsed::Totp), Err(LoginError::SameKind));
    }
}
