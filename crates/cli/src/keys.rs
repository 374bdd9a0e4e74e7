//! `wardgate keys rotate`: a new key-encryption key, every sealed secret re-wrapped under
//! it, the old key retired — while servers keep running.
//!
//! Order matters for zero downtime: (1) the key file gains the new key as active while the
//! old stays readable, (2) we wait for running nodes to reload it (they poll every
//! second), (3) every sealed value is re-wrapped with compare-and-swap, (4) a final sweep
//! catches values sealed meanwhile, (5) the old key leaves the file.

use std::time::Duration;

use clap::Subcommand;
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::secrets::{Kek, sealed_key_id};
use wardgate_server::datadir;
use wardgate_server::{Installation, OpenMode};
use wardgate_store::Store;

use crate::{Failure, GlobalArgs, settings_load};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every stored secret under a new key-encryption key and retire the old one.
    Rotate {
        /// Seconds to wait for running nodes to load the new key before re-wrapping.
        #[arg(long, default_value_t = 2)]
        grace_secs: u64,
    },
    /// Make a new token-signing key for OpenID Connect. Running nodes sign with it within
    /// seconds; the old key stays in the JWKS until the tokens it signed have expired.
    RotateSigning,
}

pub async fn run(global: &GlobalArgs, cmd: KeysCommand) -> Result<(), Failure> {
    let grace_secs = match cmd {
        KeysCommand::Rotate { grace_secs } => grace_secs,
        KeysCommand::RotateSigning => return rotate_signing(global).await,
    };
    let settings = settings_load::load(global, None)?;
    let inst = Installation::open(settings, OpenMode::Existing).await?;
    let path = inst.keyring.path().to_owned();
    let old = datadir::read_keyring(&path)?;
    let old_ids: Vec<String> = old.ids().iter().map(|s| s.to_string()).collect();
    let ring = old.with_new_active(Kek::generate()?);
    let new_id = ring.active_id().to_owned();
    datadir::write_keyring(&path, &ring)?;
    tokio::time::sleep(Duration::from_secs(grace_secs)).await;

    let mut rewrapped = 0usize;
    for _sweep in 0..2 {
        rewrapped += rewrap_all(&*inst.store, &ring).await?;
    }
    let leftover = inst
        .store
        .sealed_values()
        .await?
        .into_iter()
        .filter(|v| sealed_key_id(&v.sealed).map(|id| id != new_id).unwrap_or(true))
        .count();
    if leftover > 0 {
        return Err(Failure::new(format!(
            "{leftover} secret(s) are still sealed under the old key (changing concurrently?); both keys stay in {} — run the command again",
            path.display()
        )));
    }
    datadir::write_keyring(&path, &ring.retire_inactive())?;
    let event = AuditEvent::known(OffsetDateTime::now_utc(), types::KEYS_ROTATED, Outcome::Success)
        .actor(format!("cli:{}", crate::admin::whoami()))
        .detail("new_key", new_id.clone())
        .detail("retired_keys", old_ids.join(","))
        .detail("rewrapped", rewrapped as u64);
    inst.store.append_audit(&[event]).await?;
    println!("Key-encryption key rotated: {} -> {new_id}; {rewrapped} secret(s) re-wrapped.", old_ids.join(","));
    Ok(())
}

async fn rewrap_all(store: &dyn Store, ring: &wardgate_core::secrets::Keyring) -> Result<usize, Failure> {
    let mut n = 0;
    for v in store.sealed_values().await? {
        if let Some(new) = ring.rewrap(&v.context, &v.sealed)? {
            // A concurrent change wins; the next sweep picks up its value.
            if store.replace_sealed(&v, &new).await? {
                n += 1;
            }
        }
    }
    Ok(n)
}

async fn rotate_signing(global: &GlobalArgs) -> Result<(), Failure> {
    let settings = settings_load::load(global, None)?;
    let inst = Installation::open(settings, OpenMode::Existing).await?;
    let actor = format!("cli:{}", crate::admin::whoami());
    let (made, retired) =
        wardgate_server::oidc::keys::rotate(&*inst.store, &inst.keyring.get(), OffsetDateTime::now_utc(), &actor)
            .await
            .map_err(|e| Failure::new(e.to_string()))?;
    for (kid, alg) in made {
        println!("New token-signing key {kid} ({alg}) signs from now on (running nodes switch within 5 s).");
    }
    for id in retired {
        println!("Retired {id}: still published in the JWKS for 65 minutes, until the tokens it signed have expired.");
    }
    Ok(())
}
