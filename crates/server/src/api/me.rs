//! `/api/v1/me…`: the signed-in person's own account — factors with their last use,
//! sessions, sign out everywhere, new recovery codes.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use wardgate_core::audit::event::types;
use wardgate_core::audit::record::format_ts;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::factors::recovery_codes;
use wardgate_core::identity::{Factor, FactorKind};
use wardgate_core::login::FactorUsed;
use wardgate_store::StoreError;

use super::login::session_json;
use crate::app::AppState;
use crate::auth::factor_check::{CheckError, Passed};
use crate::auth::reauth::{self, Proof, Purpose, Refused};
use crate::auth::session::{Current, SESSION_COOKIE, SignedIn, clear_cookie};
use crate::context::ClientContext;
use crate::problem::Problem;

/// A factor as people see it: never its secret.
pub fn factor_json(f: &Factor) -> serde_json::Value {
    let p = &f.params;
    let mut v = serde_json::json!({
        "id": f.id,
        "kind": f.kind.as_str(),
        "label": f.label,
        "created_at": format_ts(f.created_at),
        "last_used_at": f.last_used_at.map(format_ts),
    });
    if let Some(m) = v.as_object_mut() {
        for key in ["aaguid", "model", "backup_eligible", "serial", "remaining", "last_used_ip", "counter_regressions"]
        {
            if let Some(x) = p.get(key).filter(|x| !x.is_null()) {
                m.insert(key.into(), x.clone());
            }
        }
        if f.kind == FactorKind::RecoveryCodes {
            m.insert("remaining".into(), crate::auth::factor_check::slots_of(f).iter().flatten().count().into());
        }
    }
    v
}

fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "account: store failed");
    Problem::unavailable("the database is unreachable").into_response()
}

pub async fn me(State(app): State<AppState>, SignedIn(cur): SignedIn) -> Response {
    let factors = match app.store.factors_of(&cur.user.id).await {
        Ok(f) => f,
        Err(e) => return unavailable(e),
    };
    let sessions = match app.store.sessions_of(&cur.user.id).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let now = (app.clock)();
    // Emergency access in force is shown with the session, so the person (and anyone
    // looking at their screen) sees it (A5: the session is visibly marked).
    let break_glass = match app.store.active_break_glass_of(&cur.user.id, now).await {
        Ok(b) => b,
        Err(e) => return unavailable(e),
    };
    let live: Vec<_> = sessions
        .iter()
        .filter(|s| s.state(&app.auth.sessions, now) == wardgate_core::session::SessionState::Active)
        .map(|s| {
            let mut j = session_json(&app, s);
            j["current"] = (s.id == cur.session.id).into();
            j
        })
        .collect();
    axum::Json(serde_json::json!({
        "user": {
            "id": cur.user.id,
            "username": cur.user.username.as_str(),
            "display_name": cur.user.display_name,
            "email": cur.user.email,
            "roles": cur.user.roles,
        },
        "session": session_json(&app, &cur.session),
        "csrf_token": cur.csrf(),
        "factors": factors.iter().map(factor_json).collect::<Vec<_>>(),
        "sessions": live,
        "break_glass": break_glass
            .iter()
            .map(|b| crate::governance::breakglass::json(b, app.governance.review_within(), now))
            .collect::<Vec<_>>(),
    }))
    .into_response()
}

/// An event about the signed-in person, done by themselves.
pub(crate) fn event(app: &AppState, cur: &Current, ctx: &ClientContext, t: &'static str) -> AuditEvent {
    AuditEvent::known((app.clock)(), t, Outcome::Success)
        .subject(cur.user.username.as_str())
        .client_ip(ctx.ip)
        .user_agent(ctx.user_agent.clone())
        .correlation_id(ctx.request_id.clone())
}

pub async fn revoke_session(
    State(app): State<AppState>,
    ctx: ClientContext,
    SignedIn(cur): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let e = event(&app, &cur, &ctx, types::AUTH_SESSION_REVOKED)
        .reason("revoked by the user")
        .detail("session_id", id.clone());
    match crate::auth::session::revoke(&app, &cur.user.id, Some(&id), &e, "revoked by the user").await {
        Ok(_) => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            if id == cur.session.id {
                resp.headers_mut().append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
            }
            resp
        }
        Err(StoreError::NotFound) => Problem::not_found().into_response(),
        Err(e) => unavailable(e),
    }
}

/// Sign out everywhere: every session of this account, this one included.
pub async fn revoke_all(State(app): State<AppState>, ctx: ClientContext, SignedIn(cur): SignedIn) -> Response {
    let e = event(&app, &cur, &ctx, types::AUTH_SESSIONS_REVOKED_ALL).reason("signed out everywhere by the user");
    match crate::auth::session::revoke(&app, &cur.user.id, None, &e, "signed out everywhere").await {
        Ok(n) => {
            let mut resp = axum::Json(serde_json::json!({"revoked": n})).into_response();
            resp.headers_mut().append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
            resp
        }
        Err(e) => unavailable(e),
    }
}

/// A fresh set of ten recovery codes, replacing the old set; shown once.
pub async fn regenerate_recovery_codes(
    State(app): State<AppState>,
    ctx: ClientContext,
    SignedIn(cur): SignedIn,
) -> Response {
    match regenerate(&app, &cur, &ctx).await {
        Ok(codes) => axum::Json(serde_json::json!({"recovery_codes": codes})).into_response(),
        Err(r) => r,
    }
}

pub(crate) async fn regenerate(app: &AppState, cur: &Current, ctx: &ClientContext) -> Result<Vec<String>, Response> {
    let factors = app.store.factors_of(&cur.user.id).await.map_err(unavailable)?;
    let codes = tokio::task::spawn_blocking(recovery_codes::generate)
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| Problem::internal().into_response())?;
    let slots = serde_json::to_string(&codes.hashes).map_err(|_| Problem::internal().into_response())?;
    let now = (app.clock)();
    let e = event(app, cur, ctx, types::ACCOUNT_RECOVERY_CODES_REGENERATED).factor("otp");
    let stored = match factors.iter().find(|f| f.kind == FactorKind::RecoveryCodes) {
        Some(old) => {
            let mut new = old.clone();
            new.secret = slots;
            new.params = serde_json::json!({"remaining": codes.codes.len()});
            new.last_used_at = None;
            new.created_at = now;
            app.store.update_factor(&new, &old.secret, Some(&e)).await.map_err(unavailable)?
        }
        None => {
            let id = wardgate_core::token::random_id().map_err(|_| Problem::internal().into_response())?;
            let mut f = Factor::new(id, cur.user.id.clone(), FactorKind::RecoveryCodes, "Recovery codes", slots, now);
            f.enrolled_by = Some(wardgate_core::lifecycle::EnrolledBy::Person.to_string());
            app.store.add_factor(&f, &e).await.map_err(unavailable)?;
            true
        }
    };
    if !stored {
        return Err(Problem::new(StatusCode::CONFLICT, "concurrent-change", "The codes changed meanwhile; try again")
            .into_response());
    }
    Ok(codes.codes.iter().map(|c| c.to_string()).collect())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassphraseChange {
    current_passphrase: String,
    new_passphrase: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    #[error("the current passphrase is not correct")]
    Wrong,
    #[error("{0}")]
    Weak(#[from] wardgate_core::passphrase::PassphraseError),
    #[error("the passphrase changed meanwhile; try again")]
    Conflict,
    #[error("the passphrase cannot be changed now")]
    Unavailable,
}

impl ChangeError {
    pub(crate) fn problem(&self) -> Problem {
        match self {
            ChangeError::Wrong => {
                Problem::new(StatusCode::UNAUTHORIZED, "wrong-passphrase", "The current passphrase is not correct")
            }
            ChangeError::Weak(_) => Problem::invalid_field(self.to_string()),
            ChangeError::Conflict => {
                Problem::new(StatusCode::CONFLICT, "concurrent-change", "The passphrase changed meanwhile")
            }
            ChangeError::Unavailable => Problem::unavailable(self.to_string()),
        }
    }
}

/// Changing the passphrase needs the current one (so a borrowed, unlocked workstation is
/// not enough); the new one meets the same rules as at enrollment. No forced rotation
/// exists: this is for people who choose to, or suspect theirs was seen.
pub(crate) async fn change_passphrase(
    app: &AppState,
    cur: &Current,
    ctx: &ClientContext,
    current: &str,
    new: &str,
) -> Result<(), ChangeError> {
    use wardgate_core::passphrase;
    let factors = app.store.factors_of(&cur.user.id).await.map_err(|_| ChangeError::Unavailable)?;
    let old = factors.iter().find(|f| f.kind == FactorKind::Passphrase).cloned();
    let phc = old.as_ref().map(|f| f.secret.clone()).unwrap_or_else(|| app.auth.decoy_phc.clone());
    let typed = current.to_owned();
    let ok = tokio::task::spawn_blocking(move || passphrase::verify(&typed, &phc))
        .await
        .map_err(|_| ChangeError::Unavailable)?;
    let Some(old) = old.filter(|_| ok) else {
        let e = event(app, cur, ctx, types::AUTH_FACTOR_FAILED)
            .factor("pwd")
            .reason("wrong current passphrase when changing it");
        let e = AuditEvent { outcome: Outcome::Failure, ..e };
        app.audit.append(e).await.map_err(|_| ChangeError::Unavailable)?;
        return Err(ChangeError::Wrong);
    };
    let org = app.auth.settings.organization_name.clone();
    passphrase::check_new(
        &app.auth.passphrases,
        new,
        false,
        &[cur.user.username.as_str(), &cur.user.display_name, &cur.user.email, &org],
    )?;
    let params = app.auth.hash;
    let chosen = new.to_owned();
    let phc = tokio::task::spawn_blocking(move || passphrase::hash_with(params, &chosen))
        .await
        .map_err(|_| ChangeError::Unavailable)??;
    let mut updated = old.clone();
    updated.secret = phc;
    updated.last_used_at = Some((app.clock)());
    let e = event(app, cur, ctx, types::ACCOUNT_PASSPHRASE_CHANGED).factor("pwd").detail("factor_id", old.id.clone());
    match app.store.update_factor(&updated, &old.secret, Some(&e)).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ChangeError::Conflict),
        Err(_) => Err(ChangeError::Unavailable),
    }
}

pub async fn passphrase(
    State(app): State<AppState>,
    ctx: ClientContext,
    SignedIn(cur): SignedIn,
    crate::problem::ApiJson(b): crate::problem::ApiJson<PassphraseChange>,
) -> Response {
    match change_passphrase(&app, &cur, &ctx, &b.current_passphrase, &b.new_passphrase).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.problem().into_response(),
    }
}

/// Removes one of the person's own factors. The passphrase and the recovery codes stay
/// (they are changed or remade instead), and so does the last authenticator app or
/// security key: nobody signs out of multi-factor by removing factors.
pub(crate) async fn remove_own_factor(
    app: &AppState,
    cur: &Current,
    ctx: &ClientContext,
    id: &str,
) -> Result<(), Problem> {
    let factors = app.store.factors_of(&cur.user.id).await.map_err(|e| {
        tracing::error!(error = %e, "account: store failed");
        Problem::unavailable("the database is unreachable")
    })?;
    let Some(f) = factors.iter().find(|f| f.id == id) else { return Err(Problem::not_found()) };
    let refuse =
        |why: &str| Problem::new(StatusCode::CONFLICT, "factor-required", "This factor cannot be removed").detail(why);
    match f.kind {
        FactorKind::Passphrase => return Err(refuse("change the passphrase instead")),
        FactorKind::RecoveryCodes => return Err(refuse("make new recovery codes instead")),
        FactorKind::Totp | FactorKind::Webauthn => {
            let others =
                factors.iter().filter(|o| o.id != f.id && matches!(o.kind, FactorKind::Totp | FactorKind::Webauthn));
            if others.count() == 0 {
                return Err(refuse("it is your only authenticator app or security key; add another one first"));
            }
        }
    }
    let e = event(app, cur, ctx, types::ACCOUNT_FACTOR_REMOVED)
        .factor(f.kind.amr())
        .detail("factor_id", f.id.clone())
        .detail("kind", f.kind.as_str())
        .detail("label", f.label.clone());
    match app.store.remove_factor(&cur.user.id, id, &e).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(Problem::not_found()),
        Err(e) => {
            tracing::error!(error = %e, "account: remove factor failed");
            Err(Problem::unavailable("the database is unreachable"))
        }
    }
}

pub async fn remove_factor(
    State(app): State<AppState>,
    ctx: ClientContext,
    SignedIn(cur): SignedIn,
    Path(id): Path<String>,
) -> Response {
    match remove_own_factor(&app, &cur, &ctx, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(p) => p.into_response(),
    }
}

/// Starts adding an authenticator app or a security key; continue with the
/// `/api/v1/enroll/totp…` or `/api/v1/enroll/webauthn…` steps, then `/api/v1/me/factors/save`.
pub async fn add_factor(State(app): State<AppState>, SignedIn(cur): SignedIn) -> Response {
    match crate::auth::enroll::begin_adding(&app, &cur.user).await {
        Ok(s) => {
            let mut resp = axum::Json(&s).into_response();
            if let Some(c) = crate::auth::session::set_cookie(crate::auth::session::FLOW_COOKIE, &s.flow) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(e) => super::enroll_problem(&e),
    }
}

pub async fn save_factors(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: axum::http::HeaderMap,
    SignedIn(cur): SignedIn,
    crate::problem::ApiJson(b): crate::problem::ApiJson<super::FlowBody>,
) -> Response {
    let handle = super::flow_handle(b.flow, &headers);
    match crate::auth::enroll::finish_adding(&app, &ctx, &handle, &cur.user).await {
        Ok(labels) => {
            let mut resp = axum::Json(serde_json::json!({"added": labels})).into_response();
            resp.headers_mut().append(header::SET_COOKIE, clear_cookie(crate::auth::session::FLOW_COOKIE));
            resp
        }
        Err(e) => super::enroll_problem(&e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceFactor {
    /// A current code of one of the person's other authenticator apps or hardware tokens:
    /// the fresh step-up that proves the one asking still holds a working second factor.
    #[serde(default)]
    code: String,
    /// Or the answer of another security key or passkey to the challenge from
    /// `…/replace/challenge`: the challenge's handle and the assertion.
    #[serde(default)]
    flow: Option<String>,
    #[serde(default)]
    credential: Option<Box<webauthn_rs::prelude::PublicKeyCredential>>,
}

impl ReplaceFactor {
    fn proof(self) -> Result<Proof, Problem> {
        match (self.flow, self.credential) {
            (Some(flow), Some(credential)) if self.code.trim().is_empty() => Ok(Proof::Webauthn { flow, credential }),
            (None, None) => Ok(Proof::Code(self.code)),
            _ => Err(Problem::invalid_field(
                "give either code, or flow and credential (the answer to the security key challenge)",
            )),
        }
    }
}

/// What a step-up for a replacement is about: this one factor.
fn replacing(factor_id: &str) -> Purpose {
    Purpose { action: "replace_factor".into(), factor_id: factor_id.to_owned() }
}

/// The factor being replaced, if it is one that can be: an authenticator app or a key.
fn lost_factor(factors: &[Factor], lost_id: &str) -> Result<Factor, Problem> {
    let Some(lost) = factors.iter().find(|f| f.id == lost_id) else { return Err(Problem::not_found()) };
    if !matches!(lost.kind, FactorKind::Totp | FactorKind::Webauthn) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "factor-required",
            "Only an authenticator app or security key can be replaced",
        )
        .detail("change the passphrase or make new recovery codes instead"));
    }
    Ok(lost.clone())
}

/// `POST /api/v1/me/factors/{id}/replace/challenge`: a security-key challenge that only the
/// person's other keys and passkeys can answer, for replacing factor `id`.
pub async fn replace_challenge(
    State(app): State<AppState>,
    ctx: ClientContext,
    SignedIn(cur): SignedIn,
    Path(id): Path<String>,
) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    let factors = match app.store.factors_of(&cur.user.id).await {
        Ok(f) => f,
        Err(e) => return unavailable(e),
    };
    let lost = match lost_factor(&factors, &id) {
        Ok(l) => l,
        Err(p) => return p.into_response(),
    };
    let keys = reauth::candidate_keys(&factors, &lost.id, (app.clock)());
    match reauth::challenge(&app, &cur, replacing(&lost.id), &keys).await {
        Ok(c) => axum::Json(c).into_response(),
        Err(p) => p.into_response(),
    }
}

/// Self-service replacement of a lost factor (L3): only after a fresh step-up with another
/// of the person's second factors — a session alone is not enough, since a session cookie
/// left on a shared workstation must not let someone swap in their own phone. The lost
/// factor is removed and an add-factor flow begins (finish it with the enrollment steps and
/// `/api/v1/me/factors/save`), where the proofing rule applies as to any new factor.
pub(crate) async fn replace_own_factor(
    app: &AppState,
    cur: &Current,
    ctx: &ClientContext,
    lost_id: &str,
    proof: Proof,
) -> Result<crate::auth::enroll::Status, Problem> {
    let unavailable = |e: StoreError| {
        tracing::error!(error = %e, "account: store failed");
        Problem::unavailable("the database is unreachable")
    };
    let now = (app.clock)();
    let factors = app.store.factors_of(&cur.user.id).await.map_err(unavailable)?;
    let second = |k: FactorKind| matches!(k, FactorKind::Totp | FactorKind::Webauthn);
    let lost = lost_factor(&factors, lost_id)?;
    let remaining: Vec<Factor> =
        factors.iter().filter(|f| f.id != lost.id && second(f.kind) && !f.expired_at(now)).cloned().collect();
    let refuse = |why: &str| {
        AuditEvent { outcome: Outcome::Denied, ..event(app, cur, ctx, types::ACCOUNT_FACTOR_REPLACE_REFUSED) }
            .reason(why.to_owned())
            .detail("factor_id", lost.id.clone())
    };
    let step_up = |detail: &str| {
        Problem::new(StatusCode::UNAUTHORIZED, "step-up-required", "A fresh step-up is required")
            .detail(detail.to_owned())
    };
    // The code is a guess like any other: the account's failure counter and lockout apply,
    // so a stolen session cannot be used to try codes at the per-address rate.
    let fresh = app.store.user_by_id(&cur.user.id).await.map_err(unavailable)?.ok_or_else(Problem::not_found)?;
    if !matches!(fresh.attempts.gate(&app.auth.lockout, now), wardgate_core::lockout::Gate::Open) {
        app.audit
            .append(refuse("too many failed attempts; wait"))
            .await
            .map_err(|_| Problem::unavailable("the refusal could not be recorded"))?;
        return Err(Problem::new(StatusCode::TOO_MANY_REQUESTS, "login-throttled", "Too many attempts")
            .detail("too many wrong codes; wait a few minutes and try again"));
    }
    let checked: Result<Passed, Refused> = match proof {
        Proof::Code(code) if code.trim().is_empty() => Err(Refused {
            why: "no code or security key of another factor was given".into(),
            counts: false,
            factor_id: None,
        }),
        Proof::Code(code) => {
            match crate::auth::factor_check::totp(&*app.store, &app.keyring.get(), &remaining, code.trim(), now).await {
                Ok(p) => Ok(p),
                Err(e) => {
                    let (why, counts) = match e {
                        CheckError::Replayed => ("the code was already used", true),
                        CheckError::Store(e) => return Err(unavailable(e)),
                        CheckError::Malformed(_) => ("the code is not a 6 or 8 digit code", false),
                        _ => ("the code is not one of another working authenticator app or token", true),
                    };
                    Err(Refused { why: why.into(), counts, factor_id: None })
                }
            }
        }
        Proof::Webauthn { flow, credential } => {
            let keys = reauth::candidate_keys(&factors, &lost.id, now);
            reauth::verify_webauthn(app, cur, &replacing(&lost.id), &flow, &credential, &keys).await?
        }
    };
    let passed = match checked {
        Ok(p) => p,
        Err(r) => {
            if r.counts {
                let next = fresh.attempts.failed(&app.auth.lockout, now);
                let locks = next.locked_until.is_some() && next.locked_until != fresh.attempts.locked_until;
                let lock = locks.then(|| {
                    AuditEvent { outcome: Outcome::Denied, ..event(app, cur, ctx, types::AUTH_ACCOUNT_LOCKED) }
                        .reason(format!("{} consecutive failed attempts", next.consecutive_failures))
                });
                // Compare-and-set: a concurrent failure elsewhere wins, and is counted there.
                let _ = app.store.set_attempts(&fresh.id, &fresh.attempts, &next, lock.as_ref()).await;
            }
            let mut e = refuse(&r.why);
            if let Some(id) = &r.factor_id {
                e = e.detail("step_up_factor_id", id.clone());
            }
            app.audit.append(e).await.map_err(|_| Problem::unavailable("the refusal could not be recorded"))?;
            return Err(step_up(&format!(
                "{}: use another authenticator app or security key of yours; if you have none left, call the help desk",
                r.why
            )));
        }
    };
    if let Some((stored, presented)) = passed.counter_regression {
        let e = event(app, cur, ctx, types::AUTH_WEBAUTHN_COUNTER_REGRESSION)
            .reason("signature counter did not increase: the key may have been cloned")
            .detail("factor_id", passed.factor_id.clone())
            .detail("stored_counter", stored)
            .detail("presented_counter", presented);
        app.audit.append(e).await.map_err(|_| Problem::unavailable("the step-up could not be recorded"))?;
    }
    // Checked before anything is removed: a person who may not enroll a new factor keeps
    // the one they have.
    if let Some(active) = app.access.current()
        && let Some(role) = crate::lifecycle::proofing::missing(&*app.store, &active.policy, &cur.user, now)
            .await
            .map_err(unavailable)?
    {
        let e = AuditEvent { outcome: Outcome::Denied, ..event(app, cur, ctx, types::PROOFING_REQUIRED) }
            .reason(format!("role {role} requires identity proofing before a second factor is enrolled"))
            .detail("role", role.clone())
            .detail("flow", "replace_factor");
        app.audit.append(e).await.map_err(|_| Problem::unavailable("the refusal could not be recorded"))?;
        return Err(Problem::new(StatusCode::FORBIDDEN, "proofing-required", "Identity proofing required")
            .detail(crate::auth::enroll::EnrollError::ProofingRequired(role).to_string()));
    }
    let e = event(app, cur, ctx, types::ACCOUNT_FACTOR_REPLACED)
        .reason("reported lost by the person; replaced after a step-up with another factor")
        .factor(lost.kind.amr())
        .factor(match passed.used {
            FactorUsed::Webauthn { hardware_bound: false, .. } => "swk",
            FactorUsed::Webauthn { .. } => "hwk",
            _ => "otp",
        })
        .detail("factor_id", lost.id.clone())
        .detail("kind", lost.kind.as_str())
        .detail("label", lost.label.clone())
        .detail("step_up_factor_id", passed.factor_id.clone());
    match app.store.remove_factor(&cur.user.id, &lost.id, &e).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(e) => return Err(unavailable(e)),
    }
    crate::auth::enroll::begin_adding(app, &cur.user).await.map_err(|e| match e {
        crate::auth::enroll::EnrollError::Unavailable => Problem::unavailable(e.to_string()),
        e => Problem::invalid_field(e.to_string()),
    })
}

pub async fn replace_factor(
    State(app): State<AppState>,
    ctx: ClientContext,
    SignedIn(cur): SignedIn,
    Path(id): Path<String>,
    crate::problem::ApiJson(b): crate::problem::ApiJson<ReplaceFactor>,
) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    let proof = match b.proof() {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    match replace_own_factor(&app, &cur, &ctx, &id, proof).await {
        Ok(s) => {
            let mut resp = axum::Json(&s).into_response();
            if let Some(c) = crate::auth::session::set_cookie(crate::auth::session::FLOW_COOKIE, &s.flow) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(p) => p.into_response(),
    }
}
