//! Assigning roles to accounts (A1, A4): shared by `wardgate role …` and the admin API.
//!
//! Roles come from the policy in force (or the default set before one is approved). An
//! assignment may end at a set time; the end is checked at every decision, so it holds
//! even if no node was running when it passed. Roles that grant `admin.*` permissions go
//! only to privileged accounts.

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{User, Username};
use wardgate_core::policy::Policy;
use wardgate_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error("no account named {0}")]
    UnknownUser(String),
    #[error("the policy in force has no role named {0:?}")]
    UnknownRole(String),
    #[error(
        "role {0} grants administrative permissions; only privileged accounts may hold it (create a separate account with --privileged)"
    )]
    NotPrivileged(String),
    #[error("the end of an assignment must be in the future")]
    Past,
    #[error("{0} does not hold role {1}")]
    NotHeld(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The policy whose roles apply: the active version, or the default roles.
pub async fn catalog(store: &dyn Store) -> Result<Policy, StoreError> {
    Ok(store.active_policy().await?.and_then(|v| Policy::parse(&v.source).ok()).unwrap_or_else(Policy::empty))
}

pub struct Roles<'a> {
    store: &'a dyn Store,
    actor: &'a str,
    now: OffsetDateTime,
    policy: &'a Policy,
}

impl<'a> Roles<'a> {
    pub fn new(store: &'a dyn Store, actor: &'a str, now: OffsetDateTime, policy: &'a Policy) -> Self {
        Self { store, actor, now, policy }
    }

    async fn user(&self, username: &str) -> Result<User, RolesError> {
        let name = Username::parse(username).map_err(|_| RolesError::UnknownUser(username.to_owned()))?;
        self.store.user_by_username(&name).await?.ok_or_else(|| RolesError::UnknownUser(username.to_owned()))
    }

    fn event(&self, t: &'static str, user: &User, role: &str) -> AuditEvent {
        AuditEvent::known(self.now, t, Outcome::Success)
            .actor(self.actor)
            .subject(user.username.as_str())
            .detail("role", role.to_owned())
    }

    /// Gives `role` to the account, until `until` if given (replacing an earlier end).
    pub async fn assign(&self, username: &str, role: &str, until: Option<OffsetDateTime>) -> Result<User, RolesError> {
        let def = self.policy.role(role).ok_or_else(|| RolesError::UnknownRole(role.to_owned()))?;
        let user = self.user(username).await?;
        if def.administrative() && !user.privileged {
            return Err(RolesError::NotPrivileged(role.to_owned()));
        }
        if until.is_some_and(|u| u <= self.now) {
            return Err(RolesError::Past);
        }
        let mut roles = user.roles.clone();
        roles.push(role.to_owned());
        let mut changed = user.with_roles(roles);
        let mut e = self.event(types::ADMIN_ROLE_ASSIGNED, &changed, role);
        match until {
            Some(u) => {
                changed.role_expiry.insert(role.to_owned(), u);
                e = e.detail("until", u.format(&time::format_description::well_known::Rfc3339).unwrap_or_default());
            }
            None => {
                changed.role_expiry.remove(role);
            }
        }
        self.store.update_user(&changed, &e).await?;
        Ok(changed)
    }

    pub async fn remove(&self, username: &str, role: &str) -> Result<User, RolesError> {
        let user = self.user(username).await?;
        if !user.roles.iter().any(|r| r == role) {
            return Err(RolesError::NotHeld(user.username.as_str().to_owned(), role.to_owned()));
        }
        let roles: Vec<String> = user.roles.iter().filter(|r| *r != role).cloned().collect();
        let changed = user.with_roles(roles);
        self.store.update_user(&changed, &self.event(types::ADMIN_ROLE_REMOVED, &changed, role)).await?;
        Ok(changed)
    }
}
