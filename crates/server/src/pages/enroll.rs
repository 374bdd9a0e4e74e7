//! `/enroll…`: enrollment pages over the same service as the JSON API.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{csrf_refused, form_token, form_token_ok, render, see_other, with_cookies};
use crate::app::AppState;
use crate::auth::enroll::{self, EnrollError, Status, TotpSetup};
use crate::auth::session::{FLOW_COOKIE, SESSION_COOKIE, clear_cookie, cookie_value, set_cookie};
use crate::context::ClientContext;
use crate::problem::{ApiForm, Problem};

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage<'a> {
    org: &'a str,
    csrf: &'a str,
    username: &'a str,
    display_name: &'a str,
    passphrase_set: bool,
    second_factors: &'a [String],
    can_finish: bool,
    adding: bool,
    recovering: bool,
    totp: Option<&'a TotpSetup>,
    min_length: usize,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub(crate) struct CodesPage<'a> {
    pub intro: &'a str,
    pub codes: &'a [String],
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

fn link_refused(e: &EnrollError) -> Response {
    super::message("This link cannot be used", &e.to_string(), StatusCode::GONE)
}

/// The link from the invitation: opens an enrollment and moves its handle into a cookie,
/// so that the link's token does not linger in the address bar or the history.
pub async fn open_link(State(app): State<AppState>, ctx: ClientContext, Query(q): Query<LinkQuery>) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match enroll::begin(&app, &ctx, &q.token).await {
        Ok(s) => with_cookies(see_other("/enroll/steps"), set_cookie(FLOW_COOKIE, &s.flow)),
        Err(e @ (EnrollError::Link | EnrollError::Expired)) => link_refused(&e),
        Err(e) => crate::api::enroll_problem(&e),
    }
}

fn page(app: &AppState, headers: &HeaderMap, s: &Status, totp: Option<&TotpSetup>, error: Option<String>) -> Response {
    let Some((csrf, cookie)) = form_token(headers) else { return Problem::internal().into_response() };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let p = EnrollPage {
        org: &app.auth.settings.organization_name,
        csrf: &csrf,
        username: &s.username,
        display_name: &s.display_name,
        passphrase_set: s.passphrase_set,
        second_factors: &s.second_factors,
        can_finish: s.can_finish,
        adding: s.adding,
        recovering: s.recovering,
        totp,
        min_length: app.auth.passphrases.min_chars,
        error,
    };
    with_cookies(render(&p, status), cookie)
}

fn handle(headers: &HeaderMap) -> String {
    cookie_value(headers, FLOW_COOKIE).unwrap_or_default()
}

pub async fn steps(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match enroll::current(&app, &handle(&headers)).await {
        Ok(s) => page(&app, &headers, &s, None, None),
        Err(e @ (EnrollError::Link | EnrollError::Expired)) => link_refused(&e),
        Err(e) => crate::api::enroll_problem(&e),
    }
}

/// After a refused step: the page again, with the reason.
async fn again(app: &AppState, headers: &HeaderMap, e: EnrollError) -> Response {
    match e {
        EnrollError::Link | EnrollError::Expired => link_refused(&e),
        EnrollError::Unavailable => crate::api::enroll_problem(&e),
        e => match enroll::current(app, &handle(headers)).await {
            Ok(s) => page(app, headers, &s, None, Some(e.to_string())),
            Err(e) => link_refused(&e),
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassphraseForm {
    csrf: String,
    passphrase: String,
    passphrase_confirm: String,
}

pub async fn passphrase(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<PassphraseForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return csrf_refused();
    }
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match enroll::set_passphrase(&app, &ctx, &handle(&headers), &f.passphrase, Some(&f.passphrase_confirm)).await {
        Ok(_) => see_other("/enroll/steps"),
        Err(e) => again(&app, &headers, e).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn totp(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CsrfForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return csrf_refused();
    }
    let h = handle(&headers);
    match enroll::totp_begin(&app, &ctx, &h).await {
        Ok(setup) => match enroll::current(&app, &h).await {
            Ok(s) => page(&app, &headers, &s, Some(&setup), None),
            Err(e) => again(&app, &headers, e).await,
        },
        Err(e) => again(&app, &headers, e).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

pub async fn totp_confirm(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CodeForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return csrf_refused();
    }
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match enroll::totp_confirm(&app, &ctx, &handle(&headers), &f.code).await {
        Ok(_) => see_other("/enroll/steps"),
        Err(e) => again(&app, &headers, e).await,
    }
}

pub async fn finish(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CsrfForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return csrf_refused();
    }
    match enroll::finish(&app, &ctx, &handle(&headers)).await {
        Ok(done) => {
            let codes: Vec<String> = done.recovery_codes.iter().map(|c| c.to_string()).collect();
            let page = CodesPage {
                intro: "Your account is ready and you are signed in. Keep these codes for when your other factors are not at hand.",
                codes: &codes,
            };
            with_cookies(
                render(&page, StatusCode::OK),
                set_cookie(SESSION_COOKIE, &done.signed_in.token).into_iter().chain([clear_cookie(FLOW_COOKIE)]),
            )
        }
        Err(e) => again(&app, &headers, e).await,
    }
}

fn recovery_refused(e: &EnrollError) -> Response {
    super::message("This recovery link cannot be used", &e.to_string(), StatusCode::GONE)
}

/// The link a help-desk supervisor handed over (L3): opens a flow that enrolls one new
/// authenticator app or security key, through the usual enrollment page.
pub async fn open_recovery(State(app): State<AppState>, ctx: ClientContext, Query(q): Query<LinkQuery>) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match enroll::begin_recovery(&app, &ctx, &q.token).await {
        Ok(s) => with_cookies(see_other("/enroll/steps"), set_cookie(FLOW_COOKIE, &s.flow)),
        Err(e @ (EnrollError::RecoveryLink | EnrollError::Link | EnrollError::Expired)) => recovery_refused(&e),
        Err(e @ EnrollError::ProofingRequired(_)) => {
            super::message("Identity verification needed", &e.to_string(), StatusCode::FORBIDDEN)
        }
        Err(e) => crate::api::enroll_problem(&e),
    }
}

pub async fn finish_recovery(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CsrfForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return csrf_refused();
    }
    match enroll::finish_recovery(&app, &ctx, &handle(&headers)).await {
        Ok(label) => with_cookies(
            super::message(
                "Your new factor is saved",
                &format!("{label} is now part of your account. Sign in with your passphrase and it."),
                StatusCode::OK,
            ),
            [clear_cookie(FLOW_COOKIE)],
        ),
        Err(e @ EnrollError::RecoveryLink) => recovery_refused(&e),
        Err(e) => again(&app, &headers, e).await,
    }
}
