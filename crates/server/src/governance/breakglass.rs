//! Break-glass: emergency access with a reason, a justification and a time limit (HIPAA
//! 164.312(a)(2)(ii)), recorded before it is granted, alerted at once, reviewed afterwards
//! by someone else.
//!
//! While an access is in force, a policy decision for that person that would be a step-up,
//! or a deny for want of a permission or an allowing rule, becomes an allow under the rule
//! [`RULE`] (see [`may_override`]); never for administrative actions (`admin.*`):
//! emergency access is to patient care, not to Wardgate's own administration. See
//! docs/policy.md.

use time::{Duration, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::governance::{BreakGlass, BreakGlassRequest, ReviewOutcome};
use wardgate_core::identity::User;
use wardgate_core::policy::roles::is_admin_action;
use wardgate_core::policy::{Decision, Effect, Policy};
use wardgate_store::{Store, StoreError};

use super::{GovernanceError, REVIEW, holds, new_id, ts, user_named};

/// The rule named by a decision that an active break-glass access turned into an allow.
pub const RULE: &str = "builtin:break-glass";

/// Which decisions an active break-glass access may turn into an allow: a step-up, or a
/// deny for want of a permission or of a rule allowing it — the normal path being blocked.
/// An explicit `deny` rule of the policy stands (it is how a hospital says "not even in an
/// emergency"), and so do the refusals of administrative actions, of inactive accounts and
/// of everything before a policy is approved.
pub fn may_override(d: &Decision<'_>, action: &str) -> bool {
    use wardgate_core::policy::builtin;
    let blocked = match d.effect {
        Effect::Allow => false,
        Effect::StepUp => true,
        Effect::Deny => [builtin::NO_PERMISSION, builtin::NO_RULE].contains(&d.rule),
    };
    blocked && !is_admin_action(action)
}

/// The decision an active break-glass access gives: allow, under [`RULE`], with the
/// policy's session limits.
pub fn allow(d: Decision<'_>) -> Decision<'_> {
    Decision { effect: Effect::Allow, rule: RULE, reason: "break-glass emergency access in force", ..d }
}

/// The access in force for `user` at `now` that turns decision `d` about `action` into an
/// allow, if there is one. Reads the store only for decisions that are not already allows.
pub async fn overriding(
    store: &dyn Store,
    user: &User,
    d: &Decision<'_>,
    action: &str,
    now: OffsetDateTime,
) -> Result<Option<BreakGlass>, StoreError> {
    if !may_override(d, action) {
        return Ok(None);
    }
    Ok(store.active_break_glass_of(&user.id, now).await?.into_iter().next())
}

/// The high-severity record of an opening (or a refusal).
pub fn opened_event(bg: &BreakGlass, now: OffsetDateTime) -> AuditEvent {
    let mut e = AuditEvent::known(now, types::BREAKGLASS_OPENED, Outcome::Success)
        .subject(bg.username.as_str())
        .reason(bg.justification.clone())
        .client_ip(bg.client_ip)
        .detail("severity", "high")
        .detail("breakglass_id", bg.id.clone())
        .detail("reason_code", bg.reason_code.clone())
        .detail("expires_at", ts(bg.expires_at));
    if let Some(s) = &bg.session_id {
        e = e.detail("session_id", s.clone());
    }
    e
}

/// Opens emergency access for `request`: the permission, then the core's rules, then the
/// store (which appends `breakglass.opened` in the same transaction). A refusal is
/// recorded too, as `breakglass.refused`.
pub async fn open(
    store: &dyn Store,
    policy: &Policy,
    rules: &wardgate_core::governance::BreakGlassRules,
    user: &User,
    request: BreakGlassRequest,
    correlation_id: &str,
    now: OffsetDateTime,
) -> Result<BreakGlass, GovernanceError> {
    let refuse = |why: String| {
        AuditEvent::known(now, types::BREAKGLASS_REFUSED, Outcome::Denied)
            .subject(user.username.as_str())
            .reason(why)
            .client_ip(request.client_ip)
            .correlation_id(correlation_id.to_owned())
            .detail("severity", "high")
            .detail("reason_code", request.reason_code.clone())
    };
    if !holds(policy, user, super::INVOKE, now) {
        let why = format!("{} does not hold the permission {}", user.username, super::INVOKE);
        store.append_audit(&[refuse(why.clone())]).await?;
        return Err(GovernanceError::NotPermitted(why));
    }
    let bg = match BreakGlass::open(new_id()?, request.clone(), rules, now) {
        Ok(bg) => bg,
        Err(e) => {
            store.append_audit(&[refuse(e.to_string())]).await?;
            return Err(GovernanceError::Refused(e.to_string()));
        }
    };
    store.open_break_glass(&bg, &opened_event(&bg, now).correlation_id(correlation_id.to_owned())).await?;
    metrics::counter!("wardgate_breakglass_opened_total").increment(1);
    Ok(bg)
}

/// Ends the access `id` of `user` early (the emergency is over). Returns whether it was in
/// force; [`GovernanceError::NotFound`] if it is not theirs.
pub async fn end(
    store: &dyn Store,
    user: &User,
    id: &str,
    correlation_id: &str,
    now: OffsetDateTime,
) -> Result<bool, GovernanceError> {
    let bg = store.break_glass(id).await?.filter(|b| b.user_id == user.id);
    let Some(bg) = bg else { return Err(GovernanceError::NotFound(format!("break-glass {id}"))) };
    let e = AuditEvent::known(now, types::BREAKGLASS_ENDED, Outcome::Success)
        .subject(user.username.as_str())
        .reason("ended by the person")
        .correlation_id(correlation_id.to_owned())
        .detail("severity", "high")
        .detail("breakglass_id", bg.id.clone());
    Ok(store.end_break_glass(id, now, &e).await?)
}

/// Records a reviewer's finding. The reviewer must hold `breakglass.review` and must not
/// be the person who opened the access (core's rule).
#[allow(clippy::too_many_arguments)]
pub async fn review(
    store: &dyn Store,
    policy: &Policy,
    actor: &str,
    id: &str,
    reviewer: &str,
    outcome: ReviewOutcome,
    comment: &str,
    now: OffsetDateTime,
) -> Result<BreakGlass, GovernanceError> {
    let mut bg = store.break_glass(id).await?.ok_or_else(|| GovernanceError::NotFound(format!("break-glass {id}")))?;
    let who = user_named(store, reviewer).await?;
    if !holds(policy, &who, REVIEW, now) {
        return Err(GovernanceError::NotPermitted(format!("{} does not hold the permission {REVIEW}", who.username)));
    }
    bg.review(&who.username, outcome, comment, now).map_err(|e| GovernanceError::Refused(e.to_string()))?;
    let Some(r) = bg.review.clone() else { return Err(GovernanceError::Conflict("no review".into())) };
    let e = AuditEvent::known(now, types::BREAKGLASS_REVIEWED, Outcome::Success)
        .actor(actor)
        .subject(bg.username.as_str())
        .detail("breakglass_id", bg.id.clone())
        .detail("reviewer", who.username.as_str())
        .detail("outcome", outcome.as_str())
        .detail("comment", r.comment.clone());
    if !store.review_break_glass(id, &r, &e).await? {
        return Err(GovernanceError::Conflict("this break-glass access has already been reviewed".into()));
    }
    Ok(bg)
}

/// How many accesses are unreviewed past the review window, for the metrics gauge.
pub async fn overdue(store: &dyn Store, within: Duration, now: OffsetDateTime) -> Result<usize, StoreError> {
    Ok(store.list_break_glass(true).await?.iter().filter(|b| b.overdue_at(now, within)).count())
}

pub fn json(bg: &BreakGlass, within: Duration, now: OffsetDateTime) -> serde_json::Value {
    serde_json::json!({
        "id": bg.id,
        "username": bg.username.as_str(),
        "reason_code": bg.reason_code,
        "justification": bg.justification,
        "opened_at": ts(bg.opened_at),
        "expires_at": ts(bg.expires_at),
        "active": bg.is_active_at(now),
        "session_id": bg.session_id,
        "client_ip": bg.client_ip.map(|i| i.to_string()),
        "overdue": bg.overdue_at(now, within),
        "review": bg.review.as_ref().map(|r| serde_json::json!({
            "reviewer": r.reviewer.as_str(),
            "outcome": r.outcome.as_str(),
            "comment": r.comment,
            "at": ts(r.at),
        })),
    })
}
