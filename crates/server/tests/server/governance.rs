//! Break-glass against the real server: who may open it, what it grants and for how long,
//! the alerts it sends and the records it leaves.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;
use wardgate_server::governance::breakglass;

use crate::gateway::{nurse_signs_in, nurse_under_policy};
use crate::login::{Harness, advance, clock, start_with};
use crate::problem;

const POLICY: &str = r#"
[roles.nurse]
permissions = ["ephi.read", "breakglass.invoke"]

[roles.supervisor]
permissions = ["breakglass.review"]

[[rule]]
name = "sign-in"
actions = ["login", "sso"]
require = "aal2"

[[rule]]
name = "chart"
actions = ["ephi.read"]
require = "aal2"

[[rule]]
name = "no-bulk-export"
actions = ["ephi.export.bulk"]
deny = "bulk export is never allowed"
"#;

/// A webhook receiver: every JSON body it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(v);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

async fn csrf(h: &Harness, cookie: &str) -> String {
    let me: Value =
        h.http.get(h.url("/api/v1/me")).header("cookie", cookie).send().await.unwrap().json().await.unwrap();
    me["csrf_token"].as_str().unwrap().to_owned()
}

async fn open(h: &Harness, cookie: &str, body: Value) -> reqwest::Response {
    let token = csrf(h, cookie).await;
    h.http
        .post(h.url("/api/v1/breakglass"))
        .header("cookie", cookie)
        .header("x-csrf-token", token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn authorize(h: &Harness, cookie: &str, action: &str) -> Value {
    let resp = h
        .http
        .post(h.url("/api/v1/authorize"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf(h, cookie).await)
        .json(&json!({"action": action}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn end(h: &Harness, cookie: &str, id: &str) -> StatusCode {
    let token = csrf(h, cookie).await;
    let url = h.url(&format!("/api/v1/breakglass/{id}/end"));
    h.http.post(url).header("cookie", cookie).header("x-csrf-token", token).send().await.unwrap().status()
}

const WHY: &str = "Code blue in bed 12, attending unreachable, need the medication history";

#[tokio::test]
async fn break_glass_needs_a_reason_and_justification_grants_for_its_window_only_and_alerts() {
    let (hook, received) = receiver().await;
    let syslog = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let syslog_addr = syslog.local_addr().unwrap().to_string();
    let h = start_with(|s| {
        s.governance.breakglass_minutes = 5;
        s.governance.alert_webhook_url = Some(hook.clone());
        s.governance.alert_syslog = Some(syslog_addr.clone());
    })
    .await;
    let secret = nurse_under_policy(&h, POLICY).await;
    let nina = nurse_signs_in(&h, &secret).await;

    // Nurses may not export; no emergency access yet.
    let before = authorize(&h, &nina, "ephi.export").await;
    assert_eq!(before["decision"], "deny", "{before}");

    // Without a justification, with a short one, with an unlisted reason: refused.
    for (body, detail) in [
        (json!({"reason_code": "code-blue", "justification": ""}), "characters"),
        (json!({"reason_code": "code-blue", "justification": "urgent"}), "at least 20"),
        (json!({"reason_code": "curiosity", "justification": WHY}), "unknown reason code"),
    ] {
        let (status, p) = problem(open(&h, &nina, body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(detail), "{p}");
    }
    // No CSRF token: refused before anything else.
    let no_csrf = h
        .http
        .post(h.url("/api/v1/breakglass"))
        .header("cookie", &nina)
        .json(&json!({"reason_code": "code-blue", "justification": WHY}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    assert_eq!(authorize(&h, &nina, "ephi.export").await["decision"], "deny");

    let resp = open(&h, &nina, json!({"reason_code": "code-blue", "justification": WHY})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let bg: Value = resp.json().await.unwrap();
    let id = bg["id"].as_str().unwrap().to_owned();
    assert_eq!(bg["active"], true);

    // The session is visibly marked.
    let me: Value = h.http.get(h.url("/api/v1/me")).header("cookie", &nina).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["break_glass"][0]["id"], id.as_str(), "{me}");
    let page = h.http.get(h.url("/account")).header("cookie", &nina).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("action=\"/account/breakglass\""), "no second form while one is open");
    assert!(page.contains("Break-glass emergency access (code-blue) is in force until"), "{page}");

    // Granted for the window: a deny becomes an allow under the break-glass rule…
    let during = authorize(&h, &nina, "ephi.export").await;
    assert_eq!((&during["decision"], &during["rule"]), (&json!("allow"), &json!(breakglass::RULE)), "{during}");
    // …but never Wardgate's own administration, nor what an explicit deny rule refuses.
    assert_eq!(authorize(&h, &nina, "admin.users").await["decision"], "deny");
    let bulk = authorize(&h, &nina, "ephi.export.bulk").await;
    assert_eq!((&bulk["decision"], &bulk["rule"]), (&json!("deny"), &json!("no-bulk-export")), "{bulk}");

    // The webhook got the documented body; syslog got an RFC 5424 alert.
    let mut body = None;
    for _ in 0..50 {
        if let Some(v) = received.lock().unwrap().first().cloned() {
            body = Some(v);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let body = body.expect("the webhook was called");
    for key in [
        "version",
        "event",
        "severity",
        "id",
        "username",
        "display_name",
        "reason_code",
        "justification",
        "opened_at",
        "expires_at",
        "client_ip",
        "session_id",
        "node",
        "server",
    ] {
        assert!(body.get(key).is_some(), "{key} missing from {body}");
    }
    assert_eq!(body["event"], "breakglass.opened");
    assert_eq!(body["severity"], "high");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["username"], "nina");
    assert_eq!(body["reason_code"], "code-blue");
    assert_eq!(body["justification"], WHY);
    let mut buf = vec![0u8; 8192];
    let (n, _) =
        tokio::time::timeout(std::time::Duration::from_secs(5), syslog.recv_from(&mut buf)).await.unwrap().unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(line.starts_with("<81>1 ") && line.contains(" wardgate - breakglass.opened - {"), "{line}");

    // And no longer: past the window the policy decides again.
    advance(Duration::minutes(6));
    let after = authorize(&h, &nina, "ephi.export").await;
    assert_eq!(after["decision"], "deny", "{after}");
    let me: Value = h.http.get(h.url("/api/v1/me")).header("cookie", &nina).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["break_glass"], json!([]));

    // The records: refusals and the opening at high severity, the allow naming the access.
    let records = h.audit().await;
    let of = |t: &str| records.iter().filter(|r| r["type"] == t).collect::<Vec<_>>();
    assert_eq!(of("breakglass.refused").len(), 3);
    let opened = of("breakglass.opened");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["details"]["severity"], "high");
    assert_eq!(opened[0]["details"]["breakglass_id"], id.as_str());
    assert_eq!(opened[0]["reason"], WHY);
    assert_eq!(opened[0]["subject"], "nina");
    let allowed: Vec<_> =
        of("policy.decision").into_iter().filter(|r| r["details"]["rule"] == breakglass::RULE).collect();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["details"]["breakglass_id"], id.as_str());
    assert_eq!(allowed[0]["details"]["policy_rule"], "builtin:no-permission");
    let _ = clock();
}

#[tokio::test]
async fn break_glass_without_the_permission_is_refused_and_recorded() {
    let h = start_with(|_| {}).await;
    let policy = POLICY.replace(r#"["ephi.read", "breakglass.invoke"]"#, r#"["ephi.read"]"#);
    let secret = nurse_under_policy(&h, &policy).await;
    let nina = nurse_signs_in(&h, &secret).await;
    let (status, p) = problem(open(&h, &nina, json!({"reason_code": "code-blue", "justification": WHY})).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("breakglass.invoke"));
    let records = h.audit().await;
    let refused: Vec<_> = records.iter().filter(|r| r["type"] == "breakglass.refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["outcome"], "denied");
}

// --- reviews, elevation, vendors, dormancy: the services the CLI calls, on a real node ---

use wardgate_core::governance::{Decision, DefaultAction, ReviewOutcome, Scope};
use wardgate_core::identity::{AccountStatus, User, Username};
use wardgate_core::policy::Policy;
use wardgate_core::settings::Settings;
use wardgate_server::Node;
use wardgate_server::accounts::{Accounts, NewUser};
use wardgate_server::governance::{GovernanceError, elevation, holds, reviews, sweep, vendors};

/// An active account made directly in the store (no factors: it only decides things).
async fn person(h: &Harness, name: &str, roles: &[&str], privileged: bool) -> User {
    let mut u = User::new(
        wardgate_core::token::random_id().unwrap(),
        Username::parse(name).unwrap(),
        name.to_owned(),
        AccountStatus::Active,
        clock(),
    )
    .with_roles(roles.iter().map(|r| r.to_string()));
    u.privileged = privileged;
    let e = wardgate_core::audit::AuditEvent::known(
        clock(),
        wardgate_core::audit::event::types::ADMIN_USER_INVITED,
        wardgate_core::audit::Outcome::Success,
    );
    h.node.store.create_user(&u, &[], &e).await.unwrap();
    u
}

fn types_of(records: &[Value]) -> Vec<&str> {
    records.iter().filter_map(|r| r["type"].as_str()).collect()
}

#[tokio::test]
async fn a_reviewer_cannot_review_their_own_break_glass_and_needs_the_review_permission() {
    let h = start_with(|_| {}).await;
    let secret = nurse_under_policy(&h, POLICY).await;
    let nina = nurse_signs_in(&h, &secret).await;
    let bg: Value =
        open(&h, &nina, json!({"reason_code": "code-blue", "justification": WHY})).await.json().await.unwrap();
    let id = bg["id"].as_str().unwrap();
    person(&h, "sam", &["supervisor"], false).await;
    person(&h, "olga", &["nurse"], false).await;
    let store = &*h.node.store;
    let policy = Policy::parse(POLICY).unwrap();
    let r = breakglass::review(store, &policy, "operator:t", id, "nina", ReviewOutcome::Justified, "", clock()).await;
    assert!(matches!(&r, Err(GovernanceError::NotPermitted(m)) if m.contains("breakglass.review")), "{r:?}");
    // Even holding the permission, the invoker cannot review herself.
    let policy_self = Policy::parse(&POLICY.replace(
        r#"["ephi.read", "breakglass.invoke"]"#,
        r#"["ephi.read", "breakglass.invoke", "breakglass.review"]"#,
    ))
    .unwrap();
    let r =
        breakglass::review(store, &policy_self, "operator:t", id, "nina", ReviewOutcome::Justified, "", clock()).await;
    assert!(matches!(&r, Err(GovernanceError::Refused(m)) if m.contains("person who invoked")), "{r:?}");
    let r = breakglass::review(store, &policy, "operator:t", id, "olga", ReviewOutcome::Justified, "", clock()).await;
    assert!(r.is_err(), "olga has no breakglass.review");
    // Overdue after the review window, until reviewed.
    assert_eq!(breakglass::overdue(store, time::Duration::days(7), clock() + Duration::days(8)).await.unwrap(), 1);
    breakglass::review(
        store,
        &policy,
        "operator:t",
        id,
        "sam",
        ReviewOutcome::NeedsFollowUp,
        "ask nina about bed 12",
        clock(),
    )
    .await
    .unwrap();
    let again =
        breakglass::review(store, &policy, "operator:t", id, "sam", ReviewOutcome::Justified, "", clock()).await;
    assert!(again.is_err(), "one finding per access");
    assert_eq!(breakglass::overdue(store, time::Duration::days(7), clock() + Duration::days(8)).await.unwrap(), 0);
    // The person ends it early; it no longer grants, and stays reviewed.
    assert_eq!(authorize(&h, &nina, "ephi.export").await["decision"], "allow");
    assert_eq!(end(&h, &nina, id).await, StatusCode::NO_CONTENT);
    assert_eq!(end(&h, &nina, id).await, StatusCode::CONFLICT);
    assert_eq!(authorize(&h, &nina, "ephi.export").await["decision"], "deny");
    let records = h.audit().await;
    assert_eq!(records.iter().filter(|r| r["type"] == "breakglass.ended").count(), 1);
    let reviewed: Vec<_> = records.iter().filter(|r| r["type"] == "breakglass.reviewed").collect();
    assert_eq!(reviewed.len(), 1);
    assert_eq!(reviewed[0]["details"]["reviewer"], "sam");
    assert_eq!(reviewed[0]["details"]["outcome"], "needs_follow_up");
    assert_eq!(reviewed[0]["subject"], "nina");
}

#[tokio::test]
async fn a_jit_role_expires_after_its_window_even_when_no_node_ran_across_the_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    settings.server.listen = "127.0.0.1:0".into();
    let node = Node::start_with_clock(settings.clone(), clock).await.unwrap();
    let h = Harness { node, http: crate::http_client(), _dir: tempfile::tempdir().unwrap() };
    person(&h, "rita", &[], true).await;
    person(&h, "sam", &[], true).await;
    let store = &*h.node.store;
    let policy = wardgate_server::roles::catalog(store).await.unwrap();
    let max = settings.governance.elevation_max();

    let too_long = elevation::request(
        store,
        &policy,
        "operator:t",
        "rita",
        "security-admin",
        Duration::hours(9),
        max,
        "incident 4411",
        clock(),
    )
    .await;
    assert!(too_long.is_err(), "longer than governance.elevation_max_hours");
    let e = elevation::request(
        store,
        &policy,
        "operator:t",
        "rita",
        "security-admin",
        Duration::hours(2),
        max,
        "incident 4411",
        clock(),
    )
    .await
    .unwrap();
    // Two-person rule: the requester cannot approve her own request.
    let own = elevation::approve(store, "operator:t", &e.id, "rita", clock()).await;
    assert!(matches!(&own, Err(GovernanceError::Refused(m)) if m.contains("person who made it")), "{own:?}");
    elevation::approve(store, "operator:t", &e.id, "sam", clock()).await.unwrap();
    let rita = store.user_by_username(&Username::parse("rita").unwrap()).await.unwrap().unwrap();
    assert!(holds(&policy, &rita, "admin.policy", clock()), "the role grants while in force");
    let node = h.node;
    node.stop().await;

    // Nobody runs across the expiry.
    advance(Duration::hours(2) + Duration::minutes(1));
    let node = Node::start_with_clock(settings, clock).await.unwrap();
    let rita = node.store.user_by_username(&Username::parse("rita").unwrap()).await.unwrap().unwrap();
    assert!(!rita.roles_at(clock()).contains(&"security-admin".to_owned()));
    assert!(!holds(&policy, &rita, "admin.policy", clock()), "expired at the first decision after the restart");
    let records: Vec<Value> = node
        .store
        .audit_records(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let t = types_of(&records);
    assert!(t.contains(&"elevation.requested") && t.contains(&"elevation.approved"), "{t:?}");
    let approved = records.iter().find(|r| r["type"] == "elevation.approved").unwrap();
    assert_eq!(approved["details"]["approver"], "sam");
    assert_eq!(approved["subject"], "rita");
    node.stop().await;
}

#[tokio::test]
async fn a_vendor_account_past_its_agreement_cannot_sign_in_and_its_sessions_end() {
    let h = start_with(|_| {}).await;
    h.enroll_admin("rita").await;
    let store = &*h.node.store;
    let today = clock().date();
    vendors::add(
        store,
        "operator:t",
        "acme-imaging",
        "Acme Imaging",
        "BAA-2026-17",
        today - Duration::days(30),
        today + Duration::days(365),
        "rita",
        clock(),
    )
    .await
    .unwrap();
    let auth = Settings::default().auth;
    let accounts = Accounts::new(store, "operator:t", clock(), &auth);
    let new = |expires| NewUser {
        username: "victor".into(),
        vendor: Some("acme-imaging".into()),
        account_expires: expires,
        roles: vec!["vendor-support".into()],
        ..NewUser::default()
    };
    assert!(accounts.invite(new(None), &h.node.base_url).await.is_err(), "a vendor account needs an expiry");
    assert!(
        accounts.invite(new(Some(clock() + Duration::days(400))), &h.node.base_url).await.is_err(),
        "not later than the agreement"
    );
    let (_, link) = accounts.invite(new(Some(clock() + Duration::days(1))), &h.node.base_url).await.unwrap();
    let victor = h.enroll(link.url.split("token=").nth(1).unwrap()).await;
    let resp = h.login_totp("victor", &victor.totp_secret, 1).await;
    let cookie = crate::login::session_cookie(&resp).unwrap();
    let hr = &h;
    let me =
        |c: String| async move { hr.http.get(hr.url("/api/v1/me")).header("cookie", c).send().await.unwrap().status() };
    assert_eq!(me(cookie.clone()).await, StatusCode::OK);
    let u = store.user_by_username(&Username::parse("victor").unwrap()).await.unwrap().unwrap();
    assert!(u.last_login_at.is_some(), "the sign-in is recorded for dormancy");

    advance(Duration::days(1) + Duration::minutes(1));
    // Past the expiry the session stops working at once, before any sweep…
    assert_eq!(me(cookie.clone()).await, StatusCode::UNAUTHORIZED);
    // …and the passphrase no longer opens a sign-in.
    let flow = h.start_login("victor").await;
    let step = h.post("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": crate::login::PASS})).await;
    assert_ne!(step.status(), StatusCode::OK);
    // The sweep disables the account and ends its sessions.
    let swept = sweep::run(store, &Settings::default().governance, "node:test", clock()).await.unwrap();
    assert_eq!(swept.expired, 1);
    let u = store.user_by_username(&Username::parse("victor").unwrap()).await.unwrap().unwrap();
    assert_eq!(u.status, AccountStatus::Disabled);
    assert!(store.sessions_of(&u.id).await.unwrap().is_empty(), "its sessions ended");
    let records = h.audit().await;
    let expired: Vec<_> = records.iter().filter(|r| r["type"] == "account.expired").collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["subject"], "victor");
    assert_eq!(expired[0]["details"]["vendor"], "acme-imaging");
    assert!(types_of(&records).contains(&"vendor.created"));
    let failed = records
        .iter()
        .filter(|r| r["type"] == "auth.factor.failed" && r["subject"] == "victor")
        .any(|r| r["reason"] == "account expired");
    assert!(failed, "the refused sign-in says why");
}

#[tokio::test]
async fn a_campaign_revocation_removes_the_role_at_once_and_the_deadline_applies_the_default() {
    let h = start_with(|_| {}).await;
    h.enroll_admin("rita").await;
    person(&h, "nina", &["nurse"], false).await;
    person(&h, "noah", &["nurse"], false).await;
    person(&h, "sam", &["nurse"], false).await;
    person(&h, "mara", &[], false).await;
    let store = &*h.node.store;
    let deadline = clock() + Duration::days(14);
    let scope = Scope::parse("role:nurse").unwrap();
    let (c, items) =
        reviews::start(store, "operator:t", scope, "mara", deadline, DefaultAction::Revoke, clock()).await.unwrap();
    assert_eq!(items.iter().map(|i| i.username.as_str()).collect::<Vec<_>>(), ["nina", "noah", "sam"]);
    let item = |n: &str| items.iter().find(|i| i.username.as_str() == n).unwrap().id.clone();
    // Only the named reviewer decides.
    assert!(reviews::decide(store, "operator:t", &item("nina"), "sam", Decision::Revoke, "", clock()).await.is_err());
    reviews::decide(store, "operator:t", &item("nina"), "mara", Decision::Revoke, "moved to registration", clock())
        .await
        .unwrap();
    let nina = store.user_by_username(&Username::parse("nina").unwrap()).await.unwrap().unwrap();
    assert!(!nina.roles.contains(&"nurse".to_owned()), "revoked at once");
    reviews::decide(store, "operator:t", &item("noah"), "mara", Decision::Keep, "", clock()).await.unwrap();
    // A second campaign that escalates instead.
    let scope = Scope::parse("role:nurse").unwrap();
    let (esc, _) =
        reviews::start(store, "operator:t", scope, "mara", deadline, DefaultAction::Escalate, clock()).await.unwrap();
    // Sam's item is left; at the deadline the node's sweep applies the default (revoke).
    advance(Duration::days(14) + Duration::minutes(1));
    let swept = sweep::run(store, &Settings::default().governance, "node:test", clock()).await.unwrap();
    assert_eq!((swept.campaigns_closed, swept.campaigns_escalated), (1, 1));
    assert!(store.campaign(&esc.id).await.unwrap().unwrap().is_open(), "escalated items wait for a person");
    assert!(store.campaign_items(&esc.id).await.unwrap().iter().all(|i| i.decision.is_none()));
    let sam = store.user_by_username(&Username::parse("sam").unwrap()).await.unwrap().unwrap();
    assert!(!sam.roles.contains(&"nurse".to_owned()));
    let noah = store.user_by_username(&Username::parse("noah").unwrap()).await.unwrap().unwrap();
    assert!(noah.roles.contains(&"nurse".to_owned()));
    assert!(store.campaign(&c.id).await.unwrap().unwrap().closed_at.is_some());
    let records = h.audit().await;
    let decided: Vec<_> = records.iter().filter(|r| r["type"] == "review.item.decided").collect();
    assert_eq!(decided.len(), 3);
    assert_eq!(decided[2]["details"]["decided_by"], "system:deadline");
    let t = types_of(&records);
    assert!(t.contains(&"review.campaign.started") && t.contains(&"review.campaign.closed"));
}

#[tokio::test]
async fn dormant_accounts_are_disabled_and_recorded() {
    let h = start_with(|_| {}).await;
    h.enroll_admin("rita").await;
    person(&h, "dora", &["nurse"], false).await;
    let store = &*h.node.store;
    let settings = Settings::default().governance;
    let swept = sweep::run(store, &settings, "node:test", clock()).await.unwrap();
    assert_eq!(swept.dormant, 0);
    advance(Duration::days(91));
    let swept = sweep::run(store, &settings, "node:test", clock()).await.unwrap();
    assert_eq!(swept.dormant, 1, "dora; never the last administrator");
    let dora = store.user_by_username(&Username::parse("dora").unwrap()).await.unwrap().unwrap();
    assert_eq!(dora.status, AccountStatus::Disabled);
    let rita = store.user_by_username(&Username::parse("rita").unwrap()).await.unwrap().unwrap();
    assert_eq!(rita.status, AccountStatus::Active);
    let records = h.audit().await;
    let d: Vec<_> = records.iter().filter(|r| r["type"] == "account.dormant_disabled").collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["subject"], "dora");
    assert_eq!(d[0]["details"]["last_login_at"], "never");
}

#[tokio::test]
async fn break_glass_that_cannot_be_recorded_is_refused_with_a_clear_503() {
    let h = start_with(|_| {}).await;
    let secret = nurse_under_policy(&h, POLICY).await;
    let nina = nurse_signs_in(&h, &secret).await;
    let token = csrf(&h, &nina).await;
    // The store fails on break-glass writes (as when the database is unreachable), while
    // the session can still be read.
    let db = h._dir.path().join("data").join("wardgate.db");
    let sql = |q: &'static str| {
        let db = db.clone();
        async move {
            use sqlx::Connection as _;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
            sqlx::query(q).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
    };
    sql("ALTER TABLE break_glass RENAME TO break_glass_gone").await;
    let resp = h
        .http
        .post(h.url("/api/v1/breakglass"))
        .header("cookie", &nina)
        .header("x-csrf-token", &token)
        .json(&json!({"reason_code": "code-blue", "justification": WHY}))
        .send()
        .await
        .unwrap();
    let (status, p) = problem(resp).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("cannot be recorded and is not granted"), "{p}");
    sql("ALTER TABLE break_glass_gone RENAME TO break_glass").await;
    assert_eq!(authorize(&h, &nina, "ephi.export").await["decision"], "deny", "nothing was granted");
    assert!(!h.audit().await.iter().any(|r| r["type"] == "breakglass.opened"));
}

#[tokio::test]
async fn break_glass_opens_from_the_account_page_too() {
    let h = start_with(|_| {}).await;
    let secret = nurse_under_policy(&h, POLICY).await;
    let nina = nurse_signs_in(&h, &secret).await;
    let page = h.http.get(h.url("/account")).header("cookie", &nina).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("action=\"/account/breakglass\"") && page.contains("code-blue"), "{page}");
    let token = csrf(&h, &nina).await;
    let form = [("csrf", token.as_str()), ("reason_code", "code-blue"), ("justification", "short")];
    let resp = h.http.post(h.url("/account/breakglass")).header("cookie", &nina).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let form = [("csrf", token.as_str()), ("reason_code", "code-blue"), ("justification", WHY)];
    let resp = h.http.post(h.url("/account/breakglass")).header("cookie", &nina).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/account?done=breakglass");
    assert_eq!(authorize(&h, &nina, "ephi.export").await["rule"], breakglass::RULE);
}

#[tokio::test]
async fn a_reviewer_revokes_from_the_web_page_and_the_role_goes_at_once() {
    let h = start_with(|_| {}).await;
    let secret = nurse_under_policy(&h, POLICY).await;
    let nina = nurse_signs_in(&h, &secret).await;
    person(&h, "sam", &["supervisor"], false).await;
    let store = &*h.node.store;
    let scope = Scope::parse("role:supervisor").unwrap();
    reviews::start(store, "operator:t", scope, "nina", clock() + Duration::days(14), DefaultAction::Escalate, clock())
        .await
        .unwrap();
    let page =
        h.http.get(h.url("/account/reviews")).header("cookie", &nina).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("role:supervisor") && page.contains("sam"), "{page}");
    let item = page.split("name=\"item\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let token = csrf(&h, &nina).await;
    let form =
        [("csrf", token.as_str()), ("item", item.as_str()), ("decision", "revoke"), ("comment", "left the team")];
    let resp = h.http.post(h.url("/account/reviews/decide")).header("cookie", &nina).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let sam = store.user_by_username(&Username::parse("sam").unwrap()).await.unwrap().unwrap();
    assert!(sam.roles.is_empty(), "revoked at once");
    let records = h.audit().await;
    let d = records.iter().find(|r| r["type"] == "review.item.decided").unwrap();
    assert_eq!(d["actor"], "user:nina");
    assert_eq!(d["details"]["comment"], "left the team");
}

#[tokio::test]
async fn break_glass_opens_a_protected_application_through_the_gateway_for_its_window() {
    let h = start_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.gateway.cookie_domain = Some("wardgate.test".into());
        s.gateway.routes = vec![wardgate_core::settings::GatewayRoute::new("labs", "app.wardgate.test", "/")];
        s.governance.breakglass_minutes = 5;
    })
    .await;
    let secret = nurse_under_policy(&h, POLICY).await;
    let nina = nurse_signs_in(&h, &secret).await;
    let gate = crate::gateway::gateway_cookie(&h, &nina, "https://app.wardgate.test/results?id=7").await;
    let check = || {
        h.http
            .get(h.url("/gate/check"))
            .header("cookie", &gate)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.wardgate.test")
            .header("x-forwarded-uri", "/results?id=7")
            .header("x-forwarded-method", "GET")
            .header("accept", "application/json")
            .send()
    };
    assert_eq!(check().await.unwrap().status(), StatusCode::FORBIDDEN, "nurses have no gateway.labs");
    let resp = open(&h, &nina, json!({"reason_code": "code-blue", "justification": WHY})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = check().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["remote-user"], "nina");
    advance(Duration::minutes(6));
    assert_eq!(check().await.unwrap().status(), StatusCode::FORBIDDEN, "and no longer");
    let records = h.audit().await;
    let allowed: Vec<_> =
        records.iter().filter(|r| r["type"] == "gateway.access" && r["details"]["rule"] == breakglass::RULE).collect();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["details"]["policy_rule"], "builtin:no-permission");
    assert_eq!(allowed[0]["details"]["severity"], "high");
}

#[tokio::test]
async fn vendor_accounts_always_need_a_second_factor_even_where_staff_need_only_one() {
    const ONE_FACTOR: &str = r#"
[roles.nurse]
permissions = ["ephi.read"]

[[rule]]
name = "sign-in"
actions = ["login", "sso"]
require = "aal1"
"#;
    let h = start_with(|_| {}).await;
    nurse_under_policy(&h, ONE_FACTOR).await;
    let store = &*h.node.store;
    let today = clock().date();
    vendors::add(
        store,
        "operator:t",
        "acme",
        "Acme",
        "BAA-1",
        today - Duration::days(1),
        today + Duration::days(90),
        "rita",
        clock(),
    )
    .await
    .unwrap();
    let auth = Settings::default().auth;
    let new = NewUser {
        username: "victor".into(),
        vendor: Some("acme".into()),
        account_expires: Some(clock() + Duration::days(30)),
        ..NewUser::default()
    };
    let (_, link) = Accounts::new(store, "operator:t", clock(), &auth).invite(new, &h.node.base_url).await.unwrap();
    h.enroll(link.url.split("token=").nth(1).unwrap()).await;
    let hr = &h;
    let passphrase = |who: &'static str| async move {
        let flow = hr.start_login(who).await;
        hr.ok("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": crate::login::PASS})).await
    };
    let nina = passphrase("nina").await;
    assert_eq!(nina["status"], "authenticated", "staff: one factor here, {nina}");
    let victor = passphrase("victor").await;
    assert_ne!(victor["status"], "authenticated", "{victor}");
    assert_eq!(victor["next"], json!(["totp", "recovery_code"]), "{victor}");
}

#[tokio::test]
async fn an_override_through_the_admin_api_needs_a_reason_and_records_it() {
    let h = start_with(|_| {}).await;
    let admin = h.enroll_admin("rita").await.session;
    let call = |action: &'static str, body: Option<Value>| {
        let mut req = h
            .http
            .post(h.url(&format!("/api/v1/admin/users/rita/{action}")))
            .header("cookie", &admin.cookie)
            .header("x-csrf-token", &admin.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    for body in [None, Some(json!({})), Some(json!({"reason": "   "}))] {
        let (status, p) = problem(call("unlock", body).await.unwrap()).await;
        assert_eq!(
            (status, p["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("urn:wardgate:problem:reason-required"))
        );
    }
    let (status, _) = problem(call("unlock", Some(json!({"reason": 1}))).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!h.audit().await.iter().any(|r| r["type"] == "admin.user.unlocked"));
    // A failed attempt for the unlock to clear.
    let flow: Value = h.ok("/api/v1/login", json!({"username": "rita"})).await;
    let wrong =
        h.post("/api/v1/login/passphrase", json!({"flow": flow["flow"], "passphrase": "not her passphrase"})).await;
    assert!(wrong.status().is_client_error());
    let resp = call("unlock", Some(json!({"reason": "ticket 4471, badge checked at the desk"}))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let records = h.audit().await;
    let unlocked = records.iter().find(|r| r["type"] == "admin.user.unlocked").expect("the unlock is on record");
    assert_eq!(unlocked["details"]["override_reason"], "ticket 4471, badge checked at the desk");
    assert_eq!(unlocked["subject"], "rita");
}
