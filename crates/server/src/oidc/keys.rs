//! Token-signing keys: ES256 (P-256) by default, made on first start; RS256 and EdDSA when a
//! client needs them. Sealed at rest under the key-encryption key, published in the JWKS
//! with their `kid`.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::oidc::OidcKey;
use wardgate_core::secrets::Keyring;
use wardgate_store::Store;

/// One key ready to sign or verify.
pub struct LoadedKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub retired: bool,
}

/// The keys of this provider: per algorithm, the newest unretired one signs; all verify and
/// are published.
pub struct KeySet {
    pub keys: Vec<Arc<LoadedKey>>,
    pub jwks: serde_json::Value,
}

impl KeySet {
    /// The key that signs with `alg`: the newest one in service (keys come newest first).
    pub fn signing(&self, alg: Algorithm) -> Option<&Arc<LoadedKey>> {
        self.keys.iter().find(|k| !k.retired && k.algorithm == alg)
    }

    pub fn by_kid(&self, kid: &str) -> Option<&Arc<LoadedKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot make a signing key: {0}")]
    Generate(String),
    #[error("signing key {0} does not open under this installation's key file")]
    Foreign(String),
    #[error(transparent)]
    Store(#[from] wardgate_store::StoreError),
}

/// The algorithms tokens can be signed with: ES256 for everyone unless a client needs
/// otherwise, RS256 for relying parties that only verify RSA, EdDSA (Ed25519) on request.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];

/// The JOSE name of an algorithm this provider signs with.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::EdDSA => "EdDSA",
        _ => "ES256",
    }
}

pub fn parse_alg(name: &str) -> Option<Algorithm> {
    ALGORITHMS.into_iter().find(|a| alg_name(*a) == name)
}

/// RSA keys are 2048 bits (NIST SP 800-57: good beyond 2030 for signatures that live minutes).
const RSA_BITS: usize = 2048;

/// A new key: its private half as DER (PKCS#8 for EC and Ed25519, PKCS#1 for RSA: what
/// jsonwebtoken's encoding keys take) and its public half as a JWK.
pub fn generate(alg: Algorithm, kid: &str) -> Result<(Vec<u8>, serde_json::Value), KeyError> {
    let fail = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    let (der, jwk) = match alg {
        Algorithm::ES256 => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| fail(&e))?;
            let point = pair.public_key_raw();
            // SEC 1 uncompressed point: 0x04 || x (32) || y (32).
            if point.len() != 65 || point[0] != 4 {
                return Err(KeyError::Generate("unexpected public key encoding".into()));
            }
            let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
            (pair.serialize_der(), serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}))
        }
        Algorithm::EdDSA => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| fail(&e))?;
            let x = B64.encode(pair.public_key_raw());
            (pair.serialize_der(), serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
        }
        Algorithm::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS).map_err(|e| fail(&e))?;
            let der = key.to_pkcs1_der().map_err(|e| fail(&e))?.as_bytes().to_vec();
            let (n, e) = (B64.encode(key.n().to_bytes_be()), B64.encode(key.e().to_bytes_be()));
            (der, serde_json::json!({"kty": "RSA", "n": n, "e": e}))
        }
        other => return Err(KeyError::Generate(format!("{other:?} is not an algorithm this provider signs with"))),
    };
    Ok((der, finish_jwk(jwk, alg, kid)))
}

fn finish_jwk(mut jwk: serde_json::Value, alg: Algorithm, kid: &str) -> serde_json::Value {
    jwk["kid"] = kid.into();
    jwk["use"] = "sig".into();
    jwk["alg"] = alg_name(alg).into();
    jwk
}

pub fn encoding_key(alg: Algorithm, der: &[u8]) -> EncodingKey {
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_der(der),
        Algorithm::EdDSA => EncodingKey::from_ed_der(der),
        _ => EncodingKey::from_ec_der(der),
    }
}

fn load(ring: &Keyring, rec: &OidcKey) -> Result<LoadedKey, KeyError> {
    let foreign = || KeyError::Foreign(rec.id.clone());
    let der = ring.open(&OidcKey::seal_context(&rec.id), &rec.private_sealed).map_err(|_| foreign())?;
    let algorithm = parse_alg(&rec.algorithm).ok_or_else(foreign)?;
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&rec.public_jwk).map_err(|_| foreign())?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| foreign())?;
    Ok(LoadedKey {
        kid: rec.id.clone(),
        algorithm,
        encoding: encoding_key(algorithm, &der),
        decoding,
        retired: rec.retired_at.is_some(),
    })
}

/// Retired keys stay published this long: longer than any token they signed lives (access
/// tokens at most an hour, ID tokens five minutes), so verifiers never meet an unknown `kid`.
pub const RETIRED_KEY_PUBLISHED: time::Duration = time::Duration::minutes(65);

/// For each algorithm in use, a new key becomes the one that signs; the previous ones are
/// retired (still published until their tokens have expired); keys retired long enough ago
/// are deleted. Returns the new keys (id and algorithm) and the ids retired now.
pub async fn rotate(
    store: &dyn Store,
    ring: &Keyring,
    now: OffsetDateTime,
    actor: &str,
) -> Result<(Vec<(String, &'static str)>, Vec<String>), KeyError> {
    let current: Vec<OidcKey> = store.oidc_keys().await?.into_iter().filter(|k| k.retired_at.is_none()).collect();
    let mut made = Vec::new();
    let mut retired = Vec::new();
    // ES256 always signs something (access tokens of ES256 clients, the default).
    let in_use = ALGORITHMS
        .into_iter()
        .filter(|a| *a == Algorithm::ES256 || current.iter().any(|k| k.algorithm == alg_name(*a)));
    for alg in in_use {
        let kid = insert_new(store, ring, alg, now, actor).await?;
        for old in current.iter().filter(|k| k.algorithm == alg_name(alg)) {
            let e = AuditEvent::known(now, types::KEYS_SIGNING_RETIRED, Outcome::Success)
                .actor(actor.to_owned())
                .detail("key_id", old.id.clone())
                .detail("purpose", "oidc")
                .detail("algorithm", alg_name(alg))
                .detail("replaced_by", kid.clone());
            store.retire_oidc_key(&old.id, now, &e).await?;
            retired.push(old.id.clone());
        }
        made.push((kid, alg_name(alg)));
    }
    store.purge_oidc_keys(now - RETIRED_KEY_PUBLISHED).await?;
    Ok((made, retired))
}

async fn insert_new(
    store: &dyn Store,
    ring: &Keyring,
    alg: Algorithm,
    now: OffsetDateTime,
    actor: &str,
) -> Result<String, KeyError> {
    let kid = wardgate_core::token::random_id().map_err(|e| KeyError::Generate(e.to_string()))?;
    // RSA key generation takes a while of CPU; keep it off the async workers.
    let (der, jwk) = {
        let kid = kid.clone();
        tokio::task::spawn_blocking(move || generate(alg, &kid))
            .await
            .map_err(|e| KeyError::Generate(e.to_string()))??
    };
    let rec = OidcKey {
        private_sealed: ring.seal(&OidcKey::seal_context(&kid), &der).map_err(|e| KeyError::Generate(e.to_string()))?,
        id: kid.clone(),
        algorithm: alg_name(alg).into(),
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
    };
    let e = AuditEvent::known(now, types::KEYS_SIGNING_CREATED, Outcome::Success)
        .actor(actor.to_owned())
        .detail("key_id", kid.clone())
        .detail("purpose", "oidc")
        .detail("algorithm", alg_name(alg));
    store.insert_oidc_key(&rec, &e).await?;
    Ok(kid)
}

/// Makes a signing key for `alg` unless one is in service. Keys for RS256 and EdDSA are
/// made when the first client that needs them is registered (or, failing that, when it
/// first gets a token), so installations that never use them publish no such key.
pub async fn ensure(
    store: &dyn Store,
    ring: &Keyring,
    alg: Algorithm,
    now: OffsetDateTime,
    actor: &str,
) -> Result<bool, KeyError> {
    let recs = store.oidc_keys().await?;
    if recs.iter().any(|r| r.retired_at.is_none() && r.algorithm == alg_name(alg)) {
        return Ok(false);
    }
    insert_new(store, ring, alg, now, actor).await?;
    Ok(true)
}

/// Before signing for a client: a key for its algorithm is loaded, made now if this is the
/// first token with that algorithm (normally the key was made when the client was registered).
pub async fn ready(app: &crate::app::AppState, alg: Algorithm) -> Result<(), KeyError> {
    if app.oidc.keys().signing(alg).is_some() {
        return Ok(());
    }
    let (now, ring, actor) = ((app.clock)(), app.keyring.get(), format!("node:{}", app.node_id));
    ensure(&*app.store, &ring, alg, now, &actor).await?;
    app.oidc.replace_keys(load_or_create(&*app.store, &ring, now, &actor).await?);
    Ok(())
}

/// The stored keys, with an ES256 key made now if there is none.
pub async fn load_or_create(
    store: &dyn Store,
    ring: &Keyring,
    now: OffsetDateTime,
    actor: &str,
) -> Result<KeySet, KeyError> {
    ensure(store, ring, Algorithm::ES256, now, actor).await?;
    let recs = store.oidc_keys().await?;
    let mut keys = Vec::new();
    let mut published = Vec::new();
    for rec in &recs {
        keys.push(Arc::new(load(ring, rec)?));
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(&rec.public_jwk) {
            published.push(j);
        }
    }
    Ok(KeySet { keys, jwks: serde_json::json!({"keys": published}) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for a in ALGORITHMS {
            assert_eq!(parse_alg(alg_name(a)), Some(a));
        }
        assert_eq!(parse_alg("HS256"), None);
        assert_eq!(parse_alg("none"), None);
    }

    #[test]
    fn generated_jwks_carry_kid_use_and_alg_and_no_private_part() {
        for a in ALGORITHMS {
            let (_, jwk) = generate(a, "k9").unwrap();
            assert_eq!(jwk["kid"], "k9");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], alg_name(a));
            assert!(jwk.get("d").is_none() && jwk.get("p").is_none(), "{jwk}");
        }
    }
}
