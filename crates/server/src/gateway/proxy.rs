//! The built-in identity-aware reverse proxy (I4): for an application with no proxy of its
//! own in front, `wardgate serve` is the proxy. A request whose host is a proxied route's
//! host never reaches Wardgate's own routes; it is decided exactly as `/gate/check` decides
//! (same policy action, same audit record) before a single byte goes to the upstream, and
//! its record is durable before a single byte of the answer goes to the client.
//!
//! What the upstream receives: the client's request minus hop-by-hop headers, minus any
//! identity header the client made up, minus the gateway cookie (an application must not
//! be able to replay the person's sign-in), plus Wardgate's identity headers, the route's
//! extra headers and `X-Forwarded-*`. Bodies stream both ways (hyper's back-pressure keeps
//! memory flat whatever the size); WebSocket and other upgrades are passed through once the
//! upstream agrees to them.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use url::Url;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::settings::{GatewayRoute, HOP_BY_HOP_HEADERS as HOP_BY_HOP, RESERVED_PROXY_HEADERS};
use wardgate_store::audit_writer::AuditHandle;

use super::decide::{self, Allowed, Asked, Verdict};
use super::{GATE_COOKIE, Gateway};
use crate::app::AppState;
use crate::context::{ClientContext, RequestId, TrustedProxies};
use crate::problem::Problem;

type Upstream = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// One proxied route's upstream.
struct Target {
    /// `scheme://host[:port]`, no trailing slash.
    origin: String,
    client: Upstream,
    extra: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    max_body: u64,
}

/// The proxied routes, built once at start.
pub struct Proxy {
    targets: HashMap<String, Target>,
    hosts: HashSet<String>,
    /// How clients reach this server (`http` only in development and tests).
    scheme: &'static str,
}

impl Proxy {
    /// `None` when no route has an upstream. Refuses a configuration that would shadow
    /// Wardgate's own pages or leave part of a proxied host undecided.
    pub fn new(gateway: &Gateway, base_url: &str) -> Result<Option<Self>, String> {
        let proxied: Vec<&GatewayRoute> = gateway.routes.iter().filter(|r| r.upstream.is_some()).collect();
        if proxied.is_empty() {
            return Ok(None);
        }
        let own_host = Url::parse(base_url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        let hosts: HashSet<String> = proxied.iter().map(|r| r.host.to_ascii_lowercase()).collect();
        if let Some(own) = own_host.filter(|h| hosts.contains(h)) {
            return Err(format!(
                "gateway.routes: {own} is this server's own host; a proxied application needs a host of its own"
            ));
        }
        if let Some(r) =
            gateway.routes.iter().find(|r| r.upstream.is_none() && hosts.contains(&r.host.to_ascii_lowercase()))
        {
            return Err(format!(
                "gateway.routes: route {} has no upstream but its host {} is proxied; give it one",
                r.name, r.host
            ));
        }
        let tls = if proxied.iter().any(|r| r.upstream.as_deref().is_some_and(|u| u.starts_with("https://"))) {
            Some(upstream_tls()?)
        } else {
            None
        };
        let mut targets = HashMap::new();
        for r in proxied {
            let Some(upstream) = r.upstream.as_deref() else { continue };
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(Duration::from_secs(r.connect_timeout_secs)));
            let builder = hyper_rustls::HttpsConnectorBuilder::new();
            let connector = match &tls {
                Some(cfg) => builder.with_tls_config(cfg.clone()).https_or_http().enable_http1().wrap_connector(http),
                // No https upstream: a config without roots, never used for a handshake.
                None => builder
                    .with_tls_config(
                        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                            .with_safe_default_protocol_versions()
                            .map_err(|e| e.to_string())?
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    )
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http),
            };
            let client =
                Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
            let extra = r
                .headers
                .iter()
                .filter_map(|(k, v)| Some((HeaderName::try_from(k.as_str()).ok()?, HeaderValue::from_str(v).ok()?)))
                .collect();
            targets.insert(
                r.name.clone(),
                Target {
                    origin: upstream.trim_end_matches('/').to_owned(),
                    client,
                    extra,
                    timeout: Duration::from_secs(r.timeout_secs),
                    max_body: r.max_body_bytes,
                },
            );
        }
        let scheme = if base_url.starts_with("http://") { "http" } else { "https" };
        Ok(Some(Self { targets, hosts, scheme }))
    }
}

/// TLS to upstreams: the system's roots, where a hospital installs its internal CA.
fn upstream_tls() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err("gateway.routes: an upstream is https but the system has no CA certificates".into());
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// What the dispatch layer needs.
#[derive(Clone)]
pub struct ProxyState {
    pub app: AppState,
    pub proxy: Arc<Proxy>,
    pub proxies: TrustedProxies,
}

/// The outermost layer: a request for a proxied host goes to the proxy, anything else to
/// Wardgate's own routes.
pub async fn dispatch(State(st): State<ProxyState>, req: Request, next: Next) -> Response {
    match request_authority(&req) {
        Some(a) if st.proxy.hosts.contains(&a.host().to_ascii_lowercase()) => forward(&st, req, a).await,
        _ => next.run(req).await,
    }
}

fn request_authority(req: &Request) -> Option<Authority> {
    if let Some(a) = req.uri().authority() {
        return Some(a.clone());
    }
    req.headers().get(header::HOST)?.to_str().ok()?.parse().ok()
}

/// The upgrade a client asks for (`Connection: upgrade` with `Upgrade: …`).
fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned()).flatten()
}

/// Header names listed in `Connection` are hop-by-hop too.
fn connection_named(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The `Cookie` header without the gateway cookie, or `None` if nothing else is left.
fn without_gate_cookie(value: &HeaderValue) -> Option<HeaderValue> {
    let v = value.to_str().ok()?;
    let rest: Vec<&str> = v
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.split_once('=').is_none_or(|(name, _)| name.trim() != GATE_COOKIE))
        .collect();
    if rest.is_empty() { None } else { HeaderValue::from_str(&rest.join("; ")).ok() }
}

/// The request headers for the upstream.
fn upstream_headers(
    incoming: &HeaderMap,
    allowed: &Allowed,
    target: &Target,
    ctx: &ClientContext,
    authority: &Authority,
    scheme: &str,
    upgrade: Option<&HeaderValue>,
) -> HeaderMap {
    let named = connection_named(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len() + 8);
    for (name, value) in incoming {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || RESERVED_PROXY_HEADERS.contains(&n) || named.iter().any(|c| c == n) {
            continue;
        }
        if name == header::COOKIE {
            if let Some(v) = without_gate_cookie(value) {
                out.append(header::COOKIE, v);
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out.extend(allowed.identity.iter().cloned());
    for (k, v) in &target.extra {
        out.insert(k.clone(), v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
        out.insert(header::HOST, v.clone());
        out.insert(HeaderName::from_static("x-forwarded-host"), v);
    }
    out.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if scheme == "http" { "http" } else { "https" }),
    );
    if let Some(ip) = ctx.ip
        && let Ok(v) = HeaderValue::from_str(&ip.to_string())
    {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if let Some(u) = upgrade {
        out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        out.insert(header::UPGRADE, u.clone());
    }
    out
}

/// The response headers for the client.
fn client_headers(upstream: &HeaderMap, switching: bool) -> HeaderMap {
    let named = connection_named(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        let keep_for_upgrade = switching && (name == header::CONNECTION || name == header::UPGRADE);
        if !keep_for_upgrade && (HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n)) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Bytes each way, for the access record.
#[derive(Default)]
struct Meter {
    sent: AtomicU64,
    received: AtomicU64,
}

/// A body that counts what passes through it.
struct Counted<B> {
    inner: B,
    meter: Arc<Meter>,
    upstream_bound: bool,
    /// Dropped with the body, when the client has it all or goes away: the moment the
    /// request is over.
    _trail: Option<Trail>,
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let counter = if this.upstream_bound { &this.meter.sent } else { &this.meter.received };
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The access record of one proxied request on a `record = true` route (V2), written when
/// the request is over, whichever way it ended.
struct Trail {
    audit: AuditHandle,
    event: Option<AuditEvent>,
    started: Instant,
    meter: Arc<Meter>,
    status: u16,
}

impl Drop for Trail {
    fn drop(&mut self) {
        let Some(e) = self.event.take() else { return };
        let e = e
            .detail("status", self.status)
            .detail("bytes_in", self.meter.sent.load(Ordering::Relaxed))
            .detail("bytes_out", self.meter.received.load(Ordering::Relaxed))
            .detail("duration_us", self.started.elapsed().as_micros() as u64);
        let e = if self.status >= 500 { AuditEvent { outcome: Outcome::Failure, ..e } } else { e };
        let audit = self.audit.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(err) = audit.append(e).await {
                    tracing::error!(error = %err, "proxy: could not record a proxied request");
                }
            });
        }
    }
}

/// The page a person sees when the application behind the gateway does not answer.
fn unreachable(status: StatusCode, route: &str, request_id: &str, browser: bool) -> Response {
    let what = if status == StatusCode::GATEWAY_TIMEOUT { "did not answer in time" } else { "is not reachable" };
    if !browser {
        return Problem::new(status, "upstream-unavailable", "The application behind the gateway is unavailable")
            .detail(format!("{route} {what}; reference {request_id}"))
            .into_response();
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Application unavailable</title></head>\
         <body><h1>This application {what}</h1><p>Wardgate signed you in, but the application \
         <strong>{route}</strong> {what} right now. Try again in a minute. If it keeps happening, call the \
         service desk and quote reference <code>{request_id}</code>.</p></body></html>"
    );
    let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn too_large(max: u64) -> Response {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "The request body is too large")
        .detail(format!("this application accepts at most {max} bytes"))
        .into_response()
}

fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

async fn forward(st: &ProxyState, mut req: Request, authority: Authority) -> Response {
    let started = Instant::now();
    let app = &st.app;
    let upgrade = upgrade_of(req.headers());
    // The client's side of the upgrade must be claimed before the request is taken apart.
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let request_id = wardgate_core::token::random_id().unwrap_or_default();
    parts.extensions.insert(st.proxies.clone());
    parts.extensions.insert(RequestId(request_id.clone()));
    let Ok(ctx) = ClientContext::from_request_parts(&mut parts, &()).await;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(url) = Url::parse(&format!("{}://{}{}", st.proxy.scheme, authority, path_and_query)) else {
        return Problem::bad_request("the request target is not a valid URL").into_response();
    };
    let asked = Asked { method: parts.method.as_str().to_owned(), url, browser: decide::is_browser(&parts.headers) };
    let (allowed, decision_record) = match decide::evaluate(app, &ctx, &parts.headers, &asked, started).await {
        Ok(decide::Decided { verdict: Verdict::Allow(a), record }) => (a, record),
        Ok(decide::Decided { verdict, record }) => {
            if let Err(p) = decide::record(app, record).await {
                return p.into_response();
            }
            return decide::refusal(app, verdict, &asked, false);
        }
        Err(p) => return p.into_response(),
    };
    // A safe request (RFC 9110 section 9.2.1) goes to the upstream while its record is being
    // made durable: nothing reaches the client before the record is, and reading changes
    // nothing upstream if the record then fails. Anything else is recorded first.
    let overlap = upgrade.is_none() && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let mut decision_record = decision_record;
    if !overlap && let Err(p) = decide::record(app, decision_record.take()).await {
        return p.into_response();
    }
    let Some(target) = st.proxy.targets.get(&allowed.route.name) else {
        return decide::refusal(app, Verdict::NoRoute, &asked, false);
    };
    let meter = Arc::new(Meter::default());
    let mut trail = allowed.route.record.then(|| Trail {
        audit: app.audit.clone(),
        event: Some(
            AuditEvent::known((app.clock)(), types::GATEWAY_PROXIED, Outcome::Success)
                .subject(allowed.username.clone())
                .client_ip(ctx.ip)
                .user_agent(ctx.user_agent.clone())
                .correlation_id(allowed.correlation_id.clone())
                .detail("route", allowed.route.name.clone())
                .detail("host", asked.host())
                .detail("method", asked.method.clone())
                .detail("path", asked.url.path().to_owned())
                .detail("request_id", request_id.clone()),
        ),
        started,
        meter: Arc::clone(&meter),
        status: 0,
    });
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > target.max_body) {
        if let Err(p) = decide::record(app, decision_record.take()).await {
            return p.into_response();
        }
        if let Some(t) = trail.as_mut() {
            t.status = 413;
        }
        return too_large(target.max_body);
    }

    let headers =
        upstream_headers(&parts.headers, &allowed, target, &ctx, &authority, st.proxy.scheme, upgrade.as_ref());
    let Ok(uri) = format!("{}{}", target.origin, path_and_query).parse::<Uri>() else {
        if let Err(p) = decide::record(app, decision_record.take()).await {
            return p.into_response();
        }
        return Problem::bad_request("the request target cannot be passed on").into_response();
    };
    let body = if upgrade.is_some() {
        Body::empty()
    } else {
        Body::new(Counted {
            inner: Limited::new(body, target.max_body as usize),
            meter: Arc::clone(&meter),
            upstream_bound: true,
            _trail: None,
        })
    };
    let mut up = hyper::Request::new(body);
    *up.method_mut() = parts.method.clone();
    *up.uri_mut() = uri;
    *up.version_mut() = Version::HTTP_11;
    *up.headers_mut() = headers;

    let route = allowed.route.name.as_str();
    let send = tokio::time::timeout(target.timeout, target.client.request(up));
    let outcome = match decision_record.take() {
        Some(rec) => {
            let (recorded, outcome) = tokio::join!(decide::record(app, Some(rec)), send);
            if let Err(p) = recorded {
                if let Some(t) = trail.as_mut() {
                    t.status = 503;
                }
                return p.into_response();
            }
            outcome
        }
        None => send.await,
    };
    let mut resp = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if is_length_limit(&e) => {
            if let Some(t) = trail.as_mut() {
                t.status = 413;
            }
            return too_large(target.max_body);
        }
        Ok(Err(e)) => {
            tracing::warn!(route, error = %e, "proxy: upstream failed");
            metrics::counter!("wardgate_proxy_upstream_errors_total", "route" => route.to_owned()).increment(1);
            if let Some(t) = trail.as_mut() {
                t.status = 502;
            }
            return unreachable(StatusCode::BAD_GATEWAY, route, &request_id, asked.browser);
        }
        Err(_) => {
            tracing::warn!(route, "proxy: upstream timed out");
            metrics::counter!("wardgate_proxy_upstream_errors_total", "route" => route.to_owned()).increment(1);
            if let Some(t) = trail.as_mut() {
                t.status = 504;
            }
            return unreachable(StatusCode::GATEWAY_TIMEOUT, route, &request_id, asked.browser);
        }
    };
    let status = resp.status();
    if let Some(t) = trail.as_mut() {
        t.status = status.as_u16();
    }
    metrics::counter!("wardgate_proxy_requests_total", "route" => route.to_owned()).increment(1);

    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            // The upstream switched protocols nobody asked for.
            return unreachable(StatusCode::BAD_GATEWAY, route, &request_id, asked.browser);
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let meter = Arc::clone(&meter);
        tokio::spawn(async move {
            let _trail = trail;
            match tokio::join!(client_upgrade, upstream_upgrade) {
                (Ok(c), Ok(u)) => {
                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                    match tokio::io::copy_bidirectional(&mut c, &mut u).await {
                        Ok((sent, received)) => {
                            meter.sent.fetch_add(sent, Ordering::Relaxed);
                            meter.received.fetch_add(received, Ordering::Relaxed);
                        }
                        Err(e) => tracing::debug!(error = %e, "proxy: upgraded connection ended"),
                    }
                }
                (c, u) => tracing::debug!(client = c.is_ok(), upstream = u.is_ok(), "proxy: upgrade failed"),
            }
        });
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        *r.headers_mut() = client_headers(resp.headers(), true);
        return r;
    }

    let (up_parts, up_body) = resp.into_parts();
    let mut r = Response::new(Body::new(Counted { inner: up_body, meter, upstream_bound: false, _trail: trail }));
    *r.status_mut() = status;
    *r.headers_mut() = client_headers(&up_parts.headers, false);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::try_from(*k).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_proxy_that_would_shadow_wardgate_or_leave_a_host_half_decided_does_not_start() {
        let gw = |routes: Vec<GatewayRoute>| Gateway { routes, ..Gateway::default() };
        let labs = GatewayRoute::new("labs", "labs.example.org", "/").proxied_to("http://10.0.0.5");
        assert!(
            Proxy::new(&gw(vec![GatewayRoute::new("x", "x.example.org", "/")]), "https://id.example.org")
                .unwrap()
                .is_none()
        );
        assert!(Proxy::new(&gw(vec![labs.clone()]), "https://id.example.org").unwrap().is_some());
        let own = Proxy::new(&gw(vec![labs.clone()]), "https://labs.example.org").err().unwrap();
        assert!(own.contains("own host"), "{own}");
        let half = gw(vec![labs, GatewayRoute::new("labs-admin", "labs.example.org", "/admin")]);
        let err = Proxy::new(&half, "https://id.example.org").err().unwrap();
        assert!(err.contains("labs-admin has no upstream"), "{err}");
    }

    #[test]
    fn the_gateway_cookie_never_reaches_the_application() {
        let v =
            |s: &str| without_gate_cookie(&HeaderValue::from_str(s).unwrap()).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(v("a=1; __Secure-wardgate-gate=tkt; b=2").as_deref(), Some("a=1; b=2"));
        assert_eq!(v("__Secure-wardgate-gate=tkt"), None);
        assert_eq!(v("__Secure-wardgate-gate-x=1").as_deref(), Some("__Secure-wardgate-gate-x=1"));
    }

    #[test]
    fn client_identity_and_hop_by_hop_headers_are_dropped() {
        let target = Target {
            origin: "http://127.0.0.1:1".into(),
            client: Client::builder(TokioExecutor::new()).build(
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(
                        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                            .with_safe_default_protocol_versions()
                            .unwrap()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    )
                    .https_or_http()
                    .enable_http1()
                    .build(),
            ),
            extra: vec![(HeaderName::from_static("x-app-key"), HeaderValue::from_static("k"))],
            timeout: Duration::from_secs(1),
            max_body: 1,
        };
        let allowed = Allowed {
            route: GatewayRoute::new("labs", "labs.example.org", "/"),
            username: "nina".into(),
            correlation_id: "c".into(),
            identity: vec![(HeaderName::from_static("remote-user"), HeaderValue::from_static("nina"))],
        };
        let incoming = map(&[
            ("remote-user", "root"),
            ("Remote-Groups", "admin"),
            ("wardgate-assertion", "forged"),
            ("x-forwarded-for", "6.6.6.6"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "hop"),
            ("transfer-encoding", "chunked"),
            ("x-app-key", "client"),
            ("accept", "text/html"),
            ("cookie", "__Secure-wardgate-gate=t; app=1"),
        ]);
        let ctx = ClientContext {
            ip: Some("192.0.2.1".parse().unwrap()),
            user_agent: None,
            request_id: String::new(),
            device_secret: None,
        };
        let authority: Authority = "labs.example.org".parse().unwrap();
        let out = upstream_headers(&incoming, &allowed, &target, &ctx, &authority, "https", None);
        let all = |n: &str| out.get_all(n).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(all("remote-user"), ["nina"]);
        assert!(all("remote-groups").is_empty() && all("wardgate-assertion").is_empty());
        assert_eq!(all("x-forwarded-for"), ["192.0.2.1"]);
        assert!(all("connection").is_empty() && all("x-secret").is_empty() && all("transfer-encoding").is_empty());
        assert_eq!(all("x-app-key"), ["k"]);
        assert_eq!(all("accept"), ["text/html"]);
        assert_eq!(all("cookie"), ["app=1"]);
        assert_eq!(all("host"), ["labs.example.org"]);
        assert_eq!(all("x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn only_an_explicit_upgrade_is_passed() {
        let ws = map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(upgrade_of(&ws).unwrap(), "websocket");
        assert!(upgrade_of(&map(&[("upgrade", "websocket")])).is_none());
        let answer = map(&[("connection", "upgrade"), ("upgrade", "websocket"), ("sec-websocket-accept", "x")]);
        assert_eq!(client_headers(&answer, true).len(), 3);
        assert_eq!(client_headers(&answer, false).len(), 1);
    }
}
