//! Roles named after job functions, and the permission names they grant (A1).
//!
//! A permission is a dotted name (`ephi.read`, `admin.users`); an action asked of the
//! policy is allowed only if one of the person's roles grants a permission matching it.
//! Permissions under `admin.` are administrative: they count only for privileged accounts
//! and always need a phishing-resistant factor, whatever the rules say (A4).

/// The namespace of administrative permissions.
pub const ADMIN_PREFIX: &str = "admin.";

/// The role set used when a policy names none of its own: (name, description, permissions).
pub const DEFAULT_ROLES: &[(&str, &str, &[&str])] = &[
    (
        "physician",
        "Physicians: read and chart, export records, sign controlled-substance orders",
        &["ephi.read", "ephi.write", "ephi.export", "epcs.sign"],
    ),
    ("nurse", "Nurses: read and chart", &["ephi.read", "ephi.write"]),
    (
        "pharmacist",
        "Pharmacists: read records, verify and dispense",
        &["ephi.read", "pharmacy.verify", "pharmacy.dispense"],
    ),
    ("registrar", "Registration and admissions: demographics only", &["demographics.read", "demographics.write"]),
    (
        "it-admin",
        "IT administrators: accounts, devices and applications",
        &["admin.users", "admin.devices", "admin.clients"],
    ),
    (
        "security-admin",
        "Security administrators: policy, keys and accounts",
        &["admin.policy", "admin.keys", "admin.users", "audit.read", "recovery.approve"],
    ),
    ("auditor", "Compliance and audit: read the audit trail and reports", &["audit.read", "reports.read"]),
    (
        "helpdesk",
        "Help desk: unlock accounts, verify identities and open factor recovery",
        &["admin.helpdesk", "proofing.record", "recovery.open"],
    ),
    ("vendor-support", "Named vendor staff: their systems, through the gateway only", &["gateway.vendor"]),
];

/// A permission or action name, or a family of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*`
    Any,
    /// `ephi.*`, kept as `ephi.` (the dot included, so `ephi.*` does not match `ephimeral`).
    Prefix(Box<str>),
    Exact(Box<str>),
}

impl Pattern {
    /// Dotted lowercase words, optionally ending in `.*`; or `*` alone.
    pub fn parse(s: &str) -> Option<Pattern> {
        if s == "*" {
            return Some(Pattern::Any);
        }
        let (body, prefix) = match s.strip_suffix(".*") {
            Some(b) => (b, true),
            None => (s, false),
        };
        let ok = !body.is_empty()
            && body.len() <= 128
            && body.split('.').all(|w| {
                !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-:".contains(&b))
            });
        if !ok {
            return None;
        }
        Some(if prefix { Pattern::Prefix(format!("{body}.").into()) } else { Pattern::Exact(body.into()) })
    }

    /// Resource patterns are freer (`patient/123`, `Patient/*`): printable ASCII without
    /// spaces, with `*` only at the end meaning "starting with".
    pub fn parse_resource(s: &str) -> Option<Pattern> {
        if s == "*" {
            return Some(Pattern::Any);
        }
        let (body, prefix) = match s.strip_suffix('*') {
            Some(b) => (b, true),
            None => (s, false),
        };
        let ok = !body.is_empty() && body.len() <= 256 && body.bytes().all(|b| b.is_ascii_graphic() && b != b'*');
        if !ok {
            return None;
        }
        Some(if prefix { Pattern::Prefix(body.into()) } else { Pattern::Exact(body.into()) })
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => name.starts_with(&**p),
            Pattern::Exact(e) => **e == *name,
        }
    }

    /// Whether some `admin.*` action would match.
    pub fn reaches_admin(&self) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => p.starts_with(ADMIN_PREFIX) || ADMIN_PREFIX.starts_with(&**p),
            Pattern::Exact(e) => e.starts_with(ADMIN_PREFIX),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Prefix(p) if p.ends_with('.') => write!(f, "{p}*"),
            Pattern::Prefix(p) => write!(f, "{p}*"),
            Pattern::Exact(e) => f.write_str(e),
        }
    }
}

/// Whether an action is administrative.
pub fn is_admin_action(action: &str) -> bool {
    action.starts_with(ADMIN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_families() {
        let p = Pattern::parse("ephi.*").unwrap();
        assert!(p.matches("ephi.read") && p.matches("ephi.export.bulk"));
        assert!(!p.matches("ephi") && !p.matches("ephimeral.read"));
        assert!(Pattern::parse("ephi.read").unwrap().matches("ephi.read"));
        assert!(!Pattern::parse("ephi.read").unwrap().matches("ephi.reader"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        for bad in ["", ".", "ephi.", "ephi..read", "ephi.*.read", "Ephi.read", "ephi read", "*.read"] {
            assert_eq!(Pattern::parse(bad), None, "{bad}");
        }
        assert_eq!(Pattern::parse("ephi.*").unwrap().to_string(), "ephi.*");
    }

    #[test]
    fn resources_match_by_prefix() {
        let p = Pattern::parse_resource("Patient/*").unwrap();
        assert!(p.matches("Patient/123") && !p.matches("Practitioner/1"));
        assert_eq!(Pattern::parse_resource("a*b"), None);
        assert_eq!(Pattern::parse_resource("has space"), None);
    }

    #[test]
    fn administrative_reach_is_conservative() {
        for (p, admin) in
            [("admin.users", true), ("admin.*", true), ("*", true), ("ephi.*", false), ("audit.read", false)]
        {
            assert_eq!(Pattern::parse(p).unwrap().reaches_admin(), admin, "{p}");
        }
        assert!(is_admin_action("admin.policy") && !is_admin_action("administrator"));
    }

    #[test]
    fn default_roles_parse() {
        for (name, _, perms) in DEFAULT_ROLES {
            assert!(crate::identity::valid_role(name));
            assert!(perms.iter().all(|p| Pattern::parse(p).is_some()), "{name}");
        }
    }
}
