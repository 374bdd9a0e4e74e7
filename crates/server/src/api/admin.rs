//! `/api/v1/admin/…`: users, their factors and their sessions, for administrators.
//!
//! Callers prove who they are with an administrator's session (plus its CSRF token on
//! changes) or with an API token bound to an administrator and scoped. Every call is
//! audited with the acting account, reads included: who looked at whose account is
//! evidence too.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wardgate_core::api_token::Scope;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::AccountStatus;
use wardgate_core::policy::{Effect, Request, SessionFacts};
use wardgate_core::token;
use wardgate_store::StoreError;

use crate::accounts::{AccountError, Accounts, ErrorKind, NewUser, SessionView, UserView};
use crate::app::AppState;
use crate::auth::session::{self, csrf_problem, unauthenticated};
use crate::context::ClientContext;
use crate::problem::{ApiJson, Problem};

/// The administrator behind a call, and how they proved it.
pub struct Admin {
    /// `user:<username>` for a session, `token:<id>:<username>` for an API token.
    pub actor: String,
    pub ctx: ClientContext,
}

fn forbidden() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "not-an-administrator", "Administrators only")
}

/// Reads need `…:read`, changes `…:write`, of the resource the path names.
fn scope_for(method: &axum::http::Method, path: &str) -> Scope {
    let clients = path.starts_with("/api/v1/admin/clients");
    match (clients, method.is_safe()) {
        (false, true) => Scope::UsersRead,
        (false, false) => Scope::UsersWrite,
        (true, true) => Scope::ClientsRead,
        (true, false) => Scope::ClientsWrite,
    }
}

/// The policy action an admin API path stands for.
fn action_for(path: &str) -> &'static str {
    if path.starts_with("/api/v1/admin/clients") { "admin.clients" } else { "admin.users" }
}

/// Who is calling, or why not. The actor is known as soon as the credential is.
async fn identify(app: &AppState, parts: &Parts, ctx: &ClientContext) -> Result<String, (Option<String>, Problem)> {
    let now = (app.clock)();
    let unavailable = |e: StoreError| {
        tracing::error!(error = %e, "admin api: store failed");
        (None, Problem::unavailable("the database is unreachable"))
    };
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(secret) = bearer {
        let tok = app.store.api_token_by_digest(&token::digest(secret)).await.map_err(unavailable)?;
        let Some(tok) = tok.filter(|t| t.revoked_at.is_none() && now < t.expires_at) else {
            return Err((
                None,
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-token", "The API token is invalid, revoked or expired"),
            ));
        };
        let user = app.store.user_by_id(&tok.user_id).await.map_err(unavailable)?;
        let actor = format!("token:{}:{}", tok.id, user.as_ref().map(|u| u.username.as_str()).unwrap_or("?"));
        if !user.is_some_and(|u| u.status == AccountStatus::Active && u.is_admin()) {
            return Err((Some(actor), forbidden()));
        }
        let needed = scope_for(&parts.method, parts.uri.path());
        if !tok.scopes.contains(&needed) {
            let p = Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "The API token lacks the scope this call needs",
            )
            .detail(format!("needs {}", needed.as_str()));
            return Err((Some(actor), p));
        }
        return Ok(actor);
    }
    let cur =
        session::current(app, &parts.headers, ctx).await.map_err(|p| (None, p))?.ok_or((None, unauthenticated()))?;
    let actor = format!("user:{}", cur.user.username);
    match app.access.current() {
        None if !cur.user.is_admin() => return Err((Some(actor), forbidden())),
        None => {}
        // With a policy in force it decides, like everywhere else: administrative actions
        // need a privileged account, a role that grants them and a phishing-resistant
        // sign-in (the built-in aal3 floor).
        Some(active) => {
            let action = action_for(parts.uri.path());
            let now = (app.clock)();
            let device =
                crate::access::context::device(&*app.store, ctx.device_secret.as_deref()).await.map_err(unavailable)?;
            let roles = cur.user.roles_at(now);
            let d = active.policy.evaluate(&Request {
                action,
                resource: Some(parts.uri.path()),
                subject: crate::access::context::subject(&cur.user, &roles, now),
                session: Some(SessionFacts { aal: cur.session.aal, authenticated_at: cur.session.created_at }),
                device: device.as_ref().map(crate::access::context::device_facts),
                ip: ctx.ip,
                now,
            });
            match d.effect {
                Effect::Allow => {}
                Effect::StepUp => {
                    let p = Problem::new(StatusCode::FORBIDDEN, "step-up-required", "A stronger sign-in is needed")
                        .detail(format!(
                            "{action} needs {} (rule {}): sign in again with a security key or passkey",
                            d.required.as_str(),
                            d.rule
                        ));
                    return Err((Some(actor), p));
                }
                Effect::Deny => {
                    return Err((Some(actor), forbidden().detail(format!("{} (rule {})", d.reason, d.rule))));
                }
            }
        }
    }
    if !parts.method.is_safe() {
        let presented = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !cur.csrf_ok(presented) {
            return Err((Some(actor), csrf_problem()));
        }
    }
    Ok(actor)
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let ctx =
            ClientContext::from_request_parts(parts, app).await.map_err(|_| Problem::internal().into_response())?;
        let outcome = identify(app, parts, &ctx).await;
        // Refusals are audited, so an unauthenticated client must not be able to write
        // records at will: past the per-address limit it gets 429 and no record.
        if outcome.is_err()
            && let Err(limited) = app.login_limit.check(ctx.ip)
        {
            return Err(limited.into_response());
        }
        // Refused calls are evidence too: probing the admin API with stolen or stale
        // credentials should show up in the log.
        let mut e = AuditEvent::known((app.clock)(), types::ADMIN_API_CALLED, Outcome::Success)
            .client_ip(ctx.ip)
            .user_agent(ctx.user_agent.clone())
            .correlation_id(ctx.request_id.clone())
            .detail("method", parts.method.as_str().to_owned())
            .detail("path", parts.uri.path().to_owned());
        match &outcome {
            Ok(actor) => e = e.actor(actor.clone()),
            Err((actor, p)) => {
                e.outcome = Outcome::Denied;
                e = e.reason(p.title);
                if let Some(a) = actor {
                    e = e.actor(a.clone());
                }
            }
        }
        if matches!(&outcome, Err((_, p)) if p.status_code() == StatusCode::SERVICE_UNAVAILABLE) {
            return Err(Problem::unavailable("the database is unreachable").into_response());
        }
        app.audit.append(e).await.map_err(|err| {
            tracing::error!(error = %err, "admin api: audit append failed");
            Problem::unavailable("the call could not be recorded").into_response()
        })?;
        match outcome {
            Ok(actor) => Ok(Admin { actor, ctx }),
            Err((_, p)) => Err(p.into_response()),
        }
    }
}

fn problem(e: &AccountError) -> Response {
    let p = match e.kind() {
        ErrorKind::Invalid => Problem::invalid_field(e.to_string()),
        ErrorKind::NotFound => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "No such resource").detail(e.to_string())
        }
        ErrorKind::Conflict => {
            Problem::new(StatusCode::CONFLICT, "conflict", "The account's state does not allow this")
                .detail(e.to_string())
        }
        ErrorKind::Unavailable => {
            tracing::error!(error = %e, "admin api failed");
            Problem::unavailable("the operation could not be completed")
        }
    };
    p.into_response()
}

fn accounts<'a>(app: &'a AppState, admin: &'a Admin) -> Accounts<'a> {
    Accounts::new(&*app.store, &admin.actor, (app.clock)(), &app.auth.settings)
}

pub async fn list_users(State(app): State<AppState>, admin: Admin) -> Response {
    let now = (app.clock)();
    match accounts(&app, &admin).list().await {
        Ok(users) => axum::Json(users.iter().map(|u| UserView::new(u, now)).collect::<Vec<_>>()).into_response(),
        Err(e) => problem(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    username: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    employee_id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    privileged: bool,
}

pub async fn invite(State(app): State<AppState>, admin: Admin, ApiJson(b): ApiJson<InviteBody>) -> Response {
    let new = NewUser {
        username: b.username,
        display_name: b.display_name,
        email: b.email,
        employee_id: b.employee_id,
        roles: b.roles,
        privileged: b.privileged,
        ..NewUser::default()
    };
    let base = app.base_url.clone();
    match accounts(&app, &admin).invite(new, &base).await {
        Ok((user, link)) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({
                "user": UserView::new(&user, (app.clock)()),
                "enrollment_url": link.url,
                "enrollment_expires_at": wardgate_core::audit::record::format_ts(link.expires_at),
            })),
        )
            .into_response(),
        Err(e) => problem(&e),
    }
}

pub async fn show_user(State(app): State<AppState>, admin: Admin, Path(username): Path<String>) -> Response {
    match accounts(&app, &admin).show(&username).await {
        Ok(d) => axum::Json(d.view((app.clock)())).into_response(),
        Err(e) => problem(&e),
    }
}

/// The body of an override (`enable`, `unlock`, `reset-passphrase`): why.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    #[serde(default)]
    reason: Option<String>,
}

pub async fn user_action(
    State(app): State<AppState>,
    admin: Admin,
    Path((username, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let parsed: OverrideBody = if body.iter().all(u8::is_ascii_whitespace) {
        OverrideBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return Problem::bad_request(format!("the body must be {{\"reason\": \"…\"}}: {e}")).into_response();
            }
        }
    };
    let reason = parsed.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    // An administrative override is always recorded with why it was done.
    if matches!(action.as_str(), "enable" | "unlock" | "reset-passphrase") && reason.is_none() {
        return Problem::new(axum::http::StatusCode::BAD_REQUEST, "reason-required", "An override needs a reason")
            .detail("send {\"reason\": \"…\"}: the ticket, and how the person was identified")
            .into_response();
    }
    let a = accounts(&app, &admin).with_reason(reason);
    let now = (app.clock)();
    let result = match action.as_str() {
        "disable" => a.disable(&username).await,
        "enable" => a.enable(&username).await,
        "unlock" => a.unlock(&username).await.map(|(u, _)| u),
        "enrollment-link" | "reset-passphrase" => {
            let base = app.base_url.clone();
            let issued = if action == "reset-passphrase" {
                a.reset_passphrase(&username, &base).await
            } else {
                a.reissue_enrollment(&username, &base).await
            };
            return match issued {
                Ok((user, link)) => axum::Json(serde_json::json!({
                    "user": UserView::new(&user, now),
                    "enrollment_url": link.url,
                    "enrollment_expires_at": wardgate_core::audit::record::format_ts(link.expires_at),
                }))
                .into_response(),
                Err(e) => problem(&e),
            };
        }
        _ => return Problem::not_found().into_response(),
    };
    match result {
        Ok(u) => axum::Json(UserView::new(&u, now)).into_response(),
        Err(e) => problem(&e),
    }
}

/// Terminates the account: sessions end, factors are removed, the username stays reserved.
pub async fn delete_user(State(app): State<AppState>, admin: Admin, Path(username): Path<String>) -> Response {
    match accounts(&app, &admin).terminate(&username).await {
        Ok(u) => axum::Json(UserView::new(&u, (app.clock)())).into_response(),
        Err(e) => problem(&e),
    }
}

pub async fn remove_factor(
    State(app): State<AppState>,
    admin: Admin,
    Path((username, factor_id)): Path<(String, String)>,
) -> Response {
    match accounts(&app, &admin).remove_factor(&username, &factor_id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(&e),
    }
}

pub async fn sessions(State(app): State<AppState>, admin: Admin, Path(username): Path<String>) -> Response {
    match accounts(&app, &admin).show(&username).await {
        Ok(d) => axum::Json(d.sessions.iter().map(SessionView::from).collect::<Vec<_>>()).into_response(),
        Err(e) => problem(&e),
    }
}

fn revoke_event(app: &AppState, admin: &Admin, username: &str, t: &'static str) -> AuditEvent {
    AuditEvent::known((app.clock)(), t, Outcome::Success)
        .actor(admin.actor.clone())
        .subject(username.to_owned())
        .client_ip(admin.ctx.ip)
        .correlation_id(admin.ctx.request_id.clone())
        .reason("revoked by an administrator")
}

pub async fn revoke_sessions(State(app): State<AppState>, admin: Admin, Path(username): Path<String>) -> Response {
    let user = match accounts(&app, &admin).user(&username).await {
        Ok(u) => u,
        Err(e) => return problem(&e),
    };
    let e = revoke_event(&app, &admin, user.username.as_str(), types::AUTH_SESSIONS_REVOKED_ALL);
    match crate::auth::session::revoke(&app, &user.id, None, &e, "revoked by an administrator").await {
        Ok(n) => axum::Json(serde_json::json!({"revoked": n})).into_response(),
        Err(e) => problem(&AccountError::Store(e)),
    }
}

pub async fn revoke_session(
    State(app): State<AppState>,
    admin: Admin,
    Path((username, id)): Path<(String, String)>,
) -> Response {
    let user = match accounts(&app, &admin).user(&username).await {
        Ok(u) => u,
        Err(e) => return problem(&e),
    };
    let e = revoke_event(&app, &admin, user.username.as_str(), types::AUTH_SESSION_REVOKED)
        .detail("session_id", id.clone());
    match crate::auth::session::revoke(&app, &user.id, Some(&id), &e, "revoked by an administrator").await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(StoreError::NotFound) => Problem::not_found().into_response(),
        Err(e) => problem(&AccountError::Store(e)),
    }
}

fn clients_problem(e: &crate::clients::ClientsError) -> Response {
    use crate::clients::ClientsError as E;
    match e {
        E::Invalid(_) | E::Lifetime | E::Jwks | E::SigningAlg(_) => {
            Problem::invalid_field(e.to_string()).into_response()
        }
        E::Unknown(_) => Problem::not_found().detail(e.to_string()).into_response(),
        E::Public => Problem::new(StatusCode::CONFLICT, "conflict", "The client's state does not allow this")
            .detail(e.to_string())
            .into_response(),
        E::Random | E::Store(_) | E::Key(_) => {
            tracing::error!(error = %e, "admin api: clients failed");
            Problem::unavailable("the operation could not be completed").into_response()
        }
    }
}

fn clients<'a>(app: &'a AppState, admin: &'a Admin) -> crate::clients::Clients<'a> {
    crate::clients::Clients::new(&*app.store, &admin.actor, (app.clock)())
}

pub async fn list_clients(State(app): State<AppState>, admin: Admin) -> Response {
    match clients(&app, &admin).list().await {
        Ok(all) => axum::Json(all.iter().map(crate::clients::view).collect::<Vec<_>>()).into_response(),
        Err(e) => clients_problem(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    name: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    /// Not operated by the hospital: people are asked to allow it.
    #[serde(default)]
    third_party: bool,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    access_token_ttl_secs: Option<u32>,
    #[serde(default)]
    refresh_token_ttl_secs: Option<u32>,
    /// A JWK Set: the client authenticates with `private_key_jwt` and gets no secret.
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    /// `ES256` (default), `RS256` or `EdDSA`.
    #[serde(default)]
    signing_alg: Option<String>,
}

pub async fn add_client(State(app): State<AppState>, admin: Admin, ApiJson(b): ApiJson<ClientBody>) -> Response {
    let new = crate::clients::NewClient {
        name: b.name,
        redirect_uris: b.redirect_uris,
        post_logout_redirect_uris: b.post_logout_redirect_uris,
        public: b.public,
        scopes: b.scopes,
        third_party: b.third_party,
        backchannel_logout_uri: b.backchannel_logout_uri,
        access_token_ttl_secs: b.access_token_ttl_secs,
        refresh_token_ttl_secs: b.refresh_token_ttl_secs,
        jwks: b.jwks.map(|j| j.to_string()),
        signing_alg: b.signing_alg,
    };
    let ring = app.keyring.get();
    match clients(&app, &admin).with_keyring(&ring).add(new).await {
        Ok((c, secret)) => {
            let mut v = crate::clients::view(&c);
            v["client_secret"] = secret.into();
            (StatusCode::CREATED, axum::Json(v)).into_response()
        }
        Err(e) => clients_problem(&e),
    }
}

pub async fn show_client(State(app): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    match clients(&app, &admin).show(&id).await {
        Ok(c) => axum::Json(crate::clients::view(&c)).into_response(),
        Err(e) => clients_problem(&e),
    }
}

pub async fn rotate_client_secret(State(app): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let done = clients(&app, &admin).rotate_secret(&id).await;
    // The old secret must stop working here at once.
    app.oidc.forget_clients();
    match done {
        Ok((c, secret)) => {
            let mut v = crate::clients::view(&c);
            v["client_secret"] = secret.into();
            axum::Json(v).into_response()
        }
        Err(e) => clients_problem(&e),
    }
}

pub async fn delete_client(State(app): State<AppState>, admin: Admin, Path(id): Path<String>) -> Response {
    let done = clients(&app, &admin).delete(&id).await;
    // A deleted client must stop working here at once.
    app.oidc.forget_clients();
    match done {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => clients_problem(&e),
    }
}
