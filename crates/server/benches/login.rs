//! Full logins per second over HTTP (passphrase + TOTP), against the Argon2id ceiling
//! measured in the same run: cores ÷ the time of one hash. Everything a login does besides
//! hashing — three HTTP round trips, flow reads and writes, the TOTP compare-and-set, the
//! session insert and five audit records — should be small next to the hash.
//!
//! `cargo bench -p wardgate-server --bench login` (env: WARDGATE_BENCH_USERS, default 600;
//! WARDGATE_BENCH_CONCURRENCY, default 2 × cores).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::factors::totp::{self, TotpParams};
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, User, Username};
use wardgate_core::passphrase;
use wardgate_core::settings::Settings;
use wardgate_server::{Installation, Node, OpenMode};

const PASS: &str = "tidal cobalt lantern orchard";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Account {
    username: String,
    secret: Vec<u8>,
}

/// Active users with a passphrase (one shared hash: hashing it 600 times would only slow
/// the set-up) and an authenticator-app secret each.
async fn seed(settings: &Settings, n: usize) -> Vec<Account> {
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

async fn login(http: &reqwest::Client, base: &str, a: &Account) -> Duration {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let users = env("WARDGATE_BENCH_USERS", 600);
    let concurrency = env("WARDGATE_BENCH_CONCURRENCY", 2 * cores);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        // The ceiling: Argon2id verifications on every core at once, nothing else running.
        let phc = passphrase::hash(PASS).unwrap();
        let hashes = 20 * cores;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..cores {
            let phc = phc.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                for _ in 0..hashes / cores {
                    assert!(passphrase::verify(PASS, &phc));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let ceiling = hashes as f64 / t.elapsed().as_secs_f64();
        let one_hash = {
            let t = Instant::now();
            for _ in 0..10 {
                passphrase::verify(PASS, &phc);
            }
            t.elapsed() / 10
        };

        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
        settings.server.listen = "127.0.0.1:0".into();
        settings.auth.source_attempts_per_minute = 1_000_000;
        let accounts = Arc::new(seed(&settings, users).await);
        let node = Node::start(settings).await.unwrap();
        let base = node.base_url.clone();
        // reqwest has TLS without a crypto provider in this crate's tests; install ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();

        // Latency of one login with nothing else running.
        let quiet = 50.min(users / 4);
        let mut lat = Vec::new();
        for a in &accounts[..quiet] {
            lat.push(login(&http, &base, a).await);
        }
        lat.sort();

        // Throughput: every remaining account signs in once, `concurrency` at a time. Each
        // account is used once because a TOTP step is accepted only once per account.
        let next = Arc::new(AtomicUsize::new(quiet));
        let t = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (http, base, accounts, next) = (http.clone(), base.clone(), Arc::clone(&accounts), Arc::clone(&next));
            workers.push(tokio::spawn(async move {
                let mut n = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(a) = accounts.get(i) else { break n };
                    login(&http, &base, a).await;
                    n += 1;
                }
            }));
        }
        let mut done = 0;
        for w in workers {
            done += w.await.unwrap();
        }
        let elapsed = t.elapsed();
        let rate = done as f64 / elapsed.as_secs_f64();
        node.stop().await;

        println!("machine: {cores} cores");
        println!("argon2id (m=19456 KiB, t=2, p=1): one verification {:.1} ms", one_hash.as_secs_f64() * 1e3);
        println!("argon2id ceiling ({cores} cores, all busy): {ceiling:.1} verifications/s");
        println!(
            "full logins (passphrase + TOTP, 3 HTTP requests, {concurrency} concurrent): {done} in {:.2} s = {rate:.1} logins/s = {:.1}% of the ceiling",
            elapsed.as_secs_f64(),
            100.0 * rate / ceiling
        );
        println!(
            "one login, no load ({} logins): p50 {:.1} ms, p99 {:.1} ms",
            lat.len(),
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
    });
}
