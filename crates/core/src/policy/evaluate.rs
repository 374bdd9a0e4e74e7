//! Deciding one request: allow, deny with a reason, or step up to a stronger or fresher
//! authentication.
//!
//! The order of precedence, which the property tests in `tests` pin down:
//! 1. an account that is not active is denied;
//! 2. the first matching `deny` rule decides — deny wins over everything;
//! 3. an action no role of the person grants is denied (least privilege);
//! 4. if no `allow` or `require` rule matches, the request is denied (deny by default);
//! 5. the strictest requirement of the matching rules applies, raised to `aal3` for any
//!    `admin.*` action; each session limit is the strictest that a matching rule sets, or
//!    the default where none sets it;
//! 6. a session below that assurance, or whose last authentication is older than the
//!    reauthentication window (or a rule's `fresh`), gets a step-up; otherwise allow.
//!
//! Assurance enters only in step 6, so more assurance can never turn an allow into a
//! refusal.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use super::compile::{DeviceClass, PartialLimits, Policy, Rule, RuleOutcome, SessionLimits};
use super::roles::is_admin_action;
use crate::device::Posture;
use crate::login::Aal;

/// The action evaluated at sign-in: it needs no permission, and its session limits are the
/// ones a new session gets.
pub const LOGIN_ACTION: &str = "login";

/// The action evaluated when an application asks for a sign-in through OpenID Connect
/// (the resource is its client id). Like `login` it needs no permission: rules decide.
pub const SSO_ACTION: &str = "sso";

/// The person asking.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub username: &'a str,
    /// Roles in force at the time of the request (expired assignments left out).
    pub roles: &'a [String],
    pub privileged: bool,
    /// `false` for invited, disabled and terminated accounts.
    pub active: bool,
    /// Failed sign-in attempts counting towards the current lockout window.
    pub recent_failures: u32,
}

/// The session the request rides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionFacts {
    pub aal: Aal,
    /// When the person last proved who they are (sign-in or step-up).
    pub authenticated_at: OffsetDateTime,
}

/// A registered device that presented its secret. Absent: an unknown device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts<'a> {
    pub name: &'a str,
    pub managed: bool,
    pub trusted: bool,
    pub posture: Posture,
    pub site: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: Option<&'a str>,
    pub subject: Subject<'a>,
    pub session: Option<SessionFacts>,
    pub device: Option<DeviceFacts<'a>>,
    pub ip: Option<IpAddr>,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    Allow,
    StepUp,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::StepUp => "step_up",
            Effect::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Allow, Self::StepUp, Self::Deny].into_iter().find(|e| e.as_str() == s)
    }
}

/// Names of the decisions the policy file does not make itself.
pub mod builtin {
    pub const ACCOUNT_INACTIVE: &str = "builtin:account-inactive";
    pub const NO_PERMISSION: &str = "builtin:no-permission";
    pub const NO_RULE: &str = "builtin:no-rule-allows";
    pub const ADMIN_FLOOR: &str = "builtin:admin-needs-aal3";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    pub effect: Effect,
    /// Why, in words for the person and the log.
    pub reason: &'p str,
    /// The rule that decided: a rule name from the file, or one of [`builtin`].
    pub rule: &'p str,
    /// The assurance the request needs (meaningful for allow and step-up).
    pub required: Aal,
    /// How recent the authentication at `required` must be, when a rule asks for that.
    pub fresh: Option<Duration>,
    pub limits: SessionLimits,
    /// The network segment the request came from, if any.
    pub segment: Option<&'p str>,
}

/// Why a rule did not match: the first condition that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    Action,
    NotAction,
    Resource,
    Role,
    NotRole,
    Network,
    NotNetwork,
    Device,
    DeviceHealth,
    Site,
    Hours,
    Days,
    Privileged,
    RecentFailures,
}

impl Miss {
    pub fn as_str(self) -> &'static str {
        match self {
            Miss::Action => "action not listed",
            Miss::NotAction => "action excluded",
            Miss::Resource => "resource not listed",
            Miss::Role => "no listed role",
            Miss::NotRole => "holds an excluded role",
            Miss::Network => "network not listed",
            Miss::NotNetwork => "network excluded",
            Miss::Device => "device class differs",
            Miss::DeviceHealth => "device health differs",
            Miss::Site => "site not listed",
            Miss::Hours => "outside the hours",
            Miss::Days => "not on a listed day",
            Miss::Privileged => "privilege differs",
            Miss::RecentFailures => "too few recent failures",
        }
    }
}

/// One rule's part in an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'p> {
    pub rule: &'p str,
    pub description: &'p str,
    pub line: usize,
    pub matched: Result<(), Miss>,
    pub outcome: String,
}

/// A decision with every rule's verdict, for `policy explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation<'p> {
    pub decision: Decision<'p>,
    pub steps: Vec<Step<'p>>,
    /// The person's roles that this policy knows, and whether the action is granted by one.
    pub granted: bool,
}

/// What is computed once per request and read by every rule.
struct Facts<'a> {
    roles: u128,
    segment: Option<usize>,
    device: DeviceClass,
    healthy: bool,
    site: Option<&'a str>,
    minute: u16,
    weekday: u8,
}

impl Policy {
    fn facts<'a>(&self, req: &Request<'a>) -> Facts<'a> {
        let mut roles = 0u128;
        for r in req.subject.roles {
            if let Some(i) = self.role_index(r).filter(|i| *i < 128) {
                roles |= 1 << i;
            }
        }
        let (device, healthy, site) = match &req.device {
            None => (DeviceClass::Unknown, false, None),
            Some(d) => {
                let class = if d.trusted {
                    DeviceClass::Trusted
                } else if d.managed {
                    DeviceClass::Managed
                } else {
                    DeviceClass::Registered
                };
                let p = d.posture;
                let fresh = p.checked_in_at.is_some_and(|t| req.now - t <= self.defaults.device_checkin_max_age);
                (class, p.disk_encrypted && p.patched && fresh, d.site)
            }
        };
        let local = req.now.to_offset(self.defaults.utc_offset);
        Facts {
            roles,
            segment: req.ip.and_then(|ip| self.segment_of(ip)),
            device,
            healthy,
            site,
            minute: u16::from(local.hour()) * 60 + u16::from(local.minute()),
            weekday: local.weekday().number_days_from_monday(),
        }
    }

    /// Whether one of the person's roles grants the action. Administrative permissions
    /// count only for privileged accounts.
    fn granted(&self, req: &Request<'_>, facts: &Facts<'_>) -> bool {
        if req.action == LOGIN_ACTION || req.action == SSO_ACTION {
            return true;
        }
        let admin = is_admin_action(req.action);
        if admin && !req.subject.privileged {
            return false;
        }
        self.roles
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 128 && facts.roles & (1 << i) != 0)
            .any(|(_, role)| role.permissions.iter().any(|p| p.matches(req.action)))
    }

    fn check(&self, rule: &Rule, req: &Request<'_>, f: &Facts<'_>) -> Result<(), Miss> {
        fn need(ok: bool, miss: Miss) -> Result<(), Miss> {
            if ok { Ok(()) } else { Err(miss) }
        }
        if let Some(a) = &rule.actions {
            need(a.iter().any(|p| p.matches(req.action)), Miss::Action)?;
        }
        if let Some(a) = &rule.not_actions {
            need(!a.iter().any(|p| p.matches(req.action)), Miss::NotAction)?;
        }
        if let Some(r) = &rule.resources {
            need(req.resource.is_some_and(|res| r.iter().any(|p| p.matches(res))), Miss::Resource)?;
        }
        if let Some(bits) = rule.roles {
            need(f.roles & bits != 0, Miss::Role)?;
        }
        if let Some(bits) = rule.not_roles {
            need(f.roles & bits == 0, Miss::NotRole)?;
        }
        let seg_bit = f.segment.filter(|i| *i < 128).map_or(0, |i| 1u128 << i);
        if let Some(bits) = rule.networks {
            need(seg_bit & bits != 0, Miss::Network)?;
        }
        if let Some(bits) = rule.not_networks {
            need(seg_bit & bits == 0, Miss::NotNetwork)?;
        }
        if let Some(bits) = rule.devices {
            need(bits & f.device.bit() != 0, Miss::Device)?;
        }
        if let Some(h) = rule.device_healthy {
            need(f.healthy == h, Miss::DeviceHealth)?;
        }
        if let Some(sites) = &rule.sites {
            need(f.site.is_some_and(|s| sites.iter().any(|x| x == s)), Miss::Site)?;
        }
        if let Some((from, to)) = rule.hours {
            let inside = if from < to { (from..to).contains(&f.minute) } else { f.minute >= from || f.minute < to };
            need(inside, Miss::Hours)?;
        }
        if let Some(days) = rule.days {
            need(days & (1 << f.weekday) != 0, Miss::Days)?;
        }
        if let Some(p) = rule.privileged {
            need(req.subject.privileged == p, Miss::Privileged)?;
        }
        if let Some(n) = rule.min_recent_failures {
            need(req.subject.recent_failures >= n, Miss::RecentFailures)?;
        }
        Ok(())
    }

    /// Decides one request. Pure: the same policy and request always give the same answer.
    pub fn evaluate<'p>(&'p self, req: &Request<'_>) -> Decision<'p> {
        let facts = self.facts(req);
        self.decide(req, &facts)
    }

    fn decide<'p>(&'p self, req: &Request<'_>, facts: &Facts<'_>) -> Decision<'p> {
        let segment = facts.segment.map(|i| self.segments[i].name.as_str());
        let deny = |reason: &'p str, rule: &'p str| Decision {
            effect: Effect::Deny,
            reason,
            rule,
            required: Aal::Aal1,
            fresh: None,
            limits: self.defaults.limits,
            segment,
        };
        if !req.subject.active {
            return deny("the account is not active", builtin::ACCOUNT_INACTIVE);
        }
        let mut required = Aal::Aal1;
        let mut decider: Option<&'p Rule> = None;
        let mut fresh: Option<Duration> = None;
        let mut set = PartialLimits::default();
        for rule in &self.rules {
            if self.check(rule, req, facts).is_err() {
                continue;
            }
            match &rule.outcome {
                RuleOutcome::Deny(reason) => return deny(reason, &rule.name),
                RuleOutcome::Allow => {
                    decider.get_or_insert(rule);
                }
                RuleOutcome::Require { assurance, fresh: f } => {
                    if decider.is_none() || *assurance > required {
                        decider = Some(rule);
                    }
                    required = required.max(*assurance);
                    if let Some(f) = f {
                        fresh = Some(fresh.map_or(*f, |x| x.min(*f)));
                    }
                }
            }
            if let Some(s) = &rule.session {
                set.tighten(s);
            }
        }
        if !self.granted(req, facts) {
            return deny("none of the person's roles grants this action", builtin::NO_PERMISSION);
        }
        let Some(decider) = decider else {
            return deny("no rule allows this request", builtin::NO_RULE);
        };
        let limits = SessionLimits::or(&set, &self.defaults.limits);
        let mut rule = decider.name.as_str();
        // NIST SP 800-63B AAL3 / BRIEF A4: administration always needs a phishing-resistant
        // factor, whatever the file says.
        if is_admin_action(req.action) && required < Aal::Aal3 {
            required = Aal::Aal3;
            rule = builtin::ADMIN_FLOOR;
        }
        let decision = |effect, reason: &'p str| Decision { effect, reason, rule, required, fresh, limits, segment };
        let Some(session) = req.session else {
            // Not signed in yet (the `login` decision): what a sign-in here must reach, and
            // the rule that says so.
            return decision(Effect::StepUp, "sign-in needed");
        };
        if session.aal < required {
            return decision(Effect::StepUp, "a stronger authentication is needed");
        }
        let age = req.now - session.authenticated_at;
        if age > limits.reauthenticate_after || fresh.is_some_and(|f| age > f) {
            return decision(Effect::StepUp, "a more recent authentication is needed");
        }
        decision(Effect::Allow, "allowed")
    }

    /// The decision, and every rule's verdict on the request in file order.
    pub fn explain<'p>(&'p self, req: &Request<'_>) -> Explanation<'p> {
        let facts = self.facts(req);
        let steps = self
            .rules
            .iter()
            .map(|rule| Step {
                rule: &rule.name,
                description: &rule.description,
                line: rule.line,
                matched: self.check(rule, req, &facts),
                outcome: match &rule.outcome {
                    RuleOutcome::Allow => "allow".to_owned(),
                    RuleOutcome::Deny(r) => format!("deny ({r})"),
                    RuleOutcome::Require { assurance, fresh: None } => format!("require {}", assurance.as_str()),
                    RuleOutcome::Require { assurance, fresh: Some(f) } => {
                        format!("require {} within {}", assurance.as_str(), super::document::format_duration(*f))
                    }
                },
            })
            .collect();
        Explanation { decision: self.decide(req, &facts), steps, granted: self.granted(req, &facts) }
    }
}
