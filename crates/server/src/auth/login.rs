//! The login flow over HTTP: identify, first factor, second factor, session.
//!
//! The order and the rules come from [`wardgate_core::login`]; this module keeps the flow
//! between requests (in the store, so any node can take the next step), throttles each
//! account, answers unknown usernames exactly like known ones, and audits every step under
//! the login's correlation id.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::flow::{Flow, FlowKind, LOGIN_TTL};
use wardgate_core::identity::{Factor, FactorKind, User, Username};
use wardgate_core::lockout::{Attempts, Gate};
use wardgate_core::login::{Aal, Authenticated, FactorUsed, FirstFactorPassed, Identified};
use wardgate_core::session::Session;
use wardgate_core::{passphrase, token};
use wardgate_store::StoreError;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyAuthentication, PublicKeyCredential, RequestChallengeResponse,
};

use super::factor_check::{self, CheckError, Passed};
use super::webauthn as wa;
use crate::app::AppState;
use crate::context::ClientContext;

/// What the client may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    Passphrase,
    Webauthn,
    Totp,
    RecoveryCode,
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The handle of this login; send it with the next step.
    pub flow: String,
    pub next: Vec<Next>,
}

pub struct SignedIn {
    pub session: Session,
    /// The session cookie's value: shown once, stored as a digest.
    pub token: String,
    pub user: User,
    /// Recovery codes left, when one was just used: the page warns about the last ones.
    pub recovery_codes_left: Option<usize>,
}

pub enum Advanced {
    Continue(Progress),
    SignedIn(Box<SignedIn>),
}

pub enum Step {
    Passphrase(String),
    Totp(String),
    RecoveryCode(String),
    Webauthn(Box<PublicKeyCredential>),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong secret, unknown or inactive account: one answer for all.
    #[error("sign-in failed")]
    Failed { second_step: bool },
    /// A security key or passkey was not accepted (unknown, wrong account, bad signature).
    #[error("the security key or passkey was not accepted")]
    KeyRefused,
    #[error("that code was already used; wait for the next one")]
    Replayed,
    #[error("too many attempts; wait until {0}")]
    Throttled(OffsetDateTime),
    #[error("too many failed attempts; the account is locked until {0}")]
    Locked(OffsetDateTime),
    #[error("this sign-in has expired; start again")]
    Expired,
    #[error("this step is not expected now")]
    OutOfOrder,
    /// The password was right but the account has no second factor to finish with.
    #[error("this account has no second factor; ask the help desk for a new enrollment link")]
    NoSecondFactor,
    #[error("{0}")]
    Malformed(String),
    #[error("security keys and passkeys are not available on this server (its public_url has no domain name)")]
    NoWebauthn,
    #[error("the sign-in cannot be completed now")]
    Unavailable,
    /// L2: the factor was right but is past its expiry. Said plainly: only the holder of the
    /// factor (after the passphrase, or with the key's own signature) gets this far.
    #[error("this authenticator expired on {0}; use another one, or ask the help desk to recover your account")]
    FactorExpired(String),
    /// The access policy allows no session for this person from here.
    #[error("the access policy does not allow signing in from this network or device")]
    PolicyDenied,
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "login: store failed");
        LoginError::Unavailable
    }
}

/// What is kept between steps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LoginState {
    correlation_id: String,
    /// The username as typed (normalised), for throttling unknown names and for audit.
    username: Option<String>,
    first: Option<FactorUsed>,
    /// A pending WebAuthn challenge: discoverable (first factor) or for the account's
    /// own credentials (second factor).
    webauthn: Option<serde_json::Value>,
}

fn now(app: &AppState) -> OffsetDateTime {
    (app.clock)()
}

fn event(app: &AppState, ctx: &ClientContext, t: &'static str, outcome: Outcome, st: &LoginState) -> AuditEvent {
    let mut e = AuditEvent::known(now(app), t, outcome)
        .client_ip(ctx.ip)
        .user_agent(ctx.user_agent.clone())
        .correlation_id(st.correlation_id.clone());
    if let Some(u) = &st.username {
        e = e.subject(u.clone());
    }
    e
}

async fn record(app: &AppState, e: AuditEvent) -> Result<(), LoginError> {
    // A login step that cannot be recorded does not happen (164.312(b)).
    app.audit.append(e).await.map_err(|err| {
        tracing::error!(error = %err, "login: audit append failed");
        LoginError::Unavailable
    })?;
    Ok(())
}

/// Stores a new login flow; returns the client's handle and the state it starts from.
async fn new_flow(
    app: &AppState,
    username: Option<String>,
    user_id: Option<String>,
    first: Option<FactorUsed>,
) -> Result<(String, LoginState), LoginError> {
    let st = LoginState {
        correlation_id: token::random_id().map_err(|_| LoginError::Unavailable)?,
        username,
        first,
        webauthn: None,
    };
    let handle = token::generate().map_err(|_| LoginError::Unavailable)?;
    let t = now(app);
    let flow = Flow {
        id_digest: token::digest(&handle),
        kind: FlowKind::Login,
        user_id,
        state: serde_json::to_value(&st).map_err(|_| LoginError::Unavailable)?,
        version: 0,
        created_at: t,
        expires_at: t + LOGIN_TTL,
    };
    app.store.insert_flow(&flow).await?;
    Ok((handle, st))
}

pub async fn start(app: &AppState, ctx: &ClientContext, username: Option<&str>) -> Result<Progress, LoginError> {
    let username = match username.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Some(Username::parse(u).map_err(|e| LoginError::Malformed(e.to_string()))?),
        None => None,
    };
    let user = match &username {
        Some(u) => app.store.user_by_username(u).await?,
        None => None,
    };
    let (handle, st) =
        new_flow(app, username.as_ref().map(|u| u.as_str().to_owned()), user.as_ref().map(|u| u.id.clone()), None)
            .await?;
    let mut e = event(app, ctx, types::AUTH_LOGIN_STARTED, Outcome::Success, &st);
    if username.is_some() && user.is_none() {
        e = e.detail("unknown_username", true);
    }
    record(app, e).await?;
    // The same answer whether or not the account exists.
    let next = if username.is_some() { vec![Next::Passphrase, Next::Webauthn] } else { vec![Next::Webauthn] };
    Ok(Progress { flow: handle, next })
}

/// A step-up from a one-factor session (aal1, made with the passphrase where the policy
/// asked no more) to two factors: the passphrase is credited from the session, so only the
/// missing second factor is asked. The result is a new session at aal2 or aal3.
pub async fn start_step_up(
    app: &AppState,
    ctx: &ClientContext,
    user: &User,
    session: &wardgate_core::session::Session,
) -> Result<Progress, LoginError> {
    if session.aal != Aal::Aal1 || !session.amr.iter().any(|a| a == "pwd") || !user.may_sign_in() {
        return Err(LoginError::OutOfOrder);
    }
    let next = second_factors(&app.store.factors_of(&user.id).await?);
    if next.is_empty() {
        return Err(LoginError::NoSecondFactor);
    }
    let (handle, st) =
        new_flow(app, Some(user.username.as_str().to_owned()), Some(user.id.clone()), Some(FactorUsed::Passphrase))
            .await?;
    let e = event(app, ctx, types::AUTH_LOGIN_STARTED, Outcome::Success, &st)
        .subject(user.username.as_str())
        .reason("step-up from a one-factor session: the passphrase is credited from it")
        .detail("step_up_from_session", session.id.clone())
        .factor("pwd");
    record(app, e).await?;
    Ok(Progress { flow: handle, next })
}

struct Loaded {
    flow: Flow,
    st: LoginState,
    user: Option<User>,
}

async fn load(app: &AppState, handle: &str) -> Result<Loaded, LoginError> {
    if handle.len() != 43 {
        return Err(LoginError::Expired);
    }
    let flow = app.store.flow(&token::digest(handle), now(app)).await?.ok_or(LoginError::Expired)?;
    if flow.kind != FlowKind::Login {
        return Err(LoginError::Expired);
    }
    let st: LoginState = serde_json::from_value(flow.state.clone()).map_err(|_| LoginError::Expired)?;
    let user = match &flow.user_id {
        Some(id) => app.store.user_by_id(id).await?,
        None => None,
    };
    Ok(Loaded { flow, st, user })
}

async fn save(app: &AppState, mut l: Loaded) -> Result<Flow, LoginError> {
    l.flow.state = serde_json::to_value(&l.st).map_err(|_| LoginError::Unavailable)?;
    // Two requests racing on one step: only one advances the flow.
    if !app.store.update_flow(&l.flow).await? {
        return Err(LoginError::OutOfOrder);
    }
    l.flow.version += 1;
    Ok(l.flow)
}

/// Refuses the attempt without checking anything while the account (or, for an unknown
/// username, its shadow) is cooling down.
async fn gate(app: &AppState, ctx: &ClientContext, l: &Loaded) -> Result<(), LoginError> {
    let t = now(app);
    let attempts = match (&l.user, &l.st.username) {
        (Some(u), _) => u.attempts,
        (None, Some(name)) => app.auth.unknown_attempts(name),
        (None, None) => Attempts::default(),
    };
    let refusal = match attempts.gate(&app.auth.lockout, t) {
        Gate::Open => return Ok(()),
        Gate::WaitUntil(until) => LoginError::Throttled(until),
        Gate::Locked(until) => LoginError::Locked(until),
    };
    metrics::counter!("wardgate_login_outcomes_total", "outcome" => "denied").increment(1);
    let e = event(app, ctx, types::AUTH_LOGIN_THROTTLED, Outcome::Denied, &l.st).reason(refusal.to_string());
    record(app, e).await?;
    Err(refusal)
}

/// Counts a failure against the account (compare-and-set, so that failures arriving at
/// several nodes at once are all counted) and audits it; locks the account when the
/// count reaches the limit.
async fn failed(
    app: &AppState,
    ctx: &ClientContext,
    l: &Loaded,
    amr: &str,
    factor_id: Option<&str>,
    reason: &str,
) -> Result<(), LoginError> {
    metrics::counter!("wardgate_login_outcomes_total", "outcome" => "failed").increment(1);
    let t = now(app);
    let policy = app.auth.lockout;
    match (&l.user, &l.st.username) {
        (Some(u), _) => {
            let mut current = u.attempts;
            for _ in 0..5 {
                let next = current.failed(&policy, t);
                let locks = next.locked_until.is_some() && next.locked_until != current.locked_until;
                let lock_event = locks.then(|| {
                    event(app, ctx, types::AUTH_ACCOUNT_LOCKED, Outcome::Denied, &l.st)
                        .reason(format!("{} consecutive failed attempts", next.consecutive_failures))
                        .detail("locked_until", wardgate_core::audit::record::format_ts(next.locked_until.unwrap_or(t)))
                });
                if app.store.set_attempts(&u.id, &current, &next, lock_event.as_ref()).await? {
                    break;
                }
                match app.store.user_by_id(&u.id).await? {
                    Some(fresh) => current = fresh.attempts,
                    None => break,
                }
            }
        }
        (None, Some(name)) => app.auth.unknown_failed(name, t),
        (None, None) => {}
    }
    let mut e = event(app, ctx, types::AUTH_FACTOR_FAILED, Outcome::Failure, &l.st).factor(amr).reason(reason);
    if let Some(id) = factor_id {
        e = e.detail("factor_id", id.to_owned());
    }
    if l.user.is_none() {
        e = e.detail("unknown_username", true);
    }
    record(app, e).await
}

fn second_factors(factors: &[Factor]) -> Vec<Next> {
    let mut next = Vec::new();
    if factors.iter().any(|f| f.kind == FactorKind::Webauthn) {
        next.push(Next::Webauthn);
    }
    if factors.iter().any(|f| f.kind == FactorKind::Totp) {
        next.push(Next::Totp);
    }
    if factors
        .iter()
        .any(|f| f.kind == FactorKind::RecoveryCodes && !factor_check::slots_of(f).iter().all(Option::is_none))
    {
        next.push(Next::RecoveryCode);
    }
    next
}

/// Where a login stands, for the pages: what may come next.
pub async fn pending(app: &AppState, handle: &str) -> Result<Vec<Next>, LoginError> {
    let l = load(app, handle).await?;
    match (&l.st.first, &l.user) {
        (None, _) => Ok(vec![Next::Passphrase, Next::Webauthn]),
        (Some(FactorUsed::Passphrase), Some(user)) => Ok(second_factors(&app.store.factors_of(&user.id).await?)),
        _ => Err(LoginError::OutOfOrder),
    }
}

/// A WebAuthn challenge for this login: discoverable (any passkey of any account) before
/// the first factor; the account's own credentials after a passphrase.
pub async fn webauthn_challenge(app: &AppState, handle: &str) -> Result<RequestChallengeResponse, LoginError> {
    let rp = app.auth.rp().ok_or(LoginError::NoWebauthn)?;
    let mut l = load(app, handle).await?;
    let (rcr, state) = match (&l.st.first, &l.user) {
        (None, _) => {
            let (rcr, s) = rp.start_discoverable_authentication().map_err(|e| {
                tracing::error!(error = %e, "webauthn challenge failed");
                LoginError::Unavailable
            })?;
            (rcr, serde_json::json!({"discoverable": s}))
        }
        (Some(FactorUsed::Passphrase), Some(user)) => {
            let factors = app.store.factors_of(&user.id).await?;
            let keys: Vec<_> =
                factor_check::passkeys(&app.keyring.get(), &factors).into_iter().map(|(_, p)| p).collect();
            if keys.is_empty() {
                return Err(LoginError::OutOfOrder);
            }
            let (rcr, s) = rp.start_passkey_authentication(&keys).map_err(|e| {
                tracing::error!(error = %e, "webauthn challenge failed");
                LoginError::Unavailable
            })?;
            (rcr, serde_json::json!({"account": s}))
        }
        _ => return Err(LoginError::OutOfOrder),
    };
    l.st.webauthn = Some(state);
    save(app, l).await?;
    Ok(rcr)
}

pub async fn step(app: &AppState, ctx: &ClientContext, handle: &str, step: Step) -> Result<Advanced, LoginError> {
    let l = load(app, handle).await?;
    match (step, l.st.first) {
        (Step::Passphrase(p), None) => passphrase_step(app, ctx, handle, l, &p).await,
        (Step::Webauthn(cred), _) => webauthn_step(app, ctx, l, &cred).await,
        (Step::Totp(code), Some(FactorUsed::Passphrase)) => second_code(app, ctx, l, &code, false).await,
        (Step::RecoveryCode(code), Some(FactorUsed::Passphrase)) => second_code(app, ctx, l, &code, true).await,
        _ => Err(LoginError::OutOfOrder),
    }
}

async fn passphrase_step(
    app: &AppState,
    ctx: &ClientContext,
    handle: &str,
    mut l: Loaded,
    typed: &str,
) -> Result<Advanced, LoginError> {
    if l.st.username.is_none() {
        return Err(LoginError::OutOfOrder);
    }
    if typed.chars().count() > app.auth.passphrases.max_chars {
        return Err(LoginError::Malformed(format!(
            "a passphrase has at most {} characters",
            app.auth.passphrases.max_chars
        )));
    }
    gate(app, ctx, &l).await?;
    let factors = match &l.user {
        Some(u) => app.store.factors_of(&u.id).await?,
        None => Vec::new(),
    };
    let stored = factors.iter().find(|f| f.kind == FactorKind::Passphrase);
    // An account past its own expiry (a vendor account past its agreement) is refused like
    // a disabled one, even before the periodic sweep disables it.
    let usable = l.user.as_ref().is_some_and(|u| u.may_sign_in_at(now(app))) && stored.is_some();
    // Always one Argon2id verification: against the real hash, or against the decoy.
    let phc = stored.map(|f| f.secret.clone()).unwrap_or_else(|| app.auth.decoy_phc.clone());
    let typed_owned = zeroize::Zeroizing::new(typed.to_owned());
    let check_phc = phc.clone();
    let check_typed = typed_owned.clone();
    let matches = tokio::task::spawn_blocking(move || passphrase::verify(&check_typed, &check_phc))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    if !(matches && usable) {
        let reason = match (&l.user, matches) {
            (None, _) => "unknown username".to_owned(),
            (Some(u), true) if u.may_sign_in() => "account expired".to_owned(),
            (Some(u), true) => format!("account is {}", u.status.as_str()),
            (Some(_), false) => "wrong passphrase".to_owned(),
        };
        failed(app, ctx, &l, "pwd", stored.map(|f| f.id.as_str()), &reason).await?;
        return Err(LoginError::Failed { second_step: false });
    }
    if let Some(f) = stored.filter(|_| passphrase::needs_rehash(&phc, app.auth.hash)) {
        rehash(app, f.clone(), typed_owned.clone());
    }
    // Where the policy asks no more than aal1 (a trusted clinical workstation), the
    // passphrase alone signs the person in; the session says aal1, and anything that needs
    // more is a step-up later.
    if let Some(user) = l.user.clone() {
        let policy = app.access.login(&*app.store, &user, ctx, now(app)).await?;
        // Vendor accounts always need a second factor (V1), whatever the policy allows here.
        if matches!(policy, crate::access::LoginPolicy::Allowed { required: Aal::Aal1, .. }) && user.vendor.is_none() {
            let mut e = event(app, ctx, types::AUTH_FACTOR_PASSED, Outcome::Success, &l.st).factor("pwd");
            if let Some(f) = stored {
                e = e.detail("factor_id", f.id.clone());
            }
            record(app, e).await?;
            let auth = Identified { user_id: user.id.clone(), correlation_id: l.st.correlation_id.clone() }
                .first_factor(FactorUsed::Passphrase)
                .map_err(|_| LoginError::OutOfOrder)?
                .finish_single_factor();
            return create_session(app, ctx, l, user, auth, None).await;
        }
    }
    let next = second_factors(&factors);
    if next.is_empty() {
        let e = event(app, ctx, types::AUTH_LOGIN_FAILED, Outcome::Denied, &l.st).reason("no second factor enrolled");
        record(app, e).await?;
        return Err(LoginError::NoSecondFactor);
    }
    l.st.first = Some(FactorUsed::Passphrase);
    l.st.webauthn = None;
    let mut e = event(app, ctx, types::AUTH_FACTOR_PASSED, Outcome::Success, &l.st).factor("pwd");
    if let Some(f) = stored {
        e = e.detail("factor_id", f.id.clone());
    }
    save(app, l).await?;
    record(app, e).await?;
    Ok(Advanced::Continue(Progress { flow: handle.to_owned(), next }))
}

/// The configured Argon2id cost went up since this hash was made: re-hash now that the
/// passphrase is at hand, off the request path (the login does not wait for it).
fn rehash(app: &AppState, factor: Factor, typed: zeroize::Zeroizing<String>) {
    let (store, params) = (std::sync::Arc::clone(&app.store), app.auth.hash);
    tokio::spawn(async move {
        let hashed = tokio::task::spawn_blocking(move || passphrase::hash_with(params, &typed)).await;
        if let Ok(Ok(phc)) = hashed {
            let mut new = factor.clone();
            new.secret = phc;
            // Compare-and-set: a concurrent change of passphrase wins over this.
            if let Err(e) = store.update_factor(&new, &factor.secret, None).await {
                tracing::warn!(error = %e, "passphrase re-hash not stored");
            }
        }
    });
}

async fn second_code(
    app: &AppState,
    ctx: &ClientContext,
    l: Loaded,
    code: &str,
    recovery: bool,
) -> Result<Advanced, LoginError> {
    let Some(user) = l.user.clone() else { return Err(LoginError::OutOfOrder) };
    if code.len() > 64 {
        return Err(LoginError::Malformed("the code is too long".into()));
    }
    gate(app, ctx, &l).await?;
    let factors = app.store.factors_of(&user.id).await?;
    let t = now(app);
    let checked = if recovery {
        factor_check::recovery_code(&*app.store, &factors, code, t, ctx.ip).await
    } else {
        factor_check::totp(&*app.store, &app.keyring.get(), &factors, code, t).await
    };
    let amr = "otp";
    let passed = match checked {
        Ok(p) => p,
        Err(CheckError::Malformed(m)) => return Err(LoginError::Malformed(m)),
        Err(CheckError::Replayed) => {
            failed(app, ctx, &l, amr, None, "one-time code replayed").await?;
            return Err(LoginError::Replayed);
        }
        Err(CheckError::Expired { factor_id, at }) => {
            return Err(expired(app, ctx, &l, amr, &factor_id, at).await?);
        }
        Err(CheckError::Rejected) => {
            let what = if recovery { "wrong recovery code" } else { "wrong one-time code" };
            failed(app, ctx, &l, amr, None, what).await?;
            return Err(LoginError::Failed { second_step: true });
        }
        Err(e) => {
            tracing::error!(error = %e, "login: factor check failed");
            return Err(LoginError::Unavailable);
        }
    };
    let first = Identified { user_id: user.id.clone(), correlation_id: l.st.correlation_id.clone() }
        .first_factor(FactorUsed::Passphrase)
        .map_err(|_| LoginError::OutOfOrder)?;
    finish_second(app, ctx, l, user, first, passed).await
}

async fn webauthn_step(
    app: &AppState,
    ctx: &ClientContext,
    mut l: Loaded,
    cred: &PublicKeyCredential,
) -> Result<Advanced, LoginError> {
    let rp = app.auth.rp().ok_or(LoginError::NoWebauthn)?;
    let pending = l.st.webauthn.take().ok_or(LoginError::OutOfOrder)?;
    let cred_id = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, cred.get_credential_id());
    let t = now(app);
    if let Some(state) = pending.get("discoverable") {
        let state: DiscoverableAuthentication =
            serde_json::from_value(state.clone()).map_err(|_| LoginError::Expired)?;
        // Which account does this key claim? The signature check below proves it.
        let factor = app.store.factor_by_credential(&cred_id).await?;
        let owner = match &factor {
            Some(f) => app.store.user_by_id(&f.user_id).await?,
            None => None,
        };
        let claimed = rp.identify_discoverable_authentication(cred).ok().map(|(h, _)| wa::user_id_of(h));
        let consistent = match (&owner, &claimed, &l.st.username) {
            (Some(o), Some(c), typed) => &o.id == c && typed.as_ref().is_none_or(|t| t == o.username.as_str()),
            _ => false,
        };
        if l.user.is_none() {
            l.user = owner.clone();
            if l.st.username.is_none() {
                l.st.username = owner.as_ref().map(|o| o.username.as_str().to_owned());
            }
        }
        let (Some(factor), Some(owner), true) = (factor, owner, consistent) else {
            failed(app, ctx, &l, "hwk", None, "unknown security key or passkey").await?;
            return Err(LoginError::KeyRefused);
        };
        l.user = Some(owner.clone());
        // No gate here: a passkey with user verification cannot be guessed, so it is the
        // stronger factor with which a person locked out by password guessing (perhaps
        // someone else's) unlocks their own account (R5).
        let keys = factor_check::passkeys(&app.keyring.get(), std::slice::from_ref(&factor));
        let result = match keys.first() {
            Some((_, key)) => rp.finish_discoverable_authentication_v2(cred, state, key),
            None => Err(webauthn_rs::prelude::WebauthnError::CredentialNotFound),
        };
        let result = match result {
            Ok(r) if owner.may_sign_in() => r,
            Ok(_) => {
                failed(app, ctx, &l, "hwk", Some(&factor.id), &format!("account is {}", owner.status.as_str())).await?;
                return Err(LoginError::KeyRefused);
            }
            Err(e) => {
                failed(app, ctx, &l, "hwk", Some(&factor.id), &format!("assertion refused: {e}")).await?;
                return Err(LoginError::KeyRefused);
            }
        };
        let passed = webauthn_passed(app, ctx, &l, &factor, &result, t).await?;
        let first = Identified { user_id: owner.id.clone(), correlation_id: l.st.correlation_id.clone() }
            .first_factor(passed.used)
            .map_err(|_| LoginError::OutOfOrder)?;
        if !first.is_multi_factor() {
            // A key without its own PIN or biometric is only something you have.
            failed(app, ctx, &l, "hwk", Some(&factor.id), "user verification missing").await?;
            return Err(LoginError::KeyRefused);
        }
        let auth = first.finish().map_err(|_| LoginError::OutOfOrder)?;
        audit_passed(app, ctx, &l, &passed).await?;
        return create_session(app, ctx, l, owner, auth, None).await;
    }
    let state = pending.get("account").ok_or(LoginError::OutOfOrder)?;
    let state: PasskeyAuthentication = serde_json::from_value(state.clone()).map_err(|_| LoginError::Expired)?;
    let Some(user) = l.user.clone() else { return Err(LoginError::OutOfOrder) };
    gate(app, ctx, &l).await?;
    let factors = app.store.factors_of(&user.id).await?;
    let factor = factors.iter().find(|f| f.credential_id.as_deref() == Some(cred_id.as_str())).cloned();
    let result = match (rp.finish_passkey_authentication(cred, &state), &factor) {
        (Ok(r), Some(_)) => r,
        (res, _) => {
            let why = res.err().map(|e| e.to_string()).unwrap_or_else(|| "credential not registered".into());
            failed(app, ctx, &l, "hwk", factor.as_ref().map(|f| f.id.as_str()), &format!("assertion refused: {why}"))
                .await?;
            return Err(LoginError::Failed { second_step: true });
        }
    };
    let Some(factor) = factor else { return Err(LoginError::OutOfOrder) };
    let passed = webauthn_passed(app, ctx, &l, &factor, &result, t).await?;
    let first = Identified { user_id: user.id.clone(), correlation_id: l.st.correlation_id.clone() }
        .first_factor(FactorUsed::Passphrase)
        .map_err(|_| LoginError::OutOfOrder)?;
    finish_second(app, ctx, l, user, first, passed).await
}

async fn webauthn_passed(
    app: &AppState,
    ctx: &ClientContext,
    l: &Loaded,
    factor: &Factor,
    result: &webauthn_rs::prelude::AuthenticationResult,
    t: OffsetDateTime,
) -> Result<Passed, LoginError> {
    let refuse = app.auth.settings.webauthn_refuse_counter_regression;
    match factor_check::webauthn_used(&*app.store, &app.keyring.get(), factor, result, t, refuse).await {
        Ok(p) => {
            if let Some((stored, presented)) = p.counter_regression {
                let e = event(app, ctx, types::AUTH_WEBAUTHN_COUNTER_REGRESSION, Outcome::Success, &l.st)
                    .reason("signature counter did not increase: the key may have been cloned")
                    .detail("factor_id", factor.id.clone())
                    .detail("stored_counter", stored)
                    .detail("presented_counter", presented);
                record(app, e).await?;
            }
            Ok(p)
        }
        Err(CheckError::Expired { factor_id, at }) => Err(expired(app, ctx, l, "hwk", &factor_id, at).await?),
        Err(CheckError::CounterRegression { stored, presented, .. }) => {
            let e = event(app, ctx, types::AUTH_WEBAUTHN_COUNTER_REGRESSION, Outcome::Denied, &l.st)
                .reason("signature counter did not increase: the key may have been cloned; refused by policy")
                .detail("factor_id", factor.id.clone())
                .detail("stored_counter", stored)
                .detail("presented_counter", presented);
            record(app, e).await?;
            failed(app, ctx, l, "hwk", Some(&factor.id), "signature counter regression").await?;
            Err(LoginError::KeyRefused)
        }
        Err(e) => {
            tracing::error!(error = %e, "login: webauthn bookkeeping failed");
            Err(LoginError::Unavailable)
        }
    }
}

/// Records a refused, expired factor and returns the error to answer with.
async fn expired(
    app: &AppState,
    ctx: &ClientContext,
    l: &Loaded,
    amr: &str,
    factor_id: &str,
    at: OffsetDateTime,
) -> Result<LoginError, LoginError> {
    let when = wardgate_core::audit::record::format_ts(at);
    let e = event(app, ctx, types::AUTH_FACTOR_EXPIRED, Outcome::Denied, &l.st)
        .factor(amr)
        .reason("the factor is past its expiry")
        .detail("factor_id", factor_id.to_owned())
        .detail("expired_at", when.clone());
    record(app, e).await?;
    Ok(LoginError::FactorExpired(when))
}

async fn audit_passed(app: &AppState, ctx: &ClientContext, l: &Loaded, p: &Passed) -> Result<(), LoginError> {
    let amr = match p.used {
        FactorUsed::Webauthn { hardware_bound: true, .. } => "hwk",
        FactorUsed::Webauthn { .. } => "swk",
        FactorUsed::Passphrase => "pwd",
        FactorUsed::Totp | FactorUsed::RecoveryCode => "otp",
    };
    let mut e = event(app, ctx, types::AUTH_FACTOR_PASSED, Outcome::Success, &l.st)
        .factor(amr)
        .detail("factor_id", p.factor_id.clone());
    if let Some(left) = p.remaining {
        record(
            app,
            event(app, ctx, types::AUTH_RECOVERY_CODE_USED, Outcome::Success, &l.st)
                .factor("otp")
                .detail("factor_id", p.factor_id.clone())
                .detail("remaining", left),
        )
        .await?;
        e = e.detail("recovery_code", true);
    }
    record(app, e).await
}

async fn finish_second(
    app: &AppState,
    ctx: &ClientContext,
    l: Loaded,
    user: User,
    first: FirstFactorPassed,
    passed: Passed,
) -> Result<Advanced, LoginError> {
    let auth = first.second_factor(passed.used).map_err(|_| LoginError::OutOfOrder)?;
    audit_passed(app, ctx, &l, &passed).await?;
    create_session(app, ctx, l, user, auth, passed.remaining).await
}

async fn create_session(
    app: &AppState,
    ctx: &ClientContext,
    l: Loaded,
    user: User,
    auth: Authenticated,
    recovery_codes_left: Option<usize>,
) -> Result<Advanced, LoginError> {
    let t = now(app);
    // The account may have been disabled between the first step and this one.
    let user = match app.store.user_by_id(&user.id).await? {
        Some(fresh) if fresh.may_sign_in_at(t) => fresh,
        _ => {
            let e =
                event(app, ctx, types::AUTH_LOGIN_FAILED, Outcome::Denied, &l.st).reason("account no longer active");
            record(app, e).await?;
            return Err(LoginError::Failed { second_step: true });
        }
    };
    // Checked last, once every factor has passed, so that a refusal tells nothing to
    // someone who does not hold them all.
    let (limits, policy_rule) = match app.access.login(&*app.store, &user, ctx, t).await? {
        crate::access::LoginPolicy::Denied { rule } => {
            let e = event(app, ctx, types::AUTH_LOGIN_FAILED, Outcome::Denied, &l.st)
                .subject(user.username.as_str())
                .reason("the access policy allows no session from here")
                .detail("policy_rule", rule);
            record(app, e).await?;
            return Err(LoginError::PolicyDenied);
        }
        crate::access::LoginPolicy::Allowed { limits, rule, version, .. } => (Some(limits), Some((rule, version))),
        crate::access::LoginPolicy::Defaults => (None, None),
    };
    let (mut session, token) =
        Session::start(&auth, t, ctx.ip, ctx.user_agent.clone()).map_err(|_| LoginError::Unavailable)?;
    session.limits = limits;
    let e = event(app, ctx, types::AUTH_LOGIN_SUCCEEDED, Outcome::Success, &l.st)
        .subject(user.username.as_str())
        .detail("user_id", user.id.clone())
        .detail("session_id", session.id.clone())
        .detail("aal", auth.aal.as_str())
        .detail("amr", auth.amr.clone());
    let e = match &session.limits {
        Some(lim) => e
            .detail("idle_timeout_secs", lim.idle_timeout.whole_seconds())
            .detail("lifetime_secs", lim.absolute_lifetime.whole_seconds()),
        None => e,
    };
    let e = match policy_rule {
        Some((rule, version)) => e.detail("policy_rule", rule).detail("policy_version", version),
        None => e,
    };
    let e = auth.amr.iter().fold(e, |e, a| e.factor(a.clone()));
    match app.store.create_session(&session, Some(&l.flow.id_digest), &e).await {
        Ok(()) => {}
        // The same final step arrived twice; the first one made the session.
        Err(StoreError::NotFound) => return Err(LoginError::Expired),
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("wardgate_login_outcomes_total", "outcome" => "succeeded").increment(1);
    // For dormancy (A6). The sign-in has its own record; a failure here costs only accuracy.
    if let Err(err) = app.store.record_login(&user.id, t).await {
        tracing::warn!(error = %err, "could not record the time of sign-in");
    }
    if user.attempts.locked_until.is_some_and(|u| u > t) {
        let e = event(app, ctx, types::AUTH_ACCOUNT_UNLOCKED, Outcome::Success, &l.st)
            .reason("signed in with a phishing-resistant factor during a lockout");
        record(app, e).await?;
    }
    if user.attempts != Attempts::cleared() {
        // Best effort: a concurrent failure elsewhere may have changed the count; it will
        // be cleared by the next success.
        let _ = app.store.set_attempts(&user.id, &user.attempts, &Attempts::cleared(), None).await;
    }
    Ok(Advanced::SignedIn(Box::new(SignedIn { session, token, user, recovery_codes_left })))
}
