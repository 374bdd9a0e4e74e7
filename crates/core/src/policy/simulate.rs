//! Decisions as the audit log records them, and replaying them against another policy.
//!
//! Every decision's record carries the request exactly as the evaluator saw it, so a
//! proposed policy can be run over last week's traffic before anyone approves it (A7).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::compile::Policy;
use super::evaluate::{DeviceFacts, Effect, Request, SessionFacts, Subject};
use crate::device::Posture;
use crate::login::Aal;

/// The `request` detail of a `policy.decision` audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub username: String,
    pub roles: Vec<String>,
    pub privileged: bool,
    pub active: bool,
    pub recent_failures: u32,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<RecordedDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_aal: Option<Aal>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub authenticated_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDevice {
    pub name: String,
    pub managed: bool,
    pub trusted: bool,
    pub disk_encrypted: bool,
    pub patched: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub checked_in_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

impl RecordedRequest {
    /// Captures what the evaluator is about to see.
    pub fn capture(req: &Request<'_>) -> Self {
        Self {
            at: req.now,
            username: req.subject.username.to_owned(),
            roles: req.subject.roles.to_vec(),
            privileged: req.subject.privileged,
            active: req.subject.active,
            recent_failures: req.subject.recent_failures,
            action: req.action.to_owned(),
            resource: req.resource.map(str::to_owned),
            ip: req.ip,
            device: req.device.map(|d| RecordedDevice {
                name: d.name.to_owned(),
                managed: d.managed,
                trusted: d.trusted,
                disk_encrypted: d.posture.disk_encrypted,
                patched: d.posture.patched,
                checked_in_at: d.posture.checked_in_at,
                site: d.site.map(str::to_owned),
            }),
            session_aal: req.session.map(|s| s.aal),
            authenticated_at: req.session.map(|s| s.authenticated_at),
        }
    }

    /// Evaluates the recorded request against `policy`.
    pub fn replay<'p>(&self, policy: &'p Policy) -> super::Decision<'p> {
        let subject = Subject {
            username: &self.username,
            roles: &self.roles,
            privileged: self.privileged,
            active: self.active,
            recent_failures: self.recent_failures,
        };
        let device = self.device.as_ref().map(|d| DeviceFacts {
            name: &d.name,
            managed: d.managed,
            trusted: d.trusted,
            posture: Posture { disk_encrypted: d.disk_encrypted, patched: d.patched, checked_in_at: d.checked_in_at },
            site: d.site.as_deref(),
        });
        let session = match (self.session_aal, self.authenticated_at) {
            (Some(aal), Some(authenticated_at)) => Some(SessionFacts { aal, authenticated_at }),
            _ => None,
        };
        policy.evaluate(&Request {
            action: &self.action,
            resource: self.resource.as_deref(),
            subject,
            session,
            device,
            ip: self.ip,
            now: self.at,
        })
    }
}

/// A recorded decision: the request and what was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub request: RecordedRequest,
    pub effect: Effect,
    pub required: Aal,
}

/// One recorded decision that the proposed policy would answer differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub username: String,
    pub action: String,
    pub before: String,
    pub after: String,
    /// The proposed policy's deciding rule.
    pub rule: String,
    pub count: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Simulation {
    pub replayed: u64,
    pub changed: u64,
    /// Grouped by person, action and the change of outcome; most frequent first.
    pub changes: Vec<Change>,
}

/// Describes an outcome so that a change of required assurance shows as a change.
fn label(effect: Effect, required: Aal) -> String {
    match effect {
        Effect::Deny => "deny".to_owned(),
        e => format!("{} {}", e.as_str(), required.as_str()),
    }
}

/// Replays `recorded` against `proposed` and reports what would be answered differently.
pub fn simulate(proposed: &Policy, recorded: impl IntoIterator<Item = Recorded>) -> Simulation {
    let mut replayed = 0;
    let mut groups: BTreeMap<(String, String, String, String), Change> = BTreeMap::new();
    for r in recorded {
        replayed += 1;
        let d = r.request.replay(proposed);
        let (before, after) = (label(r.effect, r.required), label(d.effect, d.required));
        if before == after {
            continue;
        }
        let key = (r.request.username.clone(), r.request.action.clone(), before.clone(), after.clone());
        let entry = groups.entry(key).or_insert_with(|| Change {
            username: r.request.username.clone(),
            action: r.request.action.clone(),
            before,
            after,
            rule: d.rule.to_owned(),
            count: 0,
            last_seen: r.request.at,
        });
        entry.count += 1;
        entry.last_seen = entry.last_seen.max(r.request.at);
    }
    let mut changes: Vec<Change> = groups.into_values().collect();
    changes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.username, &a.action).cmp(&(&b.username, &b.action))));
    Simulation { replayed, changed: changes.iter().map(|c| c.count).sum(), changes }
}
