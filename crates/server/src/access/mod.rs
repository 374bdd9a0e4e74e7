//! The access policy in force on this node, and the decisions made with it.
//!
//! The active version is read from the store at start and again whenever the store's
//! revision moves (within a second of an approval on any node or the CLI). Until a version
//! has been approved there is no policy and every decision is a deny: Wardgate never
//! invents an "allow everything" default.

pub mod authorize;
pub mod context;

use std::sync::{Arc, RwLock};

use wardgate_core::policy::Policy;
use wardgate_store::{Store, StoreError};

/// One approved version, compiled.
#[derive(Debug)]
pub struct ActivePolicy {
    pub number: i64,
    pub policy: Policy,
}

pub struct Access {
    active: RwLock<Option<Arc<ActivePolicy>>>,
    /// Decides while no version is active: no rules, so every answer is a deny.
    empty: Policy,
}

impl Default for Access {
    fn default() -> Self {
        Self { active: RwLock::new(None), empty: Policy::empty() }
    }
}

/// The rule named when no policy version has been approved yet.
pub const NO_POLICY: &str = "builtin:no-policy";

/// The policy deciding now: the approved version, or before there is one the empty policy,
/// under which every answer is a deny.
pub struct InForce<'a> {
    active: Option<Arc<ActivePolicy>>,
    empty: &'a Policy,
}

impl InForce<'_> {
    pub fn policy(&self) -> &Policy {
        self.active.as_ref().map_or(self.empty, |a| &a.policy)
    }

    pub fn version(&self) -> Option<i64> {
        self.active.as_ref().map(|a| a.number)
    }

    /// Decides `req`; before any version is approved the answer is a deny naming
    /// [`NO_POLICY`], whatever the request.
    pub fn evaluate(&self, req: &wardgate_core::policy::Request<'_>) -> wardgate_core::policy::Decision<'_> {
        let d = self.policy().evaluate(req);
        if self.active.is_some() {
            return d;
        }
        wardgate_core::policy::Decision {
            effect: wardgate_core::policy::Effect::Deny,
            reason: "no access policy has been approved yet",
            rule: NO_POLICY,
            ..d
        }
    }
}

impl Access {
    pub fn in_force(&self) -> InForce<'_> {
        InForce { active: self.current(), empty: &self.empty }
    }

    pub fn current(&self) -> Option<Arc<ActivePolicy>> {
        self.active.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the active version from the store and compiles it if it changed. A version
    /// that no longer compiles (written by a newer release, say) leaves the one in force
    /// in place and is logged: a node never drops to no policy because of a bad row.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let Some(v) = store.active_policy().await? else {
            *self.active.write().unwrap_or_else(|p| p.into_inner()) = None;
            return Ok(());
        };
        if self.current().is_some_and(|a| a.number == v.number) {
            return Ok(());
        }
        match Policy::parse(&v.source) {
            Ok(policy) => {
                tracing::info!(version = v.number, "access policy in force");
                *self.active.write().unwrap_or_else(|p| p.into_inner()) =
                    Some(Arc::new(ActivePolicy { number: v.number, policy }));
            }
            Err(e) => {
                tracing::error!(version = v.number, error = %e, "active access policy does not compile; keeping the previous one")
            }
        }
        Ok(())
    }
}

/// What the policy says about signing in from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginPolicy {
    /// No policy in force: two factors, the installation's session limits.
    Defaults,
    /// The policy lets this person sign in here at `required` (one factor suffices at
    /// aal1), and gives the session these limits.
    Allowed {
        required: wardgate_core::login::Aal,
        limits: wardgate_core::session::SessionPolicy,
        /// The rule that set the requirement, and the version in force, for the record.
        rule: String,
        version: i64,
    },
    /// The policy refuses a session here, by this rule.
    Denied { rule: String },
}

impl Access {
    /// Evaluates the `login` action for `user` from the request's address and device.
    pub async fn login(
        &self,
        store: &dyn Store,
        user: &wardgate_core::identity::User,
        ctx: &crate::context::ClientContext,
        now: time::OffsetDateTime,
    ) -> Result<LoginPolicy, StoreError> {
        use wardgate_core::policy::{Effect, LOGIN_ACTION, Request};
        let Some(active) = self.current() else { return Ok(LoginPolicy::Defaults) };
        let device = context::device(store, ctx.device_secret.as_deref()).await?;
        let roles = user.roles_at(now);
        let d = active.policy.evaluate(&Request {
            action: LOGIN_ACTION,
            resource: None,
            subject: context::subject(user, &roles, now),
            session: None,
            device: device.as_ref().map(context::device_facts),
            ip: ctx.ip,
            now,
        });
        Ok(match d.effect {
            Effect::Deny => LoginPolicy::Denied { rule: d.rule.to_owned() },
            _ => LoginPolicy::Allowed {
                rule: d.rule.to_owned(),
                version: active.number,
                required: d.required,
                limits: wardgate_core::session::SessionPolicy {
                    idle_timeout: d.limits.idle_timeout,
                    absolute_lifetime: d.limits.lifetime,
                },
            },
        })
    }
}

/// What the policy says about signing in to an application (OpenID Connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoPolicy {
    /// No policy in force: the provider's own floor (two factors).
    Defaults,
    /// The assurance this application needs from here, and whether the session's
    /// authentication is too old for it (reauthentication window or `fresh`).
    Required {
        assurance: wardgate_core::login::Aal,
        fresh_needed: bool,
    },
    Denied(String),
}

/// Evaluates the `sso` action for the signed-in person and `client_id`.
pub async fn sso(
    app: &crate::app::AppState,
    cur: &crate::auth::session::Current,
    client_id: &str,
    ctx: &crate::context::ClientContext,
    now: time::OffsetDateTime,
) -> Result<SsoPolicy, StoreError> {
    use wardgate_core::policy::{Effect, Request, SSO_ACTION, SessionFacts};
    let Some(active) = app.access.current() else { return Ok(SsoPolicy::Defaults) };
    let device = context::device(&*app.store, ctx.device_secret.as_deref()).await?;
    let roles = cur.user.roles_at(now);
    let d = active.policy.evaluate(&Request {
        action: SSO_ACTION,
        resource: Some(client_id),
        subject: context::subject(&cur.user, &roles, now),
        session: Some(SessionFacts { aal: cur.session.aal, authenticated_at: cur.session.created_at }),
        device: device.as_ref().map(context::device_facts),
        ip: ctx.ip,
        now,
    });
    Ok(match d.effect {
        Effect::Deny => SsoPolicy::Denied(d.reason.to_owned()),
        Effect::StepUp => SsoPolicy::Required { assurance: d.required, fresh_needed: cur.session.aal >= d.required },
        Effect::Allow => SsoPolicy::Required { assurance: d.required, fresh_needed: false },
    })
}
