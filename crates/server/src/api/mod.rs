//! The JSON API under `/api/v1`: login, enrollment, the signed-in person's own account,
//! and administration. Documented in `openapi.json`, served at `/api/v1/openapi.json`.

pub mod admin;
pub mod admin_roles;
pub mod breakglass;
pub mod enroll;
pub mod lifecycle;
pub mod login;
pub mod me;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::auth::enroll::EnrollError;
use crate::auth::login::LoginError;
use crate::auth::session::{FLOW_COOKIE, cookie_value};
use crate::problem::Problem;

/// A step that carries a passphrase (login or enrollment). `flow` may be omitted by the
/// pages, whose flow handle travels in a cookie.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassphraseBody {
    #[serde(default)]
    pub flow: Option<String>,
    pub passphrase: String,
}

/// A step that carries a one-time or recovery code.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    #[serde(default)]
    pub flow: Option<String>,
    pub code: String,
}

/// A step that carries only the flow handle.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowBody {
    #[serde(default)]
    pub flow: Option<String>,
}

pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The flow handle from the body, or else from the pages' cookie.
pub(crate) fn flow_handle(body: Option<String>, headers: &HeaderMap) -> String {
    body.filter(|f| !f.is_empty()).or_else(|| cookie_value(headers, FLOW_COOKIE)).unwrap_or_default()
}

fn retry_after(mut resp: Response, until: OffsetDateTime, now: OffsetDateTime) -> Response {
    let secs = (until - now).whole_seconds().max(1);
    if let Ok(v) = secs.to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// One problem per login error. Unknown usernames, inactive accounts and wrong secrets
/// share one answer, byte for byte.
pub fn login_problem(e: &LoginError, now: OffsetDateTime) -> Response {
    match e {
        LoginError::Failed { second_step: false } => {
            Problem::new(StatusCode::UNAUTHORIZED, "login-failed", "Sign-in failed")
                .detail("The username or passphrase is not correct.")
                .into_response()
        }
        LoginError::Failed { second_step: true } => {
            Problem::new(StatusCode::UNAUTHORIZED, "login-failed", "Sign-in failed")
                .detail("The code or security key was not accepted.")
                .into_response()
        }
        LoginError::KeyRefused => Problem::new(StatusCode::UNAUTHORIZED, "login-failed", "Sign-in failed")
            .detail("The security key or passkey was not accepted.")
            .into_response(),
        LoginError::Replayed => Problem::new(StatusCode::UNAUTHORIZED, "code-replayed", "That code was already used")
            .detail("Wait for your app to show the next code.")
            .into_response(),
        LoginError::Throttled(until) => retry_after(
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "login-throttled", "Too many attempts")
                .detail(format!("Wait {} seconds before trying again.", (*until - now).whole_seconds().max(1)))
                .into_response(),
            *until,
            now,
        ),
        LoginError::Locked(until) => retry_after(
            Problem::new(StatusCode::LOCKED, "account-locked", "Too many failed attempts")
                .detail(format!(
                    "Sign-in is blocked for {} more minutes. The help desk can unlock it sooner.",
                    ((*until - now).whole_minutes() + 1).max(1)
                ))
                .into_response(),
            *until,
            now,
        ),
        LoginError::Expired => Problem::new(StatusCode::GONE, "login-expired", "This sign-in has expired")
            .detail("Start again.")
            .into_response(),
        LoginError::OutOfOrder => {
            Problem::new(StatusCode::CONFLICT, "login-out-of-order", "This step is not expected now").into_response()
        }
        LoginError::NoSecondFactor => {
            Problem::new(StatusCode::FORBIDDEN, "no-second-factor", "No second factor enrolled")
                .detail(e.to_string())
                .into_response()
        }
        LoginError::Malformed(m) => Problem::invalid_field(m.clone()).into_response(),
        LoginError::FactorExpired(_) => {
            Problem::new(StatusCode::FORBIDDEN, "factor-expired", "This authenticator has expired")
                .detail(e.to_string())
                .into_response()
        }
        LoginError::NoWebauthn => {
            Problem::new(StatusCode::CONFLICT, "webauthn-unavailable", "Security keys are not available on this server")
                .detail(e.to_string())
                .into_response()
        }
        LoginError::Unavailable => Problem::unavailable(e.to_string()).into_response(),
        LoginError::PolicyDenied => {
            Problem::new(StatusCode::FORBIDDEN, "policy-denied", "The access policy does not allow this sign-in")
                .detail(e.to_string())
                .into_response()
        }
    }
}

pub fn enroll_problem(e: &EnrollError) -> Response {
    match e {
        EnrollError::Link => Problem::new(StatusCode::GONE, "enrollment-link-invalid", "Enrollment link invalid")
            .detail(e.to_string())
            .into_response(),
        EnrollError::Expired => Problem::new(StatusCode::GONE, "enrollment-expired", "Enrollment expired")
            .detail(e.to_string())
            .into_response(),
        EnrollError::OutOfOrder(_) => {
            Problem::new(StatusCode::CONFLICT, "enrollment-out-of-order", "This step is not expected now")
                .detail(e.to_string())
                .into_response()
        }
        EnrollError::Unavailable => Problem::unavailable(e.to_string()).into_response(),
        EnrollError::NoWebauthn => {
            Problem::new(StatusCode::CONFLICT, "webauthn-unavailable", "Security keys are not available on this server")
                .detail(e.to_string())
                .into_response()
        }
        EnrollError::ProofingRequired(_) => {
            Problem::new(StatusCode::FORBIDDEN, "proofing-required", "Identity proofing required")
                .detail(e.to_string())
                .into_response()
        }
        EnrollError::RecoveryLink => Problem::new(StatusCode::GONE, "recovery-link-invalid", "Recovery link invalid")
            .detail(e.to_string())
            .into_response(),
        EnrollError::ModelRefused => {
            Problem::new(StatusCode::FORBIDDEN, "authenticator-not-allowed", "Authenticator model not allowed")
                .detail(e.to_string())
                .into_response()
        }
        _ => Problem::invalid_field(e.to_string()).into_response(),
    }
}
