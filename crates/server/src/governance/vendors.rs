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

/// What `wardgate vendor set` may change.
#[derive(Debug, Default, Clone)]
pub struct VendorChange {
    pub display_name: Option<String>,
    pub baa_reference: Option<String>,
    pub baa_effective: Option<Date>,
    pub baa_expires: Option<Date>,
    pub sponsor: Option<String>,
}

/// Changes a vendor. If the agreement now ends earlier, every account of the vendor that
/// would outlive it is brought forward to the new end (each an `admin.user.*` change of its
/// own record), so that no vendor account ever outlasts its agreement. Returns the vendor
/// and the usernames whose expiry moved.
pub async fn update(
    store: &dyn Store,
    actor: &str,
    name: &str,
    change: VendorChange,
    now: OffsetDateTime,
) -> Result<(Vendor, Vec<String>), GovernanceError> {
    let mut v = store.vendor(name).await?.ok_or_else(|| GovernanceError::NotFound(format!("vendor {name}")))?;
    if let Some(d) = change.display_name {
        v.display_name = d.trim().to_owned();
    }
    if let Some(r) = change.baa_reference {
        v.baa_reference = r.trim().to_owned();
    }
    if let Some(d) = change.baa_effective {
        v.baa_effective = d;
    }
    if let Some(d) = change.baa_expires {
        v.baa_expires = d;
    }
    if let Some(s) = change.sponsor {
        let sponsor = user_named(store, &s).await?;
        check_sponsor(&sponsor).map_err(|e| GovernanceError::Refused(e.to_string()))?;
        v.sponsor = sponsor.username;
    }
    v.validate().map_err(|e| GovernanceError::Refused(e.to_string()))?;
    store.update_vendor(&v, &event(types::VENDOR_UPDATED, &v, actor, now)).await?;
    let end = v.baa_ends_at();
    let mut moved = Vec::new();
    for mut u in store.vendor_users(name).await? {
        if u.account_expires.is_none_or(|t| t > end) {
            u.account_expires = Some(end);
            let e = AuditEvent::known(now, types::VENDOR_UPDATED, Outcome::Success)
                .actor(actor)
                .subject(u.username.as_str())
                .reason("the vendor's agreement now ends earlier")
                .detail("vendor", v.name.clone())
                .detail("account_expires", ts(end));
            store.update_user(&u, &e).await?;
            moved.push(u.username.as_str().to_owned());
        }
    }
    Ok((v, moved))
}
