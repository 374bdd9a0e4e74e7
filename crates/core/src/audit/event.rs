//! What happened, as reported by the code that made it happen.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A stable, dotted event type such as `auth.login.succeeded`.
///
/// The set is open (later features add types) but every value is checked to be lowercase
/// dotted words so that SIEM rules written against it keep matching.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

impl EventType {
    pub fn new(s: &str) -> Result<Self, InvalidEventType> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.split('.').count() >= 2
            && s.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidEventType(s.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EventType {
    type Error = InvalidEventType;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<EventType> for String {
    fn from(e: EventType) -> String {
        e.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid audit event type {0:?}: expected lowercase dotted words such as auth.login.succeeded")]
pub struct InvalidEventType(pub String);

/// Known event types. Kept as constants so a typo is a compile error, not a silent new type.
pub mod types {
    pub const ADMIN_BOOTSTRAP_ISSUED: &str = "admin.bootstrap.issued";
    pub const ADMIN_BOOTSTRAP_REDEEMED: &str = "admin.bootstrap.redeemed";
    pub const ADMIN_BOOTSTRAP_REFUSED: &str = "admin.bootstrap.refused";
    pub const ADMIN_USER_CREATED: &str = "admin.user.created";
    pub const ADMIN_FACTOR_ADDED: &str = "admin.factor.added";
    pub const ADMIN_USER_INVITED: &str = "admin.user.invited";
    pub const ADMIN_USER_DISABLED: &str = "admin.user.disabled";
    pub const ADMIN_USER_ENABLED: &str = "admin.user.enabled";
    pub const ADMIN_USER_UNLOCKED: &str = "admin.user.unlocked";
    pub const ADMIN_USER_TERMINATED: &str = "admin.user.terminated";
    pub const ADMIN_ENROLLMENT_ISSUED: &str = "admin.enrollment.issued";
    pub const ADMIN_TOKEN_CREATED: &str = "admin.token.created";
    pub const ADMIN_TOKEN_REVOKED: &str = "admin.token.revoked";
    pub const ADMIN_FACTOR_IMPORTED: &str = "admin.factor.imported";
    pub const ADMIN_FACTOR_REMOVED: &str = "admin.factor.removed";
    pub const ADMIN_PASSPHRASE_RESET: &str = "admin.passphrase.reset";
    pub const ADMIN_USERS_IMPORTED: &str = "admin.users.imported";
    pub const AUDIT_CHECKPOINT_SIGNED: &str = "audit.checkpoint.signed";
    pub const AUDIT_RETENTION_PRUNED: &str = "audit.retention.pruned";
    pub const AUDIT_EXPORTED: &str = "audit.exported";
    pub const AUDIT_VERIFIED: &str = "audit.verified";
    pub const KEYS_ROTATED: &str = "keys.kek.rotated";
    pub const KEYS_SIGNING_CREATED: &str = "keys.signing.created";
    pub const KEYS_SIGNING_RETIRED: &str = "keys.signing.retired";
    pub const SYSTEM_STARTED: &str = "system.node.started";
    pub const SYSTEM_STOPPED: &str = "system.node.stopped";
    pub const AUTH_LOGIN_SUCCEEDED: &str = "auth.login.succeeded";
    pub const AUTH_LOGIN_FAILED: &str = "auth.login.failed";
    pub const AUTH_FACTOR_FAILED: &str = "auth.factor.failed";
    pub const AUTH_FACTOR_PASSED: &str = "auth.factor.passed";
    pub const AUTH_LOGIN_STARTED: &str = "auth.login.started";
    pub const AUTH_LOGIN_THROTTLED: &str = "auth.login.throttled";
    pub const AUTH_ACCOUNT_LOCKED: &str = "auth.account.locked";
    pub const AUTH_ACCOUNT_UNLOCKED: &str = "auth.account.unlocked";
    pub const AUTH_RECOVERY_CODE_USED: &str = "auth.recovery_code.used";
    pub const AUTH_WEBAUTHN_COUNTER_REGRESSION: &str = "auth.webauthn.counter_regression";
    pub const AUTH_SESSION_ENDED: &str = "auth.session.ended";
    pub const AUTH_SESSION_EXPIRED: &str = "auth.session.expired";
    pub const AUTH_SESSION_REVOKED: &str = "auth.session.revoked";
    pub const AUTH_SESSIONS_REVOKED_ALL: &str = "auth.session.revoked_all";
    pub const ENROLLMENT_STARTED: &str = "enrollment.started";
    pub const ENROLLMENT_PASSPHRASE_SET: &str = "enrollment.passphrase.set";
    pub const ENROLLMENT_FACTOR_VERIFIED: &str = "enrollment.factor.verified";
    pub const ENROLLMENT_FACTOR_REFUSED: &str = "enrollment.factor.refused";
    pub const ENROLLMENT_COMPLETED: &str = "enrollment.completed";
    pub const ACCOUNT_FACTOR_ADDED: &str = "account.factor.added";
    pub const ACCOUNT_FACTOR_REMOVED: &str = "account.factor.removed";
    pub const ACCOUNT_PASSPHRASE_CHANGED: &str = "account.passphrase.changed";
    pub const ACCOUNT_RECOVERY_CODES_REGENERATED: &str = "account.recovery_codes.regenerated";
    pub const ADMIN_API_CALLED: &str = "admin.api.called";
    pub const OIDC_AUTHORIZATION: &str = "oidc.authorization";
    pub const OIDC_GRANT_ISSUED: &str = "oidc.grant.issued";
    pub const OIDC_GRANT_REVOKED: &str = "oidc.grant.revoked";
    pub const OIDC_TOKEN_REFRESHED: &str = "oidc.token.refreshed";
    pub const OIDC_REFRESH_REUSED: &str = "oidc.refresh.reused";
    pub const OIDC_CODE_REUSED: &str = "oidc.code.reused";
    pub const OIDC_LOGOUT_SENT: &str = "oidc.logout.sent";
    pub const OIDC_CONSENT_GRANTED: &str = "oidc.consent.granted";
    pub const OIDC_CONSENT_REVOKED: &str = "oidc.consent.revoked";
    pub const OIDC_CLIENT_CREATED: &str = "oidc.client.created";
    pub const OIDC_CLIENT_UPDATED: &str = "oidc.client.updated";
    pub const OIDC_CLIENT_DELETED: &str = "oidc.client.deleted";
    pub const POLICY_DECISION: &str = "policy.decision";
    pub const GATEWAY_ACCESS: &str = "gateway.access";
    pub const GATEWAY_PROXIED: &str = "gateway.proxied";
    pub const POLICY_PROPOSED: &str = "policy.version.proposed";
    pub const POLICY_ACTIVATED: &str = "policy.version.activated";
    pub const POLICY_REJECTED: &str = "policy.version.rejected";
    pub const POLICY_REFUSED: &str = "policy.version.refused";
    pub const DEVICE_REGISTERED: &str = "device.registered";
    pub const DEVICE_UPDATED: &str = "device.updated";
    pub const DEVICE_RETIRED: &str = "device.retired";
    pub const ADMIN_ROLE_ASSIGNED: &str = "admin.role.assigned";
    pub const ADMIN_ROLE_REMOVED: &str = "admin.role.removed";
    pub const BREAKGLASS_OPENED: &str = "breakglass.opened";
    pub const BREAKGLASS_REFUSED: &str = "breakglass.refused";
    pub const BREAKGLASS_ENDED: &str = "breakglass.ended";
    pub const BREAKGLASS_REVIEWED: &str = "breakglass.reviewed";
    pub const BREAKGLASS_ALERT: &str = "breakglass.alert";
    pub const ELEVATION_REQUESTED: &str = "elevation.requested";
    pub const ELEVATION_APPROVED: &str = "elevation.approved";
    pub const ELEVATION_DENIED: &str = "elevation.denied";
    pub const VENDOR_CREATED: &str = "vendor.created";
    pub const VENDOR_UPDATED: &str = "vendor.updated";
    pub const ACCOUNT_EXPIRED: &str = "account.expired";
    pub const ACCOUNT_DORMANT_DISABLED: &str = "account.dormant_disabled";
    pub const REVIEW_CAMPAIGN_STARTED: &str = "review.campaign.started";
    pub const REVIEW_ITEM_DECIDED: &str = "review.item.decided";
    pub const REVIEW_CAMPAIGN_CLOSED: &str = "review.campaign.closed";
    pub const SCIM_TOKEN_CREATED: &str = "scim.token.created";
    pub const SCIM_TOKEN_REVOKED: &str = "scim.token.revoked";
    pub const SCIM_USER_UPDATED: &str = "scim.user.updated";
    pub const SCIM_ROLES_CHANGED: &str = "scim.roles.changed";
    pub const SCIM_GROUP_CREATED: &str = "scim.group.created";
    pub const SCIM_GROUP_UPDATED: &str = "scim.group.updated";
    pub const SCIM_GROUP_DELETED: &str = "scim.group.deleted";
    pub const PROOFING_RECORDED: &str = "proofing.recorded";
    pub const PROOFING_REQUIRED: &str = "proofing.required";
    pub const FACTOR_EXPIRY_SET: &str = "factor.expiry.set";
    pub const AUTH_FACTOR_EXPIRED: &str = "auth.factor.expired";
    pub const ACCOUNT_FACTOR_REPLACED: &str = "account.factor.replaced";
    pub const ACCOUNT_FACTOR_REPLACE_REFUSED: &str = "account.factor.replace_refused";
    pub const RECOVERY_OPENED: &str = "recovery.opened";
    pub const RECOVERY_APPROVED: &str = "recovery.approved";
    pub const RECOVERY_DENIED: &str = "recovery.denied";
    pub const RECOVERY_REFUSED: &str = "recovery.refused";
    pub const RECOVERY_COMPLETED: &str = "recovery.completed";
    pub const RECOVERY_LINK_REFUSED: &str = "recovery.link.refused";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One security-relevant event, before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub at: OffsetDateTime,
    pub event_type: EventType,
    /// The person the event is about (a user id or username).
    pub subject: Option<String>,
    /// The administrator or service acting, when it is not the subject.
    pub actor: Option<String>,
    /// Authentication method references (RFC 8176 values) involved.
    pub factors: Vec<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    /// Ties together the events of one login or one request.
    pub correlation_id: Option<String>,
    /// Event-specific data; never secrets.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    /// An event with only the mandatory parts; the builder methods fill in the rest.
    pub fn new(at: OffsetDateTime, event_type: &str, outcome: Outcome) -> Result<Self, InvalidEventType> {
        let checked = EventType::new(event_type)?;
        let mut e = Self::known(at, "system.unknown", outcome);
        e.event_type = checked;
        Ok(e)
    }

    /// For event types from [`types`], which are valid by construction.
    pub fn known(at: OffsetDateTime, event_type: &'static str, outcome: Outcome) -> Self {
        Self {
            at,
            event_type: EventType(event_type.to_owned()),
            subject: None,
            actor: None,
            factors: Vec::new(),
            outcome,
            reason: None,
            client_ip: None,
            user_agent: None,
            device_id: None,
            correlation_id: None,
            details: serde_json::Map::new(),
        }
    }

    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }
    pub fn actor(mut self, s: impl Into<String>) -> Self {
        self.actor = Some(s.into());
        self
    }
    pub fn reason(mut self, s: impl Into<String>) -> Self {
        self.reason = Some(s.into());
        self
    }
    pub fn factor(mut self, amr: impl Into<String>) -> Self {
        self.factors.push(amr.into());
        self
    }
    pub fn client_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }
    pub fn user_agent(mut self, ua: Option<String>) -> Self {
        self.user_agent = ua;
        self
    }
    pub fn device_id(mut self, d: Option<String>) -> Self {
        self.device_id = d;
        self
    }
    pub fn correlation_id(mut self, c: impl Into<String>) -> Self {
        self.correlation_id = Some(c.into());
        self
    }
    pub fn detail(mut self, k: &str, v: impl Into<serde_json::Value>) -> Self {
        self.details.insert(k.to_owned(), v.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_dotted_lowercase_words() {
        assert!(EventType::new("auth.login.succeeded").is_ok());
        assert!(EventType::new("a.b_2").is_ok());
        for bad in ["", "auth", "Auth.login", "auth..login", "auth.login ", "auth.lo-gin", ".a.b"] {
            assert!(EventType::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_known_type_is_valid() {
        use types::*;
        for t in [
            ADMIN_BOOTSTRAP_ISSUED,
            ADMIN_BOOTSTRAP_REDEEMED,
            ADMIN_BOOTSTRAP_REFUSED,
            ADMIN_USER_CREATED,
            ADMIN_FACTOR_ADDED,
            ADMIN_USER_INVITED,
            ADMIN_USER_DISABLED,
            ADMIN_USER_ENABLED,
            ADMIN_USER_UNLOCKED,
            ADMIN_USER_TERMINATED,
            ADMIN_ENROLLMENT_ISSUED,
            ADMIN_TOKEN_CREATED,
            ADMIN_TOKEN_REVOKED,
            ADMIN_FACTOR_IMPORTED,
            ADMIN_FACTOR_REMOVED,
            ADMIN_PASSPHRASE_RESET,
            ADMIN_USERS_IMPORTED,
            AUDIT_CHECKPOINT_SIGNED,
            AUDIT_RETENTION_PRUNED,
            AUDIT_EXPORTED,
            AUDIT_VERIFIED,
            KEYS_ROTATED,
            KEYS_SIGNING_CREATED,
            KEYS_SIGNING_RETIRED,
            SYSTEM_STARTED,
            SYSTEM_STOPPED,
            AUTH_LOGIN_SUCCEEDED,
            AUTH_LOGIN_FAILED,
            AUTH_FACTOR_FAILED,
            AUTH_FACTOR_PASSED,
            AUTH_ACCOUNT_UNLOCKED,
            AUTH_LOGIN_STARTED,
            AUTH_LOGIN_THROTTLED,
            AUTH_ACCOUNT_LOCKED,
            AUTH_RECOVERY_CODE_USED,
            AUTH_WEBAUTHN_COUNTER_REGRESSION,
            AUTH_SESSION_ENDED,
            AUTH_SESSION_EXPIRED,
            AUTH_SESSION_REVOKED,
            AUTH_SESSIONS_REVOKED_ALL,
            ENROLLMENT_STARTED,
            ENROLLMENT_PASSPHRASE_SET,
            ENROLLMENT_FACTOR_VERIFIED,
            ENROLLMENT_FACTOR_REFUSED,
            ENROLLMENT_COMPLETED,
            ACCOUNT_FACTOR_ADDED,
            ACCOUNT_FACTOR_REMOVED,
            ACCOUNT_PASSPHRASE_CHANGED,
            ACCOUNT_RECOVERY_CODES_REGENERATED,
            ADMIN_API_CALLED,
            OIDC_AUTHORIZATION,
            OIDC_GRANT_ISSUED,
            OIDC_GRANT_REVOKED,
            OIDC_TOKEN_REFRESHED,
            OIDC_REFRESH_REUSED,
            OIDC_CODE_REUSED,
            OIDC_LOGOUT_SENT,
            OIDC_CONSENT_GRANTED,
            OIDC_CONSENT_REVOKED,
            OIDC_CLIENT_CREATED,
            OIDC_CLIENT_UPDATED,
            OIDC_CLIENT_DELETED,
            PROOFING_RECORDED,
            PROOFING_REQUIRED,
            FACTOR_EXPIRY_SET,
            AUTH_FACTOR_EXPIRED,
            ACCOUNT_FACTOR_REPLACED,
            ACCOUNT_FACTOR_REPLACE_REFUSED,
            RECOVERY_OPENED,
            RECOVERY_APPROVED,
            RECOVERY_DENIED,
            RECOVERY_REFUSED,
            RECOVERY_COMPLETED,
            RECOVERY_LINK_REFUSED,
        ] {
            assert!(EventType::new(t).is_ok(), "{t}");
        }
    }
}
