//! The identity life cycle against the real server (L1-L3): identity proofing before a
//! strong factor, factor expiry and the inventory, self-service replacement after a fresh
//! step-up, and help-desk recovery under a two-person rule with a one-time link.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;
use wardgate_core::factors::totp::{self, TotpParams};
use wardgate_core::lifecycle::ProofingClaim;
use wardgate_server::policies::Policies;

use crate::login::{Harness, PASS, Session, advance, clock, session_cookie, start_with};
use crate::problem;

const POLICY: &str = r#"
[roles.nurse]
permissions = ["ephi.read"]

[roles.helpdesk]
permissions = ["recovery.open", "proofing.record"]

[roles.supervisor]
permissions = ["recovery.approve"]

[roles.it-admin]
permissions = ["admin.users"]

[[rule]]
name = "sign-in"
actions = ["login", "sso"]
require = "aal2"
"#;

async fn activate(h: &Harness, policy: &str) {
    let store = &*h.node.store;
    let v = Policies::new(store, "operator:alice", clock(), true).propose(policy, "lifecycle test").await.unwrap();
    Policies::new(store, "operator:bob", clock(), true).approve(v.number).await.unwrap();
    // The node picks the approval up within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

/// Invites a person through the admin API; their enrollment link's token.
async fn invite(h: &Harness, admin: &Session, body: Value) -> String {
    let resp = h
        .http
        .post(h.url("/api/v1/admin/users"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.unwrap();
    v["enrollment_url"].as_str().unwrap().split("token=").nth(1).unwrap().to_owned()
}

/// Invites and enrolls a person; their authenticator app's secret.
async fn person(h: &Harness, admin: &Session, username: &str, roles: &[&str]) -> Vec<u8> {
    let link = invite(h, admin, json!({"username": username, "display_name": username, "roles": roles})).await;
    h.enroll(&link).await.totp_secret
}

async fn sign_in(h: &Harness, username: &str, secret: &[u8]) -> Session {
    h.session_from(h.login_totp(username, secret, 1).await).await
}

async fn call(h: &Harness, s: &Session, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = h.http.request(method, h.url(path)).header("cookie", &s.cookie).header("x-csrf-token", &s.csrf);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn post(h: &Harness, s: &Session, path: &str, body: Value) -> reqwest::Response {
    call(h, s, reqwest::Method::POST, path, Some(body)).await
}

async fn get(h: &Harness, s: &Session, path: &str) -> Value {
    let resp = call(h, s, reqwest::Method::GET, path, None).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.json().await.unwrap()
}

fn code(secret: &[u8]) -> String {
    totp::code_at(TotpParams::default(), secret, clock()).unwrap()
}

/// A TOTP enrollment in an open flow (`flow`): the new secret.
async fn enroll_totp(h: &Harness, flow: &str) -> Vec<u8> {
    let setup = h.ok("/api/v1/enroll/totp", json!({"flow": flow})).await;
    let secret = totp::secret_from_base32(setup["secret"].as_str().unwrap()).unwrap().to_vec();
    h.ok("/api/v1/enroll/totp/confirm", json!({"flow": flow, "code": code(&secret)})).await;
    secret
}

fn types_of(audit: &[Value]) -> Vec<&str> {
    audit.iter().map(|r| r["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn help_desk_recovery_needs_two_other_people_and_its_link_enrolls_one_factor_once() {
    let h = start_with(|_| {}).await;
    let rita = h.enroll_admin("rita").await.session;
    let nina_secret = person(&h, &rita, "nina", &["nurse", "supervisor"]).await;
    let hank_secret = person(&h, &rita, "hank", &["helpdesk", "supervisor"]).await;
    let sue_secret = person(&h, &rita, "sue", &["supervisor"]).await;
    activate(&h, POLICY).await;
    let hank = sign_in(&h, "hank", &hank_secret).await;
    let sue = sign_in(&h, "sue", &sue_secret).await;
    let nina = sign_in(&h, "nina", &nina_secret).await;
    let why = json!({"username": "nina", "reason": "phone lost on the ward, INC-4411, identity checked by call-back"});

    // Only holders of recovery.open open a request, and never without a reason.
    let (status, _) = problem(post(&h, &sue, "/api/v1/recovery", why.clone()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        problem(post(&h, &hank, "/api/v1/recovery", json!({"username": "nina", "reason": " "})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let resp = post(&h, &hank, "/api/v1/recovery", why.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let opened: Value = resp.json().await.unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    assert_eq!((opened["status"].as_str(), opened["opened_by"].as_str()), (Some("pending"), Some("hank")));

    // Two people: the agent who opened it may not approve it, nor may the person it is about.
    let approve = format!("/api/v1/recovery/{id}/approve");
    let (status, p) = problem(post(&h, &hank, &approve, json!({})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["detail"].as_str().unwrap().contains("someone other than the person who opened it"), "{p}");
    let (status, p) = problem(post(&h, &nina, &approve, json!({})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["detail"].as_str().unwrap().contains("own request"), "{p}");
    let listed = get(&h, &hank, "/api/v1/recovery?pending=true").await;
    assert_eq!(listed["requests"][0]["status"], "pending", "refusals change nothing");

    let resp = post(&h, &sue, &approve, json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let approved: Value = resp.json().await.unwrap();
    let link = approved["link"].as_str().unwrap().to_owned();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    assert!(link.contains("/recover?token="), "{link}");
    let (status, _) = problem(post(&h, &sue, &approve, json!({})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "decided once");
    assert_eq!(get(&h, &hank, "/api/v1/recovery").await["requests"][0]["status"], "approved");
    assert!(get(&h, &hank, "/api/v1/recovery?pending=true").await["requests"].as_array().unwrap().is_empty());

    // The link opens a flow that enrolls a factor; it signs nobody in and sets no passphrase.
    let resp = h.post("/api/v1/recover", json!({"token": token})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(session_cookie(&resp).is_none());
    let begun: Value = resp.json().await.unwrap();
    let flow = begun["flow"].as_str().unwrap().to_owned();
    assert_eq!((begun["username"].as_str(), begun["recovering"].as_bool()), (Some("nina"), Some(true)));
    let (status, _) =
        problem(h.post("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS})).await).await;
    assert_eq!(status, StatusCode::GONE, "a recovery flow is no sign-in");
    let (status, _) = problem(
        h.post("/api/v1/enroll/passphrase", json!({"flow": flow, "passphrase": "another long passphrase here"})).await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "nor a passphrase change");
    let (status, _) = problem(h.post("/api/v1/enroll/finish", json!({"flow": flow})).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "nor an enrollment with recovery codes");
    let new_secret = enroll_totp(&h, &flow).await;
    let resp = h.post("/api/v1/recover/finish", json!({"flow": flow})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(session_cookie(&resp).is_none(), "the link does not sign in");

    // Once: the API and the page both refuse it now, plainly.
    let (status, p) = problem(h.post("/api/v1/recover", json!({"token": token})).await).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::GONE, Some("urn:wardgate:problem:recovery-link-invalid")));
    let page = h.http.get(h.url(&format!("/recover?token={token}"))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains("recovery link cannot be used"));
    assert_eq!(get(&h, &hank, "/api/v1/recovery").await["requests"][0]["status"], "used");

    // The lost app is retired with the link, and the sessions made before it are ended.
    let resp = call(&h, &nina, reqwest::Method::GET, "/api/v1/me", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "a session from before the recovery is over");
    advance(Duration::seconds(30));
    let resp = h.login_totp("nina", &nina_secret, 1).await;
    assert_ne!(resp.status(), StatusCode::OK, "the lost app no longer signs in");

    // The new factor signs in as usual.
    advance(Duration::seconds(30));
    let resp = h.login_totp("nina", &new_secret, 1).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // An approved link that was not used in time is refused too.
    let resp = post(&h, &hank, "/api/v1/recovery", why).await;
    let second: Value = resp.json().await.unwrap();
    let resp = post(&h, &sue, &format!("/api/v1/recovery/{}/approve", second["id"].as_str().unwrap()), json!({})).await;
    let late: Value = resp.json().await.unwrap();
    let late_token = late["link"].as_str().unwrap().split("token=").nth(1).unwrap().to_owned();
    advance(Duration::minutes(16));
    let (status, _) = problem(h.post("/api/v1/recover", json!({"token": late_token})).await).await;
    assert_eq!(status, StatusCode::GONE, "expired after governance.recovery_link_minutes");

    let audit = h.audit().await;
    let t = types_of(&audit);
    assert_eq!(t.iter().filter(|t| **t == "recovery.opened").count(), 2);
    assert!(t.iter().filter(|t| **t == "recovery.refused").count() >= 4, "{t:?}");
    assert_eq!(t.iter().filter(|t| **t == "recovery.approved").count(), 2);
    assert_eq!(t.iter().filter(|t| **t == "recovery.link.refused").count(), 3, "{t:?}");
    let done = audit.iter().find(|r| r["type"] == "recovery.completed").unwrap();
    assert_eq!(done["subject"], "nina");
    assert_eq!(done["details"]["recovery_id"], id.as_str());
    assert_eq!(done["details"]["retired_factor_ids"].as_array().map(Vec::len), Some(1), "the lost app: {done}");
    assert!(
        audit.iter().any(|r| r["type"] == "auth.session.revoked_all"
            && r["subject"] == "nina"
            && r["details"]["recovery_id"] == id.as_str()),
        "the recovery ended nina's sessions on record"
    );
    let body = serde_json::to_string(&audit).unwrap();
    assert!(!body.contains(&token) && !body.contains(&late_token), "links are never recorded");
}

#[tokio::test]
async fn enrollment_is_refused_for_a_role_requiring_proofing_until_a_record_exists() {
    let h = start_with(|_| {}).await;
    let rita = h.enroll_admin("rita").await.session;
    let sam_link = invite(
        &h,
        &rita,
        json!({"username": "sam", "display_name": "Sam Admin", "roles": ["it-admin"], "privileged": true}),
    )
    .await;
    invite(&h, &rita, json!({"username": "lee", "display_name": "Lee"})).await;

    // Through the admin API: a ticket number is recorded, document images and unknown
    // methods are refused.
    let path = "/api/v1/users/lee/proofing";
    let image =
        json!({"method": "in_person", "document": "passport", "evidence_ref": "data:image/jpeg;base64,/9j/4AAQSk"});
    let (status, p) = problem(post(&h, &rita, path, image).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["detail"].as_str().unwrap().contains("image"), "{p}");
    let video = json!({"method": "video", "document": "passport", "evidence_ref": "HR-1"});
    assert_eq!(problem(post(&h, &rita, path, video).await).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let ok =
        json!({"method": "in-person", "document": "drivers-license", "evidence_ref": "HR-1234", "reason": "new hire"});
    let resp = post(&h, &rita, path, ok).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let listed = get(&h, &rita, path).await;
    assert_eq!(listed["proofing"][0]["verified_by"], "rita");
    assert_eq!(listed["proofing"][0]["document"], "drivers_license");

    activate(&h, POLICY).await;
    // Sam's role grants admin.* permissions: no second factor before a proofing record.
    let begun = h.ok("/api/v1/enroll", json!({"token": sam_link})).await;
    let flow = begun["flow"].as_str().unwrap().to_owned();
    h.ok("/api/v1/enroll/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
    let (status, p) = problem(h.post("/api/v1/enroll/totp", json!({"flow": flow})).await).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:wardgate:problem:proofing-required")));
    assert!(p["detail"].as_str().unwrap().contains("it-admin"), "{p}");
    let refused = h.audit().await.into_iter().find(|r| r["type"] == "proofing.required").unwrap();
    assert_eq!((refused["subject"].as_str(), refused["outcome"].as_str()), (Some("sam"), Some("denied")));

    let store = &*h.node.store;
    let policy = wardgate_server::roles::catalog(store).await.unwrap();
    let claim = ProofingClaim {
        method: "in_person".into(),
        document: "passport".into(),
        evidence_ref: "HR-2001".into(),
        reason: String::new(),
    };
    wardgate_server::lifecycle::proofing::record(store, &policy, "operator:test", "sam", "rita", &claim, clock())
        .await
        .unwrap();
    enroll_totp(&h, &flow).await;
    let resp = h.post("/api/v1/enroll/finish", json!({"flow": flow})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let audit = h.audit().await;
    let t = types_of(&audit);
    assert_eq!(t.iter().filter(|t| **t == "proofing.recorded").count(), 2);
    assert!(t.contains(&"enrollment.completed"));
}

/// Rita adds a second authenticator app; its secret and the ids of (first, second).
async fn second_app(h: &Harness, rita: &Session) -> (Vec<u8>, String, String) {
    let resp = post(h, rita, "/api/v1/me/factors", json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let flow = resp.json::<Value>().await.unwrap()["flow"].as_str().unwrap().to_owned();
    let secret = enroll_totp(h, &flow).await;
    let resp = post(h, rita, "/api/v1/me/factors/save", json!({"flow": flow})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let me = get(h, rita, "/api/v1/me").await;
    let apps: Vec<String> = me["factors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "totp")
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(apps.len(), 2);
    (secret, apps[0].clone(), apps[1].clone())
}

#[tokio::test]
async fn self_service_replacement_needs_a_fresh_step_up_with_another_factor() {
    let h = start_with(|_| {}).await;
    let enrolled = h.enroll_admin("rita").await;
    let rita = enrolled.session;
    let (second_secret, lost, kept) = second_app(&h, &rita).await;
    advance(Duration::seconds(30));
    let path = format!("/api/v1/me/factors/{lost}/replace");

    // A session alone, the lost factor's own code, or a wrong code: refused, nothing removed.
    for body in [json!({}), json!({"code": code(&enrolled.totp_secret)}), json!({"code": "000000"})] {
        let (status, p) = problem(post(&h, &rita, &path, body.clone()).await).await;
        assert_eq!(
            (status, p["type"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("urn:wardgate:problem:step-up-required")),
            "{body}"
        );
    }
    let count = |me: &Value| me["factors"].as_array().unwrap().iter().filter(|f| f["kind"] == "totp").count();
    assert_eq!(count(&get(&h, &rita, "/api/v1/me").await), 2);

    // A fresh code of the remaining app: the lost one goes, and its replacement is enrolled.
    let resp = post(&h, &rita, &path, json!({"code": code(&second_secret)})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let flow = resp.json::<Value>().await.unwrap()["flow"].as_str().unwrap().to_owned();
    let me = get(&h, &rita, "/api/v1/me").await;
    assert!(me["factors"].as_array().unwrap().iter().all(|f| f["id"] != lost.as_str()));
    enroll_totp(&h, &flow).await;
    let resp = post(&h, &rita, "/api/v1/me/factors/save", json!({"flow": flow})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(count(&get(&h, &rita, "/api/v1/me").await), 2);

    let audit = h.audit().await;
    let t = types_of(&audit);
    assert_eq!(t.iter().filter(|t| **t == "account.factor.replace_refused").count(), 3);
    let replaced = audit.iter().find(|r| r["type"] == "account.factor.replaced").unwrap();
    assert_eq!(replaced["details"]["factor_id"], lost.as_str());
    assert_eq!(replaced["details"]["step_up_factor_id"], kept.as_str());
}

/// The security-key path of the same step-up, as far as it goes without an authenticator
/// (the browser test answers a real challenge; `reauth`'s unit tests bind a challenge to its
/// session and factor): a challenge is offered only when another key exists, for a factor
/// that can be replaced, and an answer to a challenge this server never issued is refused
/// and recorded without removing anything.
#[tokio::test]
async fn a_security_key_step_up_needs_another_key_and_a_challenge_this_server_issued() {
    let h = start_with(|_| {}).await;
    let enrolled = h.enroll_admin("rita").await;
    let rita = enrolled.session;
    let (_, lost, _) = second_app(&h, &rita).await;
    let challenge = format!("/api/v1/me/factors/{lost}/replace/challenge");

    let (status, p) = problem(post(&h, &rita, &challenge, json!({})).await).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::CONFLICT, Some("urn:wardgate:problem:no-security-key")));
    let (status, _) =
        problem(post(&h, &rita, "/api/v1/me/factors/no-such-factor/replace/challenge", json!({})).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let me = get(&h, &rita, "/api/v1/me").await;
    let codes = me["factors"].as_array().unwrap().iter().find(|f| f["kind"] == "recovery_codes").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, p) =
        problem(post(&h, &rita, &format!("/api/v1/me/factors/{codes}/replace/challenge"), json!({})).await).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::CONFLICT, Some("urn:wardgate:problem:factor-required")));
    // The CSRF token is required like on any change.
    let resp = h.http.post(h.url(&challenge)).header("cookie", &rita.cookie).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let path = format!("/api/v1/me/factors/{lost}/replace");
    let credential = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA", "userHandle": null}
    });
    let forged = json!({"flow": "x".repeat(43), "credential": credential});
    let (status, p) = problem(post(&h, &rita, &path, forged).await).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::UNAUTHORIZED, Some("urn:wardgate:problem:step-up-required")));
    assert!(p["detail"].as_str().unwrap().contains("challenge expired or was already used"), "{p}");
    // A code and a key answer at once is a malformed request, not a guess.
    let both = json!({"code": "123456", "flow": "x".repeat(43), "credential": credential});
    let (status, _) = problem(post(&h, &rita, &path, both).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let me = get(&h, &rita, "/api/v1/me").await;
    assert!(me["factors"].as_array().unwrap().iter().any(|f| f["id"] == lost.as_str()), "nothing removed");
    let audit = h.audit().await;
    let refused: Vec<_> = audit.iter().filter(|r| r["type"] == "account.factor.replace_refused").collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0]["reason"].as_str().unwrap().contains("challenge"), "{}", refused[0]);
}

#[tokio::test]
async fn a_factor_past_its_expiry_is_refused_at_sign_in_and_listed_as_expiring() {
    let h = start_with(|_| {}).await;
    let enrolled = h.enroll_admin("rita").await;
    let rita = enrolled.session;
    assert!(get(&h, &rita, "/api/v1/factors?expiring=30d").await["factors"].as_array().unwrap().is_empty());
    let all = get(&h, &rita, "/api/v1/factors?user=rita").await;
    assert_eq!(all["factors"].as_array().unwrap().len(), 3, "passphrase, app, recovery codes: {all}");
    let app = all["factors"].as_array().unwrap().iter().find(|f| f["kind"] == "totp").unwrap().clone();
    assert_eq!(app["enrolled_by"], "enrollment_link");
    let id = app["id"].as_str().unwrap();

    let path = format!("/api/v1/users/rita/factors/{id}/expiry");
    for bad in [json!({"at": "2020-01-01", "reason": "x"}), json!({"at": "2h", "reason": " "}), json!({"reason": "x"})]
    {
        assert_eq!(
            problem(post(&h, &rita, &path, bad.clone()).await).await.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    let pwd = all["factors"].as_array().unwrap().iter().find(|f| f["kind"] == "passphrase").unwrap().clone();
    let pwd_path = format!("/api/v1/users/rita/factors/{}/expiry", pwd["id"].as_str().unwrap());
    let (status, _) = problem(post(&h, &rita, &pwd_path, json!({"at": "2h", "reason": "x"})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "passphrases do not expire");
    let resp = post(&h, &rita, &path, json!({"at": "2h", "reason": "token recall RC-7"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = problem(call(&h, &rita, reqwest::Method::GET, "/api/v1/factors?expiring=soon", None).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let expiring = get(&h, &rita, "/api/v1/factors?expiring=30d").await;
    let rows = expiring["factors"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{expiring}");
    assert_eq!((rows[0]["id"].as_str(), rows[0]["expired"].as_bool()), (Some(id), Some(false)));
    assert_eq!(rows[0]["username"], "rita", "everyone's inventory names each factor's owner");
    assert!(!serde_json::to_string(&all).unwrap().contains("secret"), "no secret in any listing");

    advance(Duration::hours(3));
    let (status, p) = problem(h.login_totp("rita", &enrolled.totp_secret, 1).await).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:wardgate:problem:factor-expired")));
    let audit = h.audit().await;
    let set = audit.iter().find(|r| r["type"] == "factor.expiry.set").unwrap();
    assert_eq!(set["reason"], "token recall RC-7");
    let refused = audit.iter().find(|r| r["type"] == "auth.factor.expired").unwrap();
    assert_eq!((refused["subject"].as_str(), refused["details"]["factor_id"].as_str()), (Some("rita"), Some(id)));
}
