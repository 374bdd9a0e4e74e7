//! Guessing defence per account (capability R5): growing delays, then a time-limited lock.
//!
//! NIST SP 800-63B §5.2.2 caps consecutive failures at 100; a hospital also cannot afford
//! clinicians locked out mid-shift, so the defaults slow guessing down early (delays that
//! double from the fourth failure) and lock only after twenty, for fifteen minutes. An
//! administrator can unlock sooner, and so can the person, by signing in with a passkey (a
//! factor guessing cannot reach).

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed without any delay.
    pub free_failures: u32,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Consecutive failures that lock the account (at most 100).
    pub lock_after: u32,
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { free_failures: 3, max_delay: Duration::seconds(60), lock_after: 20, lock_for: Duration::minutes(15) }
    }
}

impl LockoutPolicy {
    /// NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.lock_after == 0 || self.lock_after > 100 {
            return Err("lock_after must be between 1 and 100");
        }
        if self.free_failures >= self.lock_after {
            return Err("free_failures must be below lock_after");
        }
        Ok(())
    }
}

/// What the store keeps per account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub consecutive_failures: u32,
    pub last_failure_at: Option<OffsetDateTime>,
    pub locked_until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Too soon after the last failure; the attempt is refused without being checked.
    WaitUntil(OffsetDateTime),
    Locked(OffsetDateTime),
}

impl Attempts {
    pub fn gate(&self, policy: &LockoutPolicy, now: OffsetDateTime) -> Gate {
        if let Some(until) = self.locked_until.filter(|u| *u > now) {
            return Gate::Locked(until);
        }
        match (self.delay(policy), self.last_failure_at) {
            (Some(d), Some(last)) if last + d > now => Gate::WaitUntil(last + d),
            _ => Gate::Open,
        }
    }

    fn delay(&self, policy: &LockoutPolicy) -> Option<Duration> {
        let over = self.consecutive_failures.checked_sub(policy.free_failures).filter(|n| *n > 0)?;
        let secs = 1i64.checked_shl(over - 1).unwrap_or(i64::MAX);
        Some(Duration::seconds(secs).min(policy.max_delay))
    }

    /// After a failed check. Returns the new state; `locked_until` is set when this failure
    /// reaches the limit.
    pub fn failed(self, policy: &LockoutPolicy, now: OffsetDateTime) -> Attempts {
        // An expired lock starts a fresh count: the person waited it out.
        let base = if self.locked_until.is_some_and(|u| u <= now) { Attempts::default() } else { self };
        let n = base.consecutive_failures.saturating_add(1);
        Attempts {
            consecutive_failures: n,
            last_failure_at: Some(now),
            locked_until: if n >= policy.lock_after { Some(now + policy.lock_for) } else { base.locked_until },
        }
    }

    /// After a successful sign-in, or an unlock.
    pub fn cleared() -> Attempts {
        Attempts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = time::macros::datetime!(2026-11-28 07:00 UTC);

    fn after(n: u32, p: &LockoutPolicy) -> Attempts {
        (0..n).fold(Attempts::default(), |a, i| a.failed(p, T0 + Duration::seconds(i64::from(i))))
    }

    #[test]
    fn the_first_failures_cost_nothing_then_delays_double_up_to_the_cap() {
        let p = LockoutPolicy::default();
        let a = after(3, &p);
        assert_eq!(a.gate(&p, a.last_failure_at.unwrap()), Gate::Open);
        let last = |a: &Attempts| a.last_failure_at.unwrap();
        for (n, secs) in [(4, 1), (5, 2), (6, 4), (9, 32), (10, 60), (19, 60)] {
            let a = after(n, &p);
            assert_eq!(a.gate(&p, last(&a)), Gate::WaitUntil(last(&a) + Duration::seconds(secs)), "after {n}");
            assert_eq!(a.gate(&p, last(&a) + Duration::seconds(secs)), Gate::Open, "after {n}");
        }
    }

    #[test]
    fn the_limit_locks_for_a_while_and_then_counting_starts_again() {
        let p = LockoutPolicy::default();
        let a = after(20, &p);
        let until = a.locked_until.unwrap();
        assert_eq!(a.gate(&p, until - Duration::seconds(1)), Gate::Locked(until));
        assert_eq!(a.gate(&p, until), Gate::Open);
        let again = a.failed(&p, until + Duration::seconds(1));
        assert_eq!(again.consecutive_failures, 1);
        assert_eq!(again.locked_until, None);
        assert_eq!(Attempts::cleared().gate(&p, T0), Gate::Open);
    }

    #[test]
    fn policies_beyond_nist_limits_are_refused() {
        assert!(LockoutPolicy::default().validate().is_ok());
        assert!(LockoutPolicy { lock_after: 101, ..Default::default() }.validate().is_err());
        assert!(LockoutPolicy { lock_after: 0, ..Default::default() }.validate().is_err());
        assert!(LockoutPolicy { free_failures: 20, ..Default::default() }.validate().is_err());
    }
}
