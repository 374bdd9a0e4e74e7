//! Sealing an event into the chain: its canonical body and link hash.
//!
//! The body is compact JSON with a fixed field order, computed once and stored verbatim;
//! the link hash is SHA-256 over exactly those bytes. Because the body carries `prev`
//! (the previous link hash, hex) and `seq`, an exported JSON-lines file can be checked by
//! anyone with `sha256sum`: each line's hash is the next line's `prev`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::chain::ChainHead;
use super::event::{AuditEvent, EventType, Outcome};

/// Version of the record body schema (`docs/audit-schema.md`). Bump on any change.
pub const SCHEMA_VERSION: u32 = 1;

const TS_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The record body as it is written, hashed and exported. Field order is part of the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub v: u32,
    pub seq: i64,
    pub ts: String,
    pub node: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub outcome: Outcome,
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub factors: Vec<String>,
    pub reason: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    pub correlation_id: Option<String>,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub prev: String,
}

/// A record ready to be stored: indexed columns plus the verbatim body and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub seq: i64,
    pub ts_us: i64,
    pub event_type: String,
    pub body: String,
    pub hash: [u8; 32],
}

impl SealedRecord {
    pub fn head(&self) -> ChainHead {
        ChainHead { seq: self.seq, hash: self.hash }
    }
}

/// Formats a timestamp the one way the schema allows: UTC, microseconds, `Z`.
pub fn format_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    // The fixed format cannot fail for years 0..=9999; fall back to RFC 3339 rather than panic.
    t.format(TS_FORMAT).or_else(|_| t.format(&time::format_description::well_known::Rfc3339)).unwrap_or_default()
}

pub fn link_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// Seals `event` as the record after `prev`, written by `node`.
pub fn seal(prev: &ChainHead, node: &str, event: &AuditEvent) -> SealedRecord {
    let at = crate::from_unix_micros(crate::unix_micros(event.at));
    let record = AuditRecord {
        v: SCHEMA_VERSION,
        seq: prev.seq + 1,
        ts: format_ts(at),
        node: node.to_owned(),
        event_type: event.event_type.clone(),
        outcome: event.outcome,
        subject: event.subject.clone(),
        actor: event.actor.clone(),
        factors: event.factors.clone(),
        reason: event.reason.clone(),
        client_ip: event.client_ip.map(|ip| ip.to_string()),
        user_agent: event.user_agent.clone(),
        device_id: event.device_id.clone(),
        correlation_id: event.correlation_id.clone(),
        details: event.details.clone(),
        prev: hex::encode(prev.hash),
    };
    // Serialising a struct of strings, numbers and a JSON map cannot fail.
    let body = serde_json::to_string(&record).unwrap_or_default();
    SealedRecord {
        seq: record.seq,
        ts_us: crate::unix_micros(at),
        event_type: record.event_type.as_str().to_owned(),
        hash: link_hash(body.as_bytes()),
        body,
    }
}

/// Seals a batch in order, starting after `head`.
pub fn seal_batch<'a>(
    head: &ChainHead,
    node: &str,
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> Vec<SealedRecord> {
    let mut head = *head;
    events
        .into_iter()
        .map(|e| {
            let r = seal(&head, node, e);
            head = r.head();
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::types;

    fn event() -> AuditEvent {
        AuditEvent::known(
            time::macros::datetime!(2026-11-28 07:00:00.123456789 UTC),
            types::AUTH_LOGIN_SUCCEEDED,
            Outcome::Success,
        )
        .subject("alice")
        .factor("pwd")
        .factor("otp")
        .client_ip(Some("10.1.2.3".parse().unwrap()))
        .correlation_id("c-1")
    }

    #[test]
    fn body_has_fixed_shape_and_truncated_microseconds() {
        let r = seal(&ChainHead::GENESIS, "node-a", &event());
        assert_eq!(
            r.body,
            concat!(
                r#"{"v":1,"seq":1,"ts":"2026-11-28T07:00:00.123456Z","node":"node-a","type":"auth.login.succeeded","#,
                r#""outcome":"success","subject":"alice","actor":null,"factors":["pwd","otp"],"reason":null,"#,
                r#""client_ip":"10.1.2.3","user_agent":null,"device_id":null,"correlation_id":"c-1","details":{},"#,
                r#""prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#
            )
        );
        assert_eq!(r.ts_us, 1_795_849_200_123_456);
        assert_eq!(r.hash, link_hash(r.body.as_bytes()));
    }

    #[test]
    fn batch_links_each_record_to_the_one_before() {
        let events = vec![event(), event(), event()];
        let sealed = seal_batch(&ChainHead::GENESIS, "n", &events);
        assert_eq!(sealed.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        for pair in sealed.windows(2) {
            let body: AuditRecord = serde_json::from_str(&pair[1].body).unwrap();
            assert_eq!(body.prev, hex::encode(pair[0].hash));
        }
    }
}
