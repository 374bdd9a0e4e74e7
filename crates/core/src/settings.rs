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
    pub log: LogSettings,
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
    fn new(key: &str, message: impl Into<String>) -> Self {
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
