//! `/scim/v2/Groups`: HR's teams, and through `[scim.group_roles]` the roles their members
//! hold. Every membership change recomputes the affected people's SCIM-managed roles at
//! once, in the same request: a person taken out of "ICU Nurses" loses the role with the
//! response, and the gateway and policy read roles from the store at each decision.

use std::collections::{BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{AccountStatus, User};
use wardgate_core::scim::group::{GroupInput, GroupRoles, ScimGroup};
use wardgate_core::scim::patch::{self, Schema};
use wardgate_core::scim::{GROUP_SCHEMA, ScimType};
use wardgate_store::StoreError;

use super::{BASE, Connector, ListQuery, ScimError, check_if_match, list_response, parse_body, resource, with_meta};
use crate::app::AppState;

const SCHEMA: Schema = Schema { core_urn: GROUP_SCHEMA, extensions: &[], read_only: &["id", "meta"] };

fn base(app: &AppState) -> String {
    format!("{}{BASE}", app.base_url.trim_end_matches('/'))
}

fn render(app: &AppState, g: &ScimGroup, users: &HashMap<String, User>) -> Value {
    // Terminated people drop out of every group's listing; their ids stay unused forever.
    let members: Vec<String> = g.members.iter().filter(|id| users.contains_key(*id)).cloned().collect();
    let base = base(app);
    with_meta(g.to_json(&members, &base), "Group", g.created_at, g.updated_at, &format!("{base}/Groups/{}", g.id))
}

/// Live accounts by id, for member names and checks.
async fn live_users(app: &AppState, ids: &[String]) -> Result<HashMap<String, User>, ScimError> {
    let mut out = HashMap::new();
    for id in ids {
        if let Some(u) = app.store.user_by_id(id).await?.filter(|u| u.status != AccountStatus::Terminated) {
            out.insert(id.clone(), u);
        }
    }
    Ok(out)
}

/// Every account not terminated, by id, in one paged walk of the directory: listing all
/// groups names most of the hospital, and one read per member would be thousands.
async fn directory(app: &AppState) -> Result<HashMap<String, User>, ScimError> {
    let users = crate::accounts::Accounts::new(&*app.store, "scim", (app.clock)(), &app.auth.settings).list().await?;
    Ok(users.into_iter().filter(|u| u.status != AccountStatus::Terminated).map(|u| (u.id.clone(), u)).collect())
}

async fn load(app: &AppState, id: &str) -> Result<ScimGroup, ScimError> {
    app.store.scim_group(id).await?.ok_or_else(|| ScimError::not_found("Group"))
}

fn event(c: &Connector, kind: &'static str, g: &ScimGroup, now: time::OffsetDateTime) -> AuditEvent {
    AuditEvent::known(now, kind, Outcome::Success)
        .actor(c.actor())
        .subject(g.display_name.clone())
        .detail("group_id", g.id.clone())
        .detail("scim_token_id", c.token.id.clone())
        .correlation_id(c.ctx.request_id.clone())
}

fn conflict(e: StoreError, name: &str) -> ScimError {
    match e {
        StoreError::Conflict => {
            ScimError::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), format!("a group named {name:?} exists"))
        }
        e => e.into(),
    }
}

/// Reads a group and checks that every member is a live account.
async fn read_group(app: &AppState, body: &Value) -> Result<(GroupInput, HashMap<String, User>), ScimError> {
    let input = GroupInput::from_json(body).map_err(|e| ScimError::bad(ScimType::InvalidValue, e.0))?;
    let users = live_users(app, &input.members).await?;
    if let Some(missing) = input.members.iter().find(|m| !users.contains_key(*m)) {
        return Err(ScimError::bad(ScimType::InvalidValue, format!("no user with id {missing}")));
    }
    Ok((input, users))
}

pub async fn create(State(app): State<AppState>, c: Connector, body: Bytes) -> Result<Response, ScimError> {
    let (input, users) = read_group(&app, &parse_body(&body)?).await?;
    let now = (app.clock)();
    let id = wardgate_core::token::random_id()
        .map_err(|_| ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "no randomness"))?;
    let g = ScimGroup {
        id,
        display_name: input.display_name,
        external_id: input.external_id,
        members: input.members,
        created_at: now,
        updated_at: now,
    };
    let e = event(&c, types::SCIM_GROUP_CREATED, &g, now).detail("members", g.members.join(" "));
    app.store.create_scim_group(&g, &e).await.map_err(|e| conflict(e, &g.display_name))?;
    sync_roles(&app, &c, g.members.iter().cloned().collect()).await?;
    let body = render(&app, &g, &users);
    let location = format!("{}/Groups/{}", base(&app), g.id);
    Ok(resource(StatusCode::CREATED, &body, Some(&location)))
}

pub async fn get(
    State(app): State<AppState>,
    _c: Connector,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let g = load(&app, &id).await?;
    let users = live_users(&app, &g.members).await?;
    let body = super::project(render(&app, &g, &users), q.attributes.as_deref(), q.excluded_attributes.as_deref());
    Ok(resource(StatusCode::OK, &body, None))
}

/// `POST /Groups/.search` (RFC 7644 §3.4.3).
pub async fn search(State(app): State<AppState>, c: Connector, body: Bytes) -> Result<Response, ScimError> {
    let q = super::search_query(&parse_body(&body)?)?;
    list(State(app), c, Query(q)).await
}

pub async fn list(
    State(app): State<AppState>,
    _c: Connector,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let groups = app.store.scim_groups().await?;
    let users = directory(&app).await?;
    let all = groups.iter().map(|g| render(&app, g, &users)).collect();
    list_response(all, &q, GROUP_SCHEMA)
}

pub async fn replace(
    State(app): State<AppState>,
    c: Connector,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let _one_at_a_time = super::WRITES.lock().await;
    let g = load(&app, &id).await?;
    check_if_match(&headers, &render(&app, &g, &live_users(&app, &g.members).await?))?;
    let body = parse_body(&body)?;
    update(&app, &c, g, &body).await
}

pub async fn patch(
    State(app): State<AppState>,
    c: Connector,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let _one_at_a_time = super::WRITES.lock().await;
    let g = load(&app, &id).await?;
    let mut current = render(&app, &g, &live_users(&app, &g.members).await?);
    check_if_match(&headers, &current)?;
    let ops = patch::parse_request(&parse_body(&body)?).map_err(|e| ScimError::bad(e.scim_type, e.detail))?;
    patch::apply(&mut current, &ops, &SCHEMA).map_err(|e| ScimError::bad(e.scim_type, e.detail))?;
    update(&app, &c, g, &current).await
}

async fn update(app: &AppState, c: &Connector, old: ScimGroup, body: &Value) -> Result<Response, ScimError> {
    let (input, users) = read_group(app, body).await?;
    let now = (app.clock)();
    let g = ScimGroup {
        display_name: input.display_name,
        external_id: input.external_id,
        members: input.members,
        updated_at: now,
        ..old.clone()
    };
    if g != (ScimGroup { updated_at: now, ..old.clone() }) {
        let added: Vec<&str> = g.members.iter().filter(|m| !old.members.contains(m)).map(String::as_str).collect();
        let removed: Vec<&str> = old.members.iter().filter(|m| !g.members.contains(m)).map(String::as_str).collect();
        let e = event(c, types::SCIM_GROUP_UPDATED, &g, now)
            .detail("members_added", added.join(" "))
            .detail("members_removed", removed.join(" "))
            .detail("previous_name", old.display_name.clone());
        app.store.update_scim_group(&g, &e).await.map_err(|e| conflict(e, &g.display_name))?;
        // A renamed group may map to other roles: everyone in it, before and after, is
        // recomputed.
        sync_roles(app, c, old.members.iter().chain(&g.members).cloned().collect()).await?;
    }
    Ok(resource(StatusCode::OK, &render(app, &g, &users), None))
}

pub async fn delete(
    State(app): State<AppState>,
    c: Connector,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let _one_at_a_time = super::WRITES.lock().await;
    let g = load(&app, &id).await?;
    check_if_match(&headers, &render(&app, &g, &live_users(&app, &g.members).await?))?;
    let now = (app.clock)();
    app.store.delete_scim_group(&g.id, &event(&c, types::SCIM_GROUP_DELETED, &g, now)).await?;
    sync_roles(&app, &c, g.members.iter().cloned().collect()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Recomputes the SCIM-managed roles of `user_ids` from their groups now. Roles the policy
/// in force does not define, and administrative roles for accounts that are not
/// privileged (A4), are skipped and named in the record.
async fn sync_roles(app: &AppState, c: &Connector, user_ids: BTreeSet<String>) -> Result<(), ScimError> {
    let mapping = GroupRoles(app.scim.group_roles.clone());
    if mapping.0.is_empty() {
        return Ok(());
    }
    let groups = app.store.scim_groups().await?;
    let policy = crate::roles::catalog(&*app.store).await?;
    let now = (app.clock)();
    for id in user_ids {
        let Some(user) = app.store.user_by_id(&id).await?.filter(|u| u.status != AccountStatus::Terminated) else {
            continue;
        };
        let names: Vec<&str> =
            groups.iter().filter(|g| g.members.contains(&id)).map(|g| g.display_name.as_str()).collect();
        let mut skipped = Vec::new();
        let wanted: BTreeSet<String> = mapping
            .roles_for(names.iter().copied())
            .into_iter()
            .filter(|r| match policy.role(r) {
                None => {
                    skipped.push(format!("{r} (not defined by the policy in force)"));
                    false
                }
                Some(def) if def.administrative() && !user.privileged => {
                    skipped.push(format!("{r} (administrative; the account is not privileged)"));
                    false
                }
                Some(_) => true,
            })
            .collect();
        let roles = mapping.recompute(&user.roles, &wanted);
        if roles == user.roles && skipped.is_empty() {
            continue;
        }
        let added: Vec<&String> = roles.iter().filter(|r| !user.roles.contains(r)).collect();
        let removed: Vec<&String> = user.roles.iter().filter(|r| !roles.contains(r)).collect();
        let changed = user.clone().with_roles(roles.clone());
        let e = AuditEvent::known(now, types::SCIM_ROLES_CHANGED, Outcome::Success)
            .actor(c.actor())
            .subject(user.username.as_str())
            .detail("user_id", user.id.clone())
            .detail("scim_token_id", c.token.id.clone())
            .detail("groups", names.join(", "))
            .detail("added", added.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
            .detail("removed", removed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
            .detail("skipped", skipped.join("; "))
            .correlation_id(c.ctx.request_id.clone());
        app.store.update_user(&changed, &e).await?;
    }
    Ok(())
}
