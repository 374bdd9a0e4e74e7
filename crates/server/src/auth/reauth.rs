//! Fresh proof of a second factor inside a signed-in session, for account changes that a
//! session alone must not make (replacing a lost factor, L3): a session cookie left on a
//! shared workstation is not the person.
//!
//! A code from an authenticator app is checked in one request. A security key or passkey
//! needs a ceremony: a challenge limited to the credentials the caller names (never the
//! factor being replaced), kept in the store as a short flow bound to the session and to
//! the action, and answered once.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wardgate_core::flow::{Flow, FlowKind, STEP_UP_TTL};
use wardgate_core::identity::{Factor, FactorKind};
use wardgate_core::token;
use wardgate_store::StoreError;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential, RequestChallengeResponse};

use super::factor_check::{self, CheckError, Passed};
use super::session::Current;
use crate::app::AppState;
use crate::problem::Problem;
use axum::http::StatusCode;

/// What the person offers as the fresh second factor.
pub enum Proof {
    /// A current code of an authenticator app or hardware OTP token.
    Code(String),
    /// The answer to a challenge from [`challenge`]: its handle and the assertion.
    Webauthn { flow: String, credential: Box<PublicKeyCredential> },
}

/// The action a challenge was issued for: an answer is only good for that action on that
/// factor, so a challenge obtained for one change cannot authorise another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purpose {
    pub action: String,
    pub factor_id: String,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    session_id: String,
    purpose: Purpose,
    webauthn: PasskeyAuthentication,
}

/// Whether a challenge issued to session `issued_to` for `issued_for` may authorise
/// `purpose` in session `session_id`: only the same action on the same factor, in the
/// same session.
fn binds(issued_to: &str, issued_for: &Purpose, session_id: &str, purpose: &Purpose) -> bool {
    issued_to == session_id && issued_for == purpose
}

/// A challenge for the browser, and the handle to send back with its answer.
#[derive(Serialize)]
pub struct Challenge {
    pub flow: String,
    #[serde(flatten)]
    pub options: RequestChallengeResponse,
}

/// Whether `f` may answer a step-up about factor `excluded`: a security key or passkey of
/// the person's, unexpired, and never the one the action is about.
pub fn may_answer(f: &Factor, excluded: &str, now: OffsetDateTime) -> bool {
    f.kind == FactorKind::Webauthn && f.id != excluded && !f.expired_at(now)
}

/// The factors of `factors` that [`may_answer`].
pub fn candidate_keys(factors: &[Factor], excluded: &str, now: OffsetDateTime) -> Vec<Factor> {
    factors.iter().filter(|f| may_answer(f, excluded, now)).cloned().collect()
}

fn unavailable(e: StoreError) -> Problem {
    tracing::error!(error = %e, "step-up: store failed");
    Problem::unavailable("the database is unreachable")
}

/// Starts a security-key challenge for `purpose` that only `keys` can answer.
pub async fn challenge(app: &AppState, cur: &Current, purpose: Purpose, keys: &[Factor]) -> Result<Challenge, Problem> {
    let Some(rp) = app.auth.rp() else {
        return Err(Problem::new(StatusCode::CONFLICT, "webauthn-unavailable", "Security keys are not available")
            .detail("this server's public_url has no domain name, so security keys cannot be used"));
    };
    let passkeys: Vec<_> = factor_check::passkeys(&app.keyring.get(), keys).into_iter().map(|(_, p)| p).collect();
    if passkeys.is_empty() {
        return Err(Problem::new(StatusCode::CONFLICT, "no-security-key", "No other security key or passkey")
            .detail("you have no other security key or passkey; use a code from another authenticator app, or call the help desk"));
    }
    let (options, state) = rp.start_passkey_authentication(&passkeys).map_err(|e| {
        tracing::error!(error = %e, "step-up: webauthn challenge failed");
        Problem::unavailable("the security key challenge could not be made")
    })?;
    let pending = Pending { session_id: cur.session.id.clone(), purpose, webauthn: state };
    let handle = token::generate().map_err(|_| Problem::unavailable("no randomness"))?;
    let now = (app.clock)();
    let flow = Flow {
        id_digest: token::digest(&handle),
        kind: FlowKind::StepUp,
        user_id: Some(cur.user.id.clone()),
        state: serde_json::to_value(&pending).map_err(|_| Problem::internal())?,
        version: 0,
        created_at: now,
        expires_at: now + STEP_UP_TTL,
    };
    app.store.insert_flow(&flow).await.map_err(unavailable)?;
    Ok(Challenge { flow: handle, options })
}

/// Why a step-up answer was not accepted. `counts` says whether it is a failed attempt
/// against the account (a wrong answer), as opposed to a stale or misdirected one.
#[derive(Debug)]
pub struct Refused {
    pub why: String,
    pub counts: bool,
    /// The answer was right but for an expired factor, or from a key whose counter went
    /// backwards: the factor concerned.
    pub factor_id: Option<String>,
}

fn refused(why: impl Into<String>, counts: bool) -> Refused {
    Refused { why: why.into(), counts, factor_id: None }
}

/// Checks an answer to [`challenge`]: the challenge must be this session's, for this
/// `purpose`, still live and unused; the assertion must be from one of `keys`. The
/// challenge is spent whatever the outcome, so an answer cannot be tried twice.
pub async fn verify_webauthn(
    app: &AppState,
    cur: &Current,
    purpose: &Purpose,
    handle: &str,
    credential: &PublicKeyCredential,
    keys: &[Factor],
) -> Result<Result<Passed, Refused>, Problem> {
    let now = (app.clock)();
    let stale = || Ok(Err(refused("the security key challenge expired or was already used; try again", false)));
    let Some(rp) = app.auth.rp() else { return stale() };
    if handle.len() != 43 {
        return stale();
    }
    let Some(mut flow) = app.store.flow(&token::digest(handle), now).await.map_err(unavailable)? else {
        return stale();
    };
    if flow.kind != FlowKind::StepUp || flow.user_id.as_deref() != Some(cur.user.id.as_str()) {
        return stale();
    }
    let Ok(pending) = serde_json::from_value::<Pending>(flow.state.clone()) else { return stale() };
    if !binds(&pending.session_id, &pending.purpose, &cur.session.id, purpose) {
        return stale();
    }
    // Spent by compare-and-set before the answer is looked at: two requests racing with
    // one challenge cannot both pass.
    flow.expires_at = now;
    if !app.store.update_flow(&flow).await.map_err(unavailable)? {
        return stale();
    }
    let cred_id =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, credential.get_credential_id());
    let Some(factor) = keys.iter().find(|f| f.credential_id.as_deref() == Some(cred_id.as_str())) else {
        return Ok(Err(refused("the security key is not one of your other keys", true)));
    };
    let result = match rp.finish_passkey_authentication(credential, &pending.webauthn) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Err(Refused {
                factor_id: Some(factor.id.clone()),
                ..refused(format!("assertion refused: {e}"), true)
            }));
        }
    };
    if !result.user_verified() {
        return Ok(Err(Refused {
            factor_id: Some(factor.id.clone()),
            ..refused("the key did not verify its PIN or biometric", true)
        }));
    }
    let refuse = app.auth.settings.webauthn_refuse_counter_regression;
    match factor_check::webauthn_used(&*app.store, &app.keyring.get(), factor, &result, now, refuse).await {
        Ok(p) => Ok(Ok(p)),
        Err(CheckError::Store(e)) => Err(unavailable(e)),
        Err(CheckError::Expired { factor_id, .. }) => {
            Ok(Err(Refused { factor_id: Some(factor_id), ..refused("the security key is past its expiry", false) }))
        }
        Err(CheckError::CounterRegression { factor_id, .. }) => Ok(Err(Refused {
            factor_id: Some(factor_id),
            ..refused("the key's signature counter went backwards: it may have been copied", true)
        })),
        Err(e) => {
            tracing::error!(error = %e, "step-up: webauthn bookkeeping failed");
            Err(Problem::unavailable("the security key could not be checked"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn factor(id: &str, kind: FactorKind, now: OffsetDateTime) -> Factor {
        Factor::new(id.into(), "u".into(), kind, id, String::new(), now)
    }

    #[test]
    fn only_other_unexpired_keys_may_answer() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut expired = factor("old-key", FactorKind::Webauthn, now);
        expired.expires_at = Some(now - Duration::minutes(1));
        let factors = vec![
            factor("lost-key", FactorKind::Webauthn, now),
            factor("spare-key", FactorKind::Webauthn, now),
            expired,
            factor("app", FactorKind::Totp, now),
            factor("pwd", FactorKind::Passphrase, now),
        ];
        let ids = |v: Vec<Factor>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(ids(candidate_keys(&factors, "lost-key", now)), vec!["spare-key"]);
        assert_eq!(ids(candidate_keys(&factors, "app", now)), vec!["lost-key", "spare-key"]);
        assert!(candidate_keys(&factors[1..2], "spare-key", now).is_empty());
    }

    #[test]
    fn a_challenge_answers_only_its_session_action_and_factor() {
        let replacing = |f: &str| Purpose { action: "replace_factor".into(), factor_id: f.into() };
        assert!(binds("s1", &replacing("app"), "s1", &replacing("app")));
        assert!(!binds("s1", &replacing("app"), "s2", &replacing("app")), "another session");
        assert!(!binds("s1", &replacing("app"), "s1", &replacing("key")), "another factor");
        let other = Purpose { action: "remove_factor".into(), factor_id: "app".into() };
        assert!(!binds("s1", &replacing("app"), "s1", &other), "another action");
    }
}
