//! The authorization endpoint: checks the request, makes sure the person has a session
//! strong enough for it, and answers the client with a code.

use askama::Template;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::Duration;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::FactorKind;
use wardgate_core::login::Aal;
use wardgate_core::oidc::{Acr, AuthCode, OidcClient, pkce};
use wardgate_core::token;
use wardgate_store::batch::Write;

use super::CODE_TTL;
use crate::app::AppState;
use crate::auth::session;
use crate::context::ClientContext;
use crate::pages::{render, see_other};

#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    response_mode: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    acr_values: Option<String>,
    /// Set by Wardgate's own consent page when the person declined.
    consent: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPost<'a> {
    action: &'a str,
    fields: Vec<(&'a str, String)>,
}

/// An error the client cannot be told about safely: shown to the person, never redirected.
fn refuse_page(message: &str) -> Response {
    crate::pages::message("This sign-in request cannot be used", message, StatusCode::BAD_REQUEST)
}

/// Where and how the answer goes, once the client and redirect URI are trusted.
struct Reply<'a> {
    app: &'a AppState,
    redirect_uri: &'a str,
    form_post: bool,
    state: Option<&'a str>,
}

impl Reply<'_> {
    fn send(&self, mut fields: Vec<(&'static str, String)>) -> Response {
        if let Some(s) = self.state {
            fields.push(("state", s.to_owned()));
        }
        // RFC 9207: say who answered, against mix-up attacks.
        fields.push(("iss", self.app.oidc.issuer.clone()));
        if self.form_post {
            let page =
                FormPost { action: self.redirect_uri, fields: fields.iter().map(|(k, v)| (*k, v.clone())).collect() };
            let mut resp = render(&page, StatusCode::OK);
            // This page posts to the client, so its form-action must allow that origin.
            let csp = format!(
                "default-src 'none'; script-src 'self'; style-src 'self'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
                origin_of(self.redirect_uri)
            );
            if let Ok(v) = HeaderValue::from_str(&csp) {
                resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
            }
            return resp;
        }
        let sep = if self.redirect_uri.contains('?') { '&' } else { '?' };
        let query: String = fields
            .iter()
            .map(|(k, v)| {
                format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC))
            })
            .collect::<Vec<_>>()
            .join("&");
        see_other(&format!("{}{sep}{query}", self.redirect_uri))
    }

    fn error(&self, error: &str, description: &str) -> Response {
        self.send(vec![("error", error.to_owned()), ("error_description", description.to_owned())])
    }
}

pub(crate) fn origin_of(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split(['/', '?']).next().unwrap_or("")),
        None => "'none'".into(),
    }
}

pub async fn authorize_get(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    authorize(&app, &ctx, &headers, p, raw.unwrap_or_default()).await
}

pub async fn authorize_post(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    body: String,
) -> Response {
    let p: AuthorizeParams = serde_urlencoded_parse(&body);
    authorize(&app, &ctx, &headers, p, body).await
}

fn serde_urlencoded_parse(body: &str) -> AuthorizeParams {
    let mut p = AuthorizeParams::default();
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "client_id" => p.client_id = v,
            "redirect_uri" => p.redirect_uri = v,
            "response_type" => p.response_type = v,
            "response_mode" => p.response_mode = v,
            "scope" => p.scope = v,
            "state" => p.state = v,
            "nonce" => p.nonce = v,
            "code_challenge" => p.code_challenge = v,
            "code_challenge_method" => p.code_challenge_method = v,
            "prompt" => p.prompt = v,
            "max_age" => p.max_age = v,
            "login_hint" => p.login_hint = v,
            "acr_values" => p.acr_values = v,
            "consent" => p.consent = v,
            "request" => p.request = v,
            "request_uri" => p.request_uri = v,
            _ => {}
        }
    }
    p
}

async fn authorize(
    app: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
    p: AuthorizeParams,
    raw: String,
) -> Response {
    // 1. The client and its redirect URI: until both check out, nothing is redirected.
    let Some(client_id) = p.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return refuse_page("The request does not name a client application (client_id).");
    };
    let client = match app.oidc.client(&*app.store, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return refuse_page("The application that sent you here is not registered with Wardgate."),
        Err(e) => {
            tracing::error!(error = %e, "authorize: store failed");
            return crate::problem::Problem::unavailable("the database is unreachable").into_response();
        }
    };
    let redirect_uri = match p.redirect_uri.as_deref() {
        Some(u) if client.allows_redirect(u) => u.to_owned(),
        Some(_) => return refuse_page("The return address (redirect_uri) is not one registered for this application."),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return refuse_page("The request does not say where to return (redirect_uri)."),
    };
    let reply = Reply {
        app,
        redirect_uri: &redirect_uri,
        form_post: p.response_mode.as_deref() == Some("form_post"),
        state: p.state.as_deref(),
    };
    // 2. The rest of the request: errors go back to the client.
    if let Some(m) = p.response_mode.as_deref().filter(|m| !matches!(*m, "query" | "form_post")) {
        return reply.error("invalid_request", &format!("response_mode {m:?} is not supported"));
    }
    if p.request.is_some() {
        return reply.error("request_not_supported", "request objects are not supported");
    }
    if p.request_uri.is_some() {
        return reply.error("request_uri_not_supported", "request_uri is not supported");
    }
    if p.response_type.as_deref() != Some("code") {
        return reply.error("unsupported_response_type", "only response_type=code is supported");
    }
    let scopes: Vec<String> = p.scope.as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return reply.error("invalid_scope", "the openid scope is required");
    }
    if let Some(bad) = scopes.iter().find(|s| *s != "openid" && !client.scopes.contains(s)) {
        return reply.error("invalid_scope", &format!("scope {bad:?} is not allowed for this client"));
    }
    match (p.code_challenge.as_deref(), p.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if pkce::valid_challenge(c) => {}
        (Some(_), Some("S256")) => {
            return reply.error("invalid_request", "code_challenge is not a base64url SHA-256 digest");
        }
        (Some(_), _) => return reply.error("invalid_request", "code_challenge_method must be S256"),
        (None, _) if client.is_public() => {
            return reply.error("invalid_request", "PKCE (S256) is required for public clients");
        }
        (None, _) => {}
    }
    let prompt: Vec<&str> = p.prompt.as_deref().unwrap_or("").split_whitespace().collect();
    if prompt.contains(&"none") && prompt.len() > 1 {
        return reply.error("invalid_request", "prompt=none cannot be combined with other values");
    }
    let max_age = match p.max_age.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(m)) if m >= 0 => Some(Duration::seconds(m)),
        Some(_) => return reply.error("invalid_request", "max_age must be a non-negative integer"),
    };
    let requested = match p.acr_values.as_deref() {
        None => None,
        Some(v) => match Acr::weakest_of(v) {
            Some(a) => Some(a),
            None => return reply.error("invalid_request", "none of the acr_values is known to this server"),
        },
    };

    // 3. The session: present, fresh enough and strong enough, or the person signs in.
    let now = (app.clock)();
    let current = match session::current(app, headers, ctx).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let next = format!("{}?{}", super::AUTHORIZE, raw);
    let sign_in = |reason: &str| -> Response {
        if prompt.contains(&"none") {
            return reply.error("login_required", reason);
        }
        let hint = p
            .login_hint
            .as_deref()
            .map(|h| {
                format!("&login_hint={}", percent_encoding::utf8_percent_encode(h, percent_encoding::NON_ALPHANUMERIC))
            })
            .unwrap_or_default();
        see_other(&format!(
            "/?next={}{hint}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        ))
    };
    let Some(cur) = current else { return sign_in("the person is not signed in") };
    // With an access policy in force it sets the floor for this application from here
    // (action `sso`, resource the client id): aal1 on a trusted clinical workstation, say.
    // Without one, never less than two factors, whatever the client asks for.
    let decision = match crate::access::sso(app, &cur, &client.id, ctx, now).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "authorize: store failed");
            return crate::problem::Problem::unavailable("the database is unreachable").into_response();
        }
    };
    let (floor, policy_wants_fresh) = match decision {
        crate::access::SsoPolicy::Defaults => (Acr(Aal::Aal2), false),
        crate::access::SsoPolicy::Denied(reason) => {
            let _ = audit(app, ctx, &client, &cur, Outcome::Denied, &format!("access policy: {reason}")).await;
            return reply.error("access_denied", &reason);
        }
        crate::access::SsoPolicy::Required { assurance, fresh_needed } => (Acr(assurance), fresh_needed),
    };
    let wanted = requested.map_or(floor, |r| r.max(floor));
    let too_old = max_age.is_some_and(|m| now - cur.session.created_at > m) || policy_wants_fresh;
    // A fresh sign-in was asked for: after one, the session is new, so `prompt=login`
    // is honoured once, not in a loop.
    let fresh = now - cur.session.created_at < Duration::seconds(30);
    // A sign-in just made satisfies any `max_age` (0 included), or the person would loop.
    if (too_old || prompt.contains(&"login")) && !fresh {
        return sign_in("a fresh sign-in is required");
    }
    if !wanted.satisfied_by(cur.session.aal) {
        // Could this person reach it? AAL3 needs a hardware-bound security key.
        let factors = match app.store.factors_of(&cur.user.id).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "authorize: store failed");
                return crate::problem::Problem::unavailable("the database is unreachable").into_response();
            }
        };
        let has_key = factors.iter().any(|f| {
            f.kind == FactorKind::Webauthn && f.params.get("backup_eligible").and_then(|b| b.as_bool()) == Some(false)
        });
        if wanted.0 == Aal::Aal3 && !has_key {
            let _ = audit(
                app,
                ctx,
                &client,
                &cur,
                Outcome::Denied,
                "requested assurance cannot be reached: no hardware security key",
            )
            .await;
            return reply.error(
                "unmet_authentication_requirements",
                "this person has no phishing-resistant security key, so urn:wardgate:aal3 cannot be reached",
            );
        }
        if prompt.contains(&"none") {
            return reply.error("interaction_required", "a stronger sign-in is required");
        }
        // Below aal3 (an aal1 session where two factors are needed) the person signs in
        // again with their two factors; only aal3 has the security-key page.
        if wanted.0 < Aal::Aal3 {
            if audit(app, ctx, &client, &cur, Outcome::Denied, &format!("step-up to {} required", wanted.as_str()))
                .await
                .is_err()
            {
                return crate::problem::Problem::unavailable("the sign-in could not be recorded").into_response();
            }
            return sign_in("a stronger sign-in is required");
        }
        if audit(app, ctx, &client, &cur, Outcome::Denied, &format!("step-up to {} required", wanted.as_str()))
            .await
            .is_err()
        {
            return crate::problem::Problem::unavailable("the sign-in could not be recorded").into_response();
        }
        return see_other(&format!(
            "/?step_up=1&next={}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        ));
    }

    // 4. Consent, for applications the hospital does not operate itself.
    if !client.first_party {
        if p.consent.as_deref() == Some("denied") {
            let _ = audit(app, ctx, &client, &cur, Outcome::Denied, "the person declined").await;
            return reply.error("access_denied", "the person did not allow this application");
        }
        let given = match app.store.consent(&cur.user.id, &client.id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "authorize: store failed");
                return crate::problem::Problem::unavailable("the database is unreachable").into_response();
            }
        };
        let covered = given.as_ref().is_some_and(|c| scopes.iter().all(|s| c.scopes.contains(s)));
        // `prompt=consent` asks again, unless the person has just answered.
        let just_given = given.as_ref().is_some_and(|c| now - c.granted_at < Duration::seconds(30));
        if !covered || (prompt.contains(&"consent") && !just_given) {
            if prompt.contains(&"none") {
                return reply.error("consent_required", "the person has not allowed this application");
            }
            return super::consent::page(app, headers, &client, &scopes, &next);
        }
    }

    // 5. The code.
    let Ok((code, key)) = token::generate_ordered(now) else {
        return crate::problem::Problem::internal().into_response();
    };
    let record = AuthCode {
        digest: key,
        client_id: client.id.clone(),
        user_id: cur.user.id.clone(),
        session_id: cur.session.id.clone(),
        redirect_uri: redirect_uri.clone(),
        code_challenge: p.code_challenge.clone(),
        nonce: p.nonce.clone(),
        scopes,
        acr: Acr(cur.session.aal).as_str().to_owned(),
        amr: cur.session.amr.clone(),
        auth_time: cur.session.created_at,
        correlation_id: cur.session.correlation_id.clone(),
        created_at: now,
        expires_at: now + CODE_TTL,
        grant_id: None,
    };
    // The code and the authorization's record share the next group commit.
    let event = authorization_event(app, ctx, &client, &cur, Outcome::Success, "code issued");
    if let Err(e) = app.audit.write(Write::InsertCode { code: record, event }).await {
        tracing::error!(error = %e, "authorize: store failed");
        return crate::problem::Problem::unavailable("the database is unreachable").into_response();
    }
    reply.send(vec![("code", code)])
}

fn authorization_event(
    app: &AppState,
    ctx: &ClientContext,
    client: &OidcClient,
    cur: &session::Current,
    outcome: Outcome,
    reason: &str,
) -> AuditEvent {
    AuditEvent::known((app.clock)(), types::OIDC_AUTHORIZATION, outcome)
        .subject(cur.user.username.as_str())
        .client_ip(ctx.ip)
        .user_agent(ctx.user_agent.clone())
        .correlation_id(cur.session.correlation_id.clone())
        .reason(reason)
        .detail("client_id", client.id.clone())
        .detail("session_id", cur.session.id.clone())
}

async fn audit(
    app: &AppState,
    ctx: &ClientContext,
    client: &OidcClient,
    cur: &session::Current,
    outcome: Outcome,
    reason: &str,
) -> Result<(), ()> {
    app.audit.append(authorization_event(app, ctx, client, cur, outcome, reason)).await.map(|_| ()).map_err(|err| {
        tracing::error!(error = %err, "authorize: audit append failed");
    })
}
