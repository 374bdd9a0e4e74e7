//! Forward-auth with a real nginx (`auth_request`) in front of a small upstream that
//! echoes the headers it receives. nginx runs as a child process on a loopback port with
//! the configuration from docs/gateway.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;
use wardgate_core::factors::totp::{self, TotpParams};
use wardgate_core::settings::GatewayRoute;
use wardgate_server::policies::Policies;

use crate::login::{Harness, PASS, clock, session_cookie, start_with};

const APP_HOST: &str = "app.wardgate.test";

const POLICY: &str = r#"
[roles.nurse]
permissions = ["ephi.read", "gateway.labs", "gateway.labs-admin"]

[[rule]]
name = "sign-in"
actions = ["login", "sso"]
require = "aal2"

[[rule]]
name = "labs"
actions = ["gateway.labs"]
require = "aal2"

[[rule]]
name = "labs-admin"
actions = ["gateway.labs-admin"]
require = "aal3"
"#;

fn nginx() -> PathBuf {
    std::env::var_os("WARDGATE_NGINX").map_or_else(|| PathBuf::from("/usr/sbin/nginx"), PathBuf::from)
}

fn nginx_available() -> bool {
    if nginx().is_file() {
        return true;
    }
    assert!(
        std::env::var("WARDGATE_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "WARDGATE_REQUIRE_TOOLS=1 but nginx is missing at {}",
        nginx().display()
    );
    eprintln!("nginx test skipped: {} not found (apt-get install nginx-light)", nginx().display());
    false
}

/// nginx as a child process; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The configuration of docs/gateway.md, with this test's ports and paths.
fn nginx_conf(dir: &Path, port: u16, wardgate: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    server {{
        listen 127.0.0.1:{port};
        server_name {APP_HOST};

        # Ask Wardgate about every request; it answers 200, 401 (with Location for a
        # browser) or 403.
        location = /_wardgate {{
            internal;
            proxy_pass http://{wardgate}/gate/check?proxy=nginx;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}

        location / {{
            auth_request /_wardgate;
            auth_request_set $wardgate_user $upstream_http_remote_user;
            auth_request_set $wardgate_groups $upstream_http_remote_groups;
            auth_request_set $wardgate_name $upstream_http_remote_name;
            auth_request_set $wardgate_email $upstream_http_remote_email;
            auth_request_set $wardgate_assertion $upstream_http_wardgate_assertion;
            auth_request_set $wardgate_location $upstream_http_location;
            error_page 401 = @wardgate_401;

            # Set, so whatever the client sent under these names is replaced.
            proxy_set_header Remote-User $wardgate_user;
            proxy_set_header Remote-Groups $wardgate_groups;
            proxy_set_header Remote-Name $wardgate_name;
            proxy_set_header Remote-Email $wardgate_email;
            proxy_set_header Wardgate-Assertion $wardgate_assertion;
            proxy_set_header Host $host;
            proxy_pass http://{upstream};
        }}

        # A browser goes to sign in (or step up); an API client gets the 401.
        location @wardgate_401 {{
            if ($wardgate_location) {{
                return 302 $wardgate_location;
            }}
            return 401;
        }}
    }}
}}
"#
    )
}

async fn start_nginx(dir: &Path, wardgate: SocketAddr, upstream: SocketAddr) -> Nginx {
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, port, wardgate, upstream)).unwrap();
    let mut nginx = Nginx {
        child: Command::new(nginx())
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts"),
        port,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return nginx;
        }
        if let Ok(Some(status)) = nginx.child.try_wait() {
            panic!("nginx exited ({status}): {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nginx did not listen on {port}: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
}

/// The upstream application: answers every request with the headers it received.
async fn start_upstream() -> SocketAddr {
    let app = axum::Router::new().fallback(|req: axum::extract::Request| async move {
        let mut headers = serde_json::Map::new();
        for (name, value) in req.headers() {
            let entry = headers.entry(name.as_str().to_owned()).or_insert_with(|| json!([]));
            entry.as_array_mut().unwrap().push(json!(value.to_str().unwrap_or("?")));
        }
        axum::Json(json!({"path": req.uri().path(), "headers": headers}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

impl Harness {
    async fn through_nginx(&self, port: u16, path: &str, cookie: Option<&str>, browser: bool) -> reqwest::Response {
        let mut req = self
            .http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("host", format!("{APP_HOST}:{port}"))
            // What an attacker would try: name themselves to the application.
            .header("remote-user", "root")
            .header("remote-groups", "admin");
        if browser {
            req = req.header("accept", "text/html,application/xhtml+xml");
        }
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }
}

fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn gate_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Secure-wardgate-gate="))
        .map(str::to_owned)
}

/// Nina the nurse, enrolled with a passphrase and an authenticator app, under `policy`
/// (approved and in force). Returns her TOTP secret.
pub(crate) async fn nurse_under_policy(h: &Harness, policy: &str) -> Vec<u8> {
    let admin = h.enroll_admin("rita").await.session;
    let resp = h
        .http
        .post(h.url("/api/v1/admin/users"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(
            &json!({"username": "nina", "display_name": "Nina Nurse", "email": "nina@example.org", "roles": ["nurse"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let invited: Value = resp.json().await.unwrap();
    let link = invited["enrollment_url"].as_str().unwrap().split("token=").nth(1).unwrap().to_owned();
    let secret = h.enroll(&link).await.totp_secret;
    let store = &*h.node.store;
    let v = Policies::new(store, "operator:alice", clock(), true).propose(policy, "gateway test").await.unwrap();
    Policies::new(store, "operator:bob", clock(), true).approve(v.number).await.unwrap();
    // The node picks the approval up within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    secret
}

/// Nina signs in with her passphrase and app (aal2); her session cookie.
pub(crate) async fn nurse_signs_in(h: &Harness, secret: &[u8]) -> String {
    let flow: Value = h.ok("/api/v1/login", json!({"username": "nina"})).await;
    let flow = flow["flow"].as_str().unwrap().to_owned();
    h.ok("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
    let code = totp::code_at(TotpParams::default(), secret, clock() + Duration::seconds(30)).unwrap();
    let resp = h.post("/api/v1/login/totp", json!({"flow": flow, "code": code})).await;
    session_cookie(&resp).unwrap()
}

/// Signs the session out through the JSON API.
pub(crate) async fn sign_out(h: &Harness, session: &str) {
    let me: Value =
        h.http.get(h.url("/api/v1/me")).header("cookie", session).send().await.unwrap().json().await.unwrap();
    let resp = h
        .http
        .post(h.url("/api/v1/logout"))
        .header("cookie", session)
        .header("x-csrf-token", me["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

/// The hand-off for a signed-in session: the gateway cookie (`name=value`) for `rd`.
pub(crate) async fn gateway_cookie(h: &Harness, session: &str, rd: &str) -> String {
    let url = format!(
        "{}?rd={}",
        h.url("/gate/start"),
        url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
    );
    let resp = h.http.get(url).header("cookie", session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    gate_cookie(&resp).expect("the gateway cookie").split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn nginx_auth_request_signs_people_in_and_passes_only_wardgate_identities() {
    if !nginx_available() {
        return;
    }
    let h = start_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.gateway.cookie_domain = Some("wardgate.test".into());
        s.gateway.routes =
            vec![GatewayRoute::new("labs", APP_HOST, "/"), GatewayRoute::new("labs-admin", APP_HOST, "/admin")];
    })
    .await;
    let nina = nurse_under_policy(&h, POLICY).await;
    let store = &*h.node.store;

    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let nginx = start_nginx(dir.path(), h.node.addr, upstream).await;
    let port = nginx.port;
    let app_url = format!("http://{APP_HOST}:{port}/results?id=7");

    // Not signed in: a browser is sent to Wardgate with the right return address; an API
    // client gets 401; the upstream sees neither.
    let resp = h.through_nginx(port, "/results?id=7", None, true).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let start = format!("{}/gate/start?rd=", h.url(""));
    assert!(location.starts_with(&start), "{location}");
    let rd: String = url::form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert_eq!(rd, app_url);
    assert_eq!(h.through_nginx(port, "/results", None, false).await.status(), StatusCode::UNAUTHORIZED);

    // The hand-off without a session sends the browser to sign in, then back here.
    let resp = h.http.get(&location).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with("/?next=%2Fgate%2Fstart%3Frd%3D"));

    // Nina signs in (passphrase and app) and the hand-off gives the gateway cookie.
    let session = nurse_signs_in(&h, &nina).await;
    let resp = h.http.get(&location).header("cookie", &session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], app_url.as_str());
    let set = gate_cookie(&resp).expect("the gateway cookie");
    assert!(set.contains("Domain=wardgate.test") && set.contains("Secure") && set.contains("HttpOnly"), "{set}");
    let gate = set.split(';').next().unwrap().to_owned();

    // Signed in: the upstream gets the request with Wardgate's identity headers only.
    let resp = h.through_nginx(port, "/results?id=7", Some(&gate), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["path"], "/results");
    assert_eq!(seen["headers"]["remote-user"], json!(["nina"]), "{seen}");
    assert_eq!(seen["headers"]["remote-groups"], json!(["nurse"]));
    assert_eq!(seen["headers"]["remote-name"], json!(["Nina Nurse"]));
    assert_eq!(seen["headers"]["remote-email"], json!(["nina@example.org"]));
    let assertion = seen["headers"]["wardgate-assertion"][0].as_str().unwrap();
    let claims = jwt_claims(assertion);
    assert_eq!((claims["preferred_username"].as_str(), claims["aud"].as_str()), (Some("nina"), Some(APP_HOST)));
    assert_eq!(claims["acr"], "urn:wardgate:aal2");

    // A route that needs aal3, with this aal2 session: a step-up, then back.
    let resp = h.through_nginx(port, "/admin/users", Some(&gate), true).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let step = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(step.starts_with(&format!("{}/?step_up=1&next=%2Fgate%2Fstart%3Frd%3D", h.url(""))), "{step}");
    assert_eq!(h.through_nginx(port, "/admin/users", Some(&gate), false).await.status(), StatusCode::UNAUTHORIZED);

    // A forged or foreign cookie is no sign-in.
    let forged = format!("{}x", gate);
    assert_eq!(h.through_nginx(port, "/results", Some(&forged), false).await.status(), StatusCode::UNAUTHORIZED);

    // Every decision about Nina is on record.
    let records: Vec<Value> = h.audit().await.into_iter().filter(|r| r["type"] == "gateway.access").collect();
    let allowed = records.iter().find(|r| r["outcome"] == "success").expect("an allowed access");
    assert_eq!(allowed["subject"], "nina");
    assert_eq!(allowed["details"]["route"], "labs");
    assert_eq!(allowed["details"]["path"], "/results");
    assert_eq!(allowed["details"]["method"], "GET");
    assert!(records.iter().any(|r| r["details"]["route"] == "labs-admin" && r["details"]["rule"] == "labs-admin"));

    // A proposal that wants a security key for the whole application: the simulation over
    // the recorded gateway decisions names exactly what would change.
    let stricter = POLICY.replace(
        "name = \"labs\"\nactions = [\"gateway.labs\"]\nrequire = \"aal2\"",
        "name = \"labs\"\nactions = [\"gateway.labs\"]\nrequire = \"aal3\"",
    );
    assert_ne!(stricter, POLICY);
    let sim = Policies::new(store, "operator:alice", clock(), true)
        .simulate(&stricter, clock() - Duration::hours(1))
        .await
        .unwrap();
    let changes: Vec<_> = sim
        .changes
        .iter()
        .map(|c| (c.username.as_str(), c.action.as_str(), c.before.as_str(), c.after.as_str()))
        .collect();
    assert_eq!(changes, [("nina", "gateway.labs", "allow aal2", "step_up aal3")], "{sim:?}");

    // Signing out ends the gateway sign-in too: the cookie names the session.
    sign_out(&h, &session).await;
    assert_eq!(h.through_nginx(port, "/results", Some(&gate), false).await.status(), StatusCode::UNAUTHORIZED);
    drop(nginx);
}

#[tokio::test]
async fn the_hand_off_refuses_return_addresses_outside_the_protected_domain() {
    let h = start_with(|s| {
        s.gateway.cookie_domain = Some("wardgate.test".into());
    })
    .await;
    for rd in [
        "https://evil.test/",
        "//evil.test/",
        "https://app.wardgate.test.evil.test/",
        "https://evil.test%2F@app.wardgate.test/",
        "https://evil.test\\@app.wardgate.test/",
        "https://%65vil.test/",
        "javascript:alert(1)",
        "/account",
    ] {
        let url = format!(
            "{}?rd={}",
            h.url("/gate/start"),
            percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let resp = h.http.get(url).send().await.unwrap();
        let (status, p) = crate::problem(resp).await;
        assert_eq!(
            (status, p["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("urn:wardgate:problem:invalid-return-url")),
            "{rd}"
        );
    }
    // The check answers only configured proxies.
    let resp =
        h.http.get(h.url("/gate/check")).header("x-original-url", "https://app.wardgate.test/").send().await.unwrap();
    let (status, p) = crate::problem(resp).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:wardgate:problem:untrusted-proxy")));
}

/// Traefik and Caddy send the original request as `X-Forwarded-*` and pass Wardgate's
/// redirect to the browser as it is.
#[tokio::test]
async fn traefik_and_caddy_style_checks_redirect_browsers_and_answer_api_clients() {
    let h = start_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.gateway.cookie_domain = Some("wardgate.test".into());
        s.gateway.routes = vec![GatewayRoute::new("labs", APP_HOST, "/")];
    })
    .await;
    let ask = |accept: Option<&str>| {
        let mut req = h
            .http
            .get(h.url("/gate/check"))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", APP_HOST)
            .header("x-forwarded-uri", "/results?id=7")
            .header("x-forwarded-method", "GET");
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.send()
    };
    let resp = ask(Some("text/html")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.ends_with("/gate/start?rd=https%3A%2F%2Fapp%2Ewardgate%2Etest%2Fresults%3Fid%3D7"), "{location}");
    let resp = ask(Some("application/json")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    // Without a route the answer is 403, and a malformed original request 400.
    let resp = h
        .http
        .get(h.url("/gate/check"))
        .header("x-forwarded-host", "other.wardgate.test")
        .header("x-forwarded-uri", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(crate::problem(resp).await.0, StatusCode::FORBIDDEN);
    for (name, value) in
        [("x-forwarded-uri", "results"), ("x-forwarded-proto", "gopher"), ("x-forwarded-method", "get me")]
    {
        let mut headers = vec![("x-forwarded-host", APP_HOST), ("x-forwarded-uri", "/")];
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
        let mut req = h.http.get(h.url("/gate/check"));
        for (n, v) in headers {
            req = req.header(n, v);
        }
        assert_eq!(crate::problem(req.send().await.unwrap()).await.0, StatusCode::BAD_REQUEST, "{name}: {value}");
    }
}
