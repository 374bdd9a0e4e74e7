//! Identity life cycle (issue 8, L1–L3): proofing a person's identity before they hold a
//! strong factor, who enrolled each factor, and help-desk recovery of a lost factor under
//! a two-person rule. Plain data and rules; `now` is always passed in.
//!
//! Knowledge-based questions are never used for recovery (NIST SP 800-63B §6.1.2.3 forbids
//! them as an authenticator, and their answers are mostly public).

use time::{Duration, OffsetDateTime};

use crate::identity::Username;

/// How the person's identity was verified (NIST SP 800-63A-4 §4: in-person or remote
/// proofing attended by a trained operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofingMethod {
    InPerson,
    RemoteSupervised,
}

impl ProofingMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ProofingMethod::InPerson => "in_person",
            ProofingMethod::RemoteSupervised => "remote_supervised",
        }
    }

    /// Accepts `in_person` and `in-person` alike: the CLI spells options with hyphens.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().replace('-', "_");
        [Self::InPerson, Self::RemoteSupervised].into_iter().find(|m| m.as_str() == s)
    }
}

/// The identity evidence a verifier may have looked at. A closed list, so reports can count
/// by kind and nobody types a document number here by mistake.
pub const DOCUMENT_TYPES: &[&str] = &[
    "passport",
    "drivers_license",
    "state_id",
    "national_id",
    "military_id",
    "permanent_resident_card",
    "employee_badge",
];

/// A document type from [`DOCUMENT_TYPES`] (hyphens read as underscores).
pub fn parse_document(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase().replace('-', "_");
    DOCUMENT_TYPES.iter().copied().find(|d| *d == s)
}

/// The longest evidence reference kept: a ticket or case number, never the evidence itself.
pub const MAX_EVIDENCE_REF: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("the proofing method must be in-person or remote-supervised")]
    Method,
    #[error("the document type must be one of: {}", DOCUMENT_TYPES.join(", "))]
    Document,
    #[error(
        "the evidence reference must be a ticket or case number of 1-{MAX_EVIDENCE_REF} letters, digits, spaces and - _ . / : #"
    )]
    EvidenceRef,
    #[error(
        "the evidence reference looks like document image data; record a ticket or case number, never the document"
    )]
    EvidenceImage,
    #[error("a reason is required")]
    NoReason,
    #[error("the reason has at most 500 characters")]
    LongReason,
    #[error("nobody verifies their own identity")]
    SelfProofing,
    #[error("nobody opens a recovery request for their own account")]
    SelfRecovery,
    #[error("a recovery request is approved by someone other than the person who opened it")]
    SameApprover,
    #[error("the person being recovered cannot decide their own request")]
    SubjectDecides,
    #[error("this recovery request is {0}, not pending")]
    NotPending(&'static str),
    #[error("the request waited longer than {RECOVERY_PENDING_LIFETIME} and is stale; open a new one")]
    Stale,
}

/// Refuses what looks like a document image: data URLs and the base64 openings of JPEG,
/// PNG, GIF, WebP, TIFF, HEIC and PDF files. Storing images of identity documents would
/// make the identity store a target for identity theft; the evidence stays in the HR or
/// help-desk system the reference points to.
fn looks_like_image(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    const MAGIC: &[&str] = &["/9j/", "ivborw0kggo", "r0lgod", "uklgr", "sukqaa", "tu0akg", "jvberi0"];
    // HEIC and other ISO media files: a box size, then `ftyp`.
    let iso_media = lower.starts_with("aaaa") && lower.get(5..11) == Some("gz0exa");
    lower.starts_with("data:") || lower.contains(";base64,") || iso_media || MAGIC.iter().any(|m| lower.starts_with(m))
}

/// Checks an evidence reference: short, printable, and not document data.
pub fn check_evidence_ref(s: &str) -> Result<String, LifecycleError> {
    let s = s.trim();
    if looks_like_image(s) {
        return Err(LifecycleError::EvidenceImage);
    }
    let ok = (1..=MAX_EVIDENCE_REF).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || " -_./:#".contains(c));
    if ok { Ok(s.to_owned()) } else { Err(LifecycleError::EvidenceRef) }
}

fn check_reason(reason: &str, required: bool) -> Result<Option<String>, LifecycleError> {
    let r = reason.trim();
    if r.is_empty() {
        return if required { Err(LifecycleError::NoReason) } else { Ok(None) };
    }
    if r.chars().count() > 500 {
        return Err(LifecycleError::LongReason);
    }
    Ok(Some(r.to_owned()))
}

/// One identity verification of one person (L1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proofing {
    pub id: String,
    pub user_id: String,
    pub username: Username,
    pub method: ProofingMethod,
    /// One of [`DOCUMENT_TYPES`].
    pub document: String,
    pub evidence_ref: String,
    /// The administrator or help-desk agent who checked the document.
    pub verified_by: Username,
    pub reason: Option<String>,
    pub at: OffsetDateTime,
}

/// What a verifier states, before it is checked.
#[derive(Debug, Clone)]
pub struct ProofingClaim {
    pub method: String,
    pub document: String,
    pub evidence_ref: String,
    pub reason: String,
}

impl Proofing {
    pub fn new(
        id: String,
        user_id: String,
        username: Username,
        verified_by: Username,
        claim: &ProofingClaim,
        now: OffsetDateTime,
    ) -> Result<Self, LifecycleError> {
        if verified_by == username {
            return Err(LifecycleError::SelfProofing);
        }
        Ok(Self {
            id,
            user_id,
            username,
            method: ProofingMethod::parse(&claim.method).ok_or(LifecycleError::Method)?,
            document: parse_document(&claim.document).ok_or(LifecycleError::Document)?.to_owned(),
            evidence_ref: check_evidence_ref(&claim.evidence_ref)?,
            verified_by,
            reason: check_reason(&claim.reason, false)?,
            at: now,
        })
    }
}

/// Who enrolled a factor (L2), stored as text: `self`, `enrollment_link`, `admin:<name>`,
/// `recovery:<request id>`, `import:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolledBy {
    /// The signed-in person, from their account page.
    Person,
    /// The person, through the enrollment link an administrator issued.
    EnrollmentLink,
    /// An administrator (hardware tokens assigned from a PSKC file, for instance).
    Admin(String),
    /// The person, through the recovery link of this request.
    Recovery(String),
}

impl std::fmt::Display for EnrolledBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnrolledBy::Person => f.write_str("self"),
            EnrolledBy::EnrollmentLink => f.write_str("enrollment_link"),
            EnrolledBy::Admin(a) => write!(f, "admin:{a}"),
            EnrolledBy::Recovery(id) => write!(f, "recovery:{id}"),
        }
    }
}

/// A pending recovery request nobody decided within this can no longer be approved: the
/// situation the help desk recorded has moved on.
pub const RECOVERY_PENDING_LIFETIME: Duration = Duration::hours(24);

/// Where a help-desk recovery request stands (L3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStatus {
    Pending,
    /// A one-time link was handed out; it works until `link_expires_at`, once.
    Approved {
        by: Username,
        at: OffsetDateTime,
        link_expires_at: OffsetDateTime,
    },
    Denied {
        by: Username,
        at: OffsetDateTime,
        comment: String,
    },
    /// The link was used to enroll `factor_id`.
    Used {
        by: Username,
        at: OffsetDateTime,
        link_expires_at: OffsetDateTime,
        used_at: OffsetDateTime,
        factor_id: String,
    },
}

impl RecoveryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecoveryStatus::Pending => "pending",
            RecoveryStatus::Approved { .. } => "approved",
            RecoveryStatus::Denied { .. } => "denied",
            RecoveryStatus::Used { .. } => "used",
        }
    }
}

/// A help desk's request to let a person enroll a new second factor after losing theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRequest {
    pub id: String,
    pub user_id: String,
    pub username: Username,
    /// The help-desk agent who opened it.
    pub opened_by: Username,
    pub reason: String,
    pub opened_at: OffsetDateTime,
    pub status: RecoveryStatus,
}

impl RecoveryRequest {
    pub fn open(
        id: String,
        user_id: String,
        username: Username,
        opened_by: Username,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Self, LifecycleError> {
        if opened_by == username {
            return Err(LifecycleError::SelfRecovery);
        }
        let reason = check_reason(reason, true)?.unwrap_or_default();
        Ok(Self { id, user_id, username, opened_by, reason, opened_at: now, status: RecoveryStatus::Pending })
    }

    /// The state a person looking at the list cares about: an approved link past its
    /// expiry shows as `expired`, a pending request past its lifetime as `stale`.
    pub fn state_at(&self, now: OffsetDateTime) -> &'static str {
        match &self.status {
            RecoveryStatus::Approved { link_expires_at, .. } if *link_expires_at <= now => "expired",
            RecoveryStatus::Pending if self.is_stale_at(now) => "stale",
            s => s.as_str(),
        }
    }

    pub fn is_stale_at(&self, now: OffsetDateTime) -> bool {
        self.status == RecoveryStatus::Pending && now >= self.opened_at + RECOVERY_PENDING_LIFETIME
    }

    fn decidable_by(&self, by: &Username, now: OffsetDateTime) -> Result<(), LifecycleError> {
        if self.status != RecoveryStatus::Pending {
            return Err(LifecycleError::NotPending(self.status.as_str()));
        }
        if *by == self.username {
            return Err(LifecycleError::SubjectDecides);
        }
        if *by == self.opened_by {
            return Err(LifecycleError::SameApprover);
        }
        if self.is_stale_at(now) {
            return Err(LifecycleError::Stale);
        }
        Ok(())
    }

    /// Approves: the link works for `link_ttl` from now. Two-person rule: neither the agent
    /// who opened the request nor the person it is about may approve it.
    pub fn approve(&mut self, by: Username, link_ttl: Duration, now: OffsetDateTime) -> Result<(), LifecycleError> {
        self.decidable_by(&by, now)?;
        self.status = RecoveryStatus::Approved { by, at: now, link_expires_at: now + link_ttl };
        Ok(())
    }

    /// Denies, with the same rule on who decides (a denial is a decision too).
    pub fn deny(&mut self, by: Username, comment: &str, now: OffsetDateTime) -> Result<(), LifecycleError> {
        self.decidable_by(&by, now)?;
        let comment = check_reason(comment, false)?.unwrap_or_default();
        self.status = RecoveryStatus::Denied { by, at: now, comment };
        Ok(())
    }
}

/// Reads an expiry given as a duration from now (`90d`, `12h`) or a date (`YYYY-MM-DD`,
/// midnight UTC) or an RFC 3339 instant; it must lie in the future.
pub fn parse_expiry(s: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let s = s.trim();
    let at = if let Some(d) = crate::policy::document::parse_duration(s) {
        now + d
    } else if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        t
    } else {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(s, &fmt).ok()?.midnight().assume_utc()
    };
    (at > now).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    const T0: OffsetDateTime = time::macros::datetime!(2026-11-28 08:00 UTC);

    #[test]
    fn evidence_references_are_ticket_numbers_never_images() {
        assert_eq!(check_evidence_ref(" HR-1234 ").unwrap(), "HR-1234");
        assert!(check_evidence_ref("case #55/2026").is_ok());
        for bad in ["", &"x".repeat(65), "HR\n1234", "ticket<script>"] {
            assert_eq!(check_evidence_ref(bad), Err(LifecycleError::EvidenceRef), "{bad:?}");
        }
        for image in ["data:image/jpeg;base64,/9j/4AAQ", "/9j/4AAQSkZJRgABAQ", "iVBORw0KGgoAAAANSUhEUg", "JVBERi0xLjQK"]
        {
            assert_eq!(check_evidence_ref(image), Err(LifecycleError::EvidenceImage), "{image:?}");
        }
    }

    #[test]
    fn proofing_needs_a_known_method_and_document_and_someone_else() {
        let claim = |m: &str, d: &str| ProofingClaim {
            method: m.into(),
            document: d.into(),
            evidence_ref: "HR-1".into(),
            reason: String::new(),
        };
        let p = Proofing::new("p".into(), "id".into(), u("nina"), u("hd"), &claim("in-person", "Drivers-License"), T0)
            .unwrap();
        assert_eq!((p.method, p.document.as_str(), p.reason), (ProofingMethod::InPerson, "drivers_license", None));
        let new =
            |m: &str, d: &str, by: &str| Proofing::new("p".into(), "id".into(), u("nina"), u(by), &claim(m, d), T0);
        assert_eq!(new("video", "passport", "hd"), Err(LifecycleError::Method));
        assert_eq!(new("remote-supervised", "library_card", "hd"), Err(LifecycleError::Document));
        assert_eq!(new("in_person", "passport", "nina"), Err(LifecycleError::SelfProofing));
    }

    #[test]
    fn recovery_needs_two_other_people_and_a_pending_fresh_request() {
        let open =
            || RecoveryRequest::open("r".into(), "id".into(), u("nina"), u("hd"), "lost phone, INC-9", T0).unwrap();
        assert_eq!(
            RecoveryRequest::open("r".into(), "id".into(), u("nina"), u("nina"), "x", T0),
            Err(LifecycleError::SelfRecovery)
        );
        assert_eq!(
            RecoveryRequest::open("r".into(), "id".into(), u("nina"), u("hd"), "  ", T0),
            Err(LifecycleError::NoReason)
        );
        let ttl = Duration::minutes(15);
        assert_eq!(open().approve(u("hd"), ttl, T0), Err(LifecycleError::SameApprover));
        assert_eq!(open().approve(u("nina"), ttl, T0), Err(LifecycleError::SubjectDecides));
        assert_eq!(open().approve(u("sup"), ttl, T0 + RECOVERY_PENDING_LIFETIME), Err(LifecycleError::Stale));
        let mut r = open();
        r.approve(u("sup"), ttl, T0).unwrap();
        assert_eq!(r.state_at(T0 + Duration::minutes(14)), "approved");
        assert_eq!(r.state_at(T0 + ttl), "expired");
        assert_eq!(r.clone().deny(u("sup2"), "", T0), Err(LifecycleError::NotPending("approved")));
        let mut d = open();
        d.deny(u("sup"), "could not reach the person", T0).unwrap();
        assert_eq!(d.state_at(T0), "denied");
    }

    #[test]
    fn expiries_are_durations_dates_or_instants_in_the_future() {
        assert_eq!(parse_expiry("90d", T0), Some(T0 + Duration::days(90)));
        assert_eq!(parse_expiry("2027-01-01", T0), Some(time::macros::datetime!(2027-01-01 00:00 UTC)));
        assert_eq!(parse_expiry("2027-01-01T12:00:00Z", T0), Some(time::macros::datetime!(2027-01-01 12:00 UTC)));
        assert_eq!(parse_expiry("2020-01-01", T0), None);
        assert_eq!(parse_expiry("soon", T0), None);
    }
}
