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
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use url::Url;

use super::decide::{self, Asked, Verdict};
use crate::app::AppState;
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
    let asked = Asked { method: orig.method, url: orig.url, browser: decide::is_browser(&headers) };
    let nginx = q.proxy.as_deref() == Some("nginx");
    match decide::decide(&app, &ctx, &headers, &asked, started).await {
        Ok(Verdict::Allow(allowed)) => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut().extend(allowed.identity);
            r
        }
        Ok(verdict) => decide::refusal(&app, verdict, &asked, nginx),
        Err(p) => p.into_response(),
    }
}
