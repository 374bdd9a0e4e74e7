//! The real server on an ephemeral port, driven over HTTP.

use crate::problem;
use std::sync::Arc;

use reqwest::StatusCode;
use wardgate_core::audit::{ChainHead, ChainVerifier};
use wardgate_core::settings::Settings;
use wardgate_server::Node;
use wardgate_store::Store;

struct Harness {
    node: Node,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    settings.server.listen = "127.0.0.1:0".into();
    settings.server.max_body_bytes = 4096;
    let node = Node::start(settings).await.unwrap();
    let base = node.base_url.clone();
    Harness { node, base, http: crate::http_client(), _dir: dir }
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self) -> String {
        let url = self.node.bootstrap_url.clone().expect("first start prints a bootstrap link");
        url.split("token=").nth(1).unwrap().to_owned()
    }

    async fn audit_types(&self) -> Vec<String> {
        records(&*self.node.store).await.into_iter().map(|r| r.event_type).collect()
    }
}

async fn records(store: &dyn Store) -> Vec<wardgate_core::audit::StoredRecord> {
    store.audit_records(0, 100_000).await.unwrap()
}

async fn assert_chain_intact(store: &dyn Store) -> i64 {
    let cps = store.checkpoints(0, i64::MAX).await.unwrap();
    let mut v = ChainVerifier::new(ChainHead::GENESIS, &cps);
    for r in records(store).await {
        v.push(&r).unwrap();
    }
    v.finish().unwrap().seq
}

#[tokio::test]
async fn first_start_prints_a_one_time_link_that_enrolls_exactly_one_administrator() {
    let h = start().await;
    let token = h.token();
    let body = serde_json::json!({"token": token, "username": "RSmith", "display_name": "Rita Smith", "passphrase": "tidal cobalt lantern orchard"});
    let resp = h.http.post(h.url("/api/v1/bootstrap")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(created["username"], "rsmith");
    // Invited until a second factor is enrolled through the link it continues to.
    assert_eq!(created["status"], "invited");
    assert_eq!(created["enrollment_token"].as_str().unwrap().len(), 43);
    let user =
        h.node.store.user_by_username(&wardgate_core::identity::Username::parse("rsmith").unwrap()).await.unwrap();
    assert!(user.unwrap().is_admin());

    // The same link again: refused, and the refusal is audited.
    let resp = h.http.post(h.url("/api/v1/bootstrap")).json(&body).send().await.unwrap();
    let (status, p) = problem(resp).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(p["type"], "urn:wardgate:problem:bootstrap-link-invalid");
    let types = h.audit_types().await;
    assert!(types.contains(&"admin.bootstrap.redeemed".to_owned()), "{types:?}");
    assert!(types.contains(&"admin.bootstrap.refused".to_owned()), "{types:?}");
    // The passphrase itself is never in the audit log.
    assert!(records(&*h.node.store).await.iter().all(|r| !r.body.contains("tidal cobalt")));
    h.node.stop().await;
}

#[tokio::test]
async fn weak_passphrases_and_bad_usernames_are_refused_without_using_the_link() {
    let h = start().await;
    let token = h.token();
    for (user, pass) in
        [("rsmith", "short"), ("rsmith", "rsmith rsmith rsmith"), ("bad name", "tidal cobalt lantern orchard")]
    {
        let body = serde_json::json!({"token": token, "username": user, "display_name": "R", "passphrase": pass});
        let (status, p) = problem(h.http.post(h.url("/api/v1/bootstrap")).json(&body).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{user} {pass}: {p}");
    }
    assert_eq!(h.node.store.count_admins().await.unwrap(), 0);
    assert!(h.node.store.bootstrap_pending(time::OffsetDateTime::now_utc()).await.unwrap());
    h.node.stop().await;
}

#[tokio::test]
async fn the_enrollment_form_needs_its_csrf_cookie() {
    let h = start().await;
    let token = h.token();
    let resp = h.http.get(h.url(&format!("/bootstrap?token={token}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-wardgate-csrf=") && cookie.contains("Secure") && cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Strict"));
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    let html = resp.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let cookie_pair = cookie.split(';').next().unwrap().to_owned();
    let form = [
        ("token", token.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "jdoe"),
        ("display_name", "Jane Doe"),
        ("passphrase", "granite meadow pocket violin"),
        ("passphrase_confirm", "granite meadow pocket violin"),
    ];
    // Without the cookie (a cross-site post): refused.
    let resp = h.http.post(h.url("/bootstrap")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(h.node.store.count_admins().await.unwrap(), 0);
    // With it: created.
    let resp = h.http.post(h.url("/bootstrap")).header("cookie", &cookie_pair).form(&form).send().await.unwrap();
    // With it: created, and on to second-factor enrollment.
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with("/enroll?token="));
    let jdoe = h.node.store.user_by_username(&wardgate_core::identity::Username::parse("jdoe").unwrap()).await.unwrap();
    assert_eq!(jdoe.unwrap().status, wardgate_core::identity::AccountStatus::Invited);
    // The page for a used link says so, without the form.
    let resp = h.http.get(h.url(&format!("/bootstrap?token={token}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::GONE);
    h.node.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_document_and_loses_nothing() {
    let h = start().await;
    let before = assert_chain_intact(&*h.node.store).await;
    let api = h.url("/api/v1/bootstrap");
    let cases: Vec<(reqwest::RequestBuilder, StatusCode)> = vec![
        (h.http.post(&api).header("content-type", "application/json").body("{not json"), StatusCode::BAD_REQUEST),
        (h.http.post(&api).header("content-type", "application/json").body(vec![0xff, 0xfe, 0x7b]), StatusCode::BAD_REQUEST),
        (
            h.http.post(&api).json(&serde_json::json!({"token": "t", "username": "u", "display_name": "d", "passphrase": "p", "admin": true})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (h.http.post(&api).json(&serde_json::json!({"token": "t"})), StatusCode::UNPROCESSABLE_ENTITY),
        (h.http.post(&api).header("content-type", "text/plain").body("hello"), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (h.http.post(&api).header("content-type", "application/json").body(vec![b' '; 10_000]), StatusCode::PAYLOAD_TOO_LARGE),
        (h.http.post(h.url("/bootstrap")).header("content-type", "application/x-www-form-urlencoded").body("csrf=%ZZ"), StatusCode::UNPROCESSABLE_ENTITY),
        (h.http.get(h.url("/no/such/page")), StatusCode::NOT_FOUND),
        (h.http.delete(h.url("/healthz")), StatusCode::METHOD_NOT_ALLOWED),
    ];
    let mut ids = std::collections::HashSet::new();
    for (i, (req, want)) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        ids.insert(enveloped(&resp, &format!("case {i}")));
        let (status, p) = problem(resp).await;
        assert_eq!(status, want, "case {i}: {p}");
        assert_eq!(p["status"], want.as_u16(), "case {i}");
        assert!(p["type"].as_str().unwrap().starts_with("urn:wardgate:problem:"), "case {i}");
    }
    // Nothing stored was lost and the server still serves.
    assert!(assert_chain_intact(&*h.node.store).await >= before);
    assert!(h.node.store.bootstrap_pending(time::OffsetDateTime::now_utc()).await.unwrap());
    let ok = h.http.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    ids.insert(enveloped(&ok, "healthz"));
    assert_eq!(ids.len(), 10, "every response has its own request id");
    h.node.stop().await;
}

/// The headers every response of Wardgate's own carries, answers and refusals alike
/// (a body refused below the router, an unknown path); returns its request id.
fn enveloped(resp: &reqwest::Response, what: &str) -> String {
    let h = resp.headers();
    let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(get("content-security-policy").starts_with("default-src 'none'"), "{what}: CSP");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{what}");
    assert_eq!(get("cache-control"), "no-store", "{what}");
    let id = get("x-request-id");
    assert_eq!(id.len(), 32, "{what}: request id {id:?}");
    id
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let h = start().await;
    let r: serde_json::Value = h.http.get(h.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["status"], "ok");
    let r: serde_json::Value = h.http.get(h.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["status"], "ready");
    assert_eq!(r["store"], "sqlite");
    let m = h.http.get(h.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "wardgate_http_requests_total{",
        "wardgate_http_request_duration_seconds",
        "wardgate_login_outcomes_total",
        "wardgate_audit_chain_length",
    ] {
        assert!(m.contains(name), "{name} missing from metrics:\n{m}");
    }
    assert!(m.contains("route=\"/healthz\""), "requests are labelled by route template");

    // The counts go on rising once a route's metrics are known (their handles are kept).
    let healthz_ok = |m: &str| -> u64 {
        m.lines()
            .find(|l| {
                l.starts_with("wardgate_http_requests_total{")
                    && l.contains("route=\"/healthz\"")
                    && l.contains("method=\"GET\"")
                    && l.contains("status=\"200\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no count of GET /healthz in:\n{m}"))
    };
    let before = healthz_ok(&m);
    for _ in 0..3 {
        h.http.get(h.url("/healthz")).send().await.unwrap();
    }
    // A method a client invents is counted, but under one label for all such methods.
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let r = h.http.request(brew, h.url("/healthz")).send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let m = h.http.get(h.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(healthz_ok(&m) >= before + 3, "{before} before, then:\n{m}");
    assert!(m.contains("method=\"other\""), "{m}");
    assert!(!m.contains("BREW"), "{m}");
    h.node.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_the_audit_log_and_signs_the_head() {
    let h = start().await;
    let store: Arc<dyn Store> = Arc::clone(&h.node.store);
    h.node.stop().await;
    let recs = records(&*store).await;
    assert_eq!(recs.first().unwrap().event_type, "keys.signing.created");
    assert_eq!(recs.last().unwrap().event_type, "system.node.stopped");
    let head = store.audit_head().await.unwrap();
    assert_eq!(store.latest_checkpoint().await.unwrap().unwrap().seq, head.seq, "final checkpoint covers the head");
    assert_eq!(assert_chain_intact(&*store).await, head.seq);
}

#[tokio::test]
async fn a_public_address_without_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    settings.server.listen = "0.0.0.0:0".into();
    let err = Node::start(settings).await.err().expect("refused").to_string();
    assert!(err.contains("server.listen") && err.contains("TLS"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing is created for a refused configuration");
}

#[tokio::test]
async fn dev_tls_serves_https_with_a_certificate_for_localhost_and_hsts() {
    use rustls_pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    settings.server.listen = "127.0.0.1:0".into();
    settings.server.dev_tls = true;
    let node = Node::start(settings).await.unwrap();
    assert!(node.base_url.starts_with("https://"), "{}", node.base_url);
    assert!(node.bootstrap_url.as_deref().unwrap().starts_with("https://"));
    let cert = node.dev_cert.clone().expect("the development certificate's path is reported");

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("certificate valid for localhost");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("strict-transport-security: max-age="), "{response}");

    // Plain HTTP on the TLS port gets nowhere.
    let mut plain = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    node.stop().await;
}

#[tokio::test]
async fn enrollment_attempts_are_rate_limited_per_client() {
    let h = start().await;
    let body = serde_json::json!({"token": "A".repeat(43), "username": "guess", "display_name": "G", "passphrase": "tidal cobalt lantern orchard"});
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(h.http.post(h.url("/api/v1/bootstrap")).json(&body).send().await.unwrap().status());
    }
    // A burst of five wrong links is answered (and audited); then the client must wait.
    assert_eq!(&statuses[..5], &[StatusCode::GONE; 5]);
    assert_eq!(&statuses[5..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
    let resp = h.http.post(h.url("/api/v1/bootstrap")).json(&body).send().await.unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    let (_, p) = problem(resp).await;
    assert_eq!(p["type"], "urn:wardgate:problem:rate-limited");
    // Nothing was redeemed by the guessing.
    assert!(h.node.store.bootstrap_pending(time::OffsetDateTime::now_utc()).await.unwrap());
    h.node.stop().await;
}
