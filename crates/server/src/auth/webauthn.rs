//! Security keys and passkeys (capabilities F4, F6) through `webauthn-rs`.
//!
//! Every credential is registered as a passkey with user verification required, so a key
//! always proves possession and its own PIN or biometric: it can stand alone (username-less
//! sign-in) or follow a passphrase. What this module adds is what the crate leaves to the
//! relying party: the authenticator model (AAGUID) and whether the key can be synced
//! (backup eligibility), read from the signed authenticator data, and the per-role AAGUID
//! allowlist.

use std::collections::BTreeMap;

use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyRegistration, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};
use webauthn_rs_proto::{ResidentKeyRequirement, UserVerificationPolicy};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("public_url {0:?} has no host for WebAuthn")]
    NoHost(String),
    #[error("WebAuthn relying party: {0}")]
    Webauthn(String),
}

/// The relying party: this server's origin, and the domain credentials are bound to.
pub fn relying_party(base_url: &str, rp_id: Option<&str>, name: &str) -> Result<Webauthn, SetupError> {
    let origin = Url::parse(base_url).map_err(|_| SetupError::NoHost(base_url.to_owned()))?;
    let host = origin.host_str().ok_or_else(|| SetupError::NoHost(base_url.to_owned()))?.to_owned();
    // Browsers refuse IP addresses as relying-party ids; loopback is served as "localhost".
    let rp = rp_id.map(str::to_owned).unwrap_or_else(|| if host == "127.0.0.1" { "localhost".into() } else { host });
    let mut origins = vec![origin.clone()];
    if origin.host_str() == Some("127.0.0.1") {
        let mut local = origin.clone();
        let _ = local.set_host(Some("localhost"));
        origins.insert(0, local);
    }
    let mut b = WebauthnBuilder::new(&rp, &origins[0]).map_err(|e| SetupError::Webauthn(e.to_string()))?.rp_name(name);
    for o in &origins[1..] {
        b = b.append_allowed_origin(o);
    }
    b.build().map_err(|e| SetupError::Webauthn(e.to_string()))
}

/// The stable WebAuthn user handle for an account: its 128-bit id. It reveals nothing about
/// the person (SP 800-63B: no personal data in the handle).
pub fn user_handle(user_id: &str) -> Option<Uuid> {
    let bytes: [u8; 16] = hex::decode(user_id).ok()?.try_into().ok()?;
    Some(Uuid::from_bytes(bytes))
}

pub fn user_id_of(handle: Uuid) -> String {
    hex::encode(handle.as_bytes())
}

/// Starts a registration that asks the authenticator to keep the credential (so it can be
/// used without typing a username) and to verify the person.
pub fn start_registration(
    rp: &Webauthn,
    user_id: &str,
    username: &str,
    display_name: &str,
    existing: &[Passkey],
) -> Result<(CreationChallengeResponse, PasskeyRegistration), SetupError> {
    let handle = user_handle(user_id).ok_or_else(|| SetupError::Webauthn("account id is not 128-bit hex".into()))?;
    let exclude = existing.iter().map(|p| p.cred_id().clone()).collect::<Vec<_>>();
    let (mut ccr, state) = rp
        .start_passkey_registration(handle, username, display_name, (!exclude.is_empty()).then_some(exclude))
        .map_err(|e| SetupError::Webauthn(e.to_string()))?;
    if let Some(sel) = ccr.public_key.authenticator_selection.as_mut() {
        sel.resident_key = Some(ResidentKeyRequirement::Required);
        sel.require_resident_key = true;
        sel.user_verification = UserVerificationPolicy::Required;
    }
    Ok((ccr, state))
}

/// What the authenticator data says about the device that made a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts {
    pub aaguid: Uuid,
    /// BE flag: the credential may be synced to other devices (a cloud passkey), so it is
    /// not hardware-bound and cannot reach AAL3.
    pub backup_eligible: bool,
}

/// Reads the AAGUID and flags from the attestation object (WebAuthn §6.1: rpIdHash 32,
/// flags 1, signCount 4, then the attested credential data starting with the AAGUID).
/// Call it after `finish_passkey_registration` succeeded, so the data is already verified.
pub fn device_facts(reg: &RegisterPublicKeyCredential) -> Option<DeviceFacts> {
    let obj: serde_cbor_2::Value = serde_cbor_2::from_slice(reg.response.attestation_object.as_ref()).ok()?;
    let serde_cbor_2::Value::Map(map) = obj else { return None };
    let auth_data = map.iter().find_map(|(k, v)| match (k, v) {
        (serde_cbor_2::Value::Text(k), serde_cbor_2::Value::Bytes(b)) if k == "authData" => Some(b),
        _ => None,
    })?;
    let flags = *auth_data.get(32)?;
    let aaguid: [u8; 16] = auth_data.get(37..53)?.try_into().ok()?;
    Some(DeviceFacts { aaguid: Uuid::from_bytes(aaguid), backup_eligible: flags & 0x08 != 0 })
}

/// Whether a member of `roles` may register an authenticator of this model. A role listed
/// in the policy admits only its AAGUIDs; a person holding several listed roles must use a
/// model every one of them admits. Roles not listed admit anything.
pub fn aaguid_allowed(policy: &BTreeMap<String, Vec<String>>, roles: &[String], aaguid: Uuid) -> bool {
    roles
        .iter()
        .filter_map(|r| policy.get(r))
        .all(|allowed| allowed.iter().any(|a| Uuid::parse_str(a).is_ok_and(|u| u == aaguid)))
}

/// Names of authenticator models people meet in hospitals, for the account page and the
/// factor inventory. Unknown models show their AAGUID. Source: the FIDO Alliance Metadata
/// Service (MDS3) entries and the vendors' published AAGUID lists (Yubico, Microsoft,
/// Apple, Google); an AAGUID is the authenticator's claim, not an attestation.
pub fn model_name(aaguid: Uuid) -> Option<&'static str> {
    match aaguid.to_string().as_str() {
        "00000000-0000-0000-0000-000000000000" => None,
        "cb69481e-8ff7-4039-93ec-0a2729a154a8" => Some("YubiKey 5 Series"),
        "ee882879-721c-4913-9775-3dfcce97072a" => Some("YubiKey 5 Series"),
        "c5ef55ff-ad9a-4b9f-b580-adebafe026d0" => Some("YubiKey 5Ci"),
        "fa2b99dc-9e39-4257-8f92-4a30d23c4118" => Some("YubiKey 5 Series with NFC"),
        "73bb0cd4-e502-49b8-9c6f-b59445bf720b" => Some("YubiKey 5 FIPS Series"),
        "c1f9a0bc-1dd2-404a-b27f-8e29047a43fd" => Some("YubiKey 5 FIPS Series with NFC"),
        "85203421-48f9-4355-9bc8-8a53846e5083" => Some("YubiKey 5 FIPS Series with Lightning"),
        "08987058-cadc-4b81-b6e1-30de50dcbe96" => Some("Windows Hello"),
        "adce0002-35bc-c60a-648b-0b25f1f05503" => Some("Chrome on Mac"),
        "fbfc3007-154e-4ecc-8c0b-6e020557d7bd" => Some("iCloud Keychain"),
        "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4" => Some("Google Password Manager"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_handles_round_trip_and_refuse_other_ids() {
        let id = "00112233445566778899aabbccddeeff";
        assert_eq!(user_id_of(user_handle(id).unwrap()), id);
        assert!(user_handle("u-1").is_none());
        assert!(user_handle("0011").is_none());
    }

    #[test]
    fn listed_roles_admit_only_their_models() {
        let fips = Uuid::parse_str("73bb0cd4-e502-49b8-9c6f-b59445bf720b").unwrap();
        let other = Uuid::parse_str("08987058-cadc-4b81-b6e1-30de50dcbe96").unwrap();
        let mut policy = BTreeMap::new();
        policy.insert("prescriber".to_owned(), vec![fips.to_string()]);
        policy.insert("admin".to_owned(), vec![fips.to_string(), other.to_string()]);
        assert!(aaguid_allowed(&policy, &["nurse".into()], other));
        assert!(aaguid_allowed(&policy, &["prescriber".into()], fips));
        assert!(!aaguid_allowed(&policy, &["prescriber".into()], other));
        assert!(!aaguid_allowed(&policy, &["admin".into(), "prescriber".into()], other));
        assert!(aaguid_allowed(&policy, &["admin".into(), "prescriber".into()], fips));
    }

    #[test]
    fn the_relying_party_serves_loopback_as_localhost() {
        assert!(relying_party("http://127.0.0.1:8080", None, "Wardgate").is_ok());
        assert!(relying_party("https://sso.example.org", None, "Wardgate").is_ok());
        assert!(relying_party("not a url", None, "Wardgate").is_err());
    }
}
