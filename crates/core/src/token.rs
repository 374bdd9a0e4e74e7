//! Machine-generated secrets: bearer tokens and their digests.
//!
//! Tokens carry 256 bits from the OS generator. The store keeps only their SHA-256 digest
//! — a slow hash adds nothing for secrets of that entropy — and lookups compare digests in
//! constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
#[error("system random number generator failed")]
pub struct RandomError;

/// A fresh 256-bit token, base64url without padding (43 characters).
pub fn generate() -> Result<String, RandomError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|_| RandomError)?;
    Ok(B64.encode(b))
}

/// A short random identifier (128 bits, hex) for correlation ids and record ids.
pub fn random_id() -> Result<String, RandomError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| RandomError)?;
    Ok(hex::encode(b))
}

/// A 128-bit identifier whose first 48 bits are the time in milliseconds and the other
/// 80 random (hex). Rows keyed by it are inserted at the right edge of their index, so a
/// batch of new rows dirties a few pages instead of one random page each.
pub fn ordered_id(now: time::OffsetDateTime) -> Result<String, RandomError> {
    let mut b = [0u8; 16];
    let ms = (now.unix_timestamp_nanos() / 1_000_000).clamp(0, (1 << 48) - 1) as u64;
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    getrandom::fill(&mut b[6..]).map_err(|_| RandomError)?;
    Ok(hex::encode(b))
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_digests_compare() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(ct_eq(&digest(&a), &digest(&a)));
        assert!(!ct_eq(&digest(&a), &digest(&b)));
        assert_eq!(random_id().unwrap().len(), 32);
    }

    #[test]
    fn ordered_ids_sort_by_time_and_stay_unguessable() {
        let t = time::macros::datetime!(2026-11-29 12:00:00 UTC);
        let a = ordered_id(t).unwrap();
        let b = ordered_id(t).unwrap();
        let later = ordered_id(t + time::Duration::milliseconds(1)).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        // The same millisecond: the same 48-bit prefix, different random tails.
        assert_eq!(a[..12], b[..12]);
        assert_ne!(a[12..], b[12..]);
        assert!(later[..12] > a[..12]);
        assert_eq!(u64::from_str_radix(&a[..12], 16).unwrap(), 1_795_953_600_000);
    }
}
