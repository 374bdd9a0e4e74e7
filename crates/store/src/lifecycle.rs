//! What both backends share for the identity life cycle (L1-L3): identity proofing
//! records, factor expiry and recovery requests — column lists, row decoding and the
//! statements that read the same on SQLite and PostgreSQL.

use time::OffsetDateTime;
use wardgate_core::from_unix_micros;
use wardgate_core::identity::Username;
use wardgate_core::lifecycle::{Proofing, ProofingMethod, RecoveryRequest, RecoveryStatus};

use crate::StoreError;
use crate::common::micros;

fn username(s: &str, what: impl FnOnce() -> String) -> Result<Username, StoreError> {
    Username::parse(s).map_err(|_| StoreError::Malformed(format!("{} is not a username", what())))
}

// --- proofing ------------------------------------------------------------------------------

pub(crate) const INSERT_PROOFING: &str = "INSERT INTO identity_proofing (id, user_id, username, method, document, \
     evidence_ref, verified_by, reason, proofed_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

macro_rules! select_proofing {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, username, method, document, evidence_ref, verified_by, reason, proofed_at_us \
             FROM identity_proofing ",
            $rest
        )
    };
}
pub(crate) use select_proofing;

pub(crate) type ProofingRow = (String, String, String, String, String, String, String, Option<String>, i64);

pub(crate) fn proofing(
    (id, user_id, name, method, document, evidence_ref, verified_by, reason, at): ProofingRow,
) -> Result<Proofing, StoreError> {
    let method = ProofingMethod::parse(&method)
        .ok_or_else(|| StoreError::Malformed(format!("proofing {id} has unknown method {method:?}")))?;
    Ok(Proofing {
        username: username(&name, || format!("proofing {id}'s subject"))?,
        verified_by: username(&verified_by, || format!("proofing {id}'s verifier"))?,
        id,
        user_id,
        method,
        document,
        evidence_ref,
        reason,
        at: from_unix_micros(at),
    })
}

/// Binds a proofing record to [`INSERT_PROOFING`]'s parameters, in order.
pub(crate) fn proofing_columns(p: &Proofing) -> (&str, &str, &str, &str, &str, &str, &str, Option<&str>, i64) {
    (
        &p.id,
        &p.user_id,
        p.username.as_str(),
        p.method.as_str(),
        &p.document,
        &p.evidence_ref,
        p.verified_by.as_str(),
        p.reason.as_deref(),
        micros(p.at),
    )
}

// --- factor expiry -------------------------------------------------------------------------

/// `$1` the user id, `$2` the factor id, `$3` the expiry (or NULL).
pub(crate) const SET_FACTOR_EXPIRY: &str = "UPDATE factors SET expires_at_us = $3 WHERE user_id = $1 AND id = $2";

// --- recovery requests ---------------------------------------------------------------------

pub(crate) const INSERT_RECOVERY: &str = "INSERT INTO recovery_requests (id, user_id, username, opened_by, reason, \
     opened_at_us, status) VALUES ($1, $2, $3, $4, $5, $6, 'pending')";

macro_rules! select_recovery {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, username, opened_by, reason, opened_at_us, status, decided_by, decided_at_us, \
             comment, link_expires_at_us, used_at_us, factor_id FROM recovery_requests ",
            $rest
        )
    };
}
pub(crate) use select_recovery;

pub(crate) type RecoveryRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

pub(crate) fn recovery(
    (
        id,
        user_id,
        name,
        opened_by,
        reason,
        opened_at_us,
        status,
        decided_by,
        decided_at_us,
        comment,
        link_expires_at_us,
        used_at_us,
        factor_id,
    ): RecoveryRow,
) -> Result<RecoveryRequest, StoreError> {
    let malformed = || StoreError::Malformed(format!("recovery request {id} has inconsistent decision columns"));
    let decided = match (decided_by, decided_at_us) {
        (Some(by), Some(at)) => Some((username(&by, || format!("recovery {id}'s approver"))?, from_unix_micros(at))),
        (None, None) => None,
        _ => return Err(malformed()),
    };
    let status = match (status.as_str(), decided, link_expires_at_us, used_at_us) {
        ("pending", None, None, None) => RecoveryStatus::Pending,
        ("approved", Some((by, at)), Some(exp), None) => {
            RecoveryStatus::Approved { by, at, link_expires_at: from_unix_micros(exp) }
        }
        ("denied", Some((by, at)), None, None) => {
            RecoveryStatus::Denied { by, at, comment: comment.unwrap_or_default() }
        }
        ("used", Some((by, at)), Some(exp), Some(used)) => RecoveryStatus::Used {
            by,
            at,
            link_expires_at: from_unix_micros(exp),
            used_at: from_unix_micros(used),
            factor_id: factor_id.unwrap_or_default(),
        },
        _ => return Err(malformed()),
    };
    Ok(RecoveryRequest {
        username: username(&name, || format!("recovery {id}'s subject"))?,
        opened_by: username(&opened_by, || format!("recovery {id}'s opener"))?,
        id,
        user_id,
        reason,
        opened_at: from_unix_micros(opened_at_us),
        status,
    })
}

/// `$1` id, `$2` decided_by, `$3` decided_at, `$4` link digest, `$5` link expiry: only while
/// pending, so that of concurrent decisions exactly one is kept.
pub(crate) const APPROVE_RECOVERY: &str = "UPDATE recovery_requests SET status = 'approved', decided_by = $2, \
     decided_at_us = $3, link_digest = $4, link_expires_at_us = $5 WHERE id = $1 AND status = 'pending'";

/// `$1` id, `$2` decided_by, `$3` decided_at, `$4` comment.
pub(crate) const DENY_RECOVERY: &str = "UPDATE recovery_requests SET status = 'denied', decided_by = $2, \
     decided_at_us = $3, comment = $4 WHERE id = $1 AND status = 'pending'";

/// `$1` link digest, `$2` now, `$3` the user id, `$4` the new factor's id: spends a live link
/// of that user, once.
pub(crate) const USE_RECOVERY_LINK: &str = "UPDATE recovery_requests SET status = 'used', used_at_us = $2, \
     factor_id = $4 WHERE link_digest = $1 AND status = 'approved' AND link_expires_at_us > $2 AND user_id = $3";

/// The columns a decision writes.
pub(crate) struct DecisionColumns<'a> {
    pub by: &'a str,
    pub at: i64,
    pub comment: Option<&'a str>,
    /// Set for an approval only.
    pub link_expires_at: Option<i64>,
}

pub(crate) fn decision(r: &RecoveryRequest) -> Result<DecisionColumns<'_>, StoreError> {
    match &r.status {
        RecoveryStatus::Approved { by, at, link_expires_at } => Ok(DecisionColumns {
            by: by.as_str(),
            at: micros(*at),
            comment: None,
            link_expires_at: Some(micros(*link_expires_at)),
        }),
        RecoveryStatus::Denied { by, at, comment } => {
            Ok(DecisionColumns { by: by.as_str(), at: micros(*at), comment: Some(comment), link_expires_at: None })
        }
        _ => Err(StoreError::Malformed(format!("recovery request {} is not a decision", r.id))),
    }
}

pub(crate) fn opt_micros(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(micros)
}
