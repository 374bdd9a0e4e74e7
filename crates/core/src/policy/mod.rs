//! Access policy: who may do what, from where, at which assurance, and for how long.
//!
//! A policy is a TOML file of roles (job functions and the permissions they grant), named
//! network segments and ordered rules. [`Policy::parse`] checks it whole and reports every
//! problem with its line; [`Policy::evaluate`] decides one request without allocating;
//! [`Policy::explain`] shows every rule's verdict; [`simulate`] replays recorded decisions
//! against a proposal. Versions and their approval live in the store ([`version`]).

mod compile;
pub mod document;
mod evaluate;
pub mod roles;
pub mod simulate;
pub mod version;

#[cfg(test)]
mod tests;

pub use compile::{MAX_ROLES, MAX_SEGMENTS, Policy, PolicyErrors, Problem, Role, Segment, SessionLimits};
pub use evaluate::{
    Decision, DeviceFacts, Effect, Explanation, LOGIN_ACTION, Miss, Request, SSO_ACTION, SessionFacts, Step, Subject,
    builtin,
};
pub use simulate::{Recorded, RecordedRequest, Simulation, simulate};
pub use version::{NewPolicyVersion, PolicyVersion, VersionStatus};
