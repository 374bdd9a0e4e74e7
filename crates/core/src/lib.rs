//! Wardgate's domain core.
//!
//! Everything here is plain data and pure functions: no HTTP, no SQL, and no clock of its
//! own — every function that needs the time takes `now` as a parameter, so expiries,
//! retention and checkpoint schedules are tested deterministically.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod api_token;
pub mod audit;
pub mod device;
pub mod factors;
pub mod flow;
pub mod governance;
pub mod identity;
pub mod keys;
pub mod lifecycle;
pub mod lockout;
pub mod login;
pub mod oidc;
pub mod passphrase;
pub mod policy;
pub mod scim;
pub mod secrets;
pub mod session;
pub mod settings;
pub mod token;

/// Microseconds since the Unix epoch, the one timestamp representation every store uses.
pub fn unix_micros(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// Inverse of [`unix_micros`]; out-of-range values clamp to the epoch rather than panic.
pub fn from_unix_micros(us: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
