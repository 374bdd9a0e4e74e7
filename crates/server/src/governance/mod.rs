//! Emergency and privileged access (A4, A5, A6, V1): the services behind the break-glass
//! API, `wardgate breakglass|elevate|vendor|review`, and the node's periodic sweeps.
//!
//! The rules (who may review, approve, decide; what a valid request is) live in
//! `wardgate_core::governance`; the store makes each decision happen once. This layer
//! checks permissions against the policy's roles, writes the audit records and sends alerts.

pub mod alert;
pub mod breakglass;
pub mod elevation;
pub mod reviews;
pub mod sweep;
pub mod vendors;

use time::OffsetDateTime;
use wardgate_core::identity::{User, Username};
use wardgate_core::policy::Policy;
use wardgate_store::{Store, StoreError};

/// Permission to open break-glass access.
pub const INVOKE: &str = "breakglass.invoke";
/// Permission to review someone else's break-glass access.
pub const REVIEW: &str = "breakglass.review";

/// Whether one of the roles `user` holds at `now` grants `permission` under `policy`.
pub fn holds(policy: &Policy, user: &User, permission: &str, now: OffsetDateTime) -> bool {
    user.roles_at(now)
        .iter()
        .filter_map(|r| policy.role(r))
        .any(|role| role.permissions.iter().any(|p| p.matches(permission)))
}

#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("no account named {0}")]
    UnknownUser(String),
    #[error("{0}")]
    Refused(String),
    /// The person lacks the permission the action needs.
    #[error("{0}")]
    NotPermitted(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GovernanceError {
    /// Exit code for the CLI: 2 for what the operator can correct, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if matches!(self, GovernanceError::Store(_)) { 1 } else { 2 }
    }
}

pub(crate) async fn user_named(store: &dyn Store, name: &str) -> Result<User, GovernanceError> {
    let n = Username::parse(name).map_err(|_| GovernanceError::UnknownUser(name.to_owned()))?;
    store.user_by_username(&n).await?.ok_or_else(|| GovernanceError::UnknownUser(name.to_owned()))
}

pub(crate) fn new_id() -> Result<String, GovernanceError> {
    wardgate_core::token::random_id().map_err(|e| GovernanceError::Store(StoreError::Unavailable(e.to_string())))
}

pub(crate) fn ts(t: OffsetDateTime) -> String {
    wardgate_core::audit::record::format_ts(t)
}
