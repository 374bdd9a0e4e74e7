//! `/` and `/login…`: sign-in pages over the same login service as the JSON API.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{csrf_refused, form_token, form_token_ok, render, see_other, with_cookies};
use crate::app::AppState;
use crate::auth::login::{self, Advanced, LoginError, Next, Step};
use crate::auth::session::{self, FLOW_COOKIE, SESSION_COOKIE, clear_cookie, cookie_value, set_cookie};
use crate::context::ClientContext;
use crate::problem::ApiForm;
use wardgate_core::login::Aal;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    org: &'a str,
    csrf: &'a str,
    username: &'a str,
    error: Option<String>,
    notice: Option<&'a str>,
    /// A step-up for this person: only a security key will do, and only theirs.
    step_up_user: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "login_verify.html")]
struct VerifyPage<'a> {
    csrf: &'a str,
    error: Option<String>,
    webauthn: bool,
    totp: bool,
    recovery: bool,
}

#[derive(Deserialize)]
pub struct IndexQuery {
    #[serde(default)]
    signed_out: Option<String>,
    /// An authorization request to continue after sign-in.
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    login_hint: Option<String>,
    /// The application needs more assurance than the current session has.
    #[serde(default)]
    step_up: Option<String>,
}

pub async fn index(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    Query(q): Query<IndexQuery>,
) -> Response {
    let next = q.next.as_deref().filter(|n| crate::pages::safe_next(n));
    // With an application waiting, the page is always shown: the application asked for a
    // sign-in (none yet, a fresh one, or a stronger one).
    let current = match session::current(&app, &headers, &ctx).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    // From a one-factor session, a step-up asks only for the missing second factor.
    if let Some(cur) = current.as_ref().filter(|c| q.step_up.is_some() && c.session.aal == Aal::Aal1) {
        match login::start_step_up(&app, &ctx, &cur.user, &cur.session).await {
            Ok(p) => {
                let mut cookies = vec![set_cookie(FLOW_COOKIE, &p.flow)];
                if let Some(c) = next.and_then(crate::pages::next_cookie) {
                    cookies.push(Some(c));
                }
                return with_cookies(see_other("/login/verify"), cookies.into_iter().flatten());
            }
            Err(e) => {
                tracing::debug!(error = %e, "step-up from a one-factor session not possible; showing the sign-in page")
            }
        }
    }
    if next.is_none() && current.is_some() {
        return see_other("/account");
    }
    // A step-up is for the person already signed in: their key, not a colleague's.
    let step_up_user = q.step_up.as_ref().and(current.as_ref()).map(|c| c.user.username.as_str().to_owned());
    let notice = match (&q.signed_out, &step_up_user, next) {
        (_, Some(_), _) => Some("This application needs a stronger sign-in: use your security key."),
        (Some(_), _, _) => Some("You are signed out."),
        (_, _, Some(_)) => Some("Sign in to continue to the application."),
        _ => None,
    };
    let hint = q.login_hint.as_deref().and_then(username_hint).unwrap_or_default();
    let resp = login_page_for(&app, &headers, &hint, None, notice, StatusCode::OK, step_up_user.as_deref());
    match next.and_then(crate::pages::next_cookie) {
        Some(c) => with_cookies(resp, [c]),
        None => resp,
    }
}

fn username_hint(hint: &str) -> Option<String> {
    wardgate_core::identity::Username::parse(hint).ok().map(|u| u.as_str().to_owned())
}

fn login_page(
    app: &AppState,
    headers: &HeaderMap,
    username: &str,
    error: Option<String>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    login_page_for(app, headers, username, error, notice, status, None)
}

fn login_page_for(
    app: &AppState,
    headers: &HeaderMap,
    username: &str,
    error: Option<String>,
    notice: Option<&str>,
    status: StatusCode,
    step_up_user: Option<&str>,
) -> Response {
    let Some((csrf, cookie)) = form_token(headers) else { return crate::problem::Problem::internal().into_response() };
    let page =
        LoginPage { org: &app.auth.settings.organization_name, csrf: &csrf, username, error, notice, step_up_user };
    with_cookies(render(&page, status), cookie)
}

/// The words people see for each refusal; the same for unknown and known usernames.
fn message(e: &LoginError, app: &AppState) -> (StatusCode, String) {
    let now = (app.clock)();
    match e {
        LoginError::Failed { second_step: false } => {
            (StatusCode::UNAUTHORIZED, "The username or passphrase is not correct.".into())
        }
        LoginError::Failed { second_step: true } => {
            (StatusCode::UNAUTHORIZED, "That was not accepted. Check the code and try again.".into())
        }
        LoginError::KeyRefused => (StatusCode::UNAUTHORIZED, "The security key or passkey was not accepted.".into()),
        LoginError::Replayed => {
            (StatusCode::UNAUTHORIZED, "That code was already used. Wait for your app to show the next one.".into())
        }
        LoginError::Throttled(until) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts. Wait {} seconds and try again.", (*until - now).whole_seconds().max(1)),
        ),
        LoginError::Locked(until) => (
            StatusCode::LOCKED,
            format!(
                "Too many failed attempts: sign-in is blocked for {} more minutes. The help desk can unlock it sooner.",
                ((*until - now).whole_minutes() + 1).max(1)
            ),
        ),
        LoginError::Malformed(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
        LoginError::NoSecondFactor
        | LoginError::NoWebauthn
        | LoginError::PolicyDenied
        | LoginError::FactorExpired(_) => (StatusCode::FORBIDDEN, e.to_string()),
        LoginError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        _ => (StatusCode::GONE, "This sign-in has expired. Start again.".into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    csrf: String,
    username: String,
    passphrase: String,
}

pub async fn submit(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(form): ApiForm<LoginForm>,
) -> Response {
    if !form_token_ok(&headers, &form.csrf) {
        return csrf_refused();
    }
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    let progress = match login::start(&app, &ctx, Some(&form.username)).await {
        Ok(p) => p,
        Err(e) => {
            let (status, msg) = message(&e, &app);
            return login_page(&app, &headers, &form.username, Some(msg), None, status);
        }
    };
    match login::step(&app, &ctx, &progress.flow, Step::Passphrase(form.passphrase)).await {
        Ok(Advanced::Continue(p)) => with_cookies(see_other("/login/verify"), set_cookie(FLOW_COOKIE, &p.flow)),
        Ok(Advanced::SignedIn(s)) => signed_in(&headers, &s),
        Err(e) => {
            let (status, msg) = message(&e, &app);
            login_page(&app, &headers, &form.username, Some(msg), None, status)
        }
    }
}

fn signed_in(headers: &HeaderMap, s: &login::SignedIn) -> Response {
    let to = match (crate::pages::take_next(headers), s.recovery_codes_left) {
        (Some(next), _) => next,
        (None, Some(left)) => format!("/account?recovery_code_used={left}"),
        (None, None) => "/account".into(),
    };
    let cookies = set_cookie(SESSION_COOKIE, &s.token)
        .into_iter()
        .chain([clear_cookie(FLOW_COOKIE), clear_cookie(crate::pages::NEXT_COOKIE)]);
    with_cookies(see_other(&to), cookies)
}

pub async fn verify_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    verify_page_with(&app, &headers, None, StatusCode::OK).await
}

async fn verify_page_with(app: &AppState, headers: &HeaderMap, error: Option<String>, status: StatusCode) -> Response {
    let handle = cookie_value(headers, FLOW_COOKIE).unwrap_or_default();
    let next = match login::pending(app, &handle).await {
        Ok(n) if !n.contains(&Next::Passphrase) => n,
        _ => return see_other("/"),
    };
    let Some((csrf, cookie)) = form_token(headers) else { return crate::problem::Problem::internal().into_response() };
    let page = VerifyPage {
        csrf: &csrf,
        error,
        webauthn: next.contains(&Next::Webauthn),
        totp: next.contains(&Next::Totp),
        recovery: next.contains(&Next::RecoveryCode),
    };
    with_cookies(render(&page, status), cookie)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyForm {
    csrf: String,
    method: String,
    code: String,
}

pub async fn verify(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(form): ApiForm<VerifyForm>,
) -> Response {
    if !form_token_ok(&headers, &form.csrf) {
        return csrf_refused();
    }
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    let step = match form.method.as_str() {
        "totp" => Step::Totp(form.code),
        "recovery_code" => Step::RecoveryCode(form.code),
        _ => return crate::problem::Problem::invalid_field("method must be totp or recovery_code").into_response(),
    };
    let handle = cookie_value(&headers, FLOW_COOKIE).unwrap_or_default();
    match login::step(&app, &ctx, &handle, step).await {
        Ok(Advanced::SignedIn(s)) => signed_in(&headers, &s),
        Ok(Advanced::Continue(_)) => see_other("/login/verify"),
        Err(e @ (LoginError::Expired | LoginError::OutOfOrder)) => {
            let (status, msg) = message(&e, &app);
            login_page(&app, &headers, "", Some(msg), None, status)
        }
        Err(e) => {
            let (status, msg) = message(&e, &app);
            verify_page_with(&app, &headers, Some(msg), status).await
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOutForm {
    csrf: String,
}

pub async fn logout(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(form): ApiForm<SignOutForm>,
) -> Response {
    let cur = match session::current(&app, &headers, &ctx).await {
        Ok(Some(c)) => c,
        Ok(None) => return see_other("/?signed_out=1"),
        Err(p) => return p.into_response(),
    };
    if !cur.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    if let Err(p) = session::end(&app, &cur, &ctx).await {
        return p.into_response();
    }
    with_cookies(see_other("/?signed_out=1"), [clear_cookie(SESSION_COOKIE)])
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    message: &'a str,
}

#[derive(Deserialize)]
pub struct SignedOutQuery {
    #[serde(default)]
    reason: Option<String>,
}

/// Automatic logoff (HIPAA 164.312(a)(2)(iii)): where an idle page sends itself. The
/// session has expired server-side by then; presenting it here ends and audits it.
pub async fn signed_out(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    Query(q): Query<SignedOutQuery>,
) -> Response {
    if let Ok(Some(_)) = session::current(&app, &headers, &ctx).await {
        // Still live (activity in another tab): nothing to sign out.
        return see_other("/account");
    }
    let minutes = app.auth.sessions.idle_timeout.whole_minutes();
    let message = match q.reason.as_deref() {
        Some("idle") => format!(
            "You were signed out after {minutes} minutes without activity, to protect patient data on this workstation."
        ),
        _ => "Your session has ended.".to_owned(),
    };
    let mut resp = render(&SignedOutPage { message: &message }, StatusCode::OK);
    resp.headers_mut().append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    resp
}
