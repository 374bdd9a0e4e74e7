//! Token signatures through `ring`, plugged into `jsonwebtoken` as its crypto provider.
//!
//! jsonwebtoken's RustCrypto backend parses the private key again for every signature; for
//! P-256 that re-derives the public key, a scalar multiplication costing more than the
//! signature itself, and it ran on the async workers for every token issued. ring parses a
//! key once: key pairs are kept here by the SHA-256 of their DER (a process holds a handful
//! of signing keys), so an ES256 signature costs tens of microseconds. Verification and the
//! JWK utilities stay with the RustCrypto backend.

use std::sync::{Arc, OnceLock, RwLock};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, rust_crypto};
use jsonwebtoken::{Algorithm, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use sha2::{Digest, Sha256};

/// Keys parsed so far; more than this many distinct keys in one process means keys are
/// being made in a loop (tests), and the cache starts over rather than growing.
const CACHE_LIMIT: usize = 32;

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct Cached {
    alg: Algorithm,
    der_digest: [u8; 32],
    pair: Arc<Pair>,
}

fn cache() -> &'static RwLock<Vec<Cached>> {
    static CACHE: OnceLock<RwLock<Vec<Cached>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn rng() -> &'static SystemRandom {
    static RNG: OnceLock<SystemRandom> = OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

fn parse(alg: Algorithm, der: &[u8]) -> Option<Pair> {
    match alg {
        Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng()).ok().map(Pair::Ec),
        // jsonwebtoken's RSA encoding keys are PKCS#1 (RSAPrivateKey) DER.
        Algorithm::RS256 => RsaKeyPair::from_der(der).ok().map(Pair::Rsa),
        Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).ok().map(Pair::Ed),
        _ => None,
    }
}

/// The parsed key pair for these DER bytes, parsing them on first use.
fn pair(alg: Algorithm, der: &[u8]) -> Option<Arc<Pair>> {
    let der_digest: [u8; 32] = Sha256::digest(der).into();
    let find =
        |v: &[Cached]| v.iter().find(|c| c.alg == alg && c.der_digest == der_digest).map(|c| Arc::clone(&c.pair));
    if let Ok(v) = cache().read()
        && let Some(p) = find(&v)
    {
        return Some(p);
    }
    let pair = Arc::new(parse(alg, der)?);
    if let Ok(mut v) = cache().write() {
        if v.len() >= CACHE_LIMIT {
            v.clear();
        }
        if find(&v).is_none() {
            v.push(Cached { alg, der_digest, pair: Arc::clone(&pair) });
        }
    }
    Some(pair)
}

struct RingSigner {
    alg: Algorithm,
    pair: Arc<Pair>,
}

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        match &*self.pair {
            Pair::Ec(k) => k.sign(rng(), msg).map(|s| s.as_ref().to_vec()).map_err(|_| signature::Error::new()),
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, rng(), msg, &mut sig).map_err(|_| signature::Error::new())?;
                Ok(sig)
            }
            Pair::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    match pair(*alg, key.as_bytes()) {
        Some(pair) => Ok(Box::new(RingSigner { alg: *alg, pair })),
        // Other algorithms, and keys ring will not take, go the RustCrypto way, which also
        // reports a bad key properly.
        None => (rust_crypto::DEFAULT_PROVIDER.signer_factory)(alg, key),
    }
}

/// Makes this the process's jsonwebtoken provider. Idempotent; if something in the process
/// already used jsonwebtoken's default, that stays (slower, equally correct).
pub fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| CryptoProvider { signer_factory, ..rust_crypto::DEFAULT_PROVIDER.clone() });
    if provider.install_default().is_err() {
        tracing::debug!("jsonwebtoken's crypto provider was chosen before; signing keys are parsed per token");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ring's signatures must verify under the RustCrypto verifier that checks them here
    /// and under whatever the relying party uses.
    #[test]
    fn ring_signatures_verify_for_every_algorithm() {
        install();
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let (der, jwk) = crate::oidc::keys::generate(alg, "k").unwrap();
            let key = crate::oidc::keys::encoding_key(alg, &der);
            assert!(pair(alg, key.as_bytes()).is_some(), "{alg:?}: ring takes the key");
            let mut header = jsonwebtoken::Header::new(alg);
            header.kid = Some("k".into());
            let claims = serde_json::json!({"sub": "u", "exp": 4_102_444_800u64});
            let t = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
            let dec = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let back =
                jsonwebtoken::decode::<serde_json::Value>(&t, &dec, &jsonwebtoken::Validation::new(alg)).unwrap();
            assert_eq!(back.claims["sub"], "u");
            // A signature over other bytes does not verify: the test can fail.
            let mut parts: Vec<&str> = t.split('.').collect();
            let other =
                jsonwebtoken::encode(&header, &serde_json::json!({"sub": "v", "exp": 4_102_444_800u64}), &key).unwrap();
            parts[1] = other.split('.').nth(1).unwrap();
            let forged = parts.join(".");
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(&forged, &dec, &jsonwebtoken::Validation::new(alg)).is_err()
            );
        }
    }

    #[test]
    fn a_key_ring_refuses_falls_back_to_a_clear_error() {
        let key = EncodingKey::from_ec_der(b"not a key");
        assert!(signer_factory(&Algorithm::ES256, &key).is_err());
    }
}
