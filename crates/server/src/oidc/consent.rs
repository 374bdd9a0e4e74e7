//! Consent for third-party applications (OIDC Core §3.1.2.4): the person sees which
//! application asks for what, and allows or declines. The answer is remembered per
//! application until it asks for more, or `prompt=consent` asks again.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::oidc::{Consent, OidcClient};

use crate::app::AppState;
use crate::auth::session;
use crate::context::ClientContext;
use crate::pages::{csrf_refused, form_token, form_token_ok, render, safe_next, see_other, with_cookies};
use crate::problem::{ApiForm, Problem};

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    csrf: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    asks: Vec<&'static str>,
    scopes: String,
    next: &'a str,
}

/// What a scope lets the application see, in words a clinician reads at a glance.
fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are (your Wardgate account id)",
        "profile" => "See your name and username",
        "email" => "See your email address",
        "roles" | "groups" => "See your roles",
        "offline_access" => "Stay connected after you sign out of Wardgate",
        _ => "Use an application-specific permission",
    }
}

pub fn page(app: &AppState, headers: &HeaderMap, client: &OidcClient, scopes: &[String], next: &str) -> Response {
    let _ = app;
    let Some((csrf, cookie)) = form_token(headers) else { return Problem::internal().into_response() };
    let mut asks: Vec<&'static str> = scopes.iter().map(|s| describe(s)).collect();
    asks.dedup();
    let page = ConsentPage {
        csrf: &csrf,
        client_name: &client.name,
        client_id: &client.id,
        asks,
        scopes: scopes.join(" "),
        next,
    };
    with_cookies(render(&page, StatusCode::OK), cookie)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentForm {
    csrf: String,
    client_id: String,
    scopes: String,
    next: String,
    decision: String,
}

pub async fn decide(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<ConsentForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return csrf_refused();
    }
    if !safe_next(&f.next) {
        return Problem::bad_request("the consent form does not continue an authorization request").into_response();
    }
    let cur = match session::current(&app, &headers, &ctx).await {
        Ok(Some(c)) => c,
        Ok(None) => return see_other("/"),
        Err(p) => return p.into_response(),
    };
    let now = (app.clock)();
    let scopes: Vec<String> = f.scopes.split_whitespace().map(str::to_owned).collect();
    match f.decision.as_str() {
        "allow" => {
            let e = AuditEvent::known(now, types::OIDC_CONSENT_GRANTED, Outcome::Success)
                .subject(cur.user.username.as_str())
                .client_ip(ctx.ip)
                .correlation_id(cur.session.correlation_id.clone())
                .detail("client_id", f.client_id.clone())
                .detail("scope", f.scopes.clone());
            let consent =
                Consent { user_id: cur.user.id.clone(), client_id: f.client_id.clone(), scopes, granted_at: now };
            if let Err(err) = app.store.grant_consent(&consent, &e).await {
                tracing::error!(error = %err, "consent: store failed");
                return Problem::unavailable("the database is unreachable").into_response();
            }
            see_other(&f.next)
        }
        // The authorization endpoint answers the application with access_denied.
        _ => see_other(&format!("{}&consent=denied", f.next)),
    }
}
