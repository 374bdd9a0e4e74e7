//! Authentication over HTTP against the real server: enrollment, the login flow, sessions,
//! lockout, and what an attacker can and cannot learn from the answers.

use crate::problem;
use std::cell::Cell;

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use wardgate_core::factors::totp::{self, TotpParams};
use wardgate_core::settings::Settings;
use wardgate_server::Node;

thread_local! {
    // Each #[tokio::test] runs on its own current-thread runtime, so the server's tasks
    // see this thread's offset and tests cannot move each other's clocks.
    static OFFSET: Cell<i64> = const { Cell::new(0) };
}

pub(crate) fn clock() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::seconds(OFFSET.with(Cell::get))
}

pub(crate) fn advance(d: Duration) {
    OFFSET.with(|o| o.set(o.get() + d.whole_seconds()));
}

pub(crate) const PASS: &str = "tidal cobalt lantern orchard";

pub(crate) struct Harness {
    pub(crate) node: Node,
    pub(crate) http: reqwest::Client,
    pub(crate) _dir: tempfile::TempDir,
}

/// A signed-in browser, reduced to what matters: its session cookie and CSRF token.
pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) struct Enrolled {
    pub(crate) totp_secret: Vec<u8>,
    pub(crate) recovery_codes: Vec<String>,
    pub(crate) session: Session,
}

pub(crate) async fn start_with(tune: impl FnOnce(&mut Settings)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    settings.server.listen = "127.0.0.1:0".into();
    settings.server.max_body_bytes = 8192;
    tune(&mut settings);
    let node = Node::start_with_clock(settings, clock).await.unwrap();
    Harness { node, http: crate::http_client(), _dir: dir }
}

async fn start() -> Harness {
    start_with(|_| {}).await
}

pub(crate) fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-wardgate-session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

impl Harness {
    pub(crate) fn url(&self, path: &str) -> String {
        // The listening address, not base_url: some tests set a public_url elsewhere.
        format!("http://{}{path}", self.node.addr)
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&body).send().await.unwrap()
    }

    pub(crate) async fn ok(&self, path: &str, body: Value) -> Value {
        let resp = self.post(path, body).await;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        v
    }

    async fn me(&self, s: &Session) -> reqwest::Response {
        self.http.get(self.url("/api/v1/me")).header("cookie", &s.cookie).send().await.unwrap()
    }

    pub(crate) async fn session_from(&self, resp: reqwest::Response) -> Session {
        assert_eq!(resp.status(), StatusCode::OK);
        let cookie = session_cookie(&resp).expect("a session cookie");
        let me: Value =
            self.http.get(self.url("/api/v1/me")).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
        Session { cookie, csrf: me["csrf_token"].as_str().unwrap().to_owned() }
    }

    /// The first administrator: bootstrap link, passphrase, authenticator app, recovery codes.
    pub(crate) async fn enroll_admin(&self, username: &str) -> Enrolled {
        let token = self.node.bootstrap_url.clone().unwrap().split("token=").nth(1).unwrap().to_owned();
        let resp = self
            .post(
                "/api/v1/bootstrap",
                json!({"token": token, "username": username, "display_name": "Rita Smith", "passphrase": PASS}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let created: Value = resp.json().await.unwrap();
        self.enroll(created["enrollment_token"].as_str().unwrap()).await
    }

    /// Enrollment through a link: the passphrase if it is not set yet, an authenticator
    /// app, recovery codes.
    pub(crate) async fn enroll(&self, link: &str) -> Enrolled {
        let begun = self.ok("/api/v1/enroll", json!({"token": link})).await;
        if begun["passphrase_set"] == false {
            let flow = begun["flow"].as_str().unwrap();
            let weak =
                self.post("/api/v1/enroll/passphrase", json!({"flow": flow, "passphrase": "password1234"})).await;
            assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
            self.ok("/api/v1/enroll/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
        }
        assert_eq!(begun["can_finish"], false);
        let flow = begun["flow"].as_str().unwrap().to_owned();
        // A single factor is not enough to finish.
        let early = self.post("/api/v1/enroll/finish", json!({"flow": flow})).await;
        assert_eq!(early.status(), StatusCode::CONFLICT);
        let setup = self.ok("/api/v1/enroll/totp", json!({"flow": flow})).await;
        assert!(
            setup["qr_svg"].as_str().unwrap().starts_with("<?xml")
                || setup["qr_svg"].as_str().unwrap().contains("<svg")
        );
        assert!(setup["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
        let secret = totp::secret_from_base32(setup["secret"].as_str().unwrap()).unwrap().to_vec();
        let wrong = self.post("/api/v1/enroll/totp/confirm", json!({"flow": flow, "code": "000000"})).await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let code = totp::code_at(TotpParams::default(), &secret, clock()).unwrap();
        let confirmed = self.ok("/api/v1/enroll/totp/confirm", json!({"flow": flow, "code": code})).await;
        assert_eq!(confirmed["can_finish"], true);
        let resp = self.post("/api/v1/enroll/finish", json!({"flow": flow})).await;
        let cookie = session_cookie(&resp).expect("enrollment signs in");
        let done: Value = resp.json().await.unwrap();
        let codes: Vec<String> =
            done["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        assert_eq!(codes.len(), 10);
        let me: Value =
            self.http.get(self.url("/api/v1/me")).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
        Enrolled {
            totp_secret: secret,
            recovery_codes: codes,
            session: Session { cookie, csrf: me["csrf_token"].as_str().unwrap().to_owned() },
        }
    }

    pub(crate) async fn start_login(&self, username: &str) -> String {
        let v = self.ok("/api/v1/login", json!({"username": username})).await;
        v["flow"].as_str().unwrap().to_owned()
    }

    /// Passphrase then a TOTP code `steps_ahead` steps from now (the enrollment code
    /// already spent the current step).
    pub(crate) async fn login_totp(&self, username: &str, secret: &[u8], steps_ahead: i64) -> reqwest::Response {
        let flow = self.start_login(username).await;
        let after = self.ok("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
        assert_eq!(after["next"], json!(["totp", "recovery_code"]));
        let code = totp::code_at(TotpParams::default(), secret, clock() + Duration::seconds(30 * steps_ahead)).unwrap();
        self.post("/api/v1/login/totp", json!({"flow": flow, "code": code})).await
    }

    /// The audit records so far, after checking them as `wardgate audit verify` does: every
    /// link of the hash chain from the anchor, and every stored checkpoint on the way.
    pub(crate) async fn audit(&self) -> Vec<Value> {
        let store = &self.node.store;
        let anchor = store.audit_anchor().await.unwrap();
        let records = store.audit_records(anchor.seq, 100_000).await.unwrap();
        let last = records.last().map_or(anchor.seq, |r| r.seq);
        let checkpoints = store.checkpoints(anchor.seq, last).await.unwrap();
        let mut chain = wardgate_core::audit::chain::ChainVerifier::new(anchor, &checkpoints);
        for r in &records {
            chain.push(r).unwrap_or_else(|b| panic!("the audit chain is broken: {b}"));
        }
        records.into_iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
    }
}

#[tokio::test]
async fn enrollment_then_passphrase_and_totp_reach_aal2_and_a_code_works_once() {
    let h = start().await;
    let admin = h.enroll_admin("rsmith").await;
    assert_eq!(h.me(&admin.session).await.status(), StatusCode::OK);
    assert_eq!(h.node.store.count_admins().await.unwrap(), 1, "enrollment activates the account");

    let resp = h.login_totp("rsmith", &admin.totp_secret, 1).await;
    let cookie = session_cookie(&resp).unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "authenticated");
    assert_eq!(body["session"]["aal"], "aal2");
    assert_eq!(body["session"]["amr"], json!(["pwd", "otp", "mfa"]));
    assert!(cookie.starts_with("__Host-wardgate-session="));

    // The same code (the same time step) again, through a new login: refused as a replay.
    let replay = h.login_totp("rsmith", &admin.totp_secret, 1).await;
    let (status, p) = problem(replay).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(p["type"], "urn:wardgate:problem:code-replayed");

    // Every step is audited under the login's correlation id.
    let audit = h.audit().await;
    let ok = audit.iter().rev().find(|r| r["type"] == "auth.login.succeeded").unwrap();
    let corr = ok["correlation_id"].as_str().unwrap();
    let steps: Vec<&str> =
        audit.iter().filter(|r| r["correlation_id"] == corr).map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(steps, ["auth.login.started", "auth.factor.passed", "auth.factor.passed", "auth.login.succeeded"]);
    assert!(audit.iter().any(|r| r["type"] == "auth.factor.failed" && r["reason"] == "one-time code replayed"));
}

#[tokio::test]
async fn unknown_and_known_usernames_get_the_same_answers() {
    let h = start().await;
    let _admin = h.enroll_admin("rsmith").await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("flow");
        v
    };
    let known = h.post("/api/v1/login", json!({"username": "rsmith"})).await;
    let unknown = h.post("/api/v1/login", json!({"username": "nobody"})).await;
    assert_eq!(known.status(), unknown.status());
    let (kf, uf): (Value, Value) = (known.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!(strip(kf.clone()), strip(uf.clone()));

    let wrong_known =
        h.post("/api/v1/login/passphrase", json!({"flow": kf["flow"], "passphrase": "wrong passphrase here"})).await;
    let wrong_unknown = h.post("/api/v1/login/passphrase", json!({"flow": uf["flow"], "passphrase": PASS})).await;
    let (ks, kb) = (wrong_known.status(), wrong_known.text().await.unwrap());
    let (us, ub) = (wrong_unknown.status(), wrong_unknown.text().await.unwrap());
    assert_eq!((ks, &kb), (us, &ub));
    assert_eq!(ks, StatusCode::UNAUTHORIZED);

    // An invited or disabled account answers like an unknown one too.
    let bad = h.post("/api/v1/login", json!({"username": "Has Space"})).await;
    assert_eq!(problem(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn repeated_failures_lock_known_and_unknown_names_alike_until_time_passes() {
    let h = start_with(|s| {
        s.auth.lockout_free_failures = 0;
        s.auth.lockout_after = 3;
        s.auth.lockout_duration_secs = 600;
    })
    .await;
    let admin = h.enroll_admin("rsmith").await;
    for _ in 0..3 {
        for name in ["rsmith", "nobody"] {
            let flow = h.start_login(name).await;
            let r =
                h.post("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": "wrong passphrase here"})).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        }
        // Past the growing delay, so the next attempt is checked.
        advance(Duration::seconds(5));
    }
    // Even the right passphrase is refused while locked, with the same answer for both.
    let locked = h.start_login("rsmith").await;
    let r1 = h.post("/api/v1/login/passphrase", json!({"flow": locked, "passphrase": PASS})).await;
    let flow = h.start_login("nobody").await;
    let r2 = h.post("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
    assert_eq!(r1.status(), StatusCode::LOCKED);
    assert_eq!(r2.status(), StatusCode::LOCKED);
    let wait = |r: &reqwest::Response| r.headers()["retry-after"].to_str().unwrap().parse::<i64>().unwrap();
    assert!((wait(&r1) - wait(&r2)).abs() <= 1);
    let (b1, b2): (Value, Value) = (r1.json().await.unwrap(), r2.json().await.unwrap());
    assert_eq!(b1["type"], b2["type"]);
    assert!(h.audit().await.iter().any(|r| r["type"] == "auth.account.locked" && r["subject"] == "rsmith"));

    advance(Duration::minutes(11));
    let resp = h.login_totp("rsmith", &admin.totp_secret, 1).await;
    assert_eq!(resp.status(), StatusCode::OK, "the lock expires");
}

#[tokio::test]
async fn idle_sessions_expire_and_revoked_sessions_stop_at_the_next_request() {
    let h = start().await;
    let admin = h.enroll_admin("rsmith").await;
    let a = admin.session;
    let b = h.session_from(h.login_totp("rsmith", &admin.totp_secret, 1).await).await;
    assert_eq!(h.me(&a).await.status(), StatusCode::OK);

    // Session B ends session A: A's next request is refused.
    let me: Value = h.me(&a).await.json().await.unwrap();
    let a_id = me["session"]["id"].as_str().unwrap();
    let no_csrf =
        h.http.delete(h.url(&format!("/api/v1/me/sessions/{a_id}"))).header("cookie", &b.cookie).send().await.unwrap();
    assert_eq!(problem(no_csrf).await.0, StatusCode::FORBIDDEN);
    let revoke = h
        .http
        .delete(h.url(&format!("/api/v1/me/sessions/{a_id}")))
        .header("cookie", &b.cookie)
        .header("x-csrf-token", &b.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let (status, p) = problem(h.me(&a).await).await;
    assert_eq!(
        (status, p["type"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "urn:wardgate:problem:unauthenticated")
    );
    assert_eq!(h.me(&b).await.status(), StatusCode::OK);

    // Fifteen idle minutes end B (automatic logoff), and the expiry is audited.
    advance(Duration::minutes(16));
    assert_eq!(h.me(&b).await.status(), StatusCode::UNAUTHORIZED);
    let audit = h.audit().await;
    assert!(audit.iter().any(|r| r["type"] == "auth.session.revoked"));
    assert!(audit.iter().any(|r| r["type"] == "auth.session.expired" && r["reason"] == "idle timeout"));
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_is_reported() {
    let h = start().await;
    let admin = h.enroll_admin("rsmith").await;
    let code = admin.recovery_codes[3].clone();
    let flow = h.start_login("rsmith").await;
    h.ok("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
    let resp = h.post("/api/v1/login/recovery-code", json!({"flow": flow, "code": code.to_lowercase()})).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "authenticated");
    assert_eq!(body["recovery_codes_left"], 9);

    let flow = h.start_login("rsmith").await;
    h.ok("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
    let again = h.post("/api/v1/login/recovery-code", json!({"flow": flow, "code": code})).await;
    assert_eq!(problem(again).await.0, StatusCode::UNAUTHORIZED);
    let audit = h.audit().await;
    let used: Vec<_> = audit.iter().filter(|r| r["type"] == "auth.recovery_code.used").collect();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["details"]["remaining"], 9);
}

#[tokio::test]
async fn malformed_oversized_and_mistyped_requests_get_problem_documents() {
    let h = start().await;
    let _admin = h.enroll_admin("rsmith").await;
    let flow = h.start_login("rsmith").await;
    // WebAuthn: not a credential at all, a credential missing its parts, and no challenge.
    for body in [
        json!({"flow": flow, "credential": "nonsense"}),
        json!({"flow": flow, "credential": {"id": "x", "rawId": "x", "type": "public-key"}}),
    ] {
        let (status, _) = problem(h.post("/api/v1/login/webauthn", body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let raw = h
        .http
        .post(h.url("/api/v1/login/webauthn"))
        .header("content-type", "application/json")
        .body("{\"flow\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(raw).await.0, StatusCode::BAD_REQUEST);
    let big = "x".repeat(20_000);
    let (status, _) = problem(h.post("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": big})).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) =
        problem(h.post("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": "x".repeat(300)})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = h.http.post(h.url("/api/v1/login")).form(&[("username", "rsmith")]).send().await.unwrap();
    assert_eq!(problem(form).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) =
        problem(h.post("/api/v1/login/passphrase", json!({"flow": "not-a-flow", "passphrase": PASS})).await).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = problem(h.post("/api/v1/login", json!({"username": "rsmith", "extra": 1})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Out of order: a code before the passphrase.
    let (status, _) = problem(h.post("/api/v1/login/totp", json!({"flow": flow, "code": "123456"})).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Nothing stored was lost: the account still signs in.
    let openapi: Value = h.http.get(h.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
}

#[tokio::test]
async fn the_admin_api_takes_an_admin_session_or_a_scoped_token_and_audits_every_call() {
    let h = start().await;
    let admin = h.enroll_admin("rsmith").await;
    let s = &admin.session;
    let invite =
        json!({"username": "jdoe", "display_name": "Jane Doe", "email": "jdoe@example.org", "roles": ["nurse"]});
    // A session needs its CSRF token to change anything.
    let no_csrf =
        h.http.post(h.url("/api/v1/admin/users")).header("cookie", &s.cookie).json(&invite).send().await.unwrap();
    assert_eq!(problem(no_csrf).await.0, StatusCode::FORBIDDEN);
    let resp = h
        .http
        .post(h.url("/api/v1/admin/users"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .json(&invite)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["user"]["status"], "invited");
    let url = created["enrollment_url"].as_str().unwrap();
    let nurse = h.enroll(url.split("token=").nth(1).unwrap()).await;

    // A nurse is not an administrator.
    let denied = h.http.get(h.url("/api/v1/admin/users")).header("cookie", &nurse.session.cookie).send().await.unwrap();
    assert_eq!(problem(denied).await.0, StatusCode::FORBIDDEN);
    let anonymous = h.http.get(h.url("/api/v1/admin/users")).send().await.unwrap();
    assert_eq!(problem(anonymous).await.0, StatusCode::UNAUTHORIZED);

    // A read-only token reads, and cannot write.
    let settings = wardgate_core::settings::AuthSettings::default();
    let accounts = wardgate_server::accounts::Accounts::new(&*h.node.store, "operator:test", clock(), &settings);
    let tok = accounts.create_api_token("rsmith", &["users:read".into()], Some("audit bot"), None).await.unwrap();
    let bearer = format!("Bearer {}", tok.secret);
    let list: Value = h
        .http
        .get(h.url("/api/v1/admin/users"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["jdoe", "rsmith"]);
    let write =
        h.http.post(h.url("/api/v1/admin/users/jdoe/disable")).header("authorization", &bearer).send().await.unwrap();
    let (status, p) = problem(write).await;
    assert_eq!(
        (status, p["type"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "urn:wardgate:problem:insufficient-scope")
    );
    let bogus = h.http.get(h.url("/api/v1/admin/users")).header("authorization", "Bearer nope").send().await.unwrap();
    assert_eq!(problem(bogus).await.0, StatusCode::UNAUTHORIZED);

    // Disabling ends the nurse's sessions at once, and a login half-way through fails.
    assert_eq!(h.me(&nurse.session).await.status(), StatusCode::OK);
    let half_way = h.start_login("jdoe").await;
    h.ok("/api/v1/login/passphrase", json!({"flow": half_way, "passphrase": PASS})).await;
    let resp = h
        .http
        .post(h.url("/api/v1/admin/users/jdoe/disable"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(h.me(&nurse.session).await.status(), StatusCode::UNAUTHORIZED);
    let code = totp::code_at(TotpParams::default(), &nurse.totp_secret, clock() + Duration::seconds(30)).unwrap();
    let late = h.post("/api/v1/login/totp", json!({"flow": half_way, "code": code})).await;
    // Disabling ended the pending login too.
    assert_eq!(problem(late).await.0, StatusCode::GONE);
    let shown: Value = h
        .http
        .get(h.url("/api/v1/admin/users/jdoe"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["user"]["status"], "disabled");
    assert!(shown["factors"].as_array().unwrap().iter().all(|f| f.get("secret").is_none()));
    let missing =
        h.http.get(h.url("/api/v1/admin/users/nobody")).header("authorization", &bearer).send().await.unwrap();
    assert_eq!(problem(missing).await.0, StatusCode::NOT_FOUND);

    let audit = h.audit().await;
    let token_actor = format!("token:{}:rsmith", tok.token.id);
    assert!(audit.iter().any(|r| r["type"] == "admin.api.called" && r["actor"] == token_actor.as_str()));
    assert!(
        audit
            .iter()
            .any(|r| r["type"] == "admin.user.disabled" && r["actor"] == "user:rsmith" && r["subject"] == "jdoe")
    );
    // Refusals are recorded too: the bad token, the nurse, the missing scope.
    let denied: Vec<_> = audit.iter().filter(|r| r["type"] == "admin.api.called" && r["outcome"] == "denied").collect();
    assert!(denied.iter().any(|r| r["actor"] == "user:jdoe"));
    assert!(
        denied
            .iter()
            .any(|r| r["actor"] == token_actor.as_str() && r["details"]["path"] == "/api/v1/admin/users/jdoe/disable")
    );
    assert!(
        denied.iter().any(|r| r["actor"].is_null() && r["reason"] == "The API token is invalid, revoked or expired")
    );
}

#[tokio::test]
async fn a_passphrase_change_needs_the_current_one_and_is_audited() {
    let h = start().await;
    let admin = h.enroll_admin("rsmith").await;
    let s = &admin.session;
    let change = |current: &str, new: &str| {
        h.http
            .post(h.url("/api/v1/me/passphrase"))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf)
            .json(&json!({"current_passphrase": current, "new_passphrase": new}))
            .send()
    };
    let (status, _) = problem(change("not my passphrase", "quiet harbor violet engine").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, p) = problem(change(PASS, "rsmith rsmith rsmith").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(change(PASS, "quiet harbor violet engine").await.unwrap().status(), StatusCode::NO_CONTENT);

    let flow = h.start_login("rsmith").await;
    let old = h.post("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": PASS})).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let flow = h.start_login("rsmith").await;
    h.ok("/api/v1/login/passphrase", json!({"flow": flow, "passphrase": "quiet harbor violet engine"})).await;
    let audit = h.audit().await;
    assert!(audit.iter().any(|r| r["type"] == "account.passphrase.changed" && r["subject"] == "rsmith"));
    assert!(audit.iter().all(|r| !r.to_string().contains("quiet harbor")));
}

#[tokio::test]
async fn without_a_domain_name_security_keys_are_refused_with_a_reason_and_the_rest_works() {
    let h = start_with(|s| s.public_url = Some("https://10.1.2.3:8443".into())).await;
    let flow = h.ok("/api/v1/login", json!({})).await["flow"].as_str().unwrap().to_owned();
    let (status, p) = problem(h.post("/api/v1/login/webauthn/challenge", json!({"flow": flow})).await).await;
    assert_eq!(
        (status, p["type"].as_str().unwrap()),
        (StatusCode::CONFLICT, "urn:wardgate:problem:webauthn-unavailable")
    );
    // Passphrase and authenticator app still enroll and sign in.
    let admin = h.enroll_admin("rsmith").await;
    assert_eq!(h.login_totp("rsmith", &admin.totp_secret, 1).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn people_add_and_remove_their_own_factors_but_keep_two_kinds() {
    let h = start().await;
    let admin = h.enroll_admin("rsmith").await;
    let s = &admin.session;
    let call = |method: reqwest::Method, path: &str| {
        h.http.request(method, h.url(path)).header("cookie", &s.cookie).header("x-csrf-token", &s.csrf)
    };
    let me: Value = h.me(s).await.json().await.unwrap();
    let factor = |kind: &str| {
        me["factors"].as_array().unwrap().iter().find(|f| f["kind"] == kind).unwrap()["id"].as_str().unwrap().to_owned()
    };
    let (pwd, app, codes) = (factor("passphrase"), factor("totp"), factor("recovery_codes"));
    for id in [&pwd, &codes, &app] {
        let r = call(reqwest::Method::DELETE, &format!("/api/v1/me/factors/{id}")).send().await.unwrap();
        let (status, p) = problem(r).await;
        assert_eq!(
            (status, p["type"].as_str().unwrap()),
            (StatusCode::CONFLICT, "urn:wardgate:problem:factor-required")
        );
    }

    // A second authenticator app, confirmed by a code, saved to the account.
    let begun: Value = call(reqwest::Method::POST, "/api/v1/me/factors").send().await.unwrap().json().await.unwrap();
    assert_eq!(begun["adding"], true);
    let flow = begun["flow"].as_str().unwrap();
    let early =
        call(reqwest::Method::POST, "/api/v1/me/factors/save").json(&json!({"flow": flow})).send().await.unwrap();
    assert_eq!(problem(early).await.0, StatusCode::CONFLICT);
    let setup = h.ok("/api/v1/enroll/totp", json!({"flow": flow})).await;
    let second = totp::secret_from_base32(setup["secret"].as_str().unwrap()).unwrap().to_vec();
    let code = totp::code_at(TotpParams::default(), &second, clock()).unwrap();
    h.ok("/api/v1/enroll/totp/confirm", json!({"flow": flow, "code": code})).await;
    let saved =
        call(reqwest::Method::POST, "/api/v1/me/factors/save").json(&json!({"flow": flow})).send().await.unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    // The enrollment finish cannot be reached through an add-factor flow.
    assert_ne!(h.post("/api/v1/enroll/finish", json!({"flow": flow})).await.status(), StatusCode::OK);

    // Now the first app can go, and the new one signs in.
    let r = call(reqwest::Method::DELETE, &format!("/api/v1/me/factors/{app}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.login_totp("rsmith", &admin.totp_secret, 1).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.login_totp("rsmith", &second, 1).await.status(), StatusCode::OK);
    let audit = h.audit().await;
    assert!(audit.iter().any(|r| r["type"] == "account.factor.added" && r["details"]["kind"] == "totp"));
    assert!(audit.iter().any(|r| r["type"] == "account.factor.removed" && r["details"]["factor_id"] == app.as_str()));
}

/// A fresh schema on the test PostgreSQL server, or `None` (skip) when there is none and
/// CI does not require it.
async fn postgres_schema() -> Option<(String, String)> {
    use sqlx::Connection as _;
    let base = match std::env::var("WARDGATE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("WARDGATE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "WARDGATE_REQUIRE_POSTGRES=1 but WARDGATE_TEST_POSTGRES_URL is unset"
            );
            eprintln!("skipped: WARDGATE_TEST_POSTGRES_URL is unset");
            return None;
        }
    };
    let schema = format!("wg_login_{}", wardgate_core::token::random_id().unwrap());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{sep}options=-c%20search_path%3D{schema}"), schema))
}

#[tokio::test]
async fn two_nodes_on_postgresql_share_logins_and_sessions_and_a_code_works_on_one_only() {
    let Some((url, schema)) = postgres_schema().await else { return };
    let a = start_with(|s| s.database = Some(url.clone())).await;
    let key = a._dir.path().join("data").join("master.key");
    let b = start_with(|s| {
        s.database = Some(url.clone());
        s.master_key_file = Some(key.clone());
    })
    .await;
    let admin = a.enroll_admin("rsmith").await;
    // A session made on one node is good on the other.
    assert_eq!(b.me(&admin.session).await.status(), StatusCode::OK);

    // One code, presented on both nodes: accepted once.
    let code = totp::code_at(TotpParams::default(), &admin.totp_secret, clock() + Duration::seconds(30)).unwrap();
    let on_a = a.start_login("rsmith").await;
    // The passphrase step goes to B: a login's state lives in the database, not in a node.
    b.ok("/api/v1/login/passphrase", json!({"flow": on_a, "passphrase": PASS})).await;
    let on_b = b.start_login("rsmith").await;
    b.ok("/api/v1/login/passphrase", json!({"flow": on_b, "passphrase": PASS})).await;
    let first = a.post("/api/v1/login/totp", json!({"flow": on_a, "code": code})).await;
    assert_eq!(first.status(), StatusCode::OK);
    let (status, p) = problem(b.post("/api/v1/login/totp", json!({"flow": on_b, "code": code})).await).await;
    assert_eq!((status, p["type"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "urn:wardgate:problem:code-replayed"));

    // Signing out everywhere on one node ends the session on the other at once.
    let s = &admin.session;
    let out = b
        .http
        .post(b.url("/api/v1/me/sessions/revoke-all"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(a.me(s).await.status(), StatusCode::UNAUTHORIZED);
    a.node.stop().await;
    b.node.stop().await;
    use sqlx::Connection as _;
    let base = std::env::var("WARDGATE_TEST_POSTGRES_URL").unwrap();
    let mut admin_conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut admin_conn).await.unwrap();
}

#[tokio::test]
async fn refused_admin_calls_are_audited_only_up_to_the_per_address_limit() {
    let h = start_with(|s| s.auth.source_attempts_per_minute = 1).await;
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let r = h.http.get(h.url("/api/v1/admin/users")).header("authorization", "Bearer stolen").send().await.unwrap();
        statuses.push(r.status());
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS);
    let denied = h.audit().await.iter().filter(|r| r["type"] == "admin.api.called" && r["outcome"] == "denied").count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    assert_eq!(denied, refused, "one record per refusal let through, none for the rate-limited ones");
    assert!(refused < 15);
}
