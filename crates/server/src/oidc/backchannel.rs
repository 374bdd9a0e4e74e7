//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0), delivered reliably.
//!
//! Whoever ends a session — this node, another node, the command line — revokes its grants,
//! and the store queues a notice for each application that asked to be told, in that same
//! transaction. Every node runs [`run`]: each second, or at once when woken, it claims the
//! notices that are due under a lease (so that with several nodes on one PostgreSQL only one
//! sends a given notice at a time), POSTs each application its logout token, and records
//! the outcome: delivered, or due again after a backoff
//! ([`wardgate_core::oidc::notice::next_attempt`]) until it is given up. Every attempt is
//! audited as `oidc.logout.sent`.
//!
//! Every few seconds it also sweeps for sessions that ended without their grants being
//! revoked: sessions past their idle timeout or lifetime that nobody presented again, and
//! sessions whose revocation was not followed by their grants' (the process stopped in
//! between). Those are ended properly, which queues their notices.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::{Instant, MissedTickBehavior};
use wardgate_core::audit::event::types;
use wardgate_core::audit::record::format_ts;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::oidc::LogoutNotice;
use wardgate_core::oidc::notice::next_attempt;
use wardgate_core::session::SessionState;

use crate::app::AppState;

/// How often the queue is looked at without being woken: notices queued by the command
/// line or another node, and retries coming due.
const POLL: Duration = Duration::from_secs(1);
/// How often to look for sessions that ended unobserved. An expired session's grants are
/// already refused at refresh; this bounds how late its applications hear of it.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Notices claimed, and sent in parallel, at once.
const BATCH: u32 = 32;
/// Sessions ended per sweep; the next sweep takes the rest.
const SWEEP_BATCH: u32 = 100;
/// Long enough for a batch to be sent and recorded (each send times out after 5 s); a node
/// that stops mid-batch leaves its notices to others for this long.
const LEASE: time::Duration = time::Duration::minutes(2);
/// A session revoked this long ago with grants still live was left half-ended; younger
/// ones are probably still being ended by whoever revoked them.
const HALF_ENDED_AFTER: time::Duration = time::Duration::minutes(1);
/// Per POST: the application answers once it has ended its own session.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The node's deliverer and sweeper; runs until aborted. A notice being sent when it is
/// aborted keeps its lease and is sent again once the lease has run out.
pub async fn run(app: AppState) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_sweep: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = app.oidc.deliveries_waiting() => {}
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            last_sweep = Some(Instant::now());
            sweep(&app).await;
        }
        deliver_due(&app).await;
    }
}

/// Ends the sessions that ended without their grants (see the module documentation).
async fn sweep(app: &AppState) {
    let now = (app.clock)();
    let policy = &app.auth.sessions;
    let sessions = match app.store.sessions_to_end(policy, now, now - HALF_ENDED_AFTER, SWEEP_BATCH).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for sessions that ended unobserved");
            return;
        }
    };
    for s in sessions {
        match s.state(policy, now) {
            state @ (SessionState::IdleExpired | SessionState::LifetimeExpired) => {
                if let Err(e) = crate::auth::session::expire(app, &s, state, None).await {
                    tracing::warn!(error = %e, session_id = s.id, "could not end a session that expired unobserved");
                }
            }
            SessionState::Revoked => {
                super::logout::session_ended(app, &s.id, &s.correlation_id, "revoked earlier").await;
            }
            // Used again since the query (another node's request): not ours to end.
            SessionState::Active => {}
        }
    }
}

/// Claims and sends whatever is due, batch after batch while batches come back full.
async fn deliver_due(app: &AppState) {
    loop {
        let claimed = app.store.claim_logout_notices(&app.node_id, (app.clock)(), LEASE, BATCH).await;
        let notices = match claimed {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim back-channel logout notices");
                return;
            }
        };
        let full = notices.len() == BATCH as usize;
        let mut sends = tokio::task::JoinSet::new();
        for n in notices {
            let app = app.clone();
            sends.spawn(async move { deliver(&app, n).await });
        }
        while sends.join_next().await.is_some() {}
        if !full {
            return;
        }
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// `retry_at` `None`: given up.
    Failed {
        why: String,
        retry_at: Option<OffsetDateTime>,
    },
}

/// One attempt at one notice: build the token with the client's current settings, send
/// it, record the outcome on the notice and in the audit log.
async fn deliver(app: &AppState, n: LogoutNotice) {
    let attempt = n.attempts + 1;
    let client = match app.oidc.client(&*app.store, &n.client_id).await {
        Ok(c) => c,
        Err(e) => {
            // Nothing was attempted; the notice comes back when its lease runs out.
            tracing::warn!(error = %e, notice = n.id, "could not read the client of a logout notice");
            return;
        }
    };
    let uri = client.as_ref().and_then(|c| c.backchannel_logout_uri.clone());
    let sent = match (&client, &uri) {
        (Some(c), Some(uri)) => {
            match super::tokens::logout_token(&app.oidc, c, n.user_id.as_deref(), &n.session_id, (app.clock)()) {
                Ok(token) => send_logout(uri, &token).await,
                Err(e) => Err(format!("the logout token could not be signed: {e}")),
            }
        }
        // Unregistered since (a deleted client takes its notices with it): nobody to tell.
        _ => {
            let now = (app.clock)();
            record(
                app,
                &n,
                attempt,
                None,
                now,
                Attempt::Failed {
                    why: "the application no longer has a back-channel logout URI".into(),
                    retry_at: None,
                },
            )
            .await;
            return;
        }
    };
    let now = (app.clock)();
    let outcome = match sent {
        Ok(()) => Attempt::Delivered,
        Err(why) => Attempt::Failed { why, retry_at: next_attempt(n.created_at, attempt, now) },
    };
    record(app, &n, attempt, uri.as_deref(), now, outcome).await;
}

/// Writes an attempt's outcome to the notice and to the audit log.
async fn record(app: &AppState, n: &LogoutNotice, attempt: u32, uri: Option<&str>, now: OffsetDateTime, a: Attempt) {
    let stored = match &a {
        Attempt::Delivered => app.store.logout_notice_delivered(n.id, &app.node_id, now).await,
        Attempt::Failed { why, retry_at } => {
            app.store.logout_notice_failed(n.id, &app.node_id, now, why, *retry_at).await
        }
    };
    match stored {
        Ok(true) => {}
        // Our lease ran out and another node took the notice over: the application may
        // hear twice, which it must accept anyway (the token's `jti` differs, `sid` not).
        Ok(false) => tracing::warn!(notice = n.id, "a logout notice was taken over while it was being sent"),
        Err(e) => tracing::error!(error = %e, notice = n.id, "could not record a back-channel logout attempt"),
    }
    let outcome = if matches!(a, Attempt::Delivered) { Outcome::Success } else { Outcome::Failure };
    let mut e = AuditEvent::known(now, types::OIDC_LOGOUT_SENT, outcome)
        .actor(format!("client:{}", n.client_id))
        .correlation_id(n.correlation_id.clone())
        .detail("client_id", n.client_id.clone())
        .detail("session_id", n.session_id.clone())
        .detail("attempt", attempt)
        .detail("session_end", n.reason.clone());
    if let Some(uri) = uri {
        e = e.detail("backchannel_logout_uri", uri.to_owned());
    }
    let e = match a {
        Attempt::Delivered => e,
        Attempt::Failed { why, retry_at: Some(at) } => e.reason(why).detail("next_attempt_at", format_ts(at)),
        Attempt::Failed { why, retry_at: None } => e.reason(why).detail("given_up", true),
    };
    if let Err(err) = app.audit.append(e).await {
        tracing::error!(error = %err, "could not record a back-channel logout attempt in the audit log");
    }
}

/// One POST of a logout token; the application answers 200 (or 204) when it has ended its
/// own session. Redirects are not followed: the registered URI is the only address told.
async fn send_logout(uri: &str, token: &str) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.post(uri).form(&[("logout_token", token)]).send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("the application answered {}", resp.status())) }
}
