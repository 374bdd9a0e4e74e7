//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) end to end: an application
//! that registered a back-channel URI is sent a logout token however the session it got
//! tokens through ends — signed out, revoked by an administrator, timed out with nobody
//! looking, or ended with the account from the command line — and a failed delivery is
//! retried until the application takes it. No timing is asserted: each test waits, within
//! a generous deadline, for what must eventually happen.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use openidconnect::PkceCodeChallenge;
use reqwest::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use wardgate_core::audit::AuditRecord;
use wardgate_core::oidc::OidcClient;
use wardgate_server::clients::{Clients, NewClient};

use crate::oidc::{Provider, REDIRECT, provider_at, query_param};

/// How long anything that must happen may take: far more than it needs, so that a loaded
/// machine does not fail a test that would pass.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// One POST the application received, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    logout_token: String,
    answered: u16,
}

/// An application's back-channel logout endpoint: keeps every logout token it is sent and
/// answers the statuses given, in turn, then 200.
struct Application {
    uri: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Application {
    async fn start(answers: &[u16]) -> Self {
        let received = Arc::new(Mutex::new(Vec::<Received>::new()));
        let (sink, answers) = (Arc::clone(&received), answers.to_vec());
        let app = axum::Router::new().route(
            "/bcl",
            axum::routing::post(move |axum::Form(f): axum::Form<HashMap<String, String>>| {
                let (sink, answers) = (Arc::clone(&sink), answers.clone());
                async move {
                    let mut got = sink.lock().await;
                    let answered = answers.get(got.len()).copied().unwrap_or(200);
                    got.push(Received { logout_token: f.get("logout_token").cloned().unwrap_or_default(), answered });
                    axum::http::StatusCode::from_u16(answered).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/bcl", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { uri, received }
    }

    /// Waits until `n` tokens have arrived (failing after the deadline); returns them all.
    /// `meanwhile` runs between looks (a test moves its clock on there).
    async fn wait_for(&self, n: usize, mut meanwhile: impl FnMut()) -> Vec<Received> {
        let start = std::time::Instant::now();
        loop {
            let got = self.received.lock().await.clone();
            if got.len() >= n {
                return got;
            }
            assert!(start.elapsed() < DEADLINE, "{} logout tokens after {DEADLINE:?}, expected {n}", got.len());
            meanwhile();
            tokio::time::sleep(POLL).await;
        }
    }
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Registers an application that asks to be told of logouts at `app`, and signs it in
/// through the provider's session: the client, its secret and the token response.
async fn signed_in(p: &Provider, app: &Application) -> (OidcClient, String, Value) {
    let base = p.node.base_url.clone();
    let (client, secret) = Clients::new(&*p.node.store, "operator:test", OffsetDateTime::now_utc())
        .add(NewClient {
            name: "Portal".into(),
            redirect_uris: vec![REDIRECT.into()],
            backchannel_logout_uri: Some(app.uri.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = format!(
        "{base}/oidc/authorize?response_type=code&scope=openid&client_id={}&redirect_uri={REDIRECT}&code_challenge={}&code_challenge_method=S256",
        client.id,
        challenge.as_str()
    );
    let code = query_param(&p.authorize(&url).await.1.unwrap(), "code").unwrap();
    let tokens: Value = p
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
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    (client, secret.unwrap(), tokens)
}

/// The session id the application knows the sign-in by.
fn sid_of(tokens: &Value) -> String {
    jwt_part(tokens["id_token"].as_str().unwrap(), 1)["sid"].as_str().unwrap().to_owned()
}

/// A logout token as the specification has it, for this client and session.
fn assert_logout_token(jwt: &str, client: &OidcClient, sid: &str) {
    assert_eq!(jwt_part(jwt, 0)["typ"], "logout+jwt");
    let claims = jwt_part(jwt, 1);
    assert_eq!(claims["sid"], sid);
    assert_eq!(claims["aud"], client.id.as_str());
    assert!(claims["sub"].is_string());
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
}

async fn records(p: &Provider, event_type: &str) -> Vec<AuditRecord> {
    p.node
        .store
        .audit_records(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event_type == event_type)
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

/// The `oidc.logout.sent` records of one client, once there are `n` of them: the audit
/// writer records an attempt just after the application has answered it.
async fn logout_records(p: &Provider, client: &OidcClient, n: usize) -> Vec<AuditRecord> {
    let start = std::time::Instant::now();
    loop {
        let mine: Vec<_> = records(p, "oidc.logout.sent")
            .await
            .into_iter()
            .filter(|r| r.details["client_id"] == client.id.as_str())
            .collect();
        if mine.len() >= n || start.elapsed() > DEADLINE {
            assert_eq!(mine.len(), n, "{mine:#?}");
            return mine;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn sign_out(p: &Provider) {
    let csrf = p.csrf().await;
    let out = p
        .browser
        .post(format!("{}/api/v1/logout", p.node.base_url))
        .header("cookie", &p.session)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn applications_that_ask_are_told_when_the_session_ends() {
    let (p, _, _) = provider_at(wardgate_server::node::system_clock, |_| {}).await;
    let app = Application::start(&[]).await;
    let (client, _, tokens) = signed_in(&p, &app).await;
    let sid = sid_of(&tokens);

    sign_out(&p).await;
    let got = app.wait_for(1, || {}).await;
    assert_eq!(got.len(), 1, "one logout token for the one application");
    assert_logout_token(&got[0].logout_token, &client, &sid);
    let sent = logout_records(&p, &client, 1).await;
    assert_eq!(sent[0].outcome.as_str(), "success");
    assert_eq!(sent[0].actor.as_deref(), Some(format!("client:{}", client.id).as_str()));
    assert_eq!(sent[0].details["session_id"], sid.as_str());
    assert_eq!(sent[0].details["attempt"], 1);
    assert_eq!(sent[0].details["session_end"], "signed out");
    assert_eq!(sent[0].details["backchannel_logout_uri"], app.uri.as_str());
    // Tied to the sign-in the application's tokens came from.
    let issued = records(&p, "oidc.grant.issued").await;
    let grant = issued.iter().find(|r| r.details["client_id"] == client.id.as_str()).unwrap();
    assert_eq!(sent[0].correlation_id, grant.correlation_id);
    let notices = p.node.store.logout_notices_of_session(&sid).await.unwrap();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].delivered_at.is_some() && notices[0].attempts == 1, "{notices:?}");
}

#[tokio::test]
async fn revocation_by_an_administrator_is_told_to_the_application() {
    let (p, _, _) = provider_at(wardgate_server::node::system_clock, |_| {}).await;
    let app = Application::start(&[]).await;
    let (client, _, tokens) = signed_in(&p, &app).await;
    let sid = sid_of(&tokens);

    let csrf = p.csrf().await;
    let revoked = p
        .browser
        .delete(format!("{}/api/v1/admin/users/rsmith/sessions", p.node.base_url))
        .header("cookie", &p.session)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let got = app.wait_for(1, || {}).await;
    assert_logout_token(&got[0].logout_token, &client, &sid);
    let sent = logout_records(&p, &client, 1).await;
    assert_eq!(sent[0].outcome.as_str(), "success");
    assert_eq!(sent[0].details["session_end"], "revoked by an administrator");
}

#[tokio::test]
async fn a_failed_delivery_is_retried_until_the_application_takes_it() {
    // The node's clock, moved on by this test past each backoff.
    static SKEW: AtomicI64 = AtomicI64::new(0);
    fn clock() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(SKEW.load(Ordering::SeqCst))
    }
    let (p, _, _) = provider_at(clock, |_| {}).await;
    // Down twice (500), then back.
    let app = Application::start(&[500, 500]).await;
    let (client, _, tokens) = signed_in(&p, &app).await;
    let sid = sid_of(&tokens);

    sign_out(&p).await;
    // A minute per look is past the first backoffs (5 s, 30 s) and far from giving up (a day).
    let got = app
        .wait_for(3, || {
            SKEW.fetch_add(60, Ordering::SeqCst);
        })
        .await;
    assert_eq!(got.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 200]);
    for r in &got {
        assert_logout_token(&r.logout_token, &client, &sid);
    }
    // Each attempt a fresh token.
    assert_ne!(jwt_part(&got[0].logout_token, 1)["jti"], jwt_part(&got[2].logout_token, 1)["jti"]);

    let sent = logout_records(&p, &client, 3).await;
    let summary: Vec<_> = sent.iter().map(|r| (r.outcome.as_str(), r.details["attempt"].as_u64().unwrap())).collect();
    assert_eq!(summary, [("failure", 1), ("failure", 2), ("success", 3)]);
    for failed in &sent[..2] {
        assert_eq!(failed.reason.as_deref(), Some("the application answered 500 Internal Server Error"));
        assert!(failed.details["next_attempt_at"].is_string(), "{failed:?}");
    }
    assert_eq!(sent[2].reason, None);
    assert!(sent.iter().all(|r| r.correlation_id == sent[0].correlation_id && r.correlation_id.is_some()));
    let notice = &p.node.store.logout_notices_of_session(&sid).await.unwrap()[0];
    assert_eq!(notice.attempts, 3);
    assert!(notice.delivered_at.is_some() && notice.gave_up_at.is_none(), "{notice:?}");
}

#[tokio::test]
async fn a_session_that_times_out_unobserved_is_ended_and_its_applications_told() {
    static SKEW: AtomicI64 = AtomicI64::new(0);
    fn clock() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(SKEW.load(Ordering::SeqCst))
    }
    let (p, _, _) = provider_at(clock, |_| {}).await;
    let app = Application::start(&[]).await;
    let (client, secret, tokens) = signed_in(&p, &app).await;
    let sid = sid_of(&tokens);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // Past the idle timeout (15 minutes), and nobody presents the session's cookie again:
    // only the node's own sweep can notice.
    SKEW.store(16 * 60, Ordering::SeqCst);
    let got = app.wait_for(1, || {}).await;
    assert_logout_token(&got[0].logout_token, &client, &sid);

    let expired = records(&p, "auth.session.expired").await;
    let expiry = expired.iter().find(|r| r.details["session_id"] == sid.as_str()).expect("the expiry is recorded");
    assert_eq!((expiry.reason.as_deref(), &expiry.client_ip), (Some("idle timeout"), &None));
    let revoked = records(&p, "oidc.grant.revoked").await;
    assert!(
        revoked.iter().any(|r| r.details["session_id"] == sid.as_str()
            && r.reason.as_deref() == Some("the session ended: idle timeout")),
        "{revoked:#?}"
    );
    assert_eq!(logout_records(&p, &client, 1).await[0].details["session_end"], "idle timeout");

    // The application's refresh token died with the session's grant.
    let (_, grant) =
        p.node.store.refresh_token(&wardgate_core::token::ordered_key(&refresh).unwrap()).await.unwrap().unwrap();
    assert!(grant.revoked_at.is_some(), "{grant:?}");
    let r = p
        .browser
        .post(format!("{}/oidc/token", p.node.base_url))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn ending_an_account_from_the_command_line_tells_its_applications() {
    use wardgate_core::audit::event::types;
    use wardgate_core::audit::{AuditEvent, Outcome};
    use wardgate_core::identity::{AccountStatus, User, Username};

    let (p, _, _) = provider_at(wardgate_server::node::system_clock, |_| {}).await;
    let app = Application::start(&[]).await;
    let (client, _, tokens) = signed_in(&p, &app).await;
    let sid = sid_of(&tokens);

    // Another administrator, so that the one signed in is not the last.
    let now = OffsetDateTime::now_utc();
    let backup =
        User::new("u-backup".into(), Username::parse("backup").unwrap(), "Backup".into(), AccountStatus::Active, now)
            .with_roles(vec!["admin".into()]);
    let created = AuditEvent::known(now, types::ADMIN_USER_CREATED, Outcome::Success).actor("operator:test");
    p.node.store.create_user(&backup, &[], &created).await.unwrap();
    // What `wardgate user disable rsmith` does, in a process without an HTTP server: the
    // store is all it shares with the running node.
    let auth = wardgate_core::settings::Settings::default().auth;
    wardgate_server::accounts::Accounts::new(&*p.node.store, "operator:test", now, &auth)
        .disable("rsmith")
        .await
        .unwrap();

    let got = app.wait_for(1, || {}).await;
    assert_logout_token(&got[0].logout_token, &client, &sid);
    let sent = logout_records(&p, &client, 1).await;
    assert_eq!(sent[0].outcome.as_str(), "success");
    assert_eq!(sent[0].details["session_end"], "account disabled");
}

/// A refresh through a session that has timed out is refused before the token is spent,
/// whether or not the sweep has ended the session yet.
#[tokio::test]
async fn a_refresh_through_a_timed_out_session_is_refused_and_spends_nothing() {
    static SKEW: AtomicI64 = AtomicI64::new(0);
    fn clock() -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(SKEW.load(Ordering::SeqCst))
    }
    let (p, _, _) = provider_at(clock, |_| {}).await;
    let app = Application::start(&[]).await;
    let (client, secret, tokens) = signed_in(&p, &app).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let presented = |t: String| {
        p.browser
            .post(format!("{}/oidc/token", p.node.base_url))
            .basic_auth(&client.id, Some(&secret))
            .form(&[("grant_type".to_owned(), "refresh_token".to_owned()), ("refresh_token".to_owned(), t)])
            .send()
    };
    // Within the session's life a refresh works, and hands out the next token.
    let r = presented(refresh).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let next = r.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();

    SKEW.store(16 * 60, Ordering::SeqCst);
    let r = presented(next.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let (token, _) =
        p.node.store.refresh_token(&wardgate_core::token::ordered_key(&next).unwrap()).await.unwrap().unwrap();
    assert_eq!(token.used_at, None, "a refused refresh does not spend the token");
}
