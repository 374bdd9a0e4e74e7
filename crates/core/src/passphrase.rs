//! Passphrases (capability F1): length-based policy and Argon2id hashing.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

/// NIST SP 800-63B-4 §3.1.1.2: at least 15 characters when the passphrase is the only
/// factor; at least 64 accepted. No composition rules.
pub const MIN_CHARS: usize = 15;
pub const MAX_CHARS: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PassphraseError {
    #[error("passphrase must be at least {MIN_CHARS} characters")]
    TooShort,
    #[error("passphrase must be at most {MAX_CHARS} characters")]
    TooLong,
    #[error("passphrase is too predictable (repeats, sequences or contains the username)")]
    Predictable,
    #[error("passphrase hashing failed")]
    Hash,
}

/// Checks a new passphrase against the length policy and the obvious patterns.
pub fn check_new(passphrase: &str, username: &str) -> Result<(), PassphraseError> {
    let n = passphrase.chars().count();
    if n < MIN_CHARS {
        return Err(PassphraseError::TooShort);
    }
    if n > MAX_CHARS {
        return Err(PassphraseError::TooLong);
    }
    let lower = passphrase.to_lowercase();
    let distinct: std::collections::BTreeSet<char> = lower.chars().collect();
    if distinct.len() < 4 || (!username.is_empty() && lower.contains(&username.to_lowercase())) {
        return Err(PassphraseError::Predictable);
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    // OWASP: Argon2id, m = 19 MiB, t = 2, p = 1. These parameters are valid constants.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An Argon2id PHC string with a fresh random salt.
pub fn hash(passphrase: &str) -> Result<String, PassphraseError> {
    hasher().hash_password(passphrase.as_bytes()).map(|h| h.to_string()).map_err(|_| PassphraseError::Hash)
}

/// Constant-time verification against a stored PHC string.
pub fn verify(passphrase: &str, phc: &str) -> bool {
    PasswordHash::new(phc).map(|h| hasher().verify_password(passphrase.as_bytes(), &h).is_ok()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_length_based() {
        assert_eq!(check_new("short", "u"), Err(PassphraseError::TooShort));
        assert_eq!(check_new("aaaaaaaaaaaaaaaaaaaa", "u"), Err(PassphraseError::Predictable));
        assert_eq!(check_new("my name is jsmith really", "jsmith"), Err(PassphraseError::Predictable));
        assert!(check_new("correct horse battery staple", "jsmith").is_ok());
        assert_eq!(check_new(&"ab cd".repeat(60), "u"), Err(PassphraseError::TooLong));
    }

    #[test]
    fn hash_verifies_only_the_same_passphrase() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!verify("x", "not a phc string"));
    }
}
