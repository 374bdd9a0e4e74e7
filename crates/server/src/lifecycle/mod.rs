//! The identity life cycle (issue 8, L1-L3): identity proofing before strong factors, the
//! inventory of every factor with its expiry, and recovery of a lost factor — by the
//! person after a fresh step-up, or through the help desk under a two-person rule.
//!
//! Shared by the CLI and the HTTP API; the rules live in `wardgate_core::lifecycle`, the
//! store makes each decision happen once, and this layer checks permissions against the
//! policy's roles and writes the audit records. Errors are [`GovernanceError`]s: the same
//! kinds (not permitted, refused, not found, conflict) with the same exit codes.

pub mod inventory;
pub mod proofing;
pub mod recovery;

pub use crate::governance::GovernanceError;

/// Permission to open a help-desk recovery request.
pub const RECOVERY_OPEN: &str = "recovery.open";
/// Permission to approve or deny someone else's recovery request.
pub const RECOVERY_APPROVE: &str = "recovery.approve";
/// Permissions any one of which lets a person record an identity proofing.
pub const PROOFING_PERMISSIONS: &[&str] = &["proofing.record", "admin.users", "admin.helpdesk"];
