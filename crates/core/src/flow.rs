//! Multi-step interactions in progress: a login between its steps, an enrollment between
//! its pages.
//!
//! Their state lives in the store rather than in a node's memory so that the next step may
//! reach any node behind a load balancer. The client holds a random handle; the store keeps
//! only its digest (see [`crate::token`]).

use time::{Duration, OffsetDateTime};

/// How long a login may take, from the username to the session, before it has to start
/// again (not extended by each step: a half-finished login does not linger).
pub const LOGIN_TTL: Duration = Duration::minutes(5);
/// How long an enrollment may take in all.
pub const ENROLLMENT_TTL: Duration = Duration::minutes(30);
/// How long a signed-in person has to answer a step-up challenge (a security key's
/// assertion) before an account change that a session alone may not make.
pub const STEP_UP_TTL: Duration = Duration::minutes(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    Login,
    Enrollment,
    /// Adding a factor to an existing account from the account page.
    AddFactor,
    /// Enrolling one replacement second factor through an approved recovery link (L3).
    Recovery,
    /// A security-key challenge issued inside a signed-in session, answered before an
    /// account change that needs fresh proof of a second factor (replacing a lost one).
    StepUp,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Login => "login",
            FlowKind::Enrollment => "enrollment",
            FlowKind::AddFactor => "add_factor",
            FlowKind::Recovery => "recovery",
            FlowKind::StepUp => "step_up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Login, Self::Enrollment, Self::AddFactor, Self::Recovery, Self::StepUp]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id_digest: [u8; 32],
    pub kind: FlowKind,
    /// The account concerned; `None` for a login whose username is unknown (a decoy that
    /// fails at the factor step exactly as a wrong passphrase would).
    pub user_id: Option<String>,
    /// Step-specific state as JSON. Secrets in it (a TOTP secret awaiting its first code)
    /// are sealed by the caller.
    pub state: serde_json::Value,
    /// Bumped on every update; updates are compare-and-set on it so that two requests
    /// racing on one flow cannot both advance it.
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Flow {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}
