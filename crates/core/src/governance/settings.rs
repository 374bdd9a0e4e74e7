//! `[governance]`: break-glass, just-in-time elevation, access reviews and dormant accounts.
//!
//! Defaults are what a hospital's privacy officer would accept on day one: a short list of
//! emergency reasons, a real sentence of justification, an hour of emergency access, a
//! week to review it, eight hours of elevation at most, 90 days to dormancy.

use serde::{Deserialize, Serialize};
use time::Duration;

use super::{BreakGlassRules, DefaultAction};
use crate::settings::Problem;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GovernanceSettings {
    /// The reason codes a person chooses from when opening break-glass access.
    pub breakglass_reason_codes: Vec<String>,
    /// The free-text justification must have at least this many characters.
    pub breakglass_min_justification_chars: usize,
    /// How long break-glass access lasts (HIPAA 164.312(a)(2)(ii): limited in time).
    pub breakglass_minutes: u64,
    /// An unreviewed break-glass access is overdue after this many days.
    pub breakglass_review_within_days: u64,
    /// Alerts: each break-glass opening is POSTed here as JSON (see docs/governance.md).
    pub alert_webhook_url: Option<String>,
    /// Alerts: each break-glass opening is also sent as an RFC 5424 message over UDP to
    /// this `host:port`.
    pub alert_syslog: Option<String>,
    /// The longest just-in-time elevation an administrator may request, in hours.
    pub elevation_max_hours: u64,
    /// Accounts without a successful sign-in for this many days are disabled.
    pub dormant_after_days: u64,
    /// What happens to items of an access review still undecided at the deadline:
    /// `revoke` (the role is removed) or `escalate` (left for a person, flagged).
    pub review_default_action: String,
    /// How long a help-desk recovery link works once approved (L3), in minutes: long
    /// enough to hand it over by phone, short enough that a leaked one is soon useless.
    pub recovery_link_minutes: u64,
}

impl Default for GovernanceSettings {
    fn default() -> Self {
        Self {
            breakglass_reason_codes: ["code-blue", "patient-unconscious", "clinician-unavailable", "system-downtime"]
                .map(String::from)
                .to_vec(),
            breakglass_min_justification_chars: 20,
            breakglass_minutes: 60,
            breakglass_review_within_days: 7,
            alert_webhook_url: None,
            alert_syslog: None,
            elevation_max_hours: 8,
            dormant_after_days: 90,
            review_default_action: "revoke".into(),
            recovery_link_minutes: 15,
        }
    }
}

impl GovernanceSettings {
    pub fn breakglass_rules(&self) -> BreakGlassRules {
        BreakGlassRules {
            reason_codes: self.breakglass_reason_codes.clone(),
            min_justification_chars: self.breakglass_min_justification_chars,
            duration: Duration::minutes(self.breakglass_minutes as i64),
        }
    }

    pub fn review_within(&self) -> Duration {
        Duration::days(self.breakglass_review_within_days as i64)
    }

    pub fn elevation_max(&self) -> Duration {
        Duration::hours(self.elevation_max_hours as i64)
    }

    pub fn dormant_after(&self) -> Duration {
        Duration::days(self.dormant_after_days as i64)
    }

    pub fn default_action(&self) -> DefaultAction {
        DefaultAction::parse(&self.review_default_action).unwrap_or(DefaultAction::Escalate)
    }

    pub(crate) fn validate(&self, p: &mut Vec<Problem>) {
        let code_ok = |c: &str| {
            (1..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if self.breakglass_reason_codes.is_empty() {
            p.push(Problem::new("governance.breakglass_reason_codes", "needs at least one reason code"));
        }
        for (i, c) in self.breakglass_reason_codes.iter().enumerate() {
            if !code_ok(c) {
                p.push(Problem::new(
                    &format!("governance.breakglass_reason_codes[{i}]"),
                    format!("{c:?}: 1-64 characters of a-z, 0-9, '-'"),
                ));
            }
        }
        if !(1..=1000).contains(&self.breakglass_min_justification_chars) {
            p.push(Problem::new("governance.breakglass_min_justification_chars", "must be between 1 and 1000"));
        }
        if !(5..=24 * 60).contains(&self.breakglass_minutes) {
            p.push(Problem::new("governance.breakglass_minutes", "must be between 5 and 1440"));
        }
        if !(1..=90).contains(&self.breakglass_review_within_days) {
            p.push(Problem::new("governance.breakglass_review_within_days", "must be between 1 and 90"));
        }
        if let Some(u) = &self.alert_webhook_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            p.push(Problem::new("governance.alert_webhook_url", "must start with https:// or http://"));
        }
        if let Some(a) = &self.alert_syslog
            && a.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            p.push(Problem::new("governance.alert_syslog", "must be host:port (UDP)"));
        }
        if !(1..=72).contains(&self.elevation_max_hours) {
            p.push(Problem::new("governance.elevation_max_hours", "must be between 1 and 72"));
        }
        if !(1..=60).contains(&self.recovery_link_minutes) {
            p.push(Problem::new("governance.recovery_link_minutes", "must be between 1 and 60"));
        }
        if !(7..=3650).contains(&self.dormant_after_days) {
            p.push(Problem::new("governance.dormant_after_days", "must be between 7 and 3650"));
        }
        if DefaultAction::parse(&self.review_default_action).is_none() {
            p.push(Problem::new("governance.review_default_action", "must be \"revoke\" or \"escalate\""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let mut p = Vec::new();
        GovernanceSettings::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let bad = GovernanceSettings {
            breakglass_reason_codes: vec!["Code Blue".into()],
            breakglass_minutes: 0,
            alert_webhook_url: Some("ftp://x".into()),
            alert_syslog: Some("nohost".into()),
            review_default_action: "ignore".into(),
            ..GovernanceSettings::default()
        };
        bad.validate(&mut p);
        let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "governance.breakglass_reason_codes[0]",
                "governance.breakglass_minutes",
                "governance.alert_webhook_url",
                "governance.alert_syslog",
                "governance.review_default_action"
            ]
        );
        assert_eq!(GovernanceSettings::default().breakglass_rules().duration, Duration::hours(1));
    }
}
