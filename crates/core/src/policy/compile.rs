//! Checking a policy file and turning it into the form the evaluator runs.
//!
//! Every problem is reported with its line, all at once, so an engineer fixes a file in one
//! pass. A file with any problem is refused whole: there is no partial policy.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_spanned::Spanned;
use time::{Duration, UtcOffset};

use super::document::{RawPolicy, RawRule, RawSession, line_of, parse_duration};
use super::roles::{ADMIN_PREFIX, DEFAULT_ROLES, Pattern};
use crate::identity::ADMIN_ROLE;
use crate::login::Aal;

/// Roles and network segments are matched as bit sets; a policy may name up to this many
/// of each.
pub const MAX_ROLES: usize = 128;
pub const MAX_SEGMENTS: usize = 128;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PolicyErrors(pub Vec<Problem>);

/// How long a session may live, and how old its last authentication may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub reauthenticate_after: Duration,
}

impl SessionLimits {
    /// Each limit from the rules that set it, the defaults for the rest.
    pub(crate) fn or(set: &PartialLimits, defaults: &SessionLimits) -> SessionLimits {
        SessionLimits {
            idle_timeout: set.idle_timeout.unwrap_or(defaults.idle_timeout),
            lifetime: set.lifetime.unwrap_or(defaults.lifetime),
            reauthenticate_after: set.reauthenticate_after.unwrap_or(defaults.reauthenticate_after),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PartialLimits {
    pub idle_timeout: Option<Duration>,
    pub lifetime: Option<Duration>,
    pub reauthenticate_after: Option<Duration>,
}

impl PartialLimits {
    /// The stricter of each limit that either sets.
    pub(crate) fn tighten(&mut self, other: &PartialLimits) {
        fn min(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        self.idle_timeout = min(self.idle_timeout, other.idle_timeout);
        self.lifetime = min(self.lifetime, other.lifetime);
        self.reauthenticate_after = min(self.reauthenticate_after, other.reauthenticate_after);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Defaults {
    pub limits: SessionLimits,
    pub device_checkin_max_age: Duration,
    pub utc_offset: UtcOffset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub networks: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: Vec<Pattern>,
    /// Whether holders need an identity proofing record before they enroll a factor that
    /// reaches aal2 or more (L1). Defaults to [`Role::administrative`].
    pub require_proofing: bool,
}

impl Role {
    /// Holds a permission that can reach an `admin.*` action: only privileged accounts may.
    pub fn administrative(&self) -> bool {
        self.permissions.iter().any(Pattern::reaches_admin)
    }
}

/// What a request's device is; every device is exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceClass {
    /// No valid device secret, or a retired device.
    Unknown,
    /// Registered, but neither managed nor trusted.
    Registered,
    /// Managed by IT, not trusted for long sessions.
    Managed,
    /// A trusted clinical workstation.
    Trusted,
}

impl DeviceClass {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "unknown" => Some(Self::Unknown),
            "registered" => Some(Self::Registered),
            "managed" => Some(Self::Managed),
            "trusted" => Some(Self::Trusted),
            _ => None,
        }
    }

    pub(crate) fn bit(self) -> u8 {
        1 << self as u8
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RuleOutcome {
    Allow,
    Deny(String),
    Require { assurance: Aal, fresh: Option<Duration> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub name: String,
    pub description: String,
    pub line: usize,
    pub actions: Option<Vec<Pattern>>,
    pub not_actions: Option<Vec<Pattern>>,
    pub resources: Option<Vec<Pattern>>,
    pub roles: Option<u128>,
    pub not_roles: Option<u128>,
    pub networks: Option<u128>,
    pub not_networks: Option<u128>,
    /// Bit set of [`DeviceClass::bit`].
    pub devices: Option<u8>,
    pub device_healthy: Option<bool>,
    pub sites: Option<Vec<String>>,
    /// Minutes of the day, `[from, to)`; wraps past midnight when `from > to`.
    pub hours: Option<(u16, u16)>,
    /// Bit 0 = Monday.
    pub days: Option<u8>,
    pub privileged: Option<bool>,
    pub min_recent_failures: Option<u32>,
    pub outcome: RuleOutcome,
    pub session: Option<PartialLimits>,
}

/// A checked policy, ready to evaluate. Cheap to share behind an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) defaults: Defaults,
    pub(crate) segments: Vec<Segment>,
    pub(crate) roles: Vec<Role>,
    pub(crate) rules: Vec<Rule>,
}

impl Policy {
    /// Parses and checks a policy file.
    pub fn parse(source: &str) -> Result<Policy, PolicyErrors> {
        let raw: RawPolicy = toml_edit::de::from_str(source).map_err(|e| {
            let line = e.span().map(|s| line_of(source, s.start));
            PolicyErrors(vec![Problem { line, message: e.message().trim().to_owned() }])
        })?;
        Compiler { source, problems: Vec::new() }.compile(raw)
    }

    /// No rules and the default roles: denies every request.
    pub fn empty() -> Policy {
        let mut c = Compiler { source: "", problems: Vec::new() };
        let raw = RawPolicy::default();
        Policy { defaults: c.defaults(&raw), segments: Vec::new(), roles: c.roles(&raw), rules: Vec::new() }
    }

    /// Things that compile but are probably not meant, for `policy check` and `propose` to
    /// show before anyone approves the file.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for (action, what) in
            [(super::evaluate::LOGIN_ACTION, "sign in"), (super::evaluate::SSO_ACTION, "sign in to applications")]
        {
            let could = self.rules.iter().any(|r| {
                !matches!(r.outcome, RuleOutcome::Deny(_))
                    && r.actions.as_ref().is_none_or(|a| a.iter().any(|p| p.matches(action)))
                    && r.not_actions.as_ref().is_none_or(|a| !a.iter().any(|p| p.matches(action)))
            });
            if !could {
                w.push(format!(
                    "no rule allows the action `{action}`: nobody will be able to {what} while this version is in force"
                ));
            }
        }
        w
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    pub fn default_limits(&self) -> SessionLimits {
        self.defaults.limits
    }

    /// The most specific segment containing `ip` (longest prefix), so that `internet =
    /// ["0.0.0.0/0"]` can sit beside narrower ranges without their order mattering.
    pub fn segment_of(&self, ip: IpAddr) -> Option<usize> {
        self.segments
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.networks.iter().filter(|n| n.contains(&ip)).map(move |n| (n.prefix_len(), i)))
            .max_by_key(|(len, i)| (*len, std::cmp::Reverse(*i)))
            .map(|(_, i)| i)
    }

    pub(crate) fn role_index(&self, name: &str) -> Option<usize> {
        self.roles.iter().position(|r| r.name == name)
    }
}

struct Compiler<'s> {
    source: &'s str,
    problems: Vec<Problem>,
}

impl Compiler<'_> {
    fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(Problem { line: Some(line), message: message.into() });
    }

    fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.source, s.span().start)
    }

    fn duration(&mut self, line: usize, what: &str, s: &str) -> Option<Duration> {
        let d = parse_duration(s);
        if d.is_none() {
            self.problem(line, format!("{what}: {s:?} is not a duration such as \"30m\", \"8h\" or \"7d\""));
        }
        d
    }

    fn compile(mut self, raw: RawPolicy) -> Result<Policy, PolicyErrors> {
        let defaults = self.defaults(&raw);
        let segments = self.segments(&raw);
        let roles = self.roles(&raw);
        let role_names: BTreeMap<&str, usize> = roles.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect();
        let segment_names: BTreeMap<&str, usize> =
            segments.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        let mut seen = BTreeSet::new();
        let mut rules = Vec::new();
        for spanned in &raw.rules {
            let line = self.line(spanned);
            let r = spanned.get_ref();
            if !seen.insert(r.name.clone()) {
                self.problem(line, format!("rule {:?} is named twice; rule names must be unique", r.name));
            }
            if let Some(rule) = self.rule(line, r, &role_names, &segment_names) {
                rules.push(rule);
            }
        }
        if self.problems.is_empty() {
            Ok(Policy { defaults, segments, roles, rules })
        } else {
            self.problems.sort_by_key(|p| p.line);
            Err(PolicyErrors(self.problems))
        }
    }

    fn defaults(&mut self, raw: &RawPolicy) -> Defaults {
        let d = &raw.defaults;
        let mut get = |v: &Option<Spanned<String>>, what: &str, fallback: Duration| match v {
            Some(s) => {
                let line = line_of(self.source, s.span().start);
                self.duration(line, what, s.get_ref()).unwrap_or(fallback)
            }
            None => fallback,
        };
        // The product's defaults: HIPAA automatic logoff at 15 minutes of inactivity, a
        // 12-hour shift, and NIST SP 800-63B's reauthentication at least every 12 hours.
        let limits = SessionLimits {
            idle_timeout: get(&d.idle_timeout, "defaults.idle_timeout", Duration::minutes(15)),
            lifetime: get(&d.lifetime, "defaults.lifetime", Duration::hours(12)),
            reauthenticate_after: get(&d.reauthenticate_after, "defaults.reauthenticate_after", Duration::hours(12)),
        };
        let device_checkin_max_age =
            get(&d.device_checkin_max_age, "defaults.device_checkin_max_age", Duration::days(1));
        let utc_offset = match &d.utc_offset {
            None => UtcOffset::UTC,
            Some(s) => {
                let fmt = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
                UtcOffset::parse(s.get_ref(), &fmt).unwrap_or_else(|_| {
                    let line = self.line(s);
                    self.problem(
                        line,
                        format!("defaults.utc_offset: {:?} is not an offset such as \"+01:00\"", s.get_ref()),
                    );
                    UtcOffset::UTC
                })
            }
        };
        Defaults { limits, device_checkin_max_age, utc_offset }
    }

    fn segments(&mut self, raw: &RawPolicy) -> Vec<Segment> {
        if raw.segments.len() > MAX_SEGMENTS {
            self.problems.push(Problem { line: None, message: format!("more than {MAX_SEGMENTS} segments") });
        }
        let mut out = Vec::new();
        for (name, nets) in &raw.segments {
            let line = self.line(nets);
            if !valid_name(name) {
                self.problem(line, format!("segment {name:?}: names are lowercase letters, digits, '.', '_' and '-'"));
            }
            let mut networks = Vec::new();
            for n in nets.get_ref() {
                match n.parse::<IpNet>().or_else(|_| n.parse::<IpAddr>().map(IpNet::from)) {
                    Ok(net) => networks.push(net.trunc()),
                    Err(_) => self.problem(line, format!("segment {name:?}: {n:?} is not an address or a CIDR range")),
                }
            }
            if networks.is_empty() {
                self.problem(line, format!("segment {name:?} has no address ranges"));
            }
            out.push(Segment { name: name.clone(), networks });
        }
        out
    }

    fn roles(&mut self, raw: &RawPolicy) -> Vec<Role> {
        let mut roles = self.declared_roles(raw);
        // The bootstrap administrator holds `admin`; keep it meaning what it always meant
        // unless the file defines it otherwise.
        if !roles.iter().any(|r| r.name == ADMIN_ROLE) {
            roles.push(Role {
                name: ADMIN_ROLE.to_owned(),
                description: "Wardgate administrator (built in): every administrative permission".to_owned(),
                permissions: vec![Pattern::Prefix(ADMIN_PREFIX.into()), Pattern::Exact("audit.read".into())],
                require_proofing: true,
            });
        }
        roles
    }

    fn declared_roles(&mut self, raw: &RawPolicy) -> Vec<Role> {
        if raw.roles.is_empty() {
            return DEFAULT_ROLES
                .iter()
                .map(|(name, description, perms)| {
                    let permissions: Vec<Pattern> = perms.iter().filter_map(|p| Pattern::parse(p)).collect();
                    let require_proofing = permissions.iter().any(Pattern::reaches_admin);
                    Role {
                        name: (*name).to_owned(),
                        description: (*description).to_owned(),
                        permissions,
                        require_proofing,
                    }
                })
                .collect();
        }
        // One place is kept for the built-in `admin` role.
        if raw.roles.len() >= MAX_ROLES {
            self.problems.push(Problem { line: None, message: format!("more than {} roles", MAX_ROLES - 1) });
        }
        let mut out = Vec::new();
        for (name, role) in &raw.roles {
            let line = self.line(role);
            if !crate::identity::valid_role(name) {
                self.problem(
                    line,
                    format!("role {name:?}: names are lowercase letters, digits, '.', '_', '-' and ':'"),
                );
            }
            let mut permissions = Vec::new();
            for p in &role.get_ref().permissions {
                match Pattern::parse(p) {
                    Some(pat) => permissions.push(pat),
                    None => self.problem(
                        line,
                        format!("role {name:?}: {p:?} is not a permission such as \"ephi.read\" or \"ephi.*\""),
                    ),
                }
            }
            // NIST SP 800-63A: who administers identities is proofed first, unless the
            // policy says otherwise for this role.
            let require_proofing =
                role.get_ref().require_proofing.unwrap_or_else(|| permissions.iter().any(Pattern::reaches_admin));
            out.push(Role {
                name: name.clone(),
                description: role.get_ref().description.clone(),
                permissions,
                require_proofing,
            });
        }
        out
    }

    fn patterns(&mut self, line: usize, rule: &str, field: &str, list: &Option<Vec<String>>) -> Option<Vec<Pattern>> {
        let list = list.as_ref()?;
        if list.is_empty() {
            self.problem(line, format!("rule {rule:?}: {field} is empty, so the rule could never match"));
        }
        Some(
            list.iter()
                .filter_map(|p| {
                    let pat = if field == "resources" { Pattern::parse_resource(p) } else { Pattern::parse(p) };
                    if pat.is_none() {
                        self.problem(
                            line,
                            format!("rule {rule:?}: {field}: {p:?} is not a name, a name ending in \".*\", or \"*\""),
                        );
                    }
                    pat
                })
                .collect(),
        )
    }

    fn names(
        &mut self,
        line: usize,
        rule: &str,
        field: &str,
        list: &Option<Vec<String>>,
        known: &BTreeMap<&str, usize>,
        kind: &str,
    ) -> Option<u128> {
        let list = list.as_ref()?;
        if list.is_empty() {
            self.problem(line, format!("rule {rule:?}: {field} is empty, so the rule could never match"));
        }
        let mut bits = 0u128;
        for n in list {
            match known.get(n.as_str()) {
                Some(i) if *i < 128 => bits |= 1 << i,
                _ => self.problem(line, format!("rule {rule:?}: {field}: unknown {kind} {n:?}")),
            }
        }
        Some(bits)
    }

    fn rule(
        &mut self,
        line: usize,
        r: &RawRule,
        roles: &BTreeMap<&str, usize>,
        segments: &BTreeMap<&str, usize>,
    ) -> Option<Rule> {
        let before = self.problems.len();
        let name = r.name.as_str();
        if !valid_name(name) {
            self.problem(line, format!("rule {name:?}: names are lowercase letters, digits, '.', '_' and '-'"));
        }
        let devices = r.devices.as_ref().map(|list| {
            if list.is_empty() {
                self.problem(line, format!("rule {name:?}: devices is empty, so the rule could never match"));
            }
            let mut bits = 0u8;
            for d in list {
                match DeviceClass::parse(d) {
                    Some(c) => bits |= c.bit(),
                    None => self.problem(line, format!("rule {name:?}: devices: {d:?}; expected \"unknown\", \"registered\", \"managed\" or \"trusted\"")),
                }
            }
            bits
        });
        let hours = r.hours.as_deref().and_then(|h| {
            let parsed = parse_hours(h);
            if parsed.is_none() {
                self.problem(line, format!("rule {name:?}: hours = {h:?}; expected \"HH:MM-HH:MM\""));
            }
            parsed
        });
        let days = r.days.as_ref().map(|ds| {
            let mut bits = 0u8;
            for d in ds {
                match ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().position(|x| x == d) {
                    Some(i) => bits |= 1 << i,
                    None => self.problem(line, format!("rule {name:?}: days: {d:?} is not one of mon, tue, … sun")),
                }
            }
            bits
        });
        let outcome = match (r.allow, &r.deny, &r.require) {
            (Some(true), None, None) => Some(RuleOutcome::Allow),
            (None, Some(reason), None) if !reason.trim().is_empty() => Some(RuleOutcome::Deny(reason.clone())),
            (None, None, Some(level)) => {
                let assurance = match level.as_str() {
                    "aal1" => Some(Aal::Aal1),
                    "aal2" => Some(Aal::Aal2),
                    "aal3" | "phishing-resistant" => Some(Aal::Aal3),
                    _ => None,
                };
                let fresh = r.fresh.as_deref().and_then(|f| self.duration(line, &format!("rule {name:?}: fresh"), f));
                match assurance {
                    Some(assurance) => Some(RuleOutcome::Require { assurance, fresh }),
                    None => {
                        self.problem(
                            line,
                            format!("rule {name:?}: require = {level:?}; expected \"aal1\", \"aal2\" or \"aal3\""),
                        );
                        None
                    }
                }
            }
            (Some(false), None, None) => {
                self.problem(line, format!("rule {name:?}: allow = false means nothing; write deny = \"reason\""));
                None
            }
            (None, Some(_), None) => {
                self.problem(line, format!("rule {name:?}: deny needs a reason people can read"));
                None
            }
            (None, None, None) => {
                self.problem(
                    line,
                    format!(
                        "rule {name:?} has no outcome: give one of allow = true, deny = \"reason\", require = \"aal…\""
                    ),
                );
                None
            }
            _ => {
                self.problem(
                    line,
                    format!("rule {name:?} has more than one outcome: give one of allow, deny, require"),
                );
                None
            }
        };
        if r.fresh.is_some() && r.require.is_none() {
            self.problem(line, format!("rule {name:?}: fresh only goes with require"));
        }
        let session = r.session.as_ref().map(|s| self.session(line, name, s));
        let rule = Rule {
            name: name.to_owned(),
            description: r.description.clone(),
            line,
            actions: self.patterns(line, name, "actions", &r.actions),
            not_actions: self.patterns(line, name, "not_actions", &r.not_actions),
            resources: self.patterns(line, name, "resources", &r.resources),
            roles: self.names(line, name, "roles", &r.roles, roles, "role"),
            not_roles: self.names(line, name, "not_roles", &r.not_roles, roles, "role"),
            networks: self.names(line, name, "networks", &r.networks, segments, "segment"),
            not_networks: self.names(line, name, "not_networks", &r.not_networks, segments, "segment"),
            devices,
            device_healthy: r.device_healthy,
            sites: r.sites.clone(),
            hours,
            days,
            privileged: r.privileged,
            min_recent_failures: r.min_recent_failures,
            outcome: outcome.unwrap_or(RuleOutcome::Allow),
            session,
        };
        // A rule without conditions matches every request. That is sometimes meant (a
        // catch-all deny, a global floor), but never by accident: it must say so.
        let conditional = rule.has_conditions();
        if !conditional && !r.match_all {
            self.problem(line, format!("rule {name:?} has no conditions and would match every request; add match_all = true if that is meant"));
        }
        if conditional && r.match_all {
            self.problem(line, format!("rule {name:?}: match_all = true goes only on a rule without conditions"));
        }
        (self.problems.len() == before).then_some(rule)
    }

    fn session(&mut self, line: usize, rule: &str, s: &RawSession) -> PartialLimits {
        let mut d = |v: &Option<String>, what: &str| {
            v.as_deref().and_then(|x| self.duration(line, &format!("rule {rule:?}: session.{what}"), x))
        };
        PartialLimits {
            idle_timeout: d(&s.idle_timeout, "idle_timeout"),
            lifetime: d(&s.lifetime, "lifetime"),
            reauthenticate_after: d(&s.reauthenticate_after, "reauthenticate_after"),
        }
    }
}

impl Rule {
    fn has_conditions(&self) -> bool {
        self.actions.is_some()
            || self.not_actions.is_some()
            || self.resources.is_some()
            || self.roles.is_some()
            || self.not_roles.is_some()
            || self.networks.is_some()
            || self.not_networks.is_some()
            || self.devices.is_some()
            || self.device_healthy.is_some()
            || self.sites.is_some()
            || self.hours.is_some()
            || self.days.is_some()
            || self.privileged.is_some()
            || self.min_recent_failures.is_some()
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        // 24:00 closes a day.
        (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
    };
    let (from, to) = (minute(a)?, minute(b)?);
    (from != to).then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<Problem> {
        Policy::parse(src).expect_err("should be refused").0
    }

    #[test]
    fn an_empty_policy_is_valid_and_has_the_default_roles() {
        let p = Policy::parse("").unwrap();
        assert!(p.rules.is_empty());
        assert!(p.role("physician").is_some() && p.role("auditor").is_some());
        // The built-in administrator role is always there, and administrative.
        assert!(p.role("admin").is_some_and(Role::administrative));
        assert_eq!(p.roles().len(), 10);
        assert_eq!(p.default_limits().idle_timeout, Duration::minutes(15));
    }

    #[test]
    fn a_policy_that_locks_everyone_out_says_so() {
        let p = Policy::parse("[[rule]]\nname = \"a\"\nactions = [\"ephi.read\"]\nallow = true\n").unwrap();
        let w = p.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("`login`"));
        let p = Policy::parse("[[rule]]\nname = \"a\"\nactions = [\"login\", \"sso\"]\nrequire = \"aal2\"\n").unwrap();
        assert!(p.warnings().is_empty());
        let example = Policy::parse(include_str!("../../../../docs/policy.example.toml")).unwrap();
        assert!(example.warnings().is_empty(), "{:?}", example.warnings());
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let e = errors("[defaults]\nidle_timeout = \"15m\"\n[[rule]\n");
        assert_eq!(e[0].line, Some(3), "{e:?}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_line() {
        let e = errors("[[rule]]\nname = \"a\"\nactoins = [\"x\"]\nallow = true\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("actoins"), "{e:?}");
        assert!(e[0].line.is_some());
    }

    #[test]
    fn unknown_roles_and_segments_are_refused_with_the_rule_line() {
        let src = "[segments]\nvpn = [\"10.0.0.0/8\"]\n\n[[rule]]\nname = \"a\"\nroles = [\"surgeon\"]\nallow = true\n\n[[rule]]\nname = \"b\"\nnetworks = [\"clinical-vlan\"]\nallow = true\n";
        let e = errors(src);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].line, Some(4));
        assert!(e[0].message.contains("unknown role \"surgeon\""));
        assert_eq!(e[1].line, Some(9));
        assert!(e[1].message.contains("unknown segment \"clinical-vlan\""));
    }

    #[test]
    fn a_rule_without_conditions_must_say_match_all() {
        assert!(errors("[[rule]]\nname = \"everything\"\nallow = true\n")[0].message.contains("match_all"));
        let p = Policy::parse("[[rule]]\nname = \"floor\"\nmatch_all = true\nrequire = \"aal2\"\n").unwrap();
        assert_eq!(p.rules.len(), 1);
    }

    #[test]
    fn outcomes_are_exactly_one() {
        for (body, want) in [
            ("allow = true\ndeny = \"x\"", "more than one outcome"),
            ("allow = false", "allow = false"),
            ("", "no outcome"),
            ("deny = \" \"", "reason"),
            ("require = \"aal4\"", "require"),
            ("allow = true\nfresh = \"5m\"", "fresh only goes with require"),
        ] {
            let src = format!("[[rule]]\nname = \"r\"\nactions = [\"a\"]\n{body}\n");
            let e = errors(&src);
            assert!(e.iter().any(|p| p.message.contains(want)), "{body}: {e:?}");
        }
    }

    #[test]
    fn bad_values_are_each_reported() {
        let src = "[defaults]\nidle_timeout = \"soon\"\n[segments]\nlan = [\"10.0.0.0/33\"]\n[[rule]]\nname = \"Bad Name\"\nhours = \"7-19\"\ndays = [\"monday\"]\ndevices = [\"laptop\"]\nactions = [\"ephi.*.read\"]\nrequire = \"aal2\"\nsession = { idle_timeout = \"forever\" }\n";
        let e = errors(src);
        for want in ["idle_timeout", "CIDR", "names are", "hours", "monday", "laptop", "ephi.*.read", "forever"] {
            assert!(e.iter().any(|p| p.message.contains(want)), "{want}: {e:?}");
        }
    }

    #[test]
    fn duplicate_rule_names_are_refused() {
        let src = "[[rule]]\nname = \"a\"\nactions = [\"x\"]\nallow = true\n[[rule]]\nname = \"a\"\nactions = [\"y\"]\nallow = true\n";
        assert!(errors(src)[0].message.contains("named twice"));
    }

    #[test]
    fn the_most_specific_segment_wins() {
        let p = Policy::parse(
            "[segments]\ninternet = [\"0.0.0.0/0\"]\nclinical = [\"10.20.0.0/16\"]\nicu = [\"10.20.5.0/24\"]\n",
        )
        .unwrap();
        let name = |ip: &str| p.segment_of(ip.parse().unwrap()).map(|i| p.segments[i].name.as_str());
        assert_eq!(name("10.20.5.9"), Some("icu"));
        assert_eq!(name("10.20.1.1"), Some("clinical"));
        assert_eq!(name("192.0.2.1"), Some("internet"));
        assert_eq!(name("2001:db8::1"), None);
    }

    #[test]
    fn hours_wrap_past_midnight() {
        assert_eq!(parse_hours("07:00-19:00"), Some((420, 1140)));
        assert_eq!(parse_hours("19:00-07:00"), Some((1140, 420)));
        assert_eq!(parse_hours("00:00-24:00"), Some((0, 1440)));
        assert_eq!(parse_hours("07:00-07:00"), None);
        assert_eq!(parse_hours("25:00-07:00"), None);
    }
}
