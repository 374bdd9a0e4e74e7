//! Verifying the chain: a streaming check that names the first bad sequence number.

use serde::Deserialize;

use super::checkpoint::Checkpoint;
use super::record::{format_ts, link_hash};

/// The last record of the chain: its sequence number and link hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl ChainHead {
    /// Before the first record: sequence 0, an all-zero hash.
    pub const GENESIS: ChainHead = ChainHead { seq: 0, hash: [0; 32] };
}

/// A record as read back from a store.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub seq: i64,
    pub ts_us: i64,
    pub event_type: String,
    pub body: String,
    pub hash: Vec<u8>,
}

/// Why the chain is broken, and the first sequence number where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at sequence {seq}: {kind}")]
pub struct ChainBreak {
    pub seq: i64,
    pub kind: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    #[error("record missing (found sequence {found} next)")]
    Missing { found: i64 },
    #[error("record out of order or inserted (found sequence {found} after {after})")]
    OutOfOrder { found: i64, after: i64 },
    #[error("record body does not match its stored hash (altered)")]
    HashMismatch,
    #[error("record does not link to the previous record (altered, inserted or reordered)")]
    BadLink,
    #[error("record body is unreadable: {0}")]
    Unreadable(String),
    #[error("indexed column `{0}` disagrees with the record body (altered)")]
    ColumnMismatch(&'static str),
    #[error("chain hash differs from signed checkpoint")]
    CheckpointMismatch,
    #[error("records up to a signed checkpoint are missing (log truncated)")]
    Truncated,
}

fn hex_of(hash: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    // Cannot fail: the output is exactly twice the input.
    let _ = hex::encode_to_slice(hash, &mut out);
    out
}

#[derive(Deserialize)]
struct Links<'a> {
    seq: i64,
    #[serde(borrow)]
    ts: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    prev: std::borrow::Cow<'a, str>,
}

/// Checks records in sequence order, one at a time, from an anchor (genesis, or the
/// signed checkpoint that retention pruning left behind).
pub struct ChainVerifier {
    head: ChainHead,
    /// `head.hash` as the lowercase hex a record's `prev` must spell exactly.
    head_hex: [u8; 64],
    checkpoints: std::collections::BTreeMap<i64, [u8; 32]>,
    verified: u64,
}

impl ChainVerifier {
    /// `checkpoints` are the hashes the chain must reach at their sequence numbers; more can
    /// be added as reading goes on ([`Self::add_checkpoints`]). Whoever trusts them has
    /// checked the signatures that matter (see `wardgate audit verify`).
    pub fn new(anchor: ChainHead, checkpoints: &[Checkpoint]) -> Self {
        let mut v = Self {
            head: anchor,
            head_hex: hex_of(&anchor.hash),
            checkpoints: std::collections::BTreeMap::new(),
            verified: 0,
        };
        v.add_checkpoints(checkpoints);
        v
    }

    /// Adds checkpoints ahead of the head; those at or before it are already decided.
    pub fn add_checkpoints(&mut self, checkpoints: &[Checkpoint]) {
        self.checkpoints.extend(checkpoints.iter().filter(|c| c.seq > self.head.seq).map(|c| (c.seq, c.hash)));
    }

    pub fn head(&self) -> ChainHead {
        self.head
    }

    pub fn verified(&self) -> u64 {
        self.verified
    }

    pub fn push(&mut self, rec: &StoredRecord) -> Result<(), ChainBreak> {
        let expected = self.head.seq + 1;
        let brk = |kind| ChainBreak { seq: expected, kind };
        if rec.seq > expected {
            return Err(brk(BreakKind::Missing { found: rec.seq }));
        }
        if rec.seq < expected {
            return Err(brk(BreakKind::OutOfOrder { found: rec.seq, after: self.head.seq }));
        }
        let hash = link_hash(rec.body.as_bytes());
        if rec.hash.as_slice() != hash.as_slice() {
            return Err(brk(BreakKind::HashMismatch));
        }
        let links: Links<'_> =
            serde_json::from_str(&rec.body).map_err(|e| brk(BreakKind::Unreadable(e.to_string())))?;
        if links.seq != rec.seq || links.prev.as_bytes() != self.head_hex {
            return Err(brk(BreakKind::BadLink));
        }
        if links.event_type != rec.event_type {
            return Err(brk(BreakKind::ColumnMismatch("event_type")));
        }
        if links.ts != format_ts(crate::from_unix_micros(rec.ts_us)) {
            return Err(brk(BreakKind::ColumnMismatch("ts_us")));
        }
        // Passed checkpoints are dropped, so memory follows the page, not the log.
        if let Some(cp) = self.checkpoints.remove(&rec.seq)
            && cp != hash
        {
            return Err(brk(BreakKind::CheckpointMismatch));
        }
        self.head = ChainHead { seq: rec.seq, hash };
        self.head_hex = hex_of(&hash);
        self.verified += 1;
        Ok(())
    }

    /// Call after the last record: a signed checkpoint beyond it means the tail was cut off.
    pub fn finish(self) -> Result<ChainHead, ChainBreak> {
        match self.checkpoints.range(self.head.seq + 1..).next() {
            Some(_) => Err(ChainBreak { seq: self.head.seq + 1, kind: BreakKind::Truncated }),
            None => Ok(self.head),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{AuditEvent, Outcome, types};
    use crate::audit::record::seal_batch;

    fn chain(n: usize) -> Vec<StoredRecord> {
        let events: Vec<_> = (0..n)
            .map(|i| {
                AuditEvent::known(time::OffsetDateTime::UNIX_EPOCH, types::AUTH_LOGIN_FAILED, Outcome::Failure)
                    .subject(format!("user{i}"))
            })
            .collect();
        seal_batch(&ChainHead::GENESIS, "n", &events)
            .into_iter()
            .map(|r| StoredRecord {
                seq: r.seq,
                ts_us: r.ts_us,
                event_type: r.event_type,
                body: r.body,
                hash: r.hash.to_vec(),
            })
            .collect()
    }

    fn verify(recs: &[StoredRecord], cps: &[Checkpoint]) -> Result<ChainHead, ChainBreak> {
        let mut v = ChainVerifier::new(ChainHead::GENESIS, cps);
        for r in recs {
            v.push(r)?;
        }
        v.finish()
    }

    fn cp(r: &StoredRecord) -> Checkpoint {
        Checkpoint {
            seq: r.seq,
            hash: r.hash.clone().try_into().unwrap(),
            ts_us: 0,
            node: "n".into(),
            key_id: "k".into(),
            signature: [0; 64],
        }
    }

    #[test]
    fn untouched_chain_verifies() {
        let recs = chain(5);
        assert_eq!(verify(&recs, &[]).unwrap().seq, 5);
    }

    #[test]
    fn altered_body_is_named() {
        let mut recs = chain(5);
        recs[2].body = recs[2].body.replace("user2", "mallory");
        assert_eq!(verify(&recs, &[]).unwrap_err(), ChainBreak { seq: 3, kind: BreakKind::HashMismatch });
    }

    #[test]
    fn rehashed_alteration_breaks_the_next_link() {
        let mut recs = chain(5);
        recs[2].body = recs[2].body.replace("user2", "mallory");
        recs[2].hash = link_hash(recs[2].body.as_bytes()).to_vec();
        assert_eq!(verify(&recs, &[]).unwrap_err(), ChainBreak { seq: 4, kind: BreakKind::BadLink });
    }

    #[test]
    fn deleted_record_is_named() {
        let mut recs = chain(5);
        recs.remove(1);
        assert_eq!(verify(&recs, &[]).unwrap_err().seq, 2);
    }

    #[test]
    fn swapped_bodies_are_named_at_the_first() {
        let mut recs = chain(5);
        let (a, b) = (recs[1].clone(), recs[3].clone());
        recs[1] = StoredRecord { seq: 2, ..b };
        recs[3] = StoredRecord { seq: 4, ..a };
        assert_eq!(verify(&recs, &[]).unwrap_err().seq, 2);
    }

    #[test]
    fn altered_index_column_is_named() {
        let mut recs = chain(3);
        recs[1].event_type = "auth.login.succeeded".into();
        assert_eq!(
            verify(&recs, &[]).unwrap_err(),
            ChainBreak { seq: 2, kind: BreakKind::ColumnMismatch("event_type") }
        );
        let mut recs = chain(3);
        recs[2].ts_us += 1;
        assert_eq!(verify(&recs, &[]).unwrap_err(), ChainBreak { seq: 3, kind: BreakKind::ColumnMismatch("ts_us") });
    }

    #[test]
    fn truncated_tail_is_caught_by_a_checkpoint() {
        let recs = chain(5);
        let cps = [cp(&recs[3])];
        assert!(verify(&recs, &cps).is_ok());
        assert_eq!(verify(&recs[..3], &cps).unwrap_err(), ChainBreak { seq: 4, kind: BreakKind::Truncated });
    }

    #[test]
    fn checkpoints_added_as_pages_arrive_are_checked_too() {
        let recs = chain(6);
        let mut v = ChainVerifier::new(ChainHead::GENESIS, &[]);
        for r in &recs[..3] {
            v.push(r).unwrap();
        }
        let mut wrong = cp(&recs[4]);
        wrong.hash = [7; 32];
        // One already passed (ignored) and one ahead that the chain will not reach.
        v.add_checkpoints(&[cp(&recs[1]), wrong]);
        v.push(&recs[3]).unwrap();
        assert_eq!(v.push(&recs[4]).unwrap_err(), ChainBreak { seq: 5, kind: BreakKind::CheckpointMismatch });
    }

    #[test]
    fn fully_rewritten_chain_disagrees_with_checkpoint() {
        let recs = chain(5);
        let cps = [cp(&recs[3])];
        // An attacker who rewrites and rehashes everything from record 2 on.
        let mut forged_events = chain(5);
        forged_events[1].body = forged_events[1].body.replace("user1", "mallory");
        let mut head = ChainHead { seq: 1, hash: recs[0].hash.clone().try_into().unwrap() };
        let mut forged = vec![recs[0].clone()];
        for r in &forged_events[1..] {
            let mut rec: crate::audit::AuditRecord = serde_json::from_str(&r.body).unwrap();
            rec.prev = hex::encode(head.hash);
            let body = serde_json::to_string(&rec).unwrap();
            let hash = link_hash(body.as_bytes());
            head = ChainHead { seq: r.seq, hash };
            forged.push(StoredRecord { body, hash: hash.to_vec(), ..r.clone() });
        }
        assert_eq!(verify(&forged, &cps).unwrap_err(), ChainBreak { seq: 4, kind: BreakKind::CheckpointMismatch });
    }
}
