//! Memory for the gateway's hot path, where every request of every protected application
//! passes: a gateway ticket's signature is checked once, not at each request, and the
//! identity assertion for the same person, session and application is signed once per half
//! minute. Neither stands in for the session: every request still reads it from the store,
//! so a sign-out or revocation ends access at the next request.
//!
//! Emptied whenever the signing keys are reloaded, so nothing outlives a key.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::tokens::GateClaims;

/// Past this many entries a map is emptied rather than grown: a flood of distinct forged
/// tickets never gets in (only verified ones are kept), and real ones are re-verified once.
const MAX_ENTRIES: usize = 50_000;

/// An assertion is reused while it has at least this many of its 60 seconds left.
const ASSERTION_REUSE_SECS: i64 = 30;

#[derive(Default)]
pub struct GateCache {
    tickets: Mutex<HashMap<[u8; 32], GateClaims>>,
    assertions: Mutex<HashMap<[u8; 32], (String, i64)>>,
}

pub fn key(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so that ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

impl GateCache {
    /// A ticket verified earlier and not yet expired at `now` (seconds).
    pub fn ticket(&self, token: &str, now: i64) -> Option<GateClaims> {
        let k = key(&[token.as_bytes()]);
        let map = self.tickets.lock().ok()?;
        map.get(&k).filter(|c| c.exp > now).cloned()
    }

    pub fn keep_ticket(&self, token: &str, claims: &GateClaims) {
        if let Ok(mut map) = self.tickets.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key(&[token.as_bytes()]), claims.clone());
        }
    }

    /// An assertion signed for the same claims at most [`ASSERTION_REUSE_SECS`] ago.
    pub fn assertion(&self, k: &[u8; 32], now: i64) -> Option<String> {
        let map = self.assertions.lock().ok()?;
        map.get(k).filter(|(_, iat)| now - iat < ASSERTION_REUSE_SECS && *iat <= now).map(|(a, _)| a.clone())
    }

    pub fn keep_assertion(&self, k: [u8; 32], assertion: &str, iat: i64) {
        if let Ok(mut map) = self.assertions.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(k, (assertion.to_owned(), iat));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut m) = self.tickets.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.assertions.lock() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> GateClaims {
        GateClaims { iss: "i".into(), aud: "a".into(), sid: "s".into(), sdg: "d".into(), exp, iat: 0 }
    }

    #[test]
    fn tickets_are_remembered_until_they_expire_and_keys_are_unambiguous() {
        let c = GateCache::default();
        assert!(c.ticket("t", 10).is_none());
        c.keep_ticket("t", &claims(100));
        assert_eq!(c.ticket("t", 99).map(|c| c.sid), Some("s".into()));
        assert!(c.ticket("t", 100).is_none());
        assert!(c.ticket("u", 10).is_none());
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        c.clear();
        assert!(c.ticket("t", 10).is_none());
    }

    #[test]
    fn an_assertion_is_reused_only_for_half_its_life() {
        let c = GateCache::default();
        let k = key(&[b"nina", b"labs"]);
        c.keep_assertion(k, "jwt", 1000);
        assert_eq!(c.assertion(&k, 1029).as_deref(), Some("jwt"));
        assert!(c.assertion(&k, 1030).is_none());
        assert!(c.assertion(&k, 999).is_none());
    }
}
