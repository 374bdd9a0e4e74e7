//! Checking one factor of one account: TOTP (with cross-node replay refusal), recovery
//! codes (spent by compare-and-set) and WebAuthn assertions (with counter-regression
//! detection). Used by the login flow and by the account page's step-up checks.

use time::OffsetDateTime;
use wardgate_core::factors::recovery_codes;
use wardgate_core::factors::totp::{self, TotpError, TotpParams};
use wardgate_core::identity::{Factor, FactorKind};
use wardgate_core::login::FactorUsed;
use wardgate_core::secrets::Keyring;
use wardgate_store::{Store, StoreError};
use webauthn_rs::prelude::{AuthenticationResult, Passkey};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Wrong code, unknown credential: the attempt counts as a failure.
    #[error("not accepted")]
    Rejected,
    /// The code was right but its time step was already used (here or on another node).
    #[error("code already used")]
    Replayed,
    #[error("{0}")]
    Malformed(String),
    /// A key's signature counter went backwards: it may have been cloned.
    #[error("signature counter regression")]
    CounterRegression { factor_id: String, stored: u32, presented: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("factor secret cannot be opened: {0}")]
    Secret(String),
    /// The response was right, but for a factor past its expiry (L2): refused, and not
    /// counted as a guess — whoever sent it holds the factor.
    #[error("factor expired")]
    Expired { factor_id: String, at: OffsetDateTime },
}

/// Which factor passed, for the audit record.
#[derive(Debug, Clone)]
pub struct Passed {
    pub factor_id: String,
    pub used: FactorUsed,
    /// Recovery codes left after this one (recovery codes only).
    pub remaining: Option<usize>,
    /// A security key's counter went backwards but policy lets it through: (stored,
    /// presented), to be audited as a possible clone.
    pub counter_regression: Option<(u32, u32)>,
}

pub async fn totp(
    store: &dyn Store,
    keyring: &Keyring,
    factors: &[Factor],
    code: &str,
    now: OffsetDateTime,
) -> Result<Passed, CheckError> {
    let mut replayed = false;
    let mut expired = None;
    for f in factors.iter().filter(|f| f.kind == FactorKind::Totp) {
        let params = TotpParams::from_json(&f.params).unwrap_or_default();
        let secret =
            keyring.open(&Factor::seal_context(&f.id), &f.secret).map_err(|e| CheckError::Secret(e.to_string()))?;
        let last = f.counter.and_then(|c| u64::try_from(c).ok());
        match totp::verify(params, &secret, code, now, last) {
            // Checked after the code, so that the refusal names the factor only to whoever
            // holds it; the counter is left alone, since nothing was accepted.
            Ok(_) if f.expired_at(now) => {
                expired = f.expires_at.map(|at| (f.id.clone(), at));
            }
            Ok(step) => {
                let step = i64::try_from(step).map_err(|_| CheckError::Rejected)?;
                // The store's compare-and-set is the real replay check: the in-memory
                // comparison above only saw this node's last read.
                if store.advance_factor_counter(&f.id, step, now).await? {
                    return Ok(Passed {
                        factor_id: f.id.clone(),
                        used: FactorUsed::Totp,
                        remaining: None,
                        counter_regression: None,
                    });
                }
                replayed = true;
            }
            Err(TotpError::Replayed) => replayed = true,
            Err(TotpError::Malformed(d)) => return Err(CheckError::Malformed(format!("the code must be {d} digits"))),
            Err(_) => {}
        }
    }
    if let Some((factor_id, at)) = expired {
        return Err(CheckError::Expired { factor_id, at });
    }
    Err(if replayed { CheckError::Replayed } else { CheckError::Rejected })
}

/// Stored form of a recovery-code factor's secret: the Argon2id hash of each slot.
pub fn slots_of(f: &Factor) -> Vec<Option<String>> {
    serde_json::from_str(&f.secret).unwrap_or_default()
}

pub async fn recovery_code(
    store: &dyn Store,
    factors: &[Factor],
    typed: &str,
    now: OffsetDateTime,
    client_ip: Option<std::net::IpAddr>,
) -> Result<Passed, CheckError> {
    let Some(f) = factors.iter().find(|f| f.kind == FactorKind::RecoveryCodes) else {
        return Err(CheckError::Rejected);
    };
    if let Some(at) = f.expires_at.filter(|_| f.expired_at(now)) {
        return Err(CheckError::Expired { factor_id: f.id.clone(), at });
    }
    let slots = slots_of(f);
    let typed = typed.to_owned();
    let check_slots = slots.clone();
    let slot = tokio::task::spawn_blocking(move || recovery_codes::verify(&typed, &check_slots))
        .await
        .map_err(|_| CheckError::Rejected)?
        .map_err(|e| match e {
            recovery_codes::RecoveryError::Malformed => {
                CheckError::Malformed("a recovery code is 16 letters and digits, such as 7KQM-2Z9D-XW4R-8BNT".into())
            }
            _ => CheckError::Rejected,
        })?;
    let mut spent = slots;
    spent[slot] = None;
    let remaining = recovery_codes::remaining(&spent);
    let mut new = f.clone();
    new.secret = serde_json::to_string(&spent).map_err(|e| CheckError::Secret(e.to_string()))?;
    new.last_used_at = Some(now);
    new.params = serde_json::json!({
        "remaining": remaining,
        "last_used_ip": client_ip.map(|ip| ip.to_string()),
    });
    // Compare-and-set on the old slots: two logins racing with the same code, on any
    // nodes, cannot both spend it.
    if !store.update_factor(&new, &f.secret, None).await? {
        return Err(CheckError::Rejected);
    }
    Ok(Passed {
        factor_id: f.id.clone(),
        used: FactorUsed::RecoveryCode,
        remaining: Some(remaining),
        counter_regression: None,
    })
}

/// The passkeys stored in a user's WebAuthn factors, with their factor ids.
///
/// Their signature counter is zeroed on the way out: `webauthn-rs` would otherwise refuse a
/// counter that did not rise, before Wardgate could record the possible clone and apply
/// `auth.webauthn_refuse_counter_regression`. The factor's own `counter` column, checked in
/// [`webauthn_used`], is the one that decides.
pub fn passkeys(keyring: &Keyring, factors: &[Factor]) -> Vec<(String, Passkey)> {
    factors
        .iter()
        .filter(|f| f.kind == FactorKind::Webauthn)
        .filter_map(|f| {
            let plain = keyring.open(&Factor::seal_context(&f.id), &f.secret).ok()?;
            let mut json: serde_json::Value = serde_json::from_slice(&plain).ok()?;
            if let Some(c) = json.pointer_mut("/cred/counter") {
                *c = serde_json::json!(0);
            }
            Some((f.id.clone(), serde_json::from_value::<Passkey>(json).ok()?))
        })
        .collect()
}

/// Records a successful assertion against the factor it used: the new counter (refusing a
/// regression when the policy says so) and the last-use time. The caller has already
/// verified the assertion with `webauthn-rs`.
pub async fn webauthn_used(
    store: &dyn Store,
    keyring: &Keyring,
    factor: &Factor,
    result: &AuthenticationResult,
    now: OffsetDateTime,
    refuse_regression: bool,
) -> Result<Passed, CheckError> {
    if let Some(at) = factor.expires_at.filter(|_| factor.expired_at(now)) {
        return Err(CheckError::Expired { factor_id: factor.id.clone(), at });
    }
    let stored = factor.counter.and_then(|c| u32::try_from(c).ok()).unwrap_or(0);
    let presented = result.counter();
    // WebAuthn §6.1.1: a counter that does not increase (when either is non-zero) may
    // mean the private key was copied to a second device.
    let regressed = (stored != 0 || presented != 0) && presented <= stored;
    if regressed && refuse_regression {
        return Err(CheckError::CounterRegression { factor_id: factor.id.clone(), stored, presented });
    }
    let plain = keyring
        .open(&Factor::seal_context(&factor.id), &factor.secret)
        .map_err(|e| CheckError::Secret(e.to_string()))?;
    let mut passkey: Passkey = serde_json::from_slice(&plain).map_err(|e| CheckError::Secret(e.to_string()))?;
    passkey.update_credential(result);
    let mut new = factor.clone();
    let json = serde_json::to_vec(&passkey).map_err(|e| CheckError::Secret(e.to_string()))?;
    new.secret =
        keyring.seal(&Factor::seal_context(&factor.id), &json).map_err(|e| CheckError::Secret(e.to_string()))?;
    new.counter = Some(i64::from(presented.max(stored)));
    new.last_used_at = Some(now);
    if regressed && let Some(m) = new.params.as_object_mut() {
        let seen = m.get("counter_regressions").and_then(serde_json::Value::as_u64).unwrap_or(0);
        m.insert("counter_regressions".into(), serde_json::json!(seen + 1));
    }
    // A concurrent use of the same key may have won; the assertion was still valid.
    let _ = store.update_factor(&new, &factor.secret, None).await?;
    let hardware_bound = !factor.params.get("backup_eligible").and_then(serde_json::Value::as_bool).unwrap_or(true);
    Ok(Passed {
        factor_id: factor.id.clone(),
        used: FactorUsed::Webauthn { user_verified: result.user_verified(), hardware_bound },
        remaining: None,
        counter_regression: regressed.then_some((stored, presented)),
    })
}
