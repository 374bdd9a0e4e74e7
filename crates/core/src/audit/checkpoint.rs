//! Signed checkpoints over the chain head (Ed25519).
//!
//! A checkpoint says "record `seq` has link hash `hash`", signed by a key whose private half
//! is sealed under the key-encryption key. Someone who can write to the database but not
//! read the key file can rewrite the chain's hashes, but cannot make them agree with a
//! checkpoint.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use time::OffsetDateTime;

use super::chain::ChainHead;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: [u8; 32],
    pub ts_us: i64,
    pub node: String,
    pub key_id: String,
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The exact bytes signed. Length-prefixed so that no two checkpoints share an encoding.
    pub fn signed_message(seq: i64, hash: &[u8; 32], ts_us: i64, node: &str, key_id: &str) -> Vec<u8> {
        let mut m = Vec::with_capacity(96 + node.len() + key_id.len());
        m.extend_from_slice(b"wardgate-audit-checkpoint-v1\0");
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        m.extend_from_slice(&ts_us.to_be_bytes());
        for s in [node, key_id] {
            m.extend_from_slice(&(s.len() as u32).to_be_bytes());
            m.extend_from_slice(s.as_bytes());
        }
        m
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let msg = Self::signed_message(self.seq, &self.hash, self.ts_us, &self.node, &self.key_id);
        key.verify(&msg, &Signature::from_bytes(&self.signature)).is_ok()
    }

    pub fn head(&self) -> ChainHead {
        ChainHead { seq: self.seq, hash: self.hash }
    }
}

/// A node's means of signing checkpoints.
pub struct CheckpointSigner {
    key_id: String,
    node: String,
    key: SigningKey,
}

impl CheckpointSigner {
    pub fn new(key_id: String, node: String, key: SigningKey) -> Self {
        Self { key_id, node, key }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, head: ChainHead, now: OffsetDateTime) -> Checkpoint {
        let ts_us = crate::unix_micros(now);
        let msg = Checkpoint::signed_message(head.seq, &head.hash, ts_us, &self.node, &self.key_id);
        Checkpoint {
            seq: head.seq,
            hash: head.hash,
            ts_us,
            node: self.node.clone(),
            key_id: self.key_id.clone(),
            signature: self.key.sign(&msg).to_bytes(),
        }
    }
}

/// When the next checkpoint is due: every `every` records or `interval` of time, whichever
/// comes first, and only if the chain has grown.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every: i64,
    pub interval: time::Duration,
}

impl CheckpointPolicy {
    pub fn due(&self, last: Option<(i64, OffsetDateTime)>, head_seq: i64, now: OffsetDateTime) -> bool {
        match last {
            None => head_seq > 0,
            Some((seq, at)) => head_seq > seq && (head_seq - seq >= self.every || now - at >= self.interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new("k1".into(), "node-a".into(), SigningKey::from_bytes(&[7; 32]))
    }

    #[test]
    fn signature_covers_every_field() {
        let s = signer();
        let cp = s.sign(ChainHead { seq: 10, hash: [1; 32] }, OffsetDateTime::UNIX_EPOCH);
        let key = s.verifying_key();
        assert!(cp.verify(&key));
        assert!(!Checkpoint { seq: 11, ..cp.clone() }.verify(&key));
        assert!(!Checkpoint { hash: [2; 32], ..cp.clone() }.verify(&key));
        assert!(!Checkpoint { ts_us: 1, ..cp.clone() }.verify(&key));
        assert!(!Checkpoint { node: "node-b".into(), ..cp.clone() }.verify(&key));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(!cp.verify(&other));
    }

    #[test]
    fn due_by_count_or_by_time_but_only_when_grown() {
        let p = CheckpointPolicy { every: 100, interval: time::Duration::seconds(1) };
        let t0 = OffsetDateTime::UNIX_EPOCH;
        assert!(!p.due(None, 0, t0));
        assert!(p.due(None, 1, t0));
        assert!(!p.due(Some((10, t0)), 50, t0));
        assert!(p.due(Some((10, t0)), 110, t0));
        assert!(p.due(Some((10, t0)), 11, t0 + time::Duration::seconds(1)));
        assert!(!p.due(Some((10, t0)), 10, t0 + time::Duration::hours(1)));
    }
}
