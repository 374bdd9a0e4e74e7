//! Server-rendered pages: sign-in at `/`, enrollment, the account page, signed out.
//!
//! Plain HTML forms that work without JavaScript on an old workstation; the one script
//! runs the WebAuthn ceremonies. Forms before sign-in carry a double-submit token bound to
//! a `__Host-` cookie; forms after sign-in carry the session's own CSRF token.

pub mod account;
pub mod enroll;
pub mod login;
pub mod reviews;

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use wardgate_core::token;

use crate::auth::session::cookie_value;
use crate::problem::Problem;

/// The double-submit cookie for forms shown before sign-in.
pub const CSRF_COOKIE: &str = "__Host-wardgate-csrf";
/// Where to go after signing in, when an application sent the person (an OpenID Connect
/// authorization request waiting for a session).
pub const NEXT_COOKIE: &str = "__Host-wardgate-next";

/// Only authorization requests are followed after sign-in: anything else would make the
/// sign-in page an open redirector.
pub fn safe_next(next: &str) -> bool {
    (next.starts_with("/oidc/authorize?") || next.starts_with("/gate/start?"))
        && next.len() <= 8192
        && !next.chars().any(|c| c.is_control())
}

/// The cookie remembering `next` (base64url, as an authorization URL may hold characters a
/// cookie cannot).
pub fn next_cookie(next: &str) -> Option<HeaderValue> {
    use base64::Engine as _;
    crate::auth::session::set_cookie(NEXT_COOKIE, &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next))
}

/// The remembered `next`, if any and still safe.
pub fn take_next(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let raw = cookie_value(headers, NEXT_COOKIE)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).ok()?;
    String::from_utf8(bytes).ok().filter(|n| safe_next(n))
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A page that only tells the person something: a refusal, an outcome.
pub fn message(title: &str, message: &str, status: StatusCode) -> Response {
    render(&MessagePage { title, message }, status)
}

pub fn render(t: &impl Template, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            Problem::internal().into_response()
        }
    }
}

/// A fresh form token and the cookie that must come back with it.
pub fn new_form_token() -> Option<(String, HeaderValue)> {
    let t = token::generate().ok()?;
    let cookie =
        HeaderValue::from_str(&format!("{CSRF_COOKIE}={t}; Path=/; Secure; HttpOnly; SameSite=Strict")).ok()?;
    Some((t, cookie))
}

/// The form's token equals its cookie (constant time).
pub fn form_token_ok(headers: &HeaderMap, presented: &str) -> bool {
    let cookie = cookie_value(headers, CSRF_COOKIE).unwrap_or_default();
    !cookie.is_empty() && token::ct_eq(cookie.as_bytes(), presented.as_bytes())
}

/// The form token already in the browser, or a new one (with its cookie to set).
pub fn form_token(headers: &HeaderMap) -> Option<(String, Option<HeaderValue>)> {
    match cookie_value(headers, CSRF_COOKIE).filter(|c| c.len() == 43) {
        Some(t) => Some((t, None)),
        None => new_form_token().map(|(t, c)| (t, Some(c))),
    }
}

pub fn with_cookies(mut resp: Response, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

pub fn csrf_refused() -> Response {
    crate::auth::session::csrf_problem().into_response()
}

/// Times shown on pages: UTC, to the minute.
pub fn show_time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_default()
}
