//! Full logins per second over HTTP (passphrase + TOTP), against the Argon2id ceiling
//! measured in the same run: cores ÷ the time of one hash. Everything a login does besides
//! hashing — three HTTP round trips, flow reads and writes, the TOTP compare-and-set, the
//! session insert and five audit records — should be small next to the hash.
//!
//! `cargo bench -p wardgate-server --bench login` (env: WARDGATE_BENCH_USERS, default 600;
//! WARDGATE_BENCH_CONCURRENCY, default 2 × cores).

// The server runs in this process: it gets the allocator the `wardgate` binary has.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wardgate_core::passphrase;
use wardgate_core::settings::Settings;
use wardgate_server::Node;

#[path = "common/mod.rs"]
mod common;
use common::{PASS, env, login, seed};

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
