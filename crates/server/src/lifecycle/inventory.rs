//! The factor inventory (L2): every factor of every person, what it is and where it came
//! from, when it was last used and when it expires — never its secret — and setting an
//! expiry, after which the factor is refused at sign-in.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{Factor, FactorKind};
use wardgate_store::Store;

use super::GovernanceError;
use crate::governance::{ts, user_named};

/// Where the model names come from, shown with them so nobody mistakes a guess for an
/// attestation: the AAGUID is what the authenticator claims at registration.
pub const MODEL_SOURCE: &str =
    "built-in table of well-known AAGUIDs (FIDO Alliance Metadata Service and vendor documentation)";

/// One line of the inventory: the factor's public facts. The secret is never read here.
pub fn json(username: &str, f: &Factor, now: OffsetDateTime) -> serde_json::Value {
    let p = &f.params;
    let text = |k: &str| p.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
    let aaguid = text("aaguid");
    let model = (f.kind == FactorKind::Webauthn).then(|| {
        text("model")
            .or_else(|| {
                let id = webauthn_rs::prelude::Uuid::parse_str(aaguid.as_deref()?).ok()?;
                crate::auth::webauthn::model_name(id).map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".into())
    });
    // A WebAuthn credential that cannot be backed up lives in one authenticator only; a
    // synced passkey follows the person's cloud account to any device.
    let device_bound = (f.kind == FactorKind::Webauthn)
        .then(|| !p.get("backup_eligible").and_then(serde_json::Value::as_bool).unwrap_or(false));
    serde_json::json!({
        "id": f.id,
        "username": username,
        "kind": f.kind.as_str(),
        "label": f.label,
        "serial": text("serial"),
        "aaguid": aaguid,
        "model": model,
        "model_source": model.as_ref().map(|_| MODEL_SOURCE),
        "device_bound": device_bound,
        "bound_device": text("device"),
        "enrolled_at": ts(f.created_at),
        "enrolled_by": f.enrolled_by.clone().unwrap_or_else(|| "unknown".into()),
        "last_used_at": f.last_used_at.map(ts),
        "expires_at": f.expires_at.map(ts),
        "expired": f.expired_at(now),
    })
}

/// The inventory, by username then enrollment time: one person's factors or everyone's,
/// optionally only those expiring within `expiring` of `now` (already expired included).
pub async fn list(
    store: &dyn Store,
    username: Option<&str>,
    expiring: Option<Duration>,
    now: OffsetDateTime,
) -> Result<Vec<serde_json::Value>, GovernanceError> {
    let user = match username {
        Some(name) => Some(user_named(store, name).await?),
        None => None,
    };
    let factors = store.factor_inventory(user.as_ref().map(|u| u.id.as_str()), expiring.map(|d| now + d)).await?;
    // Usernames by id: the one person asked for, or the whole directory in pages (an
    // inventory of everyone would otherwise read one account per person).
    let mut names: HashMap<String, String> = HashMap::new();
    match &user {
        Some(u) => {
            names.insert(u.id.clone(), u.username.to_string());
        }
        None => {
            let mut after: Option<String> = None;
            loop {
                let page = store.list_users(after.as_deref(), 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.username.to_string());
                names.extend(page.into_iter().map(|u| (u.id, u.username.to_string())));
            }
        }
    }
    let mut rows: Vec<(String, &Factor)> =
        factors.iter().map(|f| (names.get(&f.user_id).cloned().unwrap_or_default(), f)).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.created_at.cmp(&b.1.created_at)));
    Ok(rows.into_iter().map(|(name, f)| json(&name, f, now)).collect())
}

/// Sets when one factor stops working (or, with `None`, clears it). Passphrases never expire
/// (NIST SP 800-63B §3.1.1.2: no periodic rotation); second factors and recovery codes may.
pub async fn expire(
    store: &dyn Store,
    actor: &str,
    username: &str,
    factor_id: &str,
    at: Option<OffsetDateTime>,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Factor, GovernanceError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(GovernanceError::Refused("a reason is required".into()));
    }
    let user = user_named(store, username).await?;
    let mut f = store
        .factors_of(&user.id)
        .await?
        .into_iter()
        .find(|f| f.id == factor_id)
        .ok_or_else(|| GovernanceError::NotFound(format!("factor {factor_id} of {}", user.username)))?;
    if f.kind == FactorKind::Passphrase {
        return Err(GovernanceError::Refused(
            "passphrases do not expire; reset it with `wardgate user reset-passphrase` instead".into(),
        ));
    }
    if at.is_some_and(|t| t <= now) {
        return Err(GovernanceError::Refused("the expiry must lie in the future; remove the factor instead".into()));
    }
    let e = AuditEvent::known(now, types::FACTOR_EXPIRY_SET, Outcome::Success)
        .actor(actor)
        .subject(user.username.as_str())
        .reason(reason.to_owned())
        .factor(f.kind.amr())
        .detail("factor_id", f.id.clone())
        .detail("kind", f.kind.as_str())
        .detail("expires_at", at.map(ts));
    store.set_factor_expiry(&user.id, &f.id, at, &e).await?;
    f.expires_at = at;
    Ok(f)
}
