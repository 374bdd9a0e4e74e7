//! `POST /api/v1/enroll…`: enrollment through a one-time link, as JSON.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::{CodeBody, FlowBody, PassphraseBody, enroll_problem, flow_handle};
use crate::app::AppState;
use crate::auth::enroll;
use crate::auth::session::{FLOW_COOKIE, set_cookie};
use crate::context::ClientContext;
use crate::problem::ApiJson;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginBody {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnBody {
    #[serde(default)]
    flow: Option<String>,
    credential: Box<RegisterPublicKeyCredential>,
    #[serde(default)]
    label: Option<String>,
}

fn limited(app: &AppState, ctx: &ClientContext) -> Option<Response> {
    app.login_limit.check(ctx.ip).err().map(IntoResponse::into_response)
}

pub async fn begin(State(app): State<AppState>, ctx: ClientContext, ApiJson(b): ApiJson<BeginBody>) -> Response {
    if let Some(r) = limited(&app, &ctx) {
        return r;
    }
    match enroll::begin(&app, &ctx, &b.token).await {
        Ok(s) => {
            let mut resp = (StatusCode::OK, axum::Json(&s)).into_response();
            if let Some(c) = set_cookie(FLOW_COOKIE, &s.flow) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(e) => enroll_problem(&e),
    }
}

pub async fn passphrase(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<PassphraseBody>,
) -> Response {
    if let Some(r) = limited(&app, &ctx) {
        return r;
    }
    let handle = flow_handle(b.flow, &headers);
    match enroll::set_passphrase(&app, &ctx, &handle, &b.passphrase, None).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => enroll_problem(&e),
    }
}

pub async fn totp(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<FlowBody>,
) -> Response {
    match enroll::totp_begin(&app, &ctx, &flow_handle(b.flow, &headers)).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => enroll_problem(&e),
    }
}

pub async fn totp_confirm(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<CodeBody>,
) -> Response {
    if let Some(r) = limited(&app, &ctx) {
        return r;
    }
    match enroll::totp_confirm(&app, &ctx, &flow_handle(b.flow, &headers), &b.code).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => enroll_problem(&e),
    }
}

pub async fn webauthn_challenge(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<FlowBody>,
) -> Response {
    match enroll::webauthn_begin(&app, &ctx, &flow_handle(b.flow, &headers)).await {
        Ok(ccr) => axum::Json(ccr).into_response(),
        Err(e) => enroll_problem(&e),
    }
}

pub async fn webauthn(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<WebauthnBody>,
) -> Response {
    match enroll::webauthn_finish(&app, &ctx, &flow_handle(b.flow, &headers), &b.credential, b.label.as_deref()).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => enroll_problem(&e),
    }
}

/// Completes enrollment: 200 with the recovery codes (shown once) and a session.
pub async fn finish(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<FlowBody>,
) -> Response {
    match enroll::finish(&app, &ctx, &flow_handle(b.flow, &headers)).await {
        Ok(f) => {
            let mut resp = super::login::signed_in_response(&app, &f.signed_in, None);
            let codes: Vec<&str> = f.recovery_codes.iter().map(|c| c.as_str()).collect();
            let body = serde_json::json!({
                "status": "enrolled",
                "user": {"id": f.signed_in.user.id, "username": f.signed_in.user.username.as_str()},
                "session": super::login::session_json(&app, &f.signed_in.session),
                "recovery_codes": codes,
            });
            *resp.body_mut() = axum::body::Body::from(serde_json::to_vec(&body).unwrap_or_default());
            resp
        }
        Err(e) => enroll_problem(&e),
    }
}
