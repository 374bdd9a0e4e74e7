//! The router: every route, and the layers every request passes through.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use wardgate_store::Store;
use wardgate_store::audit_writer::AuditHandle;

use crate::context::TrustedProxies;
use crate::envelope::EnvelopeLayer;
use crate::installation::KeyringCell;
use crate::problem::Problem;
use crate::{api, bootstrap, oidc, ops, pages, telemetry};

/// Everything a request handler needs. Cloned by every extractor of every request, so it
/// is one reference count, not a copy of the strings and handles inside.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub audit: AuditHandle,
    pub keyring: Arc<KeyringCell>,
    pub node_id: String,
    pub clock: fn() -> time::OffsetDateTime,
    /// Enrollment attempts per client address: the link is unguessable, but each attempt
    /// costs an Argon2id hash.
    pub bootstrap_limit: crate::ratelimit::Limit,
    /// Sign-in and enrollment steps per client address (per-source throttling, R5).
    pub login_limit: crate::ratelimit::Limit,
    pub auth: Arc<crate::auth::Auth>,
    /// Where people reach this server, for links it hands out.
    pub base_url: String,
    pub oidc: Arc<crate::oidc::Provider>,
    /// The access policy in force (reloaded when the store's revision moves).
    pub access: Arc<crate::access::Access>,
    /// The protected applications (forward-auth).
    pub gateway: Arc<crate::gateway::Gateway>,
    /// `[governance]`: break-glass rules and alert channels.
    pub governance: Arc<wardgate_core::governance::settings::GovernanceSettings>,
    /// `[scim]`: which roles SCIM groups confer.
    pub scim: Arc<wardgate_core::settings::ScimSettings>,
    /// SCIM requests per client address: a connector syncing thousands of people stays
    /// well inside it, a token guesser does not.
    pub scim_limit: crate::ratelimit::Limit,
}

pub struct RouterOptions {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub trusted_proxies: TrustedProxies,
    /// Adds HSTS; set when this server or its proxy terminates TLS.
    pub tls: bool,
    /// The built-in proxy, when a gateway route has an upstream.
    pub proxy: Option<Arc<crate::gateway::proxy::Proxy>>,
}

pub fn router(state: AppState, opts: RouterOptions) -> Router {
    let proxy_state = opts.proxy.map(|proxy| crate::gateway::proxy::ProxyState {
        app: state.clone(),
        proxy,
        proxies: opts.trusted_proxies.clone(),
    });
    let routes = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/assets/wardgate.css", get(ops::stylesheet))
        .route("/assets/webauthn.js", get(ops::webauthn_script))
        .route("/assets/form_post.js", get(ops::form_post_script))
        .route("/.well-known/openid-configuration", get(oidc::discovery::configuration))
        .route(oidc::JWKS, get(oidc::discovery::jwks))
        .route(oidc::AUTHORIZE, get(oidc::authorize::authorize_get).post(oidc::authorize::authorize_post))
        .route(oidc::TOKEN, post(oidc::token::token))
        .route(oidc::USERINFO, get(oidc::token::userinfo).post(oidc::token::userinfo))
        .route(oidc::REVOKE, post(oidc::token::revoke))
        .route(oidc::INTROSPECT, post(oidc::token::introspect))
        .route("/oidc/consent", post(oidc::consent::decide))
        .route(oidc::LOGOUT, get(oidc::logout::logout).post(oidc::logout::confirm))
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
        .route("/", get(pages::login::index))
        .route("/login", post(pages::login::submit))
        .route("/login/verify", get(pages::login::verify_page).post(pages::login::verify))
        .route("/logout", post(pages::login::logout))
        .route("/signed-out", get(pages::login::signed_out))
        .route("/enroll", get(pages::enroll::open_link))
        .route("/enroll/steps", get(pages::enroll::steps))
        .route("/enroll/passphrase", post(pages::enroll::passphrase))
        .route("/enroll/totp", post(pages::enroll::totp))
        .route("/enroll/totp/confirm", post(pages::enroll::totp_confirm))
        .route("/enroll/finish", post(pages::enroll::finish))
        .route("/recover", get(pages::enroll::open_recovery))
        .route("/recover/finish", post(pages::enroll::finish_recovery))
        .route("/account", get(pages::account::page))
        .route("/account/sessions/revoke", post(pages::account::revoke))
        .route("/account/sessions/revoke-all", post(pages::account::revoke_all))
        .route("/account/recovery-codes", post(pages::account::recovery_codes))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/login", post(api::login::start))
        .route("/api/v1/login/passphrase", post(api::login::passphrase))
        .route("/api/v1/login/totp", post(api::login::totp))
        .route("/api/v1/login/recovery-code", post(api::login::recovery_code))
        .route("/api/v1/login/webauthn/challenge", post(api::login::webauthn_challenge))
        .route("/api/v1/login/webauthn", post(api::login::webauthn))
        .route("/api/v1/logout", post(api::login::logout))
        .route("/api/v1/enroll", post(api::enroll::begin))
        .route("/api/v1/enroll/passphrase", post(api::enroll::passphrase))
        .route("/api/v1/enroll/totp", post(api::enroll::totp))
        .route("/api/v1/enroll/totp/confirm", post(api::enroll::totp_confirm))
        .route("/api/v1/enroll/webauthn/challenge", post(api::enroll::webauthn_challenge))
        .route("/api/v1/enroll/webauthn", post(api::enroll::webauthn))
        .route("/api/v1/enroll/finish", post(api::enroll::finish))
        .route("/api/v1/authorize", post(crate::access::authorize::authorize))
        .route("/gate/check", axum::routing::any(crate::gateway::check::check))
        .route("/gate/start", get(crate::gateway::start::start))
        .route("/api/v1/me", get(api::me::me))
        .route("/api/v1/breakglass", post(api::breakglass::open))
        .route("/api/v1/breakglass/{id}/end", post(api::breakglass::end))
        .route("/api/v1/me/sessions/{id}", axum::routing::delete(api::me::revoke_session))
        .route("/api/v1/me/sessions/revoke-all", post(api::me::revoke_all))
        .route("/api/v1/me/recovery-codes", post(api::me::regenerate_recovery_codes))
        .route("/api/v1/me/passphrase", post(api::me::passphrase))
        .route("/api/v1/me/factors", post(api::me::add_factor))
        .route("/api/v1/me/factors/save", post(api::me::save_factors))
        .route("/api/v1/me/factors/{id}", axum::routing::delete(api::me::remove_factor))
        .route("/api/v1/me/factors/{id}/replace", post(api::me::replace_factor))
        .route("/api/v1/me/factors/{id}/replace/challenge", post(api::me::replace_challenge))
        .route("/account/factors/add", post(pages::account::add_factor))
        .route("/account/factors/save", post(pages::account::save_factors))
        .route("/account/factors/remove", post(pages::account::remove_factor))
        .route("/account/factors/replace", post(pages::account::replace_factor))
        .route("/account/passphrase", post(pages::account::passphrase))
        .route("/account/breakglass", post(pages::account::breakglass))
        .route("/account/reviews", get(pages::reviews::page))
        .route("/account/reviews/decide", post(pages::reviews::decide))
        .route("/api/v1/admin/users", get(api::admin::list_users).post(api::admin::invite))
        .route("/api/v1/admin/users/{username}", get(api::admin::show_user).delete(api::admin::delete_user))
        .route("/api/v1/admin/users/{username}/{action}", post(api::admin::user_action))
        .route("/api/v1/admin/users/{username}/roles", post(api::admin_roles::assign_role))
        .route("/api/v1/admin/users/{username}/roles/{role}", axum::routing::delete(api::admin_roles::remove_role))
        .route("/api/v1/admin/roles", get(api::admin_roles::list_roles))
        .route("/api/v1/admin/users/{username}/sessions", get(api::admin::sessions).delete(api::admin::revoke_sessions))
        .route("/api/v1/admin/users/{username}/sessions/{id}", axum::routing::delete(api::admin::revoke_session))
        .route("/api/v1/admin/users/{username}/factors/{id}", axum::routing::delete(api::admin::remove_factor))
        .route("/api/v1/admin/clients", get(api::admin::list_clients).post(api::admin::add_client))
        .route("/api/v1/admin/clients/{id}", get(api::admin::show_client).delete(api::admin::delete_client))
        .route("/api/v1/admin/clients/{id}/rotate-secret", post(api::admin::rotate_client_secret))
        .nest(crate::scim::BASE, crate::scim::routes())
        .route(
            "/api/v1/users/{username}/proofing",
            get(api::lifecycle::list_proofing).post(api::lifecycle::record_proofing),
        )
        .route("/api/v1/users/{username}/factors/{id}/expiry", post(api::lifecycle::expire_factor))
        .route("/api/v1/factors", get(api::lifecycle::factors))
        .route("/api/v1/recovery", get(api::lifecycle::list_recovery).post(api::lifecycle::open_recovery))
        .route("/api/v1/recovery/{id}/approve", post(api::lifecycle::approve_recovery))
        .route("/api/v1/recovery/{id}/deny", post(api::lifecycle::deny_recovery))
        .route("/api/v1/recover", post(api::lifecycle::recover))
        .route("/api/v1/recover/finish", post(api::lifecycle::recover_finish))
        .route("/bootstrap", get(bootstrap::page).post(bootstrap::submit_form))
        .route("/api/v1/bootstrap", axum::routing::post(bootstrap::submit_json))
        .fallback(|| async { Problem::not_found() })
        .method_not_allowed_fallback(|| async {
            Problem::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
        })
        .with_state(state)
        .layer(telemetry::TrackLayer);
    // Around the router once, not on every route: see `envelope`.
    let inner = tower::ServiceBuilder::new()
        .layer(EnvelopeLayer::new(opts.trusted_proxies, opts.tls))
        .map_response(axum::response::IntoResponse::into_response)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            use axum::response::IntoResponse;
            Problem::internal().into_response()
        }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            opts.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .service(routes);
    // Outermost: requests for a proxied application never meet Wardgate's own layers
    // (body limit, timeout, CSP), which would break the application.
    let stack = tower::ServiceBuilder::new()
        .option_layer(proxy_state.map(|st| middleware::from_fn_with_state(st, crate::gateway::proxy::dispatch)))
        .service(inner);
    Router::new().fallback_service(stack)
}
