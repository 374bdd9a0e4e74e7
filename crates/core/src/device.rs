//! Registered workstations and their posture (R2).
//!
//! A device is known to Wardgate by a name and a secret the workstation presents; anything
//! that presents no valid device secret is an unknown device, and unknown devices are never
//! trusted.

use time::OffsetDateTime;

/// What the workstation last reported about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Posture {
    pub disk_encrypted: bool,
    pub patched: bool,
    /// When the device last reported its posture; `None` if it never has.
    pub checked_in_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Random, stable, never reused.
    pub id: String,
    /// Unique, lowercase, e.g. `ws-icu-03`.
    pub name: String,
    pub site: Option<String>,
    /// Managed by the hospital's IT (imaged, inventoried).
    pub managed: bool,
    /// Trusted for longer sessions: a shared clinical workstation in a controlled area.
    pub trusted: bool,
    pub posture: Posture,
    /// SHA-256 of the device secret.
    pub secret_digest: [u8; 32],
    pub created_at: OffsetDateTime,
    /// Set when the device is retired; a retired device is unknown from then on.
    pub revoked_at: Option<OffsetDateTime>,
}

/// A device name: 1–64 characters of lowercase letters, digits, `.`, `_`, `-`.
pub fn valid_device_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}
