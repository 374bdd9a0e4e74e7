//! Business associates (V1): vendors with their agreement (BAA) and a sponsor on staff.

use time::{Date, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::governance::{Vendor, check_sponsor};
use wardgate_store::{Store, StoreError};

use super::{GovernanceError, ts, user_named};

fn event(t: &'static str, v: &Vendor, actor: &str, now: OffsetDateTime) -> AuditEvent {
    AuditEvent::known(now, t, Outcome::Success)
        .actor(actor)
        .detail("vendor", v.name.clone())
        .detail("baa_reference", v.baa_reference.clone())
        .detail("baa_effective", v.baa_effective.to_string())
        .detail("baa_expires", v.baa_expires.to_string())
        .detail("sponsor", v.sponsor.as_str())
}

#[allow(clippy::too_many_arguments)]
pub async fn add(
    store: &dyn Store,
    actor: &str,
    name: &str,
    display_name: &str,
    baa_reference: &str,
    baa_effective: Date,
    baa_expires: Date,
    sponsor: &str,
    now: OffsetDateTime,
) -> Result<Vendor, GovernanceError> {
    let sponsor = user_named(store, sponsor).await?;
    check_sponsor(&sponsor).map_err(|e| GovernanceError::Refused(e.to_string()))?;
    let v = Vendor {
        name: name.to_owned(),
        display_name: display_name.trim().to_owned(),
        baa_reference: baa_reference.trim().to_owned(),
        baa_effective,
        baa_expires,
        sponsor: sponsor.username,
        created_at: now,
    };
    v.validate().map_err(|e| GovernanceError::Refused(e.to_string()))?;
    match store.create_vendor(&v, &event(types::VENDOR_CREATED, &v, actor, now)).await {
        Ok(()) => Ok(v),
        Err(StoreError::Conflict) => Err(GovernanceError::Conflict(format!("vendor {name} already exists"))),
        Err(e) => Err(e.into()),
    }
}

pub fn json(v: &Vendor, now: OffsetDateTime) -> serde_json::Value {
    serde_json::json!({
        "name": v.name,
        "display_name": v.display_name,
        "baa_reference": v.baa_reference,
        "baa_effective": v.baa_effective.to_string(),
        "baa_expires": v.baa_expires.to_string(),
        "baa_in_force": v.baa_in_force_at(now),
        "sponsor": v.sponsor.as_str(),
        "created_at": ts(v.created_at),
    })
}
