//! Passphrases (capability F1): NIST SP 800-63B-4 rules and Argon2id hashing.
//!
//! Length is what counts: no composition rules, no forced rotation. New passphrases are
//! checked against zxcvbn's dictionaries of common and breached passwords and against the
//! words of the context (username, display name, organisation). Text is normalised to
//! NFKC before it is checked or hashed, so the same passphrase typed on different keyboards
//! or input methods is the same passphrase (SP 800-63B-4 §3.1.1.2).

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use unicode_normalization::UnicodeNormalization as _;

/// Length and strength rules; the defaults follow NIST SP 800-63B-4 §3.1.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassphrasePolicy {
    /// When another factor is always required as well.
    pub min_chars: usize,
    /// When the passphrase may be the only factor (the first administrator, before MFA).
    pub min_chars_single_factor: usize,
    /// At least 64 must be accepted.
    pub max_chars: usize,
    /// zxcvbn score (0-4) a new passphrase must reach.
    pub min_score: u8,
}

impl Default for PassphrasePolicy {
    fn default() -> Self {
        Self { min_chars: 12, min_chars_single_factor: 15, max_chars: 256, min_score: 3 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PassphraseError {
    #[error("passphrase must be at least {0} characters")]
    TooShort(usize),
    #[error("passphrase must be at most {0} characters")]
    TooLong(usize),
    #[error("passphrase contains control characters")]
    NotPrintable,
    #[error("passphrase is too easy to guess (a common password, a pattern, or your own name); {0}")]
    Predictable(String),
    #[error("passphrase hashing failed")]
    Hash,
}

/// NFKC, the form every passphrase is checked and hashed in.
pub fn normalize(passphrase: &str) -> String {
    passphrase.nfkc().collect()
}

/// Checks a new passphrase. `single_factor` selects the longer minimum; `context` holds
/// words a guesser would try first (username, display name, organisation name).
pub fn check_new(
    policy: &PassphrasePolicy,
    passphrase: &str,
    single_factor: bool,
    context: &[&str],
) -> Result<(), PassphraseError> {
    let p = normalize(passphrase);
    let n = p.chars().count();
    let min = if single_factor { policy.min_chars_single_factor } else { policy.min_chars };
    if n < min {
        return Err(PassphraseError::TooShort(min));
    }
    if n > policy.max_chars {
        return Err(PassphraseError::TooLong(policy.max_chars));
    }
    if p.chars().any(char::is_control) {
        return Err(PassphraseError::NotPrintable);
    }
    // Context words are matched whole and by their parts ("Rita Smith" → "rita", "smith").
    let mut words: Vec<String> = Vec::new();
    for c in context {
        let c = normalize(c).to_lowercase();
        words.extend(c.split(|ch: char| !ch.is_alphanumeric()).filter(|w| w.chars().count() >= 3).map(String::from));
        words.push(c);
    }
    let inputs: Vec<&str> = words.iter().map(String::as_str).collect();
    let lower = p.to_lowercase();
    let contains_context = inputs.iter().any(|w| w.chars().count() >= 4 && lower.contains(w));
    let estimate = zxcvbn::zxcvbn(&p, &inputs);
    if contains_context || u8::from(estimate.score()) < policy.min_score {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_else(|| "try a few unrelated words".into());
        return Err(PassphraseError::Predictable(hint));
    }
    Ok(())
}

/// Argon2id cost. OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

fn hasher(p: HashParams) -> Result<Argon2<'static>, PassphraseError> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|_| PassphraseError::Hash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// An Argon2id PHC string with a fresh random salt, over the NFKC form, at the default cost.
pub fn hash(passphrase: &str) -> Result<String, PassphraseError> {
    hash_with(HashParams::default(), passphrase)
}

pub fn hash_with(params: HashParams, passphrase: &str) -> Result<String, PassphraseError> {
    hasher(params)?
        .hash_password(normalize(passphrase).as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| PassphraseError::Hash)
}

/// Whether a stored hash was made at a lower cost than `params` (rehash after a good login).
pub fn needs_rehash(phc: &str, params: HashParams) -> bool {
    let Ok(h) = PasswordHash::new(phc) else { return true };
    let Ok(stored) = Params::try_from(&h) else { return true };
    stored.m_cost() < params.memory_kib
        || stored.t_cost() < params.iterations
        || stored.p_cost() != params.parallelism
        || h.algorithm.as_str() != "argon2id"
}

/// Constant-time verification against a stored PHC string.
/// The cost comes from the stored string, so hashes made before a configuration change
/// still verify.
pub fn verify(passphrase: &str, phc: &str) -> bool {
    let Ok(h) = PasswordHash::new(phc) else { return false };
    let Ok(params) = Params::try_from(&h) else { return false };
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .verify_password(normalize(passphrase).as_bytes(), &h)
        .is_ok()
}

/// A fixed hash of a random passphrase: verifying against it costs what a real check
/// costs, so an unknown username takes as long to refuse as a wrong passphrase.
pub fn decoy_hash(params: HashParams) -> Result<String, PassphraseError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|_| PassphraseError::Hash)?;
    hash_with(params, &hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &str, single: bool, ctx: &[&str]) -> Result<(), PassphraseError> {
        check_new(&PassphrasePolicy::default(), p, single, ctx)
    }

    #[test]
    fn hashes_record_their_cost_and_are_remade_when_it_rises() {
        let cheap = HashParams { memory_kib: 8 * 1024, iterations: 1, parallelism: 1 };
        let phc = hash_with(cheap, "correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{phc}");
        assert!(verify("correct horse battery staple", &phc), "verification reads the cost from the hash");
        assert!(!verify("correct horse battery stapler", &phc));
        assert!(needs_rehash(&phc, HashParams::default()));
        assert!(!needs_rehash(&phc, cheap));
        assert!(needs_rehash("not a hash", cheap));
        assert!(decoy_hash(cheap).unwrap().starts_with("$argon2id$"));
    }

    #[test]
    fn length_rules_depend_on_whether_it_is_the_only_factor() {
        assert_eq!(check("short", false, &[]), Err(PassphraseError::TooShort(12)));
        assert_eq!(check("violet kettle", true, &[]), Err(PassphraseError::TooShort(15)));
        assert!(check("violet kettle", false, &[]).is_ok());
        assert!(check("violet kettle marsh", true, &[]).is_ok());
        assert_eq!(check(&"vk".repeat(129), false, &[]), Err(PassphraseError::TooLong(256)));
        // At least 64 accepted.
        assert!(check("tidal cobalt lantern orchard plum quarry meadow ink violin harbour", true, &[]).is_ok());
    }

    #[test]
    fn common_passwords_patterns_and_context_words_are_refused() {
        for bad in ["password1234", "qwertyuiopasdf", "aaaaaaaaaaaaaaaa", "123456789012345"] {
            assert!(matches!(check(bad, false, &[]), Err(PassphraseError::Predictable(_))), "{bad:?}");
        }
        let ctx = ["rsmith", "Rita Smith", "St Mary's Hospital"];
        for bad in ["rsmith-rsmith-1", "ritasmith2026!", "stmaryshospital1", "hospital hospital"] {
            assert!(matches!(check(bad, false, &ctx), Err(PassphraseError::Predictable(_))), "{bad:?}");
        }
        assert!(check("tidal cobalt lantern orchard", false, &ctx).is_ok());
    }

    #[test]
    fn any_printable_unicode_is_welcome_and_normalised() {
        assert!(check("Grüße aus dem Schwarzwald", false, &[]).is_ok());
        assert!(check("ночь улица фонарь аптека", false, &[]).is_ok());
        assert_eq!(check("tidal cobalt\u{7}lantern", false, &[]), Err(PassphraseError::NotPrintable));
        // Full-width letters and the plain ones are the same passphrase after NFKC.
        let h = hash("ｔｉｄａｌ ｃｏｂａｌｔ ｌａｎｔｅｒｎ").unwrap();
        assert!(verify("tidal cobalt lantern", &h));
        // Composed and decomposed accents too.
        let h = hash("Gru\u{0308}ße aus dem Schwarzwald").unwrap();
        assert!(verify("Grüße aus dem Schwarzwald", &h));
    }

    #[test]
    fn hash_verifies_only_the_same_passphrase() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!verify("x", "not a phc string"));
    }
}
