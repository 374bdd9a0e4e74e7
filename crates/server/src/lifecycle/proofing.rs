//! Identity proofing (L1): who verified a person's identity, how, against which document,
//! and the ticket that holds the evidence — and the rule that roles marked
//! `require_proofing` enroll no aal2+ factor before such a record exists.

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{AccountStatus, User};
use wardgate_core::lifecycle::{Proofing, ProofingClaim};
use wardgate_core::policy::Policy;
use wardgate_store::{Store, StoreError};

use super::{GovernanceError, PROOFING_PERMISSIONS};
use crate::governance::{holds, new_id, ts, user_named};

/// Whether `user` may record identity proofing for others.
pub fn may_proof(policy: &Policy, user: &User, now: OffsetDateTime) -> bool {
    PROOFING_PERMISSIONS.iter().any(|p| holds(policy, user, p, now))
}

/// The first role `user` holds at `now` whose definition requires proofing, if any.
pub fn role_requiring(policy: &Policy, user: &User, now: OffsetDateTime) -> Option<String> {
    user.roles_at(now).into_iter().find(|r| policy.role(r).is_some_and(|role| role.require_proofing))
}

/// The role that makes proofing missing for `user`: one requires it and no record exists.
/// `None` when enrollment may go ahead.
pub async fn missing(
    store: &dyn Store,
    policy: &Policy,
    user: &User,
    now: OffsetDateTime,
) -> Result<Option<String>, StoreError> {
    let Some(role) = role_requiring(policy, user, now) else { return Ok(None) };
    Ok(store.proofings_of(&user.id).await?.is_empty().then_some(role))
}

/// Records that `verifier` checked `username`'s identity. The verifier is an active account
/// other than the person, holding one of [`PROOFING_PERMISSIONS`].
#[allow(clippy::too_many_arguments)]
pub async fn record(
    store: &dyn Store,
    policy: &Policy,
    actor: &str,
    username: &str,
    verifier: &str,
    claim: &ProofingClaim,
    now: OffsetDateTime,
) -> Result<Proofing, GovernanceError> {
    let user = user_named(store, username).await?;
    let who = user_named(store, verifier).await?;
    if who.status != AccountStatus::Active || !may_proof(policy, &who, now) {
        return Err(GovernanceError::NotPermitted(format!(
            "{} may not record identity proofing (needs one of {})",
            who.username,
            PROOFING_PERMISSIONS.join(", ")
        )));
    }
    if user.status == AccountStatus::Terminated {
        return Err(GovernanceError::Refused(format!("{} is terminated", user.username)));
    }
    let p = Proofing::new(new_id()?, user.id.clone(), user.username.clone(), who.username.clone(), claim, now)
        .map_err(|e| GovernanceError::Refused(e.to_string()))?;
    let mut e = AuditEvent::known(now, types::PROOFING_RECORDED, Outcome::Success)
        .actor(actor)
        .subject(user.username.as_str())
        .detail("proofing_id", p.id.clone())
        .detail("method", p.method.as_str())
        .detail("document", p.document.clone())
        .detail("evidence_ref", p.evidence_ref.clone())
        .detail("verified_by", p.verified_by.as_str());
    if let Some(r) = &p.reason {
        e = e.reason(r.clone());
    }
    store.record_proofing(&p, &e).await?;
    Ok(p)
}

pub fn json(p: &Proofing) -> serde_json::Value {
    serde_json::json!({
        "id": p.id,
        "username": p.username.as_str(),
        "method": p.method.as_str(),
        "document": p.document,
        "evidence_ref": p.evidence_ref,
        "verified_by": p.verified_by.as_str(),
        "reason": p.reason,
        "at": ts(p.at),
    })
}
