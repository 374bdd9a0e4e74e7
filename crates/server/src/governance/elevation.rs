//! Just-in-time elevation (A4): a role for a bounded time, approved by a second person.
//!
//! The approval and the expiring role are one store transaction; the expiry is checked at
//! every decision (`User::roles_at`), so a role ends on time even if no node was running.

use time::{Duration, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::governance::{Elevation, ElevationStatus};
use wardgate_core::identity::{AccountStatus, User};
use wardgate_core::policy::Policy;
use wardgate_store::Store;

use super::{GovernanceError, new_id, ts, user_named};

fn refused(e: impl std::fmt::Display) -> GovernanceError {
    GovernanceError::Refused(e.to_string())
}

/// Requests `role` for `username` for `duration` (at most `max`).
#[allow(clippy::too_many_arguments)]
pub async fn request(
    store: &dyn Store,
    policy: &Policy,
    actor: &str,
    username: &str,
    role: &str,
    duration: Duration,
    max: Duration,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Elevation, GovernanceError> {
    let user = user_named(store, username).await?;
    if user.status != AccountStatus::Active {
        return Err(refused(format!("{} is {}", user.username, user.status.as_str())));
    }
    let def = policy.role(role).ok_or_else(|| refused(format!("the policy in force has no role named {role:?}")))?;
    if def.administrative() && !user.privileged {
        return Err(refused(format!(
            "role {role} grants administrative permissions; only privileged accounts may hold it"
        )));
    }
    let e = Elevation::request(new_id()?, &user, role, reason, duration, max, now).map_err(refused)?;
    let event = AuditEvent::known(now, types::ELEVATION_REQUESTED, Outcome::Success)
        .actor(actor)
        .subject(user.username.as_str())
        .reason(e.reason.clone())
        .detail("elevation_id", e.id.clone())
        .detail("role", role.to_owned())
        .detail("duration_secs", duration.whole_seconds());
    store.request_elevation(&e, &event).await?;
    Ok(e)
}

/// The approver or denier: an active, privileged account (an administrator's own
/// administrative account), and never the requester (core's rule).
async fn decider(store: &dyn Store, username: &str) -> Result<User, GovernanceError> {
    let who = user_named(store, username).await?;
    if who.status != AccountStatus::Active || !who.privileged {
        return Err(refused(format!("{} is not an active privileged (administrative) account", who.username)));
    }
    Ok(who)
}

async fn pending(store: &dyn Store, id: &str) -> Result<Elevation, GovernanceError> {
    store.elevation(id).await?.ok_or_else(|| GovernanceError::NotFound(format!("elevation request {id}")))
}

pub async fn approve(
    store: &dyn Store,
    actor: &str,
    id: &str,
    approver: &str,
    now: OffsetDateTime,
) -> Result<Elevation, GovernanceError> {
    let mut e = pending(store, id).await?;
    let who = decider(store, approver).await?;
    e.approve(&who.username, now).map_err(refused)?;
    let ElevationStatus::Approved { expires_at, .. } = e.status else { return Err(refused("not approved")) };
    let event = AuditEvent::known(now, types::ELEVATION_APPROVED, Outcome::Success)
        .actor(actor)
        .subject(e.username.as_str())
        .detail("elevation_id", e.id.clone())
        .detail("role", e.role.clone())
        .detail("approver", who.username.as_str())
        .detail("expires_at", ts(expires_at));
    if !store.decide_elevation(&e, &event).await? {
        return Err(GovernanceError::Conflict("the request was decided meanwhile".into()));
    }
    Ok(e)
}

pub async fn deny(
    store: &dyn Store,
    actor: &str,
    id: &str,
    by: &str,
    comment: &str,
    now: OffsetDateTime,
) -> Result<Elevation, GovernanceError> {
    let mut e = pending(store, id).await?;
    let who = decider(store, by).await?;
    e.deny(&who.username, comment, now).map_err(refused)?;
    let event = AuditEvent::known(now, types::ELEVATION_DENIED, Outcome::Success)
        .actor(actor)
        .subject(e.username.as_str())
        .detail("elevation_id", e.id.clone())
        .detail("role", e.role.clone())
        .detail("approver", who.username.as_str())
        .detail("comment", comment.trim().to_owned());
    if !store.decide_elevation(&e, &event).await? {
        return Err(GovernanceError::Conflict("the request was decided meanwhile".into()));
    }
    Ok(e)
}

pub fn json(e: &Elevation, now: OffsetDateTime) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": e.id,
        "username": e.username.as_str(),
        "role": e.role,
        "reason": e.reason,
        "duration_secs": e.duration.whole_seconds(),
        "requested_at": ts(e.requested_at),
        "status": e.status.as_str(),
        "stale": e.is_stale_at(now),
        "active": e.is_active_at(now),
    });
    match &e.status {
        ElevationStatus::Approved { by, at, expires_at } => {
            v["decided_by"] = by.as_str().into();
            v["decided_at"] = ts(*at).into();
            v["expires_at"] = ts(*expires_at).into();
        }
        ElevationStatus::Denied { by, at, comment } => {
            v["decided_by"] = by.as_str().into();
            v["decided_at"] = ts(*at).into();
            v["comment"] = comment.clone().into();
        }
        _ => {}
    }
    v
}
