//! `POST /api/v1/breakglass`: the signed-in person opens emergency access (A5).
//!
//! The record is durable before the answer; if it cannot be written (the database is
//! unreachable) the access is refused with a 503 that says so — never granted silently.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use wardgate_core::governance::{BreakGlass, BreakGlassRequest};

use crate::app::AppState;
use crate::auth::session::{Current, SignedIn};
use crate::context::ClientContext;
use crate::governance::{GovernanceError, alert, breakglass};
use crate::problem::{ApiJson, Problem};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    /// One of `governance.breakglass_reason_codes`.
    pub reason_code: String,
    /// Why, in the person's words; at least `governance.breakglass_min_justification_chars`.
    pub justification: String,
}

pub async fn open(
    State(app): State<AppState>,
    ctx: ClientContext,
    SignedIn(cur): SignedIn,
    ApiJson(body): ApiJson<OpenBody>,
) -> Response {
    match open_for(&app, &cur, &ctx, body.reason_code, body.justification).await {
        Ok(bg) => {
            let json = breakglass::json(&bg, app.governance.review_within(), bg.opened_at);
            (StatusCode::CREATED, axum::Json(json)).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// Opens emergency access for the signed-in person and sends the alerts: shared by the
/// API and the account page.
pub(crate) async fn open_for(
    app: &AppState,
    cur: &Current,
    ctx: &ClientContext,
    reason_code: String,
    justification: String,
) -> Result<BreakGlass, Problem> {
    let now = (app.clock)();
    let request = BreakGlassRequest {
        user_id: cur.user.id.clone(),
        username: cur.user.username.clone(),
        reason_code,
        justification,
        session_id: Some(cur.session.id.clone()),
        client_ip: ctx.ip,
    };
    let in_force = app.access.in_force();
    let rules = app.governance.breakglass_rules();
    let bg = match breakglass::open(
        &*app.store,
        in_force.policy(),
        &rules,
        &cur.user,
        request,
        &cur.session.correlation_id,
        now,
    )
    .await
    {
        Ok(bg) => bg,
        Err(GovernanceError::NotPermitted(why)) => {
            return Err(
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Break-glass access is not permitted").detail(why)
            );
        }
        Err(GovernanceError::Refused(why)) => return Err(Problem::invalid_field(why)),
        Err(e) => {
            tracing::error!(error = %e, "break-glass: store failed");
            return Err(Problem::unavailable(
                "the database is unreachable, so emergency access cannot be recorded and is not granted; follow the downtime procedure",
            ));
        }
    };
    let alert_body = alert::body(&bg, &cur.user.display_name, &app.node_id, &app.base_url);
    alert::send(Arc::clone(&app.store), Arc::clone(&app.governance), alert_body, app.node_id.clone(), app.clock);
    Ok(bg)
}

/// `POST /api/v1/breakglass/{id}/end`: the person ends their own emergency access early.
pub async fn end(State(app): State<AppState>, SignedIn(cur): SignedIn, Path(id): Path<String>) -> Response {
    let now = (app.clock)();
    match breakglass::end(&*app.store, &cur.user, &id, &cur.session.correlation_id, now).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => Problem::new(StatusCode::CONFLICT, "conflict", "The access has already ended").into_response(),
        Err(GovernanceError::NotFound(_)) => Problem::not_found().into_response(),
        Err(e) => {
            tracing::error!(error = %e, "break-glass end: store failed");
            Problem::unavailable("the database is unreachable").into_response()
        }
    }
}
