//! The token endpoint (authorization code with PKCE, refresh with rotation, client
//! credentials), userinfo, revocation (RFC 7009) and introspection (RFC 7662).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::oidc::{AuthCode, Grant, OidcClient, RefreshToken, pkce};
use wardgate_core::token;
use wardgate_store::batch::{Write, Written};
use wardgate_store::{CodeRedemption, RefreshHolder, Rotation, StoreError};

use super::tokens;
use crate::app::AppState;
use crate::context::ClientContext;

/// An OAuth error response (RFC 6749 §5.2). Never cached.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"wardgate\""));
    }
    resp
}

fn invalid_grant(why: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "token endpoint failed");
    oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again shortly")
}

/// Parameters of the token, revocation and introspection endpoints. Unknown parameters are
/// ignored, as RFC 6749 §3.2 requires.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    token: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// The form body, or an OAuth error (not a problem document: OAuth clients parse these).
pub struct OAuthForm(pub TokenForm);

impl<S: Send + Sync> axum::extract::FromRequest<S> for OAuthForm {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Form::<TokenForm>::from_request(req, state).await.map(|axum::Form(f)| OAuthForm(f)).map_err(|_| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            )
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().ok().map(|c| c.into_owned())
}

/// Client authentication (RFC 6749 §2.3.1): `client_secret_basic`, `client_secret_post`, or
/// — for public clients — the `client_id` alone. A confidential client must authenticate.
pub async fn authenticate(app: &AppState, headers: &HeaderMap, form: &TokenForm) -> Result<OidcClient, Response> {
    let unauthorized = || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    if form.client_assertion.is_some() || form.client_assertion_type.is_some() {
        return assertion_client(app, form).await.ok_or_else(unauthorized);
    }
    let basic =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")).map(
            |b| {
                let raw = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
                let raw = String::from_utf8(raw).ok()?;
                let (id, secret) = raw.split_once(':')?;
                Some((percent_decode(id)?, percent_decode(secret)?))
            },
        );
    let (id, secret) = match (basic, &form.client_id, &form.client_secret) {
        (Some(Some((id, secret))), _, None) => (id, Some(secret)),
        (Some(None), _, _) => return Err(unauthorized()),
        (Some(Some(_)), _, Some(_)) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method",
            ));
        }
        (None, Some(id), secret) => (id.clone(), secret.clone()),
        (None, None, _) => return Err(unauthorized()),
    };
    let client = app.oidc.client(&*app.store, &id).await.map_err(server_error)?.ok_or_else(unauthorized)?;
    match (&client.secret_digest, secret) {
        (Some(stored), Some(given)) if token::ct_eq(stored, &token::digest(&given)) => Ok(client),
        (None, None) => Ok(client),
        _ => Err(unauthorized()),
    }
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9): a JWT the client signed with a key it
/// registered, naming itself as issuer and subject and this server as audience, used once.
async fn assertion_client(app: &AppState, form: &TokenForm) -> Option<OidcClient> {
    if form.client_assertion_type.as_deref() != Some(JWT_BEARER) || form.client_secret.is_some() {
        return None;
    }
    let assertion = form.client_assertion.as_deref()?;
    let header = jsonwebtoken::decode_header(assertion).ok()?;
    use jsonwebtoken::Algorithm::{ES256, ES384, EdDSA, PS256, RS256};
    if !matches!(header.alg, ES256 | ES384 | RS256 | PS256 | EdDSA) {
        return None;
    }
    // Which client? The form may say; otherwise the (not yet verified) subject does, and
    // the signature check below settles it.
    let claimed = match &form.client_id {
        Some(id) => id.clone(),
        None => {
            let payload = assertion.split('.').nth(1)?;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
            let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
            v.get("sub")?.as_str()?.to_owned()
        }
    };
    let client = app.oidc.client(&*app.store, &claimed).await.ok()??;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(client.jwks.as_deref()?).ok()?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[&client.id]);
    v.sub = Some(client.id.clone());
    v.set_audience(&[app.oidc.url(super::TOKEN), app.oidc.issuer.clone()]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.leeway = 30;
    let now = (app.clock)().unix_timestamp();
    for jwk in set.keys.iter().filter(|k| header.kid.is_none() || k.common.key_id == header.kid) {
        let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(jwk) else { continue };
        let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v) else { continue };
        let exp = data.claims.get("exp")?.as_i64()?;
        let jti = data.claims.get("jti")?.as_str()?;
        // A short-lived proof, used once.
        if exp - now > 600 || !app.oidc.first_use_of_assertion(&format!("{}:{jti}", client.id), exp, now) {
            return None;
        }
        return Some(client);
    }
    None
}

fn token_response(body: serde_json::Value) -> Response {
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn event(app: &AppState, ctx: &ClientContext, t: &'static str, outcome: Outcome, client: &OidcClient) -> AuditEvent {
    AuditEvent::known((app.clock)(), t, outcome)
        .actor(format!("client:{}", client.id))
        .client_ip(ctx.ip)
        .user_agent(ctx.user_agent.clone())
        .detail("client_id", client.id.clone())
}

fn new_refresh(
    grant_id: &str,
    client: &OidcClient,
    now: OffsetDateTime,
) -> Result<(String, RefreshToken), token::RandomError> {
    let (secret, key) = token::generate_ordered(now)?;
    let rt = RefreshToken {
        digest: key,
        grant_id: grant_id.to_owned(),
        created_at: now,
        expires_at: now + Duration::seconds(i64::from(client.refresh_token_ttl_secs)),
        used_at: None,
    };
    Ok((secret, rt))
}

pub async fn token(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Response {
    if let Err(limited) = app.login_limit.check(ctx.ip) {
        return limited.into_response();
    }
    let client = match authenticate(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = super::keys::ready(&app, tokens::client_alg(&client)).await {
        return server_error(e);
    }
    match form.grant_type.as_deref() {
        Some("authorization_code") => code_grant(&app, &ctx, &client, &form).await,
        Some("refresh_token") => refresh_grant(&app, &ctx, &client, &form).await,
        Some("client_credentials") => client_credentials(&app, &ctx, &client, &form).await,
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "use authorization_code, refresh_token or client_credentials",
        ),
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
}

/// What a token request must match in the code it presents (RFC 6749 §4.1.3, RFC 7636 §4.6).
fn check_code(client: &OidcClient, form: &TokenForm, code: &AuthCode, now: OffsetDateTime) -> Option<Response> {
    if code.expires_at <= now {
        return Some(invalid_grant("the code is unknown or expired"));
    }
    if code.client_id != client.id {
        return Some(invalid_grant("the code was issued to another client"));
    }
    if form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Some(invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&code.code_challenge, form.code_verifier.as_deref()) {
        (Some(ch), Some(v)) if pkce::verify(v, ch) => None,
        (Some(_), _) => Some(invalid_grant("code_verifier is missing or does not match the code_challenge")),
        (None, Some(_)) => {
            Some(invalid_grant("code_verifier given but the authorization request had no code_challenge"))
        }
        (None, None) => None,
    }
}

async fn code_grant(app: &AppState, ctx: &ClientContext, client: &OidcClient, form: &TokenForm) -> Response {
    let now = (app.clock)();
    let Some(digest) = form.code.as_deref().and_then(token::ordered_key) else {
        return invalid_grant("the code is missing or malformed");
    };
    // The request is checked against the code before it is spent, so that the redemption
    // and the grant it buys are one write and one commit. A code spent before is not
    // checked: its redemption tells the replay, atomically, and what it bought is revoked.
    // Read with its account in one query: each read is a round trip to a database thread.
    let (code, user) = match app.store.auth_code_with_user(&digest).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid_grant("the code is unknown or expired"),
        Err(e) => return server_error(e),
    };
    let (write, issue) = if code.grant_id.is_none() {
        if let Some(refused) = check_code(client, form, &code, now) {
            return refused;
        }
        let user = match user {
            Some(u) if u.may_sign_in() => u,
            _ => return invalid_grant("the account is no longer active"),
        };
        let grant = Grant {
            id: match token::ordered_id(now) {
                Ok(id) => id,
                Err(e) => return server_error(e),
            },
            client_id: client.id.clone(),
            user_id: Some(user.id.clone()),
            session_id: Some(code.session_id.clone()),
            scopes: code.scopes.clone(),
            acr: Some(code.acr.clone()),
            amr: code.amr.clone(),
            auth_time: Some(code.auth_time),
            correlation_id: code.correlation_id.clone(),
            created_at: now,
            revoked_at: None,
        };
        let (refresh_secret, refresh) = match new_refresh(&grant.id, client, now) {
            Ok(r) => r,
            Err(e) => return server_error(e),
        };
        let e = event(app, ctx, types::OIDC_GRANT_ISSUED, Outcome::Success, client)
            .subject(user.username.as_str())
            .correlation_id(code.correlation_id.clone())
            .detail("grant_id", grant.id.clone())
            .detail("scope", grant.scopes.join(" "))
            .detail("acr", code.acr.clone());
        let event = code.amr.iter().fold(e, |e, a| e.factor(a.clone()));
        let issue = (user, grant.clone(), refresh_secret);
        // Checked just now: the store may spend it without reading it again.
        (Write::RedeemIntoGrant { digest, now, grant, refresh, event, read: Some(code.clone()) }, Some(issue))
    } else {
        let grant_id = match token::random_id() {
            Ok(id) => id,
            Err(e) => return server_error(e),
        };
        (Write::RedeemCode { digest, now, grant_id }, None)
    };
    let redeemed = match app.audit.write(write).await {
        Ok(Written::Redemption(r)) => r,
        Ok(other) => return server_error(format!("unexpected outcome of a code redemption: {other:?}")),
        Err(e) => return server_error(e),
    };
    let (user, grant, refresh_secret) = match (redeemed, issue) {
        (CodeRedemption::Fresh(_), Some(issue)) => issue,
        (CodeRedemption::Reused(c), _) => {
            // RFC 6749 §4.1.2: a code used twice was intercepted; what it bought is revoked.
            let e = event(app, ctx, types::OIDC_CODE_REUSED, Outcome::Denied, client)
                .subject(c.user_id.clone())
                .correlation_id(c.correlation_id.clone())
                .reason("authorization code presented a second time; its grant is revoked");
            if let Some(g) = &c.grant_id
                && let Err(err) = app.store.revoke_grant(g, now, &e.clone().detail("grant_id", g.clone())).await
            {
                return server_error(err);
            }
            return invalid_grant("the code was already used");
        }
        // Spent codes never become fresh again; expired ones are unknown.
        (CodeRedemption::Fresh(_) | CodeRedemption::Unknown, _) => {
            return invalid_grant("the code is unknown or expired");
        }
    };
    let (access, ttl) = match tokens::access_token(&app.oidc, client, &grant, Some(&user), now) {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    let id_token = match tokens::id_token(&app.oidc, client, &grant, &user, code.nonce.as_deref(), now) {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    token_response(serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "id_token": id_token,
        "refresh_token": refresh_secret,
        "scope": grant.scopes.join(" "),
    }))
}

async fn refresh_grant(app: &AppState, ctx: &ClientContext, client: &OidcClient, form: &TokenForm) -> Response {
    let now = (app.clock)();
    let Some(digest) = form.refresh_token.as_deref().and_then(token::ordered_key) else {
        return invalid_grant("the refresh token is missing or malformed");
    };
    // Whose token is it? A client may only use its own. Read with the grant's account and
    // session in one query: each read is a round trip to a database thread.
    let holder = match app.store.refresh_holder(&digest).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid_grant("the refresh token is unknown"),
        Err(e) => return server_error(e),
    };
    let owner = holder.grant;
    if owner.client_id != client.id {
        return invalid_grant("the refresh token was issued to another client");
    }
    // Checked before the token is spent, so that a refused refresh leaves it usable and a
    // retry is not mistaken for theft. Without `offline_access`, tokens live only as long
    // as the session they came from.
    let offline = owner.scopes.iter().any(|s| s == "offline_access");
    if let (Some(uid), Some(_)) = (&owner.user_id, &owner.session_id)
        && !offline
    {
        let live = holder.session.as_ref().is_some_and(|s| {
            &s.user_id == uid && s.state(&app.auth.sessions, now) == wardgate_core::session::SessionState::Active
        });
        if !live {
            return invalid_grant("the session these tokens came from has ended; sign in again");
        }
    }
    let user = match (&owner.user_id, holder.user) {
        (None, _) => None,
        (Some(_), Some(u)) if u.may_sign_in() => Some(u),
        (Some(_), _) => return invalid_grant("the account is no longer active"),
    };
    let (next_secret, next) = match new_refresh(&owner.id, client, now) {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    let reuse = event(app, ctx, types::OIDC_REFRESH_REUSED, Outcome::Denied, client)
        .correlation_id(owner.correlation_id.clone())
        .detail("grant_id", owner.id.clone())
        .reason("a refresh token was presented after it had been exchanged: the grant is revoked");
    let reuse = match &owner.user_id {
        Some(u) => reuse.subject(u.clone()),
        None => reuse,
    };
    let rotated = event(app, ctx, types::OIDC_TOKEN_REFRESHED, Outcome::Success, client)
        .correlation_id(owner.correlation_id.clone())
        .detail("grant_id", owner.id.clone());
    // Live when read: the store may spend it without reading it again.
    let token = &holder.token;
    let live = (token.used_at.is_none() && token.expires_at > now && owner.revoked_at.is_none()).then(|| owner.clone());
    let write = Write::RotateRefresh { digest, next, now, rotated, reused: reuse, live };
    let grant = match app.audit.write(write).await {
        Ok(Written::Rotation(Rotation::Rotated(g))) => g,
        Ok(Written::Rotation(Rotation::Reused(_))) => {
            return invalid_grant("the refresh token was already used; the grant is revoked");
        }
        Ok(Written::Rotation(Rotation::Unknown)) => return invalid_grant("the refresh token is expired or revoked"),
        Ok(other) => return server_error(format!("unexpected outcome of a refresh: {other:?}")),
        Err(e) => return server_error(e),
    };
    let (access, ttl) = match tokens::access_token(&app.oidc, client, &grant, user.as_ref(), now) {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    let mut body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": next_secret,
        "scope": grant.scopes.join(" "),
    });
    if let Some(u) = &user
        && grant.scopes.iter().any(|s| s == "openid")
    {
        match tokens::id_token(&app.oidc, client, &grant, u, None, now) {
            Ok(t) => body["id_token"] = t.into(),
            Err(e) => return server_error(e),
        }
    }
    token_response(body)
}

async fn client_credentials(app: &AppState, ctx: &ClientContext, client: &OidcClient, form: &TokenForm) -> Response {
    if client.is_public() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "public clients cannot use client_credentials",
        );
    }
    let now = (app.clock)();
    let requested: Vec<String> = form.scope.as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect();
    if let Some(bad) = requested.iter().find(|s| !client.scopes.contains(s) || *s == "openid") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("scope {bad:?} is not allowed for this client"),
        );
    }
    let grant = Grant {
        id: match token::ordered_id(now) {
            Ok(id) => id,
            Err(e) => return server_error(e),
        },
        client_id: client.id.clone(),
        user_id: None,
        session_id: None,
        scopes: requested,
        acr: None,
        amr: Vec::new(),
        auth_time: None,
        correlation_id: ctx.request_id.clone(),
        created_at: now,
        revoked_at: None,
    };
    let e = event(app, ctx, types::OIDC_GRANT_ISSUED, Outcome::Success, client)
        .correlation_id(ctx.request_id.clone())
        .detail("grant_id", grant.id.clone())
        .detail("grant_type", "client_credentials")
        .detail("scope", grant.scopes.join(" "));
    if let Err(err) = app.audit.write(Write::InsertGrant { grant: grant.clone(), refresh: None, event: e }).await {
        return server_error(err);
    }
    match tokens::access_token(&app.oidc, client, &grant, None, now) {
        Ok((access, ttl)) => token_response(serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": grant.scopes.join(" "),
        })),
        Err(e) => server_error(e),
    }
}

/// The live grant behind an access token, if the token is ours, unexpired and not revoked.
pub(crate) async fn live_access(
    app: &AppState,
    bearer: &str,
) -> Result<Option<(tokens::AccessClaims, Grant)>, StoreError> {
    let Some(claims) = tokens::verify_access(&app.oidc, bearer) else { return Ok(None) };
    match app.store.grant(&claims.grant_id).await? {
        Some(g) if g.revoked_at.is_none() => Ok(Some((claims, g))),
        _ => Ok(None),
    }
}

pub async fn userinfo(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let invalid = || {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        r
    };
    let Some(bearer) = bearer else { return invalid() };
    let (claims, grant) = match live_access(&app, bearer.trim()).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid(),
        Err(e) => return server_error(e),
    };
    if !grant.scopes.iter().any(|s| s == "openid") {
        let mut r = StatusCode::FORBIDDEN.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"insufficient_scope\", scope=\"openid\""),
        );
        return r;
    }
    let user = match app.store.user_by_id(&claims.sub).await {
        Ok(Some(u)) if u.may_sign_in() => u,
        Ok(_) => return invalid(),
        Err(e) => return server_error(e),
    };
    token_response(serde_json::Value::Object(tokens::person_claims(&app.oidc, &user, &grant.scopes)))
}

/// RFC 7009: always 200, whether or not the token was known, so nothing is learnt.
pub async fn revoke(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Response {
    let client = match authenticate(&app, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(t) = form.token.as_deref() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let found = match token::ordered_key(t) {
        Some(key) => app.store.refresh_token(&key).await,
        None => Ok(None),
    };
    let grant = match found {
        Ok(Some((_, g))) => Some(g),
        Ok(None) => match live_access(&app, t).await {
            Ok(found) => found.map(|(_, g)| g),
            Err(e) => return server_error(e),
        },
        Err(e) => return server_error(e),
    };
    if let Some(g) = grant.filter(|g| g.client_id == client.id) {
        let e = event(&app, &ctx, types::OIDC_GRANT_REVOKED, Outcome::Success, &client)
            .correlation_id(g.correlation_id.clone())
            .detail("grant_id", g.id.clone())
            .reason("revoked by the client (RFC 7009)");
        if let Err(err) = app.store.revoke_grant(&g.id, (app.clock)(), &e).await {
            return server_error(err);
        }
    }
    token_response(serde_json::json!({}))
}

/// Tokens of a disabled or deleted account are inactive, whatever their expiry.
async fn account_active(app: &AppState, user_id: Option<&str>) -> bool {
    match user_id {
        None => true,
        Some(id) => matches!(app.store.user_by_id(id).await, Ok(Some(u)) if u.may_sign_in()),
    }
}

/// RFC 7662, for resource servers registered as confidential clients.
pub async fn introspect(State(app): State<AppState>, headers: HeaderMap, OAuthForm(form): OAuthForm) -> Response {
    let client = match authenticate(&app, &headers, &form).await {
        Ok(c) if !c.is_public() => c,
        Ok(_) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "introspection needs a confidential client",
            );
        }
        Err(r) => return r,
    };
    let _ = client;
    let Some(t) = form.token.as_deref() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let now = (app.clock)();
    if let Ok(Some((claims, grant))) = live_access(&app, t).await
        && account_active(&app, grant.user_id.as_deref()).await
    {
        let mut v = serde_json::to_value(&claims).unwrap_or_default();
        v["active"] = true.into();
        v["token_type"] = "access_token".into();
        return token_response(v);
    }
    let holder = match token::ordered_key(t) {
        Some(key) => app.store.refresh_holder(&key).await,
        None => Ok(None),
    };
    match holder {
        Ok(Some(RefreshHolder { token: rt, grant: g, user, .. }))
            if rt.used_at.is_none()
                && rt.expires_at > now
                && g.revoked_at.is_none()
                && (g.user_id.is_none() || user.as_ref().is_some_and(wardgate_core::identity::User::may_sign_in)) =>
        {
            token_response(serde_json::json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": g.client_id,
                "sub": g.user_id.clone().unwrap_or_else(|| g.client_id.clone()),
                "scope": g.scopes.join(" "),
                "exp": rt.expires_at.unix_timestamp(),
                "iat": rt.created_at.unix_timestamp(),
                "iss": app.oidc.issuer,
            }))
        }
        Ok(_) => token_response(serde_json::json!({"active": false})),
        Err(e) => server_error(e),
    }
}
