//! Access policy: who may do what, from where, at which assurance, and for how long.

pub mod version;

pub use version::{NewPolicyVersion, PolicyVersion, VersionStatus};
