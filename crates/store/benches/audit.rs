//! Audit log throughput: durable appends with group commit under 32 concurrent writers, on
//! SQLite and (when `WARDGATE_TEST_POSTGRES_URL` is set) PostgreSQL, and chain
//! verification speed over a million records.
//!
//! `cargo bench -p wardgate-store --bench audit`; results and the machine are in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use time::OffsetDateTime;
use wardgate_core::audit::checkpoint::CheckpointPolicy;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, ChainHead, ChainVerifier, CheckpointSigner, Outcome};
use wardgate_core::settings::DatabaseLocation;
use wardgate_store::Store;
use wardgate_store::audit_writer::{AuditHandle, AuditWriter, AuditWriterConfig};

const WRITERS: u64 = 32;

fn event(i: u64) -> AuditEvent {
    AuditEvent::known(OffsetDateTime::now_utc(), types::AUTH_LOGIN_SUCCEEDED, Outcome::Success)
        .subject(format!("user{}", i % 5000))
        .factor("pwd")
        .factor("hwk")
        .client_ip(Some("10.20.30.40".parse().unwrap()))
        .user_agent(Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/156.0".into()))
        .device_id(Some("ws-icu-07".into()))
        .correlation_id(format!("{i:032x}"))
}

fn writer(store: Arc<dyn Store>) -> (AuditWriter, AuditHandle) {
    let signer = Arc::new(CheckpointSigner::new("bench".into(), "bench".into(), SigningKey::from_bytes(&[9; 32])));
    AuditWriter::spawn(
        store,
        signer,
        AuditWriterConfig {
            max_batch: 1024,
            checkpoints: CheckpointPolicy { every: 1000, interval: time::Duration::seconds(1) },
            clock: OffsetDateTime::now_utc,
        },
    )
}

/// `iters` appends spread over 32 concurrent writers; returns wall time.
async fn concurrent_appends(handle: &AuditHandle, iters: u64) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let h = handle.clone();
            let n = iters / WRITERS + u64::from(w < iters % WRITERS);
            tokio::spawn(async move {
                for i in 0..n {
                    h.append(event(w * 1_000_000 + i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

async fn open(location: &DatabaseLocation) -> Arc<dyn Store> {
    wardgate_store::open(location, "bench").await.unwrap()
}

async fn fresh_postgres(url: &str) -> Option<String> {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(url).await.ok()?;
    let schema = format!("wg_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&mut c).await.ok()?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut c).await.ok()?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

fn appends(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![("sqlite", DatabaseLocation::Sqlite(dir.path().join("bench.db")))];
    match std::env::var("WARDGATE_TEST_POSTGRES_URL") {
        Ok(url) => match rt.block_on(fresh_postgres(&url)) {
            Some(u) => backends.push(("postgres", DatabaseLocation::Postgres(u))),
            None => eprintln!("PostgreSQL unreachable at {url}: PostgreSQL benchmark skipped"),
        },
        Err(_) => eprintln!("WARDGATE_TEST_POSTGRES_URL unset: PostgreSQL benchmark skipped"),
    }
    // Commit latency of one 32-record batch, without the group committer around it: the
    // floor for 32 writers is 32 / this.
    let mut g = c.benchmark_group("audit_commit_batch_of_32");
    g.throughput(Throughput::Elements(32));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (name, location) in &backends {
        let store = rt.block_on(open(location));
        // Fresh events each time: timestamps must rise as in real traffic, or the index on
        // them is written all over instead of at its end.
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                let store = Arc::clone(&store);
                async move { store.append_audit(&(0..32).map(event).collect::<Vec<_>>()).await.unwrap() }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("audit_append_durable_32_writers");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, location) in &backends {
        let store = rt.block_on(open(location));
        let (_w, handle) = rt.block_on(async { writer(Arc::clone(&store)) });
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let h = handle.clone();
                async move { concurrent_appends(&h, iters).await }
            })
        });
    }
    g.finish();
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n: u64 = std::env::var("WARDGATE_BENCH_VERIFY_RECORDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    if n == 0 {
        return;
    }
    let store = rt.block_on(open(&DatabaseLocation::Sqlite(dir.path().join("verify.db"))));
    rt.block_on(async {
        let batch: Vec<AuditEvent> = (0..1000).map(event).collect();
        for _ in 0..n / 1000 {
            store.append_audit(&batch).await.unwrap();
        }
    });
    let mut g = c.benchmark_group("audit_verify");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(format!("sqlite_{n}_records"), |b| {
        b.to_async(&rt).iter(|| {
            let store = Arc::clone(&store);
            async move {
                let mut v = ChainVerifier::new(ChainHead::GENESIS, &[]);
                let fetch = |after| {
                    let s = Arc::clone(&store);
                    tokio::spawn(async move { s.audit_records(after, 20_000).await.unwrap() })
                };
                let mut next = fetch(0);
                loop {
                    let page = next.await.unwrap();
                    let Some(last) = page.last().map(|r| r.seq) else { break };
                    next = fetch(last);
                    for r in &page {
                        v.push(r).unwrap();
                    }
                }
                assert_eq!(v.verified(), n);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, appends, verify);
criterion_main!(benches);
