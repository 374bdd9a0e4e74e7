//! The pages in a real browser: headless Chromium, driven by `tests/browser/flows.mjs`
//! (Playwright), against the real server. A passkey is enrolled with Chromium's virtual
//! authenticator and used to sign in; a second person enrolls an authenticator app and signs
//! in with passphrase + code. The passkey is then copied (its signature counter set back, as
//! on a cloned key): by default the copy signs in with a warning, and a second node with
//! `auth.webauthn_refuse_counter_regression` refuses it. The audit logs must then tell the
//! same story.
//!
//! Needs Debian's `chromium`, Node.js and `npm ci --prefix crates/server/tests/browser`
//! (`scripts/test` does both). Without them the test says what is missing and passes,
//! unless `WARDGATE_REQUIRE_TOOLS=1` (CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;
use wardgate_core::settings::Settings;
use wardgate_server::Node;
use wardgate_server::accounts::{Accounts, NewUser};

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

    let envs = vec![
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
    let out_dir = dir.path().to_owned();
    let (ok, output) = tokio::task::spawn_blocking(move || run_flows(envs, &out_dir)).await.unwrap();
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
    assert_eq!(user.len(), 1, "one sign-in after enrollment: {user:?}");
    assert!(has(user[0], "pwd") && has(user[0], "otp"), "{}", user[0]);
    assert_eq!(user[0]["details"]["aal"], "aal2", "{}", user[0]);

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
