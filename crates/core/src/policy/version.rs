//! Numbered policy versions: what was proposed, by whom, why, and who let it take effect.
//!
//! A version is immutable once proposed except for its status. At most one version is
//! active; activating another supersedes it in the same transaction (A7).

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStatus {
    /// Waiting for approval; not in force.
    Proposed,
    /// The policy in force.
    Active,
    /// Was active, replaced by a later activation. Can be rolled back to.
    Superseded,
    /// Withdrawn or refused before it was ever active.
    Rejected,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Proposed => "proposed",
            VersionStatus::Active => "active",
            VersionStatus::Superseded => "superseded",
            VersionStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Proposed, Self::Active, Self::Superseded, Self::Rejected].into_iter().find(|k| k.as_str() == s)
    }
}

/// A proposal before the store has numbered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPolicyVersion {
    /// The policy document exactly as proposed (TOML).
    pub source: String,
    /// Who proposed it: `operator:<name>`, `user:<name>` or `token:<id>:<name>`.
    pub author: String,
    pub reason: String,
    pub proposed_at: OffsetDateTime,
    /// Set when this version re-proposes an earlier one (a rollback).
    pub restores: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// 1, 2, 3, … in the order proposed; never reused.
    pub number: i64,
    pub source: String,
    pub author: String,
    pub reason: String,
    pub proposed_at: OffsetDateTime,
    pub restores: Option<i64>,
    pub status: VersionStatus,
    /// Who activated it (the second person, or the author where one person suffices).
    pub approved_by: Option<String>,
    pub approved_at: Option<OffsetDateTime>,
}
