//! `GET /gate/start?rd=URL`: the hand-off after sign-in. With a live session it sets the
//! gateway cookie for the protected domain and sends the browser back to `rd`; without
//! one it sends the browser to sign in first and comes back here.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{GATE_COOKIE, return_url};
use crate::app::AppState;
use crate::auth::session;
use crate::context::ClientContext;
use crate::pages::see_other;
use crate::problem::Problem;

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    rd: Option<String>,
}

pub fn invalid_return() -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-return-url", "The return address is not allowed")
        .detail("only https URLs to the protected applications' domains are followed")
}

/// The path of this hand-off for `rd`, which the sign-in pages follow afterwards.
pub fn start_path(rd: &str) -> String {
    format!("/gate/start?rd={}", percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC))
}

pub async fn start(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(domain) = app.gateway.cookie_domain.clone() else {
        return Problem::new(StatusCode::NOT_FOUND, "gateway-off", "The gateway is not configured")
            .detail("set gateway.cookie_domain")
            .into_response();
    };
    let Some(rd) =
        q.rd.as_deref().and_then(|r| return_url::check(r, &app.gateway.return_domains, app.gateway.allow_http))
    else {
        return invalid_return().into_response();
    };
    let cur = match session::current(&app, &headers, &ctx).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let Some(cur) = cur else {
        let next = start_path(rd.as_str());
        return see_other(&format!(
            "/?next={}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        ));
    };
    let now = (app.clock)();
    // The ticket lives as long as the session can; every check still reads the session,
    // so an idle timeout, a sign-out or a revocation ends it sooner.
    let lifetime = cur.session.limits.unwrap_or(app.auth.sessions).absolute_lifetime;
    let ticket = match crate::oidc::tokens::gate_ticket(&app.oidc, &cur.session, now, cur.session.created_at + lifetime)
    {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "gateway: could not sign a ticket");
            return Problem::unavailable("the sign-in could not be completed").into_response();
        }
    };
    let cookie = format!("{GATE_COOKIE}={ticket}; Domain={domain}; Path=/; Secure; HttpOnly; SameSite=Lax");
    let mut resp = see_other(rd.as_str());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
