//! Break-glass: emergency access to ePHI by a person whose usual roles do not grant it
//! (HIPAA 164.312(a)(2)(ii), emergency access procedure; A5).
//!
//! Opening one needs a reason from the hospital's list and a written justification; it
//! lasts a fixed time; every one is reviewed afterwards by someone else, who records
//! whether it was justified. An unreviewed one becomes overdue after the review window.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use crate::identity::Username;

/// The installation's rules for opening break-glass access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassRules {
    /// The reason codes a person may choose from (e.g. `code-blue`, `patient-unconscious`).
    /// An empty list refuses every request.
    pub reason_codes: Vec<String>,
    /// The least number of characters the justification must have, once trimmed.
    pub min_justification_chars: usize,
    /// How long the access lasts once opened.
    pub duration: Duration,
}

/// What the person asks for, before the rules are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassRequest {
    pub user_id: String,
    pub username: Username,
    pub reason_code: String,
    pub justification: String,
    /// The session it was opened from.
    pub session_id: Option<String>,
    pub client_ip: Option<IpAddr>,
}

/// Longest justification kept, in characters: a page of text, not an attachment.
pub const MAX_JUSTIFICATION_CHARS: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// Random, stable, never reused.
    pub id: String,
    pub user_id: String,
    /// Who invoked it (kept beside the id so a review reads without a join, and so that
    /// the self-review rule compares names).
    pub username: Username,
    pub reason_code: String,
    /// Trimmed.
    pub justification: String,
    pub opened_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub session_id: Option<String>,
    pub client_ip: Option<IpAddr>,
    /// Set when ended early, by the person or an administrator.
    pub ended_at: Option<OffsetDateTime>,
    pub review: Option<Review>,
}

/// A supervisor's finding about one break-glass access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub reviewer: Username,
    pub outcome: ReviewOutcome,
    /// Trimmed; required unless the outcome is [`ReviewOutcome::Justified`].
    pub comment: String,
    pub at: OffsetDateTime,
}

/// The string forms are stable (stored and audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewOutcome {
    Justified,
    NotJustified,
    /// Justified or not, something must happen next (education, a privacy incident).
    NeedsFollowUp,
}

impl ReviewOutcome {
    pub const ALL: [ReviewOutcome; 3] = [Self::Justified, Self::NotJustified, Self::NeedsFollowUp];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewOutcome::Justified => "justified",
            ReviewOutcome::NotJustified => "not_justified",
            ReviewOutcome::NeedsFollowUp => "needs_follow_up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakGlassError {
    #[error("unknown reason code {code:?}; choose one of: {}", allowed.join(", "))]
    UnknownReasonCode { code: String, allowed: Vec<String> },
    #[error("the justification has {got} characters; at least {min} are required")]
    JustificationTooShort { min: usize, got: usize },
    #[error("the justification has {got} characters; at most {MAX_JUSTIFICATION_CHARS} are kept")]
    JustificationTooLong { got: usize },
    #[error("break-glass access must last a positive time")]
    NoDuration,
    #[error("break-glass access cannot be reviewed by the person who invoked it")]
    SelfReview,
    #[error("this break-glass access has already been reviewed")]
    AlreadyReviewed,
    #[error("a review finding other than justified needs a comment")]
    CommentRequired,
    #[error("this break-glass access has already ended or expired")]
    NotActive,
}

impl BreakGlass {
    /// Opens emergency access at `now` for `rules.duration`, if the reason code is one of
    /// the rules' and the justification is long enough.
    pub fn open(
        id: String,
        request: BreakGlassRequest,
        rules: &BreakGlassRules,
        now: OffsetDateTime,
    ) -> Result<Self, BreakGlassError> {
        if !rules.reason_codes.contains(&request.reason_code) {
            return Err(BreakGlassError::UnknownReasonCode {
                code: request.reason_code,
                allowed: rules.reason_codes.clone(),
            });
        }
        let got = super::chars(&request.justification);
        if got < rules.min_justification_chars {
            return Err(BreakGlassError::JustificationTooShort { min: rules.min_justification_chars, got });
        }
        if got > MAX_JUSTIFICATION_CHARS {
            return Err(BreakGlassError::JustificationTooLong { got });
        }
        if !rules.duration.is_positive() {
            return Err(BreakGlassError::NoDuration);
        }
        Ok(Self {
            id,
            user_id: request.user_id,
            username: request.username,
            reason_code: request.reason_code,
            justification: request.justification.trim().to_owned(),
            opened_at: now,
            expires_at: now + rules.duration,
            session_id: request.session_id,
            client_ip: request.client_ip,
            ended_at: None,
            review: None,
        })
    }

    /// Whether the access is in force at `now`: opened, not expired, not ended.
    pub fn is_active_at(&self, now: OffsetDateTime) -> bool {
        self.opened_at <= now && now < self.expires_at && self.ended_at.is_none_or(|end| now < end)
    }

    /// Ends the access early.
    pub fn end(&mut self, now: OffsetDateTime) -> Result<(), BreakGlassError> {
        if !self.is_active_at(now) {
            return Err(BreakGlassError::NotActive);
        }
        self.ended_at = Some(now);
        Ok(())
    }

    /// Records `reviewer`'s finding. Refused if `reviewer` invoked this access (a review by
    /// oneself is no review), or if it was reviewed before (findings are not overwritten).
    /// It may be reviewed while still active: a supervisor who finds it unjustified should
    /// not have to wait for it to expire.
    pub fn review(
        &mut self,
        reviewer: &Username,
        outcome: ReviewOutcome,
        comment: &str,
        now: OffsetDateTime,
    ) -> Result<(), BreakGlassError> {
        if *reviewer == self.username {
            return Err(BreakGlassError::SelfReview);
        }
        if self.review.is_some() {
            return Err(BreakGlassError::AlreadyReviewed);
        }
        let comment = comment.trim();
        if outcome != ReviewOutcome::Justified && comment.is_empty() {
            return Err(BreakGlassError::CommentRequired);
        }
        self.review = Some(Review { reviewer: reviewer.clone(), outcome, comment: comment.to_owned(), at: now });
        Ok(())
    }

    /// Unreviewed, and opened more than `review_within` before `now`.
    pub fn overdue_at(&self, now: OffsetDateTime, review_within: Duration) -> bool {
        self.review.is_none() && now - self.opened_at > review_within
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-28 03:14 UTC);

    fn rules() -> BreakGlassRules {
        BreakGlassRules {
            reason_codes: vec!["code-blue".into(), "patient-unconscious".into()],
            min_justification_chars: 20,
            duration: Duration::hours(4),
        }
    }

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn request(reason: &str, justification: &str) -> BreakGlassRequest {
        BreakGlassRequest {
            user_id: "u-nina".into(),
            username: name("nina"),
            reason_code: reason.into(),
            justification: justification.into(),
            session_id: Some("s1".into()),
            client_ip: Some("10.1.2.3".parse().unwrap()),
        }
    }

    fn opened() -> BreakGlass {
        BreakGlass::open("bg1".into(), request("code-blue", "Code blue in bed 12, no pharmacist"), &rules(), T0)
            .unwrap()
    }

    #[test]
    fn opening_needs_a_listed_reason_and_a_long_enough_justification() {
        let bg = BreakGlass::open(
            "bg1".into(),
            request("code-blue", "  Code blue in bed 12, no pharmacist \n"),
            &rules(),
            T0,
        )
        .unwrap();
        assert_eq!(bg.justification, "Code blue in bed 12, no pharmacist", "trimmed");
        assert_eq!((bg.opened_at, bg.expires_at), (T0, T0 + Duration::hours(4)));
        assert_eq!((bg.review.as_ref(), bg.ended_at), (None, None));
        assert_eq!(bg.username.as_str(), "nina");

        let r =
            BreakGlass::open("bg2".into(), request("curiosity", "Code blue in bed 12, no pharmacist"), &rules(), T0);
        match r {
            Err(BreakGlassError::UnknownReasonCode { code, allowed }) => {
                assert_eq!(code, "curiosity");
                assert_eq!(allowed, ["code-blue", "patient-unconscious"]);
            }
            other => panic!("{other:?}"),
        }
        let no_codes = BreakGlassRules { reason_codes: vec![], ..rules() };
        assert!(matches!(
            BreakGlass::open("bg3".into(), request("code-blue", &"x".repeat(50)), &no_codes, T0),
            Err(BreakGlassError::UnknownReasonCode { .. })
        ));
    }

    #[test]
    fn a_short_justification_is_refused_counting_characters_not_bytes() {
        // Padding does not count.
        let r = BreakGlass::open("bg".into(), request("code-blue", &format!("   {}   ", "x".repeat(19))), &rules(), T0);
        assert_eq!(r.unwrap_err(), BreakGlassError::JustificationTooShort { min: 20, got: 19 });
        assert!(BreakGlass::open("bg".into(), request("code-blue", &"x".repeat(20)), &rules(), T0).is_ok());
        // 19 two-byte characters are 38 bytes, and still too short.
        let r = BreakGlass::open("bg".into(), request("code-blue", &"é".repeat(19)), &rules(), T0);
        assert_eq!(r.unwrap_err(), BreakGlassError::JustificationTooShort { min: 20, got: 19 });
        let r = BreakGlass::open("bg".into(), request("code-blue", &"x".repeat(4001)), &rules(), T0);
        assert_eq!(r.unwrap_err(), BreakGlassError::JustificationTooLong { got: 4001 });
        let never = BreakGlassRules { duration: Duration::ZERO, ..rules() };
        let r = BreakGlass::open("bg".into(), request("code-blue", &"x".repeat(20)), &never, T0);
        assert_eq!(r.unwrap_err(), BreakGlassError::NoDuration);
    }

    #[test]
    fn access_is_active_until_it_expires_or_ends() {
        let bg = opened();
        assert!(!bg.is_active_at(T0 - Duration::seconds(1)));
        assert!(bg.is_active_at(T0));
        assert!(bg.is_active_at(T0 + Duration::hours(4) - Duration::microseconds(1)));
        assert!(!bg.is_active_at(T0 + Duration::hours(4)));

        let mut ended = bg.clone();
        ended.end(T0 + Duration::hours(1)).unwrap();
        assert_eq!(ended.ended_at, Some(T0 + Duration::hours(1)));
        assert!(ended.is_active_at(T0 + Duration::minutes(59)));
        assert!(!ended.is_active_at(T0 + Duration::hours(1)));
        assert_eq!(ended.end(T0 + Duration::hours(2)), Err(BreakGlassError::NotActive));
        let mut expired = bg;
        assert_eq!(expired.end(T0 + Duration::hours(5)), Err(BreakGlassError::NotActive));
    }

    #[test]
    fn the_invoker_cannot_review_and_a_review_is_not_overwritten() {
        let mut bg = opened();
        let later = T0 + Duration::hours(6);
        assert_eq!(bg.review(&name("nina"), ReviewOutcome::Justified, "", later), Err(BreakGlassError::SelfReview));
        assert_eq!(bg.review, None);
        assert_eq!(
            bg.review(&name("sam"), ReviewOutcome::NotJustified, "  ", later),
            Err(BreakGlassError::CommentRequired)
        );
        bg.review(&name("sam"), ReviewOutcome::NeedsFollowUp, " talk to nina ", later).unwrap();
        let review = bg.review.clone().unwrap();
        assert_eq!(
            review,
            Review {
                reviewer: name("sam"),
                outcome: ReviewOutcome::NeedsFollowUp,
                comment: "talk to nina".into(),
                at: later
            }
        );
        assert_eq!(bg.review(&name("ola"), ReviewOutcome::Justified, "", later), Err(BreakGlassError::AlreadyReviewed));
        assert_eq!(bg.review, Some(review), "the first finding stands");
        // Justified needs no comment, and an active access may be reviewed.
        let mut active = opened();
        active.review(&name("sam"), ReviewOutcome::Justified, "", T0 + Duration::minutes(5)).unwrap();
    }

    #[test]
    fn unreviewed_access_is_overdue_after_the_review_window() {
        let within = Duration::hours(72);
        let mut bg = opened();
        assert!(!bg.overdue_at(T0 + within, within), "exactly at the window is not late");
        assert!(bg.overdue_at(T0 + within + Duration::seconds(1), within));
        bg.review(&name("sam"), ReviewOutcome::Justified, "", T0 + Duration::days(10)).unwrap();
        assert!(!bg.overdue_at(T0 + Duration::days(11), within), "reviewed is never overdue");
    }

    #[test]
    fn review_outcomes_round_trip() {
        for o in ReviewOutcome::ALL {
            assert_eq!(ReviewOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(ReviewOutcome::ALL.map(ReviewOutcome::as_str), ["justified", "not_justified", "needs_follow_up"]);
        assert_eq!(ReviewOutcome::parse("Justified"), None);
    }
}
