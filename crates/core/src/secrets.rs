//! Secrets at rest (capability R1): envelope encryption under key-encryption keys (KEKs).
//!
//! Every secret the store holds (factor secrets, signing keys) is sealed with
//! XChaCha20-Poly1305 under the active KEK. The 192-bit nonce is random, so no nonce
//! bookkeeping is needed across nodes. The associated data binds each sealed value to the
//! row and column it belongs to, so a value copied into another row does not open.
//!
//! A [`Keyring`] holds one active KEK and, during rotation, the previous ones; the sealed
//! form names its KEK, so rotation re-wraps value by value without downtime.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

const SEALED_PREFIX: &str = "wg1";
const KEY_LINE_PREFIX: &str = "wgk1";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("sealed value names key-encryption key {0:?}, which is not in the key file")]
    UnknownKey(String),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open: wrong key, or altered, or moved from another record")]
    Undecryptable,
    #[error("key file line {line}: {message}")]
    KeyFile { line: usize, message: String },
    #[error("system random number generator failed")]
    Random,
}

/// One key-encryption key.
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl Kek {
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|_| SecretError::Random)?;
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).map_err(|_| SecretError::Random)?;
        Ok(Self { id: hex::encode(id), key })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.key).into())
    }
}

/// The active KEK first, then older ones still needed to open values not yet re-wrapped.
pub struct Keyring {
    keys: Vec<Kek>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish()
    }
}

impl Keyring {
    pub fn new(active: Kek) -> Self {
        Self { keys: vec![active] }
    }

    pub fn generate() -> Result<Self, SecretError> {
        Ok(Self::new(Kek::generate()?))
    }

    pub fn active_id(&self) -> &str {
        self.keys.first().map(|k| k.id.as_str()).unwrap_or_default()
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// A new active key in front; the old ones stay until everything is re-wrapped.
    pub fn with_new_active(mut self, kek: Kek) -> Self {
        self.keys.insert(0, kek);
        self
    }

    /// Only the active key, once nothing is sealed under the others any more.
    pub fn retire_inactive(mut self) -> Self {
        self.keys.truncate(1);
        self
    }

    /// Seals `plaintext` under the active key, bound to `context` (e.g. `factor:42:secret`).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, SecretError> {
        let kek = self.keys.first().ok_or(SecretError::Malformed)?;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let aad = aad(&kek.id, context);
        let ct = kek
            .cipher()
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| SecretError::Undecryptable)?;
        Ok(format!("{SEALED_PREFIX}.{}.{}.{}", kek.id, B64.encode(nonce), B64.encode(ct)))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let (kek_id, nonce, ct) = parse_sealed(sealed)?;
        let kek =
            self.keys.iter().find(|k| k.id == kek_id).ok_or_else(|| SecretError::UnknownKey(kek_id.to_owned()))?;
        let aad = aad(&kek.id, context);
        kek.cipher()
            .decrypt(&XNonce::from(nonce), Payload { msg: &ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Undecryptable)
    }

    /// `Some(resealed)` when `sealed` is not under the active key.
    pub fn rewrap(&self, context: &str, sealed: &str) -> Result<Option<String>, SecretError> {
        if sealed_key_id(sealed)? == self.active_id() {
            return Ok(None);
        }
        let plain = self.open(context, sealed)?;
        self.seal(context, &plain).map(Some)
    }

    /// The key file's text. It holds raw key material: write it with mode 0600.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut s = String::from(
            "# Wardgate key-encryption keys. Secret: keep this file at mode 0600 and back it up\n\
             # apart from the database. The first key is the active one.\n",
        );
        for k in &self.keys {
            s.push_str(&format!("{KEY_LINE_PREFIX}.{}.{}\n", k.id, B64.encode(k.key.as_ref())));
        }
        Zeroizing::new(s)
    }

    pub fn from_file_text(text: &str) -> Result<Self, SecretError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: &str| SecretError::KeyFile { line: i + 1, message: message.into() };
            let mut parts = line.split('.');
            let (Some(KEY_LINE_PREFIX), Some(id), Some(b64), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(err("expected wgk1.<id>.<base64 key>"));
            };
            if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err("key id must be 8 hex digits"));
            }
            let raw = Zeroizing::new(B64.decode(b64).map_err(|_| err("key is not base64url"))?);
            let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| err("key must be 32 bytes"))?;
            if keys.iter().any(|k: &Kek| k.id == id) {
                return Err(err("duplicate key id"));
            }
            keys.push(Kek { id: id.to_owned(), key: Zeroizing::new(key) });
        }
        if keys.is_empty() {
            return Err(SecretError::KeyFile { line: 0, message: "no key in file".into() });
        }
        Ok(Self { keys })
    }
}

fn aad(kek_id: &str, context: &str) -> Vec<u8> {
    format!("wardgate-sealed-v1\0{kek_id}\0{context}").into_bytes()
}

/// The KEK id a sealed value names.
pub fn sealed_key_id(sealed: &str) -> Result<&str, SecretError> {
    let mut parts = sealed.split('.');
    match (parts.next(), parts.next()) {
        (Some(SEALED_PREFIX), Some(id)) => Ok(id),
        _ => Err(SecretError::Malformed),
    }
}

fn parse_sealed(sealed: &str) -> Result<(&str, [u8; 24], Vec<u8>), SecretError> {
    let mut parts = sealed.split('.');
    let (Some(SEALED_PREFIX), Some(id), Some(n), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SecretError::Malformed);
    };
    let nonce: [u8; 24] = B64.decode(n).ok().and_then(|v| v.try_into().ok()).ok_or(SecretError::Malformed)?;
    let ct = B64.decode(c).map_err(|_| SecretError::Malformed)?;
    Ok((id, nonce, ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding_to_context() {
        let ring = Keyring::generate().unwrap();
        let sealed = ring.seal("factor:1:secret", b"JBSWY3DPEHPK3PXP").unwrap();
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(ring.open("factor:1:secret", &sealed).unwrap().as_slice(), b"JBSWY3DPEHPK3PXP");
        assert!(matches!(ring.open("factor:2:secret", &sealed), Err(SecretError::Undecryptable)));
    }

    #[test]
    fn tampered_ciphertext_does_not_open() {
        let ring = Keyring::generate().unwrap();
        let sealed = ring.seal("c", b"secret").unwrap();
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(ring.open("c", &tampered).is_err());
        assert!(matches!(ring.open("c", "wg1.nope"), Err(SecretError::Malformed)));
    }

    #[test]
    fn rotation_rewraps_under_the_new_key_and_old_values_open_until_retired() {
        let ring = Keyring::generate().unwrap();
        let old = ring.seal("c", b"secret").unwrap();
        let ring = ring.with_new_active(Kek::generate().unwrap());
        assert_eq!(ring.open("c", &old).unwrap().as_slice(), b"secret");
        let new = ring.rewrap("c", &old).unwrap().unwrap();
        assert_eq!(sealed_key_id(&new).unwrap(), ring.active_id());
        assert!(ring.rewrap("c", &new).unwrap().is_none());
        let ring = ring.retire_inactive();
        assert!(matches!(ring.open("c", &old), Err(SecretError::UnknownKey(_))));
        assert_eq!(ring.open("c", &new).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn key_file_round_trip_and_errors_name_the_line() {
        let ring = Keyring::generate().unwrap().with_new_active(Kek::generate().unwrap());
        let text = ring.to_file_text();
        let back = Keyring::from_file_text(&text).unwrap();
        assert_eq!(back.ids(), ring.ids());
        let err = Keyring::from_file_text("# c\nwgk1.zz.abc\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(Keyring::from_file_text("# only comments\n").is_err());
        assert!(Keyring::from_file_text("wgk1.0011aabb.AAAA\n").is_err());
    }
}
