//! The facts a decision needs that come from the request: the device and the person.

use time::OffsetDateTime;
use wardgate_core::device::Device;
use wardgate_core::identity::{AccountStatus, User};
use wardgate_core::policy::{DeviceFacts, Subject};
use wardgate_core::token;
use wardgate_store::{Store, StoreError};

/// The header a registered workstation (or the application relaying for it) sends its
/// device secret in.
pub const DEVICE_HEADER: &str = "wardgate-device";

/// The registered device that presented its secret, if any. A wrong, unknown or retired
/// secret gives `None`: an unknown device, never an error that would tell a guesser which.
pub async fn device(store: &dyn Store, secret: Option<&str>) -> Result<Option<Device>, StoreError> {
    let Some(secret) = secret else { return Ok(None) };
    // The lookup is by SHA-256 of a 256-bit secret, so comparing digests leaks nothing useful.
    Ok(store.device_by_digest(&token::digest(secret)).await?.filter(|d| d.revoked_at.is_none()))
}

pub fn device_facts(d: &Device) -> DeviceFacts<'_> {
    DeviceFacts { name: &d.name, managed: d.managed, trusted: d.trusted, posture: d.posture, site: d.site.as_deref() }
}

/// The person as the policy sees them at `now`: expired role assignments are left out.
pub fn subject<'a>(user: &'a User, roles: &'a [String], now: OffsetDateTime) -> Subject<'a> {
    let locked = user.attempts.locked_until.is_some_and(|t| t > now);
    Subject {
        username: user.username.as_str(),
        roles,
        privileged: user.privileged,
        active: user.status == AccountStatus::Active,
        recent_failures: if locked { u32::MAX } else { user.attempts.consecutive_failures },
    }
}
