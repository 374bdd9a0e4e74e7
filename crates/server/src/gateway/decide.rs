//! One decision about one request to a protected application, shared by both faces of the
//! gateway: forward-auth (`/gate/check`, another proxy asks) and the built-in proxy.
//!
//! Every decision about a signed-in person is an audit record (`gateway.access`) made
//! durable before the answer reaches the client; a request with no route is recorded too. An anonymous
//! request is not: a browser's first visit is no decision about anyone, and an anonymous
//! flood must not fill the log.

use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::User;
use wardgate_core::login::Aal;
use wardgate_core::policy::{Effect, RecordedRequest, Request, SessionFacts};
use wardgate_core::session::Session;
use wardgate_core::settings::GatewayRoute;

use super::{GATE_COOKIE, Gateway, start::start_path};
use crate::access::context;
use crate::app::AppState;
use crate::auth::session::{self, cookie_value};
use crate::context::ClientContext;
use crate::problem::Problem;

/// What the client asked for.
pub struct Asked {
    pub method: String,
    pub url: Url,
    /// A browser navigation rather than an API call: it can be sent to a sign-in page.
    pub browser: bool,
}

impl Asked {
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_ascii_lowercase()
    }
}

pub fn is_browser(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// The person may pass; the headers say who they are.
pub struct Allowed {
    pub route: GatewayRoute,
    pub username: String,
    pub correlation_id: String,
    pub identity: Vec<(HeaderName, HeaderValue)>,
}

pub enum Verdict {
    Allow(Box<Allowed>),
    NoRoute,
    /// No usable sign-in.
    SignIn,
    StepUp {
        required: Aal,
        username: String,
        detail: String,
    },
    Deny {
        detail: String,
    },
}

/// The person behind the gateway cookie, if it names a live session.
async fn signed_in(
    app: &AppState,
    headers: &HeaderMap,
    ctx: &ClientContext,
) -> Result<Option<(Session, User)>, Problem> {
    use base64::Engine as _;
    let Some(ticket) = cookie_value(headers, GATE_COOKIE) else { return Ok(None) };
    let Some(claims) = crate::oidc::tokens::verify_gate(&app.oidc, &ticket) else { return Ok(None) };
    let Ok(digest) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&claims.sdg) else { return Ok(None) };
    let Ok(digest) = <[u8; 32]>::try_from(digest.as_slice()) else { return Ok(None) };
    Ok(session::live(app, &digest, ctx).await?.filter(|(s, _)| s.id == claims.sid))
}

fn header(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    // Values that cannot be a header (control characters in a display name, say) are left
    // out rather than sent mangled.
    HeaderValue::from_str(value).ok().map(|v| (HeaderName::from_static(name), v))
}

/// A decision and the record it must leave, made durable by [`record`] before anything the
/// decision allows reaches the client.
pub struct Decided {
    pub verdict: Verdict,
    pub record: Option<AuditEvent>,
}

/// Decides and records, in that order: the answer waits for the record.
pub async fn decide(
    app: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
    asked: &Asked,
    started: Instant,
) -> Result<Verdict, Problem> {
    let d = evaluate(app, ctx, headers, asked, started).await?;
    record(app, d.record).await?;
    Ok(d.verdict)
}

pub async fn record(app: &AppState, e: Option<AuditEvent>) -> Result<(), Problem> {
    let Some(e) = e else { return Ok(()) };
    app.audit.append(e).await.map(|_| ()).map_err(|err| {
        tracing::error!(error = %err, "gateway: audit append failed");
        Problem::unavailable("the decision could not be recorded")
    })
}

/// The decision and its record, not yet written.
pub async fn evaluate(
    app: &AppState,
    ctx: &ClientContext,
    headers: &HeaderMap,
    asked: &Asked,
    started: Instant,
) -> Result<Decided, Problem> {
    let host = asked.host();
    let path = asked.url.path();
    let event = |outcome: Outcome, status: u16, route: Option<&str>, user: Option<&str>, rule: &str, reason: &str| {
        let mut e = AuditEvent::known((app.clock)(), types::GATEWAY_ACCESS, outcome)
            .reason(reason.to_owned())
            .client_ip(ctx.ip)
            .user_agent(ctx.user_agent.clone())
            .correlation_id(ctx.request_id.clone())
            .detail("host", host.clone())
            .detail("method", asked.method.clone())
            .detail("path", path.to_owned())
            .detail("status", status)
            .detail("rule", rule.to_owned())
            .detail("duration_us", started.elapsed().as_micros() as u64);
        if let Some(r) = route {
            e = e.detail("route", r.to_owned());
        }
        if let Some(u) = user {
            e = e.subject(u.to_owned());
        }
        e
    };

    let Some(route) = app.gateway.route(&host, path).cloned() else {
        let e = event(Outcome::Denied, 403, None, None, "builtin:no-route", "no gateway route for this host and path");
        return Ok(Decided { verdict: Verdict::NoRoute, record: Some(e) });
    };
    let Some((session, user)) = signed_in(app, headers, ctx).await? else {
        return Ok(Decided { verdict: Verdict::SignIn, record: None });
    };
    let now = (app.clock)();
    let device = context::device(&*app.store, ctx.device_secret.as_deref()).await.map_err(|e| {
        tracing::error!(error = %e, "gateway: store failed");
        Problem::unavailable("the database is unreachable")
    })?;
    let roles = user.roles_at(now);
    let action = Gateway::action(&route);
    let in_force = app.access.in_force();
    let req = Request {
        action: &action,
        resource: Some(path),
        subject: context::subject(&user, &roles, now),
        session: Some(SessionFacts { aal: session.aal, authenticated_at: session.created_at }),
        device: device.as_ref().map(context::device_facts),
        ip: ctx.ip,
        now,
    };
    let mut d = in_force.evaluate(&req);
    let emergency =
        crate::governance::breakglass::overriding(&*app.store, &user, &d, &action, now).await.map_err(|e| {
            tracing::error!(error = %e, "gateway: store failed");
            Problem::unavailable("the database is unreachable")
        })?;
    let policy_rule = d.rule;
    if emergency.is_some() {
        d = crate::governance::breakglass::allow(d);
    }
    let username = user.username.as_str();
    let (outcome, status) = match d.effect {
        Effect::Allow => (Outcome::Success, 200),
        Effect::StepUp => (Outcome::Denied, 401),
        Effect::Deny => (Outcome::Denied, 403),
    };
    // The request as the policy saw it, so that `policy simulate` replays gateway
    // decisions as it does the authorization API's.
    let mut e = event(outcome, status, Some(&route.name), Some(username), d.rule, d.reason)
        .detail("effect", d.effect.as_str())
        .detail("required", d.required.as_str())
        .detail("request", serde_json::to_value(RecordedRequest::capture(&req)).unwrap_or_default())
        .correlation_id(session.correlation_id.clone());
    if let Some(v) = in_force.version() {
        e = e.detail("policy_version", v);
    }
    if let Some(b) = &emergency {
        e = e.detail("breakglass_id", b.id.clone()).detail("policy_rule", policy_rule).detail("severity", "high");
    }
    if let Some(dev) = &device {
        e.device_id = Some(dev.name.clone());
    }
    metrics::counter!("wardgate_gateway_decisions_total", "effect" => d.effect.as_str()).increment(1);
    let verdict = match d.effect {
        Effect::Allow => {
            let mut identity: Vec<_> = [
                header("remote-user", username),
                header("remote-groups", &roles.join(",")),
                header("remote-name", &user.display_name),
                header("remote-email", &user.email),
            ]
            .into_iter()
            .flatten()
            .collect();
            match crate::oidc::tokens::gateway_assertion(&app.oidc, &user, &roles, &session, &route.name, &host, now) {
                Ok(a) => identity.extend(header("wardgate-assertion", &a)),
                Err(err) => tracing::error!(error = %err, "gateway: could not sign the assertion"),
            }
            Verdict::Allow(Box::new(Allowed {
                route,
                username: username.to_owned(),
                correlation_id: session.correlation_id,
                identity,
            }))
        }
        Effect::StepUp => Verdict::StepUp {
            required: d.required,
            username: username.to_owned(),
            detail: format!("{} needs {} (rule {})", action, d.required.as_str(), d.rule),
        },
        Effect::Deny => Verdict::Deny { detail: format!("{} (rule {})", d.reason, d.rule) },
    };
    Ok(Decided { verdict, record: Some(e) })
}

/// The answer to anything but an allow. A browser is sent to sign in or step up (302, or
/// 401 with `Location` for nginx, which cannot pass a redirect through `auth_request`); an
/// API client gets 401 with a challenge; a deny is 403.
pub fn refusal(app: &AppState, verdict: Verdict, asked: &Asked, nginx: bool) -> Response {
    let redirect = |to: &str| -> Response {
        // With a body of its own, so the problem-document layer leaves the Location alone.
        let status = if nginx { StatusCode::UNAUTHORIZED } else { StatusCode::FOUND };
        let mut r =
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Sign-in required\n").into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    };
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    match verdict {
        Verdict::Allow(_) => StatusCode::OK.into_response(),
        Verdict::NoRoute => {
            Problem::new(StatusCode::FORBIDDEN, "no-route", "This address is not a protected application")
                .into_response()
        }
        Verdict::SignIn if asked.browser && app.gateway.cookie_domain.is_some() => {
            redirect(&format!("{}{}", app.base_url, start_path(asked.url.as_str())))
        }
        Verdict::SignIn => {
            let mut r = Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Sign-in required").into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Verdict::StepUp { required, username, .. } if asked.browser => {
            // Only what is missing, then back through the hand-off to the application.
            let next = start_path(asked.url.as_str());
            let to = match required {
                Aal::Aal1 => format!("{}/?login_hint={}&next={}", app.base_url, enc(&username), enc(&next)),
                _ => format!("{}/?step_up=1&next={}", app.base_url, enc(&next)),
            };
            redirect(&to)
        }
        Verdict::StepUp { required, detail, .. } => {
            let mut r = Problem::new(StatusCode::UNAUTHORIZED, "step-up-required", "A stronger sign-in is needed")
                .detail(detail)
                .into_response();
            let challenge = format!(
                "Bearer error=\"insufficient_user_authentication\", acr_values=\"{}\"",
                wardgate_core::oidc::acr::Acr(required).as_str()
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        Verdict::Deny { detail } => {
            Problem::new(StatusCode::FORBIDDEN, "denied", "The access policy does not allow this")
                .detail(detail)
                .into_response()
        }
    }
}
