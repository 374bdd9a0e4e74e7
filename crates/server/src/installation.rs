//! One Wardgate installation as a process sees it: settings, store, key-encryption keys,
//! node name. The server and every CLI command open it the same way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use ed25519_dalek::{SigningKey, VerifyingKey};
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, CheckpointSigner, Outcome};
use wardgate_core::keys::{PURPOSE_AUDIT_CHECKPOINT, SigningKeyRecord};
use wardgate_core::secrets::Keyring;
use wardgate_core::settings::{DatabaseLocation, Settings};
use wardgate_store::{Store, StoreError};

use crate::datadir::{self, DataDirError};

/// Set in the store when the first secret is sealed; its presence means the key file is
/// irreplaceable.
const META_SEALED_UNDER: &str = "sealed_under_kek";

#[derive(Debug, thiserror::Error)]
pub enum InstallationError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open the signing key: {0}")]
    Key(String),
}

/// Whether opening may create what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `serve`: create the data directory, database and key file on first start.
    Create,
    /// Administrative commands: work on an existing installation only.
    Existing,
}

/// The key-encryption keys, reloaded when the key file changes (rotation by the CLI).
pub struct KeyringCell {
    path: PathBuf,
    inner: RwLock<(Arc<Keyring>, Option<SystemTime>)>,
}

impl KeyringCell {
    fn new(path: PathBuf, ring: Keyring) -> Self {
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Self { path, inner: RwLock::new((Arc::new(ring), mtime)) }
    }

    pub fn get(&self) -> Arc<Keyring> {
        self.inner.read().map(|g| Arc::clone(&g.0)).unwrap_or_else(|p| Arc::clone(&p.into_inner().0))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Re-reads the key file if it changed on disk; keeps the old keys if the new file is bad.
    pub fn reload_if_changed(&self) -> Result<bool, DataDirError> {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let current = self.inner.read().map(|g| g.1).unwrap_or(None);
        if mtime == current {
            return Ok(false);
        }
        let ring = datadir::read_keyring(&self.path)?;
        if let Ok(mut g) = self.inner.write() {
            *g = (Arc::new(ring), mtime);
        }
        Ok(true)
    }
}

pub struct Installation {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub keyring: Arc<KeyringCell>,
    pub node_id: String,
}

impl Installation {
    pub async fn open(settings: Settings, mode: OpenMode) -> Result<Self, InstallationError> {
        let location = settings.database_location();
        match mode {
            OpenMode::Create => datadir::ensure_dir(&settings.data_dir)?,
            OpenMode::Existing => {
                if let DatabaseLocation::Sqlite(path) = &location
                    && !path.exists()
                {
                    return Err(DataDirError::NotInstalled(settings.data_dir.clone()).into());
                }
            }
        }
        if let DatabaseLocation::Sqlite(path) = &location
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            datadir::ensure_dir(parent)?;
        }
        let node_id = if mode == OpenMode::Create || settings.data_dir.is_dir() {
            datadir::node_id(&settings.data_dir, settings.node_id.as_deref())?
        } else {
            settings.node_id.clone().unwrap_or_else(|| "cli".into())
        };
        let store = wardgate_store::open(&location, &node_id).await?;
        let key_path = settings.master_key_path();
        let ring = if key_path.exists() {
            datadir::read_keyring(&key_path)?
        } else if let Some(kek) = store.meta_get(META_SEALED_UNDER).await? {
            return Err(DataDirError::MissingKeyFile { path: key_path, kek }.into());
        } else if mode == OpenMode::Existing {
            return Err(DataDirError::NotInstalled(settings.data_dir.clone()).into());
        } else {
            let ring = Keyring::generate().map_err(|e| InstallationError::Key(e.to_string()))?;
            datadir::write_keyring(&key_path, &ring)?;
            ring
        };
        store.meta_init(META_SEALED_UNDER, ring.active_id()).await?;
        Ok(Self { settings, store, keyring: Arc::new(KeyringCell::new(key_path, ring)), node_id })
    }

    /// The newest audit-checkpoint key that opens under our keys, or a new one.
    pub async fn checkpoint_signer(&self, now: OffsetDateTime) -> Result<CheckpointSigner, InstallationError> {
        let ring = self.keyring.get();
        let existing = self.store.signing_keys(PURPOSE_AUDIT_CHECKPOINT).await?;
        for rec in &existing {
            if let Some(key) = open_signing_key(&ring, rec) {
                return Ok(CheckpointSigner::new(rec.id.clone(), self.node_id.clone(), key));
            }
        }
        // Keys exist but none opens: this key file is not the one the database was set up
        // with. Making a new signing key would split the evidence; refuse instead.
        if !existing.is_empty() {
            return Err(InstallationError::Key(format!(
                "key file {} does not open any of the database's {} signing key(s): it is not this installation's key file",
                self.keyring.path().display(),
                existing.len()
            )));
        }
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| InstallationError::Key(e.to_string()))?;
        let key = SigningKey::from_bytes(&seed);
        let id = wardgate_core::token::random_id().map_err(|e| InstallationError::Key(e.to_string()))?;
        let rec = SigningKeyRecord {
            private_sealed: ring
                .seal(&SigningKeyRecord::seal_context(&id), seed.as_ref())
                .map_err(|e| InstallationError::Key(e.to_string()))?,
            id: id.clone(),
            purpose: PURPOSE_AUDIT_CHECKPOINT.into(),
            public_key: key.verifying_key().to_bytes(),
            created_at: now,
        };
        let event = AuditEvent::known(now, types::KEYS_SIGNING_CREATED, Outcome::Success)
            .actor(format!("node:{}", self.node_id))
            .detail("key_id", id.clone())
            .detail("purpose", PURPOSE_AUDIT_CHECKPOINT);
        self.store.insert_signing_key(&rec, &event).await?;
        Ok(CheckpointSigner::new(id, self.node_id.clone(), key))
    }

    /// Public keys of checkpoint signers that are provably ours: their private half opens
    /// under our key-encryption keys and matches. A key planted in the database by someone
    /// without the key file is not in this map.
    pub async fn trusted_checkpoint_keys(&self) -> Result<HashMap<String, VerifyingKey>, InstallationError> {
        let ring = self.keyring.get();
        Ok(self
            .store
            .signing_keys(PURPOSE_AUDIT_CHECKPOINT)
            .await?
            .into_iter()
            .filter_map(|rec| open_signing_key(&ring, &rec).map(|k| (rec.id, k.verifying_key())))
            .collect())
    }
}

fn open_signing_key(ring: &Keyring, rec: &SigningKeyRecord) -> Option<SigningKey> {
    let seed = ring.open(&SigningKeyRecord::seal_context(&rec.id), &rec.private_sealed).ok()?;
    let seed: [u8; 32] = seed.as_slice().try_into().ok()?;
    let key = SigningKey::from_bytes(&seed);
    (key.verifying_key().to_bytes() == rec.public_key).then_some(key)
}
