//! The harness every case runs in (a fresh database per case and backend), and the
//! fixtures the cases share.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::FutureExt as _;
use sqlx::Connection as _;
use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use time::OffsetDateTime;
use time::macros::datetime;
use wardgate_core::api_token::{ApiToken, Scope};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, ChainHead, ChainVerifier, CheckpointSigner, Outcome};
use wardgate_core::flow::{Flow, FlowKind};
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, User, Username};
use wardgate_core::keys::SigningKeyRecord;
use wardgate_core::login::Aal;
use wardgate_core::session::Session;
use wardgate_store::{PostgresStore, SqliteStore, Store, StoreError};

// --- harness ------------------------------------------------------------------------------

pub enum Backend {
    Sqlite { _dir: tempfile::TempDir, path: PathBuf },
    Postgres { base_url: String, url: String, schema: String },
}

pub struct Env {
    pub backend: Backend,
    /// The first handle, node "node-a".
    pub store: Arc<dyn Store>,
}

impl Env {
    pub async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wardgate.db");
        let store = Arc::new(SqliteStore::open(&path, "node-a").await.unwrap());
        Env { backend: Backend::Sqlite { _dir: dir, path }, store }
    }

    pub async fn postgres() -> Option<Env> {
        let base_url = match std::env::var("WARDGATE_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                // CI sets this so that a missing URL fails instead of passing silently.
                if std::env::var("WARDGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!("WARDGATE_REQUIRE_POSTGRES=1 but WARDGATE_TEST_POSTGRES_URL is unset");
                }
                eprintln!("PostgreSQL half skipped: WARDGATE_TEST_POSTGRES_URL is unset");
                return None;
            }
        };
        let schema = format!("wg_t_{:016x}", random_u64());
        let mut admin = sqlx::PgConnection::connect(&base_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
        admin.close().await.unwrap();
        let url = search_path_url(&base_url, &schema);
        let store = Arc::new(PostgresStore::open(&url, "node-a").await.unwrap());
        Some(Env { backend: Backend::Postgres { base_url, url, schema }, store })
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite { .. })
    }

    /// Another handle on the same database: for SQLite a second pool on the file (as the
    /// CLI beside the server), for PostgreSQL a second node.
    pub async fn open(&self, node: &str) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite { path, .. } => Arc::new(SqliteStore::open(path, node).await?),
            Backend::Postgres { url, .. } => Arc::new(PostgresStore::open(url, node).await?),
        })
    }

    /// Runs SQL behind the store's back.
    pub async fn raw_exec(&self, sqlite: &'static str, postgres: &'static str) {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::query(sqlite).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Backend::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(postgres).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// A second database beside this one, created as the first release left it (schema 1
    /// only), filled by `populate`, then opened by the store, which migrates it on.
    pub async fn open_from_schema_1(
        &self,
        sqlite_populate: &'static str,
        postgres_populate: &'static str,
    ) -> Result<Arc<dyn Store>, StoreError> {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let old = path.with_file_name("schema1.db");
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&old).create_if_missing(true);
                // A pool rather than a connection: `Migrator::run` on a `&mut` connection
                // makes a future the compiler cannot prove `Send` for every lifetime.
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                schema_1(include_str!("../../migrations/sqlite/0001_initial.sql")).run(&pool).await.unwrap();
                sqlx::raw_sql(sqlite_populate).execute(&pool).await.unwrap();
                pool.close().await;
                Ok(Arc::new(SqliteStore::open(&old, "node-a").await?))
            }
            Backend::Postgres { base_url, schema, .. } => {
                let schema = format!("{schema}_v1");
                let mut admin = sqlx::PgConnection::connect(base_url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
                admin.close().await.unwrap();
                let url = search_path_url(base_url, &schema);
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                schema_1(include_str!("../../migrations/postgres/0001_initial.sql")).run(&pool).await.unwrap();
                sqlx::raw_sql(postgres_populate).execute(&pool).await.unwrap();
                pool.close().await;
                Ok(Arc::new(PostgresStore::open(&url, "node-a").await?))
            }
        }
    }

    pub async fn finish(self) {
        drop(self.store);
        if let Backend::Postgres { base_url, schema, .. } = self.backend {
            let mut admin = sqlx::PgConnection::connect(&base_url).await.unwrap();
            for schema in [schema.clone(), format!("{schema}_v1")] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
            admin.close().await.unwrap();
        }
    }
}

/// The migrator of the first release: the same migration 1 (and so the same checksum) as
/// the store embeds, and nothing after it.
fn schema_1(sql: &'static str) -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "initial".into(),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )])
}

fn search_path_url(base_url: &str, schema: &str) -> String {
    let sep = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{sep}options=-c%20search_path%3D{schema}")
}

fn random_u64() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// Runs a case, then cleans up (dropping the PostgreSQL schema) even if the case panicked.
pub async fn run<F>(env: Env, case: F)
where
    F: for<'a> FnOnce(&'a Env) -> futures_util::future::BoxFuture<'a, ()>,
{
    let outcome = std::panic::AssertUnwindSafe(case(&env)).catch_unwind().await;
    env.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::harness::run(crate::harness::Env::sqlite().await, |env| Box::pin(super::$name(env))).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(env) = crate::harness::Env::postgres().await {
                        crate::harness::run(env, |env| Box::pin(super::$name(env))).await;
                    }
                }
            )*
        }
    };
}

// --- fixtures -----------------------------------------------------------------------------

pub const T0: OffsetDateTime = datetime!(2026-11-28 07:00:00 UTC);

pub fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

pub fn ev(i: usize) -> AuditEvent {
    AuditEvent::known(T0 + secs(i as i64), types::AUTH_LOGIN_FAILED, Outcome::Failure)
        .subject(format!("user{i}"))
        .reason("bad passphrase")
}

pub fn admin_ev(t: &'static str) -> AuditEvent {
    AuditEvent::known(T0, t, Outcome::Success).actor("root")
}

pub fn user(id: &str, name: &str, is_admin: bool) -> User {
    let roles = if is_admin { vec!["admin".to_owned()] } else { Vec::new() };
    let mut u = User::new(
        id.into(),
        Username::parse(name).unwrap(),
        format!("{name} (display)"),
        AccountStatus::Active,
        // Sub-second, to show microseconds survive the round trip.
        T0 + time::Duration::microseconds(123_456),
    )
    .with_roles(roles);
    u.email = format!("{name}@example.org");
    u
}

pub fn factor(id: &str, user_id: &str, kind: FactorKind, secret: &str, at: i64) -> Factor {
    Factor::new(id.into(), user_id.into(), kind, &format!("{id} label"), secret.into(), T0 + secs(at))
}

/// An event of a type this suite names itself, so that it does not depend on which
/// constants `types` holds.
pub fn typed_ev(event_type: &str) -> AuditEvent {
    AuditEvent::new(T0, event_type, Outcome::Success).unwrap().actor("root")
}

pub fn session(id: &str, user_id: &str, digest: u8, at: i64) -> Session {
    Session {
        id: id.into(),
        id_digest: [digest; 32],
        user_id: user_id.into(),
        aal: Aal::Aal2,
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        created_at: T0 + secs(at),
        last_seen_at: T0 + secs(at),
        revoked_at: None,
        client_ip: Some("2001:db8::7".parse::<IpAddr>().unwrap()),
        user_agent: Some("Mozilla/5.0 (ward 4B)".into()),
        correlation_id: format!("corr-{id}"),
        limits: None,
    }
}

pub fn flow(digest: u8, user_id: Option<&str>, expires_in: i64) -> Flow {
    Flow {
        id_digest: [digest; 32],
        kind: FlowKind::Login,
        user_id: user_id.map(str::to_owned),
        state: serde_json::json!({ "step": "passphrase", "tries": 0 }),
        version: 0,
        created_at: T0,
        expires_at: T0 + secs(expires_in),
    }
}

pub fn api_token(id: &str, user_id: &str, digest: u8, at: i64) -> ApiToken {
    ApiToken {
        id: id.into(),
        user_id: user_id.into(),
        digest: [digest; 32],
        label: format!("{id} label"),
        scopes: vec![Scope::UsersRead, Scope::UsersWrite],
        created_at: T0 + secs(at),
        expires_at: T0 + secs(at + 86_400),
        revoked_at: None,
    }
}

pub const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

pub fn signer() -> CheckpointSigner {
    CheckpointSigner::new("k1".into(), "node-a".into(), ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
}

pub fn key(id: &str, purpose: &str, at: i64, sealed: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        id: id.into(),
        purpose: purpose.into(),
        public_key: [at as u8; 32],
        private_sealed: sealed.into(),
        created_at: T0 + secs(at),
    }
}

/// Reads the whole chain from the anchor and verifies it; returns (head, records verified).
pub async fn verify_all(s: &dyn Store) -> (ChainHead, u64) {
    let anchor = s.audit_anchor().await.unwrap();
    let cps = s.checkpoints(anchor.seq, i64::MAX).await.unwrap();
    let mut v = ChainVerifier::new(anchor, &cps);
    let mut after = anchor.seq;
    loop {
        let page = s.audit_records(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            v.push(r).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let verified = v.verified();
    let head = v.finish().unwrap();
    assert_eq!(head, s.audit_head().await.unwrap());
    (head, verified)
}

pub async fn head_at(s: &dyn Store, seq: i64) -> ChainHead {
    let r = s.audit_records(seq - 1, 1).await.unwrap().remove(0);
    assert_eq!(r.seq, seq);
    ChainHead { seq, hash: r.hash.try_into().unwrap() }
}

pub async fn last_type(s: &dyn Store) -> String {
    let head = s.audit_head().await.unwrap();
    s.audit_records(head.seq - 1, 1).await.unwrap().remove(0).event_type
}

/// What an auditor would see change: used to show a refused operation changed nothing.
pub async fn snapshot(s: &dyn Store) -> (ChainHead, i64, i64, i64, bool) {
    (
        s.audit_head().await.unwrap(),
        s.audit_count().await.unwrap(),
        s.revision().await.unwrap(),
        s.count_admins().await.unwrap(),
        s.bootstrap_pending(T0).await.unwrap(),
    )
}
