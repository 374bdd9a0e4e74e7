//! `POST /api/v1/login…`: the login flow as JSON. The pages' script uses these too.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use webauthn_rs::prelude::PublicKeyCredential;

use super::{CodeBody, FlowBody, PassphraseBody, flow_handle, login_problem};
use crate::app::AppState;
use crate::auth::login::{self, Advanced, SignedIn, Step};
use crate::auth::session::{FLOW_COOKIE, SESSION_COOKIE, SignedIn as Authenticated, clear_cookie, set_cookie};
use crate::context::ClientContext;
use crate::problem::ApiJson;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default)]
    username: Option<String>,
    /// From a one-factor session (its cookie): ask only for the second factor.
    #[serde(default)]
    step_up: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnBody {
    #[serde(default)]
    flow: Option<String>,
    credential: Box<PublicKeyCredential>,
}

pub async fn start(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<StartBody>,
) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    let started = if b.step_up {
        match crate::auth::session::current(&app, &headers, &ctx).await {
            Ok(Some(cur)) => login::start_step_up(&app, &ctx, &cur.user, &cur.session).await,
            Ok(None) => return crate::auth::session::unauthenticated().into_response(),
            Err(p) => return p.into_response(),
        }
    } else {
        login::start(&app, &ctx, b.username.as_deref()).await
    };
    match started {
        Ok(p) => {
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "continue", "flow": p.flow, "next": p.next})))
                .into_response()
        }
        Err(e) => login_problem(&e, (app.clock)()),
    }
}

async fn advance(app: &AppState, ctx: &ClientContext, headers: &HeaderMap, handle: String, step: Step) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match login::step(app, ctx, &handle, step).await {
        Ok(Advanced::Continue(p)) => {
            axum::Json(serde_json::json!({"status": "continue", "flow": p.flow, "next": p.next})).into_response()
        }
        // The pages' script continues to the waiting application, if one sent the person.
        Ok(Advanced::SignedIn(s)) => signed_in_response(app, &s, crate::pages::take_next(headers).as_deref()),
        Err(e) => login_problem(&e, (app.clock)()),
    }
}

/// 200 with the session's facts, the session cookie, and the flow cookie cleared.
pub(crate) fn signed_in_response(app: &AppState, s: &SignedIn, next: Option<&str>) -> Response {
    let body = serde_json::json!({
        "status": "authenticated",
        "user": {"id": s.user.id, "username": s.user.username.as_str(), "display_name": s.user.display_name},
        "session": session_json(app, &s.session),
        "recovery_codes_left": s.recovery_codes_left,
        "next": next,
    });
    let mut resp = axum::Json(body).into_response();
    if let Some(c) = set_cookie(SESSION_COOKIE, &s.token) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp.headers_mut().append(header::SET_COOKIE, clear_cookie(FLOW_COOKIE));
    if next.is_some() {
        resp.headers_mut().append(header::SET_COOKIE, clear_cookie(crate::pages::NEXT_COOKIE));
    }
    resp
}

pub(crate) fn session_json(app: &AppState, s: &wardgate_core::session::Session) -> serde_json::Value {
    use wardgate_core::audit::record::format_ts;
    serde_json::json!({
        "id": s.id,
        "aal": s.aal.as_str(),
        "amr": s.amr,
        "created_at": format_ts(s.created_at),
        "last_seen_at": format_ts(s.last_seen_at),
        "expires_at": format_ts(s.expires_at(&app.auth.sessions)),
        "client_ip": s.client_ip.map(|ip| ip.to_string()),
        "user_agent": s.user_agent,
    })
}

pub async fn passphrase(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<PassphraseBody>,
) -> Response {
    advance(&app, &ctx, &headers, flow_handle(b.flow, &headers), Step::Passphrase(b.passphrase)).await
}

pub async fn totp(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<CodeBody>,
) -> Response {
    advance(&app, &ctx, &headers, flow_handle(b.flow, &headers), Step::Totp(b.code)).await
}

pub async fn recovery_code(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<CodeBody>,
) -> Response {
    advance(&app, &ctx, &headers, flow_handle(b.flow, &headers), Step::RecoveryCode(b.code)).await
}

pub async fn webauthn_challenge(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<FlowBody>,
) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match login::webauthn_challenge(&app, &flow_handle(b.flow, &headers)).await {
        Ok(rcr) => axum::Json(rcr).into_response(),
        Err(e) => login_problem(&e, (app.clock)()),
    }
}

pub async fn webauthn(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(b): ApiJson<WebauthnBody>,
) -> Response {
    advance(&app, &ctx, &headers, flow_handle(b.flow, &headers), Step::Webauthn(b.credential)).await
}

/// Signs out: the session is revoked server-side, not just forgotten by the browser.
pub async fn logout(State(app): State<AppState>, ctx: ClientContext, Authenticated(cur): Authenticated) -> Response {
    if let Err(p) = crate::auth::session::end(&app, &cur, &ctx).await {
        return p.into_response();
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    resp
}
