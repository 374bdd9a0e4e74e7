//! Enrolling the first administrator through the one-time link printed at first start.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{ADMIN_ROLE, AccountStatus, Factor, FactorKind, User, Username};
use wardgate_core::{passphrase, token};
use wardgate_store::StoreError;

use crate::app::AppState;
use crate::context::ClientContext;
use crate::pages::{csrf_refused, form_token_ok, new_form_token, render, with_cookies};
use crate::problem::{ApiForm, ApiJson, Problem};

#[derive(Template)]
#[template(path = "bootstrap.html")]
struct FormPage<'a> {
    token: &'a str,
    csrf: &'a str,
    username: &'a str,
    display_name: &'a str,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormBody {
    token: String,
    csrf: String,
    username: String,
    display_name: String,
    passphrase: String,
    passphrase_confirm: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBody {
    token: String,
    username: String,
    display_name: String,
    passphrase: String,
}

#[derive(Debug, thiserror::Error)]
enum RedeemError {
    #[error("{0}")]
    Username(#[from] wardgate_core::identity::InvalidUsername),
    #[error("full name must be 1-128 characters")]
    DisplayName,
    #[error("{0}")]
    Passphrase(#[from] passphrase::PassphraseError),
    #[error("the two passphrases differ")]
    Mismatch,
    #[error("that username is already taken; choose another")]
    Taken,
    #[error(
        "this enrollment link is invalid, used or expired; run `wardgate admin bootstrap` on the server for a new one"
    )]
    Link,
    #[error("the request could not be recorded")]
    Unavailable,
}

impl RedeemError {
    fn problem(&self) -> Problem {
        match self {
            RedeemError::Link => {
                Problem::new(StatusCode::GONE, "bootstrap-link-invalid", "Enrollment link invalid, used or expired")
                    .detail(self.to_string())
            }
            RedeemError::Unavailable => Problem::unavailable(self.to_string()),
            _ => Problem::invalid_field(self.to_string()),
        }
    }
}

fn invalid_link_page() -> Response {
    crate::pages::message(
        "This link cannot be used",
        "The enrollment link is invalid, already used or expired. An operator can print a new one on the server with `wardgate admin bootstrap`.",
        StatusCode::GONE,
    )
}

pub async fn page(State(state): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let now = (state.clock)();
    let pending = match state.store.bootstrap_pending(now).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "bootstrap page: store unavailable");
            return Problem::unavailable("the database is unreachable").into_response();
        }
    };
    if !pending || q.token.len() != 43 {
        return invalid_link_page();
    }
    let Some((csrf, cookie)) = new_form_token() else { return Problem::internal().into_response() };
    let resp =
        render(&FormPage { token: &q.token, csrf: &csrf, username: "", display_name: "", error: None }, StatusCode::OK);
    with_cookies(resp, [cookie])
}

pub async fn submit_form(
    State(state): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(form): ApiForm<FormBody>,
) -> Response {
    if let Err(limited) = state.bootstrap_limit.check(ctx.ip) {
        return limited.into_response();
    }
    if !form_token_ok(&headers, &form.csrf) {
        return csrf_refused();
    }
    if form.passphrase != form.passphrase_confirm {
        return form_error(&form, RedeemError::Mismatch);
    }
    match redeem(&state, &ctx, &form.token, &form.username, &form.display_name, &form.passphrase).await {
        Ok((_, enroll)) => crate::pages::see_other(&format!("/enroll?token={enroll}")),
        Err(RedeemError::Link) => invalid_link_page(),
        Err(RedeemError::Unavailable) => Problem::unavailable("the request could not be recorded").into_response(),
        Err(e) => form_error(&form, e),
    }
}

fn form_error(form: &FormBody, e: RedeemError) -> Response {
    render(
        &FormPage {
            token: &form.token,
            csrf: &form.csrf,
            username: &form.username,
            display_name: &form.display_name,
            error: Some(e.to_string()),
        },
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

pub async fn submit_json(
    State(state): State<AppState>,
    ctx: ClientContext,
    ApiJson(body): ApiJson<JsonBody>,
) -> Response {
    if let Err(limited) = state.bootstrap_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match redeem(&state, &ctx, &body.token, &body.username, &body.display_name, &body.passphrase).await {
        Ok((user, enroll)) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({
                "id": user.id,
                "username": user.username.as_str(),
                "is_admin": true,
                "status": "invited",
                "enrollment_token": enroll,
            })),
        )
            .into_response(),
        Err(e) => e.problem().into_response(),
    }
}

async fn redeem(
    state: &AppState,
    ctx: &ClientContext,
    link: &str,
    username: &str,
    display_name: &str,
    passphrase_text: &str,
) -> Result<(User, String), RedeemError> {
    let now = (state.clock)();
    let username = Username::parse(username)?;
    let display_name = display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > 128 {
        return Err(RedeemError::DisplayName);
    }
    // Until the administrator enrolls a second factor, the passphrase is the only one.
    passphrase::check_new(
        &state.auth.passphrases,
        passphrase_text,
        true,
        &[username.as_str(), display_name, &state.auth.settings.organization_name],
    )?;
    let event = |t, outcome| {
        AuditEvent::known(now, t, outcome)
            .subject(username.as_str())
            .client_ip(ctx.ip)
            .user_agent(ctx.user_agent.clone())
            .correlation_id(ctx.request_id.clone())
    };
    // Argon2id is deliberately slow: keep it off the async workers.
    let pass = passphrase_text.to_owned();
    let params = state.auth.hash;
    let phc = tokio::task::spawn_blocking(move || passphrase::hash_with(params, &pass))
        .await
        .map_err(|_| RedeemError::Unavailable)??;
    let id = token::random_id().map_err(|_| RedeemError::Unavailable)?;
    let factor_id = token::random_id().map_err(|_| RedeemError::Unavailable)?;
    // Invited until a second factor is enrolled: the administrator continues straight into
    // the normal enrollment, and nobody administers Wardgate with a passphrase alone.
    let mut user = User::new(id.clone(), username.clone(), display_name.to_owned(), AccountStatus::Invited, now)
        .with_roles([ADMIN_ROLE.to_owned()]);
    user.privileged = true;
    let mut factor = Factor::new(factor_id, id, FactorKind::Passphrase, "Passphrase", phc, now);
    factor.enrolled_by = Some(wardgate_core::lifecycle::EnrolledBy::EnrollmentLink.to_string());
    let ok = event(types::ADMIN_BOOTSTRAP_REDEEMED, Outcome::Success).factor("pwd").detail("user_id", user.id.clone());
    match state.store.redeem_bootstrap(&token::digest(link), now, &user, &[factor], &ok).await {
        Ok(()) => {
            let enroll = token::generate().map_err(|_| RedeemError::Unavailable)?;
            let issued = event(types::ADMIN_ENROLLMENT_ISSUED, Outcome::Success)
                .detail("user_id", user.id.clone())
                .reason("first administrator continues to second-factor enrollment");
            state
                .store
                .issue_enrollment(&user.id, &token::digest(&enroll), now + time::Duration::hours(1), &issued)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "bootstrap: enrollment link failed");
                    RedeemError::Unavailable
                })?;
            Ok((user, enroll))
        }
        Err(StoreError::UsernameTaken) => Err(RedeemError::Taken),
        Err(StoreError::BootstrapInvalid | StoreError::AdminExists) => {
            let refused =
                event(types::ADMIN_BOOTSTRAP_REFUSED, Outcome::Denied).reason("invalid, used or expired link");
            // The refusal is evidence too; if it cannot be recorded the caller still only sees a refusal.
            if let Err(e) = state.audit.append(refused).await {
                tracing::error!(error = %e, "could not record refused bootstrap attempt");
            }
            Err(RedeemError::Link)
        }
        Err(e) => {
            tracing::error!(error = %e, "bootstrap redemption failed");
            Err(RedeemError::Unavailable)
        }
    }
}
