//! Registered workstations (R2): shared by `wardgate device …` and the admin API.
//!
//! Registering a device prints its secret once; the workstation (its kiosk browser policy
//! or agent) sends it in the `Wardgate-Device` header. Only its digest is kept. Posture
//! reports come from IT's endpoint management through the CLI or the admin API.

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::device::{Device, Posture, valid_device_name};
use wardgate_core::token;
use wardgate_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    #[error("device names are 1-64 lowercase letters, digits, '.', '_' and '-'")]
    Name,
    #[error("site names are 1-64 printable characters")]
    Site,
    #[error("a device named {0} is already registered")]
    Taken(String),
    #[error("no device named {0}")]
    Unknown(String),
    #[error("a trusted device must also be managed")]
    TrustedUnmanaged,
    #[error("system random number generator failed")]
    Random,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DevicesError {
    fn from(e: StoreError) -> Self {
        DevicesError::Store(e)
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewDevice {
    pub name: String,
    pub site: Option<String>,
    pub managed: bool,
    pub trusted: bool,
}

/// Changes to a device; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DeviceChange {
    pub site: Option<Option<String>>,
    pub managed: Option<bool>,
    pub trusted: Option<bool>,
    pub disk_encrypted: Option<bool>,
    pub patched: Option<bool>,
    /// Record a posture check-in at the current time.
    pub checked_in: bool,
}

pub struct Devices<'a> {
    store: &'a dyn Store,
    actor: &'a str,
    now: OffsetDateTime,
}

fn check_site(site: &Option<String>) -> Result<(), DevicesError> {
    match site {
        Some(s) if s.is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) => Err(DevicesError::Site),
        _ => Ok(()),
    }
}

impl<'a> Devices<'a> {
    pub fn new(store: &'a dyn Store, actor: &'a str, now: OffsetDateTime) -> Self {
        Self { store, actor, now }
    }

    fn event(&self, t: &'static str, d: &Device) -> AuditEvent {
        let mut e = AuditEvent::known(self.now, t, Outcome::Success)
            .actor(self.actor)
            .detail("device", d.name.clone())
            .detail("managed", d.managed)
            .detail("trusted", d.trusted)
            .detail("disk_encrypted", d.posture.disk_encrypted)
            .detail("patched", d.posture.patched);
        e.device_id = Some(d.name.clone());
        if let Some(s) = &d.site {
            e = e.detail("site", s.clone());
        }
        e
    }

    /// Registers a device and returns it with its secret (shown once).
    pub async fn add(&self, new: NewDevice) -> Result<(Device, String), DevicesError> {
        let name = new.name.trim().to_ascii_lowercase();
        if !valid_device_name(&name) {
            return Err(DevicesError::Name);
        }
        check_site(&new.site)?;
        if new.trusted && !new.managed {
            return Err(DevicesError::TrustedUnmanaged);
        }
        let secret = format!("wgd_{}", token::generate().map_err(|_| DevicesError::Random)?);
        let d = Device {
            id: token::random_id().map_err(|_| DevicesError::Random)?,
            name: name.clone(),
            site: new.site,
            managed: new.managed,
            trusted: new.trusted,
            posture: Posture::default(),
            secret_digest: token::digest(&secret),
            created_at: self.now,
            revoked_at: None,
        };
        match self.store.create_device(&d, &self.event(types::DEVICE_REGISTERED, &d)).await {
            Err(StoreError::Conflict) => Err(DevicesError::Taken(name)),
            r => r.map_err(DevicesError::from),
        }?;
        Ok((d, secret))
    }

    pub async fn get(&self, name: &str) -> Result<Device, DevicesError> {
        let name = name.trim().to_ascii_lowercase();
        self.store.device_by_name(&name).await?.ok_or(DevicesError::Unknown(name))
    }

    pub async fn list(&self) -> Result<Vec<Device>, DevicesError> {
        Ok(self.store.list_devices().await?)
    }

    pub async fn change(&self, name: &str, c: DeviceChange) -> Result<Device, DevicesError> {
        let mut d = self.get(name).await?;
        if let Some(site) = c.site {
            check_site(&site)?;
            d.site = site;
        }
        d.managed = c.managed.unwrap_or(d.managed);
        d.trusted = c.trusted.unwrap_or(d.trusted);
        if d.trusted && !d.managed {
            return Err(DevicesError::TrustedUnmanaged);
        }
        d.posture.disk_encrypted = c.disk_encrypted.unwrap_or(d.posture.disk_encrypted);
        d.posture.patched = c.patched.unwrap_or(d.posture.patched);
        if c.checked_in {
            d.posture.checked_in_at = Some(self.now);
        }
        self.store.update_device(&d, &self.event(types::DEVICE_UPDATED, &d)).await?;
        Ok(d)
    }

    /// Retires a device: its secret stops working at once and it counts as unknown.
    pub async fn retire(&self, name: &str) -> Result<Device, DevicesError> {
        let mut d = self.get(name).await?;
        if d.revoked_at.is_none() {
            d.revoked_at = Some(self.now);
            self.store.update_device(&d, &self.event(types::DEVICE_RETIRED, &d)).await?;
        }
        Ok(d)
    }
}

/// The JSON shape of a device for the CLI and the admin API (never the secret).
pub fn view(d: &Device) -> serde_json::Value {
    let ts = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    serde_json::json!({
        "name": d.name,
        "site": d.site,
        "managed": d.managed,
        "trusted": d.trusted,
        "disk_encrypted": d.posture.disk_encrypted,
        "patched": d.posture.patched,
        "checked_in_at": ts(d.posture.checked_in_at),
        "created_at": ts(Some(d.created_at)),
        "retired_at": ts(d.revoked_at),
    })
}
