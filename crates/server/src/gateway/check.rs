//! `GET /gate/check`: forward-auth for nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth` and HAProxy.
//!
//! The proxy tells Wardgate what the client asked for (`X-Original-URL`, or
//! `X-Forwarded-Proto`/`-Host`/`-Uri`, and the method); these headers are believed only
//! from a configured trusted proxy. The answer:
//! - 200 with `Remote-User`, `Remote-Groups`, `Remote-Name`, `Remote-Email` and a signed
//!   `Wardgate-Assertion` when the policy allows the route;
//! - for a browser without a usable sign-in, or one that must step up, a redirect to
//!   Wardgate (302, or 401 with `Location` for nginx, which cannot pass a redirect through
//!   `auth_request`: `?proxy=nginx`);
//! - 401 with `WWW-Authenticate` for an API client;
//! - 403 when the policy denies, or there is no route (deny by default).
//!
//! Every decision is an audit record (`gateway.access`).

use std::time::Instant;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use url::Url;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::User;
use wardgate_core::policy::{Effect, RecordedRequest, Request, SessionFacts};
use wardgate_core::session::Session;

use super::{GATE_COOKIE, Gateway, start::start_path};
use crate::access::context;
use crate::app::AppState;
use crate::auth::session::{self, cookie_value};
use crate::context::{ClientContext, PeerAddr, TrustedProxies};
use crate::problem::Problem;

#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    /// `nginx`: redirects come as 401 with `Location` (see the module docs).
    #[serde(default)]
    proxy: Option<String>,
}

/// What the client asked the proxy for.
struct Original {
    method: String,
    url: Url,
}

fn original(headers: &HeaderMap) -> Option<Original> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let url = match h("x-original-url") {
        Some(u) => Url::parse(u).ok()?,
        None => {
            let proto = h("x-forwarded-proto").unwrap_or("https");
            if !matches!(proto, "http" | "https") {
                return None;
            }
            let host = h("x-forwarded-host")?;
            let uri = h("x-forwarded-uri").unwrap_or("/");
            if !uri.starts_with('/') {
                return None;
            }
            Url::parse(&format!("{proto}://{host}{uri}")).ok()?
        }
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let method = h("x-original-method").or_else(|| h("x-forwarded-method")).unwrap_or("GET");
    if !(1..=16).contains(&method.len()) || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(Original { method: method.to_owned(), url })
}

/// A browser navigation rather than an API call: it can be sent to a sign-in page.
fn is_browser(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
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

fn set(resp: &mut Response, name: &'static str, value: &str) {
    // Values that cannot be a header (control characters in a display name, say) are left
    // out rather than sent mangled.
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

pub async fn check(
    State(app): State<AppState>,
    ctx: ClientContext,
    peer: Option<Extension<PeerAddr>>,
    proxies: Option<Extension<TrustedProxies>>,
    Query(q): Query<CheckQuery>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    // The original request's headers mean something only when a proxy we trust wrote
    // them; anyone else could name any host and path.
    let trusted = match (peer, proxies) {
        (Some(Extension(p)), Some(Extension(t))) => t.trusts(p.0.ip()),
        _ => false,
    };
    if !trusted {
        return Problem::new(StatusCode::FORBIDDEN, "untrusted-proxy", "Only a configured proxy may ask")
            .detail("list the proxy's address in server.trusted_proxies")
            .into_response();
    }
    let Some(orig) = original(&headers) else {
        return Problem::bad_request("the proxy must send X-Original-URL, or X-Forwarded-Proto, -Host and -Uri")
            .into_response();
    };
    let host = orig.url.host_str().unwrap_or_default().to_ascii_lowercase();
    let path = orig.url.path().to_owned();
    let nginx = q.proxy.as_deref() == Some("nginx");
    let browser = is_browser(&headers);
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
    let record = |outcome: Outcome, status: u16, route: Option<&str>, user: Option<&str>, rule: &str, reason: &str| {
        let mut e = AuditEvent::known((app.clock)(), types::GATEWAY_ACCESS, outcome)
            .reason(reason.to_owned())
            .client_ip(ctx.ip)
            .user_agent(ctx.user_agent.clone())
            .correlation_id(ctx.request_id.clone())
            .detail("host", host.clone())
            .detail("method", orig.method.clone())
            .detail("path", path.clone())
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

    let Some(route) = app.gateway.route(&host, &path).cloned() else {
        let e = record(Outcome::Denied, 403, None, None, "builtin:no-route", "no gateway route for this host and path");
        if app.audit.append(e).await.is_err() {
            return Problem::unavailable("the decision could not be recorded").into_response();
        }
        return Problem::new(StatusCode::FORBIDDEN, "no-route", "This address is not a protected application")
            .into_response();
    };
    let (session, user) = match signed_in(&app, &headers, &ctx).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            // Not signed in: no record (a browser's first visit is not a decision about
            // anyone, and an anonymous flood must not fill the log).
            if browser && app.gateway.cookie_domain.is_some() {
                return redirect(&format!("{}{}", app.base_url, start_path(orig.url.as_str())));
            }
            let mut r = Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Sign-in required").into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        Err(p) => return p.into_response(),
    };
    let now = (app.clock)();
    let device = match context::device(&*app.store, ctx.device_secret.as_deref()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "gateway: store failed");
            return Problem::unavailable("the database is unreachable").into_response();
        }
    };
    let roles = user.roles_at(now);
    let action = Gateway::action(&route);
    let in_force = app.access.in_force();
    let version = in_force.version();
    let req = Request {
        action: &action,
        resource: Some(&path),
        subject: context::subject(&user, &roles, now),
        session: Some(SessionFacts { aal: session.aal, authenticated_at: session.created_at }),
        device: device.as_ref().map(context::device_facts),
        ip: ctx.ip,
        now,
    };
    let d = in_force.evaluate(&req);
    let username = user.username.as_str();
    let (outcome, status) = match d.effect {
        Effect::Allow => (Outcome::Success, 200),
        Effect::StepUp => (Outcome::Denied, 401),
        Effect::Deny => (Outcome::Denied, 403),
    };
    // The request as the policy saw it, so that `policy simulate` replays gateway
    // decisions as it does the authorization API's.
    let mut e = record(outcome, status, Some(&route.name), Some(username), d.rule, d.reason)
        .detail("effect", d.effect.as_str())
        .detail("required", d.required.as_str())
        .detail("request", serde_json::to_value(RecordedRequest::capture(&req)).unwrap_or_default())
        .correlation_id(session.correlation_id.clone());
    if let Some(v) = version {
        e = e.detail("policy_version", v);
    }
    if let Some(dev) = &device {
        e.device_id = Some(dev.name.clone());
    }
    if let Err(err) = app.audit.append(e).await {
        tracing::error!(error = %err, "gateway: audit append failed");
        return Problem::unavailable("the decision could not be recorded").into_response();
    }
    metrics::counter!("wardgate_gateway_decisions_total", "effect" => d.effect.as_str()).increment(1);
    match d.effect {
        Effect::Allow => {
            let assertion =
                crate::oidc::tokens::gateway_assertion(&app.oidc, &user, &roles, &session, &route.name, &host, now);
            let mut r = StatusCode::OK.into_response();
            set(&mut r, "remote-user", username);
            set(&mut r, "remote-groups", &roles.join(","));
            set(&mut r, "remote-name", &user.display_name);
            set(&mut r, "remote-email", &user.email);
            match assertion {
                Ok(a) => set(&mut r, "wardgate-assertion", &a),
                Err(err) => tracing::error!(error = %err, "gateway: could not sign the assertion"),
            }
            r
        }
        Effect::StepUp if browser => {
            // Only what is missing, then back through the hand-off to the application.
            let next = start_path(orig.url.as_str());
            let to = match d.required {
                wardgate_core::login::Aal::Aal1 => format!(
                    "{}/?login_hint={}&next={}",
                    app.base_url,
                    percent_encoding::utf8_percent_encode(username, percent_encoding::NON_ALPHANUMERIC),
                    percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
                ),
                _ => format!(
                    "{}/?step_up=1&next={}",
                    app.base_url,
                    percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
                ),
            };
            redirect(&to)
        }
        Effect::StepUp => {
            let mut r = Problem::new(StatusCode::UNAUTHORIZED, "step-up-required", "A stronger sign-in is needed")
                .detail(format!("{} needs {} (rule {})", action, d.required.as_str(), d.rule))
                .into_response();
            let challenge = format!(
                "Bearer error=\"insufficient_user_authentication\", acr_values=\"{}\"",
                wardgate_core::oidc::acr::Acr(d.required).as_str()
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        Effect::Deny => Problem::new(StatusCode::FORBIDDEN, "denied", "The access policy does not allow this")
            .detail(format!("{} (rule {})", d.reason, d.rule))
            .into_response(),
    }
}
