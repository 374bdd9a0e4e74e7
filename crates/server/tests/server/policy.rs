//! The access policy over HTTP: the documented example decides sign-in and
//! `POST /api/v1/authorize` for the same person on a trusted workstation, from the
//! internet and for administration, and refuses a vendor outside the gateway.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;
use wardgate_core::factors::totp::{self, TotpParams};
use wardgate_server::devices::{DeviceChange, Devices, NewDevice};
use wardgate_server::policies::Policies;

use crate::login::{Harness, PASS, advance, clock, session_cookie, start_with};
use crate::problem;

const EXAMPLE: &str = include_str!("../../../../docs/policy.example.toml");
const WARD: &str = "10.20.4.7";
const HOME: &str = "203.0.113.9";

/// Where a request comes from: the address the trusted proxy (the test client on
/// loopback) reports, and the device secret if it is a registered workstation.
#[derive(Clone, Copy)]
struct From<'a> {
    ip: &'a str,
    device: Option<&'a str>,
}

impl Harness {
    fn from(&self, req: reqwest::RequestBuilder, from: From<'_>) -> reqwest::RequestBuilder {
        let req = req.header("x-forwarded-for", from.ip);
        match from.device {
            Some(d) => req.header("wardgate-device", d),
            None => req,
        }
    }

    async fn post_from(&self, path: &str, body: Value, from: From<'_>) -> reqwest::Response {
        self.from(self.http.post(self.url(path)), from).json(&body).send().await.unwrap()
    }

    async fn authorize(&self, cookie: &str, action: &str, from: From<'_>) -> Value {
        let resp = self
            .from(self.http.post(self.url("/api/v1/authorize")), from)
            .header("cookie", cookie)
            .json(&json!({"action": action, "resource": "Patient/123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// An authorization request with the session: where it sends the browser.
    async fn sso(&self, url: &str, cookie: &str, from: From<'_>) -> String {
        let resp = self.from(self.http.get(url), from).header("cookie", cookie).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        resp.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Passphrase, then a TOTP code if the policy asks for one; returns the sign-in answer.
    async fn sign_in(&self, username: &str, secret: &[u8], from: From<'_>) -> reqwest::Response {
        let started: Value =
            self.post_from("/api/v1/login", json!({"username": username}), from).await.json().await.unwrap();
        let flow = started["flow"].as_str().unwrap().to_owned();
        let resp = self.post_from("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS}), from).await;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
        if v.get("status") == Some(&json!("authenticated")) {
            panic!("signed in with one factor where two were expected: {v}");
        }
        let code = totp::code_at(TotpParams::default(), secret, clock() + Duration::seconds(30)).unwrap();
        self.post_from("/api/v1/login/totp", json!({"flow": flow, "code": code}), from).await
    }

    /// Invites a person through the admin API and enrolls them (passphrase and app).
    async fn person(&self, admin: &crate::login::Session, body: Value) -> Vec<u8> {
        let resp = self
            .http
            .post(self.url("/api/v1/admin/users"))
            .header("cookie", &admin.cookie)
            .header("x-csrf-token", &admin.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.unwrap();
        let link = v["enrollment_url"].as_str().unwrap().split("token=").nth(1).unwrap().to_owned();
        self.enroll(&link).await.totp_secret
    }
}

async fn wait_for_version(h: &Harness, cookie: &str, version: i64) {
    for _ in 0..100 {
        let v = h.authorize(cookie, "ephi.read", From { ip: HOME, device: None }).await;
        if v["policy_version"] == json!(version) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("policy version {version} never came into force");
}

#[tokio::test]
async fn the_documented_policy_decides_sign_in_and_actions_for_the_same_person() {
    let h = start_with(|s| s.server.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let admin = h.enroll_admin("rita").await.session;
    let lee = h
        .person(
            &admin,
            json!({"username": "dr-lee", "display_name": "Dr Lee", "roles": ["physician", "it-admin"], "privileged": true}),
        )
        .await;
    let jo = h
        .person(&admin, json!({"username": "acme-jo", "display_name": "Jo (Acme)", "roles": ["vendor-support"]}))
        .await;

    // Roles through the admin API: listed from the policy, given with an end, refused where
    // an administrative role would go to a clinical account, taken away.
    let admin_call =
        |req: reqwest::RequestBuilder| req.header("cookie", &admin.cookie).header("x-csrf-token", &admin.csrf);
    let roles: Value = admin_call(h.http.get(h.url("/api/v1/admin/roles"))).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = roles["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"physician") && names.contains(&"vendor-support") && names.contains(&"admin"), "{roles}");
    let until = (clock() + Duration::hours(8)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let resp = admin_call(h.http.post(h.url("/api/v1/admin/users/dr-lee/roles")))
        .json(&json!({"role": "nurse", "until": until}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert!(v["roles_until"]["nurse"].is_string() && v["privileged"] == true, "{v}");
    let resp = admin_call(h.http.post(h.url("/api/v1/admin/users/acme-jo/roles")))
        .json(&json!({"role": "it-admin"}))
        .send()
        .await
        .unwrap();
    let (status, p) = problem(resp).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::CONFLICT, Some("urn:wardgate:problem:not-privileged")));
    let resp = admin_call(h.http.post(h.url("/api/v1/admin/users/dr-lee/roles")))
        .json(&json!({"role": "surgeon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let resp = admin_call(h.http.delete(h.url("/api/v1/admin/users/dr-lee/roles/nurse"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["roles"], json!(["it-admin", "physician"]));
    assert!(h.audit().await.iter().any(|r| r["type"] == "admin.role.assigned" && r["details"]["role"] == "nurse"));

    // Before any version is approved, every decision is a deny.
    let v = h.authorize(&admin.cookie, "ephi.read", From { ip: HOME, device: None }).await;
    assert_eq!((v["decision"].as_str(), v["rule"].as_str()), (Some("deny"), Some("builtin:no-policy")));

    // Proposed by one person, approved by another.
    let store = &*h.node.store;
    let proposed =
        Policies::new(store, "operator:alice", clock(), true).propose(EXAMPLE, "the documented example").await.unwrap();
    assert!(Policies::new(store, "operator:alice", clock(), true).approve(proposed.number).await.is_err());
    Policies::new(store, "operator:bob", clock(), true).approve(proposed.number).await.unwrap();
    wait_for_version(&h, &admin.cookie, proposed.number).await;

    // The policy now governs the admin API too: an administrator signed in with an app
    // (aal2) is sent to step up to a security key.
    let resp = admin_call(h.http.get(h.url("/api/v1/admin/users"))).send().await.unwrap();
    let (status, p) = problem(resp).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:wardgate:problem:step-up-required")));
    assert!(p["detail"].as_str().unwrap().contains("aal3"), "{p}");

    let devices = Devices::new(store, "operator:alice", clock());
    let (_, ws) = devices
        .add(NewDevice { name: "ws-icu-03".into(), site: Some("main".into()), managed: true, trusted: true })
        .await
        .unwrap();
    let posture =
        DeviceChange { disk_encrypted: Some(true), patched: Some(true), checked_in: true, ..DeviceChange::default() };
    devices.change("ws-icu-03", posture).await.unwrap();
    let ward = From { ip: WARD, device: Some(&ws) };
    let home = From { ip: HOME, device: None };

    // On the trusted workstation the passphrase alone signs in, for a shift-long session.
    let started: Value = h.post_from("/api/v1/login", json!({"username": "dr-lee"}), ward).await.json().await.unwrap();
    let flow = started["flow"].as_str().unwrap();
    let resp = h.post_from("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS}), ward).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = session_cookie(&resp).expect("signed in with the passphrase alone");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["session"]["aal"], "aal1", "{body}");

    let v = h.authorize(&cookie, "ephi.read", ward).await;
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["rule"], "trusted-clinical-workstation");
    assert_eq!(v["session"]["lifetime_secs"], 8 * 3600);
    assert_eq!(v["session"]["reauthenticate_after_secs"], 30 * 60);

    // The same person and session from the internet: two factors needed.
    let v = h.authorize(&cookie, "ephi.read", home).await;
    assert_eq!(
        (v["decision"].as_str(), v["required"].as_str(), v["rule"].as_str()),
        (Some("step_up"), Some("aal2"), Some("remote"))
    );
    assert_eq!(v["acr_values"], "urn:wardgate:aal2");
    assert!(v["url"].as_str().unwrap().ends_with("/?step_up=1"), "{v}");

    // Administration needs a phishing-resistant factor, even on the ward.
    let v = h.authorize(&cookie, "admin.users", ward).await;
    assert_eq!(
        (v["decision"].as_str(), v["required"].as_str(), v["rule"].as_str()),
        (Some("step_up"), Some("aal3"), Some("administration"))
    );
    assert!(v["url"].as_str().unwrap().ends_with("/?step_up=1"));

    // An hour without activity would have ended a default session (15 minutes); this one
    // has the workstation's eight hours.
    advance(Duration::hours(1));
    let me = h.http.get(h.url("/api/v1/me")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // ...but after 30 minutes the quick factor is asked again.
    let v = h.authorize(&cookie, "ephi.read", ward).await;
    assert_eq!((v["decision"].as_str(), v["required"].as_str()), (Some("step_up"), Some("aal1")));

    // The step-up from the one-factor session asks only for the missing second factor,
    // and gives a new session at aal2 that is allowed from home.
    let resp = h
        .from(h.http.post(h.url("/api/v1/login")), home)
        .header("cookie", &cookie)
        .json(&json!({"step_up": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let started: Value = resp.json().await.unwrap();
    assert_eq!(started["next"], json!(["totp", "recovery_code"]), "{started}");
    let code = totp::code_at(TotpParams::default(), &lee, clock()).unwrap();
    let resp = h.post_from("/api/v1/login/totp", json!({"flow": started["flow"], "code": code}), home).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stepped = session_cookie(&resp).expect("a new session");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["session"]["aal"], "aal2", "{body}");
    assert_eq!(h.authorize(&stepped, "ephi.read", home).await["decision"], "allow");
    // The page does the same: the step-up link from a one-factor session goes straight to
    // the second-factor step.
    let resp = h.from(h.http.get(h.url("/?step_up=1")), home).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login/verify");
    assert!(
        resp.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("__Host-wardgate-flow="))
    );
    // Without a one-factor session there is nothing to step up from.
    let resp = h.post_from("/api/v1/login", json!({"step_up": true}), home).await;
    assert_eq!(problem(resp).await.0, StatusCode::UNAUTHORIZED);

    // The step-up URL carries the application's own authorization request back, and only that.
    let ask = |body: Value| {
        h.from(h.http.post(h.url("/api/v1/authorize")), home).header("cookie", &cookie).json(&body).send()
    };
    let v: Value = ask(json!({"action": "ephi.read", "return_to": "/oidc/authorize?client_id=ehr&scope=openid"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .ends_with("/?step_up=1&next=%2Foidc%2Fauthorize%3Fclient%5Fid%3Dehr%26scope%3Dopenid"),
        "{v}"
    );
    for evil in ["https://evil.example/", "//evil.example/oidc/authorize?x", "/account"] {
        let resp = ask(json!({"action": "ephi.read", "return_to": evil})).await.unwrap();
        assert_eq!(problem(resp).await.0, StatusCode::UNPROCESSABLE_ENTITY, "{evil}");
    }

    // From home, Dr Lee signs in with two factors and is allowed.
    let resp = h.sign_in("dr-lee", &lee, home).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let remote = session_cookie(&resp).unwrap();
    let v = h.authorize(&remote, "ephi.read", home).await;
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["session"]["idle_timeout_secs"], 15 * 60);

    // A vendor: signed in with two factors, allowed on the gateway, refused elsewhere.
    let resp = h.sign_in("acme-jo", &jo, home).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let vendor = session_cookie(&resp).unwrap();
    let v = h.authorize(&vendor, "ephi.read", home).await;
    assert_eq!((v["decision"].as_str(), v["rule"].as_str()), (Some("deny"), Some("vendors-only-through-gateway")));
    assert!(v["reason"].as_str().unwrap().contains("gateway"));
    assert_eq!(h.authorize(&vendor, "gateway.vendor", home).await["decision"], "allow");

    // Single sign-on to the EHR follows the same rules (action `sso`): the ward's aal1
    // session gets a code at once, the same session from home is sent to sign in with two
    // factors, and the vendor is refused.
    let (ehr, _) = wardgate_server::clients::Clients::new(store, "operator:alice", clock())
        .add(wardgate_server::clients::NewClient {
            name: "EHR".into(),
            redirect_uris: vec!["https://ehr.example.org/cb".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let authorize_url = h.url(&format!(
        "/oidc/authorize?client_id={}&redirect_uri=https%3A%2F%2Fehr.example.org%2Fcb&response_type=code&scope=openid&state=s1&nonce=n1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        ehr.id
    ));
    // A fresh quick sign-in on the ward (the earlier one is past its 30 minutes).
    let started: Value = h.post_from("/api/v1/login", json!({"username": "dr-lee"}), ward).await.json().await.unwrap();
    let resp =
        h.post_from("/api/v1/login/passphrase", json!({"flow": started["flow"], "passphrase": PASS}), ward).await;
    let quick = session_cookie(&resp).expect("a quick sign-in on the ward");
    let at_ward = h.sso(&authorize_url, &quick, ward).await;
    assert!(at_ward.starts_with("https://ehr.example.org/cb?code="), "{at_ward}");
    let from_home = h.sso(&authorize_url, &quick, home).await;
    assert!(from_home.starts_with("/?next="), "{from_home}");
    let vendor_sso = h.sso(&authorize_url, &vendor, home).await;
    assert!(vendor_sso.starts_with("https://ehr.example.org/cb?error=access%5Fdenied"), "{vendor_sso}");

    // Every decision is on record with the rule that made it and the request it saw.
    let decisions: Vec<Value> = h.audit().await.into_iter().filter(|r| r["type"] == "policy.decision").collect();
    let denied = decisions.iter().find(|r| r["details"]["rule"] == "vendors-only-through-gateway").unwrap();
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["subject"], "acme-jo");
    assert_eq!(denied["details"]["request"]["roles"], json!(["vendor-support"]));
    assert_eq!(denied["details"]["policy_version"], json!(proposed.number));
    assert!(decisions.iter().any(|r| r["details"]["segment"] == "clinical-vlan" && r["device_id"] == "ws-icu-03"));
    // Sign-ins name the rule that set their level and limits.
    let audit = h.audit().await;
    let ward_login = audit
        .iter()
        .find(|r| r["type"] == "auth.login.succeeded" && r["subject"] == "dr-lee" && r["details"]["aal"] == "aal1")
        .unwrap();
    assert_eq!(ward_login["details"]["policy_rule"], "trusted-clinical-workstation");
    assert_eq!(ward_login["details"]["lifetime_secs"], 8 * 3600);

    let metrics = h.http.get(h.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for effect in ["allow", "step_up", "deny"] {
        assert!(metrics.contains(&format!("wardgate_policy_decisions_total{{effect=\"{effect}\"}}")), "{effect}");
    }

    // Simulation: a proposal asking three factors' worth from the internet, replayed over
    // what was just recorded, changes exactly the remote decisions that were not denies.
    let stricter = EXAMPLE.replace(
        "networks = [\"internet\", \"vpn\"]\nnot_actions = [\"admin.*\"]\nrequire = \"aal2\"",
        "networks = [\"internet\", \"vpn\"]\nnot_actions = [\"admin.*\"]\nrequire = \"aal3\"",
    );
    assert_ne!(stricter, EXAMPLE);
    let sim = Policies::new(store, "operator:alice", clock(), true)
        .simulate(&stricter, clock() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(sim.replayed as usize, decisions.len());
    let mut changes: Vec<(String, String, String, String, u64)> = sim
        .changes
        .iter()
        .map(|c| (c.username.clone(), c.action.clone(), c.before.clone(), c.after.clone(), c.count))
        .collect();
    changes.sort();
    let c = |u: &str, a: &str, b: &str, f: &str, n: u64| (u.to_owned(), a.to_owned(), b.to_owned(), f.to_owned(), n);
    assert_eq!(
        changes,
        [
            c("acme-jo", "gateway.vendor", "allow aal2", "step_up aal3", 1),
            // After two-factor sign-in and after the step-up.
            c("dr-lee", "ephi.read", "allow aal2", "step_up aal3", 2),
            // The one-factor session from home, asked twice.
            c("dr-lee", "ephi.read", "step_up aal2", "step_up aal3", 2),
        ]
    );
    assert_eq!(sim.changed, 5);
    // The same file as in force changes nothing.
    let same = Policies::new(store, "operator:alice", clock(), true)
        .simulate(EXAMPLE, clock() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(same.changed, 0);
}

#[tokio::test]
async fn the_authorization_api_refuses_bad_input_with_problem_documents() {
    let h = start_with(|_| {}).await;
    let admin = h.enroll_admin("rita").await.session;
    let ask = |body: Value, cookie: Option<&str>| {
        let mut req = h.http.post(h.url("/api/v1/authorize")).json(&body);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let (status, p) = problem(ask(json!({"action": "ephi.read"}), None).await.unwrap()).await;
    assert_eq!((status, p["type"].as_str()), (StatusCode::UNAUTHORIZED, Some("urn:wardgate:problem:unauthenticated")));
    for bad in [
        json!({"action": "ephi.*"}),
        json!({"action": ""}),
        json!({"action": "x", "extra": 1}),
        json!({"action": "a", "resource": ""}),
    ] {
        let (status, _) = problem(ask(bad.clone(), Some(&admin.cookie)).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    // An access token that is not ours is no credential at all.
    let resp = h
        .http
        .post(h.url("/api/v1/authorize"))
        .bearer_auth("eyJhbGciOiJub25lIn0.e30.")
        .json(&json!({"action": "ephi.read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await.0, StatusCode::UNAUTHORIZED);
}
