//! The effective configuration, its safe defaults and its validation.
//!
//! Loading (file, `WARDGATE_*` environment, flags) happens at the edge; this module only
//! says what the settings are and which combinations are acceptable.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite database, key file and node identity live.
    pub data_dir: PathBuf,
    /// `postgres://…` for several nodes on one database; unset means SQLite in `data_dir`.
    pub database: Option<String>,
    /// The key-encryption key file; unset means `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// This node's name in audit records; unset means one generated once and kept in `data_dir`.
    pub node_id: Option<String>,
    /// The URL people reach this server at, for links it prints; unset means derived from `listen`.
    pub public_url: Option<String>,
    pub server: ServerSettings,
    pub audit: AuditSettings,
    pub auth: AuthSettings,
    pub oidc: OidcSettings,
    pub policy: PolicySettings,
    pub gateway: GatewaySettings,
    pub governance: crate::governance::settings::GovernanceSettings,
    pub scim: ScimSettings,
    pub log: LogSettings,
}

/// `[scim]`: provisioning from the HR system (RFC 7644).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScimSettings {
    /// SCIM group display name → the roles its members hold. Every role named here is
    /// managed by SCIM alone (see `scim::group`).
    pub group_roles: std::collections::BTreeMap<String, Vec<String>>,
}

impl ScimSettings {
    fn validate(&self, p: &mut Vec<Problem>) {
        for (group, roles) in &self.group_roles {
            for r in roles {
                if !crate::identity::valid_role(r) {
                    p.push(Problem::new(
                        &format!("scim.group_roles.{group:?}"),
                        format!("{r:?} is not a role name (1-64 characters of a-z, 0-9, '.', '_', '-', ':')"),
                    ));
                }
            }
        }
    }
}

/// The gateway for applications that cannot do MFA themselves: forward-auth for an
/// existing proxy (`/gate/check`) and, later, the built-in proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// The parent domain of the protected applications, e.g. `example.org`: the gateway
    /// cookie is set for it so that every application host below it receives it. Unset:
    /// no gateway cookie, and browsers cannot be signed in to protected applications.
    pub cookie_domain: Option<String>,
    /// Where people may be sent back to after signing in: host names, or `.example.org`
    /// for a domain and everything below it. Default: `.<cookie_domain>`.
    pub allowed_return_domains: Vec<String>,
    /// The protected applications.
    pub routes: Vec<GatewayRoute>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    /// Names the route in the policy (action `gateway.<name>`) and in access records.
    pub name: String,
    /// The host people use, e.g. `labs.example.org`.
    pub host: String,
    /// The path prefix within the host (default `/`); the longest matching prefix wins.
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// Record every request through the built-in proxy (vendor access, V2): who, method,
    /// path, status, bytes and duration, besides the decision every request gets.
    #[serde(default)]
    pub record: bool,
    /// The built-in proxy: where to send allowed requests, an origin such as
    /// `http://10.20.0.5:8080` (the path is passed unchanged). Unset: the route is only
    /// decided (forward-auth for another proxy).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Extra headers for the upstream (an application that wants a fixed `X-App-Key`,
    /// say). Identity and hop-by-hop header names are refused.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// How long the upstream may take to connect.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// How long the upstream may take to start answering (streamed bodies may then run
    /// longer).
    #[serde(default = "default_upstream_timeout")]
    pub timeout_secs: u64,
    /// The largest request body passed to the upstream.
    #[serde(default = "default_proxy_body")]
    pub max_body_bytes: u64,
}

fn root_path() -> String {
    "/".to_owned()
}

fn default_connect_timeout() -> u64 {
    5
}

fn default_upstream_timeout() -> u64 {
    60
}

fn default_proxy_body() -> u64 {
    256 * 1024 * 1024
}

/// Headers that describe one connection, not the request (RFC 9110 section 7.6.1), and
/// `Expect`, which the proxy answers itself: never passed on, never configurable.
pub const HOP_BY_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Headers only the gateway writes: never taken from the client, never configurable.
pub const RESERVED_PROXY_HEADERS: &[&str] = &[
    "remote-user",
    "remote-groups",
    "remote-name",
    "remote-email",
    "wardgate-assertion",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
];

impl GatewayRoute {
    /// A decided-only route (no upstream) with the default limits.
    pub fn new(name: &str, host: &str, path_prefix: &str) -> Self {
        Self {
            name: name.to_owned(),
            host: host.to_owned(),
            path_prefix: path_prefix.to_owned(),
            record: false,
            upstream: None,
            headers: std::collections::BTreeMap::new(),
            connect_timeout_secs: default_connect_timeout(),
            timeout_secs: default_upstream_timeout(),
            max_body_bytes: default_proxy_body(),
        }
    }

    /// The same route, proxied to `upstream`.
    pub fn proxied_to(mut self, upstream: &str) -> Self {
        self.upstream = Some(upstream.to_owned());
        self
    }
}

/// An upstream is an origin: http or https, a host, an optional port, nothing else.
fn upstream_ok(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once("://") else { return false };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', '\\', ' '])
        && rest.bytes().all(|b| b.is_ascii_graphic())
}

impl GatewaySettings {
    /// The effective return domains.
    pub fn return_domains(&self) -> Vec<String> {
        if !self.allowed_return_domains.is_empty() {
            return self.allowed_return_domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        }
        self.cookie_domain.iter().map(|d| format!(".{}", d.to_ascii_lowercase())).collect()
    }

    fn validate(&self, p: &mut Vec<Problem>) {
        let host_ok = |h: &str| {
            let h = h.strip_prefix('.').unwrap_or(h);
            (1..=253).contains(&h.len())
                && h.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        };
        if let Some(d) = &self.cookie_domain
            && (!host_ok(d) || d.starts_with('.') || !d.contains('.'))
        {
            p.push(Problem::new(
                "gateway.cookie_domain",
                "a lowercase domain name with at least two labels, e.g. example.org",
            ));
        }
        for (i, d) in self.allowed_return_domains.iter().enumerate() {
            if !host_ok(d) {
                p.push(Problem::new(
                    &format!("gateway.allowed_return_domains[{i}]"),
                    "a lowercase host name, or .domain for a domain and its subdomains",
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("gateway.routes[{i}]");
            let name_ok = (1..=64).contains(&r.name.len())
                && r.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b));
            if !name_ok {
                p.push(Problem::new(&format!("{key}.name"), "1-64 lowercase letters, digits, '-' and '_'"));
            }
            if !names.insert(r.name.clone()) {
                p.push(Problem::new(&format!("{key}.name"), "route names must be unique"));
            }
            if !host_ok(&r.host) || r.host.starts_with('.') {
                p.push(Problem::new(&format!("{key}.host"), "a lowercase host name"));
            }
            if !r.path_prefix.starts_with('/') || r.path_prefix.contains(['?', '#', '\\']) {
                p.push(Problem::new(&format!("{key}.path_prefix"), "a path starting with /"));
            }
            if let Some(u) = &r.upstream
                && !upstream_ok(u)
            {
                p.push(Problem::new(
                    &format!("{key}.upstream"),
                    "an origin such as http://10.20.0.5:8080 (http or https, host, optional port, no path)",
                ));
            }
            for (name, value) in &r.headers {
                let token = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                let lower = name.to_ascii_lowercase();
                let reserved = RESERVED_PROXY_HEADERS.contains(&lower.as_str())
                    || HOP_BY_HOP_HEADERS.contains(&lower.as_str())
                    || matches!(lower.as_str(), "host" | "content-length");
                if !token || reserved {
                    p.push(Problem::new(
                        &format!("{key}.headers.{name}"),
                        "a header name the gateway does not set itself (not an identity or hop-by-hop header)",
                    ));
                }
                if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                    p.push(Problem::new(&format!("{key}.headers.{name}"), "a value without control characters"));
                }
            }
            if r.timeout_secs == 0 || r.connect_timeout_secs == 0 {
                p.push(Problem::new(&key, "timeouts must be at least one second"));
            }
            if r.max_body_bytes == 0 {
                p.push(Problem::new(&format!("{key}.max_body_bytes"), "must be at least 1"));
            }
        }
    }
}

/// Change management of the access policy (A7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// A proposed version takes effect only when someone other than its author approves it.
    /// Turn off only where one administrator runs everything (a lab, a clinic of five).
    pub two_person_approval: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self { two_person_approval: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    /// TLS is terminated by a trusted reverse proxy in front of this server.
    pub behind_proxy: bool,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs).
    pub trusted_proxies: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A self-signed certificate made at start, for trying Wardgate out only.
    pub dev_tls: bool,
    pub max_body_bytes: u64,
    pub request_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Sign a checkpoint after this many records…
    pub checkpoint_every: u64,
    /// …or after this many seconds, whichever comes first.
    pub checkpoint_interval_secs: u64,
    /// HIPAA 45 CFR 164.316(b)(2)(i): documentation is kept six years.
    pub retention_days: u64,
    /// The most records one group commit writes.
    pub max_batch: u64,
}

/// The OpenID Connect provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// Which claims a scope releases, added to or replacing the standard ones (`profile`:
    /// name, preferred_username; `email`: email; `roles`: roles). Claims that can be named:
    /// see [`OidcSettings::CLAIMS`].
    pub scope_claims: std::collections::BTreeMap<String, Vec<String>>,
}

impl OidcSettings {
    /// What Wardgate knows about a person and can release. `groups` carries the roles
    /// under the name many applications expect.
    pub const CLAIMS: [&'static str; 6] = ["name", "preferred_username", "email", "roles", "groups", "employee_id"];

    /// The effective scope → claims map: the standard scopes, then the configuration.
    pub fn effective_scope_claims(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut m = std::collections::BTreeMap::new();
        m.insert("profile".to_owned(), vec!["name".to_owned(), "preferred_username".to_owned()]);
        m.insert("email".to_owned(), vec!["email".to_owned()]);
        m.insert("roles".to_owned(), vec!["roles".to_owned()]);
        for (scope, claims) in &self.scope_claims {
            m.insert(scope.clone(), claims.clone());
        }
        m
    }

    fn validate(&self, p: &mut Vec<Problem>) {
        for (scope, claims) in &self.scope_claims {
            let key = format!("oidc.scope_claims.{scope}");
            if scope == "openid" || scope == "offline_access" || crate::oidc::client::check_scope(scope).is_err() {
                p.push(Problem::new(&key, "not a scope that can carry claims"));
            }
            for c in claims {
                if !Self::CLAIMS.contains(&c.as_str()) {
                    p.push(Problem::new(&key, format!("unknown claim {c:?}; known: {}", Self::CLAIMS.join(", "))));
                }
            }
        }
    }
}

/// Sign-in, enrollment, sessions and lockout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Shown to people, used as the TOTP issuer, and refused inside passphrases.
    pub organization_name: String,
    /// How long an invited user's enrollment link stays valid.
    pub enrollment_link_ttl_hours: u64,
    /// Minimum passphrase length (NIST SP 800-63B: 8 at least; 15 if it is the only factor).
    pub passphrase_min_length: u64,
    /// Argon2id cost (OWASP: 19456 KiB, 2 passes, 1 lane).
    pub argon2_memory_kib: u64,
    pub argon2_iterations: u64,
    pub argon2_parallelism: u64,
    /// `SHA1` (what every authenticator app supports) or `SHA256`.
    pub totp_algorithm: String,
    /// 6 or 8.
    pub totp_digits: u64,
    /// HIPAA 164.312(a)(2)(iii) automatic logoff.
    pub session_idle_timeout_secs: u64,
    pub session_lifetime_secs: u64,
    /// Failed attempts allowed before delays start.
    pub lockout_free_failures: u64,
    pub lockout_max_delay_secs: u64,
    /// Consecutive failures that lock the account (NIST: at most 100).
    pub lockout_after: u64,
    pub lockout_duration_secs: u64,
    /// The WebAuthn relying-party id (a domain); unset means the host of `public_url`.
    pub webauthn_rp_id: Option<String>,
    /// Refuse a security key whose signature counter went backwards (a possible clone)
    /// instead of only recording it.
    pub webauthn_refuse_counter_regression: bool,
    /// Per role, the authenticator models (AAGUIDs) its members may register, for example
    /// FIPS-certified keys only. Roles not listed accept any authenticator.
    pub webauthn_allowed_aaguids: std::collections::BTreeMap<String, Vec<String>>,
    /// Sign-in and enrollment requests per minute from one client address. Generous by
    /// default: a ward's workstations often share one address behind NAT or a VDI gateway.
    pub source_attempts_per_minute: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            organization_name: "Wardgate".into(),
            enrollment_link_ttl_hours: 72,
            passphrase_min_length: 12,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            totp_algorithm: "SHA1".into(),
            totp_digits: 6,
            session_idle_timeout_secs: 15 * 60,
            session_lifetime_secs: 12 * 3600,
            lockout_free_failures: 3,
            lockout_max_delay_secs: 60,
            lockout_after: 20,
            lockout_duration_secs: 15 * 60,
            webauthn_rp_id: None,
            webauthn_refuse_counter_regression: false,
            webauthn_allowed_aaguids: Default::default(),
            source_attempts_per_minute: 600,
        }
    }
}

impl AuthSettings {
    pub fn lockout_policy(&self) -> crate::lockout::LockoutPolicy {
        crate::lockout::LockoutPolicy {
            free_failures: self.lockout_free_failures as u32,
            max_delay: time::Duration::seconds(self.lockout_max_delay_secs as i64),
            lock_after: self.lockout_after as u32,
            lock_for: time::Duration::seconds(self.lockout_duration_secs as i64),
        }
    }

    pub fn session_policy(&self) -> crate::session::SessionPolicy {
        crate::session::SessionPolicy {
            idle_timeout: time::Duration::seconds(self.session_idle_timeout_secs as i64),
            absolute_lifetime: time::Duration::seconds(self.session_lifetime_secs as i64),
        }
    }

    pub fn passphrase_policy(&self) -> crate::passphrase::PassphrasePolicy {
        let min = self.passphrase_min_length as usize;
        let d = crate::passphrase::PassphrasePolicy::default();
        // A passphrase alone (the first administrator, until a second factor is enrolled)
        // is never held to less than the configured minimum.
        crate::passphrase::PassphrasePolicy {
            min_chars: min,
            min_chars_single_factor: d.min_chars_single_factor.max(min),
            ..d
        }
    }

    pub fn hash_params(&self) -> crate::passphrase::HashParams {
        crate::passphrase::HashParams {
            memory_kib: self.argon2_memory_kib as u32,
            iterations: self.argon2_iterations as u32,
            parallelism: self.argon2_parallelism as u32,
        }
    }

    pub fn totp_params(&self) -> crate::factors::totp::TotpParams {
        crate::factors::totp::TotpParams {
            algorithm: if self.totp_algorithm == "SHA256" {
                crate::factors::totp::TotpAlgorithm::Sha256
            } else {
                crate::factors::totp::TotpAlgorithm::Sha1
            },
            digits: self.totp_digits as u8,
            step_secs: 30,
        }
    }

    fn validate(&self, p: &mut Vec<Problem>) {
        let mut range = |key: &str, v: u64, lo: u64, hi: u64| {
            if !(lo..=hi).contains(&v) {
                p.push(Problem::new(&format!("auth.{key}"), format!("must be between {lo} and {hi}")));
            }
        };
        range("enrollment_link_ttl_hours", self.enrollment_link_ttl_hours, 1, 24 * 30);
        // SP 800-63B-4 §3.1.1.2: at least 8 with another factor; 64 must always be accepted.
        range("passphrase_min_length", self.passphrase_min_length, 8, 64);
        range("argon2_memory_kib", self.argon2_memory_kib, 7 * 1024, 4 * 1024 * 1024);
        range("argon2_iterations", self.argon2_iterations, 1, 100);
        range("argon2_parallelism", self.argon2_parallelism, 1, 64);
        // SP 800-63B-4 §2.2.3: at most 30 minutes of inactivity and 24 hours overall at AAL2.
        range("session_idle_timeout_secs", self.session_idle_timeout_secs, 60, 30 * 60);
        range("session_lifetime_secs", self.session_lifetime_secs, 300, 24 * 3600);
        range("lockout_free_failures", self.lockout_free_failures, 0, 99);
        range("lockout_max_delay_secs", self.lockout_max_delay_secs, 1, 3600);
        range("lockout_after", self.lockout_after, 1, 100);
        range("lockout_duration_secs", self.lockout_duration_secs, 60, 24 * 3600);
        range("totp_digits", self.totp_digits, 6, 8);
        range("source_attempts_per_minute", self.source_attempts_per_minute, 1, 1_000_000);
        if self.totp_digits == 7 {
            p.push(Problem::new("auth.totp_digits", "must be 6 or 8"));
        }
        if !["SHA1", "SHA256"].contains(&self.totp_algorithm.as_str()) {
            p.push(Problem::new("auth.totp_algorithm", "must be \"SHA1\" or \"SHA256\""));
        }
        if self.lockout_free_failures >= self.lockout_after {
            p.push(Problem::new("auth.lockout_free_failures", "must be below auth.lockout_after"));
        }
        if self.organization_name.trim().is_empty() || self.organization_name.len() > 128 {
            p.push(Problem::new("auth.organization_name", "must be 1-128 characters"));
        }
        if let Some(rp) = &self.webauthn_rp_id
            && (rp.is_empty() || rp.contains('/') || rp.contains(':'))
        {
            p.push(Problem::new("auth.webauthn_rp_id", "must be a domain name such as sso.example.org"));
        }
        for (role, list) in &self.webauthn_allowed_aaguids {
            for (i, a) in list.iter().enumerate() {
                let hex: String = a.chars().filter(|c| *c != '-').collect();
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    p.push(Problem::new(
                        &format!("auth.webauthn_allowed_aaguids.{role}[{i}]"),
                        format!("{a:?} is not an AAGUID such as cb69481e-8ff7-4039-93ec-0a2729a154a8"),
                    ));
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `wardgate=debug,info`.
    pub level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./wardgate-data"),
            database: None,
            master_key_file: None,
            node_id: None,
            public_url: None,
            server: ServerSettings::default(),
            audit: AuditSettings::default(),
            auth: AuthSettings::default(),
            oidc: OidcSettings::default(),
            policy: PolicySettings::default(),
            gateway: GatewaySettings::default(),
            governance: Default::default(),
            scim: Default::default(),
            log: LogSettings::default(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            behind_proxy: false,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
            dev_tls: false,
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 30,
        }
    }
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { checkpoint_every: 1000, checkpoint_interval_secs: 1, retention_days: 6 * 366, max_batch: 1024 }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

/// One thing wrong with a configuration, tied to the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Where the database lives, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Settings {
    pub fn database_location(&self) -> DatabaseLocation {
        match &self.database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                DatabaseLocation::Postgres(url.clone())
            }
            Some(other) => DatabaseLocation::Sqlite(PathBuf::from(other.strip_prefix("sqlite://").unwrap_or(other))),
            None => DatabaseLocation::Sqlite(self.data_dir.join("wardgate.db")),
        }
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.server.trusted_proxies.iter().filter_map(|s| parse_net(s)).collect()
    }

    /// Every problem at once, so an operator fixes a file in one pass.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        self.scim.validate(&mut p);
        if self.data_dir.as_os_str().is_empty() {
            p.push(Problem::new("data_dir", "must not be empty"));
        }
        if let Some(db) = &self.database
            && db.contains("://")
            && !(db.starts_with("postgres://") || db.starts_with("postgresql://") || db.starts_with("sqlite://"))
        {
            p.push(Problem::new("database", "must be postgres://…, sqlite://… or a file path"));
        }
        if let Some(n) = &self.node_id
            && (n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        {
            p.push(Problem::new("node_id", "must be 1-64 characters of letters, digits, '-', '_', '.'"));
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            p.push(Problem::new("public_url", "must start with https:// or http://"));
        }
        let s = &self.server;
        match s.listen.parse::<SocketAddr>() {
            Err(_) => p.push(Problem::new(
                "server.listen",
                format!("{:?} is not an address such as 127.0.0.1:8080", s.listen),
            )),
            Ok(addr) => {
                let tls = s.dev_tls || s.tls_cert.is_some();
                // HIPAA 164.312(e)(1): ePHI travels only over encrypted channels.
                if !addr.ip().is_loopback() && !tls && !s.behind_proxy {
                    p.push(Problem::new(
                        "server.listen",
                        "a non-loopback address needs TLS (server.tls_cert and server.tls_key, or server.dev_tls) or server.behind_proxy with server.trusted_proxies",
                    ));
                }
            }
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            p.push(Problem::new(
                if s.tls_cert.is_some() { "server.tls_key" } else { "server.tls_cert" },
                "tls_cert and tls_key go together",
            ));
        }
        if s.dev_tls && s.tls_cert.is_some() {
            p.push(Problem::new("server.dev_tls", "choose either dev_tls or tls_cert/tls_key"));
        }
        if s.behind_proxy && s.trusted_proxies.is_empty() {
            p.push(Problem::new("server.trusted_proxies", "behind_proxy needs the proxies' addresses (CIDRs)"));
        }
        for (i, net) in s.trusted_proxies.iter().enumerate() {
            if parse_net(net).is_none() {
                p.push(Problem::new(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("{net:?} is not an address or CIDR"),
                ));
            }
        }
        if !(1024..=16 * 1024 * 1024).contains(&s.max_body_bytes) {
            p.push(Problem::new("server.max_body_bytes", "must be between 1024 and 16777216"));
        }
        if !(1..=600).contains(&s.request_timeout_secs) {
            p.push(Problem::new("server.request_timeout_secs", "must be between 1 and 600"));
        }
        let a = &self.audit;
        if !(1..=1_000_000).contains(&a.checkpoint_every) {
            p.push(Problem::new("audit.checkpoint_every", "must be between 1 and 1000000"));
        }
        if !(1..=3600).contains(&a.checkpoint_interval_secs) {
            p.push(Problem::new("audit.checkpoint_interval_secs", "must be between 1 and 3600"));
        }
        // Shorter than six years would discard evidence HIPAA requires to be kept.
        if a.retention_days < 6 * 365 {
            p.push(Problem::new("audit.retention_days", "must be at least 2190 (six years, 45 CFR 164.316(b)(2))"));
        }
        if !(1..=10_000).contains(&a.max_batch) {
            p.push(Problem::new("audit.max_batch", "must be between 1 and 10000"));
        }
        self.auth.validate(&mut p);
        self.oidc.validate(&mut p);
        self.gateway.validate(&mut p);
        self.governance.validate(&mut p);
        if !["text", "json"].contains(&self.log.format.as_str()) {
            p.push(Problem::new("log.format", "must be \"text\" or \"json\""));
        }
        p
    }
}

fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_routes_take_an_origin_and_no_identity_headers() {
        let mut s = Settings::default();
        let mut r = GatewayRoute::new("labs", "labs.example.org", "/").proxied_to("http://10.20.0.5:8080");
        r.headers.insert("X-App-Key".into(), "k".into());
        s.gateway.routes = vec![r.clone()];
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        for bad in ["ftp://h", "http://h/path", "http://u@h", "h:80", "http://", "http://h?x"] {
            s.gateway.routes = vec![r.clone().proxied_to(bad)];
            assert!(s.validate().iter().any(|p| p.key == "gateway.routes[0].upstream"), "{bad}");
        }
        for name in ["Remote-User", "wardgate-assertion", "Transfer-Encoding", "x-forwarded-for", "bad name"] {
            let mut r = r.clone();
            r.headers.insert(name.into(), "v".into());
            s.gateway.routes = vec![r];
            assert!(s.validate().iter().any(|p| p.key.starts_with("gateway.routes[0].headers")), "{name}");
        }
    }

    #[test]
    fn defaults_are_valid_and_loopback_only() {
        let s = Settings::default();
        assert_eq!(s.validate(), vec![]);
        assert_eq!(s.database_location(), DatabaseLocation::Sqlite(PathBuf::from("./wardgate-data/wardgate.db")));
        assert_eq!(s.master_key_path(), PathBuf::from("./wardgate-data/master.key"));
    }

    #[test]
    fn public_listener_without_tls_is_refused() {
        let mut s = Settings::default();
        s.server.listen = "0.0.0.0:8080".into();
        assert_eq!(s.validate()[0].key, "server.listen");
        s.server.dev_tls = true;
        assert!(s.validate().is_empty());
        s.server.dev_tls = false;
        s.server.behind_proxy = true;
        assert_eq!(s.validate()[0].key, "server.trusted_proxies");
        s.server.trusted_proxies = vec!["10.0.0.0/8".into(), "192.0.2.1".into()];
        assert!(s.validate().is_empty());
        assert_eq!(s.trusted_proxy_nets().len(), 2);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let mut s = Settings::default();
        s.server.listen = "nowhere".into();
        s.audit.retention_days = 30;
        s.log.format = "xml".into();
        s.server.trusted_proxies = vec!["not-a-net".into()];
        let keys: Vec<_> = s.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["server.listen", "server.trusted_proxies[0]", "audit.retention_days", "log.format"]);
    }

    #[test]
    fn postgres_urls_select_postgres() {
        let s = Settings { database: Some("postgres://127.0.0.1/test".into()), ..Default::default() };
        assert!(matches!(s.database_location(), DatabaseLocation::Postgres(_)));
    }
}
