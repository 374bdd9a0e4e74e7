//! Signing keys kept in the store, their private halves sealed under the KEK.

use time::OffsetDateTime;

/// What a signing key is for; each purpose has its own keys.
pub const PURPOSE_AUDIT_CHECKPOINT: &str = "audit-checkpoint";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Random 128-bit hex; named in every checkpoint it signs.
    pub id: String,
    pub purpose: String,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
    /// The private key, sealed (see [`crate::secrets`]) under context [`Self::seal_context`].
    pub private_sealed: String,
    pub created_at: OffsetDateTime,
}

impl SigningKeyRecord {
    pub fn seal_context(id: &str) -> String {
        format!("signing_key:{id}:private")
    }
}
