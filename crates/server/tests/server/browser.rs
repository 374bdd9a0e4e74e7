//! The pages in a real browser: headless Chromium, driven by `tests/browser/flows.mjs`
//! (Playwright), against the real server. A passkey is enrolled with Chromium's virtual
//! authenticator and used to sign in; a second person enrolls an authenticator app and signs
//! in with passphrase + code. The passkey is then copied (its signature counter set back, as
//! on a cloned key): by default the copy signs in with a warning, and a second node with
//! `auth.webauthn_refuse_counter_regression` refuses it. The second person then adds a
//! security key on the account page, signs in again at aal2, and an application asks for
//! `acr_values=urn:wardgate:aal3` (issue 4's step-up): the browser is asked for the key
//! alone, the code it brings back is redeemed here, and the ID token must carry the new
//! `acr`, `amr` and `auth_time`. Last, that person reports the authenticator app lost and
//! replaces it on the account page, confirming with the key (issue 8's self-service recovery
//! with a WebAuthn step-up). The audit logs must then tell the same story.
//!
//! Needs Debian's `chromium`, Node.js and `npm ci --prefix crates/server/tests/browser`
//! (`scripts/test` does both). Without them the test says what is missing and passes,
//! unless `WARDGATE_REQUIRE_TOOLS=1` (CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use wardgate_core::login::Aal;
use wardgate_core::settings::Settings;
use wardgate_server::Node;
use wardgate_server::accounts::{Accounts, NewUser};
use wardgate_server::clients::{Clients, NewClient};

const PASS: &str = "tidal cobalt lantern orchard";
/// Each browser step has its own 15 s timeout; this only stops a wedged browser.
const WHOLE_RUN: Duration = Duration::from_secs(240);

fn chromium() -> PathBuf {
    std::env::var_os("WARDGATE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What is missing to run the browser, if anything.
fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().is_file() {
        missing.push(format!("{} (apt-get install chromium)", chromium().display()));
    }
    if !Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()) {
        missing.push("node (apt-get install nodejs)".into());
    }
    if !browser_dir().join("node_modules/playwright-core/package.json").is_file() {
        missing.push("playwright-core (npm ci --prefix crates/server/tests/browser)".into());
    }
    missing
}

fn tools_available() -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return true;
    }
    // CI installs them and sets this, so a missing tool fails there instead of passing.
    assert!(
        std::env::var("WARDGATE_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "WARDGATE_REQUIRE_TOOLS=1 but the browser test cannot run; missing: {}",
        missing.join(", ")
    );
    eprintln!("browser test skipped; missing: {}", missing.join(", "));
    false
}

/// A fresh node on an ephemeral port, in its own data directory under `dir`: the node, the
/// base URL the browser must use, and the first start's bootstrap link.
async fn start_node(dir: &Path, refuse_counter_regression: bool) -> (Node, Settings, String, String) {
    let mut settings = Settings { data_dir: dir.join("data"), ..Settings::default() };
    settings.server.listen = "127.0.0.1:0".into();
    settings.auth.webauthn_refuse_counter_regression = refuse_counter_regression;
    let node = Node::start(settings.clone()).await.unwrap();
    // WebAuthn refuses IP addresses as relying-party ids; the server serves loopback as
    // `localhost`, so the browser must call it that.
    let base = format!("http://localhost:{}", node.addr.port());
    let bootstrap = node.bootstrap_url.clone().expect("a first start prints a bootstrap link");
    (node, settings, base, bootstrap)
}

/// Every audit record the node wrote, as JSON. Stopping flushes the audit writer, so every
/// step is in the log.
async fn audit_of(node: Node) -> Vec<Value> {
    let store = Arc::clone(&node.store);
    node.stop().await;
    store.audit_records(0, 100_000).await.unwrap().into_iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
}

/// The one `auth.webauthn.counter_regression` record in `audit`, checked against the sign-in
/// it belongs to: the key's factor, and a presented counter behind the stored one.
fn counter_regression<'a>(audit: &'a [Value], factor_id: &Value) -> &'a Value {
    let found: Vec<&Value> = audit.iter().filter(|r| r["type"] == "auth.webauthn.counter_regression").collect();
    assert_eq!(found.len(), 1, "one counter regression audited (the copy's sign-in): {found:?}");
    let r = found[0];
    let d = &r["details"];
    assert_eq!(d["factor_id"], *factor_id, "the regression names the passkey's factor: {r}");
    let (stored, presented) = (d["stored_counter"].as_u64(), d["presented_counter"].as_u64());
    assert!(
        matches!((stored, presented), (Some(s), Some(p)) if p < s),
        "the copy presented a counter behind the stored one: {r}"
    );
    r
}

/// The sign-in records (`auth.*`) of an audit log, one line each, for a failure message.
fn auth_records(audit: &[Value]) -> String {
    let line = |r: &Value| {
        let reason = r["reason"].as_str().map(|s| format!(" ({s})")).unwrap_or_default();
        format!("  {} {} {}{reason} {}", r["type"], r["outcome"], r["subject"], r["details"])
    };
    let auth = audit.iter().filter(|r| r["type"].as_str().is_some_and(|t| t.starts_with("auth.")));
    auth.map(line).collect::<Vec<_>>().join("\n")
}

/// A person's sign-ins, not counting the one enrollment ends with.
fn logins<'a>(audit: &'a [Value], who: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|r| r["type"] == "auth.login.succeeded" && r["subject"] == who)
        .filter(|r| r["details"]["via"] != "enrollment")
        .collect()
}

fn has(record: &Value, amr: &str) -> bool {
    record["factors"].as_array().unwrap().iter().any(|f| f == amr)
}

/// The factor that passed in a sign-in (its `auth.factor.passed` record).
fn factor_of(audit: &[Value], login: &Value) -> Value {
    let passed = audit
        .iter()
        .find(|r| r["type"] == "auth.factor.passed" && r["correlation_id"] == login["correlation_id"])
        .unwrap_or_else(|| panic!("no auth.factor.passed under the sign-in {login}"));
    passed["details"]["factor_id"].clone()
}

/// The application of the step-up scenario: a confidential client whose callback is served
/// here, and the authorization request's `state`, `nonce` and PKCE pair.
struct App {
    client_id: String,
    secret: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    verifier: String,
    /// Each request to the callback: its path and query.
    callbacks: mpsc::UnboundedReceiver<String>,
}

impl App {
    /// Serves the callback on a loopback port (a page, "Patient chart", whatever comes) and
    /// registers the client with it as its one redirect URI.
    async fn start(node: &Node) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
        let (tx, callbacks) = mpsc::unbounded_channel();
        let callback = move |uri: axum::http::Uri| async move {
            let _ = tx.send(uri.to_string());
            axum::response::Html("<!doctype html><title>Patient chart</title><h1>Patient chart</h1>")
        };
        // The help desk of scenario 6: hank opens a recovery request for the person named,
        // sue approves it, and the one-time link comes back as the body.
        let store = std::sync::Arc::clone(&node.store);
        let base = format!("http://localhost:{}", node.addr.port());
        let helpdesk = move |axum::extract::Path(username): axum::extract::Path<String>| async move {
            use wardgate_server::lifecycle::recovery;
            let now = OffsetDateTime::now_utc();
            let policy = wardgate_server::roles::catalog(&*store).await.unwrap();
            let why = "INC-0001 phone and key lost; call-back to the number HR holds";
            let r = recovery::open(&*store, &policy, "operator:test", &username, "hank", why, now).await.unwrap();
            let ttl = time::Duration::minutes(15);
            recovery::approve(&*store, &policy, "operator:test", &r.id, "sue", ttl, &base, now).await.unwrap().link
        };
        let routes = axum::Router::new()
            .route("/callback", axum::routing::get(callback))
            .route("/helpdesk/recover/{username}", axum::routing::get(helpdesk));
        tokio::spawn(async move { axum::serve(listener, routes).await });

        let clients = Clients::new(&*node.store, "operator:test", OffsetDateTime::now_utc());
        let new =
            NewClient { name: "Patient chart".into(), redirect_uris: vec![redirect_uri.clone()], ..Default::default() };
        let (client, secret) = clients.add(new).await.unwrap();
        let random = || wardgate_core::token::generate().unwrap();
        App {
            client_id: client.id,
            secret: secret.expect("a confidential client has a secret"),
            redirect_uri,
            state: random(),
            nonce: random(),
            // 43 base64url characters: a verifier as RFC 7636 §4.1 wants it.
            verifier: random(),
            callbacks,
        }
    }

    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WARDGATE_OIDC_CLIENT_ID", self.client_id.clone()),
            ("WARDGATE_OIDC_REDIRECT_URI", self.redirect_uri.clone()),
            ("WARDGATE_OIDC_STATE", self.state.clone()),
            ("WARDGATE_OIDC_NONCE", self.nonce.clone()),
            // RFC 7636 §4.2: S256.
            ("WARDGATE_OIDC_CODE_CHALLENGE", B64.encode(Sha256::digest(self.verifier.as_bytes()))),
        ]
    }

    /// Redeems the code of `callback` at the token endpoint, as the application would:
    /// the status and the JSON answer.
    async fn redeem(&self, node: &Node, callback: &str) -> (reqwest::StatusCode, Value) {
        let code = query_param(callback, "code").unwrap_or_default();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", self.verifier.as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.as_str()),
        ];
        let url = format!("http://{}/oidc/token", node.addr);
        let resp = crate::http_client().post(url).form(&form).send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The claims of a JWT, unchecked: its signature is oidc.rs's concern, not this test's.
fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// Runs flows.mjs to its end (or kills it at [`WHOLE_RUN`]): exit success and its output.
fn run_flows(envs: Vec<(&'static str, String)>, out_dir: &Path) -> (bool, String) {
    // Files, not pipes: a chatty browser cannot block on a full pipe while we wait.
    let stdout = out_dir.join("flows.out");
    let stderr = out_dir.join("flows.err");
    let mut child = Command::new("node")
        .arg(browser_dir().join("flows.mjs"))
        .current_dir(browser_dir())
        .envs(envs)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("node starts");
    let deadline = Instant::now() + WHOLE_RUN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = std::fs::read_to_string(&stdout).unwrap_or_default();
    output.push_str(&std::fs::read_to_string(&stderr).unwrap_or_default());
    if status.is_none() {
        output.push_str(&format!("\n(killed after {} s)", WHOLE_RUN.as_secs()));
    }
    (status.is_some_and(|s| s.success()), output)
}

// Multi-threaded: the server keeps serving on the runtime's workers while a blocking thread
// waits for the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_and_a_passphrase_with_an_app_each_sign_a_person_in_through_the_pages() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, settings, base, bootstrap) = start_node(&dir.path().join("default"), false).await;
    let (refusing, _, refusing_base, refusing_bootstrap) = start_node(&dir.path().join("refusing"), true).await;

    let accounts = Accounts::new(&*node.store, "operator:test", OffsetDateTime::now_utc(), &settings.auth);
    let new = NewUser { username: "jdoe".into(), display_name: Some("Jane Doe".into()), ..NewUser::default() };
    let (_, link) = accounts.invite(new, &base).await.unwrap();
    help_desk(&node, &accounts).await;
    let mut app = App::start(&node).await;

    let mut envs = vec![
        ("WARDGATE_BASE_URL", base.clone()),
        ("WARDGATE_BOOTSTRAP_URL", bootstrap),
        ("WARDGATE_ENROLL_URL", link.url),
        ("WARDGATE_ADMIN", "rsmith".into()),
        ("WARDGATE_USER", "jdoe".into()),
        ("WARDGATE_PASSPHRASE", PASS.into()),
        ("WARDGATE_REFUSING_BASE_URL", refusing_base.clone()),
        ("WARDGATE_REFUSING_BOOTSTRAP_URL", refusing_bootstrap),
        ("WARDGATE_CHROMIUM", chromium().display().to_string()),
        ("WARDGATE_SCREENSHOTS", dir.path().join("screenshots").display().to_string()),
    ];
    envs.extend(app.envs());
    let out_dir = dir.path().to_owned();
    let mut flows = tokio::task::spawn_blocking(move || run_flows(envs, &out_dir));
    // The application redeems its code as it arrives (a code lives a minute), while the
    // scenarios after the step-up go on.
    // The person's sessions are read then too: the help-desk recovery of scenario 6 ends
    // them later.
    let mut redeemed = None;
    let mut jdoe_sessions = Vec::new();
    let (ok, output) = loop {
        tokio::select! {
            done = &mut flows => break done.unwrap(),
            Some(callback) = app.callbacks.recv(), if redeemed.is_none() => {
                let answer = app.redeem(&node, &callback).await;
                if let Some(id_token) = answer.1["id_token"].as_str() {
                    let sub = claims_of(id_token)["sub"].as_str().unwrap_or("").to_owned();
                    jdoe_sessions = node.store.sessions_of(&sub).await.unwrap();
                }
                redeemed = Some((callback, answer));
            }
        }
    };
    let audit = audit_of(node).await;
    if !ok {
        // The server's side of a refusal is in its audit log; the page shows only the words.
        let refusing_audit = audit_of(refusing).await;
        panic!(
            "the browser flows failed:\n{output}\n\nsign-in records at {base}:\n{}\n\nsign-in records at {refusing_base} (refusing copied keys):\n{}",
            auth_records(&audit),
            auth_records(&refusing_audit)
        );
    }
    println!("{output}");

    // The genuine key, then its copy, let through (the default).
    let admin = logins(&audit, "rsmith");
    assert_eq!(admin.len(), 2, "two sign-ins after enrollment, the genuine passkey's and its copy's: {admin:?}");
    for login in &admin {
        assert!(has(login, "hwk"), "{login}");
        assert_eq!(login["details"]["aal"], "aal3", "{login}");
    }
    let regression = counter_regression(&audit, &factor_of(&audit, admin[0]));
    assert_eq!(regression["outcome"], "success", "the default lets a copied key through: {regression}");
    assert_eq!(
        regression["correlation_id"], admin[1]["correlation_id"],
        "audited under the copy's sign-in: {regression}"
    );

    let user = logins(&audit, "jdoe");
    assert_eq!(
        user.len(),
        5,
        "five sign-ins after enrollment (passphrase + code twice, the key at the step-up, passphrase + the replacement app's code, then passphrase + the key from the recovery link):\n{}",
        auth_records(&audit)
    );
    for login in [user[0], user[1], user[3]] {
        assert!(has(login, "pwd") && has(login, "otp"), "{login}");
        assert_eq!(login["details"]["aal"], "aal2", "{login}");
    }

    // The wrong code the script typed first is on record, under the same login.
    let corr = &user[0]["correlation_id"];
    assert!(
        audit.iter().any(|r| r["type"] == "auth.factor.failed" && r["correlation_id"] == *corr),
        "the refused code is not audited under correlation id {corr}"
    );
    // Both enrollments finished and both people signed out through the page.
    for who in ["rsmith", "jdoe"] {
        assert!(audit.iter().any(|r| r["type"] == "enrollment.completed" && r["subject"] == who), "{who} enrolled");
    }
    assert!(audit.iter().filter(|r| r["type"] == "auth.session.ended").count() >= 2, "two sign-outs audited");

    step_up(&audit, &app, redeemed, &jdoe_sessions, user[1], user[2]);
    replacement(&audit, user[2], user[3]);
    recovered(&audit, user[4]);

    // With `auth.webauthn_refuse_counter_regression`, the copy is refused: no session.
    let audit = audit_of(refusing).await;
    let admin = logins(&audit, "rsmith");
    assert_eq!(admin.len(), 1, "only the genuine passkey signs in: {admin:?}");
    let regression = counter_regression(&audit, &factor_of(&audit, admin[0]));
    assert_eq!(regression["outcome"], "denied", "the policy refuses a copied key: {regression}");
    let corr = &regression["correlation_id"];
    assert_ne!(*corr, admin[0]["correlation_id"], "the refusal belongs to the copy's sign-in: {regression}");
    assert!(
        audit.iter().any(|r| r["type"] == "auth.factor.failed" && r["correlation_id"] == *corr),
        "the copy's sign-in (correlation id {corr}) has no auth.factor.failed"
    );
}

/// Two colleagues at the help desk for scenario 6, active without signing in (they act
/// through `App`'s help-desk endpoint): hank opens recoveries, sue approves them.
async fn help_desk(node: &Node, accounts: &Accounts<'_>) {
    let people = [("hank", "helpdesk", false), ("sue", "security-admin", true)];
    for (name, role, privileged) in people {
        let new = NewUser {
            username: name.into(),
            display_name: Some(name.into()),
            roles: vec![role.into()],
            privileged,
            ..NewUser::default()
        };
        let (user, _) = accounts.invite(new, "http://localhost").await.unwrap();
        let active = wardgate_core::identity::User { status: wardgate_core::identity::AccountStatus::Active, ..user };
        let e = wardgate_core::audit::AuditEvent::known(
            OffsetDateTime::now_utc(),
            wardgate_core::audit::event::types::ADMIN_USER_ENABLED,
            wardgate_core::audit::Outcome::Success,
        )
        .subject(name);
        node.store.update_user(&active, &e).await.unwrap();
    }
}

/// Issue 4's step-up, from the application's side and the auditor's: the code the browser
/// brought back (`redeemed`: the callback URL and the token endpoint's answer) gives an ID
/// token at aal3 from the key alone, for the session the key made after the aal2 sign-in.
fn step_up(
    audit: &[Value],
    app: &App,
    redeemed: Option<(String, (reqwest::StatusCode, Value))>,
    sessions: &[wardgate_core::session::Session],
    aal2_login: &Value,
    key_login: &Value,
) {
    let (callback, (status, tokens)) =
        redeemed.expect("the browser reached the callback, yet the application saw no request");
    assert_eq!(query_param(&callback, "state").as_deref(), Some(app.state.as_str()), "{callback}");
    assert_eq!(status, reqwest::StatusCode::OK, "the code from {callback} was not redeemed: {tokens}");
    let id_token = tokens["id_token"].as_str().unwrap_or_else(|| panic!("no ID token: {tokens}"));
    let claims = claims_of(id_token);
    println!("step-up ID token: acr {}, amr {}, auth_time {}", claims["acr"], claims["amr"], claims["auth_time"]);
    assert_eq!(claims["aud"], app.client_id.as_str(), "{claims}");
    // RFC 9207: the issuer the callback named is the one that signed.
    assert_eq!(query_param(&callback, "iss").as_deref(), claims["iss"].as_str(), "{callback} {claims}");
    assert_eq!(claims["nonce"], app.nonce.as_str(), "{claims}");
    assert_eq!(claims["acr"], "urn:wardgate:aal3", "the ID token after the step-up: {claims}");
    let amr: Vec<&str> =
        claims["amr"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(amr.contains(&"hwk"), "the step-up's amr lacks hwk: {claims}");
    // Only the key was asked for; the passphrase and code belong to the aal2 sign-in.
    assert!(
        !amr.contains(&"otp") && !amr.contains(&"pwd"),
        "the step-up's amr names factors it did not ask for: {claims}"
    );

    // The key's sign-in, in the audit log: the key alone, at aal3, the session in the token.
    assert!(has(key_login, "hwk") && !has(key_login, "pwd") && !has(key_login, "otp"), "{key_login}");
    assert_eq!(key_login["details"]["aal"], "aal3", "{key_login}");
    assert_eq!(
        claims["sid"], key_login["details"]["session_id"],
        "the ID token's session is the key's sign-in's: {key_login}"
    );
    assert_eq!(claims["sub"], key_login["details"]["user_id"], "{key_login}");
    let added: Vec<&Value> = audit
        .iter()
        .filter(|r| r["type"] == "account.factor.added" && r["subject"] == "jdoe" && r["details"]["kind"] == "webauthn")
        .collect();
    assert!(added.len() == 1, "one security key added on the account page: {added:?}");
    assert_eq!(factor_of(audit, key_login), added[0]["details"]["factor_id"], "the step-up used the key just added");

    // auth_time is the key's sign-in, after the aal2 one (to the second the claim has).
    let id = &key_login["details"]["session_id"];
    let stepped = sessions.iter().find(|s| s.id == *id).unwrap_or_else(|| panic!("no live session {id}: {key_login}"));
    assert_eq!(stepped.aal, Aal::Aal3, "{key_login}");
    let aal2_at = aal2_login["ts"].as_str().and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let aal2_at = aal2_at.unwrap_or_else(|| panic!("no time on {aal2_login}"));
    assert!(
        stepped.created_at > aal2_at,
        "the key's session ({}) is older than the aal2 sign-in {aal2_login}",
        stepped.created_at
    );
    let auth_time = claims["auth_time"].as_i64().unwrap_or_else(|| panic!("no auth_time: {claims}"));
    assert_eq!(auth_time, stepped.created_at.unix_timestamp(), "auth_time is not the key's sign-in: {claims}");
    assert!(auth_time >= aal2_at.unix_timestamp(), "auth_time is before the aal2 sign-in {aal2_login}: {claims}");

    // The authorization and the grant, under the key's sign-in.
    let corr = &key_login["correlation_id"];
    let of = |t: &'static str| audit.iter().filter(move |r| r["type"] == t && r["subject"] == "jdoe");
    let authorized: Vec<&Value> = of("oidc.authorization").collect();
    assert!(
        authorized.iter().any(|r| r["outcome"] == "success"
            && r["correlation_id"] == *corr
            && r["details"]["client_id"] == app.client_id.as_str()),
        "no successful oidc.authorization under the key's sign-in ({corr}): {authorized:?}"
    );
    let granted: Vec<&Value> = of("oidc.grant.issued").collect();
    assert!(
        granted.iter().any(|r| r["outcome"] == "success"
            && r["correlation_id"] == *corr
            && r["details"]["acr"] == "urn:wardgate:aal3"
            && has(r, "hwk")),
        "no oidc.grant.issued at aal3 under the key's sign-in ({corr}): {granted:?}"
    );
}

/// Issue 8's self-service replacement with a security key, as the auditor sees it: the lost
/// app was removed after the key (the one from the step-up) signed a challenge, the new app
/// was added after that, the lost app's code was refused, and the new app signed in.
fn replacement(audit: &[Value], key_login: &Value, new_app_login: &Value) {
    let position = |pred: &dyn Fn(&Value) -> bool| audit.iter().position(pred);
    let replaced_at = position(&|r| r["type"] == "account.factor.replaced" && r["subject"] == "jdoe")
        .unwrap_or_else(|| panic!("no account.factor.replaced for jdoe"));
    let replaced = &audit[replaced_at];
    assert_eq!(replaced["details"]["kind"], "totp", "the app was the factor replaced: {replaced}");
    assert_eq!(
        replaced["details"]["step_up_factor_id"],
        factor_of(audit, key_login),
        "the replacement was confirmed by the security key: {replaced}"
    );
    assert!(has(replaced, "hwk") && !has(replaced, "pwd"), "the step-up factor is on record: {replaced}");
    let lost = &replaced["details"]["factor_id"];
    let added = audit[replaced_at..]
        .iter()
        .find(|r| r["type"] == "account.factor.added" && r["subject"] == "jdoe" && r["details"]["kind"] == "totp")
        .unwrap_or_else(|| panic!("no authenticator app added after the replacement: {replaced}"));
    let new_app = &added["details"]["factor_id"];
    assert_ne!(new_app, lost, "{added}");
    assert!(
        audit[replaced_at..].iter().any(|r| r["type"] == "auth.factor.failed" && r["subject"] == "jdoe"),
        "the lost app's code after the replacement is not audited as refused:\n{}",
        auth_records(audit)
    );
    let corr = &new_app_login["correlation_id"];
    assert!(
        audit.iter().any(|r| r["type"] == "auth.factor.passed"
            && r["correlation_id"] == *corr
            && r["details"]["factor_id"] == *new_app),
        "the last sign-in did not use the new app {new_app}: {new_app_login}"
    );
}

/// Issue 8's help-desk recovery, as the auditor sees it: opened by hank, approved by sue,
/// the link enrolled one security key and retired the two second factors the person had
/// (the replacement app and the first key), and the next sign-in used the new key.
fn recovered(audit: &[Value], login: &Value) {
    let of = |t: &str| audit.iter().filter(move |r| r["type"] == t && r["subject"] == "jdoe").collect::<Vec<_>>();
    let opened = of("recovery.opened");
    assert!(opened.len() == 1 && opened[0]["details"]["opened_by"] == "hank", "{opened:?}");
    let approved = of("recovery.approved");
    assert!(approved.len() == 1 && approved[0]["details"]["approver"] == "sue", "{approved:?}");
    let done = of("recovery.completed");
    assert_eq!(done.len(), 1, "{done:?}");
    let done = done[0];
    assert_eq!(done["details"]["kind"], "webauthn", "{done}");
    let retired = done["details"]["retired_factor_ids"].as_array().map(Vec::len);
    assert_eq!(retired, Some(2), "the lost app and key are retired with the link: {done}");
    assert!(audit.iter().any(|r| r["type"] == "recovery.link.refused"), "the link's second use is on record");
    assert!(has(login, "hwk") && has(login, "pwd") && !has(login, "otp"), "{login}");
    assert_eq!(login["details"]["aal"], "aal3", "{login}");
    assert_eq!(passes_with(audit, login, &done["details"]["factor_id"]), 1, "the sign-in used the new key: {login}");
}

/// How many `auth.factor.passed` records of the sign-in `login` name `factor_id`.
fn passes_with(audit: &[Value], login: &Value, factor_id: &Value) -> usize {
    audit
        .iter()
        .filter(|r| {
            r["type"] == "auth.factor.passed"
                && r["correlation_id"] == login["correlation_id"]
                && r["details"]["factor_id"] == *factor_id
        })
        .count()
}
