//! The policy file as people write it (TOML), before it is checked and compiled.
//!
//! Every table refuses fields it does not know, so a misspelt condition is an error and not
//! a rule that silently matches more than intended.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;
use time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub segments: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    pub roles: BTreeMap<String, Spanned<RawRole>>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub idle_timeout: Option<Spanned<String>>,
    pub lifetime: Option<Spanned<String>>,
    pub reauthenticate_after: Option<Spanned<String>>,
    pub device_checkin_max_age: Option<Spanned<String>>,
    pub utc_offset: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<String>,
    /// L1: holders enroll an aal2+ factor only after their identity was proofed.
    #[serde(default)]
    pub require_proofing: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub actions: Option<Vec<String>>,
    pub not_actions: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub not_roles: Option<Vec<String>>,
    pub networks: Option<Vec<String>>,
    pub not_networks: Option<Vec<String>>,
    pub devices: Option<Vec<String>>,
    pub device_healthy: Option<bool>,
    pub sites: Option<Vec<String>>,
    pub hours: Option<String>,
    pub days: Option<Vec<String>>,
    pub privileged: Option<bool>,
    pub min_recent_failures: Option<u32>,
    #[serde(default)]
    pub match_all: bool,
    pub allow: Option<bool>,
    pub deny: Option<String>,
    pub require: Option<String>,
    pub fresh: Option<String>,
    pub session: Option<RawSession>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSession {
    pub idle_timeout: Option<String>,
    pub lifetime: Option<String>,
    pub reauthenticate_after: Option<String>,
}

/// `30s`, `15m`, `8h`, `7d`: a positive whole number and one unit.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok().filter(|n| *n > 0)?;
    let d = match unit {
        's' => Duration::seconds(n),
        'm' => Duration::minutes(n),
        'h' => Duration::hours(n),
        'd' => Duration::days(n),
        _ => return None,
    };
    // Nothing in a policy needs to be longer than a year; bigger numbers are typos.
    (d <= Duration::days(366)).then_some(d)
}

/// Renders a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.whole_seconds();
    if s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// 1-based line of a byte offset in `source`.
pub(crate) fn line_of(source: &str, offset: usize) -> usize {
    source.as_bytes()[..offset.min(source.len())].iter().filter(|b| **b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_render() {
        assert_eq!(parse_duration("30s"), Some(Duration::seconds(30)));
        assert_eq!(parse_duration("15m"), Some(Duration::minutes(15)));
        assert_eq!(parse_duration("8h"), Some(Duration::hours(8)));
        assert_eq!(parse_duration("7d"), Some(Duration::days(7)));
        for bad in ["", "m", "0m", "-5m", "5", "5w", "1.5h", "400d", "5 m x"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        for d in ["45s", "15m", "8h", "3d"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
