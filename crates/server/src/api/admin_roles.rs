//! `/api/v1/admin/roles` and `/api/v1/admin/users/{username}/roles…`: the roles of the
//! policy in force, and who holds them (A1). Same callers and records as the rest of the
//! admin API (`Admin`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::admin::Admin;
use crate::accounts::UserView;
use crate::app::AppState;
use crate::problem::{ApiJson, Problem};
use crate::roles::{Roles, RolesError};

fn problem(e: &RolesError) -> Response {
    match e {
        RolesError::UnknownUser(_) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "No such resource").detail(e.to_string())
        }
        RolesError::NotHeld(..) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "No such resource").detail(e.to_string())
        }
        RolesError::UnknownRole(_) | RolesError::Past => Problem::invalid_field(e.to_string()),
        RolesError::NotPrivileged(_) => {
            Problem::new(StatusCode::CONFLICT, "not-privileged", "Administrative roles need a privileged account")
                .detail(e.to_string())
        }
        RolesError::Store(err) => {
            tracing::error!(error = %err, "admin api: roles failed");
            Problem::unavailable("the operation could not be completed")
        }
    }
    .into_response()
}

/// The roles of the policy in force (the default set before one is approved).
pub async fn list_roles(State(app): State<AppState>, _admin: Admin) -> Response {
    let in_force = app.access.in_force();
    let roles: Vec<_> = in_force
        .policy()
        .roles()
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "description": r.description,
                "permissions": r.permissions.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "privileged_only": r.administrative(),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "policy_version": in_force.version(), "roles": roles })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    role: String,
    /// When the assignment ends (RFC 3339); absent: it does not.
    #[serde(default)]
    until: Option<String>,
}

pub async fn assign_role(
    State(app): State<AppState>,
    admin: Admin,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<AssignBody>,
) -> Response {
    let until = match b.until.as_deref().map(|t| OffsetDateTime::parse(t, &Rfc3339)) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return Problem::invalid_field("until: an RFC 3339 time").into_response(),
    };
    let in_force = app.access.in_force();
    let now = (app.clock)();
    match Roles::new(&*app.store, &admin.actor, now, in_force.policy()).assign(&username, &b.role, until).await {
        Ok(u) => axum::Json(UserView::new(&u, now)).into_response(),
        Err(e) => problem(&e),
    }
}

pub async fn remove_role(
    State(app): State<AppState>,
    admin: Admin,
    Path((username, role)): Path<(String, String)>,
) -> Response {
    let in_force = app.access.in_force();
    let now = (app.clock)();
    match Roles::new(&*app.store, &admin.actor, now, in_force.policy()).remove(&username, &role).await {
        Ok(u) => axum::Json(UserView::new(&u, now)).into_response(),
        Err(e) => problem(&e),
    }
}
