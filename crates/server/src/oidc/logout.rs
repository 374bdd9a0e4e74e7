//! Ending what a session granted: when a session ends — signed out, revoked, expired — the
//! tokens applications got through it stop working too (their grants are revoked), and
//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at `/oidc/logout`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::Validation;
use serde::Deserialize;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};

use crate::app::AppState;
use crate::auth::session::{self, SESSION_COOKIE, clear_cookie};
use crate::context::ClientContext;
use crate::pages::{see_other, with_cookies};

/// Revokes the grants made through a session that has ended. Failures are logged: the
/// session end itself has already been recorded and must not be undone by this.
pub async fn session_ended(app: &AppState, session_id: &str, correlation_id: &str, reason: &str) {
    let e = AuditEvent::known((app.clock)(), types::OIDC_GRANT_REVOKED, Outcome::Success)
        .correlation_id(correlation_id.to_owned())
        .reason(format!("the session ended: {reason}"))
        .detail("session_id", session_id.to_owned());
    let grants = match app.store.revoke_grants_of_session(session_id, (app.clock)(), &e).await {
        Ok(g) => g,
        Err(err) => {
            tracing::error!(error = %err, session_id, "could not revoke the grants of an ended session");
            return;
        }
    };
    // OpenID Connect Back-Channel Logout 1.0: each application that got tokens through the
    // session, and asked to be told, gets a logout token. Sent in the background: a slow or
    // dead application must not hold up a sign-out.
    let mut told = std::collections::BTreeSet::new();
    for g in grants {
        if !told.insert(g.client_id.clone()) {
            continue;
        }
        let client = match app.store.client(&g.client_id).await {
            Ok(Some(c)) => c,
            _ => continue,
        };
        let Some(uri) = client.backchannel_logout_uri.clone() else { continue };
        let Ok(token) =
            super::tokens::logout_token(&app.oidc, &client, g.user_id.as_deref(), session_id, (app.clock)())
        else {
            continue;
        };
        let (audit, clock, correlation) = (app.audit.clone(), app.clock, correlation_id.to_owned());
        let sid = session_id.to_owned();
        tokio::spawn(async move {
            let outcome = send_logout(&uri, &token).await;
            let e = AuditEvent::known(
                clock(),
                types::OIDC_LOGOUT_SENT,
                if outcome.is_ok() { Outcome::Success } else { Outcome::Failure },
            )
            .actor(format!("client:{}", client.id))
            .correlation_id(correlation)
            .detail("client_id", client.id.clone())
            .detail("session_id", sid)
            .detail("backchannel_logout_uri", uri.clone());
            let e = match outcome {
                Ok(()) => e,
                Err(why) => e.reason(why),
            };
            if let Err(err) = audit.append(e).await {
                tracing::error!(error = %err, "could not record a back-channel logout");
            }
        });
    }
}

/// One POST of a logout token; the application answers 200 (or 204) when it has ended its
/// own session.
async fn send_logout(uri: &str, token: &str) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.post(uri).form(&[("logout_token", token)]).send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("the application answered {}", resp.status())) }
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

/// The client an ID token was issued to, if it is one of ours (expired ones count: an RP
/// logs people out long after their ID token expired).
fn audience_of_hint(app: &AppState, hint: &str) -> Option<String> {
    let header = jsonwebtoken::decode_header(hint).ok()?;
    let keys = app.oidc.keys();
    let key = keys.by_kid(header.kid.as_deref()?)?;
    let mut v = Validation::new(key.algorithm);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&[&app.oidc.issuer]);
    let data = jsonwebtoken::decode::<serde_json::Value>(hint, &key.decoding, &v).ok()?;
    data.claims.get("aud").and_then(|a| a.as_str()).map(str::to_owned)
}

pub async fn logout(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Response {
    let client_id = p.client_id.clone().or_else(|| p.id_token_hint.as_deref().and_then(|h| audience_of_hint(&app, h)));
    if p.id_token_hint.is_some() && client_id.is_none() {
        return crate::problem::Problem::bad_request("id_token_hint is not an ID token issued here").into_response();
    }
    // Only a registered address of the identified client is followed.
    let redirect = match (&p.post_logout_redirect_uri, &client_id) {
        (Some(uri), Some(id)) => match app.store.client(id).await {
            Ok(Some(c)) if c.allows_post_logout_redirect(uri) => Some(uri.clone()),
            Ok(_) => {
                return crate::problem::Problem::bad_request(
                    "post_logout_redirect_uri is not registered for this client",
                )
                .into_response();
            }
            Err(e) => {
                tracing::error!(error = %e, "logout: store failed");
                return crate::problem::Problem::unavailable("the database is unreachable").into_response();
            }
        },
        (Some(_), None) => {
            return crate::problem::Problem::bad_request("post_logout_redirect_uri needs client_id or id_token_hint")
                .into_response();
        }
        _ => None,
    };
    match session::current(&app, &headers, &ctx).await {
        Ok(Some(cur)) => {
            if let Err(p) = session::end(&app, &cur, &ctx).await {
                return p.into_response();
            }
        }
        Ok(None) => {}
        Err(p) => return p.into_response(),
    }
    let to = match redirect {
        Some(uri) => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            match &p.state {
                Some(s) => format!(
                    "{uri}{sep}state={}",
                    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                ),
                None => uri,
            }
        }
        None => "/?signed_out=1".to_owned(),
    };
    let mut resp = with_cookies(see_other(&to), [clear_cookie(SESSION_COOKIE)]);
    if resp.status() != StatusCode::SEE_OTHER {
        resp.headers_mut().remove(header::LOCATION);
    }
    resp
}
