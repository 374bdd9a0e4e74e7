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

    // Granted for the window: a deny becomes an allow under the break-glass rule…
    let during = authorize(&h, &nina, "ephi.export").await;
    assert_eq!((&during["decision"], &during["rule"]), (&json!("allow"), &json!(breakglass::RULE)), "{during}");
    // …but never Wardgate's own administration.
    assert_eq!(authorize(&h, &nina, "admin.users").await["decision"], "deny");

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
