//! Change management of the access policy (A7): propose, approve (by a second person),
//! reject, roll back, history, diff and simulation. Shared by `wardgate policy …` and the
//! admin API; every step is audited with its actor.

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::record::AuditRecord;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::login::Aal;
use wardgate_core::policy::{
    Effect, NewPolicyVersion, Policy, PolicyErrors, PolicyVersion, Recorded, RecordedRequest, Simulation,
    VersionStatus, simulate,
};
use wardgate_store::{Store, StoreError};

/// Policy files are small; anything larger is a mistake or an attack.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PoliciesError {
    #[error("the policy is refused: {0}")]
    Invalid(PolicyErrors),
    #[error("the policy file is larger than 1 MiB")]
    TooLarge,
    #[error("a reason is needed (1-500 characters): it goes into the history")]
    Reason,
    #[error("no policy version {0}")]
    Unknown(i64),
    #[error("version {0} is {1}, not proposed")]
    NotProposed(i64, &'static str),
    #[error("version {0} was never in force, so there is nothing to roll back to")]
    NeverActive(i64),
    #[error("two-person rule: version {0} was proposed by {1}; another administrator must approve it")]
    SelfApproval(i64, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Policies<'a> {
    store: &'a dyn Store,
    actor: &'a str,
    now: OffsetDateTime,
    two_person: bool,
}

fn check_reason(reason: &str) -> Result<&str, PoliciesError> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 || r.chars().any(char::is_control) {
        return Err(PoliciesError::Reason);
    }
    Ok(r)
}

/// Compiles a file, refusing oversized ones before parsing them.
pub fn compile(source: &str) -> Result<Policy, PoliciesError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(PoliciesError::TooLarge);
    }
    Policy::parse(source).map_err(PoliciesError::Invalid)
}

impl<'a> Policies<'a> {
    pub fn new(store: &'a dyn Store, actor: &'a str, now: OffsetDateTime, two_person: bool) -> Self {
        Self { store, actor, now, two_person }
    }

    fn event(&self, t: &'static str, outcome: Outcome, number: Option<i64>) -> AuditEvent {
        let mut e = AuditEvent::known(self.now, t, outcome).actor(self.actor);
        if let Some(n) = number {
            e = e.detail("version", n);
        }
        e
    }

    /// Records a refusal; the refusal itself is the caller's error to return.
    async fn refused(&self, number: Option<i64>, why: &PoliciesError) -> Result<(), PoliciesError> {
        let e = self.event(types::POLICY_REFUSED, Outcome::Denied, number).reason(why.to_string());
        self.store.append_audit(&[e]).await?;
        Ok(())
    }

    /// Stores a checked file as a new proposed version. A file that does not compile is
    /// refused with every problem and its line; nothing in force changes.
    pub async fn propose(&self, source: &str, reason: &str) -> Result<PolicyVersion, PoliciesError> {
        let reason = check_reason(reason)?;
        if let Err(e) = compile(source) {
            self.refused(None, &e).await?;
            return Err(e);
        }
        let v = NewPolicyVersion {
            source: source.to_owned(),
            author: self.actor.to_owned(),
            reason: reason.to_owned(),
            proposed_at: self.now,
            restores: None,
        };
        let e = self.event(types::POLICY_PROPOSED, Outcome::Success, None).reason(reason);
        Ok(self.store.propose_policy(&v, &e).await?)
    }

    async fn proposed(&self, number: i64) -> Result<PolicyVersion, PoliciesError> {
        let v = self.store.policy_version(number).await?.ok_or(PoliciesError::Unknown(number))?;
        if v.status != VersionStatus::Proposed {
            return Err(PoliciesError::NotProposed(number, v.status.as_str()));
        }
        Ok(v)
    }

    /// Puts a proposed version in force. Under the two-person rule its author cannot.
    pub async fn approve(&self, number: i64) -> Result<PolicyVersion, PoliciesError> {
        let v = self.proposed(number).await?;
        if self.two_person && v.author == self.actor {
            let e = PoliciesError::SelfApproval(number, v.author.clone());
            self.refused(Some(number), &e).await?;
            return Err(e);
        }
        // Checked again: the release running now decides what compiles.
        if let Err(e) = compile(&v.source) {
            self.refused(Some(number), &e).await?;
            return Err(e);
        }
        let previous = self.store.active_policy().await?.map(|a| a.number);
        let mut e =
            self.event(types::POLICY_ACTIVATED, Outcome::Success, Some(number)).detail("author", v.author.clone());
        if let Some(p) = previous {
            e = e.detail("previous", p);
        }
        self.store.activate_policy(number, self.actor, self.now, &e).await.map_err(|err| match err {
            StoreError::Conflict => PoliciesError::NotProposed(number, "no longer proposed"),
            other => other.into(),
        })
    }

    pub async fn reject(&self, number: i64, reason: &str) -> Result<PolicyVersion, PoliciesError> {
        let reason = check_reason(reason)?;
        self.proposed(number).await?;
        let e = self.event(types::POLICY_REJECTED, Outcome::Success, Some(number)).reason(reason);
        Ok(self.store.reject_policy(number, &e).await?)
    }

    /// Puts an earlier version back in force at once, as a new version that restores it.
    /// It needs no second approver: the same text was approved by two people before, and
    /// in an incident the way back must be quick.
    pub async fn rollback(&self, number: i64, reason: &str) -> Result<PolicyVersion, PoliciesError> {
        let reason = check_reason(reason)?;
        let old = self.store.policy_version(number).await?.ok_or(PoliciesError::Unknown(number))?;
        if old.approved_by.is_none() {
            return Err(PoliciesError::NeverActive(number));
        }
        compile(&old.source)?;
        let v = NewPolicyVersion {
            source: old.source.clone(),
            author: self.actor.to_owned(),
            reason: format!("rollback to version {number}: {reason}"),
            proposed_at: self.now,
            restores: Some(number),
        };
        let e = self
            .event(types::POLICY_PROPOSED, Outcome::Success, None)
            .reason(v.reason.clone())
            .detail("restores", number);
        let new = self.store.propose_policy(&v, &e).await?;
        let previous = self.store.active_policy().await?.map(|a| a.number);
        let mut e = self
            .event(types::POLICY_ACTIVATED, Outcome::Success, Some(new.number))
            .detail("restores", number)
            .reason(v.reason.clone());
        if let Some(p) = previous {
            e = e.detail("previous", p);
        }
        Ok(self.store.activate_policy(new.number, self.actor, self.now, &e).await?)
    }

    pub async fn history(&self) -> Result<Vec<PolicyVersion>, PoliciesError> {
        Ok(self.store.policy_versions().await?)
    }

    pub async fn show(&self, number: i64) -> Result<PolicyVersion, PoliciesError> {
        self.store.policy_version(number).await?.ok_or(PoliciesError::Unknown(number))
    }

    /// A unified diff between two versions' files.
    pub async fn diff(&self, from: i64, to: i64) -> Result<String, PoliciesError> {
        let (a, b) = (self.show(from).await?, self.show(to).await?);
        Ok(similar::TextDiff::from_lines(&a.source, &b.source)
            .unified_diff()
            .context_radius(3)
            .header(&format!("version {from}"), &format!("version {to}"))
            .to_string())
    }

    /// Replays the decisions recorded since `since` against `source`.
    pub async fn simulate(&self, source: &str, since: OffsetDateTime) -> Result<Simulation, PoliciesError> {
        let proposed = compile(source)?;
        let recorded = recorded_decisions(self.store, since).await?;
        Ok(simulate(&proposed, recorded))
    }
}

/// The decisions recorded since `since` (the authorization API's `policy.decision` and
/// the gateway's `gateway.access`), oldest first.
pub async fn recorded_decisions(store: &dyn Store, since: OffsetDateTime) -> Result<Vec<Recorded>, StoreError> {
    let mut out = Vec::new();
    let Some(first) = store.audit_first_seq_at(wardgate_core::unix_micros(since)).await? else { return Ok(out) };
    let mut after = first - 1;
    loop {
        let page = store.audit_records(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page.iter().filter(|r| r.event_type == types::POLICY_DECISION || r.event_type == types::GATEWAY_ACCESS)
        {
            let Ok(rec) = serde_json::from_str::<AuditRecord>(&r.body) else { continue };
            let d = &rec.details;
            let request = d.get("request").cloned().and_then(|v| serde_json::from_value::<RecordedRequest>(v).ok());
            let effect = d.get("effect").and_then(|v| v.as_str()).and_then(Effect::parse);
            let required = d.get("required").and_then(|v| serde_json::from_value::<Aal>(v.clone()).ok());
            if let (Some(request), Some(effect), Some(required)) = (request, effect, required) {
                out.push(Recorded { request, effect, required });
            }
        }
    }
    Ok(out)
}
