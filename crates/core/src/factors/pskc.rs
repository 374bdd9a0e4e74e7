//! Hardware OTP tokens delivered as PSKC files (RFC 6030, capability F2/L2).
//!
//! Token vendors ship the seeds of a batch of tokens as one XML key container, usually
//! encrypted under a key agreed out of band (a "pre-shared key", §6.1: AES-CBC, with an
//! HMAC over each ciphertext). This module turns such a file into [`HardwareToken`]s:
//! pure parsing and decryption, no I/O. Choosing which token goes to whom, sealing the
//! seed at rest and recording it are the caller's business.
//!
//! Accepted: time-based tokens (`…:pskc:totp`, and the pre-RFC `…pskc#totp` URI), 6 or 8
//! decimal digits, any step from `TimeInterval`, HMAC-SHA1/-SHA256/-SHA512 (`Suite`),
//! plain or pre-shared-key encrypted secrets (AES-128/192/256-CBC, HMAC-SHA1 or -SHA256
//! MACs). Counter-based HOTP tokens are parsed, so that the refusal can name them, but
//! [`HardwareToken::totp_params`] refuses them: Wardgate's replay defence is per time step.
//! Passphrase-based (PBKDF2, §6.2) and asymmetric (§6.3) encryption are refused with a
//! message saying so.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use roxmltree::{Document, Node, ParsingOptions};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::totp::{TotpAlgorithm, TotpParams};

const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";

const ALG_TOTP: [&str; 2] = ["urn:ietf:params:xml:ns:keyprov:pskc:totp", "http://www.ietf.org/keyprov/pskc#totp"];
const ALG_HOTP: [&str; 2] = ["urn:ietf:params:xml:ns:keyprov:pskc:hotp", "http://www.ietf.org/keyprov/pskc#hotp"];

const MAC_HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
const MAC_HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";

/// A vendor batch of a few thousand tokens is well under a megabyte; anything far larger
/// is not a token file, and refusing it early bounds the memory the parser takes.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// RFC 4226 §4: shared secrets of at least 128 bits.
const MIN_SECRET_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PskcError {
    #[error("the file is larger than {} MiB; it is not a token file", MAX_FILE_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("the file is not well-formed XML: {0}")]
    Xml(String),
    #[error("not a PSKC file (RFC 6030): the root element must be KeyContainer in namespace {NS_PSKC}")]
    NotPskc,
    #[error("unsupported PSKC version {0:?}: only 1.0 is defined")]
    Version(String),
    #[error("the file holds no key packages")]
    Empty,
    #[error("the token secrets are encrypted: give the pre-shared key (hex) the vendor encrypted them with")]
    KeyNeeded,
    #[error("{0}")]
    Unsupported(String),
    /// The pre-shared key does not fit the file: wrong length, or it does not decrypt.
    #[error("the pre-shared key does not open this file: {0}")]
    WrongKey(String),
    #[error("{key}: the secret's MAC does not match: the pre-shared key is wrong or the file was altered")]
    Mac { key: String },
    #[error("{key}: {message}")]
    Key { key: String, message: String },
    /// A well-formed token Wardgate cannot verify or may not accept.
    #[error("hardware token {serial} {reason}")]
    Refused { serial: String, reason: String },
    #[error("serial {0} appears more than once in the file")]
    DuplicateSerial(String),
}

/// The one-time-password algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    Totp,
    /// Counter-based (RFC 4226); parsed, never imported.
    Hotp,
}

/// One token from the file, secret decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct HardwareToken {
    /// `DeviceInfo/SerialNo` (what is printed on the token), else the key's `Id`.
    pub serial: String,
    pub key_id: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// The `Algorithm` URI as written in the file.
    pub algorithm_uri: String,
    /// `None` for algorithms other than TOTP and HOTP.
    pub kind: Option<OtpKind>,
    pub hash: TotpAlgorithm,
    /// `ResponseFormat/@Length`.
    pub digits: u8,
    /// `ResponseFormat/@Encoding` (`DECIMAL` when absent).
    pub encoding: String,
    /// `Data/TimeInterval`, 30 when absent.
    pub step_secs: u64,
    /// `Data/Time`: the Unix time counting starts at (T0). 0 when absent.
    pub t0: u64,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// `Policy/KeyUsage` values; empty means unrestricted.
    pub key_usage: Vec<String>,
    /// `Policy/PINPolicy/@PINUsageMode`, when the token wants a PIN combined with the code.
    pub pin_usage: Option<String>,
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for HardwareToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HardwareToken")
            .field("serial", &self.serial)
            .field("key_id", &self.key_id)
            .field("algorithm_uri", &self.algorithm_uri)
            .field("digits", &self.digits)
            .field("step_secs", &self.step_secs)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl HardwareToken {
    /// The TOTP parameters this token can be verified with at `now`, or why it cannot be
    /// imported.
    pub fn totp_params(&self, now: OffsetDateTime) -> Result<TotpParams, PskcError> {
        let refuse = |reason: String| Err(PskcError::Refused { serial: self.serial.clone(), reason });
        match self.kind {
            Some(OtpKind::Totp) => {}
            Some(OtpKind::Hotp) => {
                return refuse(
                    "is a counter-based HOTP token; only time-based (TOTP) tokens can be imported, because a \
                     TOTP code is refused once its time step has been used (NIST SP 800-63B §5.1.4.2)"
                        .into(),
                );
            }
            None => return refuse(format!("uses algorithm {:?}, which is not TOTP", self.algorithm_uri)),
        }
        if !matches!(self.digits, 6 | 8) {
            return refuse(format!("shows {} digits; 6 or 8 are supported", self.digits));
        }
        if !self.encoding.eq_ignore_ascii_case("DECIMAL") {
            return refuse(format!("shows {} codes; only DECIMAL codes are supported", self.encoding));
        }
        if !(15..=120).contains(&self.step_secs) {
            return refuse(format!("has a {} s time step; 15-120 s are supported", self.step_secs));
        }
        if self.t0 != 0 {
            return refuse(format!("counts time from {} instead of the Unix epoch, which is not supported", self.t0));
        }
        if self.secret.len() < MIN_SECRET_BYTES {
            return refuse(format!(
                "has a {}-bit secret; at least 128 bits are required (RFC 4226 §4)",
                self.secret.len() * 8
            ));
        }
        if !self.key_usage.is_empty() && !self.key_usage.iter().any(|u| u == "OTP") {
            return refuse(format!("may only be used for {}, not for one-time passwords", self.key_usage.join(", ")));
        }
        if let Some(mode) = self.pin_usage.as_deref().filter(|m| *m != "Local") {
            return refuse(format!("combines a PIN with its codes ({mode}), which is not supported"));
        }
        if let Some(end) = self.not_after.filter(|end| *end <= now) {
            return refuse(format!("expired on {}", end.date()));
        }
        if let Some(start) = self.not_before.filter(|start| *start > now) {
            return refuse(format!("is not valid before {}", start.date()));
        }
        Ok(TotpParams { algorithm: self.hash, digits: self.digits, step_secs: self.step_secs })
    }
}

/// Parses a PSKC key container. `pre_shared_key` is needed only when secrets are encrypted.
/// Every key package is decoded (and every MAC checked) before anything is returned, so a
/// wrong key or an altered file is refused as a whole.
pub fn parse(xml: &str, pre_shared_key: Option<&[u8]>) -> Result<Vec<HardwareToken>, PskcError> {
    if xml.len() > MAX_FILE_BYTES {
        return Err(PskcError::TooLarge);
    }
    // No DTDs (the default): PSKC has none, and entity tricks have no business here.
    let options = ParsingOptions { allow_dtd: false, nodes_limit: 4_000_000, ..ParsingOptions::default() };
    let doc = Document::parse_with_options(xml, options).map_err(|e| PskcError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_PSKC, "KeyContainer")) {
        return Err(PskcError::NotPskc);
    }
    if let Some(v) = root.attribute("Version").filter(|v| *v != "1.0") {
        return Err(PskcError::Version(v.to_owned()));
    }
    let crypto = Crypto::from_container(root, pre_shared_key)?;
    let mut tokens: Vec<HardwareToken> = Vec::new();
    for (i, package) in children(root, NS_PSKC, "KeyPackage").enumerate() {
        let token = key_package(package, i + 1, &crypto)?;
        if tokens.iter().any(|t| t.serial == token.serial) {
            return Err(PskcError::DuplicateSerial(token.serial));
        }
        tokens.push(token);
    }
    if tokens.is_empty() {
        return Err(PskcError::Empty);
    }
    Ok(tokens)
}

fn children<'a, 'i>(n: Node<'a, 'i>, ns: &'a str, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children().filter(move |c| c.has_tag_name((ns, name)))
}

fn child<'a, 'i>(n: Node<'a, 'i>, ns: &'a str, name: &'a str) -> Option<Node<'a, 'i>> {
    children(n, ns, name).next()
}

fn text_of(n: Node<'_, '_>) -> String {
    n.text().unwrap_or_default().trim().to_owned()
}

fn child_text(n: Node<'_, '_>, name: &str) -> Option<String> {
    child(n, NS_PSKC, name).map(text_of).filter(|s| !s.is_empty())
}

fn base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(compact).ok()
}

#[derive(Clone, Copy)]
enum MacAlgorithm {
    Sha1,
    Sha256,
}

/// What the container says about encryption, with the keys needed to open its values.
struct Crypto {
    /// The pre-shared key, if given.
    psk: Option<Zeroizing<Vec<u8>>>,
    mac: Option<(MacAlgorithm, Zeroizing<Vec<u8>>)>,
}

impl Crypto {
    fn from_container(root: Node<'_, '_>, psk: Option<&[u8]>) -> Result<Self, PskcError> {
        if let Some(ek) = child(root, NS_PSKC, "EncryptionKey") {
            if ek.children().any(|c| c.tag_name().name() == "DerivedKey") {
                return Err(PskcError::Unsupported(
                    "the file is encrypted with a passphrase-derived key (PBKDF2, RFC 6030 §6.2), which is not \
                     supported; ask the vendor for a file encrypted with a pre-shared AES key"
                        .into(),
                ));
            }
            if child(ek, NS_DS, "X509Data").is_some() {
                return Err(PskcError::Unsupported(
                    "the file is encrypted to a certificate (RFC 6030 §6.3), which is not supported; ask the \
                     vendor for a file encrypted with a pre-shared AES key"
                        .into(),
                ));
            }
        }
        let mut crypto = Crypto { psk: psk.map(|k| Zeroizing::new(k.to_vec())), mac: None };
        if let Some(method) = child(root, NS_PSKC, "MACMethod") {
            let alg = match method.attribute("Algorithm").unwrap_or_default() {
                MAC_HMAC_SHA1 => MacAlgorithm::Sha1,
                MAC_HMAC_SHA256 => MacAlgorithm::Sha256,
                other => return Err(PskcError::Unsupported(format!("unsupported MAC algorithm {other:?}"))),
            };
            // RFC 6030 §6.1.1: the MAC key is itself encrypted under the pre-shared key.
            // Files from before the RFC carry no MACKey and reuse the encryption key.
            let key = match child(method, NS_PSKC, "MACKey") {
                Some(mk) => crypto.decrypt(mk, "the MAC key")?,
                None => crypto.psk.clone().ok_or(PskcError::KeyNeeded)?,
            };
            crypto.mac = Some((alg, key));
        }
        Ok(crypto)
    }

    /// Decrypts an element holding `xenc:EncryptionMethod` and `xenc:CipherData`.
    fn decrypt(&self, n: Node<'_, '_>, what: &str) -> Result<Zeroizing<Vec<u8>>, PskcError> {
        let psk = self.psk.as_deref().ok_or(PskcError::KeyNeeded)?;
        let alg = child(n, NS_XENC, "EncryptionMethod").and_then(|m| m.attribute("Algorithm")).unwrap_or_default();
        let ct = cipher_value(n).ok_or_else(|| PskcError::Xml(format!("{what} has no base64 CipherValue")))?;
        let want = match alg.strip_prefix(NS_XENC) {
            Some("aes128-cbc") => 16,
            Some("aes192-cbc") => 24,
            Some("aes256-cbc") => 32,
            _ => return Err(PskcError::Unsupported(format!("{what} is encrypted with unsupported algorithm {alg:?}"))),
        };
        if psk.len() != want {
            return Err(PskcError::WrongKey(format!(
                "{alg} needs a {want}-byte key ({} hex digits), this one has {} bytes",
                want * 2,
                psk.len()
            )));
        }
        aes_cbc_decrypt(psk, &ct)
            .ok_or_else(|| PskcError::WrongKey(format!("{what} does not decrypt (bad padding): wrong key?")))
    }

    fn check_mac(&self, key: &str, cipher_value: &[u8], value_mac: Option<&[u8]>) -> Result<(), PskcError> {
        // RFC 6030 §6.1.1: CBC gives no integrity by itself; an encrypted value without a MAC
        // could have been altered undetectably, so it is not accepted.
        let (Some((alg, mac_key)), Some(expected)) = (&self.mac, value_mac) else {
            return Err(PskcError::Key {
                key: key.to_owned(),
                message: "the encrypted secret carries no ValueMAC (or the file no MACMethod); its integrity cannot be checked".into(),
            });
        };
        let ok = match alg {
            MacAlgorithm::Sha1 => verify_hmac::<sha1::Sha1>(mac_key, cipher_value, expected),
            MacAlgorithm::Sha256 => verify_hmac::<sha2::Sha256>(mac_key, cipher_value, expected),
        };
        if ok { Ok(()) } else { Err(PskcError::Mac { key: key.to_owned() }) }
    }

    /// A `Data/*` element's content: `PlainValue` (base64) or `EncryptedValue` (+ `ValueMAC`).
    fn data_bytes(&self, n: Node<'_, '_>, key: &str) -> Result<Zeroizing<Vec<u8>>, PskcError> {
        let invalid = |message: &str| PskcError::Key { key: key.to_owned(), message: message.to_owned() };
        if let Some(plain) = child(n, NS_PSKC, "PlainValue") {
            return base64(&text_of(plain)).map(Zeroizing::new).ok_or_else(|| invalid("PlainValue is not base64"));
        }
        let Some(enc) = child(n, NS_PSKC, "EncryptedValue") else {
            return Err(invalid("has neither PlainValue nor EncryptedValue"));
        };
        let ct = cipher_value(enc).ok_or_else(|| invalid("EncryptedValue has no base64 CipherValue"))?;
        let mac = match child(n, NS_PSKC, "ValueMAC") {
            Some(m) => Some(base64(&text_of(m)).ok_or_else(|| invalid("ValueMAC is not base64"))?),
            None => None,
        };
        // The MAC is checked before decrypting: a padding oracle needs the decryption to run.
        self.check_mac(key, &ct, mac.as_deref())?;
        self.decrypt(enc, key)
    }

    /// An integer `Data/*` element: decimal text when plain, big-endian bytes when
    /// encrypted (RFC 6030 §4.2).
    fn data_int(&self, n: Node<'_, '_>, key: &str) -> Result<u64, PskcError> {
        let invalid =
            || PskcError::Key { key: key.to_owned(), message: format!("{} is not an integer", n.tag_name().name()) };
        if let Some(plain) = child(n, NS_PSKC, "PlainValue") {
            return text_of(plain).parse().map_err(|_| invalid());
        }
        let bytes = self.data_bytes(n, key)?;
        if bytes.len() > 8 {
            return Err(invalid());
        }
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
}

fn cipher_value(n: Node<'_, '_>) -> Option<Vec<u8>> {
    let cv = child(child(n, NS_XENC, "CipherData")?, NS_XENC, "CipherValue")?;
    base64(&text_of(cv))
}

/// XML Encryption's AES-CBC: the IV is the first block of the cipher value.
fn aes_cbc_decrypt(key: &[u8], iv_and_ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if iv_and_ct.len() < 32 {
        return None;
    }
    let (iv, ct) = iv_and_ct.split_at(16);
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = match key.len() {
        16 => {
            cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).ok()?.decrypt_padded::<Pkcs7>(&mut buf).ok()?.len()
        }
        24 => {
            cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv).ok()?.decrypt_padded::<Pkcs7>(&mut buf).ok()?.len()
        }
        32 => {
            cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).ok()?.decrypt_padded::<Pkcs7>(&mut buf).ok()?.len()
        }
        _ => return None,
    };
    buf.truncate(len);
    Some(buf)
}

fn verify_hmac<D>(key: &[u8], data: &[u8], expected: &[u8]) -> bool
where
    D: hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    let Ok(mut mac) = <Hmac<D> as KeyInit>::new_from_slice(key) else { return false };
    mac.update(data);
    // Constant-time comparison, inside the crate.
    mac.verify_slice(expected).is_ok()
}

fn date(n: Node<'_, '_>, name: &str, key: &str) -> Result<Option<OffsetDateTime>, PskcError> {
    let Some(s) = child_text(n, name) else { return Ok(None) };
    OffsetDateTime::parse(&s, &Rfc3339).map(Some).map_err(|_| PskcError::Key {
        key: key.to_owned(),
        message: format!("{name} {s:?} is not a date-time such as 2027-12-31T00:00:00Z"),
    })
}

fn key_package(package: Node<'_, '_>, index: usize, crypto: &Crypto) -> Result<HardwareToken, PskcError> {
    let device = child(package, NS_PSKC, "DeviceInfo");
    let device_serial = device.and_then(|d| child_text(d, "SerialNo"));
    let mut label = match &device_serial {
        Some(s) => format!("key package {index} (serial {s})"),
        None => format!("key package {index}"),
    };
    let key = child(package, NS_PSKC, "Key")
        .ok_or_else(|| PskcError::Key { key: label.clone(), message: "has no Key".into() })?;
    let key_id = key.attribute("Id").unwrap_or_default().trim().to_owned();
    let serial = match device_serial {
        Some(s) => s,
        None if !key_id.is_empty() => {
            label = format!("key package {index} (key {key_id})");
            key_id.clone()
        }
        None => {
            return Err(PskcError::Key { key: label, message: "has neither DeviceInfo/SerialNo nor a Key Id".into() });
        }
    };
    let invalid = |message: String| PskcError::Key { key: label.clone(), message };
    let algorithm_uri = key.attribute("Algorithm").unwrap_or_default().trim().to_owned();
    let kind = if ALG_TOTP.contains(&algorithm_uri.as_str()) {
        Some(OtpKind::Totp)
    } else if ALG_HOTP.contains(&algorithm_uri.as_str()) {
        Some(OtpKind::Hotp)
    } else {
        None
    };

    let params = child(key, NS_PSKC, "AlgorithmParameters");
    let format = params.and_then(|p| child(p, NS_PSKC, "ResponseFormat"));
    let digits = match format.and_then(|f| f.attribute("Length")) {
        Some(l) => {
            l.trim().parse::<u8>().map_err(|_| invalid(format!("ResponseFormat Length {l:?} is not a number")))?
        }
        None => 6,
    };
    let encoding = format.and_then(|f| f.attribute("Encoding")).unwrap_or("DECIMAL").to_owned();
    let hash = match params.and_then(|p| child_text(p, "Suite")) {
        None => TotpAlgorithm::Sha1,
        Some(suite) => {
            let norm = suite.to_ascii_uppercase().replace(['-', '_'], "");
            match norm.strip_prefix("HMAC").unwrap_or(&norm) {
                "SHA1" => TotpAlgorithm::Sha1,
                "SHA256" => TotpAlgorithm::Sha256,
                "SHA512" => TotpAlgorithm::Sha512,
                _ => return Err(invalid(format!("unsupported Suite {suite:?} (HMAC-SHA1, -SHA256 or -SHA512)"))),
            }
        }
    };

    let data = child(key, NS_PSKC, "Data").ok_or_else(|| invalid("has no Data".into()))?;
    let secret_node = child(data, NS_PSKC, "Secret").ok_or_else(|| invalid("has no Data/Secret".into()))?;
    let secret = crypto.data_bytes(secret_node, &label)?;
    let step_secs = match child(data, NS_PSKC, "TimeInterval") {
        Some(n) => crypto.data_int(n, &label)?,
        None => 30,
    };
    let t0 = match child(data, NS_PSKC, "Time") {
        Some(n) => crypto.data_int(n, &label)?,
        None => 0,
    };

    let policy = child(key, NS_PSKC, "Policy");
    let (mut not_before, mut not_after) = match device {
        Some(d) => (date(d, "StartDate", &label)?, date(d, "ExpiryDate", &label)?),
        None => (None, None),
    };
    let mut key_usage = Vec::new();
    let mut pin_usage = None;
    if let Some(p) = policy {
        // The stricter of the device's and the key's validity applies.
        if let Some(s) = date(p, "StartDate", &label)? {
            not_before = Some(not_before.map_or(s, |d| d.max(s)));
        }
        if let Some(e) = date(p, "ExpiryDate", &label)? {
            not_after = Some(not_after.map_or(e, |d| d.min(e)));
        }
        key_usage = children(p, NS_PSKC, "KeyUsage").map(text_of).filter(|s| !s.is_empty()).collect();
        pin_usage = child(p, NS_PSKC, "PINPolicy").and_then(|pp| pp.attribute("PINUsageMode")).map(str::to_owned);
    }

    Ok(HardwareToken {
        serial,
        key_id,
        manufacturer: device.and_then(|d| child_text(d, "Manufacturer")),
        model: device.and_then(|d| child_text(d, "Model")),
        algorithm_uri,
        kind,
        hash,
        digits,
        encoding,
        step_secs,
        t0,
        not_before,
        not_after,
        key_usage,
        pin_usage,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-28 07:00 UTC);

    /// RFC 6030 Figure 2, verbatim: the smallest container, a plain HOTP secret.
    const FIGURE_2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
    Id="exampleID1"
    xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
    <KeyPackage>
        <Key Id="12345678"
            Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
            <Issuer>Issuer-A</Issuer>
            <Data>
                <Secret>
                    <PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=
                    </PlainValue>
                </Secret>
            </Data>
        </Key>
    </KeyPackage>
</KeyContainer>"#;

    /// RFC 6030 §6.1 (Figure 6), verbatim: AES-128-CBC under the pre-shared key
    /// 0x12345678901234567890123456789012, HMAC-SHA1 MAC key carried encrypted.
    const SECTION_6_1: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
    xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
    <EncryptionKey>
        <ds:KeyName>Pre-shared-key</ds:KeyName>
    </EncryptionKey>
    <MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
        <MACKey>
            <xenc:EncryptionMethod
            Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
                <xenc:CipherValue>
    ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX
                </xenc:CipherValue>
            </xenc:CipherData>
        </MACKey>
    </MACMethod>
    <KeyPackage>
        <DeviceInfo>
            <Manufacturer>Manufacturer</Manufacturer>
            <SerialNo>987654321</SerialNo>
        </DeviceInfo>
        <CryptoModuleInfo>
            <Id>CM_ID_001</Id>
        </CryptoModuleInfo>
        <Key Id="12345678"
            Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
            <Issuer>Issuer</Issuer>
            <AlgorithmParameters>
                <ResponseFormat Length="8" Encoding="DECIMAL"/>
            </AlgorithmParameters>
            <Data>
                <Secret>
                    <EncryptedValue>
                        <xenc:EncryptionMethod
            Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
                        <xenc:CipherData>
                            <xenc:CipherValue>
    AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv
                            </xenc:CipherValue>
                        </xenc:CipherData>
                    </EncryptedValue>
                    <ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=
                    </ValueMAC>
                </Secret>
                <Counter>
                    <PlainValue>0</PlainValue>
                </Counter>
            </Data>
        </Key>
    </KeyPackage>
</KeyContainer>"#;

    const PSK: [u8; 16] =
        [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12];

    /// The RFC's examples are HOTP; the same file as a TOTP token, as vendors ship them.
    fn as_totp(xml: &str) -> String {
        xml.replace("pskc:hotp", "pskc:totp")
    }

    #[test]
    fn rfc6030_figure_2_plain_secret_decodes_to_the_rfc_value() {
        let tokens = parse(FIGURE_2, None).unwrap();
        assert_eq!(tokens.len(), 1);
        let t = &tokens[0];
        // RFC 6030 §4: the secret is the ASCII string "12345678901234567890".
        assert_eq!(t.secret.as_slice(), b"12345678901234567890");
        assert_eq!((t.serial.as_str(), t.key_id.as_str(), t.kind), ("12345678", "12345678", Some(OtpKind::Hotp)));
        let err = t.totp_params(NOW).unwrap_err().to_string();
        assert!(err.contains("HOTP") && err.contains("12345678"), "{err}");
    }

    #[test]
    fn rfc6030_section_6_1_encrypted_secret_decrypts_to_the_rfc_value() {
        let tokens = parse(SECTION_6_1, Some(&PSK)).unwrap();
        let t = &tokens[0];
        // §6.1: the decrypted secret is 3132333435363738393031323334353637383930.
        assert_eq!(hex::encode(t.secret.as_slice()), "3132333435363738393031323334353637383930");
        assert_eq!((t.serial.as_str(), t.digits, t.manufacturer.as_deref()), ("987654321", 8, Some("Manufacturer")));
        assert!(t.totp_params(NOW).is_err(), "HOTP is refused");

        let totp = parse(&as_totp(SECTION_6_1), Some(&PSK)).unwrap().remove(0);
        assert_eq!(
            totp.totp_params(NOW).unwrap(),
            TotpParams { algorithm: TotpAlgorithm::Sha1, digits: 8, step_secs: 30 }
        );
        assert!(!format!("{totp:?}").contains("3132"), "Debug must not show the secret");
    }

    #[test]
    fn a_wrong_missing_or_misfit_key_and_an_altered_file_are_refused() {
        assert_eq!(parse(SECTION_6_1, None), Err(PskcError::KeyNeeded));
        let mut wrong = PSK;
        wrong[0] ^= 1;
        assert!(matches!(parse(SECTION_6_1, Some(&wrong)), Err(PskcError::WrongKey(_) | PskcError::Mac { .. })));
        assert!(matches!(parse(SECTION_6_1, Some(&[0x12; 32])), Err(PskcError::WrongKey(_))));
        // One flipped bit of the secret's ciphertext: the MAC no longer matches.
        let altered = SECTION_6_1.replace("AAECAwQFBgcICQoLDA0OD+cI", "AAECAwQFBgcICQoLDA0OD+cJ");
        assert!(matches!(parse(&altered, Some(&PSK)), Err(PskcError::Mac { .. })));
        let unmacked =
            SECTION_6_1.replace("<ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=\n                    </ValueMAC>", "");
        assert!(
            matches!(parse(&unmacked, Some(&PSK)), Err(PskcError::Key { .. })),
            "{:?}",
            parse(&unmacked, Some(&PSK))
        );
    }

    fn totp_file(extra_params: &str, extra_data: &str, policy: &str) -> String {
        format!(
            r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Acme</Manufacturer><SerialNo>T-0001</SerialNo><Model>C200</Model></DeviceInfo>
    <Key Id="k1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters>{extra_params}</AlgorithmParameters>
      <Data>
        <Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</PlainValue></Secret>
        {extra_data}
      </Data>
      {policy}
    </Key>
  </KeyPackage>
</KeyContainer>"#
        )
    }

    #[test]
    fn totp_parameters_come_from_suite_response_format_and_time_interval() {
        let t = parse(&totp_file("", "", ""), None).unwrap().remove(0);
        assert_eq!(t.totp_params(NOW).unwrap(), TotpParams::default());
        assert_eq!((t.serial.as_str(), t.model.as_deref()), ("T-0001", Some("C200")));

        let xml = totp_file(
            r#"<Suite>HMAC-SHA256</Suite><ResponseFormat Length="8" Encoding="DECIMAL"/>"#,
            "<TimeInterval><PlainValue>60</PlainValue></TimeInterval><Time><PlainValue>0</PlainValue></Time>",
            "",
        );
        let t = parse(&xml, None).unwrap().remove(0);
        assert_eq!(
            t.totp_params(NOW).unwrap(),
            TotpParams { algorithm: TotpAlgorithm::Sha256, digits: 8, step_secs: 60 }
        );
        // And the code it makes is the RFC 6238 one for that seed.
        let p = TotpParams { step_secs: 30, ..t.totp_params(NOW).unwrap() };
        let at = OffsetDateTime::from_unix_timestamp(59).unwrap();
        assert_eq!(crate::factors::totp::code_at(p, &t.secret, at).unwrap(), "46119246");
    }

    #[test]
    fn tokens_wardgate_cannot_verify_are_refused_with_the_reason() {
        let cases = [
            (totp_file(r#"<ResponseFormat Length="7"/>"#, "", ""), "7 digits"),
            (totp_file(r#"<ResponseFormat Length="6" Encoding="ALPHANUMERIC"/>"#, "", ""), "DECIMAL"),
            (totp_file("", "<TimeInterval><PlainValue>3600</PlainValue></TimeInterval>", ""), "time step"),
            (totp_file("", "<Time><PlainValue>1000</PlainValue></Time>", ""), "Unix epoch"),
            (totp_file("", "", "<Policy><ExpiryDate>2020-01-01T00:00:00Z</ExpiryDate></Policy>"), "expired"),
            (totp_file("", "", "<Policy><StartDate>2030-01-01T00:00:00Z</StartDate></Policy>"), "not valid before"),
            (totp_file("", "", "<Policy><KeyUsage>Encrypt</KeyUsage></Policy>"), "Encrypt"),
            (totp_file("", "", r#"<Policy><PINPolicy PINUsageMode="Prepend"/></Policy>"#), "PIN"),
        ];
        for (xml, want) in cases {
            let t = parse(&xml, None).unwrap().remove(0);
            let err = t.totp_params(NOW).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("T-0001"), "{want}: {err}");
        }
        let ok =
            totp_file("", "", "<Policy><ExpiryDate>2030-01-01T00:00:00Z</ExpiryDate><KeyUsage>OTP</KeyUsage></Policy>");
        assert!(parse(&ok, None).unwrap()[0].totp_params(NOW).is_ok());
        let short = totp_file("", "", "").replace("MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=", "MTIzNDU2Nzg=");
        assert!(parse(&short, None).unwrap()[0].totp_params(NOW).unwrap_err().to_string().contains("128 bits"));
    }

    #[test]
    fn malformed_and_foreign_files_are_refused() {
        assert!(matches!(parse("<KeyContainer", None), Err(PskcError::Xml(_))));
        assert_eq!(parse("<KeyContainer xmlns='urn:other'/>", None), Err(PskcError::NotPskc));
        assert_eq!(parse(&format!("<KeyContainer xmlns='{NS_PSKC}'/>"), None), Err(PskcError::Empty));
        assert!(matches!(
            parse(&format!("<KeyContainer Version='2.0' xmlns='{NS_PSKC}'/>"), None),
            Err(PskcError::Version(_))
        ));
        let dtd = format!("<!DOCTYPE x [<!ENTITY a 'b'>]><KeyContainer xmlns='{NS_PSKC}'/>");
        assert!(matches!(parse(&dtd, None), Err(PskcError::Xml(_))));
        let twice = totp_file("", "", "").replace("</KeyContainer>", "")
            + &totp_file("", "", "").split_once("<KeyPackage>").map(|(_, rest)| format!("<KeyPackage>{rest}")).unwrap();
        assert_eq!(parse(&twice, None), Err(PskcError::DuplicateSerial("T-0001".into())));
        let pbkdf2 = SECTION_6_1.replace("<ds:KeyName>Pre-shared-key</ds:KeyName>", "<DerivedKey/>");
        assert!(parse(&pbkdf2, Some(&PSK)).unwrap_err().to_string().contains("PBKDF2"));
    }
}
