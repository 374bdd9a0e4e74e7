//! Sessions over HTTP (capability A3): the cookie, the idle and absolute limits checked on
//! every request, automatic logoff, and the CSRF token bound to the session.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::User;
use wardgate_core::session::{Session, SessionState};
use wardgate_core::token;
use wardgate_store::StoreError;

use crate::app::AppState;
use crate::context::ClientContext;
use crate::problem::Problem;

/// `__Host-` pins the cookie to this origin: Secure, Path=/, no Domain attribute.
pub const SESSION_COOKIE: &str = "__Host-wardgate-session";
/// The login or enrollment in progress, for the HTML pages (the JSON API takes it in the body).
pub const FLOW_COOKIE: &str = "__Host-wardgate-flow";

/// Activity is written at most this often per session, so that busy pages do not turn
/// every request into a database write.
const TOUCH_EVERY: Duration = Duration::seconds(15);

/// The value of one cookie from the `Cookie` header (RFC 6265 §4.2.1: `name=value; …`).
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for a `__Host-` cookie. SameSite=Lax so that a link from the EHR into a
/// protected page arrives signed in, while cross-site POSTs do not carry the session.
pub fn set_cookie(name: &str, value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax")).ok()
}

pub fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in person making this request.
#[derive(Debug, Clone)]
pub struct Current {
    pub session: Session,
    pub user: User,
    token: String,
}

impl Current {
    /// The CSRF token for forms and API calls made with this session: derived from the
    /// session secret, so it needs no storage and dies with the session.
    pub fn csrf(&self) -> String {
        csrf_for(&self.token)
    }

    pub fn csrf_ok(&self, presented: &str) -> bool {
        token::ct_eq(self.csrf().as_bytes(), presented.as_bytes())
    }
}

fn csrf_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wardgate-csrf\0");
    h.update(session_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The session this request carries, if it is live. An expired one is ended and audited
/// (automatic logoff, HIPAA 164.312(a)(2)(iii)) the first time it is presented.
pub async fn current(app: &AppState, headers: &HeaderMap, ctx: &ClientContext) -> Result<Option<Current>, Problem> {
    let Some(tok) = cookie_value(headers, SESSION_COOKIE).filter(|t| t.len() == 43) else { return Ok(None) };
    let digest = token::digest(&tok);
    Ok(live(app, &digest, ctx).await?.map(|(session, user)| Current { session, user, token: tok }))
}

/// The live session with this digest and its account: ends it (and says none) if it has
/// expired, and records activity for the idle timeout. Shared by the session cookie and
/// the gateway's cookie, which names the same session.
pub async fn live(
    app: &AppState,
    digest: &[u8; 32],
    ctx: &ClientContext,
) -> Result<Option<(Session, wardgate_core::identity::User)>, Problem> {
    let seen = &app.auth.sessions_seen;
    let changes = wardgate_store::changes();
    let (mut session, user, read_at) = match seen.get(digest, changes) {
        Some((s, u)) => (s, u, None),
        None => {
            let read_at = std::time::Instant::now();
            match app.store.session_and_user(digest).await {
                Ok(Some((s, u))) => (s, u, Some(read_at)),
                Ok(None) => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            }
        }
    };
    let now = (app.clock)();
    match session.state(&app.auth.sessions, now) {
        SessionState::Active => {}
        SessionState::Revoked => {
            seen.forget(digest);
            return Ok(None);
        }
        expired @ (SessionState::IdleExpired | SessionState::LifetimeExpired) => {
            seen.forget(digest);
            expire(app, &session, expired, ctx.ip).await.map_err(unavailable)?;
            return Ok(None);
        }
    }
    if !user.may_sign_in_at(now) {
        seen.forget(digest);
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        if let Err(e) = app.store.touch_session(digest, now).await {
            return Err(unavailable(e));
        }
        session.last_seen_at = now;
        // A cached entry is not renewed here (that would stretch how long a change made
        // elsewhere goes unseen): the next request reads the session again.
        match read_at {
            Some(at) => seen.put(digest, &session, &user, changes, at),
            None => seen.forget(digest),
        }
    } else if let Some(at) = read_at {
        seen.put(digest, &session, &user, changes, at);
    }
    Ok(Some((session, user)))
}

/// Ends a session found past its idle timeout or lifetime (`state`), records
/// `auth.session.expired`, and ends what applications were granted through it. Found when
/// a browser presents it (`ip` is the browser's), or by the back-channel sweep (`None`)
/// when nobody does. Whoever loses a race to end it leaves the rest to the winner.
pub async fn expire(
    app: &AppState,
    session: &Session,
    state: SessionState,
    ip: Option<std::net::IpAddr>,
) -> Result<(), StoreError> {
    let why = if state == SessionState::IdleExpired { "idle timeout" } else { "absolute lifetime reached" };
    let now = (app.clock)();
    let e = AuditEvent::known(now, types::AUTH_SESSION_EXPIRED, Outcome::Success)
        .subject(session.user_id.clone())
        .reason(why)
        .client_ip(ip)
        .correlation_id(session.correlation_id.clone())
        .detail("session_id", session.id.clone());
    match app.store.revoke_session(&session.user_id, &session.id, now, &e).await {
        Ok(()) => crate::oidc::logout::session_ended(app, &session.id, &session.correlation_id, why).await,
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

fn unavailable(e: StoreError) -> Problem {
    tracing::error!(error = %e, "session lookup failed");
    Problem::unavailable("the database is unreachable")
}

/// Ends the session this request carries (sign out).
pub async fn end(app: &AppState, cur: &Current, ctx: &ClientContext) -> Result<(), Problem> {
    let now: OffsetDateTime = (app.clock)();
    let e = AuditEvent::known(now, types::AUTH_SESSION_ENDED, Outcome::Success)
        .subject(cur.user.username.as_str())
        .reason("signed out")
        .client_ip(ctx.ip)
        .user_agent(ctx.user_agent.clone())
        .correlation_id(cur.session.correlation_id.clone())
        .detail("session_id", cur.session.id.clone());
    match app.store.revoke_session(&cur.user.id, &cur.session.id, now, &e).await {
        Ok(()) | Err(StoreError::NotFound) => {
            crate::oidc::logout::session_ended(app, &cur.session.id, &cur.session.correlation_id, "signed out").await;
            Ok(())
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// Extractor for API routes that need a signed-in person; 401 otherwise. State-changing
/// methods also need the session's CSRF token in `X-CSRF-Token`.
pub struct SignedIn(pub Current);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let ctx = ClientContext::from_request_parts(parts, app).await.map_err(|_| Problem::internal())?;
        let cur = current(app, &parts.headers, &ctx).await?.ok_or_else(unauthenticated)?;
        if !parts.method.is_safe() {
            let presented = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !cur.csrf_ok(presented) {
                return Err(csrf_problem());
            }
        }
        Ok(SignedIn(cur))
    }
}

pub fn unauthenticated() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Sign-in required")
        .detail("no live session: it was never started, was signed out, revoked, or expired")
}

pub fn csrf_problem() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "csrf", "The form has expired; reload the page and try again")
}

/// Revokes one session of a user (`which`) or all of them, and what applications were
/// granted through them. Returns how many sessions were live.
pub async fn revoke(
    app: &AppState,
    user_id: &str,
    which: Option<&str>,
    event: &AuditEvent,
    reason: &str,
) -> Result<u64, StoreError> {
    let live = app.store.sessions_of(user_id).await?;
    let affected: Vec<Session> = live.into_iter().filter(|s| which.is_none_or(|id| s.id == id)).collect();
    let now = (app.clock)();
    let n = match which {
        Some(id) => {
            app.store.revoke_session(user_id, id, now, event).await?;
            1
        }
        None => app.store.revoke_sessions_of(user_id, now, event).await?,
    };
    for s in affected {
        crate::oidc::logout::session_ended(app, &s.id, &s.correlation_id, reason).await;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_host_prefixed_and_parsed_back() {
        let v = set_cookie(SESSION_COOKIE, "abc").unwrap();
        let s = v.to_str().unwrap();
        assert!(s.starts_with("__Host-wardgate-session=abc;"));
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(s.contains(attr), "{attr}");
        }
        assert!(!s.contains("Domain"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; __Host-wardgate-session=tok; b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie_value(&h, FLOW_COOKIE), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let a = csrf_for("session-a");
        assert_eq!(a, csrf_for("session-a"));
        assert_ne!(a, csrf_for("session-b"));
        assert_eq!(a.len(), 43);
    }
}
