//! `/scim/v2/Users`: people as HR sees them, mapped onto Wardgate accounts.
//!
//! A User created here is an `invited` account, as `wardgate user add` makes, but no
//! enrollment link goes back to the connector: whoever holds the link enrolls the
//! factors, so the help desk issues it (`wardgate user enroll-link`) to the person after
//! checking who they are. `active: false` disables the account exactly as `wardgate user
//! disable` does; DELETE terminates it, and the username stays reserved forever.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{AccountStatus, User, Username};
use wardgate_core::scim::group::ScimGroup;
use wardgate_core::scim::patch::{self, Schema};
use wardgate_core::scim::user::ScimUser;
use wardgate_core::scim::{ENTERPRISE_SCHEMA, ScimType, USER_SCHEMA};

use super::{BASE, Connector, ListQuery, ScimError, check_if_match, list_response, parse_body, resource, with_meta};
use crate::accounts::{self, Accounts, NewUser};
use crate::app::AppState;

pub(super) const SCHEMA: Schema = Schema {
    core_urn: USER_SCHEMA,
    extensions: &[ENTERPRISE_SCHEMA],
    // Group membership is changed through the group, never through the member.
    read_only: &["id", "meta", "groups"],
};

struct Loaded {
    user: User,
    stored: Option<ScimUser>,
    modified: OffsetDateTime,
}

fn location(app: &AppState, id: &str) -> String {
    format!("{}{BASE}/Users/{id}", app.base_url.trim_end_matches('/'))
}

fn stored(v: Value) -> Option<ScimUser> {
    // Written by us from a `ScimUser`; a row that no longer decodes is served from the
    // account alone rather than failing the request.
    serde_json::from_value(v).ok()
}

async fn load(app: &AppState, id: &str) -> Result<Loaded, ScimError> {
    let user = app.store.user_by_id(id).await?.filter(|u| u.status != AccountStatus::Terminated);
    let user = user.ok_or_else(|| ScimError::not_found("User"))?;
    let (stored, modified) = match app.store.scim_attributes(id).await? {
        Some((v, at)) => (stored(v), at),
        None => (None, user.created_at),
    };
    Ok(Loaded { user, stored, modified })
}

fn groups_of(user_id: &str, groups: &[ScimGroup]) -> Vec<(String, String)> {
    groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m == user_id))
        .map(|g| (g.id.clone(), g.display_name.clone()))
        .collect()
}

fn render(app: &AppState, l: &Loaded, groups: &[ScimGroup]) -> Value {
    let body = ScimUser::of(&l.user, l.stored.as_ref()).to_json(&l.user.id, &groups_of(&l.user.id, groups));
    with_meta(body, "User", l.user.created_at, l.modified, &location(app, &l.user.id))
}

fn event(c: &Connector, kind: &'static str, user: &User, now: OffsetDateTime) -> AuditEvent {
    AuditEvent::known(now, kind, Outcome::Success)
        .actor(c.actor())
        .subject(user.username.as_str())
        .detail("user_id", user.id.clone())
        .detail("scim_token_id", c.token.id.clone())
        .correlation_id(c.ctx.request_id.clone())
}

fn read_user(body: &Value) -> Result<ScimUser, ScimError> {
    ScimUser::from_json(body).map_err(|e| ScimError::bad(ScimType::InvalidValue, e.0))
}

pub async fn create(State(app): State<AppState>, c: Connector, body: Bytes) -> Result<Response, ScimError> {
    let s = read_user(&parse_body(&body)?)?;
    let now = (app.clock)();
    let actor = c.actor();
    let accounts = Accounts::new(&*app.store, &actor, now, &app.auth.settings);
    let new = NewUser {
        username: s.user_name.clone(),
        display_name: Some(s.wardgate_display_name()),
        email: s.primary_email().map(str::to_owned),
        employee_id: s.employee_number.clone(),
        ..NewUser::default()
    };
    let user = accounts.create(new).await?;
    let attrs = serde_json::to_value(&s).unwrap_or_default();
    let e = event(&c, types::SCIM_USER_UPDATED, &user, now).detail("external_id", s.external_id.clone());
    app.store.save_scim_user(&user, &attrs, now, &e).await?;
    if !s.active {
        accounts.disable(user.username.as_str()).await?;
    }
    let loaded = load(&app, &user.id).await?;
    let groups = app.store.scim_groups().await?;
    Ok(resource(StatusCode::CREATED, &render(&app, &loaded, &groups), Some(&location(&app, &user.id))))
}

pub async fn get(
    State(app): State<AppState>,
    _c: Connector,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let loaded = load(&app, &id).await?;
    let groups = app.store.scim_groups().await?;
    let body =
        super::project(render(&app, &loaded, &groups), q.attributes.as_deref(), q.excluded_attributes.as_deref());
    Ok(resource(StatusCode::OK, &body, None))
}

/// `POST /Users/.search` (RFC 7644 §3.4.3).
pub async fn search(State(app): State<AppState>, c: Connector, body: Bytes) -> Result<Response, ScimError> {
    let q = super::search_query(&parse_body(&body)?)?;
    list(State(app), c, Query(q)).await
}

pub async fn list(
    State(app): State<AppState>,
    _c: Connector,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let now = (app.clock)();
    let users = Accounts::new(&*app.store, "scim", now, &app.auth.settings).list().await?;
    let mut attrs: std::collections::HashMap<String, (Value, OffsetDateTime)> =
        app.store.all_scim_attributes().await?.into_iter().map(|(id, v, at)| (id, (v, at))).collect();
    let groups = app.store.scim_groups().await?;
    let all = users
        .into_iter()
        .filter(|u| u.status != AccountStatus::Terminated)
        .map(|user| {
            let (stored, modified) = match attrs.remove(&user.id) {
                Some((v, at)) => (stored(v), at),
                None => (None, user.created_at),
            };
            render(&app, &Loaded { user, stored, modified }, &groups)
        })
        .collect();
    list_response(all, &q, USER_SCHEMA)
}

pub async fn replace(
    State(app): State<AppState>,
    c: Connector,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let _one_at_a_time = super::WRITES.lock().await;
    let loaded = load(&app, &id).await?;
    let groups = app.store.scim_groups().await?;
    check_if_match(&headers, &render(&app, &loaded, &groups))?;
    let new = read_user(&parse_body(&body)?)?;
    update(&app, &c, loaded, new).await
}

pub async fn patch(
    State(app): State<AppState>,
    c: Connector,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let _one_at_a_time = super::WRITES.lock().await;
    let loaded = load(&app, &id).await?;
    let groups = app.store.scim_groups().await?;
    let mut current = render(&app, &loaded, &groups);
    check_if_match(&headers, &current)?;
    let ops = patch::parse_request(&parse_body(&body)?).map_err(|e| ScimError::bad(e.scim_type, e.detail))?;
    patch::apply(&mut current, &ops, &SCHEMA).map_err(|e| ScimError::bad(e.scim_type, e.detail))?;
    let new = read_user(&current)?;
    update(&app, &c, loaded, new).await
}

/// Applies a new SCIM form of an account: its profile, then its status.
async fn update(app: &AppState, c: &Connector, l: Loaded, new: ScimUser) -> Result<Response, ScimError> {
    let now = (app.clock)();
    let user = l.user.clone();
    let asked = Username::parse(&new.user_name).map_err(|e| ScimError::bad(ScimType::InvalidValue, e.to_string()))?;
    if asked != user.username {
        // A username names one person for good, in every audit record it appears in.
        return Err(ScimError::bad(
            ScimType::Mutability,
            "userName cannot change: a Wardgate username belongs to one person forever",
        ));
    }
    let invalid = |e: crate::accounts::AccountError| ScimError::bad(ScimType::InvalidValue, e.to_string());
    let mut changed = user.clone();
    changed.display_name = accounts::display_name(&new.wardgate_display_name()).map_err(invalid)?;
    changed.email = new.primary_email().map(accounts::email).transpose().map_err(invalid)?.unwrap_or_default();
    changed.employee_id = new.employee_number.as_deref().map(accounts::employee_id).transpose().map_err(invalid)?;
    let mut keep = new.clone();
    keep.active = true; // the account's status says it; do not keep a second copy
    if changed != user || l.stored.as_ref() != Some(&keep) {
        let fields: Vec<&str> = [
            ("display_name", changed.display_name != user.display_name),
            ("email", changed.email != user.email),
            ("employee_id", changed.employee_id != user.employee_id),
        ]
        .into_iter()
        .filter_map(|(f, c)| c.then_some(f))
        .collect();
        let e = event(c, types::SCIM_USER_UPDATED, &changed, now)
            .detail("changed", fields.join(" "))
            .detail("external_id", new.external_id.clone());
        let attrs = serde_json::to_value(&keep).unwrap_or_default();
        app.store.save_scim_user(&changed, &attrs, now, &e).await?;
    }
    let actor = c.actor();
    let accounts = Accounts::new(&*app.store, &actor, now, &app.auth.settings);
    match (new.active, user.status) {
        (false, AccountStatus::Active | AccountStatus::Invited) => {
            accounts.disable(user.username.as_str()).await?;
        }
        (true, AccountStatus::Disabled) => {
            accounts.enable(user.username.as_str()).await?;
        }
        _ => {}
    }
    let loaded = load(app, &user.id).await?;
    let groups = app.store.scim_groups().await?;
    Ok(resource(StatusCode::OK, &render(app, &loaded, &groups), None))
}

pub async fn delete(
    State(app): State<AppState>,
    c: Connector,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let _one_at_a_time = super::WRITES.lock().await;
    let loaded = load(&app, &id).await?;
    let groups = app.store.scim_groups().await?;
    check_if_match(&headers, &render(&app, &loaded, &groups))?;
    let actor = c.actor();
    Accounts::new(&*app.store, &actor, (app.clock)(), &app.auth.settings)
        .terminate(loaded.user.username.as_str())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
