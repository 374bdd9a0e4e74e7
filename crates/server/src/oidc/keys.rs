//! Token-signing keys: ES256 (P-256) by default, made on first start, sealed at rest under
//! the key-encryption key, published in the JWKS with their `kid`.

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

/// The keys of this provider: the newest unretired one signs; all verify and are published.
pub struct KeySet {
    pub keys: Vec<Arc<LoadedKey>>,
    pub jwks: serde_json::Value,
}

impl KeySet {
    pub fn signing(&self) -> Option<&Arc<LoadedKey>> {
        self.keys.iter().find(|k| !k.retired)
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

/// A new ES256 key: PKCS#8 for signing, the public point as a JWK.
pub fn generate_es256(kid: &str) -> Result<(Vec<u8>, serde_json::Value), KeyError> {
    let pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| KeyError::Generate(e.to_string()))?;
    let point = pair.public_key_raw();
    // SEC 1 uncompressed point: 0x04 || x (32) || y (32).
    if point.len() != 65 || point[0] != 4 {
        return Err(KeyError::Generate("unexpected public key encoding".into()));
    }
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": B64.encode(&point[1..33]),
        "y": B64.encode(&point[33..65]),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    });
    Ok((pair.serialize_der(), jwk))
}

fn load(ring: &Keyring, rec: &OidcKey) -> Result<LoadedKey, KeyError> {
    let der = ring
        .open(&OidcKey::seal_context(&rec.id), &rec.private_sealed)
        .map_err(|_| KeyError::Foreign(rec.id.clone()))?;
    let jwk: serde_json::Value =
        serde_json::from_str(&rec.public_jwk).map_err(|_| KeyError::Foreign(rec.id.clone()))?;
    let (x, y) = (jwk["x"].as_str().unwrap_or(""), jwk["y"].as_str().unwrap_or(""));
    let decoding = DecodingKey::from_ec_components(x, y).map_err(|_| KeyError::Foreign(rec.id.clone()))?;
    Ok(LoadedKey {
        kid: rec.id.clone(),
        algorithm: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(&der),
        decoding,
        retired: rec.retired_at.is_some(),
    })
}

/// Retired keys stay published this long: longer than any token they signed lives (access
/// tokens at most an hour, ID tokens five minutes), so verifiers never meet an unknown `kid`.
pub const RETIRED_KEY_PUBLISHED: time::Duration = time::Duration::minutes(65);

/// A new signing key becomes the one that signs; the previous ones are retired (still
/// published until their tokens have expired); keys retired long enough ago are deleted.
/// Returns the new key id and the ids retired now.
pub async fn rotate(
    store: &dyn Store,
    ring: &Keyring,
    now: OffsetDateTime,
    actor: &str,
) -> Result<(String, Vec<String>), KeyError> {
    let previous: Vec<String> =
        store.oidc_keys().await?.into_iter().filter(|k| k.retired_at.is_none()).map(|k| k.id).collect();
    let kid = insert_new(store, ring, now, actor).await?;
    for id in &previous {
        let e = AuditEvent::known(now, types::KEYS_SIGNING_RETIRED, Outcome::Success)
            .actor(actor.to_owned())
            .detail("key_id", id.clone())
            .detail("purpose", "oidc")
            .detail("replaced_by", kid.clone());
        store.retire_oidc_key(id, now, &e).await?;
    }
    store.purge_oidc_keys(now - RETIRED_KEY_PUBLISHED).await?;
    Ok((kid, previous))
}

async fn insert_new(store: &dyn Store, ring: &Keyring, now: OffsetDateTime, actor: &str) -> Result<String, KeyError> {
    let kid = wardgate_core::token::random_id().map_err(|e| KeyError::Generate(e.to_string()))?;
    let (der, jwk) = generate_es256(&kid)?;
    let rec = OidcKey {
        private_sealed: ring.seal(&OidcKey::seal_context(&kid), &der).map_err(|e| KeyError::Generate(e.to_string()))?,
        id: kid.clone(),
        algorithm: "ES256".into(),
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
    };
    let e = AuditEvent::known(now, types::KEYS_SIGNING_CREATED, Outcome::Success)
        .actor(actor.to_owned())
        .detail("key_id", kid.clone())
        .detail("purpose", "oidc")
        .detail("algorithm", "ES256");
    store.insert_oidc_key(&rec, &e).await?;
    Ok(kid)
}

/// The stored keys, or a first one made now.
pub async fn load_or_create(
    store: &dyn Store,
    ring: &Keyring,
    now: OffsetDateTime,
    actor: &str,
) -> Result<KeySet, KeyError> {
    let mut recs = store.oidc_keys().await?;
    if !recs.iter().any(|r| r.retired_at.is_none()) {
        insert_new(store, ring, now, actor).await?;
        recs = store.oidc_keys().await?;
    }
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
    fn a_generated_key_signs_what_its_jwk_verifies() {
        let (der, jwk) = generate_es256("k1").unwrap();
        let enc = EncodingKey::from_ec_der(&der);
        let dec = DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap()).unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let claims = serde_json::json!({"sub": "u", "exp": 4_102_444_800u64, "aud": "c"});
        let t = jsonwebtoken::encode(&header, &claims, &enc).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.set_audience(&["c"]);
        let back = jsonwebtoken::decode::<serde_json::Value>(&t, &dec, &v).unwrap();
        assert_eq!(back.claims["sub"], "u");
    }
}
