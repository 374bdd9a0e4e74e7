//! The OpenID Connect provider against an independent client library (`openidconnect`,
//! the Rust ecosystem's certified-profile client): discovery, code flow with PKCE, ID-token
//! signature through the JWKS, userinfo, refresh, introspection, revocation — and the
//! negative cases, each answered with the protocol's error and never a redirect to an
//! address the client did not register.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, RevocationUrl, Scope, TokenIntrospectionResponse, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wardgate_core::oidc::AuthCode;
use wardgate_core::settings::Settings;
use wardgate_server::Node;
use wardgate_server::clients::{Clients, NewClient};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";
const BYE: &str = "http://127.0.0.1:9/signed-out";

thread_local! {
    /// The development certificate of the provider under test, trusted by every client here.
    static TLS: std::cell::RefCell<Option<rustls::ClientConfig>> = const { std::cell::RefCell::new(None) };
}

fn https_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = TLS.with(|t| t.borrow().clone()).expect("provider started");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

fn trust(cert: &std::path::Path) {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TLS.with(|t| *t.borrow_mut() = Some(config));
}

/// The library's HTTP calls, made with reqwest (the library is built without its own).
async fn http(req: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = https_client();
    let (parts, body) = req.into_parts();
    let mut r = client.request(parts.method, parts.uri.to_string()).body(body);
    for (k, v) in &parts.headers {
        r = r.header(k, v);
    }
    let resp = r.send().await?;
    let mut out = http_response(resp.status().as_u16());
    *out.headers_mut() = resp.headers().clone();
    *out.body_mut() = resp.bytes().await?.to_vec();
    Ok(out)
}

fn http_response(status: u16) -> openidconnect::HttpResponse {
    let mut r = openidconnect::HttpResponse::new(Vec::new());
    *r.status_mut() = openidconnect::http::StatusCode::from_u16(status).unwrap_or_default();
    r
}

pub(crate) struct Provider {
    pub(crate) node: Node,
    pub(crate) browser: reqwest::Client,
    /// The administrator's session cookie (`name=value`).
    pub(crate) session: String,
    _dir: tempfile::TempDir,
}

/// A provider with one administrator signed in (session cookie in hand), enrolled through
/// the API with an authenticator app, and one confidential client.
async fn provider() -> (Provider, String, String) {
    provider_with(|_| {}).await
}

async fn provider_with(tune: impl FnOnce(&mut Settings)) -> (Provider, String, String) {
    provider_at(wardgate_server::node::system_clock, tune).await
}

/// [`provider_with`] on a node that reads the time from `clock`, which a test may move on.
pub(crate) async fn provider_at(
    clock: fn() -> time::OffsetDateTime,
    tune: impl FnOnce(&mut Settings),
) -> (Provider, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    tune(&mut settings);
    settings.server.listen = "127.0.0.1:0".into();
    // HTTPS, as in production: the client library refuses some endpoints over plain HTTP.
    settings.server.dev_tls = true;
    let node = Node::start_with_clock(settings, clock).await.unwrap();
    trust(node.dev_cert.as_deref().unwrap());
    let base = node.base_url.clone();
    let browser = https_client();
    let post = |path: &str, body: Value| browser.post(format!("{base}{path}")).json(&body).send();
    let token = node.bootstrap_url.clone().unwrap().split("token=").nth(1).unwrap().to_owned();
    let created: Value = post(
        "/api/v1/bootstrap",
        json!({"token": token, "username": "rsmith", "display_name": "Rita Smith", "passphrase": "tidal cobalt lantern orchard"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let begun: Value =
        post("/api/v1/enroll", json!({"token": created["enrollment_token"]})).await.unwrap().json().await.unwrap();
    let flow = begun["flow"].as_str().unwrap().to_owned();
    let setup: Value = post("/api/v1/enroll/totp", json!({"flow": flow})).await.unwrap().json().await.unwrap();
    let secret = wardgate_core::factors::totp::secret_from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let code =
        wardgate_core::factors::totp::code_at(Default::default(), &secret, time::OffsetDateTime::now_utc()).unwrap();
    post("/api/v1/enroll/totp/confirm", json!({"flow": flow, "code": code})).await.unwrap();
    let done = post("/api/v1/enroll/finish", json!({"flow": flow})).await.unwrap();
    let session = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-wardgate-session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap();
    let clients = Clients::new(&*node.store, "operator:test", time::OffsetDateTime::now_utc());
    let (client, secret) = clients
        .add(NewClient {
            name: "EHR".into(),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![BYE.into()],
            scopes: vec!["profile".into(), "email".into(), "roles".into(), "ehr".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    (Provider { node, browser, session, _dir: dir }, client.id, secret.unwrap())
}

impl Provider {
    /// The CSRF token of the administrator's session.
    pub(crate) async fn csrf(&self) -> String {
        let me: Value = self
            .browser
            .get(format!("{}/api/v1/me", self.node.base_url))
            .header("cookie", &self.session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        me["csrf_token"].as_str().unwrap().to_owned()
    }

    /// What the browser gets from the authorization endpoint: the `Location` it is sent to.
    pub(crate) async fn authorize(&self, url: &str) -> (StatusCode, Option<String>, String) {
        let resp = self.browser.get(url).header("cookie", &self.session).send().await.unwrap();
        let status = resp.status();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (status, location, resp.text().await.unwrap_or_default())
    }

    async fn audit_types(&self) -> Vec<String> {
        self.node.store.audit_records(0, 100_000).await.unwrap().into_iter().map(|r| r.event_type).collect()
    }
}

/// A code for `client` from the signed-in session, asked for with PKCE (S256) through
/// the client library, and the verifier that redeems it.
async fn pkce_code<D, I, R, T, U>(
    p: &Provider,
    client: &CoreClient<openidconnect::EndpointSet, D, I, R, T, U>,
) -> (String, openidconnect::PkceCodeVerifier)
where
    D: openidconnect::EndpointState,
    I: openidconnect::EndpointState,
    R: openidconnect::EndpointState,
    T: openidconnect::EndpointState,
    U: openidconnect::EndpointState,
{
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let location = p.authorize(url.as_str()).await.1.expect("a redirect with the code");
    (query_param(&location, "code").expect("a code"), verifier)
}

/// A code as the store keeps it, 43 characters under its digest (what releases before
/// time-ordered keys issued), made at `at` for a minute, bound to `challenge`.
fn stored_code(
    code: &str,
    client_id: &str,
    user_id: &str,
    challenge: &PkceCodeChallenge,
    at: time::OffsetDateTime,
) -> AuthCode {
    AuthCode {
        digest: wardgate_core::token::digest(code),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        session_id: "s".into(),
        redirect_uri: REDIRECT.into(),
        code_challenge: Some(challenge.as_str().to_owned()),
        nonce: None,
        scopes: vec!["openid".into()],
        acr: "urn:wardgate:aal2".into(),
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        auth_time: at,
        correlation_id: "c".into(),
        created_at: at,
        expires_at: at + time::Duration::seconds(60),
        grant_id: None,
    }
}

pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_standard_client_library_completes_the_code_flow_and_manages_its_tokens() {
    let (p, client_id, secret) = provider().await;
    let issuer = openidconnect::IssuerUrl::new(p.node.base_url.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.expect("discovery and JWKS");
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
            .set_revocation_url(RevocationUrl::new(format!("{}/oidc/revoke", p.node.base_url)).unwrap())
            .set_introspection_url(IntrospectionUrl::new(format!("{}/oidc/introspect", p.node.base_url)).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let (status, location, _) = p.authorize(url.as_str()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(query_param(&location, "iss").as_deref(), Some(p.node.base_url.as_str()));
    let code = query_param(&location, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("an ID token");
    // Signature checked against the JWKS, plus iss, aud, exp and nonce.
    let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("a valid ID token");
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("rsmith"));
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("urn:wardgate:aal2"));
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|a| a.to_string()).collect();
    assert_eq!(amr, ["pwd", "otp", "mfa"]);
    assert!(claims.auth_time().is_some());

    let info: openidconnect::core::CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await.expect("userinfo");
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("rsmith"));

    let introspected = client.introspect(tokens.access_token()).request_async(&http).await.expect("introspection");
    assert!(introspected.active());

    // Refresh rotates; the old refresh token is then refused and revokes the grant.
    let first_refresh = tokens.refresh_token().unwrap().clone();
    let refreshed = client.exchange_refresh_token(&first_refresh).unwrap().request_async(&http).await.expect("refresh");
    assert_ne!(refreshed.refresh_token().unwrap().secret(), first_refresh.secret());
    assert!(client.exchange_refresh_token(&first_refresh).unwrap().request_async(&http).await.is_err());
    let after_reuse = client.introspect(refreshed.access_token()).request_async(&http).await.unwrap();
    assert!(!after_reuse.active(), "reuse of a refresh token revokes the whole grant");

    // A fresh grant, revoked by the client (RFC 7009).
    let (code, verifier) = pkce_code(&p, &client).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    client
        .revoke_token(openidconnect::core::CoreRevocableToken::from(tokens.refresh_token().unwrap().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("revocation");
    assert!(!client.introspect(tokens.access_token()).request_async(&http).await.unwrap().active());
    let revoked: Result<openidconnect::core::CoreUserInfoClaims, _> =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await;
    assert!(revoked.is_err(), "a revoked grant's access token no longer reads userinfo");

    let types = p.audit_types().await;
    for t in
        ["oidc.authorization", "oidc.grant.issued", "oidc.token.refreshed", "oidc.refresh.reused", "oidc.grant.revoked"]
    {
        assert!(types.iter().any(|x| x == t), "no {t} record");
    }
}

/// Codes and refresh tokens are now keyed in time order (51 characters). Ones issued
/// before that (43 characters, stored under their digest) still work once: a code is
/// redeemed, a refresh token rotates, and presented again it is reuse.
#[tokio::test]
async fn codes_and_refresh_tokens_from_before_time_ordered_keys_still_work_once() {
    let (p, client_id, secret) = provider().await;
    let issuer = openidconnect::IssuerUrl::new(p.node.base_url.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.unwrap();
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (code, verifier) = pkce_code(&p, &client).await;
    assert_eq!(code.len(), wardgate_core::token::ORDERED_LEN);
    assert!(p.node.store.auth_code(&wardgate_core::token::ordered_key(&code).unwrap()).await.unwrap().is_some());
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let issued = tokens.refresh_token().unwrap().secret().clone();
    assert_eq!(issued.len(), wardgate_core::token::ORDERED_LEN);
    let key = wardgate_core::token::ordered_key(&issued).unwrap();
    let (_, grant) = p.node.store.refresh_token(&key).await.unwrap().expect("stored under its time-ordered key");

    // What an older release stored: 43-character codes and tokens under their digest.
    let now = time::OffsetDateTime::now_utc();
    let legacy_code = wardgate_core::token::generate().unwrap();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let code = stored_code(&legacy_code, &client_id, grant.user_id.as_deref().unwrap(), &challenge, now);
    p.node.store.insert_auth_code(&AuthCode { session_id: grant.session_id.clone().unwrap(), ..code }).await.unwrap();
    let redeemed = client
        .exchange_code(AuthorizationCode::new(legacy_code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("a code of the old kind is redeemed");
    assert_eq!(redeemed.refresh_token().unwrap().secret().len(), wardgate_core::token::ORDERED_LEN);
    let legacy = wardgate_core::token::generate().unwrap();
    let event = |t| wardgate_core::audit::AuditEvent::known(now, t, wardgate_core::audit::Outcome::Success);
    p.node
        .store
        .commit(&[wardgate_store::batch::Write::RotateRefresh {
            digest: key,
            next: wardgate_core::oidc::RefreshToken {
                digest: wardgate_core::token::digest(&legacy),
                grant_id: grant.id.clone(),
                created_at: now,
                expires_at: now + time::Duration::hours(1),
                used_at: None,
            },
            now,
            rotated: event("oidc.token.refreshed"),
            reused: event("oidc.refresh.reused"),
            live: None,
        }])
        .await
        .unwrap();
    let legacy = openidconnect::RefreshToken::new(legacy);
    let rotated = client.exchange_refresh_token(&legacy).unwrap().request_async(&http).await.expect("legacy refresh");
    let next = rotated.refresh_token().unwrap().secret();
    assert_eq!(next.len(), wardgate_core::token::ORDERED_LEN, "its successor has a time-ordered key");
    assert!(client.exchange_refresh_token(&legacy).unwrap().request_async(&http).await.is_err());
    assert!(p.node.store.grant(&grant.id).await.unwrap().unwrap().revoked_at.is_some(), "reuse revokes the grant");
}

#[tokio::test]
async fn bad_requests_get_protocol_errors_and_never_a_redirect_to_an_unregistered_address() {
    let (p, client_id, secret) = provider().await;
    let base = p.node.base_url.clone();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let authz_with = |method: &str, extra: &str| {
        format!(
            "{base}/oidc/authorize?response_type=code&scope=openid&client_id={client_id}&state=s1&code_challenge={}&code_challenge_method={method}{extra}",
            challenge.as_str()
        )
    };
    let authz = |extra: &str| authz_with("S256", extra);
    // Unknown client, wrong redirect URI: a page, no redirect.
    let (status, location, _) = p.authorize(&format!("{base}/oidc/authorize?response_type=code&scope=openid&client_id=nobody&redirect_uri=https://evil.example/cb")).await;
    assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    let (status, location, _) = p.authorize(&authz("&redirect_uri=https://evil.example/cb")).await;
    assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    let (status, location, _) = p.authorize(&authz(&format!("&redirect_uri={REDIRECT}/other"))).await;
    assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    // A reachable-but-unmeetable acr: an error to the registered address.
    let location =
        p.authorize(&authz(&format!("&redirect_uri={REDIRECT}&acr_values=urn:wardgate:aal3"))).await.1.unwrap();
    assert_eq!(query_param(&location, "error").as_deref(), Some("unmet_authentication_requirements"));
    assert_eq!(query_param(&location, "state").as_deref(), Some("s1"));
    let location = p.authorize(&authz_with("plain", &format!("&redirect_uri={REDIRECT}"))).await.1.unwrap();
    assert_eq!(query_param(&location, "error").as_deref(), Some("invalid_request"));

    let code_for = || async {
        let location = p.authorize(&authz(&format!("&redirect_uri={REDIRECT}"))).await.1.unwrap();
        query_param(&location, "code").unwrap()
    };
    let token = |form: Vec<(&'static str, String)>| p.browser.post(format!("{base}/oidc/token")).form(&form).send();
    let base_form = |code: &str, verifier: &str, secret: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", verifier.to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", secret.to_owned()),
        ]
    };
    let error_of = |resp: reqwest::Response| async move {
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        (status, v["error"].as_str().unwrap_or("").to_owned())
    };
    // Wrong secret, unknown client.
    let code = code_for().await;
    assert_eq!(
        error_of(token(base_form(&code, verifier.secret(), "wrong")).await.unwrap()).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let mut unknown = base_form(&code, verifier.secret(), &secret);
    unknown[4].1 = "nobody".into();
    assert_eq!(error_of(token(unknown).await.unwrap()).await.1, "invalid_client");
    // Wrong and missing PKCE verifier.
    let code = code_for().await;
    let wrong = "x".repeat(50);
    assert_eq!(
        error_of(token(base_form(&code, &wrong, &secret)).await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    let mut missing = base_form(&code, verifier.secret(), &secret);
    missing.remove(3);
    assert_eq!(error_of(token(missing).await.unwrap()).await.1, "invalid_grant");
    // A request that does not match the code is refused before the code is spent: the
    // client that holds the verifier still gets its tokens.
    let resp = token(base_form(&code, verifier.secret(), &secret)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the refused attempts did not spend the code");
    // A replayed code: refused, and the tokens of its first use stop working.
    let code = code_for().await;
    let first: Value = token(base_form(&code, verifier.secret(), &secret)).await.unwrap().json().await.unwrap();
    let access = first["access_token"].as_str().unwrap().to_owned();
    let userinfo = || p.browser.get(format!("{base}/oidc/userinfo")).bearer_auth(&access).send();
    assert_eq!(userinfo().await.unwrap().status(), StatusCode::OK);
    assert_eq!(error_of(token(base_form(&code, verifier.secret(), &secret)).await.unwrap()).await.1, "invalid_grant");
    assert_eq!(userinfo().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(p.audit_types().await.iter().any(|t| t == "oidc.code.reused"));
    // An expired code (codes live a minute): one made in the store's past.
    let old = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let user = p
        .node
        .store
        .user_by_username(&wardgate_core::identity::Username::parse("rsmith").unwrap())
        .await
        .unwrap()
        .unwrap();
    let expired = "E".repeat(43);
    p.node.store.insert_auth_code(&stored_code(&expired, &client_id, &user.id, &challenge, old)).await.unwrap();
    assert_eq!(
        error_of(token(base_form(&expired, verifier.secret(), &secret)).await.unwrap()).await.1,
        "invalid_grant"
    );
    assert_eq!(
        error_of(token(base_form(&"A".repeat(43), verifier.secret(), &secret)).await.unwrap()).await.1,
        "invalid_grant"
    );
    // Unsupported grant type.
    let r = token(vec![
        ("grant_type", "password".into()),
        ("client_id", client_id.clone()),
        ("client_secret", secret.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(error_of(r).await.1, "unsupported_grant_type");
    // Client credentials work for a confidential client.
    let r: Value = token(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", client_id.clone()),
        ("client_secret", secret.clone()),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(r["access_token"].is_string() && r.get("refresh_token").is_none() && r.get("id_token").is_none());
}

#[tokio::test]
async fn logging_out_at_the_provider_ends_the_session_and_what_applications_got_through_it() {
    let (p, client_id, secret) = provider().await;
    let base = p.node.base_url.clone();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = format!(
        "{base}/oidc/authorize?response_type=code&scope=openid&client_id={client_id}&redirect_uri={REDIRECT}&code_challenge={}&code_challenge_method=S256",
        challenge.as_str()
    );
    let code = query_param(&p.authorize(&url).await.1.unwrap(), "code").unwrap();
    let tokens: Value = p
        .browser
        .post(format!("{base}/oidc/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.secret()),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let introspect = |t: String| {
        p.browser
            .post(format!("{base}/oidc/introspect"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("token", t)])
            .send()
    };
    let active = |v: Value| v["active"].as_bool().unwrap();
    assert!(active(introspect(refresh.to_owned()).await.unwrap().json().await.unwrap()));

    // An address the client did not register is refused, and nothing is ended.
    let bad = format!("{base}/oidc/logout?id_token_hint={id_token}&post_logout_redirect_uri=https://evil.example/");
    let (status, location, _) = p.authorize(&bad).await;
    assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    assert!(active(introspect(refresh.to_owned()).await.unwrap().json().await.unwrap()));

    // Without a hint naming this session, the person is asked: a link elsewhere cannot sign them out.
    let unhinted = format!("{base}/oidc/logout?client_id={client_id}&post_logout_redirect_uri={BYE}&state=bye0");
    let (status, location, page) = p.authorize(&unhinted).await;
    assert_eq!((status, location), (StatusCode::OK, None));
    assert!(page.contains("Sign out of Wardgate?"), "{page}");
    let me = p.browser.get(format!("{base}/api/v1/me")).header("cookie", &p.session).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK, "not yet signed out");
    let good = format!("{base}/oidc/logout?id_token_hint={id_token}&post_logout_redirect_uri={BYE}&state=bye1");
    let (status, location, _) = p.authorize(&good).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(format!("{BYE}?state=bye1").as_str()));
    let me = p.browser.get(format!("{base}/api/v1/me")).header("cookie", &p.session).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the session ended");
    assert!(!active(introspect(refresh.to_owned()).await.unwrap().json().await.unwrap()), "and its grants with it");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(!active(introspect(access).await.unwrap().json().await.unwrap()));
}

#[tokio::test]
async fn clients_are_administered_over_the_admin_api_with_their_own_scopes() {
    let (p, _, _) = provider().await;
    let base = p.node.base_url.clone();
    let csrf = p.csrf().await;
    let body = json!({"name": "Pharmacy app", "redirect_uris": ["org.example.pharmacy:/cb"], "public": true, "scopes": ["profile"]});
    let resp = p
        .browser
        .post(format!("{base}/api/v1/admin/clients"))
        .header("cookie", &p.session)
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    assert_eq!((created["type"].as_str(), created["client_secret"].is_null()), (Some("public"), true));
    let id = created["client_id"].as_str().unwrap().to_owned();
    let bad = json!({"name": "Evil", "redirect_uris": ["http://evil.example/cb"]});
    let resp = p
        .browser
        .post(format!("{base}/api/v1/admin/clients"))
        .header("cookie", &p.session)
        .header("x-csrf-token", &csrf)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(crate::problem(resp).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    // A token scoped to users cannot touch clients; one scoped to clients can.
    let settings = wardgate_core::settings::AuthSettings::default();
    let accounts = wardgate_server::accounts::Accounts::new(
        &*p.node.store,
        "operator:test",
        time::OffsetDateTime::now_utc(),
        &settings,
    );
    let users_only =
        accounts.create_api_token("rsmith", &["users:read".into(), "users:write".into()], None, None).await.unwrap();
    let clients_rw = accounts
        .create_api_token("rsmith", &["clients:read".into(), "clients:write".into()], None, None)
        .await
        .unwrap();
    let resp =
        p.browser.get(format!("{base}/api/v1/admin/clients")).bearer_auth(&users_only.secret).send().await.unwrap();
    assert_eq!(crate::problem(resp).await.0, StatusCode::FORBIDDEN);
    let list: Value = p
        .browser
        .get(format!("{base}/api/v1/admin/clients"))
        .bearer_auth(&clients_rw.secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let resp = p
        .browser
        .post(format!("{base}/api/v1/admin/clients/{id}/rotate-secret"))
        .bearer_auth(&clients_rw.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(crate::problem(resp).await.0, StatusCode::CONFLICT, "a public client has no secret");
    let resp = p
        .browser
        .delete(format!("{base}/api/v1/admin/clients/{id}"))
        .bearer_auth(&clients_rw.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = p
        .browser
        .get(format!("{base}/api/v1/admin/clients/{id}"))
        .bearer_auth(&clients_rw.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(crate::problem(resp).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_can_authenticate_with_a_signed_assertion_once() {
    let (p, _, _) = provider().await;
    let base = p.node.base_url.clone();
    let (der, jwk) = wardgate_server::oidc::keys::generate(jsonwebtoken::Algorithm::ES256, "client-key-1").unwrap();
    let (client, secret) = Clients::new(&*p.node.store, "operator:test", time::OffsetDateTime::now_utc())
        .add(NewClient {
            name: "Lab interface".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["lab:write".into()],
            jwks: Some(json!({"keys": [jwk]}).to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(secret.is_none() && !client.is_public());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |der: &[u8], jti: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("client-key-1".into());
        let claims = json!({"iss": client.id, "sub": client.id, "aud": format!("{base}/oidc/token"), "exp": now + 60, "iat": now, "jti": jti});
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(der)).unwrap()
    };
    let grant = |assertion: String| {
        p.browser
            .post(format!("{base}/oidc/token"))
            .form(&[
                ("grant_type", "client_credentials".to_owned()),
                ("scope", "lab:write".to_owned()),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
                ("client_assertion", assertion),
            ])
            .send()
    };
    let good = sign(&der, "a1");
    let r = grant(good.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string());
    // The same assertion again: a replay.
    assert_eq!(grant(good).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Signed with a key the client did not register.
    let (other, _) = wardgate_server::oidc::keys::generate(jsonwebtoken::Algorithm::ES256, "client-key-1").unwrap();
    assert_eq!(grant(sign(&other, "a2")).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn configured_scopes_release_the_claims_they_name() {
    let (p, client_id, secret) = provider_with(|s| {
        s.oidc.scope_claims.insert("ehr".into(), vec!["groups".into(), "preferred_username".into()]);
    })
    .await;
    let base = p.node.base_url.clone();
    let config: Value =
        p.browser.get(format!("{base}/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert!(config["scopes_supported"].as_array().unwrap().iter().any(|s| s == "ehr"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = format!(
        "{base}/oidc/authorize?response_type=code&scope=openid%20ehr&client_id={client_id}&redirect_uri={REDIRECT}&code_challenge={}&code_challenge_method=S256",
        challenge.as_str()
    );
    let code = query_param(&p.authorize(&url).await.1.unwrap(), "code").unwrap();
    let tokens: Value = p
        .browser
        .post(format!("{base}/oidc/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.secret()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let info: Value = p
        .browser
        .get(format!("{base}/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["groups"], json!(["admin"]));
    assert_eq!(info["preferred_username"], "rsmith");
    assert!(info.get("name").is_none() && info.get("email").is_none(), "only what the scope names: {info}");
}

#[tokio::test]
async fn third_party_applications_get_nothing_until_the_person_allows_them() {
    let (p, _, _) = provider().await;
    let base = p.node.base_url.clone();
    let (client, secret) = Clients::new(&*p.node.store, "operator:test", time::OffsetDateTime::now_utc())
        .add(NewClient {
            name: "Wellness portal".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["profile".into()],
            third_party: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = |extra: &str| {
        format!(
            "{base}/oidc/authorize?response_type=code&scope=openid%20profile&client_id={}&redirect_uri={REDIRECT}&state=c1&code_challenge={}&code_challenge_method=S256{extra}",
            client.id,
            challenge.as_str()
        )
    };
    // Not asked yet, and no interaction allowed: consent_required.
    let location = p.authorize(&url("&prompt=none")).await.1.unwrap();
    assert_eq!(query_param(&location, "error").as_deref(), Some("consent_required"));
    // The consent page, then a decision posted with its form token.
    let declined = consent_decision(&p, &url(""), "deny").await;
    assert_eq!(query_param(&declined, "error").as_deref(), Some("access_denied"));
    let allowed = consent_decision(&p, &url(""), "allow").await;
    let code = query_param(&allowed, "code").expect("a code once allowed");
    let tokens = p
        .browser
        .post(format!("{base}/oidc/token"))
        .basic_auth(&client.id, secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.secret()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    // Remembered: the next request goes straight through, even without interaction.
    let location = p.authorize(&url("&prompt=none")).await.1.unwrap();
    assert!(query_param(&location, "code").is_some(), "{location}");
    assert!(p.audit_types().await.iter().any(|t| t == "oidc.consent.granted"));
}

/// Opens the consent page for `page_url`, posts `decision` with the page's form token, and
/// follows the answer back through the authorization endpoint; returns where that sends
/// the browser.
async fn consent_decision(p: &Provider, page_url: &str, decision: &str) -> String {
    let base = p.node.base_url.clone();
    let resp = p.browser.get(page_url).header("cookie", &p.session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-wardgate-csrf="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(html.contains("Allow Wellness portal?") && html.contains("See your name and username"), "{html}");
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let v = html.split(&marker).nth(1).unwrap().split('"').next().unwrap();
        v.replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&#38;", "&")
            .replace("&amp;", "&")
    };
    let form = [
        ("csrf", field("csrf")),
        ("client_id", field("client_id")),
        ("scopes", field("scopes")),
        ("next", field("next")),
        ("decision", decision.to_owned()),
    ];
    let resp = p
        .browser
        .post(format!("{base}/oidc/consent"))
        .header("cookie", format!("{}; {cookie}", p.session))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let next = resp.headers()["location"].to_str().unwrap().to_owned();
    p.authorize(&format!("{base}{next}")).await.1.unwrap()
}

/// Clients are kept in memory by each node: a change made here applies at once, one made
/// by the CLI or another node within seconds. Tokens are signed with the client's algorithm
/// (RS256 or EdDSA when it asks) by a key published in the JWKS.
#[tokio::test]
async fn client_changes_apply_and_tokens_use_the_clients_algorithm() {
    let (p, _, _) = provider().await;
    let base = p.node.base_url.clone();
    let csrf = p.csrf().await;
    let admin = |path: String, body: Option<Value>| {
        let req = p.browser.post(format!("{base}/api/v1/admin/clients{path}")).header("cookie", &p.session);
        let req = req.header("x-csrf-token", &csrf);
        match body {
            Some(b) => req.json(&b),
            None => req,
        }
    };
    let grant = |id: String, secret: String| {
        p.browser
            .post(format!("{base}/oidc/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let jwks: Value = p.browser.get(format!("{base}/oidc/jwks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "ES256 only, until a client needs more");

    let resp = admin(String::new(), Some(json!({"name": "Lab", "redirect_uris": [REDIRECT], "signing_alg": "HS256"})))
        .send()
        .await
        .unwrap();
    assert_eq!(crate::problem(resp).await.0, StatusCode::UNPROCESSABLE_ENTITY, "no shared-secret algorithms");

    for alg in ["RS256", "EdDSA"] {
        let body = json!({"name": format!("Lab {alg}"), "redirect_uris": [REDIRECT], "signing_alg": alg});
        let created: Value = admin(String::new(), Some(body)).send().await.unwrap().json().await.unwrap();
        assert_eq!(created["signing_alg"], alg);
        let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());
        let resp = grant(id.into(), secret.into()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let token = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        // The key was made with the client, so it is published already.
        let jwks: jsonwebtoken::jwk::JwkSet =
            p.browser.get(format!("{base}/oidc/jwks")).send().await.unwrap().json().await.unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the signing key is in the JWKS");
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(&token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v)
            .expect("the token verifies with the published key")
            .claims;
        assert_eq!(claims["client_id"], id);
    }

    let created: Value = admin(String::new(), Some(json!({"name": "Billing", "redirect_uris": [REDIRECT]})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let first = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(grant(id.clone(), first.clone()).await.unwrap().status(), StatusCode::OK);
    // Rotated here: the old secret is refused at once.
    let rotated: Value = admin(format!("/{id}/rotate-secret"), None).send().await.unwrap().json().await.unwrap();
    let second = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(grant(id.clone(), first).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(grant(id.clone(), second.clone()).await.unwrap().status(), StatusCode::OK);

    // Rotated by the CLI (another process, writing to the store): refused within seconds.
    let clients = Clients::new(&*p.node.store, "operator:test", time::OffsetDateTime::now_utc());
    let (_, third) = clients.rotate_secret(&id).await.unwrap();
    let refused_within = |secret: String| {
        let id = id.clone();
        let grant = &grant;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            loop {
                if grant(id.clone(), secret.clone()).await.unwrap().status() == StatusCode::UNAUTHORIZED {
                    return true;
                }
                if std::time::Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert!(refused_within(second).await, "the secret the CLI replaced stops working");
    assert_eq!(grant(id.clone(), third.clone()).await.unwrap().status(), StatusCode::OK);
    clients.delete(&id).await.unwrap();
    assert!(refused_within(third).await, "a client the CLI deleted stops working");
}
