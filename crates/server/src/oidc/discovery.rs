//! `/.well-known/openid-configuration` (OIDC Discovery 1.0, RFC 8414) and the JWKS.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use wardgate_core::oidc::Acr;

use super::{AUTHORIZE, INTROSPECT, JWKS, LOGOUT, REVOKE, TOKEN, USERINFO};
use crate::app::AppState;

pub async fn configuration(State(app): State<AppState>) -> Response {
    let p = &app.oidc;
    let mut scopes = vec!["openid".to_owned(), "offline_access".to_owned()];
    scopes.extend(p.scope_claims.keys().cloned());
    let mut claims: Vec<&str> =
        vec!["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp"];
    claims.extend(wardgate_core::settings::OidcSettings::CLAIMS);
    let doc = serde_json::json!({
        "issuer": p.issuer,
        "authorization_endpoint": p.url(AUTHORIZE),
        "token_endpoint": p.url(TOKEN),
        "userinfo_endpoint": p.url(USERINFO),
        "jwks_uri": p.url(JWKS),
        "revocation_endpoint": p.url(REVOKE),
        "introspection_endpoint": p.url(INTROSPECT),
        "end_session_endpoint": p.url(LOGOUT),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": super::keys::ALGORITHMS.map(super::keys::alg_name),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "RS256", "PS256", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "claims_supported": claims,
        "acr_values_supported": Acr::ALL.map(Acr::as_str),
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(doc)).into_response()
}

pub async fn jwks(State(app): State<AppState>) -> Response {
    let keys = app.oidc.keys();
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(keys.jwks.clone())).into_response()
}
