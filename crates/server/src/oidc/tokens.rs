//! Minting and checking the JWTs this provider issues: ID tokens (OIDC Core §2) and
//! access tokens (RFC 9068, `typ: at+jwt`).

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wardgate_core::identity::User;
use wardgate_core::oidc::{Grant, OidcClient};

use super::Provider;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no signing key for the client's algorithm is available yet")]
    NoKey,
    #[error("token could not be signed: {0}")]
    Sign(String),
}

/// Access-token claims (RFC 9068 §2.2) plus the grant they belong to, so that revoking the
/// grant ends them at once at userinfo and introspection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub roles: Vec<String>,
    pub grant_id: String,
}

/// The algorithm a client's tokens are signed with.
pub fn client_alg(client: &OidcClient) -> jsonwebtoken::Algorithm {
    super::keys::parse_alg(&client.signing_alg).unwrap_or(jsonwebtoken::Algorithm::ES256)
}

fn sign(p: &Provider, client: &OidcClient, typ: Option<&str>, claims: &impl Serialize) -> Result<String, TokenError> {
    let keys = p.keys();
    let key = keys.signing(client_alg(client)).ok_or(TokenError::NoKey)?;
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    header.typ = typ.map(str::to_owned).or(header.typ);
    jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| TokenError::Sign(e.to_string()))
}

pub fn access_token(
    p: &Provider,
    client: &OidcClient,
    grant: &Grant,
    user: Option<&User>,
    now: OffsetDateTime,
) -> Result<(String, i64), TokenError> {
    let ttl = i64::from(client.access_token_ttl_secs);
    let claims = AccessClaims {
        iss: p.issuer.clone(),
        sub: user.map(|u| u.id.clone()).unwrap_or_else(|| client.id.clone()),
        aud: client.id.clone(),
        exp: now.unix_timestamp() + ttl,
        iat: now.unix_timestamp(),
        jti: wardgate_core::token::random_id().map_err(|e| TokenError::Sign(e.to_string()))?,
        client_id: client.id.clone(),
        scope: grant.scopes.join(" "),
        auth_time: grant.auth_time.map(OffsetDateTime::unix_timestamp),
        acr: grant.acr.clone(),
        amr: grant.amr.clone(),
        sid: grant.session_id.clone(),
        // Roles travel in access tokens whenever a granted scope releases them.
        roles: if grant
            .scopes
            .iter()
            .filter_map(|s| p.scope_claims.get(s))
            .flatten()
            .any(|c| c == "roles" || c == "groups")
        {
            user.map(|u| u.roles.clone()).unwrap_or_default()
        } else {
            Vec::new()
        },
        grant_id: grant.id.clone(),
    };
    Ok((sign(p, client, Some("at+jwt"), &claims)?, ttl))
}

/// The claims a scope releases about a person (OIDC Core §5.4), for ID tokens and userinfo.
pub fn person_claims(p: &Provider, user: &User, scopes: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("sub".into(), user.id.clone().into());
    let released = scopes.iter().filter_map(|s| p.scope_claims.get(s)).flatten();
    for claim in released {
        let value: Option<serde_json::Value> = match claim.as_str() {
            "name" => Some(user.display_name.clone().into()),
            "preferred_username" => Some(user.username.as_str().into()),
            "email" => Some(user.email.clone()).filter(|e| !e.is_empty()).map(Into::into),
            "roles" | "groups" => Some(user.roles.clone().into()),
            "employee_id" => user.employee_id.clone().map(Into::into),
            _ => None,
        };
        if let Some(v) = value {
            m.insert(claim.clone(), v);
        }
    }
    m
}

pub fn id_token(
    p: &Provider,
    client: &OidcClient,
    grant: &Grant,
    user: &User,
    nonce: Option<&str>,
    now: OffsetDateTime,
) -> Result<String, TokenError> {
    let mut claims = person_claims(p, user, &grant.scopes);
    claims.insert("iss".into(), p.issuer.clone().into());
    claims.insert("aud".into(), client.id.clone().into());
    claims.insert("azp".into(), client.id.clone().into());
    claims.insert("iat".into(), now.unix_timestamp().into());
    claims.insert("exp".into(), (now + super::ID_TOKEN_TTL).unix_timestamp().into());
    if let Some(t) = grant.auth_time {
        claims.insert("auth_time".into(), t.unix_timestamp().into());
    }
    if let Some(n) = nonce {
        claims.insert("nonce".into(), n.into());
    }
    if let Some(acr) = &grant.acr {
        claims.insert("acr".into(), acr.clone().into());
    }
    if !grant.amr.is_empty() {
        claims.insert("amr".into(), grant.amr.clone().into());
    }
    if let Some(sid) = &grant.session_id {
        claims.insert("sid".into(), sid.clone().into());
    }
    sign(p, client, None, &serde_json::Value::Object(claims))
}

/// An access token this provider issued and that has not expired (the grant's state is
/// the caller's to check).
pub fn verify_access(p: &Provider, token: &str) -> Option<AccessClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some("at+jwt") {
        return None;
    }
    let keys = p.keys();
    let key = keys.by_kid(header.kid.as_deref()?)?;
    let mut v = Validation::new(key.algorithm);
    v.set_issuer(&[&p.issuer]);
    // The audience is the client; every client's tokens are accepted here and the caller
    // decides what the client may see.
    v.validate_aud = false;
    v.leeway = 0;
    jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &v).ok().map(|d| d.claims)
}

/// A back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.4).
pub fn logout_token(
    p: &Provider,
    client: &OidcClient,
    user_id: Option<&str>,
    session_id: &str,
    now: OffsetDateTime,
) -> Result<String, TokenError> {
    let mut claims = serde_json::json!({
        "iss": p.issuer,
        "aud": client.id,
        "iat": now.unix_timestamp(),
        "exp": (now + time::Duration::minutes(2)).unix_timestamp(),
        "jti": wardgate_core::token::random_id().map_err(|e| TokenError::Sign(e.to_string()))?,
        "sid": session_id,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    if let Some(u) = user_id {
        claims["sub"] = u.into();
    }
    sign(p, client, Some("logout+jwt"), &claims)
}

/// Signs with the provider's ES256 key: the gateway's own tokens are read only by
/// Wardgate (gate tickets) or by upstreams that fetch the JWKS (assertions).
fn sign_es256(p: &Provider, typ: &str, claims: &impl Serialize) -> Result<String, TokenError> {
    let keys = p.keys();
    let key = keys.signing(jsonwebtoken::Algorithm::ES256).ok_or(TokenError::NoKey)?;
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| TokenError::Sign(e.to_string()))
}

/// What the gateway cookie carries: the session it stands for. It grants nothing by
/// itself; every check reads the session, so signing out or revocation ends it at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateClaims {
    pub iss: String,
    pub aud: String,
    pub sid: String,
    /// The session's stored digest (base64url), to find it as the session cookie does.
    /// Not a credential: only the session token's holder has its preimage.
    pub sdg: String,
    pub exp: i64,
    pub iat: i64,
}

pub const GATE_TYP: &str = "wardgate-gate+jwt";
pub const GATE_AUDIENCE: &str = "wardgate:gateway";

pub fn gate_ticket(
    p: &Provider,
    session: &wardgate_core::session::Session,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<String, TokenError> {
    use base64::Engine as _;
    let claims = GateClaims {
        iss: p.issuer.clone(),
        aud: GATE_AUDIENCE.to_owned(),
        sid: session.id.clone(),
        sdg: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(session.id_digest),
        exp: until.unix_timestamp(),
        iat: now.unix_timestamp(),
    };
    sign_es256(p, GATE_TYP, &claims)
}

pub fn verify_gate(p: &Provider, token: &str) -> Option<GateClaims> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Some(c) = p.gate_cache.ticket(token, now) {
        return Some(c);
    }
    let claims = verify_gate_signature(p, token)?;
    p.gate_cache.keep_ticket(token, &claims);
    Some(claims)
}

fn verify_gate_signature(p: &Provider, token: &str) -> Option<GateClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some(GATE_TYP) {
        return None;
    }
    let keys = p.keys();
    let key = keys.by_kid(header.kid.as_deref()?)?;
    let mut v = Validation::new(key.algorithm);
    v.set_issuer(&[&p.issuer]);
    v.set_audience(&[GATE_AUDIENCE]);
    v.leeway = 0;
    jsonwebtoken::decode::<GateClaims>(token, &key.decoding, &v).ok().map(|d| d.claims)
}

/// The identity assertion handed to an upstream with every admitted request: short-lived,
/// for that application's host, verifiable with the JWKS.
pub fn gateway_assertion(
    p: &Provider,
    user: &User,
    roles: &[String],
    session: &wardgate_core::session::Session,
    route: &str,
    audience: &str,
    now: OffsetDateTime,
) -> Result<String, TokenError> {
    let acr = wardgate_core::oidc::acr::Acr(session.aal).as_str();
    let amr = session.amr.join(" ");
    let key = super::gate_cache::key(&[
        user.id.as_bytes(),
        user.username.as_str().as_bytes(),
        user.display_name.as_bytes(),
        user.email.as_bytes(),
        roles.join(",").as_bytes(),
        session.id.as_bytes(),
        acr.as_bytes(),
        amr.as_bytes(),
        route.as_bytes(),
        audience.as_bytes(),
    ]);
    let iat = now.unix_timestamp();
    if let Some(a) = p.gate_cache.assertion(&key, iat) {
        return Ok(a);
    }
    let claims = serde_json::json!({
        "iss": p.issuer,
        "aud": audience,
        "sub": user.id,
        "preferred_username": user.username.as_str(),
        "name": user.display_name,
        "email": user.email,
        "roles": roles,
        "acr": acr,
        "amr": session.amr,
        "auth_time": session.created_at.unix_timestamp(),
        "sid": session.id,
        "route": route,
        "iat": iat,
        "exp": iat + 60,
    });
    let a = sign_es256(p, "wardgate-assertion+jwt", &claims)?;
    p.gate_cache.keep_assertion(key, &a, iat);
    Ok(a)
}
