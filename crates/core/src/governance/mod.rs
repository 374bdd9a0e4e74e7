//! Governance of access beyond the everyday: emergency access (break-glass), just-in-time
//! elevation, business associates and their named accounts, and periodic access reviews.
//!
//! Each submodule is plain data and the rules over it, with `now` passed in. The rules
//! that need a second person (an approver, a reviewer) refuse the first person acting on
//! their own behalf here, in one place; the store then makes each decision happen once
//! (a conditional update), so two nodes cannot both decide.

pub mod breakglass;
pub mod elevation;
pub mod review;
pub mod settings;
pub mod vendor;

pub use breakglass::{BreakGlass, BreakGlassError, BreakGlassRequest, BreakGlassRules, Review, ReviewOutcome};
pub use elevation::{Elevation, ElevationError, ElevationStatus, PENDING_LIFETIME};
pub use review::{Campaign, DEADLINE_DECIDER, Decision, DefaultAction, Item, ReviewError, Scope, ScopeError};
pub use vendor::{Vendor, VendorError, check_sponsor, valid_vendor_name, vendor_account_ok};

/// Text a person must write (a justification, a reason): trimmed, then counted in
/// characters rather than bytes, so that "Patient in VF, code blue" counts the same in any
/// script.
pub(crate) fn chars(s: &str) -> usize {
    s.trim().chars().count()
}
