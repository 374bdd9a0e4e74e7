//! The node's periodic governance work, once a minute: accounts past their expiry and
//! dormant accounts are disabled (sessions, API tokens and grants ended), access reviews
//! past their deadline are closed, and the overdue break-glass reviews are counted.
//!
//! Several nodes may sweep at once; every change is a conditional store write, so the
//! second one finds nothing left to do.

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::governance::settings::GovernanceSettings;
use wardgate_core::identity::{AccountStatus, User};
use wardgate_store::{Store, StoreError};

use super::ts;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub expired: usize,
    pub dormant: usize,
    pub campaigns_closed: usize,
    /// Open campaigns past their deadline whose undecided items wait for a person.
    pub campaigns_escalated: usize,
    pub breakglass_overdue: usize,
}

/// Disables `user` with `event`, ending its OpenID Connect grants first (as an
/// administrator's disable does); the store ends its sessions and tokens with the change.
async fn disable(store: &dyn Store, user: &User, event: AuditEvent, now: OffsetDateTime) -> Result<bool, StoreError> {
    // Another node's sweep may have got there first: then there is nothing to record.
    if store.user_by_id(&user.id).await?.is_none_or(|u| u.status != AccountStatus::Active) {
        return Ok(false);
    }
    let reason = event.event_type.as_str().to_owned();
    for s in store.sessions_of(&user.id).await? {
        let e = AuditEvent::known(now, types::OIDC_GRANT_REVOKED, Outcome::Success)
            .actor(event.actor.clone().unwrap_or_default())
            .subject(user.username.as_str())
            .reason(reason.clone())
            .correlation_id(s.correlation_id.clone())
            .detail("session_id", s.id.clone());
        store.revoke_grants_of_session(&s.id, now, &reason, &e).await?;
    }
    let changed = User { status: AccountStatus::Disabled, ..user.clone() };
    store.update_user(&changed, &event).await?;
    Ok(true)
}

pub async fn run(
    store: &dyn Store,
    settings: &GovernanceSettings,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Swept, StoreError> {
    let mut out = Swept::default();
    for u in store.users_expired(now).await? {
        let e = AuditEvent::known(now, types::ACCOUNT_EXPIRED, Outcome::Success)
            .actor(actor)
            .subject(u.username.as_str())
            .reason("the account's expiry passed")
            .detail("expired_at", u.account_expires.map(ts).unwrap_or_default())
            .detail("vendor", u.vendor.clone());
        out.expired += usize::from(disable(store, &u, e, now).await?);
    }
    let after = settings.dormant_after();
    for u in store.users_dormant(now - after).await? {
        // Never the last active administrator: nobody could enable anyone again.
        if u.is_admin() && store.count_admins().await? <= 1 {
            continue;
        }
        let e = AuditEvent::known(now, types::ACCOUNT_DORMANT_DISABLED, Outcome::Success)
            .actor(actor)
            .subject(u.username.as_str())
            .reason(format!("no sign-in for {} days", settings.dormant_after_days))
            .detail("last_login_at", u.last_login_at.map(ts).unwrap_or_else(|| "never".into()))
            .detail("dormant_after_days", settings.dormant_after_days);
        out.dormant += usize::from(disable(store, &u, e, now).await?);
    }
    (out.campaigns_closed, out.campaigns_escalated) =
        super::reviews::close_due(store, actor, now).await.map_err(|e| match e {
            super::GovernanceError::Store(s) => s,
            other => StoreError::Unavailable(other.to_string()),
        })?;
    out.breakglass_overdue = super::breakglass::overdue(store, settings.review_within(), now).await?;
    metrics::gauge!("wardgate_breakglass_reviews_overdue").set(out.breakglass_overdue as f64);
    Ok(out)
}
