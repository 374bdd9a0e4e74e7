//! The tamper-evident audit log (capability E1, E2).
//!
//! An [`AuditEvent`] is what the rest of the system reports; [`seal`](record::seal) turns it
//! into a [`SealedRecord`](record::SealedRecord) — the canonical JSON body that is stored
//! verbatim and exported verbatim, plus its link hash. Each link hash commits to the
//! previous one, so changing, removing, inserting or reordering any record changes every
//! hash after it. Signed [`Checkpoint`](checkpoint::Checkpoint)s pin the chain head so that
//! truncating the tail is detected too.

pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod record;
pub mod syslog;

pub use chain::{ChainBreak, ChainHead, ChainVerifier, StoredRecord};
pub use checkpoint::{Checkpoint, CheckpointSigner};
pub use event::{AuditEvent, EventType, Outcome};
pub use record::{AuditRecord, SCHEMA_VERSION, SealedRecord, seal};
