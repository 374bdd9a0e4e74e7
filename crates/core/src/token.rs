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
}
