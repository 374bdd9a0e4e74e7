//! RFC 5424 rendering of audit records for SIEMs.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`, with facility `authpriv` (10).
//! The message part is the record's JSON body, so nothing is lost in translation.

use super::record::AuditRecord;

/// Registered private enterprise number placeholder for structured data ids (RFC 5424 §7.2.2).
/// 32473 is the number IANA reserves for documentation examples (RFC 5612).
const SD_ID: &str = "wardgate@32473";

pub fn render(record: &AuditRecord, body: &str, hash_hex: &str) -> String {
    // authpriv (10) * 8 + severity: notice (5) for success, warning (4) otherwise.
    let severity = match record.outcome {
        super::Outcome::Success => 5,
        _ => 4,
    };
    let pri = 10 * 8 + severity;
    let host = header_field(&record.node, 255);
    let msgid = header_field(record.event_type.as_str(), 32);
    format!(
        "<{pri}>1 {ts} {host} wardgate - {msgid} [{SD_ID} seq=\"{seq}\" hash=\"{hash_hex}\" outcome=\"{outcome}\"] {body}",
        ts = record.ts,
        seq = record.seq,
        outcome = record.outcome.as_str(),
    )
}

/// Header fields are printable US-ASCII without spaces, bounded in length; `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if clean.is_empty() { "-".into() } else { clean }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, ChainHead, Outcome, event::types, seal};

    #[test]
    fn renders_rfc5424_with_structured_data_and_json_message() {
        let e = AuditEvent::known(
            time::macros::datetime!(2026-01-02 03:04:05 UTC),
            types::AUTH_LOGIN_FAILED,
            Outcome::Failure,
        );
        let s = seal(&ChainHead::GENESIS, "node a", &e);
        let rec: AuditRecord = serde_json::from_str(&s.body).unwrap();
        let line = render(&rec, &s.body, "ab");
        assert_eq!(
            line,
            format!(
                "<84>1 2026-01-02T03:04:05.000000Z nodea wardgate - auth.login.failed [wardgate@32473 seq=\"1\" hash=\"ab\" outcome=\"failure\"] {}",
                s.body
            )
        );
    }
}
