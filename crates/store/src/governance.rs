//! What both backends share for governance: break-glass access, elevations, vendors and
//! access reviews — their column lists, row decoding and the statements that read the
//! same on SQLite and PostgreSQL.

use std::net::IpAddr;

use time::{Date, OffsetDateTime};
use wardgate_core::from_unix_micros;
use wardgate_core::governance::{
    BreakGlass, Campaign, Decision, DefaultAction, Elevation, ElevationStatus, Item, Review, ReviewOutcome, Scope,
    Vendor,
};
use wardgate_core::identity::Username;

use crate::StoreError;
use crate::common::micros;

fn username(s: &str, what: impl FnOnce() -> String) -> Result<Username, StoreError> {
    Username::parse(s).map_err(|_| StoreError::Malformed(format!("{} is not a username", what())))
}

// --- accounts ------------------------------------------------------------------------------

/// `$1` the user id, `$2` the roles (JSON), `$3` is_admin, `$4` the role expiry (JSON).
pub(crate) const SET_ROLES: &str = "UPDATE users SET roles = $2, is_admin = $3, role_expiry = $4 WHERE id = $1";

// --- break-glass ---------------------------------------------------------------------------

macro_rules! select_break_glass {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, username, reason_code, justification, opened_at_us, expires_at_us, session_id, \
             client_ip, ended_at_us, reviewer, review_outcome, review_comment, reviewed_at_us FROM break_glass ",
            $rest
        )
    };
}
pub(crate) use select_break_glass;

pub(crate) type BreakGlassRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

pub(crate) fn break_glass(
    (
        id,
        user_id,
        name,
        reason_code,
        justification,
        opened_at_us,
        expires_at_us,
        session_id,
        client_ip,
        ended_at_us,
        reviewer,
        review_outcome,
        review_comment,
        reviewed_at_us,
    ): BreakGlassRow,
) -> Result<BreakGlass, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("break-glass {id} has {what}"));
    let client_ip = client_ip
        .map(|ip| ip.parse::<IpAddr>())
        .transpose()
        .map_err(|_| malformed("a client address that is not an IP address"))?;
    let review = match (reviewer, review_outcome, review_comment, reviewed_at_us) {
        (None, None, None, None) => None,
        (Some(reviewer), Some(outcome), Some(comment), Some(at)) => Some(Review {
            reviewer: username(&reviewer, || format!("the reviewer of break-glass {id}"))?,
            outcome: ReviewOutcome::parse(&outcome).ok_or_else(|| malformed("an unknown review outcome"))?,
            comment,
            at: from_unix_micros(at),
        }),
        _ => return Err(malformed("a partial review")),
    };
    Ok(BreakGlass {
        username: username(&name, || format!("the user of break-glass {id}"))?,
        user_id,
        reason_code,
        justification,
        opened_at: from_unix_micros(opened_at_us),
        expires_at: from_unix_micros(expires_at_us),
        session_id,
        client_ip,
        ended_at: ended_at_us.map(from_unix_micros),
        review,
        id,
    })
}

/// `$1` … `$10`: id, user id, username, reason code, justification, opened at, expires
/// at, session id, client address, ended at. A new access has no review yet.
pub(crate) const INSERT_BREAK_GLASS: &str = "INSERT INTO break_glass (id, user_id, username, reason_code, \
     justification, opened_at_us, expires_at_us, session_id, client_ip, ended_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// `$1` the id, `$2` when. Only an access in force at that time is ended.
pub(crate) const END_BREAK_GLASS: &str = "UPDATE break_glass SET ended_at_us = $2 \
     WHERE id = $1 AND ended_at_us IS NULL AND opened_at_us <= $2 AND expires_at_us > $2";

/// `$1` the id, `$2` reviewer, `$3` outcome, `$4` comment, `$5` when. Only once.
pub(crate) const REVIEW_BREAK_GLASS: &str = "UPDATE break_glass SET reviewer = $2, review_outcome = $3, \
     review_comment = $4, reviewed_at_us = $5 WHERE id = $1 AND reviewed_at_us IS NULL";

pub(crate) fn review_columns(r: &Review) -> (&str, &'static str, &str, i64) {
    (r.reviewer.as_str(), r.outcome.as_str(), r.comment.as_str(), micros(r.at))
}

// --- elevations ----------------------------------------------------------------------------

macro_rules! select_elevations {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, username, role, reason, duration_us, requested_at_us, status, decided_by, \
             decided_at_us, expires_at_us, comment FROM elevations ",
            $rest
        )
    };
}
pub(crate) use select_elevations;

pub(crate) type ElevationRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

pub(crate) fn elevation(
    (
        id,
        user_id,
        name,
        role,
        reason,
        duration_us,
        requested_at_us,
        status,
        decided_by,
        decided_at_us,
        expires_at_us,
        comment,
    ): ElevationRow,
) -> Result<Elevation, StoreError> {
    let malformed = || StoreError::Malformed(format!("elevation {id} has a status its columns do not match"));
    let by = |b: Option<String>| -> Result<Username, StoreError> {
        username(&b.ok_or_else(malformed)?, || format!("the decider of elevation {id}"))
    };
    let status = match (status.as_str(), decided_at_us, expires_at_us) {
        ("pending", None, None) => ElevationStatus::Pending,
        ("approved", Some(at), Some(expires_at)) => ElevationStatus::Approved {
            by: by(decided_by)?,
            at: from_unix_micros(at),
            expires_at: from_unix_micros(expires_at),
        },
        ("denied", Some(at), None) => ElevationStatus::Denied {
            by: by(decided_by)?,
            at: from_unix_micros(at),
            comment: comment.unwrap_or_default(),
        },
        ("cancelled", Some(at), None) => ElevationStatus::Cancelled { at: from_unix_micros(at) },
        _ => return Err(malformed()),
    };
    Ok(Elevation {
        username: username(&name, || format!("the user of elevation {id}"))?,
        id,
        user_id,
        role,
        reason,
        duration: time::Duration::microseconds(duration_us),
        requested_at: from_unix_micros(requested_at_us),
        status,
    })
}

/// An elevation's duration as the column holds it.
pub(crate) fn duration_us(e: &Elevation) -> Result<i64, StoreError> {
    i64::try_from(e.duration.whole_microseconds())
        .map_err(|_| StoreError::Malformed(format!("elevation {} lasts too long to be stored", e.id)))
}

/// `$1` … `$7`: id, user id, username, role, reason, duration, requested at. Pending.
pub(crate) const INSERT_ELEVATION: &str = "INSERT INTO elevations (id, user_id, username, role, reason, duration_us, \
     requested_at_us, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')";

/// The decision columns of a status: `(status, decided_by, decided_at, expires_at, comment)`.
pub(crate) type DecisionColumns<'a> = (&'static str, Option<&'a str>, Option<i64>, Option<i64>, Option<&'a str>);

pub(crate) fn decision_columns(status: &ElevationStatus) -> DecisionColumns<'_> {
    match status {
        ElevationStatus::Pending => ("pending", None, None, None, None),
        ElevationStatus::Approved { by, at, expires_at } => {
            ("approved", Some(by.as_str()), Some(micros(*at)), Some(micros(*expires_at)), None)
        }
        ElevationStatus::Denied { by, at, comment } => {
            ("denied", Some(by.as_str()), Some(micros(*at)), None, Some(comment.as_str()))
        }
        ElevationStatus::Cancelled { at } => ("cancelled", None, Some(micros(*at)), None, None),
    }
}

/// `$1` the id, `$2` … `$6` the [`DecisionColumns`]. Only a pending request is decided;
/// returns whose request it was and for which role, as stored.
pub(crate) const DECIDE_ELEVATION: &str = "UPDATE elevations SET status = $2, decided_by = $3, decided_at_us = $4, \
     expires_at_us = $5, comment = $6 WHERE id = $1 AND status = 'pending' RETURNING user_id, role";

// --- vendors -------------------------------------------------------------------------------

macro_rules! select_vendors {
    ($rest:literal) => {
        concat!(
            "SELECT name, display_name, baa_reference, baa_effective, baa_expires, sponsor, created_at_us FROM vendors ",
            $rest
        )
    };
}
pub(crate) use select_vendors;

pub(crate) type VendorRow = (String, String, String, String, String, String, i64);

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year repr:full padding:zero]-[month]-[day]");

/// A calendar day as stored: `YYYY-MM-DD`, which sorts as it reads.
pub(crate) fn date(d: Date) -> Result<String, StoreError> {
    if !(1..=9999).contains(&d.year()) {
        return Err(StoreError::Malformed(format!("the date {d} cannot be stored")));
    }
    d.format(DATE).map_err(|e| StoreError::Malformed(format!("the date {d} cannot be stored: {e}")))
}

fn parse_date(s: &str, what: impl FnOnce() -> String) -> Result<Date, StoreError> {
    Date::parse(s, DATE).map_err(|_| StoreError::Malformed(format!("{} is not a date", what())))
}

pub(crate) fn vendor(
    (name, display_name, baa_reference, baa_effective, baa_expires, sponsor, created_at_us): VendorRow,
) -> Result<Vendor, StoreError> {
    Ok(Vendor {
        baa_effective: parse_date(&baa_effective, || format!("the agreement start of vendor {name}"))?,
        baa_expires: parse_date(&baa_expires, || format!("the agreement end of vendor {name}"))?,
        sponsor: username(&sponsor, || format!("the sponsor of vendor {name}"))?,
        name,
        display_name,
        baa_reference,
        created_at: from_unix_micros(created_at_us),
    })
}

/// `$1` … `$7`: name, display name, reference, effective, expires, sponsor, created at.
pub(crate) const INSERT_VENDOR: &str = "INSERT INTO vendors (name, display_name, baa_reference, baa_effective, \
     baa_expires, sponsor, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The parameters of [`INSERT_VENDOR`] but the creation time, which never changes (nor
/// does the name).
pub(crate) const UPDATE_VENDOR: &str = "UPDATE vendors SET display_name = $2, baa_reference = $3, \
     baa_effective = $4, baa_expires = $5, sponsor = $6 WHERE name = $1";

// --- access reviews ------------------------------------------------------------------------

macro_rules! select_campaigns {
    ($rest:literal) => {
        concat!(
            "SELECT id, scope, reviewer, created_by, created_at_us, deadline_us, default_action, closed_at_us \
             FROM review_campaigns ",
            $rest
        )
    };
}
pub(crate) use select_campaigns;

pub(crate) type CampaignRow = (String, String, String, String, i64, i64, String, Option<i64>);

pub(crate) fn campaign(
    (id, scope, reviewer, created_by, created_at_us, deadline_us, default_action, closed_at_us): CampaignRow,
) -> Result<Campaign, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("review campaign {id} has {what}"));
    Ok(Campaign {
        scope: Scope::parse(&scope).map_err(|_| malformed("an unknown scope"))?,
        reviewer: username(&reviewer, || format!("the reviewer of campaign {id}"))?,
        default_action: DefaultAction::parse(&default_action).ok_or_else(|| malformed("an unknown default action"))?,
        created_by,
        created_at: from_unix_micros(created_at_us),
        deadline: from_unix_micros(deadline_us),
        closed_at: closed_at_us.map(from_unix_micros),
        id,
    })
}

/// `$1` … `$8` in the order of [`select_campaigns`].
pub(crate) const INSERT_CAMPAIGN: &str = "INSERT INTO review_campaigns (id, scope, reviewer, created_by, \
     created_at_us, deadline_us, default_action, closed_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// `$1` the id, `$2` when. Only once.
pub(crate) const CLOSE_CAMPAIGN: &str =
    "UPDATE review_campaigns SET closed_at_us = $2 WHERE id = $1 AND closed_at_us IS NULL";

macro_rules! select_items {
    ($rest:literal) => {
        concat!(
            "SELECT id, campaign_id, user_id, username, role, decision, decided_by, decided_at_us, comment \
             FROM review_items ",
            $rest
        )
    };
}
pub(crate) use select_items;

pub(crate) type ItemRow =
    (String, String, String, String, String, Option<String>, Option<String>, Option<i64>, Option<String>);

pub(crate) fn item(
    (id, campaign_id, user_id, name, role, decision, decided_by, decided_at_us, comment): ItemRow,
) -> Result<Item, StoreError> {
    let decision = decision
        .map(|d| Decision::parse(&d))
        .map(|d| d.ok_or_else(|| StoreError::Malformed(format!("review item {id} has an unknown decision"))))
        .transpose()?;
    Ok(Item {
        username: username(&name, || format!("the user of review item {id}"))?,
        id,
        campaign_id,
        user_id,
        role,
        decision,
        decided_by,
        decided_at: decided_at_us.map(from_unix_micros),
        comment,
    })
}

/// `$1` … `$9` in the order of [`select_items`].
pub(crate) const INSERT_ITEM: &str = "INSERT INTO review_items (id, campaign_id, user_id, username, role, decision, \
     decided_by, decided_at_us, comment) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// `$1` the item, `$2` decision, `$3` by, `$4` when, `$5` comment. Only an undecided item
/// of an open campaign; returns whose role it was, as stored.
pub(crate) const DECIDE_ITEM: &str = "UPDATE review_items SET decision = $2, decided_by = $3, decided_at_us = $4, \
     comment = $5 WHERE id = $1 AND decision IS NULL AND campaign_id IN \
     (SELECT id FROM review_campaigns WHERE closed_at_us IS NULL) RETURNING user_id, role";

/// Items are stored with the campaign they are created with.
pub(crate) fn check_items(campaign: &Campaign, items: &[Item]) -> Result<(), StoreError> {
    match items.iter().find(|i| i.campaign_id != campaign.id) {
        Some(i) => Err(StoreError::Malformed(format!(
            "review item {} of campaign {} cannot be stored with campaign {}",
            i.id, i.campaign_id, campaign.id
        ))),
        None => Ok(()),
    }
}

/// An optional time as its column holds it.
pub(crate) fn micros_opt(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(micros)
}
