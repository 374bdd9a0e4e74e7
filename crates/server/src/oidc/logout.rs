//! Ending what a session granted: when a session ends — signed out, revoked, expired — the
//! tokens applications got through it stop working too (their grants are revoked, and the
//! applications are owed a logout token, see [`super::backchannel`]), and RP-initiated
//! logout (OpenID Connect RP-Initiated Logout 1.0) at `/oidc/logout`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::Validation;
use serde::Deserialize;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};

use crate::app::AppState;
use crate::auth::session::{self, SESSION_COOKIE, clear_cookie};
use crate::context::ClientContext;
use crate::pages::{see_other, with_cookies};

/// Revokes the grants made through a session that has ended. In the same transaction the
/// store queues a back-channel logout notice for each application that asked to be told
/// (OpenID Connect Back-Channel Logout 1.0); the deliverer is woken to send them, in the
/// background, so that a slow or dead application does not hold up a sign-out, and with
/// retries. Failures are logged, not returned: the session's end has already been recorded
/// and must not be undone by this, and the sweep finds a session left with live grants.
pub async fn session_ended(app: &AppState, session_id: &str, correlation_id: &str, reason: &str) {
    let e = AuditEvent::known((app.clock)(), types::OIDC_GRANT_REVOKED, Outcome::Success)
        .correlation_id(correlation_id.to_owned())
        .reason(format!("the session ended: {reason}"))
        .detail("session_id", session_id.to_owned());
    match app.store.revoke_grants_of_session(session_id, (app.clock)(), reason, &e).await {
        Ok(grants) if !grants.is_empty() => app.oidc.wake_deliverer(),
        Ok(_) => {}
        Err(err) => tracing::error!(error = %err, session_id, "could not revoke the grants of an ended session"),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

/// What an ID token hint says: the client it was issued to and the session (`sid`), if it
/// is one of ours (expired ones count: an RP logs people out long after their ID token
/// expired).
fn read_hint(app: &AppState, hint: &str) -> Option<(String, Option<String>)> {
    let header = jsonwebtoken::decode_header(hint).ok()?;
    let keys = app.oidc.keys();
    let key = keys.by_kid(header.kid.as_deref()?)?;
    let mut v = Validation::new(key.algorithm);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&[&app.oidc.issuer]);
    let data = jsonwebtoken::decode::<serde_json::Value>(hint, &key.decoding, &v).ok()?;
    let aud = data.claims.get("aud").and_then(|a| a.as_str())?.to_owned();
    let sid = data.claims.get("sid").and_then(|a| a.as_str()).map(str::to_owned);
    Some((aud, sid))
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage<'a> {
    csrf: &'a str,
    client_id: &'a str,
    post_logout_redirect_uri: &'a str,
    state: &'a str,
}

/// Where to send the browser afterwards: a registered address of the named client, or
/// Wardgate's own signed-out page. `Err` is the refusal to show.
async fn destination(
    app: &AppState,
    uri: Option<&str>,
    client_id: Option<&str>,
    state: Option<&str>,
) -> Result<String, Response> {
    let refuse = |why: &str| crate::problem::Problem::bad_request(why.to_owned()).into_response();
    let Some(uri) = uri.filter(|u| !u.is_empty()) else { return Ok("/?signed_out=1".to_owned()) };
    let Some(id) = client_id.filter(|c| !c.is_empty()) else {
        return Err(refuse("post_logout_redirect_uri needs client_id or id_token_hint"));
    };
    match app.oidc.client(&*app.store, id).await {
        Ok(Some(c)) if c.allows_post_logout_redirect(uri) => {}
        Ok(_) => return Err(refuse("post_logout_redirect_uri is not registered for this client")),
        Err(e) => {
            tracing::error!(error = %e, "logout: store failed");
            return Err(crate::problem::Problem::unavailable("the database is unreachable").into_response());
        }
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    Ok(match state.filter(|s| !s.is_empty()) {
        Some(s) => {
            format!("{uri}{sep}state={}", percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC))
        }
        None => uri.to_owned(),
    })
}

async fn end_and_go(app: &AppState, ctx: &ClientContext, headers: &HeaderMap, to: &str) -> Response {
    match session::current(app, headers, ctx).await {
        Ok(Some(cur)) => {
            if let Err(p) = session::end(app, &cur, ctx).await {
                return p.into_response();
            }
        }
        Ok(None) => {}
        Err(p) => return p.into_response(),
    }
    with_cookies(see_other(to), [clear_cookie(SESSION_COOKIE)])
}

/// RP-initiated logout. Silent when the ID token hint names this very session; otherwise
/// the person confirms, so that a link on any web page cannot sign a clinician out.
pub async fn logout(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Response {
    let hint = match p.id_token_hint.as_deref() {
        Some(h) => match read_hint(&app, h) {
            Some(found) => Some(found),
            None => {
                return crate::problem::Problem::bad_request("id_token_hint is not an ID token issued here")
                    .into_response();
            }
        },
        None => None,
    };
    let client_id = p.client_id.clone().or_else(|| hint.as_ref().map(|(aud, _)| aud.clone()));
    let to = match destination(&app, p.post_logout_redirect_uri.as_deref(), client_id.as_deref(), p.state.as_deref())
        .await
    {
        Ok(t) => t,
        Err(r) => return r,
    };
    let current = match session::current(&app, &headers, &ctx).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let Some(cur) = current else { return with_cookies(see_other(&to), [clear_cookie(SESSION_COOKIE)]) };
    if hint.as_ref().and_then(|(_, sid)| sid.as_deref()) == Some(cur.session.id.as_str()) {
        return end_and_go(&app, &ctx, &headers, &to).await;
    }
    let Some((csrf, cookie)) = crate::pages::form_token(&headers) else {
        return crate::problem::Problem::internal().into_response();
    };
    let page = ConfirmPage {
        csrf: &csrf,
        client_id: client_id.as_deref().unwrap_or(""),
        post_logout_redirect_uri: p.post_logout_redirect_uri.as_deref().unwrap_or(""),
        state: p.state.as_deref().unwrap_or(""),
    };
    let mut resp = with_cookies(crate::pages::render(&page, StatusCode::OK), cookie);
    // The confirmation posts here and is then redirected to the application: browsers
    // apply form-action to that redirect too.
    if to.starts_with("http") {
        let csp = format!(
            "default-src 'none'; style-src 'self'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
            super::authorize::origin_of(&to)
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmForm {
    csrf: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    post_logout_redirect_uri: String,
    #[serde(default)]
    state: String,
}

pub async fn confirm(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    crate::problem::ApiForm(f): crate::problem::ApiForm<ConfirmForm>,
) -> Response {
    if !crate::pages::form_token_ok(&headers, &f.csrf) {
        return crate::pages::csrf_refused();
    }
    let to = match destination(&app, Some(&f.post_logout_redirect_uri), Some(&f.client_id), Some(&f.state)).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    end_and_go(&app, &ctx, &headers, &to).await
}
