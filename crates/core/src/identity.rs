//! Named people and the factors bound to them (HIPAA 164.312(a)(2)(i): unique user
//! identification).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lockout::Attempts;

/// A login name: 1–64 characters of lowercase letters, digits, `.`, `_`, `-`, `@`.
/// Case-folded at the edge so `JSmith` and `jsmith` cannot be two people.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

#[derive(Debug, thiserror::Error)]
#[error("username must be 1-64 characters of a-z, 0-9, '.', '_', '-', '@'")]
pub struct InvalidUsername;

impl Username {
    pub fn parse(s: &str) -> Result<Self, InvalidUsername> {
        let s = s.trim().to_lowercase();
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
        if ok { Ok(Self(s)) } else { Err(InvalidUsername) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidUsername;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an account is in its life. `locked` is not stored: it is an `active` account whose
/// [`Attempts::locked_until`] lies in the future (see [`User::status_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Created by an administrator; the person has not finished enrollment.
    Invited,
    Active,
    /// Suspended by an administrator; `enable` brings it back.
    Disabled,
    /// The person left. Final: factors are gone, the username stays reserved forever.
    Terminated,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Invited => "invited",
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
            AccountStatus::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Invited, Self::Active, Self::Disabled, Self::Terminated].into_iter().find(|k| k.as_str() == s)
    }
}

/// The role that may administer Wardgate.
pub const ADMIN_ROLE: &str = "admin";

/// A role name: 1–64 characters of lowercase letters, digits, `.`, `_`, `-`, `:`.
pub fn valid_role(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(&b))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable, never reused (random 128-bit hex).
    pub id: String,
    /// Unique, and never given to another person: terminated accounts keep theirs.
    pub username: Username,
    pub display_name: String,
    pub email: String,
    pub employee_id: Option<String>,
    /// Job-function roles, sorted and without duplicates.
    pub roles: Vec<String>,
    /// When a role assignment ends, for those that do (A1: expiring assignments). A role
    /// past its time is still listed in `roles` until removed, but grants nothing.
    pub role_expiry: std::collections::BTreeMap<String, OffsetDateTime>,
    /// An administrative account, separate from the person's clinical one (A4): only
    /// privileged accounts may hold roles with `admin.*` permissions.
    pub privileged: bool,
    pub status: AccountStatus,
    pub attempts: Attempts,
    pub created_at: OffsetDateTime,
    /// The business associate this account belongs to (V1: named vendor accounts), by the
    /// vendor's name; `None` for the hospital's own staff.
    pub vendor: Option<String>,
    /// When the account stops being usable, whatever its status: required for vendor
    /// accounts (no later than their agreement), optional for anyone else.
    pub account_expires: Option<OffsetDateTime>,
    /// The person responsible for this account (an access review can be scoped to them).
    pub manager: Option<Username>,
    /// The last successful sign-in, for finding dormant accounts (A6). Written by the store's
    /// `record_login` only, never by a profile update.
    pub last_login_at: Option<OffsetDateTime>,
}

impl User {
    /// A fresh account with no failed attempts.
    pub fn new(
        id: String,
        username: Username,
        display_name: String,
        status: AccountStatus,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            username,
            display_name,
            email: String::new(),
            employee_id: None,
            roles: Vec::new(),
            role_expiry: std::collections::BTreeMap::new(),
            privileged: false,
            status,
            attempts: Attempts::default(),
            created_at: now,
            vendor: None,
            account_expires: None,
            manager: None,
            last_login_at: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }

    /// The roles in force at `now`: assignments past their expiry are left out. Checked on
    /// every decision, so an expiry holds even if no node was running when it passed.
    pub fn roles_at(&self, now: OffsetDateTime) -> Vec<String> {
        self.roles.iter().filter(|r| self.role_expiry.get(*r).is_none_or(|until| now < *until)).cloned().collect()
    }

    pub fn with_roles(mut self, roles: impl IntoIterator<Item = String>) -> Self {
        self.roles = roles.into_iter().collect();
        self.roles.sort();
        self.roles.dedup();
        let roles = &self.roles;
        self.role_expiry.retain(|r, _| roles.contains(r));
        self
    }

    /// The status a person or an administrator sees: `locked` while a lockout runs.
    pub fn status_at(&self, now: OffsetDateTime) -> &'static str {
        match self.status {
            AccountStatus::Active if self.attempts.locked_until.is_some_and(|u| u > now) => "locked",
            s => s.as_str(),
        }
    }

    /// Whether this account may sign in at all (lockout is checked separately, per attempt).
    /// Does not look at [`User::account_expires`]; [`User::may_sign_in_at`] does.
    pub fn may_sign_in(&self) -> bool {
        self.status == AccountStatus::Active
    }

    /// [`User::may_sign_in`], and the account has not expired by `now`.
    pub fn may_sign_in_at(&self, now: OffsetDateTime) -> bool {
        self.may_sign_in() && !self.expired_at(now)
    }

    /// Whether the account's own expiry has passed at `now` (the expiry instant included).
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.account_expires.is_some_and(|until| until <= now)
    }

    /// Whether an active account has gone unused for longer than `after` at `now`: its last
    /// sign-in, or its creation if it never signed in, lies more than `after` in the past.
    /// Accounts in any other status are not dormant (they cannot be used anyway).
    pub fn dormant_at(&self, now: OffsetDateTime, after: time::Duration) -> bool {
        self.status == AccountStatus::Active && self.last_login_at.unwrap_or(self.created_at) < now - after
    }

    /// Gives `role` until `until` (just-in-time elevation). An assignment that does not expire
    /// stays permanent, and one that expires later keeps its later expiry: an elevation never
    /// shortens what the person already holds.
    pub fn grant_role_until(&mut self, role: &str, until: OffsetDateTime) {
        if self.roles.iter().any(|r| r == role) {
            if let Some(current) = self.role_expiry.get_mut(role) {
                *current = (*current).max(until);
            }
        } else {
            self.roles.push(role.to_owned());
            self.roles.sort();
            self.role_expiry.insert(role.to_owned(), until);
        }
    }

    /// Takes `role` away, with its expiry. Returns whether the account held it.
    pub fn revoke_role(&mut self, role: &str) -> bool {
        let held = self.roles.len();
        self.roles.retain(|r| r != role);
        self.role_expiry.remove(role);
        self.roles.len() != held
    }
}

/// The kinds of factor Wardgate knows; the string forms are stable (stored and audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    Passphrase,
    Totp,
    Webauthn,
    RecoveryCodes,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Passphrase => "passphrase",
            FactorKind::Totp => "totp",
            FactorKind::Webauthn => "webauthn",
            FactorKind::RecoveryCodes => "recovery_codes",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Passphrase, Self::Totp, Self::Webauthn, Self::RecoveryCodes].into_iter().find(|k| k.as_str() == s)
    }

    /// The RFC 8176 `amr` value this factor contributes.
    pub fn amr(self) -> &'static str {
        match self {
            FactorKind::Passphrase => "pwd",
            FactorKind::Totp => "otp",
            FactorKind::Webauthn => "hwk",
            FactorKind::RecoveryCodes => "otp",
        }
    }
}

/// A factor bound to a user. `secret` is either a sealed value (see [`crate::secrets`]) or,
/// for passphrases, an Argon2id PHC string — never plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    pub label: String,
    pub secret: String,
    /// Non-secret parameters as JSON: TOTP algorithm and digits, a token's serial, a
    /// WebAuthn credential's AAGUID and flags, the last recovery-code use.
    pub params: serde_json::Value,
    /// A monotonic counter: the last accepted TOTP time step, or a WebAuthn signature
    /// counter. Advanced only by compare-and-set in the store, so that it holds across nodes.
    pub counter: Option<i64>,
    /// A WebAuthn credential id (base64url), for username-less passkey sign-in.
    pub credential_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    /// After this instant the factor is refused (L2: e.g. a token due for replacement).
    pub expires_at: Option<OffsetDateTime>,
    /// Who enrolled it (L2), as [`crate::lifecycle::EnrolledBy`] renders it; `None` for
    /// factors enrolled before this was recorded.
    pub enrolled_by: Option<String>,
}

impl Factor {
    /// A factor with empty parameters and no counter.
    pub fn new(
        id: String,
        user_id: String,
        kind: FactorKind,
        label: &str,
        secret: String,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            user_id,
            kind,
            label: label.to_owned(),
            secret,
            params: serde_json::Value::Object(serde_json::Map::new()),
            counter: None,
            credential_id: None,
            created_at: now,
            last_used_at: None,
            expires_at: None,
            enrolled_by: None,
        }
    }

    /// Whether the factor's expiry has passed at `now` (the expiry instant included).
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|until| until <= now)
    }

    /// The associated-data context a factor's sealed secret is bound to.
    pub fn seal_context(id: &str) -> String {
        format!("factor:{id}:secret")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_refuse_odd_characters() {
        assert_eq!(Username::parse(" JSmith ").unwrap().as_str(), "jsmith");
        assert!(Username::parse("a.b-c_d@example.org").is_ok());
        for bad in ["", "has space", "semi;colon", "ünï", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn factor_kinds_round_trip() {
        for k in [FactorKind::Passphrase, FactorKind::Totp, FactorKind::Webauthn, FactorKind::RecoveryCodes] {
            assert_eq!(FactorKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(FactorKind::parse("sms"), None);
    }

    #[test]
    fn expired_role_assignments_grant_nothing() {
        let t0 = time::macros::datetime!(2026-11-01 08:00 UTC);
        let mut u = User::new("id".into(), Username::parse("nina").unwrap(), "Nina".into(), AccountStatus::Active, t0)
            .with_roles(["nurse".to_owned(), "pharmacist".to_owned()]);
        u.role_expiry.insert("pharmacist".into(), t0 + time::Duration::hours(8));
        assert_eq!(u.roles_at(t0), ["nurse", "pharmacist"]);
        assert_eq!(u.roles_at(t0 + time::Duration::hours(8)), ["nurse"]);
        // Removing a role drops its expiry too.
        let u = u.with_roles(["nurse".to_owned()]);
        assert!(u.role_expiry.is_empty());
    }

    fn nina(t0: OffsetDateTime) -> User {
        User::new("id".into(), Username::parse("nina").unwrap(), "Nina".into(), AccountStatus::Active, t0)
    }

    #[test]
    fn an_account_expires_at_its_expiry_and_then_may_not_sign_in() {
        let t0 = time::macros::datetime!(2026-11-01 08:00 UTC);
        let mut u = nina(t0);
        assert!(!u.expired_at(t0 + time::Duration::days(10_000)), "no expiry, never expired");
        u.account_expires = Some(t0 + time::Duration::days(30));
        assert!(!u.expired_at(t0 + time::Duration::days(30) - time::Duration::microseconds(1)));
        assert!(u.may_sign_in_at(t0 + time::Duration::days(29)));
        assert!(u.expired_at(t0 + time::Duration::days(30)));
        assert!(!u.may_sign_in_at(t0 + time::Duration::days(30)));
        assert!(u.may_sign_in(), "the status alone says nothing of the expiry");
    }

    #[test]
    fn dormancy_counts_from_the_last_sign_in_or_from_creation() {
        let t0 = time::macros::datetime!(2026-01-01 00:00 UTC);
        let ninety = time::Duration::days(90);
        let mut u = nina(t0);
        // Never signed in: counted from creation.
        assert!(!u.dormant_at(t0 + ninety, ninety), "exactly 90 days is not more than 90");
        assert!(u.dormant_at(t0 + ninety + time::Duration::seconds(1), ninety));
        // A sign-in restarts the count.
        u.last_login_at = Some(t0 + time::Duration::days(60));
        assert!(!u.dormant_at(t0 + ninety + time::Duration::seconds(1), ninety));
        assert!(u.dormant_at(t0 + time::Duration::days(151), ninety));
        // Only active accounts are dormant.
        for status in [AccountStatus::Invited, AccountStatus::Disabled, AccountStatus::Terminated] {
            let v = User { status, ..u.clone() };
            assert!(!v.dormant_at(t0 + time::Duration::days(1000), ninety), "{status:?}");
        }
    }

    #[test]
    fn an_elevation_never_shortens_a_role_already_held() {
        let t0 = time::macros::datetime!(2026-11-01 08:00 UTC);
        let h = time::Duration::hours;
        let mut u = nina(t0).with_roles(["nurse".to_owned(), "charge-nurse".to_owned()]);
        u.role_expiry.insert("charge-nurse".into(), t0 + h(10));

        u.grant_role_until("pharmacist", t0 + h(4));
        assert_eq!(u.roles, ["charge-nurse", "nurse", "pharmacist"], "sorted");
        assert_eq!(u.role_expiry.get("pharmacist"), Some(&(t0 + h(4))));
        // A permanent assignment stays permanent.
        u.grant_role_until("nurse", t0 + h(4));
        assert_eq!(u.role_expiry.get("nurse"), None);
        // A later expiry is kept, an earlier one extended.
        u.grant_role_until("charge-nurse", t0 + h(2));
        assert_eq!(u.role_expiry.get("charge-nurse"), Some(&(t0 + h(10))));
        u.grant_role_until("pharmacist", t0 + h(8));
        assert_eq!(u.role_expiry.get("pharmacist"), Some(&(t0 + h(8))));
        assert_eq!(u.roles.len(), 3, "no duplicates");

        assert!(u.revoke_role("pharmacist"));
        assert!(!u.revoke_role("pharmacist"));
        assert_eq!(u.roles, ["charge-nurse", "nurse"]);
        assert_eq!(u.role_expiry.get("pharmacist"), None);
    }
}
