//! Time-based one-time passwords (capability F2; RFC 6238 over RFC 4226), through the
//! `totp-rs` crate.
//!
//! What this module adds to the crate is policy: which parameters are allowed, the ±1
//! step drift window (RFC 6238 §5.2), and replay refusal — a code, or any code of an
//! earlier step, is accepted at most once per factor (NIST SP 800-63B §5.1.4.2). The
//! caller persists the returned step atomically (compare-and-set on "newer than the last
//! accepted step"), which is what makes the refusal hold across nodes.

use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

/// The HMAC behind the code. SHA-1 is what authenticator apps support everywhere; its
/// collision weakness does not affect HMAC (RFC 4226 Appendix B.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl TotpAlgorithm {
    fn lib(self) -> Algorithm {
        match self {
            TotpAlgorithm::Sha1 => Algorithm::SHA1,
            TotpAlgorithm::Sha256 => Algorithm::SHA256,
            TotpAlgorithm::Sha512 => Algorithm::SHA512,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }
}

/// Parameters of one TOTP factor; stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: TotpAlgorithm,
    /// 6 or 8.
    pub digits: u8,
    /// Seconds per step; 30 unless a hardware token says otherwise.
    pub step_secs: u64,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self { algorithm: TotpAlgorithm::Sha1, digits: 6, step_secs: 30 }
    }
}

impl TotpParams {
    /// The form stored in a factor's `params`: `{"algorithm","digits","step_secs"}`.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({"algorithm": self.algorithm.as_str(), "digits": self.digits, "step_secs": self.step_secs})
    }

    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        let algorithm = match v.get("algorithm")?.as_str()? {
            "SHA1" => TotpAlgorithm::Sha1,
            "SHA256" => TotpAlgorithm::Sha256,
            "SHA512" => TotpAlgorithm::Sha512,
            _ => return None,
        };
        let digits = u8::try_from(v.get("digits")?.as_u64()?).ok()?;
        let step_secs = v.get("step_secs").and_then(serde_json::Value::as_u64).unwrap_or(30);
        Some(Self { algorithm, digits, step_secs })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("TOTP parameters are not allowed: {0}")]
    Params(String),
    #[error("the code must be {0} digits")]
    Malformed(u8),
    #[error("the code is not valid now")]
    Invalid,
    /// The code matched, but a code of this or a later step was already accepted.
    #[error("the code was already used")]
    Replayed,
    #[error("system random number generator failed")]
    Random,
}

/// Secret length for new factors: 160 bits, as RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;

/// A fresh random secret.
pub fn generate_secret() -> Result<Zeroizing<Vec<u8>>, TotpError> {
    let mut s = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    getrandom::fill(&mut s).map_err(|_| TotpError::Random)?;
    Ok(s)
}

fn totp(params: TotpParams, secret: &[u8], issuer: Option<&str>, account: &str) -> Result<Totp, TotpError> {
    if !matches!(params.digits, 6 | 8) {
        return Err(TotpError::Params(format!("{} digits (6 or 8 allowed)", params.digits)));
    }
    if !(15..=120).contains(&params.step_secs) {
        return Err(TotpError::Params(format!("{} s steps (15-120 allowed)", params.step_secs)));
    }
    Builder::new()
        .with_algorithm(params.algorithm.lib())
        .with_digits(params.digits)
        // Each step is checked on its own below, so the crate's own window stays closed.
        .with_skew(0)
        .with_step_duration(params.step_secs)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(issuer)
        .build()
        .map_err(|e| TotpError::Params(e.to_string()))
}

/// The `otpauth://` URI an authenticator app scans (shown as a QR code at enrollment).
pub fn otpauth_uri(params: TotpParams, secret: &[u8], issuer: &str, account: &str) -> Result<String, TotpError> {
    totp(params, secret, Some(issuer), account)?.to_url().map_err(|e| TotpError::Params(e.to_string()))
}

/// The secret as people type it into an app that cannot scan (RFC 4648 base32).
pub fn secret_base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

/// The inverse of [`secret_base32`], for seeds handed over in that form.
pub fn secret_from_base32(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    totp_rs::Secret::try_from_base32(s.trim_end_matches('=')).ok().map(|k| Zeroizing::new(k.as_bytes().to_vec()))
}

/// The code for `at`; for tests, and for the enrollment page's self-check.
pub fn code_at(params: TotpParams, secret: &[u8], at: OffsetDateTime) -> Result<String, TotpError> {
    Ok(totp(params, secret, None, "")?.generate(unix_secs(at)).to_string())
}

/// Checks `code` at `now` against the current step and one step either side. Returns the
/// step it matched, which the caller records as the factor's last accepted step.
pub fn verify(
    params: TotpParams,
    secret: &[u8],
    code: &str,
    now: OffsetDateTime,
    last_accepted_step: Option<u64>,
) -> Result<u64, TotpError> {
    // People type codes with a space in the middle, as apps display them.
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(params.digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed(params.digits));
    }
    let t = totp(params, secret, None, "")?;
    let current = unix_secs(now) / params.step_secs;
    // Every step of the window is computed, matched or not, so timing says nothing about
    // which step (if any) matched.
    let mut matched = None;
    for step in current.saturating_sub(1)..=current + 1 {
        if t.check(&code, step * params.step_secs).is_some() && matched.is_none() {
            matched = Some(step);
        }
    }
    let step = matched.ok_or(TotpError::Invalid)?;
    if last_accepted_step.is_some_and(|last| step <= last) {
        return Err(TotpError::Replayed);
    }
    Ok(step)
}

fn unix_secs(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";

    #[test]
    fn base32_secrets_round_trip() {
        let s = secret_base32(SEED_SHA1);
        assert_eq!(secret_from_base32(&s.to_lowercase()).unwrap().as_slice(), SEED_SHA1);
        assert!(secret_from_base32("not base32!").is_none());
    }

    #[test]
    fn params_round_trip_through_factor_json() {
        let p = TotpParams { algorithm: TotpAlgorithm::Sha256, digits: 8, step_secs: 30 };
        assert_eq!(TotpParams::from_json(&p.to_json()), Some(p));
        assert_eq!(TotpParams::from_json(&serde_json::json!({"algorithm": "MD5", "digits": 6})), None);
    }
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    /// RFC 6238 Appendix B, every row.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let rows: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in rows {
            for (alg, seed, want) in [
                (TotpAlgorithm::Sha1, SEED_SHA1, sha1),
                (TotpAlgorithm::Sha256, SEED_SHA256, sha256),
                (TotpAlgorithm::Sha512, SEED_SHA512, sha512),
            ] {
                let p = TotpParams { algorithm: alg, digits: 8, step_secs: 30 };
                assert_eq!(code_at(p, seed, at(t)).unwrap(), want, "{alg:?} at {t}");
                assert!(verify(p, seed, want, at(t), None).is_ok(), "{alg:?} at {t}");
            }
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let p = TotpParams::default();
        let code = code_at(p, SEED_SHA1, at(1_000_000_000)).unwrap();
        let step = 1_000_000_000 / 30;
        assert_eq!(verify(p, SEED_SHA1, &code, at(1_000_000_000 + 30), None), Ok(step));
        assert_eq!(verify(p, SEED_SHA1, &code, at(1_000_000_000 - 30), None), Ok(step));
        assert_eq!(verify(p, SEED_SHA1, &code, at(1_000_000_000 + 60), None), Err(TotpError::Invalid));
    }

    #[test]
    fn a_code_is_accepted_once_and_older_codes_never_after_it() {
        let p = TotpParams::default();
        let now = at(1_700_000_000);
        let code = code_at(p, SEED_SHA1, now).unwrap();
        let step = verify(p, SEED_SHA1, &code, now, None).unwrap();
        assert_eq!(verify(p, SEED_SHA1, &code, now, Some(step)), Err(TotpError::Replayed));
        let older = code_at(p, SEED_SHA1, now - time::Duration::seconds(30)).unwrap();
        assert_eq!(verify(p, SEED_SHA1, &older, now, Some(step)), Err(TotpError::Replayed));
        let next = code_at(p, SEED_SHA1, now + time::Duration::seconds(30)).unwrap();
        assert_eq!(verify(p, SEED_SHA1, &next, now + time::Duration::seconds(30), Some(step)), Ok(step + 1));
    }

    #[test]
    fn malformed_codes_and_parameters_are_refused() {
        let p = TotpParams::default();
        let now = at(1_700_000_000);
        let code = code_at(p, SEED_SHA1, now).unwrap();
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(verify(p, SEED_SHA1, &spaced, now, None).is_ok());
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(verify(p, SEED_SHA1, bad, now, None), Err(TotpError::Malformed(6)), "{bad:?}");
        }
        let seven = TotpParams { digits: 7, ..p };
        assert!(matches!(verify(seven, SEED_SHA1, "1234567", now, None), Err(TotpError::Params(_))));
        assert!(matches!(verify(p, b"short", "123456", now, None), Err(TotpError::Params(_))));
    }

    #[test]
    fn otpauth_uri_carries_issuer_account_and_parameters() {
        let uri = otpauth_uri(TotpParams::default(), SEED_SHA1, "St Mary's", "jsmith").unwrap();
        assert!(uri.starts_with("otpauth://totp/St%20Mary%27s:jsmith?"), "{uri}");
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=St%20Mary%27s"), "{uri}");
        let p8 = TotpParams { algorithm: TotpAlgorithm::Sha256, digits: 8, step_secs: 30 };
        let uri = otpauth_uri(p8, SEED_SHA256, "Wardgate", "a").unwrap();
        assert!(uri.contains("digits=8") && uri.contains("algorithm=SHA256"), "{uri}");
        assert_eq!(generate_secret().unwrap().len(), 20);
    }
}
