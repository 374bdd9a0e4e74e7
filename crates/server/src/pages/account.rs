//! `/account`: factors with their last use, sessions, sign out everywhere, recovery codes.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wardgate_core::audit::event::types;
use wardgate_core::identity::FactorKind;
use wardgate_core::session::SessionState;

use super::enroll::CodesPage;
use super::{csrf_refused, render, see_other, show_time, with_cookies};
use crate::app::AppState;
use crate::auth::session::{self, Current, FLOW_COOKIE, SESSION_COOKIE, clear_cookie, cookie_value};
use crate::context::ClientContext;
use crate::problem::ApiForm;

struct FactorRow {
    id: String,
    /// An authenticator app or security key that is not the last one.
    removable: bool,
    /// Another unexpired authenticator app or token can confirm its replacement.
    code_step_up: bool,
    /// Another unexpired security key or passkey can confirm its replacement.
    key_step_up: bool,
    label: String,
    details: String,
    created: String,
    last_used: String,
}

struct SessionRow {
    id: String,
    device: String,
    ip: String,
    created: String,
    last_seen: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    display_name: &'a str,
    username: &'a str,
    csrf: &'a str,
    aal: &'a str,
    amr: String,
    idle_secs: i64,
    idle_minutes: i64,
    notices: Vec<String>,
    message: Option<&'a str>,
    factors: Vec<FactorRow>,
    sessions: Vec<SessionRow>,
    /// The reason codes, when this person may open break-glass access and has none open.
    breakglass_codes: Vec<String>,
    breakglass_min: usize,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    #[serde(default)]
    recovery_code_used: Option<usize>,
    #[serde(default)]
    done: Option<String>,
}

/// The signed-in person, or where to send the browser: the sign-in page, or the logoff
/// page when the session it carries has just expired.
pub(crate) async fn signed_in(app: &AppState, headers: &HeaderMap, ctx: &ClientContext) -> Result<Current, Response> {
    match session::current(app, headers, ctx).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) if cookie_value(headers, SESSION_COOKIE).is_some() => {
            Err(with_cookies(see_other("/signed-out?reason=expired"), [clear_cookie(SESSION_COOKIE)]))
        }
        Ok(None) => Err(see_other("/")),
        Err(p) => Err(p.into_response()),
    }
}

/// As [`signed_in`], for a form post: the session's CSRF token must come with it.
pub(crate) async fn signed_in_form(
    app: &AppState,
    headers: &HeaderMap,
    ctx: &ClientContext,
    csrf: &str,
) -> Result<Current, Response> {
    let cur = signed_in(app, headers, ctx).await?;
    if !cur.csrf_ok(csrf) {
        return Err(csrf_refused());
    }
    Ok(cur)
}

fn device(ua: Option<&str>) -> String {
    let ua = ua.unwrap_or("");
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|b| ua.contains(*b))
        .map(|b| b.trim_end_matches('/').replace("Edg", "Edge"))
        .unwrap_or_else(|| if ua.is_empty() { "Unknown".into() } else { ua.chars().take(40).collect() });
    let os = ["Windows", "Mac OS X", "Linux", "Android", "iPhone", "iPad"]
        .iter()
        .find(|o| ua.contains(*o))
        .map(|o| format!(" on {o}"))
        .unwrap_or_default();
    format!("{browser}{os}")
}

pub async fn page(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    Query(q): Query<AccountQuery>,
) -> Response {
    let cur = match signed_in(&app, &headers, &ctx).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (factors, sessions) =
        match (app.store.factors_of(&cur.user.id).await, app.store.sessions_of(&cur.user.id).await) {
            (Ok(f), Ok(s)) => (f, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "account page: store failed");
                return crate::problem::Problem::unavailable("the database is unreachable").into_response();
            }
        };
    let now = (app.clock)();
    let mut notices = Vec::new();
    // A5: the session is visibly marked while emergency access is in force.
    let breakglass_open;
    match app.store.active_break_glass_of(&cur.user.id, now).await {
        Ok(active) => {
            breakglass_open = !active.is_empty();
            notices.extend(active.iter().map(|b| {
            format!(
                "Break-glass emergency access ({}) is in force until {}. Everything you open is recorded and will be reviewed.",
                b.reason_code,
                show_time(b.expires_at)
            )
        }));
        }
        Err(e) => {
            tracing::error!(error = %e, "account page: store failed");
            return crate::problem::Problem::unavailable("the database is unreachable").into_response();
        }
    }
    let mut rows = Vec::new();
    for f in &factors {
        let json = crate::api::me::factor_json(f);
        let mut details = Vec::new();
        for key in ["model", "serial"] {
            if let Some(v) = json.get(key).and_then(|v| v.as_str()) {
                details.push(v.to_owned());
            }
        }
        if let Some(a) = json.get("aaguid").and_then(|v| v.as_str()) {
            details.push(format!("AAGUID {a}"));
        }
        if json.get("backup_eligible").and_then(|v| v.as_bool()) == Some(true) {
            details.push("synced passkey".into());
        }
        if f.kind == FactorKind::RecoveryCodes {
            let left = json.get("remaining").and_then(|v| v.as_u64()).unwrap_or(0);
            details.push(format!("{left} of 10 left"));
            if let Some(used) = f.last_used_at {
                let from = f.params.get("last_used_ip").and_then(|v| v.as_str()).unwrap_or("an unknown address");
                notices.push(format!(
                    "A recovery code was used to sign in to your account on {} from {from}. If that was not you, call the help desk now.",
                    show_time(used)
                ));
            }
            if left <= 1 {
                notices.push(if left == 0 {
                    "You have no recovery codes left. Make new ones below.".to_owned()
                } else {
                    "Only one recovery code is left. Make new ones below.".to_owned()
                });
            }
        }
        if json.get("counter_regressions").and_then(|v| v.as_u64()).unwrap_or(0) > 0 {
            notices.push(format!(
                "Your security key \"{}\" reported a signature counter that went backwards; it may have been copied. Tell the help desk.",
                f.label
            ));
        }
        let second = |k: FactorKind| matches!(k, FactorKind::Totp | FactorKind::Webauthn);
        rows.push(FactorRow {
            id: f.id.clone(),
            removable: second(f.kind) && factors.iter().filter(|o| second(o.kind)).count() > 1,
            code_step_up: factors.iter().any(|o| o.id != f.id && o.kind == FactorKind::Totp && !o.expired_at(now)),
            key_step_up: app.auth.rp().is_some()
                && factors.iter().any(|o| crate::auth::reauth::may_answer(o, &f.id, now)),
            label: f.label.clone(),
            details: details.join(" · "),
            created: show_time(f.created_at),
            last_used: f.last_used_at.map(show_time).unwrap_or_else(|| "never".into()),
        });
    }
    let session_rows = sessions
        .iter()
        .filter(|s| s.state(&app.auth.sessions, now) == SessionState::Active)
        .map(|s| SessionRow {
            id: s.id.clone(),
            device: device(s.user_agent.as_deref()),
            ip: s.client_ip.map(|i| i.to_string()).unwrap_or_else(|| "unknown".into()),
            created: show_time(s.created_at),
            last_seen: show_time(s.last_seen_at),
            current: s.id == cur.session.id,
        })
        .collect();
    let message = match (q.recovery_code_used, q.done.as_deref()) {
        (Some(left), _) => Some(if left == 0 {
            "You signed in with your last recovery code."
        } else {
            "You signed in with a recovery code; it cannot be used again."
        }),
        (_, Some("revoked")) => Some("The session was ended."),
        (_, Some("passphrase")) => Some("Your passphrase was changed."),
        (_, Some("factor-added")) => Some("The new factor is saved; you can use it from your next sign-in."),
        (_, Some("factor-removed")) => Some("The factor was removed."),
        (_, Some("mismatch")) => Some("The two new passphrases differ; nothing was changed."),
        (_, Some("breakglass")) => Some("Emergency access is open. The security team has been alerted."),
        _ => None,
    };
    let csrf = cur.csrf();
    let idle = app.auth.sessions.idle_timeout;
    let page = AccountPage {
        display_name: &cur.user.display_name,
        username: cur.user.username.as_str(),
        csrf: &csrf,
        aal: cur.session.aal.as_str(),
        amr: cur.session.amr.join(", "),
        idle_secs: idle.whole_seconds() + 1,
        idle_minutes: idle.whole_minutes(),
        notices,
        message,
        factors: rows,
        sessions: session_rows,
        breakglass_codes: if !breakglass_open
            && crate::governance::holds(app.access.in_force().policy(), &cur.user, crate::governance::INVOKE, now)
        {
            app.governance.breakglass_reason_codes.clone()
        } else {
            Vec::new()
        },
        breakglass_min: app.governance.breakglass_min_justification_chars,
    };
    render(&page, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeForm {
    csrf: String,
    id: String,
}

pub async fn revoke(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<RevokeForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let e = crate::api::me::event(&app, &cur, &ctx, types::AUTH_SESSION_REVOKED)
        .reason("ended by the user on the account page")
        .detail("session_id", f.id.clone());
    match session::revoke(&app, &cur.user.id, Some(&f.id), &e, "ended by the user").await {
        Ok(_) if f.id == cur.session.id => with_cookies(see_other("/?signed_out=1"), [clear_cookie(SESSION_COOKIE)]),
        Ok(_) | Err(wardgate_store::StoreError::NotFound) => see_other("/account?done=revoked"),
        Err(e) => {
            tracing::error!(error = %e, "revoke session failed");
            crate::problem::Problem::unavailable("the database is unreachable").into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn revoke_all(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CsrfForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let e = crate::api::me::event(&app, &cur, &ctx, types::AUTH_SESSIONS_REVOKED_ALL)
        .reason("signed out everywhere by the user");
    match session::revoke(&app, &cur.user.id, None, &e, "signed out everywhere").await {
        Ok(_) => with_cookies(see_other("/?signed_out=1"), [clear_cookie(SESSION_COOKIE)]),
        Err(e) => {
            tracing::error!(error = %e, "revoke all sessions failed");
            crate::problem::Problem::unavailable("the database is unreachable").into_response()
        }
    }
}

pub async fn recovery_codes(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CsrfForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::api::me::regenerate(&app, &cur, &ctx).await {
        Ok(codes) => render(
            &CodesPage { intro: "Your new recovery codes. The old ones no longer work.", codes: &codes },
            StatusCode::OK,
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassphraseForm {
    csrf: String,
    current_passphrase: String,
    new_passphrase: String,
    new_passphrase_confirm: String,
}

pub async fn passphrase(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<PassphraseForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let outcome = if f.new_passphrase != f.new_passphrase_confirm {
        "mismatch".to_owned()
    } else {
        match crate::api::me::change_passphrase(&app, &cur, &ctx, &f.current_passphrase, &f.new_passphrase).await {
            Ok(()) => "passphrase".to_owned(),
            Err(e) => {
                return crate::pages::message("Passphrase not changed", &e.to_string(), e.problem().status_code());
            }
        }
    };
    see_other(&format!("/account?done={outcome}"))
}

pub async fn add_factor(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CsrfForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::auth::enroll::begin_adding(&app, &cur.user).await {
        Ok(s) => with_cookies(see_other("/enroll/steps"), crate::auth::session::set_cookie(FLOW_COOKIE, &s.flow)),
        Err(e) => crate::api::enroll_problem(&e),
    }
}

pub async fn save_factors(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<CsrfForm>,
) -> Response {
    // This form lives on the factor pages, which carry the double-submit form token.
    if !crate::pages::form_token_ok(&headers, &f.csrf) {
        return csrf_refused();
    }
    let cur = match signed_in(&app, &headers, &ctx).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let handle = cookie_value(&headers, FLOW_COOKIE).unwrap_or_default();
    match crate::auth::enroll::finish_adding(&app, &ctx, &handle, &cur.user).await {
        Ok(_) => with_cookies(see_other("/account?done=factor-added"), [clear_cookie(FLOW_COOKIE)]),
        Err(e) => crate::api::enroll_problem(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveFactorForm {
    csrf: String,
    id: String,
}

pub async fn remove_factor(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<RemoveFactorForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::api::me::remove_own_factor(&app, &cur, &ctx, &f.id).await {
        Ok(()) => see_other("/account?done=factor-removed"),
        Err(p) => crate::pages::message(p.title, p.detail.as_deref().unwrap_or(p.title), p.status_code()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassForm {
    csrf: String,
    reason_code: String,
    justification: String,
}

/// `POST /account/breakglass`: the page's way to open emergency access.
pub async fn breakglass(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<BreakGlassForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match crate::api::breakglass::open_for(&app, &cur, &ctx, f.reason_code, f.justification).await {
        Ok(_) => see_other("/account?done=breakglass"),
        Err(p) => {
            let detail = p.detail.clone().unwrap_or_else(|| p.title.to_owned());
            crate::pages::message("Emergency access not opened", &detail, p.status_code())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceFactorForm {
    csrf: String,
    id: String,
    code: String,
}

/// `POST /account/factors/replace`: a lost factor is removed after a step-up with another
/// one, and the page continues into adding its replacement.
pub async fn replace_factor(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<ReplaceFactorForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    match crate::api::me::replace_own_factor(&app, &cur, &ctx, &f.id, crate::auth::reauth::Proof::Code(f.code)).await {
        Ok(s) => with_cookies(see_other("/enroll/steps"), crate::auth::session::set_cookie(FLOW_COOKIE, &s.flow)),
        Err(p) => crate::pages::message(p.title, p.detail.as_deref().unwrap_or(p.title), p.status_code()),
    }
}
