//! Access reviews (A6): a campaign over a scope's role assignments, decided item by item by
//! one reviewer; a revocation takes the role away at once (same transaction); at the
//! deadline undecided items follow the campaign's default (revoke, or escalate: left
//! undecided and reported).

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::governance::{Campaign, DEADLINE_DECIDER, Decision, DefaultAction, Item, Scope};
use wardgate_core::identity::AccountStatus;
use wardgate_store::Store;

use super::{GovernanceError, new_id, ts, user_named};

fn refused(e: impl std::fmt::Display) -> GovernanceError {
    GovernanceError::Refused(e.to_string())
}

/// Every account, page by page.
async fn all_users(store: &dyn Store) -> Result<Vec<wardgate_core::identity::User>, GovernanceError> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map(|u: &wardgate_core::identity::User| u.username.as_str().to_owned());
        let page = store.list_users(after.as_deref(), 500).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

pub async fn start(
    store: &dyn Store,
    actor: &str,
    scope: Scope,
    reviewer: &str,
    deadline: OffsetDateTime,
    default_action: DefaultAction,
    now: OffsetDateTime,
) -> Result<(Campaign, Vec<Item>), GovernanceError> {
    let who = user_named(store, reviewer).await?;
    if who.status != AccountStatus::Active {
        return Err(refused(format!("the reviewer {} is not an active account", who.username)));
    }
    if let Scope::Vendor(v) = &scope
        && store.vendor(v).await?.is_none()
    {
        return Err(GovernanceError::NotFound(format!("vendor {v}")));
    }
    let c = Campaign::new(new_id()?, scope, who.username, actor.to_owned(), deadline, default_action, now)
        .map_err(refused)?;
    let users = all_users(store).await?;
    let mut ids = Vec::new();
    for _ in 0..users.iter().map(|u| u.roles.len()).sum::<usize>() {
        ids.push(new_id()?);
    }
    let mut ids = ids.into_iter();
    let items = c.items_for(&users, || ids.next().unwrap_or_default());
    let e = AuditEvent::known(now, types::REVIEW_CAMPAIGN_STARTED, Outcome::Success)
        .actor(actor)
        .detail("campaign_id", c.id.clone())
        .detail("scope", c.scope.to_string())
        .detail("reviewer", c.reviewer.as_str())
        .detail("deadline", ts(c.deadline))
        .detail("default_action", c.default_action.as_str())
        .detail("items", items.len());
    store.create_campaign(&c, &items, &e).await?;
    Ok((c, items))
}

/// The campaign holding item `item_id`, and the item.
async fn find_item(store: &dyn Store, item_id: &str) -> Result<(Campaign, Item), GovernanceError> {
    for c in store.list_campaigns().await? {
        if let Some(item) = store.campaign_items(&c.id).await?.into_iter().find(|i| i.id == item_id) {
            return Ok((c, item));
        }
    }
    Err(GovernanceError::NotFound(format!("review item {item_id}")))
}

fn decided_event(actor: &str, c: &Campaign, item: &Item, now: OffsetDateTime) -> AuditEvent {
    let mut e = AuditEvent::known(now, types::REVIEW_ITEM_DECIDED, Outcome::Success)
        .actor(actor)
        .subject(item.username.as_str())
        .detail("campaign_id", c.id.clone())
        .detail("item_id", item.id.clone())
        .detail("role", item.role.clone())
        .detail("decision", item.decision.map(Decision::as_str).unwrap_or_default())
        .detail("decided_by", item.decided_by.clone().unwrap_or_default());
    if let Some(comment) = &item.comment {
        e = e.detail("comment", comment.clone());
    }
    e
}

pub async fn decide(
    store: &dyn Store,
    actor: &str,
    item_id: &str,
    reviewer: &str,
    decision: Decision,
    comment: &str,
    now: OffsetDateTime,
) -> Result<Item, GovernanceError> {
    let (c, mut item) = find_item(store, item_id).await?;
    let who = user_named(store, reviewer).await?;
    c.decide(&mut item, &who.username, decision, comment, now).map_err(refused)?;
    let e = decided_event(actor, &c, &item, now);
    if !store.decide_item(&item.id, decision, who.username.as_str(), now, item.comment.as_deref(), &e).await? {
        return Err(GovernanceError::Conflict("the item was decided meanwhile, or its campaign closed".into()));
    }
    Ok(item)
}

/// Closes a campaign: at or after the deadline, undecided items follow the default first.
/// Returns the campaign and how many items were left undecided (escalated).
pub async fn close(
    store: &dyn Store,
    actor: &str,
    id: &str,
    now: OffsetDateTime,
) -> Result<(Campaign, usize), GovernanceError> {
    let mut c = store.campaign(id).await?.ok_or_else(|| GovernanceError::NotFound(format!("campaign {id}")))?;
    if !c.is_open() {
        return Err(refused("the campaign is closed"));
    }
    let mut undecided = 0;
    for mut item in store.campaign_items(id).await? {
        if item.decision.is_some() {
            continue;
        }
        match c.apply_default(&mut item, now) {
            Some(d) => {
                let e = decided_event(actor, &c, &item, now);
                store.decide_item(&item.id, d, DEADLINE_DECIDER, now, item.comment.as_deref(), &e).await?;
            }
            None => undecided += 1,
        }
    }
    c.close(now).map_err(refused)?;
    let e = AuditEvent::known(now, types::REVIEW_CAMPAIGN_CLOSED, Outcome::Success)
        .actor(actor)
        .detail("campaign_id", c.id.clone())
        .detail("undecided", undecided);
    store.close_campaign(id, now, &e).await?;
    Ok((c, undecided))
}

/// The node's periodic sweep: closes every open campaign past its deadline whose default
/// is `revoke` (revoking what is undecided). Campaigns whose default is `escalate` stay
/// open past the deadline — their undecided items wait for a person, flagged `OVERDUE` in
/// `review list` and counted in the `wardgate_review_campaigns_escalated` gauge — until
/// someone decides them or closes the campaign. Returns (closed, escalated).
pub async fn close_due(store: &dyn Store, actor: &str, now: OffsetDateTime) -> Result<(usize, usize), GovernanceError> {
    let (mut closed, mut escalated) = (0, 0);
    for c in store.list_campaigns().await? {
        if !c.overdue_at(now) {
            continue;
        }
        match c.default_action {
            DefaultAction::Revoke => {
                close(store, actor, &c.id, now).await?;
                closed += 1;
            }
            DefaultAction::Escalate => escalated += 1,
        }
    }
    metrics::gauge!("wardgate_review_campaigns_escalated").set(escalated as f64);
    Ok((closed, escalated))
}

pub fn campaign_json(c: &Campaign, items: &[Item], now: OffsetDateTime) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "scope": c.scope.to_string(),
        "reviewer": c.reviewer.as_str(),
        "created_by": c.created_by,
        "created_at": ts(c.created_at),
        "deadline": ts(c.deadline),
        "default_action": c.default_action.as_str(),
        "closed_at": c.closed_at.map(ts),
        "overdue": c.overdue_at(now),
        "items": items.iter().map(|i| serde_json::json!({
            "id": i.id,
            "username": i.username.as_str(),
            "role": i.role,
            "decision": i.decision.map(Decision::as_str),
            "decided_by": i.decided_by,
            "decided_at": i.decided_at.map(ts),
            "comment": i.comment,
        })).collect::<Vec<_>>(),
    })
}
