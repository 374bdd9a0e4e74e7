//! Just-in-time elevation (A4): a person asks for a role for a while, with a reason; a
//! second person approves or denies; an approved role expires by itself.
//!
//! The role is given through the account's expiring role assignments
//! ([`User::role_expiry`]), so it stops granting anything at `expires_at` even if no job
//! runs. A request nobody decided within [`PENDING_LIFETIME`] is stale: it can no longer be
//! approved (the need it described has passed) and the person asks again. Staleness is
//! worked out from `requested_at`, like a lockout, and never stored.

use time::{Duration, OffsetDateTime};

use crate::identity::{User, Username, valid_role};

/// How long a request waits for a decision before it goes stale.
pub const PENDING_LIFETIME: Duration = Duration::hours(24);

/// Longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elevation {
    /// Random, stable, never reused.
    pub id: String,
    pub user_id: String,
    /// Who asked (compared with the approver: nobody approves their own request).
    pub username: Username,
    pub role: String,
    /// Trimmed.
    pub reason: String,
    /// How long the role lasts once approved, counted from the approval.
    pub duration: Duration,
    pub requested_at: OffsetDateTime,
    pub status: ElevationStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElevationStatus {
    /// Waiting for a decision (or stale: see [`Elevation::is_stale_at`]).
    Pending,
    /// The role is held until `expires_at` (`at` + the requested duration).
    Approved {
        by: Username,
        at: OffsetDateTime,
        expires_at: OffsetDateTime,
    },
    Denied {
        by: Username,
        at: OffsetDateTime,
        comment: String,
    },
    /// Withdrawn by the person who asked, before anyone decided.
    Cancelled {
        at: OffsetDateTime,
    },
}

impl ElevationStatus {
    /// The stable string form (stored and audited).
    pub fn as_str(&self) -> &'static str {
        match self {
            ElevationStatus::Pending => "pending",
            ElevationStatus::Approved { .. } => "approved",
            ElevationStatus::Denied { .. } => "denied",
            ElevationStatus::Cancelled { .. } => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElevationError {
    #[error("{0:?} is not a role name")]
    InvalidRole(String),
    #[error("a reason is required")]
    EmptyReason,
    #[error("the reason has {got} characters; at most {MAX_REASON_CHARS} are kept")]
    ReasonTooLong { got: usize },
    #[error("an elevation must last a positive time")]
    NoDuration,
    #[error("an elevation may last at most {max}")]
    TooLong { max: Duration },
    #[error("the account already holds role {0:?} without an expiry")]
    AlreadyHeld(String),
    #[error("a request cannot be approved or denied by the person who made it")]
    SelfDecision,
    #[error("the request is {0}, not pending")]
    NotPending(&'static str),
    #[error("the request waited longer than {PENDING_LIFETIME} and is stale; ask again")]
    Stale,
}

impl Elevation {
    /// A pending request by `user` for `role` during `duration` (at most `max`).
    pub fn request(
        id: String,
        user: &User,
        role: &str,
        reason: &str,
        duration: Duration,
        max: Duration,
        now: OffsetDateTime,
    ) -> Result<Self, ElevationError> {
        if !valid_role(role) {
            return Err(ElevationError::InvalidRole(role.to_owned()));
        }
        let got = super::chars(reason);
        if got == 0 {
            return Err(ElevationError::EmptyReason);
        }
        if got > MAX_REASON_CHARS {
            return Err(ElevationError::ReasonTooLong { got });
        }
        if !duration.is_positive() {
            return Err(ElevationError::NoDuration);
        }
        if duration > max {
            return Err(ElevationError::TooLong { max });
        }
        // A permanent assignment makes the request pointless (and an approval would not
        // shorten it: see `User::grant_role_until`). One that expires may be extended.
        if user.roles.iter().any(|r| r == role) && !user.role_expiry.contains_key(role) {
            return Err(ElevationError::AlreadyHeld(role.to_owned()));
        }
        Ok(Self {
            id,
            user_id: user.id.clone(),
            username: user.username.clone(),
            role: role.to_owned(),
            reason: reason.trim().to_owned(),
            duration,
            requested_at: now,
            status: ElevationStatus::Pending,
        })
    }

    /// Whether a pending request has waited too long to be approved.
    pub fn is_stale_at(&self, now: OffsetDateTime) -> bool {
        self.status == ElevationStatus::Pending && now - self.requested_at >= PENDING_LIFETIME
    }

    /// Whether the approved role is in force at `now`.
    pub fn is_active_at(&self, now: OffsetDateTime) -> bool {
        matches!(self.status, ElevationStatus::Approved { at, expires_at, .. } if at <= now && now < expires_at)
    }

    /// Checks that `by` may decide now: someone else, on a request still pending and fresh.
    fn decidable_by(&self, by: &Username, now: OffsetDateTime) -> Result<(), ElevationError> {
        if *by == self.username {
            return Err(ElevationError::SelfDecision);
        }
        if self.status != ElevationStatus::Pending {
            return Err(ElevationError::NotPending(self.status.as_str()));
        }
        if self.is_stale_at(now) {
            return Err(ElevationError::Stale);
        }
        Ok(())
    }

    /// Approves the request: the role is held from `now` for the requested duration.
    pub fn approve(&mut self, approver: &Username, now: OffsetDateTime) -> Result<(), ElevationError> {
        self.decidable_by(approver, now)?;
        self.status = ElevationStatus::Approved { by: approver.clone(), at: now, expires_at: now + self.duration };
        Ok(())
    }

    /// Denies the request. A stale request may still be denied (it changes nothing but
    /// closes it with a finding).
    pub fn deny(&mut self, by: &Username, comment: &str, now: OffsetDateTime) -> Result<(), ElevationError> {
        match self.decidable_by(by, now) {
            Ok(()) | Err(ElevationError::Stale) => {}
            Err(e) => return Err(e),
        }
        self.status = ElevationStatus::Denied { by: by.clone(), at: now, comment: comment.trim().to_owned() };
        Ok(())
    }

    /// Withdraws a pending request (the caller checks that the person asking is its author).
    pub fn cancel(&mut self, now: OffsetDateTime) -> Result<(), ElevationError> {
        if self.status != ElevationStatus::Pending {
            return Err(ElevationError::NotPending(self.status.as_str()));
        }
        self.status = ElevationStatus::Cancelled { at: now };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::identity::AccountStatus;

    const T0: OffsetDateTime = datetime!(2026-11-28 09:00 UTC);

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn nina() -> User {
        User::new("u-nina".into(), name("nina"), "Nina".into(), AccountStatus::Active, T0)
            .with_roles(["nurse".to_owned()])
    }

    fn pending() -> Elevation {
        Elevation::request(
            "e1".into(),
            &nina(),
            "pharmacist",
            " cover night shift ",
            Duration::hours(8),
            Duration::hours(12),
            T0,
        )
        .unwrap()
    }

    #[test]
    fn a_request_needs_a_role_a_reason_and_a_duration_within_the_maximum() {
        let e = pending();
        assert_eq!((e.user_id.as_str(), e.username.as_str(), e.role.as_str()), ("u-nina", "nina", "pharmacist"));
        assert_eq!((e.reason.as_str(), e.duration, e.requested_at), ("cover night shift", Duration::hours(8), T0));
        assert_eq!(e.status, ElevationStatus::Pending);

        let max = Duration::hours(12);
        let req =
            |role: &str, reason: &str, d: Duration| Elevation::request("e".into(), &nina(), role, reason, d, max, T0);
        assert_eq!(req("Pharmacist!", "x", Duration::hours(1)), Err(ElevationError::InvalidRole("Pharmacist!".into())));
        assert_eq!(req("pharmacist", "   ", Duration::hours(1)), Err(ElevationError::EmptyReason));
        assert_eq!(
            req("pharmacist", &"x".repeat(2001), Duration::hours(1)),
            Err(ElevationError::ReasonTooLong { got: 2001 })
        );
        assert_eq!(req("pharmacist", "x", Duration::ZERO), Err(ElevationError::NoDuration));
        assert_eq!(req("pharmacist", "x", Duration::hours(-1)), Err(ElevationError::NoDuration));
        assert!(req("pharmacist", "x", max).is_ok(), "the maximum itself is allowed");
        assert_eq!(req("pharmacist", "x", max + Duration::seconds(1)), Err(ElevationError::TooLong { max }));
        // A role held for good cannot be requested; one that expires may be extended.
        assert_eq!(req("nurse", "x", Duration::hours(1)), Err(ElevationError::AlreadyHeld("nurse".into())));
        let mut held = nina().with_roles(["nurse".to_owned(), "pharmacist".to_owned()]);
        held.role_expiry.insert("pharmacist".into(), T0 + Duration::hours(1));
        assert!(Elevation::request("e".into(), &held, "pharmacist", "x", Duration::hours(1), max, T0).is_ok());
    }

    #[test]
    fn nobody_approves_their_own_request() {
        let mut e = pending();
        assert_eq!(e.approve(&name("nina"), T0 + Duration::minutes(5)), Err(ElevationError::SelfDecision));
        assert_eq!(e.deny(&name("nina"), "", T0 + Duration::minutes(5)), Err(ElevationError::SelfDecision));
        assert_eq!(e.status, ElevationStatus::Pending);
    }

    #[test]
    fn approval_starts_the_clock_and_is_given_once() {
        let mut e = pending();
        let at = T0 + Duration::minutes(30);
        e.approve(&name("sam"), at).unwrap();
        assert_eq!(e.status, ElevationStatus::Approved { by: name("sam"), at, expires_at: at + Duration::hours(8) });
        assert_eq!(e.status.as_str(), "approved");
        assert!(!e.is_active_at(at - Duration::seconds(1)));
        assert!(e.is_active_at(at));
        assert!(e.is_active_at(at + Duration::hours(8) - Duration::microseconds(1)));
        assert!(!e.is_active_at(at + Duration::hours(8)));

        let before = e.clone();
        assert_eq!(e.approve(&name("ola"), at), Err(ElevationError::NotPending("approved")));
        assert_eq!(e.deny(&name("ola"), "no", at), Err(ElevationError::NotPending("approved")));
        assert_eq!(e.cancel(at), Err(ElevationError::NotPending("approved")));
        assert_eq!(e, before);
    }

    #[test]
    fn denial_and_cancellation_close_a_request() {
        let mut e = pending();
        e.deny(&name("sam"), " not on the rota ", T0 + Duration::minutes(1)).unwrap();
        assert_eq!(
            e.status,
            ElevationStatus::Denied {
                by: name("sam"),
                at: T0 + Duration::minutes(1),
                comment: "not on the rota".into()
            }
        );
        assert!(!e.is_active_at(T0 + Duration::minutes(2)));
        assert_eq!(e.approve(&name("ola"), T0 + Duration::minutes(2)), Err(ElevationError::NotPending("denied")));

        let mut c = pending();
        c.cancel(T0 + Duration::minutes(3)).unwrap();
        assert_eq!(
            (c.status.as_str(), &c.status),
            ("cancelled", &ElevationStatus::Cancelled { at: T0 + Duration::minutes(3) })
        );
        assert_eq!(c.approve(&name("sam"), T0 + Duration::minutes(4)), Err(ElevationError::NotPending("cancelled")));
    }

    #[test]
    fn a_request_left_for_a_day_goes_stale_and_can_only_be_denied() {
        let e = pending();
        assert!(!e.is_stale_at(T0 + PENDING_LIFETIME - Duration::seconds(1)));
        assert!(e.is_stale_at(T0 + PENDING_LIFETIME));
        let mut late = e.clone();
        assert_eq!(late.approve(&name("sam"), T0 + PENDING_LIFETIME), Err(ElevationError::Stale));
        assert_eq!(late.status, ElevationStatus::Pending);
        late.deny(&name("sam"), "too late", T0 + PENDING_LIFETIME).unwrap();
        assert!(!late.is_stale_at(T0 + PENDING_LIFETIME), "only pending requests are stale");
        let mut fresh = e;
        fresh.approve(&name("sam"), T0 + PENDING_LIFETIME - Duration::seconds(1)).unwrap();
    }
}
