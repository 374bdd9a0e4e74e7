//! The router: every route, and the layers every request passes through.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware;
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;
use wardgate_store::Store;
use wardgate_store::audit_writer::AuditHandle;

use crate::context::TrustedProxies;
use crate::installation::KeyringCell;
use crate::problem::Problem;
use crate::{bootstrap, context, ops, telemetry};

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub audit: AuditHandle,
    pub keyring: Arc<KeyringCell>,
    pub node_id: String,
    pub clock: fn() -> time::OffsetDateTime,
    /// Enrollment attempts per client address: the link is unguessable, but each attempt
    /// costs an Argon2id hash.
    pub bootstrap_limit: crate::ratelimit::Limit,
}

pub struct RouterOptions {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub trusted_proxies: TrustedProxies,
    /// Adds HSTS; set when this server or its proxy terminates TLS.
    pub tls: bool,
}

/// No scripts, no frames, no third parties; forms post only to us.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: AppState, opts: RouterOptions) -> Router {
    let proxies = opts.trusted_proxies.clone();
    let mut app = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/assets/wardgate.css", get(ops::stylesheet))
        .route("/bootstrap", get(bootstrap::page).post(bootstrap::submit_form))
        .route("/api/v1/bootstrap", axum::routing::post(bootstrap::submit_json))
        .fallback(|| async { Problem::not_found() })
        .method_not_allowed_fallback(|| async {
            Problem::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
        })
        .with_state(state)
        .layer(middleware::from_fn(telemetry::track))
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            opts.request_timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            use axum::response::IntoResponse;
            Problem::internal().into_response()
        }))
        .layer(middleware::from_fn(crate::problem::ensure_problem_body))
        .layer(middleware::from_fn(context::assign_request_id))
        .layer(axum::Extension(proxies))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    if opts.tls {
        app = app.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ));
    }
    app
}
