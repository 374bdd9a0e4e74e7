//! The identity life cycle over HTTP (L1-L3): identity proofing and the factor inventory
//! in the admin API; help-desk recovery requests for people holding `recovery.open` or
//! `recovery.approve`; and the recovery link's own steps, which need no session.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wardgate_core::lifecycle::{ProofingClaim, parse_expiry};
use wardgate_core::policy::document::parse_duration;

use super::admin::Admin;
use super::{FlowBody, enroll_problem, flow_handle};
use crate::app::AppState;
use crate::auth::session::{FLOW_COOKIE, SignedIn, clear_cookie, set_cookie};
use crate::context::ClientContext;
use crate::governance::holds;
use crate::lifecycle::{GovernanceError, RECOVERY_APPROVE, RECOVERY_OPEN, inventory, proofing, recovery};
use crate::problem::{ApiJson, Problem};

fn problem(e: GovernanceError) -> Response {
    let p = match e {
        GovernanceError::UnknownUser(_) | GovernanceError::NotFound(_) => Problem::not_found().detail(e.to_string()),
        GovernanceError::Refused(why) => Problem::invalid_field(why),
        GovernanceError::NotPermitted(why) => {
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not permitted").detail(why)
        }
        GovernanceError::Conflict(why) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "The request's state does not allow this").detail(why)
        }
        GovernanceError::Store(e) => {
            tracing::error!(error = %e, "lifecycle: store failed");
            Problem::unavailable("the database is unreachable")
        }
    };
    p.into_response()
}

/// The administrator's username: `user:<name>` or `token:<id>:<name>`.
fn admin_name(admin: &Admin) -> &str {
    admin.actor.rsplit(':').next().unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofingBody {
    /// `in_person` or `remote_supervised`.
    method: String,
    document: String,
    evidence_ref: String,
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/users/{username}/proofing`: the calling administrator verified the person.
pub async fn record_proofing(
    State(app): State<AppState>,
    admin: Admin,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<ProofingBody>,
) -> Response {
    let claim =
        ProofingClaim { method: b.method, document: b.document, evidence_ref: b.evidence_ref, reason: b.reason };
    let in_force = app.access.in_force();
    let now = (app.clock)();
    match proofing::record(&*app.store, in_force.policy(), &admin.actor, &username, admin_name(&admin), &claim, now)
        .await
    {
        Ok(p) => (StatusCode::CREATED, axum::Json(proofing::json(&p))).into_response(),
        Err(e) => problem(e),
    }
}

/// `GET /api/v1/users/{username}/proofing`: the person's proofing records, oldest first.
pub async fn list_proofing(State(app): State<AppState>, _admin: Admin, Path(username): Path<String>) -> Response {
    let user = match crate::governance::user_named(&*app.store, &username).await {
        Ok(u) => u,
        Err(e) => return problem(e),
    };
    match app.store.proofings_of(&user.id).await {
        Ok(list) => axum::Json(serde_json::json!({"proofing": list.iter().map(proofing::json).collect::<Vec<_>>()}))
            .into_response(),
        Err(e) => problem(e.into()),
    }
}

#[derive(Deserialize)]
pub struct FactorQuery {
    #[serde(default)]
    user: Option<String>,
    /// Only factors expiring within this long (`30d`, `12h`), already expired included.
    #[serde(default)]
    expiring: Option<String>,
}

/// `GET /api/v1/factors?user=&expiring=`: the factor inventory, never a secret.
pub async fn factors(State(app): State<AppState>, _admin: Admin, Query(q): Query<FactorQuery>) -> Response {
    let expiring = match q.expiring.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => match parse_duration(s) {
            Some(d) => Some(d),
            None => {
                return Problem::invalid_field(format!("expiring={s:?}: a duration such as 30d or 12h"))
                    .into_response();
            }
        },
        None => None,
    };
    let user = q.user.as_deref().filter(|s| !s.is_empty());
    match inventory::list(&*app.store, user, expiring, (app.clock)()).await {
        Ok(rows) => axum::Json(serde_json::json!({"factors": rows})).into_response(),
        Err(e) => problem(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryBody {
    /// A date (`YYYY-MM-DD`), an RFC 3339 instant, or a duration from now (`90d`).
    #[serde(default)]
    at: Option<String>,
    /// Remove the expiry instead.
    #[serde(default)]
    clear: bool,
    reason: String,
}

/// `POST /api/v1/users/{username}/factors/{id}/expiry`.
pub async fn expire_factor(
    State(app): State<AppState>,
    admin: Admin,
    Path((username, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<ExpiryBody>,
) -> Response {
    let now = (app.clock)();
    let at = match (b.at.as_deref(), b.clear) {
        (Some(s), false) => match parse_expiry(s, now) {
            Some(t) => Some(t),
            None => {
                return Problem::invalid_field(format!(
                    "at={s:?}: a future date (YYYY-MM-DD), RFC 3339 instant or duration such as 90d"
                ))
                .into_response();
            }
        },
        (None, true) => None,
        _ => return Problem::invalid_field("give either at or clear").into_response(),
    };
    match inventory::expire(&*app.store, &admin.actor, &username, &id, at, &b.reason, now).await {
        Ok(f) => axum::Json(inventory::json(&username, &f, now)).into_response(),
        Err(e) => problem(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRecoveryBody {
    username: String,
    reason: String,
}

fn actor(cur: &crate::auth::session::Current) -> String {
    format!("user:{}", cur.user.username)
}

/// `POST /api/v1/recovery`: a help-desk agent opens a recovery request.
pub async fn open_recovery(
    State(app): State<AppState>,
    SignedIn(cur): SignedIn,
    ApiJson(b): ApiJson<OpenRecoveryBody>,
) -> Response {
    let now = (app.clock)();
    let in_force = app.access.in_force();
    let agent = cur.user.username.as_str();
    match recovery::open(&*app.store, in_force.policy(), &actor(&cur), &b.username, agent, &b.reason, now).await {
        Ok(r) => (StatusCode::CREATED, axum::Json(recovery::json(&r, now))).into_response(),
        Err(e) => problem(e),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pending: Option<bool>,
}

/// `GET /api/v1/recovery`: requests, newest first, for those who open or approve them.
pub async fn list_recovery(
    State(app): State<AppState>,
    SignedIn(cur): SignedIn,
    Query(q): Query<ListQuery>,
) -> Response {
    let now = (app.clock)();
    let in_force = app.access.in_force();
    let policy = in_force.policy();
    if !(holds(policy, &cur.user, RECOVERY_OPEN, now) || holds(policy, &cur.user, RECOVERY_APPROVE, now)) {
        return problem(GovernanceError::NotPermitted(format!("needs {RECOVERY_OPEN} or {RECOVERY_APPROVE}")));
    }
    match app.store.list_recovery(q.pending.unwrap_or(false)).await {
        Ok(list) => axum::Json(serde_json::json!({
            "requests": list.iter().map(|r| recovery::json(r, now)).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => problem(e.into()),
    }
}

/// `POST /api/v1/recovery/{id}/approve`: the answer carries the one-time link, once.
pub async fn approve_recovery(
    State(app): State<AppState>,
    SignedIn(cur): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let now = (app.clock)();
    let in_force = app.access.in_force();
    let ttl = time::Duration::minutes(app.governance.recovery_link_minutes as i64);
    let by = cur.user.username.as_str();
    match recovery::approve(&*app.store, in_force.policy(), &actor(&cur), &id, by, ttl, &app.base_url, now).await {
        Ok(a) => {
            let mut v = recovery::json(&a.request, now);
            v["link"] = a.link.into();
            axum::Json(v).into_response()
        }
        Err(e) => problem(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    #[serde(default)]
    comment: String,
}

/// `POST /api/v1/recovery/{id}/deny`.
pub async fn deny_recovery(
    State(app): State<AppState>,
    SignedIn(cur): SignedIn,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DenyBody>,
) -> Response {
    let now = (app.clock)();
    let in_force = app.access.in_force();
    let by = cur.user.username.as_str();
    match recovery::deny(&*app.store, in_force.policy(), &actor(&cur), &id, by, &b.comment, now).await {
        Ok(r) => axum::Json(recovery::json(&r, now)).into_response(),
        Err(e) => problem(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    token: String,
}

/// `POST /api/v1/recover`: opens a recovery link; continue with the `/api/v1/enroll/totp…`
/// or `/api/v1/enroll/webauthn…` steps, then `/api/v1/recover/finish`.
pub async fn recover(State(app): State<AppState>, ctx: ClientContext, ApiJson(b): ApiJson<LinkBody>) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match crate::auth::enroll::begin_recovery(&app, &ctx, &b.token).await {
        Ok(s) => {
            let mut resp = axum::Json(&s).into_response();
            if let Some(c) = set_cookie(FLOW_COOKIE, &s.flow) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(e) => enroll_problem(&e),
    }
}

/// `POST /api/v1/recover/finish`: stores the new factor and spends the link. No session.
pub async fn recover_finish(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<FlowBody>,
) -> Response {
    match crate::auth::enroll::finish_recovery(&app, &ctx, &flow_handle(b.flow, &headers)).await {
        Ok(label) => {
            let mut resp = axum::Json(serde_json::json!({"added": label})).into_response();
            resp.headers_mut().append(header::SET_COOKIE, clear_cookie(FLOW_COOKIE));
            resp
        }
        Err(e) => enroll_problem(&e),
    }
}
