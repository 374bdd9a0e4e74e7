//! `POST /api/v1/authorize`: may this person do this action now? (S3)
//!
//! Applications ask with the person's access token (or, same-origin, their session
//! cookie), the action and the resource. The answer is `allow`, `deny` with the reason, or
//! `step_up` with the assurance needed and where to send the person for it. Every answer
//! is an audit record carrying the request as the policy saw it, so that `policy simulate`
//! can replay it against a proposal.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::User;
use wardgate_core::login::Aal;
use wardgate_core::oidc::acr::Acr;
use wardgate_core::policy::roles::Pattern;
use wardgate_core::policy::{Effect, RecordedRequest, Request, SessionFacts};

use super::context;
use crate::app::AppState;
use crate::auth::session;
use crate::context::ClientContext;
use crate::governance::breakglass;
use crate::problem::{ApiJson, Problem};

pub use super::NO_POLICY;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeBody {
    /// A permission name such as `ephi.export`.
    pub action: String,
    /// What it is done to, e.g. `Patient/123`; recorded, and matched by rules' `resources`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Where the person should land after a step-up: the application's own authorization
    /// request (`/oidc/authorize?…`), so they come back to it with a token at the new level.
    #[serde(default)]
    pub return_to: Option<String>,
}

fn unauthenticated() -> Response {
    let mut r = Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "A session or an access token is needed")
        .into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The person and their session, from a bearer access token or the session cookie.
async fn caller(
    app: &AppState,
    headers: &HeaderMap,
    ctx: &ClientContext,
) -> Result<Option<(User, SessionFacts, String)>, Problem> {
    let unavailable = |e: wardgate_store::StoreError| {
        tracing::error!(error = %e, "authorize: store failed");
        Problem::unavailable("the database is unreachable")
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(bearer) = bearer {
        let Some((claims, _grant)) = crate::oidc::token::live_access(app, bearer).await.map_err(unavailable)? else {
            return Ok(None);
        };
        // Client-credentials tokens name a client, not a person: nobody to decide about.
        let (Some(acr), Some(auth_time)) = (claims.acr.as_deref().and_then(Acr::parse), claims.auth_time) else {
            return Ok(None);
        };
        let Some(user) = app.store.user_by_id(&claims.sub).await.map_err(unavailable)? else { return Ok(None) };
        let at = OffsetDateTime::from_unix_timestamp(auth_time).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let correlation = claims.sid.unwrap_or(claims.grant_id);
        return Ok(Some((user, SessionFacts { aal: acr.0, authenticated_at: at }, correlation)));
    }
    let Some(cur) = session::current(app, headers, ctx).await? else { return Ok(None) };
    let facts = SessionFacts { aal: cur.session.aal, authenticated_at: cur.session.created_at };
    Ok(Some((cur.user, facts, cur.session.correlation_id)))
}

/// Where the person goes to reach `required`. Above aal1 it is the step-up page, which
/// asks only for what is missing: the second factor for a one-factor session, the security
/// key for aal3. At aal1 (the reauthentication window passed) it is the sign-in page with
/// their name filled in. `next` is followed after it only if it is an authorization request
/// to this server, so the URL can never send the person elsewhere.
fn step_up_url(app: &AppState, required: Aal, username: &str, next: Option<&str>) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mut url = match required {
        Aal::Aal1 => format!("{}/?login_hint={}", app.base_url, enc(username)),
        _ => format!("{}/?step_up=1", app.base_url),
    };
    if let Some(n) = next {
        url.push_str("&next=");
        url.push_str(&enc(n));
    }
    url
}

pub async fn authorize(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AuthorizeBody>,
) -> Response {
    if !matches!(Pattern::parse(&body.action), Some(Pattern::Exact(_))) {
        return Problem::invalid_field("action: a permission name such as \"ephi.export\"").into_response();
    }
    if body.resource.as_deref().is_some_and(|r| r.is_empty() || r.len() > 256 || r.chars().any(char::is_control)) {
        return Problem::invalid_field("resource: 1-256 characters, no control characters").into_response();
    }
    if body.return_to.as_deref().is_some_and(|r| !crate::pages::safe_next(r)) {
        return Problem::invalid_field("return_to: an authorization request to this server (/oidc/authorize?…)")
            .into_response();
    }
    let (user, session, correlation) = match caller(&app, &headers, &ctx).await {
        Ok(Some(found)) => found,
        Ok(None) => return unauthenticated(),
        Err(p) => return p.into_response(),
    };
    let device = match context::device(&*app.store, ctx.device_secret.as_deref()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "authorize: store failed");
            return Problem::unavailable("the database is unreachable").into_response();
        }
    };
    let now = (app.clock)();
    let roles = user.roles_at(now);
    let req = Request {
        action: &body.action,
        resource: body.resource.as_deref(),
        subject: context::subject(&user, &roles, now),
        session: Some(session),
        device: device.as_ref().map(context::device_facts),
        ip: ctx.ip,
        now,
    };
    let in_force = app.access.in_force();
    let mut decision = in_force.evaluate(&req);
    let version = in_force.version();
    let record = RecordedRequest::capture(&req);
    let emergency = match breakglass::overriding(&*app.store, &user, &decision, &body.action, now).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "authorize: store failed");
            return Problem::unavailable("the database is unreachable").into_response();
        }
    };
    let policy_rule = decision.rule;
    if emergency.is_some() {
        decision = breakglass::allow(decision);
    }
    let mut e = AuditEvent::known(
        now,
        types::POLICY_DECISION,
        if decision.effect == Effect::Allow { Outcome::Success } else { Outcome::Denied },
    )
    .subject(user.username.as_str())
    .reason(decision.reason)
    .client_ip(ctx.ip)
    .user_agent(ctx.user_agent.clone())
    .correlation_id(correlation)
    .detail("action", body.action.clone())
    .detail("effect", decision.effect.as_str())
    .detail("required", decision.required.as_str())
    .detail("rule", decision.rule)
    .detail("request", serde_json::to_value(&record).unwrap_or_default());
    if let Some(r) = &body.resource {
        e = e.detail("resource", r.clone());
    }
    if let Some(v) = version {
        e = e.detail("policy_version", v);
    }
    if let Some(b) = &emergency {
        e = e.detail("breakglass_id", b.id.clone()).detail("policy_rule", policy_rule).detail("severity", "high");
    }
    if let Some(s) = decision.segment {
        e = e.detail("segment", s);
    }
    if let Some(d) = &device {
        e.device_id = Some(d.name.clone());
    }
    if let Err(err) = app.audit.append(e).await {
        tracing::error!(error = %err, "authorize: audit append failed");
        return Problem::unavailable("the decision could not be recorded").into_response();
    }
    metrics::counter!("wardgate_policy_decisions_total", "effect" => decision.effect.as_str()).increment(1);
    let mut out = json!({
        "decision": decision.effect.as_str(),
        "reason": decision.reason,
        "rule": decision.rule,
        "policy_version": version,
    });
    match decision.effect {
        Effect::Allow => {
            out["session"] = json!({
                "idle_timeout_secs": decision.limits.idle_timeout.whole_seconds(),
                "lifetime_secs": decision.limits.lifetime.whole_seconds(),
                "reauthenticate_after_secs": decision.limits.reauthenticate_after.whole_seconds(),
            });
        }
        Effect::StepUp => {
            out["required"] = json!(decision.required.as_str());
            out["acr_values"] = json!(Acr(decision.required).as_str());
            if let Some(f) = decision.fresh {
                out["max_age"] = json!(f.whole_seconds());
            }
            out["url"] = json!(step_up_url(&app, decision.required, user.username.as_str(), body.return_to.as_deref()));
        }
        Effect::Deny => {}
    }
    axum::Json(out).into_response()
}
