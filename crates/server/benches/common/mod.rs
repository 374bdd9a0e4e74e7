//! What the HTTP benchmarks share: seeded accounts with a passphrase and an
//! authenticator app, and a full sign-in through the JSON API.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::factors::totp::{self, TotpParams};
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, User, Username};
use wardgate_core::passphrase;
use wardgate_core::settings::Settings;
use wardgate_server::{Installation, OpenMode};

pub mod disk;

pub const PASS: &str = "tidal cobalt lantern orchard";

pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub struct Account {
    pub username: String,
    pub secret: Vec<u8>,
}

/// Active users with a passphrase (one shared hash: hashing it 600 times would only slow
/// the set-up) and an authenticator-app secret each.
pub async fn seed(settings: &Settings, n: usize) -> Vec<Account> {
    let inst = Installation::open(settings.clone(), OpenMode::Create).await.unwrap();
    let phc = passphrase::hash(PASS).unwrap();
    let now = OffsetDateTime::now_utc();
    let ring = inst.keyring.get();
    let mut accounts = Vec::with_capacity(n);
    for i in 0..n {
        let username = format!("bench{i:05}");
        let id = wardgate_core::token::random_id().unwrap();
        let user = User::new(
            id.clone(),
            Username::parse(&username).unwrap(),
            format!("Bench {i}"),
            AccountStatus::Active,
            now,
        );
        let secret = totp::generate_secret().unwrap().to_vec();
        let pwd = Factor::new(
            wardgate_core::token::random_id().unwrap(),
            id.clone(),
            FactorKind::Passphrase,
            "Passphrase",
            phc.clone(),
            now,
        );
        let fid = wardgate_core::token::random_id().unwrap();
        let sealed = ring.seal(&Factor::seal_context(&fid), &secret).unwrap();
        let mut otp = Factor::new(fid, id.clone(), FactorKind::Totp, "Authenticator app", sealed, now);
        otp.params = TotpParams::default().to_json();
        let e = AuditEvent::known(now, wardgate_core::audit::event::types::ADMIN_USER_CREATED, Outcome::Success)
            .subject(username.clone())
            .actor("bench");
        inst.store.create_user(&user, &[pwd, otp], &e).await.unwrap();
        accounts.push(Account { username, secret });
    }
    accounts
}

pub async fn login(http: &reqwest::Client, base: &str, a: &Account) -> Duration {
    let t = Instant::now();
    let start: serde_json::Value = http
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": a.username}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flow = start["flow"].as_str().expect("flow").to_owned();
    let r = http
        .post(format!("{base}/api/v1/login/passphrase"))
        .json(&json!({"flow": flow, "passphrase": PASS}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "passphrase step");
    let code = totp::code_at(TotpParams::default(), &a.secret, OffsetDateTime::now_utc()).unwrap();
    let r =
        http.post(format!("{base}/api/v1/login/totp")).json(&json!({"flow": flow, "code": code})).send().await.unwrap();
    assert_eq!(r.status(), 200, "totp step");
    t.elapsed()
}
