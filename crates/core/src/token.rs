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

/// Characters of a token from [`generate_ordered`]: 6 bytes of time and 32 random bytes,
/// base64url without padding.
pub const ORDERED_LEN: usize = 51;

/// A token whose store key sorts by the time it was issued: 48 bits of milliseconds, then
/// 256 random bits (the secret). For refresh tokens and authorization codes, which are
/// stored as they are issued and spent soon after: keys in time order put each new one at
/// the right edge of its index and the one being spent near the other recent ones,
/// instead of each on a random page of an index holding every one still kept. The time is
/// no secret: the tokens issued with it carry it too.
///
/// Returns the token and its key ([`ordered_key`]).
pub fn generate_ordered(now: time::OffsetDateTime) -> Result<(String, [u8; 32]), RandomError> {
    let mut b = [0u8; 38];
    let ms = (now.unix_timestamp_nanos() / 1_000_000).clamp(0, (1 << 48) - 1) as u64;
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    getrandom::fill(&mut b[6..]).map_err(|_| RandomError)?;
    let token = B64.encode(b);
    let key = time_ordered_key(&b[..6], &token);
    Ok((token, key))
}

fn time_ordered_key(time: &[u8], token: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..6].copy_from_slice(time);
    key[6..].copy_from_slice(&digest(token)[..26]);
    key
}

/// The key a refresh token or code is stored under, or `None` for a string that is
/// neither. Tokens of [`generate_ordered`]: their 6 bytes of time, then the first 26 bytes
/// of their SHA-256 digest. Tokens issued before those existed (43 characters): their
/// digest, as they were stored.
pub fn ordered_key(token: &str) -> Option<[u8; 32]> {
    match token.len() {
        43 => Some(digest(token)),
        ORDERED_LEN => {
            // The first 8 characters are exactly the 6 bytes of time.
            let time = B64.decode(token.get(..8)?).ok()?;
            Some(time_ordered_key(&time, token))
        }
        _ => None,
    }
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
    fn ordered_keys_sort_by_time_and_older_tokens_keep_theirs() {
        let t = time::macros::datetime!(2026-11-29 12:00:00 UTC);
        let (a, ka) = generate_ordered(t).unwrap();
        let (b, kb) = generate_ordered(t).unwrap();
        let (later, kl) = generate_ordered(t + time::Duration::milliseconds(1)).unwrap();
        assert_eq!((a.len(), later.len()), (ORDERED_LEN, ORDERED_LEN));
        // The key handed out with a token is the one it is presented under.
        assert_eq!((ordered_key(&a), ordered_key(&b), ordered_key(&later)), (Some(ka), Some(kb), Some(kl)));
        // The same millisecond, different secrets: one prefix, different keys.
        assert_eq!(ka[..6], kb[..6]);
        assert_ne!(ka, kb);
        assert!(kl > ka && kl > kb);
        assert_eq!(ka[..6], 1_795_953_600_000u64.to_be_bytes()[2..]);
        // The rest of the key is the token's digest: it cannot be had without the token.
        assert_eq!(ka[6..], digest(&a)[..26]);
        let mut forged = a.clone().into_bytes();
        forged[ORDERED_LEN - 1] = if forged[ORDERED_LEN - 1] == b'A' { b'B' } else { b'A' };
        assert_ne!(ordered_key(std::str::from_utf8(&forged).unwrap()), Some(ka));
        // A token of the old kind is found under its digest, as it was stored.
        let old = generate().unwrap();
        assert_eq!(ordered_key(&old), Some(digest(&old)));
        for bad in ["", "short", &a[1..], "!!!!!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            assert_eq!(ordered_key(bad), None, "{bad:?}");
        }
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
