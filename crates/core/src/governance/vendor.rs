//! Business associates (V1): the vendor, its business associate agreement (BAA, HIPAA
//! 164.308(b)) and the hospital employee who sponsors it. A vendor's staff get named
//! accounts ([`User::vendor`]) that expire no later than the agreement.
//!
//! Agreement dates are calendar days, read in UTC: the agreement covers `baa_effective`
//! from 00:00 UTC up to, not including, `baa_expires` at 00:00 UTC. Access that must end
//! with the agreement therefore never outlasts it.

use time::{Date, OffsetDateTime, Time};

use crate::identity::{AccountStatus, User, Username};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vendor {
    /// Unique and never renamed: see [`valid_vendor_name`]. Accounts name their vendor by it.
    pub name: String,
    pub display_name: String,
    /// Where the signed agreement can be found (a contract number, a document id).
    pub baa_reference: String,
    /// The first day the agreement covers.
    pub baa_effective: Date,
    /// The day the agreement ends: it no longer covers this day.
    pub baa_expires: Date,
    /// The hospital employee answerable for the vendor's access.
    pub sponsor: Username,
    pub created_at: OffsetDateTime,
}

/// A vendor name: 1–64 characters of lowercase letters, digits, `.`, `_`, `-` (e.g. `acme`,
/// `philips-imaging`).
pub fn valid_vendor_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VendorError {
    #[error("{0:?} is not a vendor name: 1-64 characters of a-z, 0-9, '.', '_', '-'")]
    InvalidName(String),
    #[error("a display name is required")]
    EmptyDisplayName,
    #[error("the business associate agreement's reference is required")]
    EmptyBaaReference,
    #[error("the agreement must expire after it takes effect ({effective} is not before {expires})")]
    BaaDates { effective: Date, expires: Date },
    #[error("a vendor account must have an expiry")]
    NoAccountExpiry,
    #[error("the account would expire at {account}, after the vendor's agreement ends at {baa}")]
    AccountOutlastsBaa { account: OffsetDateTime, baa: OffsetDateTime },
    #[error("the sponsor must be an active account of the hospital's own staff")]
    InvalidSponsor,
}

impl Vendor {
    /// Checks the record as a whole: the name, a display name, a reference and an agreement
    /// that ends after it starts. Trimming is the caller's (the stored value is what is
    /// checked).
    pub fn validate(&self) -> Result<(), VendorError> {
        if !valid_vendor_name(&self.name) {
            return Err(VendorError::InvalidName(self.name.clone()));
        }
        if self.display_name.trim().is_empty() {
            return Err(VendorError::EmptyDisplayName);
        }
        if self.baa_reference.trim().is_empty() {
            return Err(VendorError::EmptyBaaReference);
        }
        if self.baa_expires <= self.baa_effective {
            return Err(VendorError::BaaDates { effective: self.baa_effective, expires: self.baa_expires });
        }
        Ok(())
    }

    /// The instant the agreement takes effect.
    pub fn baa_starts_at(&self) -> OffsetDateTime {
        self.baa_effective.with_time(Time::MIDNIGHT).assume_utc()
    }

    /// The instant the agreement stops covering anything.
    pub fn baa_ends_at(&self) -> OffsetDateTime {
        self.baa_expires.with_time(Time::MIDNIGHT).assume_utc()
    }

    pub fn baa_in_force_at(&self, now: OffsetDateTime) -> bool {
        self.baa_starts_at() <= now && now < self.baa_ends_at()
    }
}

/// A vendor account must expire, and no later than its vendor's agreement ends.
pub fn vendor_account_ok(vendor: &Vendor, account_expires: Option<OffsetDateTime>) -> Result<(), VendorError> {
    let account = account_expires.ok_or(VendorError::NoAccountExpiry)?;
    let baa = vendor.baa_ends_at();
    if account > baa {
        return Err(VendorError::AccountOutlastsBaa { account, baa });
    }
    Ok(())
}

/// A sponsor answers for the vendor from inside the hospital: an active account that is
/// not itself a vendor's.
pub fn check_sponsor(sponsor: &User) -> Result<(), VendorError> {
    if sponsor.status == AccountStatus::Active && sponsor.vendor.is_none() {
        Ok(())
    } else {
        Err(VendorError::InvalidSponsor)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn acme() -> Vendor {
        Vendor {
            name: "acme".into(),
            display_name: "ACME Imaging".into(),
            baa_reference: "BAA-2026-014".into(),
            baa_effective: date!(2026 - 01 - 01),
            baa_expires: date!(2027 - 07 - 01),
            sponsor: Username::parse("dr.lee").unwrap(),
            created_at: datetime!(2026-01-05 10:00 UTC),
        }
    }

    #[test]
    fn a_vendor_needs_a_name_a_reference_and_an_agreement_that_ends_after_it_starts() {
        acme().validate().unwrap();
        for bad in ["", "ACME", "acme corp", "a:b", &"x".repeat(65)] {
            let v = Vendor { name: bad.into(), ..acme() };
            assert_eq!(v.validate(), Err(VendorError::InvalidName(bad.into())), "{bad:?}");
        }
        assert!(valid_vendor_name("philips-imaging.eu_2"));
        assert_eq!(Vendor { display_name: " ".into(), ..acme() }.validate(), Err(VendorError::EmptyDisplayName));
        assert_eq!(Vendor { baa_reference: "  ".into(), ..acme() }.validate(), Err(VendorError::EmptyBaaReference));
        let same_day = Vendor { baa_expires: date!(2026 - 01 - 01), ..acme() };
        assert!(matches!(same_day.validate(), Err(VendorError::BaaDates { .. })));
        let backwards = Vendor { baa_expires: date!(2025 - 12 - 31), ..acme() };
        assert!(matches!(backwards.validate(), Err(VendorError::BaaDates { .. })));
    }

    #[test]
    fn the_agreement_covers_its_days_in_utc_up_to_the_expiry_date() {
        let v = acme();
        assert_eq!(v.baa_starts_at(), datetime!(2026-01-01 00:00 UTC));
        assert_eq!(v.baa_ends_at(), datetime!(2027-07-01 00:00 UTC));
        assert!(!v.baa_in_force_at(datetime!(2025-12-31 23:59:59 UTC)));
        assert!(v.baa_in_force_at(datetime!(2026-01-01 00:00 UTC)));
        assert!(v.baa_in_force_at(datetime!(2027-06-30 23:59:59 UTC)));
        assert!(!v.baa_in_force_at(datetime!(2027-07-01 00:00 UTC)));
    }

    #[test]
    fn a_vendor_account_must_expire_no_later_than_the_agreement() {
        let v = acme();
        assert_eq!(vendor_account_ok(&v, None), Err(VendorError::NoAccountExpiry));
        vendor_account_ok(&v, Some(datetime!(2026-12-31 17:00 UTC))).unwrap();
        vendor_account_ok(&v, Some(datetime!(2027-07-01 00:00 UTC))).unwrap();
        let late = datetime!(2027-07-01 00:00:01 UTC);
        assert_eq!(
            vendor_account_ok(&v, Some(late)),
            Err(VendorError::AccountOutlastsBaa { account: late, baa: datetime!(2027-07-01 00:00 UTC) })
        );
    }

    #[test]
    fn a_sponsor_is_active_hospital_staff() {
        let t = datetime!(2026-01-01 00:00 UTC);
        let lee = User::new("u1".into(), Username::parse("dr.lee").unwrap(), "Dr Lee".into(), AccountStatus::Active, t);
        check_sponsor(&lee).unwrap();
        let gone = User { status: AccountStatus::Disabled, ..lee.clone() };
        assert_eq!(check_sponsor(&gone), Err(VendorError::InvalidSponsor));
        let outsider = User { vendor: Some("acme".into()), ..lee };
        assert_eq!(check_sponsor(&outsider), Err(VendorError::InvalidSponsor));
    }
}
