//! Administrative operations on accounts: invite, list, show, disable, enable, unlock,
//! terminate, API tokens, and hardware tokens imported from PSKC files.
//!
//! Shared by the CLI and the HTTP admin API, so nothing here knows about either: every
//! operation takes the store, the acting administrator (for the audit record), the time,
//! and returns domain values or an [`AccountError`]. Every change is written together with
//! its audit record (the store's contract), naming the actor and the account.

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use wardgate_core::api_token::{ApiToken, Scope};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::factors::pskc::{self, PskcError};
use wardgate_core::factors::totp::TotpParams;
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, InvalidUsername, User, Username, valid_role};
use wardgate_core::lockout::Attempts;
use wardgate_core::policy::Policy;
use wardgate_core::secrets::Keyring;
use wardgate_core::session::{Session, SessionState};
use wardgate_core::settings::AuthSettings;
use wardgate_core::token;
use wardgate_store::{Store, StoreError};

/// API tokens live 90 days unless asked otherwise, and never more than a year: a leaked
/// admin token must not outlive the next access review.
pub const TOKEN_DEFAULT_DAYS: u32 = 90;
pub const TOKEN_MAX_DAYS: u32 = 365;

/// Users fetched per store round trip when walking the whole directory.
const PAGE: u32 = 500;
/// Compare-and-set attempts before giving up on a busy account.
const CAS_TRIES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid username {given:?}: {source}")]
    Username { given: String, source: InvalidUsername },
    #[error("display name must be 1-128 characters without control characters")]
    DisplayName,
    #[error("email {0:?} is not an address such as jsmith@example.org")]
    Email(String),
    #[error("employee id must be 1-64 characters without control characters")]
    EmployeeId,
    #[error("role {0:?} is not valid: a role is 1-64 characters of a-z, 0-9, '.', '_', '-', ':'")]
    Role(String),
    #[error("label must be 1-128 characters without control characters")]
    Label,
    #[error("unknown scope {0:?}; known scopes: {known}", known = Scope::ALL.map(Scope::as_str).join(", "))]
    UnknownScope(String),
    #[error("give at least one scope ({known})", known = Scope::ALL.map(Scope::as_str).join(", "))]
    NoScope,
    #[error("a token expires after 1 to {TOKEN_MAX_DAYS} days, not {0}")]
    TokenLifetime(u32),
    #[error("username {0} is already taken")]
    UsernameTaken(String),
    #[error("username {0} belonged to a deleted account; usernames are never given to another person, choose another")]
    UsernameRetired(String),
    #[error("no user named {0}")]
    UnknownUser(String),
    #[error("no API token with id {0} (or it is already revoked)")]
    UnknownToken(String),
    #[error("{username} has no factor with id {factor_id}")]
    UnknownFactor { username: String, factor_id: String },
    #[error("{username} is {status}; {hint}")]
    WrongStatus { username: String, status: &'static str, hint: &'static str },
    #[error(
        "{0} is the last active administrator; enroll or enable another administrator first, or nobody could administer Wardgate"
    )]
    LastAdmin(String),
    #[error("API tokens are only for active administrators; {username} is {status} and {admin}")]
    NotAdmin { username: String, status: &'static str, admin: &'static str },
    #[error(transparent)]
    Pskc(#[from] PskcError),
    #[error("nothing to import: assign tokens with SERIAL=USERNAME; serials in the file: {0}")]
    NoAssignments(String),
    #[error("assignment {0:?} is not SERIAL=USERNAME")]
    Assignment(String),
    #[error("serial {0} is not in the file")]
    SerialNotInFile(String),
    #[error("serial {0} is assigned twice")]
    SerialAssignedTwice(String),
    #[error("hardware token {serial} is already imported for {username}; remove it there first")]
    SerialTaken { serial: String, username: String },
    #[error(
        "{username} holds role {role}, which requires identity proofing before a factor is issued; record it first with `wardgate user proof {username} …`"
    )]
    ProofingRequired { username: String, role: String },
    #[error("cannot seal the token secret: {0}")]
    Sealing(String),
    #[error("the account changed concurrently too often; try again")]
    Busy,
    #[error("{0}")]
    Vendor(String),
    #[error("system random number generator failed")]
    Random,
    #[error(transparent)]
    Store(StoreError),
}

/// How a caller should treat an error: refuse the input, report a missing thing, report a
/// conflict with the current state, or report that Wardgate could not do its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Conflict,
    Unavailable,
}

impl AccountError {
    pub fn kind(&self) -> ErrorKind {
        use AccountError::*;
        match self {
            Username { .. }
            | DisplayName
            | Email(_)
            | EmployeeId
            | Role(_)
            | Label
            | UnknownScope(_)
            | NoScope
            | TokenLifetime(_)
            | Pskc(_)
            | NoAssignments(_)
            | Assignment(_)
            | SerialNotInFile(_)
            | SerialAssignedTwice(_)
            | Vendor(_) => ErrorKind::Invalid,
            UnknownUser(_) | UnknownToken(_) | UnknownFactor { .. } => ErrorKind::NotFound,
            UsernameTaken(_)
            | UsernameRetired(_)
            | WrongStatus { .. }
            | LastAdmin(_)
            | NotAdmin { .. }
            | SerialTaken { .. }
            | ProofingRequired { .. }
            | Busy => ErrorKind::Conflict,
            Sealing(_) | Random | Store(_) => ErrorKind::Unavailable,
        }
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Store(e)
    }
}

impl From<token::RandomError> for AccountError {
    fn from(_: token::RandomError) -> Self {
        AccountError::Random
    }
}

/// What an administrator gives to invite a person.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    /// Defaults to the username.
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub employee_id: Option<String>,
    pub roles: Vec<String>,
    /// An administrative account, separate from the person's clinical one (A4).
    pub privileged: bool,
    /// The business associate this named person works for (V1); needs `account_expires`
    /// no later than the vendor's agreement.
    pub vendor: Option<String>,
    /// When the account stops working.
    pub account_expires: Option<OffsetDateTime>,
    /// The person responsible for the account (access reviews by manager).
    pub manager: Option<String>,
}

/// A one-time enrollment link. The URL holds the only copy of its token.
#[derive(Debug, Clone)]
pub struct EnrollmentLink {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

/// An account with what hangs off it.
#[derive(Debug, Clone)]
pub struct AccountDetails {
    pub user: User,
    pub factors: Vec<Factor>,
    /// Only sessions that are still usable now.
    pub sessions: Vec<Session>,
    pub tokens: Vec<ApiToken>,
}

#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub user: User,
    pub token: ApiToken,
    /// The bearer secret: shown once, only its digest is stored.
    pub secret: String,
}

/// A hardware token given to a person: `serial` from the PSKC file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub serial: String,
    pub username: String,
}

impl std::str::FromStr for Assignment {
    type Err = AccountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((serial, username)) if !serial.trim().is_empty() && !username.trim().is_empty() => {
                Ok(Self { serial: serial.trim().to_owned(), username: username.trim().to_owned() })
            }
            _ => Err(AccountError::Assignment(s.to_owned())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportedToken {
    pub serial: String,
    pub username: String,
    pub factor: Factor,
    pub params: TotpParams,
}

/// The administrative operations, bound to who acts and when.
pub struct Accounts<'a> {
    store: &'a dyn Store,
    actor: &'a str,
    now: OffsetDateTime,
    auth: &'a AuthSettings,
    /// Why the operator overrides the normal path (an unlock, a reset, an enable):
    /// recorded as `override_reason` on every record this makes.
    reason: Option<String>,
}

impl<'a> Accounts<'a> {
    pub fn new(store: &'a dyn Store, actor: &'a str, now: OffsetDateTime, auth: &'a AuthSettings) -> Self {
        Self { store, actor, now, auth, reason: None }
    }

    /// Records `reason` as `override_reason` on every record (administrative overrides).
    pub fn with_reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        self
    }

    fn event(&self, kind: &'static str, user: &User) -> AuditEvent {
        let e = AuditEvent::known(self.now, kind, Outcome::Success)
            .actor(self.actor)
            .subject(user.username.as_str())
            .detail("user_id", user.id.clone());
        match &self.reason {
            Some(r) => e.detail("override_reason", r.clone()),
            None => e,
        }
    }

    /// The account, or [`AccountError::UnknownUser`].
    pub async fn user(&self, username: &str) -> Result<User, AccountError> {
        let name = parse_username(username)?;
        self.store.user_by_username(&name).await?.ok_or_else(|| AccountError::UnknownUser(name.to_string()))
    }

    /// Creates an `invited` account and its one-time enrollment link.
    pub async fn invite(&self, new: NewUser, base_url: &str) -> Result<(User, EnrollmentLink), AccountError> {
        let user = self.create(new).await?;
        let link = self.issue_link(&user, base_url).await?;
        Ok((user, link))
    }

    /// Checks everything [`Accounts::invite`] checks — the fields, the vendor's agreement,
    /// that the username is free — and returns the account it would create, writing
    /// nothing. A bulk import's dry run is this, line by line.
    pub async fn prepare(&self, new: &NewUser) -> Result<User, AccountError> {
        let username = parse_username(&new.username)?;
        let display_name = match new.display_name.as_deref() {
            Some(d) => display_name(d)?,
            None => username.to_string(),
        };
        let email = match new.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) => email(e)?,
            None => String::new(),
        };
        let employee_id = new.employee_id.as_deref().map(employee_id).transpose()?;
        let roles = roles(&new.roles)?;
        if let Some(existing) = self.store.user_by_username(&username).await? {
            return Err(taken(&existing));
        }
        let mut user =
            User::new(token::random_id()?, username, display_name, AccountStatus::Invited, self.now).with_roles(roles);
        user.email = email;
        user.employee_id = employee_id;
        if let Some(name) = &new.vendor {
            let vendor = self.store.vendor(name).await?.ok_or_else(|| {
                AccountError::Vendor(format!("no vendor named {name}; add it with `wardgate vendor add`"))
            })?;
            wardgate_core::governance::vendor_account_ok(&vendor, new.account_expires)
                .map_err(|e| AccountError::Vendor(e.to_string()))?;
        }
        if new.account_expires.is_some_and(|t| t <= self.now) {
            return Err(AccountError::Vendor("the account expiry must be in the future".into()));
        }
        user.vendor = new.vendor.clone();
        user.account_expires = new.account_expires;
        user.manager = new.manager.as_deref().map(parse_username).transpose()?;
        // The built-in administrator role is administrative by definition.
        user.privileged = new.privileged || user.is_admin();
        Ok(user)
    }

    /// Creates an `invited` account without an enrollment link: the link is issued later
    /// (`wardgate user enroll-link`), when the person is ready to use it within its lifetime.
    pub async fn create(&self, new: NewUser) -> Result<User, AccountError> {
        let user = self.prepare(&new).await?;
        let event = self
            .event(types::ADMIN_USER_INVITED, &user)
            .detail("roles", user.roles.join(" "))
            .detail("privileged", user.privileged)
            .detail("email", user.email.clone())
            .detail("vendor", user.vendor.clone())
            .detail("account_expires", user.account_expires.map(wardgate_core::audit::record::format_ts));
        match self.store.create_user(&user, &[], &event).await {
            Ok(()) => Ok(user),
            // Someone took the name between the check and the insert.
            Err(StoreError::UsernameTaken) => Err(AccountError::UsernameTaken(user.username.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// A new enrollment link for an invited account (the old one stops working).
    pub async fn reissue_enrollment(
        &self,
        username: &str,
        base_url: &str,
    ) -> Result<(User, EnrollmentLink), AccountError> {
        let user = self.user(username).await?;
        if user.status != AccountStatus::Invited {
            return Err(wrong_status(&user, self.now, "only invited accounts get enrollment links"));
        }
        let link = self.issue_link(&user, base_url).await?;
        Ok((user, link))
    }

    async fn issue_link(&self, user: &User, base_url: &str) -> Result<EnrollmentLink, AccountError> {
        let secret = token::generate()?;
        let expires_at = self.now + Duration::hours(self.auth.enrollment_link_ttl_hours as i64);
        let event = self
            .event(types::ADMIN_ENROLLMENT_ISSUED, user)
            .detail("expires_at", wardgate_core::audit::record::format_ts(expires_at));
        self.store.issue_enrollment(&user.id, &token::digest(&secret), expires_at, &event).await?;
        Ok(EnrollmentLink { url: enrollment_url(base_url, &secret), expires_at })
    }

    /// Every account, in username order.
    pub async fn list(&self) -> Result<Vec<User>, AccountError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|u: &User| u.username.as_str().to_owned());
            let page = self.store.list_users(after.as_deref(), PAGE).await?;
            let done = page.len() < PAGE as usize;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    pub async fn show(&self, username: &str) -> Result<AccountDetails, AccountError> {
        let user = self.user(username).await?;
        let policy = self.auth.session_policy();
        let factors = self.store.factors_of(&user.id).await?;
        let sessions = self
            .store
            .sessions_of(&user.id)
            .await?
            .into_iter()
            .filter(|s| s.state(&policy, self.now) == SessionState::Active)
            .collect();
        let tokens = self.store.api_tokens_of(&user.id).await?;
        Ok(AccountDetails { user, factors, sessions, tokens })
    }

    /// Suspends an account; its sessions, API tokens and pending logins end at once.
    pub async fn disable(&self, username: &str) -> Result<User, AccountError> {
        let user = self.user(username).await?;
        if !matches!(user.status, AccountStatus::Active | AccountStatus::Invited) {
            return Err(wrong_status(&user, self.now, "only active or invited accounts can be disabled"));
        }
        self.refuse_last_admin(&user).await?;
        let event = self.event(types::ADMIN_USER_DISABLED, &user).detail("previous_status", user.status.as_str());
        self.revoke_grants(&user, "account disabled").await?;
        let changed = User { status: AccountStatus::Disabled, ..user };
        self.store.update_user(&changed, &event).await?;
        Ok(changed)
    }

    /// Brings a disabled account back: `active` if the person had finished enrollment
    /// (a passphrase and a second factor), else `invited`, so that nobody comes back with
    /// less than two factors.
    pub async fn enable(&self, username: &str) -> Result<User, AccountError> {
        let user = self.user(username).await?;
        if user.status != AccountStatus::Disabled {
            return Err(wrong_status(&user, self.now, "only disabled accounts can be enabled"));
        }
        let factors = self.store.factors_of(&user.id).await?;
        let has = |k: &[FactorKind]| factors.iter().any(|f| k.contains(&f.kind));
        let enrolled = has(&[FactorKind::Passphrase]) && has(&[FactorKind::Totp, FactorKind::Webauthn]);
        let status = if enrolled { AccountStatus::Active } else { AccountStatus::Invited };
        let event = self.event(types::ADMIN_USER_ENABLED, &user).detail("status", status.as_str());
        let changed = User { status, ..user };
        self.store.update_user(&changed, &event).await?;
        Ok(changed)
    }

    /// A forgotten passphrase: the account goes back to `invited` without its passphrase,
    /// its sessions end, and the person re-enrolls through a new one-time link — a new
    /// passphrase and a second factor proven again — so that whoever asked the help desk
    /// cannot take over the account with the link alone. Returns the account and the link.
    pub async fn reset_passphrase(
        &self,
        username: &str,
        base_url: &str,
    ) -> Result<(User, EnrollmentLink), AccountError> {
        let user = self.user(username).await?;
        if user.status != AccountStatus::Active {
            return Err(wrong_status(&user, self.now, "only active accounts have a passphrase to reset"));
        }
        self.refuse_last_admin(&user).await?;
        // The recovery codes go too: re-enrollment issues a fresh set.
        let stale = self
            .store
            .factors_of(&user.id)
            .await?
            .into_iter()
            .filter(|f| matches!(f.kind, FactorKind::Passphrase | FactorKind::RecoveryCodes));
        for f in stale {
            let event = self
                .event(types::ADMIN_PASSPHRASE_RESET, &user)
                .factor(f.kind.amr())
                .detail("factor_id", f.id.clone())
                .detail("kind", f.kind.as_str())
                .reason("passphrase reset by the help desk; the account re-enrolls");
            match self.store.remove_factor(&user.id, &f.id, &event).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let event = self.event(types::AUTH_SESSIONS_REVOKED_ALL, &user).reason("passphrase reset");
        self.revoke_grants(&user, "passphrase reset").await?;
        self.store.revoke_sessions_of(&user.id, self.now, &event).await?;
        let event =
            self.event(types::ADMIN_USER_INVITED, &user).detail("previous_status", "active").reason("passphrase reset");
        let changed = User { status: AccountStatus::Invited, ..user };
        self.store.update_user(&changed, &event).await?;
        let link = self.issue_link(&changed, base_url).await?;
        Ok((changed, link))
    }

    /// Clears failed attempts and any lockout. Returns the account and whether anything
    /// needed clearing (nothing is written or audited when not).
    pub async fn unlock(&self, username: &str) -> Result<(User, bool), AccountError> {
        let mut user = self.user(username).await?;
        if user.status == AccountStatus::Terminated {
            return Err(wrong_status(&user, self.now, "a deleted account cannot be unlocked"));
        }
        for _ in 0..CAS_TRIES {
            let before = user.attempts;
            if before == Attempts::cleared() {
                return Ok((user, false));
            }
            let mut event = self
                .event(types::ADMIN_USER_UNLOCKED, &user)
                .detail("failed_attempts", u64::from(before.consecutive_failures))
                .detail("was_locked", user.status_at(self.now) == "locked");
            if let Some(until) = before.locked_until {
                event = event.detail("locked_until", wardgate_core::audit::record::format_ts(until));
            }
            // Compare-and-set: a failure counted meanwhile on some node makes this lose,
            // and the re-read clears that one too.
            if self.store.set_attempts(&user.id, &before, &Attempts::cleared(), Some(&event)).await? {
                user.attempts = Attempts::cleared();
                return Ok((user, true));
            }
            user = self.user(username).await?;
        }
        Err(AccountError::Busy)
    }

    /// Ends an account for good (`wardgate user delete`): sessions, tokens and factors go;
    /// the record and its username stay, so the name is never given to someone else and
    /// the audit trail keeps pointing at one person.
    pub async fn terminate(&self, username: &str) -> Result<User, AccountError> {
        let user = self.user(username).await?;
        if user.status == AccountStatus::Terminated {
            return Err(wrong_status(&user, self.now, "it was already deleted"));
        }
        self.refuse_last_admin(&user).await?;
        let event = self.event(types::ADMIN_USER_TERMINATED, &user).detail("previous_status", user.status.as_str());
        self.revoke_grants(&user, "account deleted").await?;
        let changed = User { status: AccountStatus::Terminated, ..user };
        self.store.update_user(&changed, &event).await?;
        Ok(changed)
    }

    /// What applications got through the account's live sessions stops working, so that
    /// enabling the account later does not bring old tokens back. The store queues a
    /// back-channel logout notice for each application that asked for one; a running
    /// server delivers it (this may be the command line, which has no server of its own).
    async fn revoke_grants(&self, user: &User, reason: &str) -> Result<(), AccountError> {
        for s in self.store.sessions_of(&user.id).await? {
            let e = self
                .event(types::OIDC_GRANT_REVOKED, user)
                .reason(reason)
                .correlation_id(s.correlation_id.clone())
                .detail("session_id", s.id.clone());
            self.store.revoke_grants_of_session(&s.id, self.now, reason, &e).await?;
        }
        Ok(())
    }

    async fn refuse_last_admin(&self, user: &User) -> Result<(), AccountError> {
        if user.is_admin() && user.status == AccountStatus::Active && self.store.count_admins().await? <= 1 {
            return Err(AccountError::LastAdmin(user.username.to_string()));
        }
        Ok(())
    }

    /// Removes one factor of an account.
    pub async fn remove_factor(&self, username: &str, factor_id: &str) -> Result<Factor, AccountError> {
        let user = self.user(username).await?;
        let unknown =
            || AccountError::UnknownFactor { username: user.username.to_string(), factor_id: factor_id.into() };
        let factor =
            self.store.factors_of(&user.id).await?.into_iter().find(|f| f.id == factor_id).ok_or_else(unknown)?;
        let event = self
            .event(types::ADMIN_FACTOR_REMOVED, &user)
            .factor(factor.kind.amr())
            .detail("factor_id", factor.id.clone())
            .detail("kind", factor.kind.as_str())
            .detail("label", factor.label.clone());
        match self.store.remove_factor(&user.id, factor_id, &event).await {
            Err(StoreError::NotFound) => Err(unknown()),
            other => other.map(|()| factor).map_err(Into::into),
        }
    }

    /// A bearer token for the admin API, bound to an active administrator.
    pub async fn create_api_token(
        &self,
        username: &str,
        scopes: &[String],
        label: Option<&str>,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedToken, AccountError> {
        let mut parsed = Vec::new();
        for s in scopes {
            parsed.push(Scope::parse(s.trim()).ok_or_else(|| AccountError::UnknownScope(s.clone()))?);
        }
        parsed.sort();
        parsed.dedup();
        if parsed.is_empty() {
            return Err(AccountError::NoScope);
        }
        let days = expires_in_days.unwrap_or(TOKEN_DEFAULT_DAYS);
        if !(1..=TOKEN_MAX_DAYS).contains(&days) {
            return Err(AccountError::TokenLifetime(days));
        }
        let label = match label {
            Some(l) => bounded_text(l, 128).ok_or(AccountError::Label)?,
            None => "API token".to_owned(),
        };
        let user = self.user(username).await?;
        // A token acts with the account's authority, so it needs the authority itself.
        if !(user.status == AccountStatus::Active && user.is_admin()) {
            return Err(AccountError::NotAdmin {
                username: user.username.to_string(),
                status: user.status_at(self.now),
                admin: if user.is_admin() { "holds the admin role" } else { "does not hold the admin role" },
            });
        }
        let secret = token::generate()?;
        let api_token = ApiToken {
            id: token::random_id()?,
            user_id: user.id.clone(),
            digest: token::digest(&secret),
            label,
            scopes: parsed,
            created_at: self.now,
            expires_at: self.now + Duration::days(i64::from(days)),
            revoked_at: None,
        };
        let event = self
            .event(types::ADMIN_TOKEN_CREATED, &user)
            .detail("token_id", api_token.id.clone())
            .detail("label", api_token.label.clone())
            .detail("scopes", scope_list(&api_token.scopes))
            .detail("expires_at", wardgate_core::audit::record::format_ts(api_token.expires_at));
        self.store.create_api_token(&api_token, &event).await?;
        Ok(CreatedToken { user, token: api_token, secret })
    }

    /// An account's API tokens, newest first, revoked and expired ones included.
    pub async fn api_tokens(&self, username: &str) -> Result<(User, Vec<ApiToken>), AccountError> {
        let user = self.user(username).await?;
        let tokens = self.store.api_tokens_of(&user.id).await?;
        Ok((user, tokens))
    }

    /// Revokes a token by its public id. Returns the account it belonged to.
    pub async fn revoke_api_token(&self, id: &str) -> Result<(User, ApiToken), AccountError> {
        let unknown = || AccountError::UnknownToken(id.to_owned());
        let mut users = self.list().await?;
        // Tokens are made for administrators: look there first.
        users.sort_by_key(|u| !u.is_admin());
        for user in users {
            let Some(t) = self.store.api_tokens_of(&user.id).await?.into_iter().find(|t| t.id == id) else {
                continue;
            };
            if t.revoked_at.is_some() {
                return Err(unknown());
            }
            let event = self
                .event(types::ADMIN_TOKEN_REVOKED, &user)
                .detail("token_id", t.id.clone())
                .detail("label", t.label.clone());
            return match self.store.revoke_api_token(id, self.now, &event).await {
                Ok(()) => Ok((user, ApiToken { revoked_at: Some(self.now), ..t })),
                Err(StoreError::NotFound) => Err(unknown()),
                Err(e) => Err(e.into()),
            };
        }
        Err(unknown())
    }

    /// Imports hardware TOTP tokens from a PSKC file and binds each assigned one to its
    /// person. Everything is checked first (file, keys, serials, accounts); then each token
    /// becomes a factor with its secret sealed at rest.
    pub async fn import_tokens(
        &self,
        keyring: &Keyring,
        pskc_xml: &str,
        pre_shared_key: Option<&[u8]>,
        assignments: &[Assignment],
    ) -> Result<Vec<ImportedToken>, AccountError> {
        let tokens = pskc::parse(pskc_xml, pre_shared_key)?;
        if assignments.is_empty() {
            let mut serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).take(20).collect();
            if tokens.len() > serials.len() {
                serials.push("…");
            }
            return Err(AccountError::NoAssignments(serials.join(", ")));
        }
        let mut plan = Vec::new();
        for (i, a) in assignments.iter().enumerate() {
            if assignments[..i].iter().any(|b| b.serial == a.serial) {
                return Err(AccountError::SerialAssignedTwice(a.serial.clone()));
            }
            let t = tokens
                .iter()
                .find(|t| t.serial == a.serial)
                .ok_or_else(|| AccountError::SerialNotInFile(a.serial.clone()))?;
            let params = t.totp_params(self.now)?;
            let user = self.user(&a.username).await?;
            if user.status == AccountStatus::Terminated {
                return Err(wrong_status(&user, self.now, "a deleted account cannot receive a token"));
            }
            plan.push((t, params, user));
        }
        self.refuse_imported_serials(assignments).await?;
        // L1 as at enrollment: a token is a second factor issued to a person, so a role that
        // requires proofing requires it here too (only under an approved policy).
        if let Some(policy) = self.store.active_policy().await?.and_then(|v| Policy::parse(&v.source).ok()) {
            for (_, _, user) in &plan {
                if let Some(role) = crate::lifecycle::proofing::missing(self.store, &policy, user, self.now).await? {
                    return Err(AccountError::ProofingRequired { username: user.username.to_string(), role });
                }
            }
        }

        let mut imported = Vec::new();
        for (t, params, user) in plan {
            let id = token::random_id()?;
            let sealed = keyring
                .seal(&Factor::seal_context(&id), &t.secret)
                .map_err(|e| AccountError::Sealing(e.to_string()))?;
            let mut factor = Factor::new(
                id,
                user.id.clone(),
                FactorKind::Totp,
                &format!("Hardware token {}", t.serial),
                sealed,
                self.now,
            );
            factor.params = totp_params_json(params, Some(&t.serial));
            factor.enrolled_by = Some(wardgate_core::lifecycle::EnrolledBy::Admin(self.actor.to_owned()).to_string());
            let mut event = self
                .event(types::ADMIN_FACTOR_IMPORTED, &user)
                .factor(FactorKind::Totp.amr())
                .detail("factor_id", factor.id.clone())
                .detail("serial", t.serial.clone())
                .detail("algorithm", params.algorithm.as_str())
                .detail("digits", u64::from(params.digits))
                .detail("step_secs", params.step_secs)
                .detail("source", "pskc");
            if let Some(m) = &t.manufacturer {
                event = event.detail("manufacturer", m.clone());
            }
            if let Some(m) = &t.model {
                event = event.detail("model", m.clone());
            }
            self.store.add_factor(&factor, &event).await?;
            imported.push(ImportedToken {
                serial: t.serial.clone(),
                username: user.username.to_string(),
                factor,
                params,
            });
        }
        Ok(imported)
    }

    /// One physical token belongs to one person: refuse serials already bound to anyone.
    async fn refuse_imported_serials(&self, assignments: &[Assignment]) -> Result<(), AccountError> {
        for user in self.list().await? {
            for f in self.store.factors_of(&user.id).await? {
                let Some(serial) = factor_serial(&f) else { continue };
                if assignments.iter().any(|a| a.serial == serial) {
                    return Err(AccountError::SerialTaken {
                        serial: serial.to_owned(),
                        username: user.username.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// `{base_url}/enroll?token=TOKEN`.
pub fn enrollment_url(base_url: &str, secret: &str) -> String {
    format!("{}/enroll?token={secret}", base_url.trim_end_matches('/'))
}

/// The stored parameters of a TOTP factor:
/// `{"algorithm": "SHA1"|"SHA256"|"SHA512", "digits": 6|8, "step_secs": 30, "serial": …}`.
pub fn totp_params_json(p: TotpParams, serial: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "algorithm": p.algorithm.as_str(),
        "digits": p.digits,
        "step_secs": p.step_secs,
    });
    if let (Some(serial), Some(map)) = (serial, v.as_object_mut()) {
        map.insert("serial".into(), serial.into());
    }
    v
}

/// The serial of an imported hardware token.
pub fn factor_serial(f: &Factor) -> Option<&str> {
    (f.kind == FactorKind::Totp).then(|| f.params.get("serial").and_then(|s| s.as_str())).flatten()
}

fn parse_username(s: &str) -> Result<Username, AccountError> {
    Username::parse(s).map_err(|source| AccountError::Username { given: s.to_owned(), source })
}

fn taken(existing: &User) -> AccountError {
    if existing.status == AccountStatus::Terminated {
        AccountError::UsernameRetired(existing.username.to_string())
    } else {
        AccountError::UsernameTaken(existing.username.to_string())
    }
}

fn wrong_status(user: &User, now: OffsetDateTime, hint: &'static str) -> AccountError {
    let status = match user.status {
        AccountStatus::Terminated => "deleted",
        _ => user.status_at(now),
    };
    AccountError::WrongStatus { username: user.username.to_string(), status, hint }
}

/// Trimmed text of 1..=`max` characters with no control characters.
fn bounded_text(s: &str, max: usize) -> Option<String> {
    let s = s.trim();
    let n = s.chars().count();
    ((1..=max).contains(&n) && !s.chars().any(char::is_control)).then(|| s.to_owned())
}

pub(crate) fn display_name(s: &str) -> Result<String, AccountError> {
    bounded_text(s, 128).ok_or(AccountError::DisplayName)
}

pub(crate) fn employee_id(s: &str) -> Result<String, AccountError> {
    bounded_text(s, 64).ok_or(AccountError::EmployeeId)
}

/// The shape of an address, not its existence: one `@`, something before it, a dotted
/// domain after it, no spaces (RFC 5321 §4.5.3.1.3 caps a path at 256 octets).
pub(crate) fn email(s: &str) -> Result<String, AccountError> {
    let bad = || AccountError::Email(s.to_owned());
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    let local_ok = !local.is_empty() && !local.contains('@');
    let chars_ok =
        s.len() <= 254 && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>(),;:\\\"[]".contains(c));
    if local_ok && domain_ok && chars_ok { Ok(s.to_owned()) } else { Err(bad()) }
}

fn roles(given: &[String]) -> Result<Vec<String>, AccountError> {
    given
        .iter()
        .map(|r| {
            let r = r.trim();
            if valid_role(r) { Ok(r.to_owned()) } else { Err(AccountError::Role(r.to_owned())) }
        })
        .collect()
}

fn scope_list(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

// --- views -----------------------------------------------------------------------------
//
// What an administrator may see of an account, as JSON: the CLI's `--json` and, later, the
// admin API's bodies. Never a secret, a digest or a sealed value.

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub employee_id: Option<String>,
    pub roles: Vec<String>,
    /// Roles whose assignment ends, and when (RFC 3339).
    pub roles_until: std::collections::BTreeMap<String, String>,
    pub privileged: bool,
    /// `invited`, `active`, `locked`, `disabled` or `terminated`.
    pub status: &'static str,
    pub failed_attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The vendor of a business associate's account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub account_expires: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<OffsetDateTime>,
}

impl UserView {
    pub fn new(u: &User, now: OffsetDateTime) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.to_string(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            employee_id: u.employee_id.clone(),
            roles: u.roles.clone(),
            roles_until: u
                .role_expiry
                .iter()
                .filter_map(|(r, t)| Some((r.clone(), t.format(&time::format_description::well_known::Rfc3339).ok()?)))
                .collect(),
            privileged: u.privileged,
            status: u.status_at(now),
            failed_attempts: u.attempts.consecutive_failures,
            locked_until: u.attempts.locked_until.filter(|t| *t > now),
            created_at: u.created_at,
            vendor: u.vendor.clone(),
            account_expires: u.account_expires,
            last_login_at: u.last_login_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FactorView {
    pub id: String,
    pub kind: &'static str,
    pub label: String,
    /// A hardware token's serial.
    pub serial: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When the factor stops being accepted (L2), if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub enrolled_by: Option<String>,
}

impl From<&Factor> for FactorView {
    fn from(f: &Factor) -> Self {
        Self {
            id: f.id.clone(),
            kind: f.kind.as_str(),
            label: f.label.clone(),
            serial: factor_serial(f).map(str::to_owned),
            created_at: f.created_at,
            last_used_at: f.last_used_at,
            expires_at: f.expires_at,
            enrolled_by: f.enrolled_by.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub aal: &'static str,
    pub amr: Vec<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id.clone(),
            aal: s.aal.as_str(),
            amr: s.amr.clone(),
            client_ip: s.client_ip.map(|ip| ip.to_string()),
            user_agent: s.user_agent.clone(),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: String,
    pub label: String,
    pub scopes: Vec<&'static str>,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl TokenView {
    pub fn new(t: &ApiToken, now: OffsetDateTime) -> Self {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if now >= t.expires_at {
            "expired"
        } else {
            "active"
        };
        Self {
            id: t.id.clone(),
            label: t.label.clone(),
            scopes: t.scopes.iter().map(|s| s.as_str()).collect(),
            state,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub user: UserView,
    pub factors: Vec<FactorView>,
    pub sessions: Vec<SessionView>,
    pub tokens: Vec<TokenView>,
}

impl AccountDetails {
    pub fn view(&self, now: OffsetDateTime) -> AccountView {
        AccountView {
            user: UserView::new(&self.user, now),
            factors: self.factors.iter().map(FactorView::from).collect(),
            sessions: self.sessions.iter().map(SessionView::from).collect(),
            tokens: self.tokens.iter().map(|t| TokenView::new(t, now)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_core::factors::totp::TotpAlgorithm;

    const T0: OffsetDateTime = time::macros::datetime!(2026-11-28 07:00 UTC);

    #[test]
    fn input_is_checked_with_messages_that_say_what_is_wrong() {
        assert!(email("jsmith@example.org").is_ok());
        assert!(email("j.smith+ward@st-marys.nhs.uk").is_ok());
        for bad in
            ["jsmith", "@example.org", "j@localhost", "j@example..org", "j smith@example.org", "a@b@c.org", "j@.org"]
        {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert_eq!(display_name("  Jane Smith ").unwrap(), "Jane Smith");
        assert!(display_name("").is_err() && display_name(&"x".repeat(129)).is_err() && display_name("a\nb").is_err());
        assert!(employee_id("E-1234").is_ok() && employee_id(&"1".repeat(65)).is_err());
        assert_eq!(roles(&["nurse".into(), "ward:4b".into()]).unwrap(), ["nurse", "ward:4b"]);
        let err = roles(&["Nurse".into()]).unwrap_err().to_string();
        assert!(err.contains("\"Nurse\"") && err.contains("a-z"), "{err}");
        let err = parse_username("bad name").unwrap_err().to_string();
        assert!(err.contains("\"bad name\"") && err.contains("1-64"), "{err}");
    }

    #[test]
    fn assignments_parse_and_errors_are_classified() {
        let a: Assignment = " 987654321 = jsmith ".parse().unwrap();
        assert_eq!(a, Assignment { serial: "987654321".into(), username: "jsmith".into() });
        for bad in ["987654321", "=jsmith", "987654321="] {
            assert!(bad.parse::<Assignment>().is_err(), "{bad:?}");
        }
        assert_eq!(AccountError::UnknownScope("root".into()).kind(), ErrorKind::Invalid);
        assert!(AccountError::UnknownScope("root".into()).to_string().contains("users:read, users:write"));
        assert_eq!(AccountError::UnknownUser("x".into()).kind(), ErrorKind::NotFound);
        assert_eq!(AccountError::LastAdmin("x".into()).kind(), ErrorKind::Conflict);
    }

    #[test]
    fn totp_factor_params_have_the_agreed_shape_and_views_hold_no_secrets() {
        let p = TotpParams { algorithm: TotpAlgorithm::Sha256, digits: 8, step_secs: 60 };
        assert_eq!(
            totp_params_json(p, Some("T-1")),
            serde_json::json!({"algorithm": "SHA256", "digits": 8, "step_secs": 60, "serial": "T-1"})
        );
        assert_eq!(totp_params_json(TotpParams::default(), None).get("serial"), None);

        let mut f =
            Factor::new("f1".into(), "u1".into(), FactorKind::Totp, "Hardware token T-1", "wg1.sealed".into(), T0);
        f.params = totp_params_json(p, Some("T-1"));
        let v = serde_json::to_string(&FactorView::from(&f)).unwrap();
        assert!(v.contains("\"serial\":\"T-1\"") && !v.contains("wg1.sealed"), "{v}");
        assert_eq!(enrollment_url("https://sso.example.org/", "abc"), "https://sso.example.org/enroll?token=abc");

        let mut u =
            User::new("u1".into(), Username::parse("jsmith").unwrap(), "Jane".into(), AccountStatus::Active, T0);
        u.attempts.consecutive_failures = 20;
        u.attempts.locked_until = Some(T0 + Duration::minutes(15));
        assert_eq!(UserView::new(&u, T0).status, "locked");
        assert_eq!(UserView::new(&u, T0 + Duration::hours(1)).status, "active");
        assert_eq!(UserView::new(&u, T0 + Duration::hours(1)).locked_until, None);
    }
}
