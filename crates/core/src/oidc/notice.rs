//! Back-channel logout notices (OpenID Connect Back-Channel Logout 1.0): the durable record
//! that an application must be told a session ended, and when to try telling it again.
//!
//! A notice is queued in the same transaction that revokes the session's grants, so a
//! session cannot end without its applications being owed a logout token, whichever
//! process ended it (a server, the command line). Delivery happens later, on a server.

use time::{Duration, OffsetDateTime};

/// One application to be told that one session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotice {
    pub id: i64,
    /// The `sid` of the logout token.
    pub session_id: String,
    pub client_id: String,
    /// The `sub` of the logout token, when the grants named a person.
    pub user_id: Option<String>,
    /// The sign-in's correlation id, so delivery records join the session's.
    pub correlation_id: String,
    /// Why the session ended (`signed out`, `idle timeout`, `account disabled`…).
    pub reason: String,
    pub created_at: OffsetDateTime,
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    /// The node delivering it, and until when no other node may (its lease).
    pub claimed_by: Option<String>,
    pub claimed_until: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    /// Set when the schedule ran out without a delivery.
    pub gave_up_at: Option<OffsetDateTime>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// After this long without a delivery a notice is given up: the application's own session
/// has almost certainly ended by itself by then, and its tokens are revoked anyway.
pub const GIVE_UP_AFTER: Duration = Duration::hours(24);

/// Pauses after the 1st, 2nd, 3rd and 4th failed attempt; hourly after that. Short at first
/// (a restart, a blip), then sparse, so that an application that is down for a day is not
/// hammered and gets its tokens soon after it is back.
const BACKOFF: [Duration; 4] =
    [Duration::seconds(5), Duration::seconds(30), Duration::minutes(2), Duration::minutes(10)];
const THEN_EVERY: Duration = Duration::hours(1);

/// When to try again after `attempts` failed attempts (counting the one just made, at
/// `now`), for a notice queued at `created_at`; `None` to give up.
pub fn next_attempt(created_at: OffsetDateTime, attempts: u32, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let pause = match attempts {
        0 => Duration::ZERO,
        n => BACKOFF.get(n as usize - 1).copied().unwrap_or(THEN_EVERY),
    };
    let at = now + pause;
    (at <= created_at + GIVE_UP_AFTER).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = time::macros::datetime!(2026-11-28 07:00 UTC);

    #[test]
    fn backoff_grows_then_settles_hourly_and_gives_up_after_a_day() {
        let pauses: Vec<_> = (1..=7).map(|n| next_attempt(T0, n, T0).map(|t| t - T0)).collect();
        assert_eq!(
            pauses,
            [5, 30, 120, 600, 3600, 3600, 3600].map(|s| Some(Duration::seconds(s))),
            "5 s, 30 s, 2 min, 10 min, then hourly"
        );
        // The pause runs from the failed attempt, not from the queueing.
        assert_eq!(next_attempt(T0, 2, T0 + Duration::hours(3)), Some(T0 + Duration::hours(3) + Duration::seconds(30)));
        // A retry that would fall past the day is not scheduled.
        let late = T0 + GIVE_UP_AFTER - Duration::minutes(30);
        assert_eq!(next_attempt(T0, 20, late), None);
        assert_eq!(next_attempt(T0, 1, late), Some(late + Duration::seconds(5)));
        assert_eq!(next_attempt(T0, 1, T0 + GIVE_UP_AFTER), None);
    }

    #[test]
    fn an_application_down_for_a_day_gets_some_two_dozen_attempts() {
        let (mut now, mut attempts) = (T0, 0);
        while let Some(at) = next_attempt(T0, attempts + 1, now) {
            attempts += 1;
            now = at;
        }
        // The first attempt, then 4 quick retries and hourly ones until the day is over.
        assert!((24..=28).contains(&attempts), "{attempts}");
        assert!(now <= T0 + GIVE_UP_AFTER);
    }
}
