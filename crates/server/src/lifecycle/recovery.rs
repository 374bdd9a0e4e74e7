//! Help-desk recovery (L3): an agent holding `recovery.open` opens a request for a person
//! who lost their second factor; a different person holding `recovery.approve` — never the
//! agent, never the person — approves it, which makes a one-time link valid for a short
//! time (`governance.recovery_link_minutes`), kept only as its digest and shown once to
//! the approver to hand over through a verified channel. The link enrolls one new second
//! factor and nothing else (see `auth::enroll::begin_recovery`). Every step is audited,
//! refusals included.

use time::{Duration, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{AccountStatus, User};
use wardgate_core::lifecycle::{RecoveryRequest, RecoveryStatus};
use wardgate_core::policy::Policy;
use wardgate_core::token;
use wardgate_store::{Store, StoreError};

use super::{GovernanceError, RECOVERY_APPROVE, RECOVERY_OPEN};
use crate::governance::{holds, new_id, ts, user_named};

/// An approval: the request as it now stands and the link, shown once.
pub struct Approved {
    pub request: RecoveryRequest,
    pub link: String,
    pub expires_at: OffsetDateTime,
}

async fn refuse(
    store: &dyn Store,
    actor: &str,
    subject: &str,
    by: &str,
    why: String,
    request_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut e = AuditEvent::known(now, types::RECOVERY_REFUSED, Outcome::Denied)
        .actor(actor)
        .subject(subject)
        .reason(why)
        .detail("by", by.to_owned());
    if let Some(id) = request_id {
        e = e.detail("recovery_id", id.to_owned());
    }
    store.append_audit(&[e]).await.map(|_| ())
}

/// Opens a request for `username`, by the help-desk agent `agent`.
#[allow(clippy::too_many_arguments)]
pub async fn open(
    store: &dyn Store,
    policy: &Policy,
    actor: &str,
    username: &str,
    agent: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<RecoveryRequest, GovernanceError> {
    let user = user_named(store, username).await?;
    let who = user_named(store, agent).await?;
    let refused = |why: String| refuse(store, actor, user.username.as_str(), who.username.as_str(), why, None, now);
    if who.status != AccountStatus::Active || !holds(policy, &who, RECOVERY_OPEN, now) {
        let why = format!("{} does not hold the permission {RECOVERY_OPEN}", who.username);
        refused(why.clone()).await?;
        return Err(GovernanceError::NotPermitted(why));
    }
    if user.status != AccountStatus::Active {
        let why = match user.status {
            AccountStatus::Invited => "has not enrolled yet; issue a new enrollment link instead",
            AccountStatus::Disabled => "is disabled; enable the account first",
            _ => "is terminated",
        };
        let why = format!("{} {why}", user.username);
        refused(why.clone()).await?;
        return Err(GovernanceError::Refused(why));
    }
    let r = match RecoveryRequest::open(
        new_id()?,
        user.id.clone(),
        user.username.clone(),
        who.username.clone(),
        reason,
        now,
    ) {
        Ok(r) => r,
        Err(e) => {
            refused(e.to_string()).await?;
            return Err(GovernanceError::Refused(e.to_string()));
        }
    };
    let e = AuditEvent::known(now, types::RECOVERY_OPENED, Outcome::Success)
        .actor(actor)
        .subject(user.username.as_str())
        .reason(r.reason.clone())
        .detail("recovery_id", r.id.clone())
        .detail("opened_by", who.username.as_str());
    store.open_recovery(&r, &e).await?;
    Ok(r)
}

async fn decider(
    store: &dyn Store,
    policy: &Policy,
    actor: &str,
    r: &RecoveryRequest,
    by: &str,
    now: OffsetDateTime,
) -> Result<User, GovernanceError> {
    let who = user_named(store, by).await?;
    if who.status != AccountStatus::Active || !holds(policy, &who, RECOVERY_APPROVE, now) {
        let why = format!("{} does not hold the permission {RECOVERY_APPROVE}", who.username);
        refuse(store, actor, r.username.as_str(), who.username.as_str(), why.clone(), Some(&r.id), now).await?;
        return Err(GovernanceError::NotPermitted(why));
    }
    Ok(who)
}

async fn request(store: &dyn Store, id: &str) -> Result<RecoveryRequest, GovernanceError> {
    store.recovery_request(id).await?.ok_or_else(|| GovernanceError::NotFound(format!("recovery request {id}")))
}

/// Approves request `id` as `by`; the link is `{base_url}/recover?token=…`.
#[allow(clippy::too_many_arguments)]
pub async fn approve(
    store: &dyn Store,
    policy: &Policy,
    actor: &str,
    id: &str,
    by: &str,
    link_ttl: Duration,
    base_url: &str,
    now: OffsetDateTime,
) -> Result<Approved, GovernanceError> {
    let mut r = request(store, id).await?;
    let who = decider(store, policy, actor, &r, by, now).await?;
    if let Err(e) = r.approve(who.username.clone(), link_ttl, now) {
        refuse(store, actor, r.username.as_str(), who.username.as_str(), e.to_string(), Some(&r.id), now).await?;
        return Err(GovernanceError::Refused(e.to_string()));
    }
    let secret = token::generate().map_err(|e| GovernanceError::Store(StoreError::Unavailable(e.to_string())))?;
    let expires_at = now + link_ttl;
    // The link itself is never recorded: the audit log is read by many, the link is a
    // credential until it is used or expires.
    let e = AuditEvent::known(now, types::RECOVERY_APPROVED, Outcome::Success)
        .actor(actor)
        .subject(r.username.as_str())
        .detail("recovery_id", r.id.clone())
        .detail("approver", who.username.as_str())
        .detail("opened_by", r.opened_by.as_str())
        .detail("link_expires_at", ts(expires_at));
    if !store.decide_recovery(&r, Some(&token::digest(&secret)), &e).await? {
        return Err(GovernanceError::Conflict("the request was decided meanwhile".into()));
    }
    let link = format!("{}/recover?token={secret}", base_url.trim_end_matches('/'));
    Ok(Approved { request: r, link, expires_at })
}

/// Denies request `id` as `by` (the same rule on who decides as for an approval).
#[allow(clippy::too_many_arguments)]
pub async fn deny(
    store: &dyn Store,
    policy: &Policy,
    actor: &str,
    id: &str,
    by: &str,
    comment: &str,
    now: OffsetDateTime,
) -> Result<RecoveryRequest, GovernanceError> {
    let mut r = request(store, id).await?;
    let who = decider(store, policy, actor, &r, by, now).await?;
    if let Err(e) = r.deny(who.username.clone(), comment, now) {
        refuse(store, actor, r.username.as_str(), who.username.as_str(), e.to_string(), Some(&r.id), now).await?;
        return Err(GovernanceError::Refused(e.to_string()));
    }
    let e = AuditEvent::known(now, types::RECOVERY_DENIED, Outcome::Success)
        .actor(actor)
        .subject(r.username.as_str())
        .reason(comment.trim().to_owned())
        .detail("recovery_id", r.id.clone())
        .detail("approver", who.username.as_str());
    if !store.decide_recovery(&r, None, &e).await? {
        return Err(GovernanceError::Conflict("the request was decided meanwhile".into()));
    }
    Ok(r)
}

pub fn json(r: &RecoveryRequest, now: OffsetDateTime) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": r.id,
        "username": r.username.as_str(),
        "opened_by": r.opened_by.as_str(),
        "reason": r.reason,
        "opened_at": ts(r.opened_at),
        "status": r.state_at(now),
    });
    let (by, at, link_expires_at, used_at, factor_id, comment) = match &r.status {
        RecoveryStatus::Pending => (None, None, None, None, None, None),
        RecoveryStatus::Approved { by, at, link_expires_at } => {
            (Some(by), Some(*at), Some(*link_expires_at), None, None, None)
        }
        RecoveryStatus::Denied { by, at, comment } => (Some(by), Some(*at), None, None, None, Some(comment.clone())),
        RecoveryStatus::Used { by, at, link_expires_at, used_at, factor_id } => {
            (Some(by), Some(*at), Some(*link_expires_at), Some(*used_at), Some(factor_id.clone()), None)
        }
    };
    if let Some(m) = v.as_object_mut() {
        m.insert("decided_by".into(), by.map(|b| b.as_str()).into());
        m.insert("decided_at".into(), at.map(ts).into());
        m.insert("link_expires_at".into(), link_expires_at.map(ts).into());
        m.insert("used_at".into(), used_at.map(ts).into());
        m.insert("factor_id".into(), factor_id.into());
        m.insert("comment".into(), comment.into());
    }
    v
}
