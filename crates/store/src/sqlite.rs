//! The embedded backend: one SQLite file, shared by the server and the CLI.
//!
//! Durability: WAL with `synchronous=FULL`, so a commit is on disk before `append_audit`
//! returns. The group commit's own connection runs with `synchronous=NORMAL` and a thread
//! of ours flushes the log after its commits (`durable.rs`), so that the next batch is
//! applied while the last one reaches the disk; its callers still hear only once it has.
//!
//! Concurrency: every write transaction starts with `BEGIN IMMEDIATE`, taking the file's
//! write lock before the audit head is read, so two processes cannot both read the same
//! head and fork the chain. Within one process writers also queue on a mutex, which is
//! fairer and cheaper than SQLite's sleeping busy handler.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, QueryBuilder, Sqlite, SqlitePool, Transaction};
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard};
use wardgate_core::api_token::ApiToken;
use wardgate_core::audit::record::seal_batch;
use wardgate_core::audit::{AuditEvent, ChainHead, Checkpoint, SealedRecord, StoredRecord};
use wardgate_core::device::Device;
use wardgate_core::flow::Flow;
use wardgate_core::governance::{BreakGlass, Campaign, Decision, Elevation, ElevationStatus, Item, Review, Vendor};
use wardgate_core::identity::{AccountStatus, Factor, User, Username};
use wardgate_core::keys::SigningKeyRecord;
use wardgate_core::lifecycle::{Proofing, RecoveryRequest, RecoveryStatus};
use wardgate_core::lockout::Attempts;
use wardgate_core::oidc::{AuthCode, Consent, Grant, LogoutNotice, OidcClient, OidcKey, RefreshToken};
use wardgate_core::policy::{NewPolicyVersion, PolicyVersion};
use wardgate_core::scim::group::ScimGroup;
use wardgate_core::scim::token::ScimToken;
use wardgate_core::session::{Session, SessionPolicy};

use crate::batch::{Write, Written};
use crate::common::{self, Presented, micros};
use crate::durable::LogFlusher;
use crate::governance;
use crate::lifecycle;
use crate::readers::Readers;
use crate::scim;
use crate::{
    AuditMark, AuditMarks, CodeRedemption, Durable, OidcPurged, RefreshHolder, Rotation, SealedColumn, SealedRef,
    Store, StoreError,
};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, "authentication", include_str!("../migrations/sqlite/0002_authentication.sql")),
    (3, "oidc", include_str!("../migrations/sqlite/0003_oidc.sql")),
    (4, "client_keys", include_str!("../migrations/sqlite/0004_client_keys.sql")),
    (5, "consent", include_str!("../migrations/sqlite/0005_consent.sql")),
    (6, "logout_notices", include_str!("../migrations/sqlite/0006_logout_notices.sql")),
    (7, "policy", include_str!("../migrations/sqlite/0007_policy.sql")),
    (8, "governance", include_str!("../migrations/sqlite/0008_governance.sql")),
    (9, "scim", include_str!("../migrations/sqlite/0009_scim.sql")),
    (10, "lifecycle", include_str!("../migrations/sqlite/0010_lifecycle.sql")),
];

/// Rows per INSERT: 5 parameters each stays far below SQLite's 32766-parameter limit, and a
/// typical group-commit batch goes in one statement.
const INSERT_CHUNK: usize = 1000;

/// Writes per batch on the one-statement path: at most 25 parameters a write, well under
/// SQLite's 32766.
const FAST_BATCH: usize = 1000;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections for the point reads on the request path, as many as the pool has.
const READERS: usize = 8;

/// SQLite primary result codes (the low byte of the extended code sqlx reports).
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_NOTADB: i32 = 26;

pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for the other writes: SQLite has one writer anyway, and a connection
    /// that made the last change keeps a warm page cache instead of re-reading pages from
    /// the WAL.
    writes: SqlitePool,
    node: String,
    path: PathBuf,
    /// Serialises this process's writers, and remembers the chain head our own last append
    /// left (see `append_audit`). Any other write forgets it.
    writer: Mutex<Option<ChainHead>>,
    /// The connection of the group commit (audit batches, grants, codes, rotations), held
    /// outside any pool: a pool pings a connection on its way back, one more round trip
    /// to SQLite's worker thread on every commit. Used only while holding `writer`.
    hot: Mutex<Option<SqliteConnection>>,
    /// Point reads on the request path, without the pool's ping after each.
    readers: Readers,
    /// Flushes the write-ahead log for `hot`, which commits without waiting for the disk
    /// (`synchronous=NORMAL`) so that the next batch can be applied during the flush.
    flusher: LogFlusher,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("node", &self.node).finish()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `path`. A file that is not
    /// an intact Wardgate database is refused with [`StoreError::Corrupt`] and left as it is.
    pub async fn open(path: &Path, node: &str) -> Result<SqliteStore, StoreError> {
        check_header(path)?;
        probe(path).await?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            // Statement journals (a multi-row INSERT inside a transaction needs one) stay in
            // memory instead of a temporary file created and unlinked on every commit.
            .pragma("temp_store", "memory")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A local file needs no liveness ping; each ping is a round trip to the
            // connection's worker thread on every acquire.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            // Audit reads stream tens of thousands of rows: a deeper buffer lets SQLite's
            // worker thread run ahead instead of waking the reader every 50 rows. No
            // memory map: SQLite here remaps the whole file (munmap, mmap, a page fault per
            // page touched) on every read that finds it grown, which under a steady stream
            // of grants and records was every read.
            .connect_with(options.clone().row_buffer_size(1024))
            .await
            .map_err(|e| at_path(path, e))?;
        let readers = options.clone();
        let writes = match SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                pool.close().await;
                return Err(at_path(path, e));
            }
        };
        let flusher = match LogFlusher::start(&log_path(path)) {
            Ok(f) => f,
            Err(e) => {
                writes.close().await;
                pool.close().await;
                return Err(e);
            }
        };
        let store = SqliteStore {
            pool,
            writes,
            node: node.to_owned(),
            path: path.to_owned(),
            writer: Mutex::new(None),
            hot: Mutex::new(None),
            readers: Readers::new(readers, READERS),
            flusher,
        };
        if let Err(e) = store.prepare().await {
            store.close().await;
            return Err(e);
        }
        tracing::debug!(path = %path.display(), node, "opened SQLite store");
        Ok(store)
    }

    /// Closes every connection, checkpointing the WAL into the main file.
    pub async fn close(&self) {
        if let Err(e) = self.flusher.settle().await {
            tracing::warn!(error = %e, "closing the store after a failed flush");
        }
        if let Some(conn) = self.hot.lock().await.take() {
            let _ = conn.close().await;
        }
        self.writes.close().await;
        self.readers.close().await;
        self.pool.close().await;
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        // Reading the schema is also the first real read of the file, where SQLite notices
        // a damaged header.
        let mut conn = self.pool.acquire().await.map_err(|e| at_path(&self.path, e))?;
        refuse_foreign(&mut conn, &self.path).await?;
        drop(conn);
        let migrator = common::migrator(MIGRATIONS);
        // Two processes creating a new file at once can collide inside the migrator (it has
        // no lock on SQLite); the loser finds the schema in place when it tries again.
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) => match common::migrate_error(e, |e| at_path(&self.path, e)) {
                    e @ StoreError::Corrupt(_) => return Err(e),
                    e if attempt >= 3 => return Err(e),
                    e => {
                        tracing::debug!(error = %e, "schema migration collided; retrying");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                    }
                },
            }
        }
    }

    /// For writes that leave the audit head alone (checkpoints, marks, metadata, re-wrapped
    /// secrets): the remembered head stays valid, so the next append keeps its fast path.
    async fn write_beside_chain(
        &self,
    ) -> Result<(MutexGuard<'_, Option<ChainHead>>, Transaction<'static, Sqlite>), StoreError> {
        let guard = self.writer.lock().await;
        self.refuse_after_failed_flush()?;
        let tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        Ok((guard, tx))
    }

    /// [`Self::write`] for a change that appends to the chain, [`Self::write_beside_chain`]
    /// for one that does not.
    async fn write_if_audited(
        &self,
        audited: bool,
    ) -> Result<(MutexGuard<'_, Option<ChainHead>>, Transaction<'static, Sqlite>), StoreError> {
        if audited { self.write().await } else { self.write_beside_chain().await }
    }

    /// Takes the in-process writer slot, then the file's write lock, and forgets the
    /// remembered head: the caller appends to the chain.
    async fn write(&self) -> Result<(MutexGuard<'_, Option<ChainHead>>, Transaction<'static, Sqlite>), StoreError> {
        let mut guard = self.writer.lock().await;
        *guard = None;
        self.refuse_after_failed_flush()?;
        let tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        Ok((guard, tx))
    }

    /// The group-commit fast path: when we know the head (our own last append left it),
    /// the whole append is one statement list — `BEGIN IMMEDIATE`, one multi-row INSERT, a
    /// guarded head UPDATE, `COMMIT` — and so one round trip to SQLite's worker thread
    /// instead of six. If another process appended meanwhile, the INSERT hits an existing
    /// sequence number or the guard sets the head's `seq` to NULL; either is a constraint
    /// error, the transaction is rolled back and the caller takes the slow path. The chain
    /// cannot fork either way.
    async fn append_known_head(
        &self,
        head: ChainHead,
        rows: &Rows,
        events: &[AuditEvent],
    ) -> Result<(ChainHead, Durable), StoreError> {
        let sealed = seal_batch(&head, &self.node, events);
        // Every row comes with its record, so no records means nothing to write.
        let Some(new_head) = sealed.last().map(|r| r.head()) else { return Ok((head, Durable::now())) };
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("BEGIN IMMEDIATE; ");
        rows.push_inserts(&mut qb);
        push_guarded_append(&mut qb, head, &sealed);
        qb.push("COMMIT");
        let mut hot = self.hot_connection().await?;
        let conn = opened(&mut hot)?;
        // Records alone come in a few batch sizes, and caching those statements saves the
        // parse; batches with other rows vary with their mix and are not worth a place.
        let cache = rows.is_empty() && sealed.len() <= 64;
        match qb.build().persistent(cache).execute(&mut *conn).await {
            Ok(_) => Ok((new_head, self.flusher.committed())),
            Err(e) => {
                roll_back(&mut hot).await;
                Err(err(e))
            }
        }
    }

    /// The group commit's own connection, opened on first use (and again after a failed
    /// rollback closed it). The caller holds `writer`.
    async fn hot_connection(&self) -> Result<MutexGuard<'_, Option<SqliteConnection>>, StoreError> {
        self.refuse_after_failed_flush()?;
        let mut hot = self.hot.lock().await;
        if hot.is_none() {
            // The write pool's file and pragmas. Its commits return once the log is
            // written; `flusher` makes them durable. Checkpoints still flush the log
            // before copying it into the database, and the database after.
            let options = (*self.writes.connect_options()).clone().synchronous(SqliteSynchronous::Normal);
            *hot = Some(SqliteConnection::connect_with(&options).await.map_err(|e| at_path(&self.path, e))?);
        }
        Ok(hot)
    }

    /// A point read on the request path, on one of [`Readers`]' connections.
    async fn read<T>(
        &self,
        read: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        self.readers.read(read).await.map_err(err)
    }

    /// The row a joined point read finds for a token's digest, if any.
    async fn row_by_digest(&self, sql: &'static str, digest: &[u8; 32]) -> Result<Option<SqliteRow>, StoreError> {
        self.read(async |c| sqlx::query(sql).bind(digest.as_slice()).fetch_optional(c).await).await
    }

    /// From now on every flush of the log fails, as on a dead disk.
    #[cfg(test)]
    pub(crate) fn fail_flushes(&mut self) {
        // No file can have a name with a NUL in it.
        self.flusher = LogFlusher::start(&self.path.with_extension("db\0-wal")).unwrap();
    }

    fn refuse_after_failed_flush(&self) -> Result<(), StoreError> {
        match self.flusher.failure() {
            Some(why) => Err(StoreError::Unavailable(why)),
            None => Ok(()),
        }
    }
}

/// SQLite's write-ahead log beside the database file.
fn log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// What [`SqliteStore::hot_connection`] opened.
fn opened(hot: &mut Option<SqliteConnection>) -> Result<&mut SqliteConnection, StoreError> {
    hot.as_mut().ok_or_else(|| StoreError::Unavailable("the write connection is not open".into()))
}

/// Ends a statement list that failed part-way on the group commit's connection. One whose
/// `ROLLBACK` fails is closed rather than kept with a transaction open (it also fails when
/// no transaction was open, and then a fresh connection costs little); the next commit
/// opens a fresh one.
async fn roll_back(hot: &mut Option<SqliteConnection>) {
    let failed = match hot.as_mut() {
        Some(conn) => sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err(),
        None => false,
    };
    if failed && let Some(conn) = hot.take() {
        let _ = conn.close().await;
    }
}

/// Appends sealed records after `head` and moves the head to the last of them, guarded: if
/// the stored head is not `head` (another process appended), the head's `seq` becomes NULL,
/// a constraint error, and the statement list fails instead of forking the chain. Pushes
/// nothing when there are no records.
fn push_guarded_append(qb: &mut QueryBuilder<Sqlite>, head: ChainHead, sealed: &[SealedRecord]) {
    let Some(new_head) = sealed.last().map(|r| r.head()) else { return };
    qb.push("INSERT INTO audit_log (seq, ts_us, event_type, body, hash) ");
    qb.push_values(sealed, |mut row, r| {
        row.push_bind(r.seq)
            .push_bind(r.ts_us)
            .push_bind(r.event_type.clone())
            .push_bind(r.body.clone())
            .push_bind(r.hash.to_vec());
    });
    qb.push("; UPDATE audit_head SET seq = CASE WHEN seq = ")
        .push_bind(head.seq)
        .push(" AND hash = ")
        .push_bind(head.hash.to_vec())
        .push(" THEN ")
        .push_bind(new_head.seq)
        .push(" END, hash = ")
        .push_bind(new_head.hash.to_vec())
        .push(" WHERE id = 1; ");
}

/// New rows of a batch, written together.
#[derive(Default)]
struct Rows {
    grants: Vec<Grant>,
    refresh: Vec<RefreshToken>,
    codes: Vec<AuthCode>,
}

impl Rows {
    /// Takes a write that only adds rows, with its record; false for any other write.
    fn add(&mut self, w: &Write, records: &mut Vec<AuditEvent>) -> Result<bool, StoreError> {
        match w {
            Write::Audit(e) => records.push(e.clone()),
            Write::InsertGrant { grant, refresh, event } => {
                common::check_first_refresh(grant, refresh.as_ref())?;
                self.grants.push(grant.clone());
                self.refresh.extend(refresh.iter().cloned());
                records.push(event.clone());
            }
            Write::InsertCode { code, event } => {
                self.codes.push(code.clone());
                records.push(event.clone());
            }
            Write::RedeemCode { .. } | Write::RedeemIntoGrant { .. } | Write::RotateRefresh { .. } => return Ok(false),
        }
        Ok(true)
    }

    fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.refresh.is_empty() && self.codes.is_empty()
    }

    /// One multi-row INSERT per table, each ended with `; `.
    fn push_inserts(&self, qb: &mut QueryBuilder<Sqlite>) {
        if !self.grants.is_empty() {
            qb.push(
                "INSERT INTO oidc_grants (id, client_id, user_id, session_id, scopes, acr, amr, auth_time_us, \
                 correlation_id, created_at_us, revoked_at_us) ",
            );
            qb.push_values(&self.grants, |mut row, g| {
                row.push_bind(g.id.clone())
                    .push_bind(g.client_id.clone())
                    .push_bind(g.user_id.clone())
                    .push_bind(g.session_id.clone())
                    .push_bind(common::list_json(&g.scopes))
                    .push_bind(g.acr.clone())
                    .push_bind(common::list_json(&g.amr))
                    .push_bind(g.auth_time.map(micros))
                    .push_bind(g.correlation_id.clone())
                    .push_bind(micros(g.created_at))
                    .push_bind(g.revoked_at.map(micros));
            });
            qb.push("; ");
        }
        if !self.refresh.is_empty() {
            qb.push("INSERT INTO oidc_refresh_tokens (digest, grant_id, created_at_us, expires_at_us, used_at_us) ");
            qb.push_values(&self.refresh, |mut row, t| {
                row.push_bind(t.digest.to_vec())
                    .push_bind(t.grant_id.clone())
                    .push_bind(micros(t.created_at))
                    .push_bind(micros(t.expires_at))
                    .push_bind(t.used_at.map(micros));
            });
            qb.push("; ");
        }
        if !self.codes.is_empty() {
            qb.push(
                "INSERT INTO oidc_codes (digest, client_id, user_id, session_id, redirect_uri, code_challenge, nonce, \
                 scopes, acr, amr, auth_time_us, correlation_id, created_at_us, expires_at_us, grant_id) ",
            );
            qb.push_values(&self.codes, |mut row, c| {
                row.push_bind(c.digest.to_vec())
                    .push_bind(c.client_id.clone())
                    .push_bind(c.user_id.clone())
                    .push_bind(c.session_id.clone())
                    .push_bind(c.redirect_uri.clone())
                    .push_bind(c.code_challenge.clone())
                    .push_bind(c.nonce.clone())
                    .push_bind(common::list_json(&c.scopes))
                    .push_bind(c.acr.clone())
                    .push_bind(common::list_json(&c.amr))
                    .push_bind(micros(c.auth_time))
                    .push_bind(c.correlation_id.clone())
                    .push_bind(micros(c.created_at))
                    .push_bind(micros(c.expires_at))
                    .push_bind(c.grant_id.clone());
            });
            qb.push("; ");
        }
    }
}

impl SqliteStore {
    /// A batch of inserts and spends read ahead ([`Write::is_read_ahead`]) on the
    /// remembered head, as one statement list and one round trip to SQLite's worker thread:
    /// the spends go without reading first, each kind followed by a guard that fails the
    /// list unless every one of them took. The caller takes the reading path
    /// ([`Self::commit_on`]) when it fails, which tells a token spent or revoked meanwhile
    /// (or a head another process moved) apart from the rest.
    async fn read_ahead_known_head(
        &self,
        head: ChainHead,
        writes: &[Write],
    ) -> Result<(Vec<Written>, ChainHead, Durable), StoreError> {
        let mut records = Vec::with_capacity(writes.len());
        let mut found = Vec::with_capacity(writes.len());
        let mut rows = Rows::default();
        let mut presented = Vec::new();
        let mut codes = Vec::new();
        for w in writes {
            if rows.add(w, &mut records)? {
                found.push(Written::Done);
                continue;
            }
            found.push(match w {
                Write::RotateRefresh { digest, next, now, rotated, live: Some(grant), .. } => {
                    presented.push((*digest, *now));
                    rows.refresh.push(RefreshToken { grant_id: grant.id.clone(), ..next.clone() });
                    records.push(rotated.clone());
                    Written::Rotation(Rotation::Rotated(grant.clone()))
                }
                Write::RedeemIntoGrant { digest, now, grant, refresh, event, read: Some(code) } => {
                    common::check_first_refresh(grant, Some(refresh))?;
                    codes.push((digest, *now, grant.id.as_str()));
                    rows.grants.push(grant.clone());
                    rows.refresh.push(refresh.clone());
                    records.push(event.clone());
                    let redeemed = AuthCode { grant_id: Some(grant.id.clone()), ..code.clone() };
                    Written::Redemption(CodeRedemption::Fresh(redeemed))
                }
                _ => return Err(StoreError::Malformed("a write that was not read ahead".into())),
            });
        }
        let sealed = seal_batch(&head, &self.node, &records);
        // Every row and every spend comes with its record, so no records means nothing to write.
        let Some(new_head) = sealed.last().map(|r| r.head()) else { return Ok((found, head, Durable::now())) };
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("BEGIN IMMEDIATE; ");
        if !presented.is_empty() {
            push_spend(&mut qb, &presented);
            push_changed_guard(&mut qb, presented.len());
        }
        if !codes.is_empty() {
            push_redeem(&mut qb, &codes);
            push_changed_guard(&mut qb, codes.len());
        }
        rows.push_inserts(&mut qb);
        push_guarded_append(&mut qb, head, &sealed);
        qb.push("COMMIT");
        let mut hot = self.hot_connection().await?;
        let conn = opened(&mut hot)?;
        // The statement list's text depends only on how many writes of each kind the batch
        // holds (every value is bound), and a steady load repeats a few such shapes: kept
        // prepared, a repeated shape skips SQLite's parser and code generator, a fifth of
        // this connection's thread under refreshes when every list was prepared afresh.
        // Shapes that do not recur fall out of the statement cache, least recently used
        // first.
        let cache = sealed.len() <= 64;
        match qb.build().persistent(cache).execute(&mut *conn).await {
            Ok(_) => Ok((found, new_head, self.flusher.committed())),
            Err(e) => {
                roll_back(&mut hot).await;
                Err(err(e))
            }
        }
    }

    /// One batch of writes as one transaction, in as few round trips to SQLite's worker
    /// thread as the writes allow, since the whole batch waits on each: `BEGIN` rides with
    /// the first statement, the batch's refresh tokens are spent and its codes redeemed in
    /// one statement each, and the new rows, the records and the head (when `known`) go
    /// with `COMMIT`. What the batch statements leave (replays, unknown and expired tokens
    /// and codes) goes one by one, which tells them apart. The caller rolls back on error.
    async fn commit_on(
        &self,
        conn: &mut SqliteConnection,
        known: Option<ChainHead>,
        writes: &[Write],
    ) -> Result<(Vec<Written>, ChainHead), StoreError> {
        let mut records = Vec::with_capacity(writes.len());
        let mut found = Vec::with_capacity(writes.len());
        // New rows wait for the end and go in one statement list: nothing later in a batch
        // can depend on them (a code or refresh token is handed out only after its batch
        // commits).
        let mut rows = Rows::default();
        // Each token and code once: a second presentation in the same batch is a replay,
        // which the one-by-one path finds after the first has spent it.
        let mut seen = std::collections::HashSet::new();
        let presented: Vec<([u8; 32], OffsetDateTime)> = writes
            .iter()
            .filter_map(|w| match w {
                Write::RotateRefresh { digest, now, .. } if seen.insert(*digest) => Some((*digest, *now)),
                _ => None,
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let codes: Vec<(&[u8; 32], OffsetDateTime, &str)> = writes
            .iter()
            .filter_map(|w| match w {
                Write::RedeemIntoGrant { digest, now, grant, .. } if seen.insert(*digest) => {
                    Some((digest, *now, grant.id.as_str()))
                }
                _ => None,
            })
            .collect();
        let mut begin = Some("BEGIN IMMEDIATE; ");
        let mut spent = spend_live(&mut *conn, &mut begin, &presented).await?;
        let mut fresh = redeem_fresh(&mut *conn, &mut begin, &codes).await?;
        if let Some(b) = begin {
            sqlx::query(b).execute(&mut *conn).await.map_err(err)?;
        }
        for w in writes {
            if rows.add(w, &mut records)? {
                found.push(Written::Done);
                continue;
            }
            found.push(match w {
                Write::Audit(_) | Write::InsertGrant { .. } | Write::InsertCode { .. } => Written::Done,
                Write::RedeemCode { digest, now, grant_id } => {
                    Written::Redemption(redeem_code_in(&mut *conn, digest, *now, grant_id).await?)
                }
                Write::RedeemIntoGrant { digest, now, grant, refresh, event, .. } => {
                    common::check_first_refresh(grant, Some(refresh))?;
                    let redemption = match fresh.remove(digest) {
                        Some(code) => CodeRedemption::Fresh(code),
                        None => redeem_code_in(&mut *conn, digest, *now, &grant.id).await?,
                    };
                    if matches!(redemption, CodeRedemption::Fresh(_)) {
                        rows.grants.push(grant.clone());
                        rows.refresh.push(refresh.clone());
                        records.push(event.clone());
                    }
                    Written::Redemption(redemption)
                }
                Write::RotateRefresh { digest, next, now, rotated, reused, .. } => {
                    let rotation = match spent.remove(digest) {
                        Some(grant) => Rotation::Rotated(grant),
                        None => rotate_in(&mut *conn, digest, *now).await?,
                    };
                    match &rotation {
                        Rotation::Rotated(g) => {
                            rows.refresh.push(RefreshToken { grant_id: g.id.clone(), ..next.clone() });
                            records.push(rotated.clone());
                        }
                        Rotation::Reused(_) => records.push(reused.clone()),
                        Rotation::Unknown => {}
                    }
                    Written::Rotation(rotation)
                }
            });
        }
        let head = match known {
            Some(head) if records.len() <= INSERT_CHUNK => head,
            _ => {
                // Not known, or too many records for one statement: the slow, sure way.
                if !rows.is_empty() {
                    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
                    rows.push_inserts(&mut qb);
                    qb.build().persistent(false).execute(&mut *conn).await.map_err(|e| common::conflict(e, err))?;
                }
                let head = append_in(&mut *conn, &self.node, &records).await?;
                sqlx::query("COMMIT").execute(&mut *conn).await.map_err(err)?;
                return Ok((found, head));
            }
        };
        let sealed = seal_batch(&head, &self.node, &records);
        let new_head = sealed.last().map_or(head, |r| r.head());
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
        rows.push_inserts(&mut qb);
        push_guarded_append(&mut qb, head, &sealed);
        qb.push("COMMIT");
        qb.build().persistent(false).execute(&mut *conn).await.map_err(|e| common::conflict(e, err))?;
        Ok((found, new_head))
    }
}

/// Refuses a file that is not SQLite at all before SQLite opens it, so that nothing (not
/// even a journal-mode change) is ever written into someone's damaged or foreign file.
fn check_header(path: &Path) -> Result<(), StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::Unavailable(format!("cannot read {}: {e}", path.display()))),
    };
    let mut header = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    // An empty file is what `touch` leaves; SQLite makes a new database of it.
    if header.is_empty() {
        return Ok(());
    }
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return Err(StoreError::Corrupt(format!(
            "{} is not a SQLite database (truncated or overwritten); restore it from a backup",
            path.display()
        )));
    }
    Ok(())
}

/// Reads the schema of an existing file without writing anything, not even the `-wal` and
/// `-shm` files a read-write open creates, so that a damaged file is reported with nothing
/// added beside it. Skipped when a WAL or rollback journal is present — as whenever another
/// process has the database open — because the main file alone may then lag behind or be
/// mid-checkpoint, and only a normal, locking open that replays the log can judge it.
async fn probe(path: &Path) -> Result<(), StoreError> {
    if !path.exists() || sibling(path, "-wal").exists() || sibling(path, "-journal").exists() {
        return Ok(());
    }
    let options = SqliteConnectOptions::new().filename(path).read_only(true).immutable(true);
    let result = match SqliteConnection::connect_with(&options).await {
        Ok(mut conn) => {
            let r = refuse_foreign(&mut conn, path).await;
            let _ = conn.close().await;
            r
        }
        Err(e) => Err(at_path(path, e)),
    };
    match result {
        Err(e @ StoreError::Corrupt(_)) => Err(e),
        // Anything else (permissions, say) is for the real open to report.
        _ => Ok(()),
    }
}

/// Tables but no migration history: some other application's database, which must not
/// have Wardgate's schema added to it.
async fn refuse_foreign(conn: &mut SqliteConnection, path: &Path) -> Result<(), StoreError> {
    let (tables, ours): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'), \
                (SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(conn)
    .await
    .map_err(|e| at_path(path, e))?;
    if tables > 0 && ours == 0 {
        return Err(StoreError::Corrupt(format!(
            "{} holds tables of some other application, not a Wardgate database",
            path.display()
        )));
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn primary_code(e: &sqlx::Error) -> Option<i32> {
    let code = e.as_database_error()?.code()?;
    code.parse::<i32>().ok().map(|c| c & 0xff)
}

fn err(e: sqlx::Error) -> StoreError {
    match primary_code(&e) {
        Some(SQLITE_CORRUPT | SQLITE_NOTADB) => StoreError::Corrupt(e.to_string()),
        Some(SQLITE_BUSY | SQLITE_LOCKED) => {
            StoreError::Unavailable(format!("database stayed locked by another process: {e}"))
        }
        Some(SQLITE_FULL) => StoreError::Unavailable(format!("disk full: {e}")),
        _ => common::sqlx_error(e),
    }
}

fn at_path(path: &Path, e: sqlx::Error) -> StoreError {
    match primary_code(&e) {
        Some(SQLITE_CORRUPT | SQLITE_NOTADB) => StoreError::Corrupt(format!(
            "{} is damaged or not a SQLite database ({e}); restore it from a backup",
            path.display()
        )),
        Some(SQLITE_CANTOPEN) => StoreError::Unavailable(format!("cannot open {}: {e}", path.display())),
        _ => err(e),
    }
}

async fn read_head(conn: &mut SqliteConnection, table: Head) -> Result<ChainHead, StoreError> {
    let sql = match table {
        Head::Head => "SELECT seq, hash FROM audit_head WHERE id = 1",
        Head::Anchor => "SELECT seq, hash FROM audit_anchor WHERE id = 1",
    };
    let row: (i64, Vec<u8>) = sqlx::query_as(sql).fetch_one(conn).await.map_err(err)?;
    common::head(row, "audit head hash")
}

#[derive(Clone, Copy)]
enum Head {
    Head,
    Anchor,
}

/// Seals `events` after the current head and stores them; the caller holds the write lock
/// (BEGIN IMMEDIATE) so the head cannot move underneath. Every mutating method goes through
/// here, so a state change and its audit record commit together.
async fn append_in(conn: &mut SqliteConnection, node: &str, events: &[AuditEvent]) -> Result<ChainHead, StoreError> {
    let head = read_head(conn, Head::Head).await?;
    let sealed = seal_batch(&head, node, events);
    let Some(new_head) = sealed.last().map(|r| r.head()) else {
        return Ok(head);
    };
    for chunk in sealed.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO audit_log (seq, ts_us, event_type, body, hash) ");
        qb.push_values(chunk, |mut row, r| {
            row.push_bind(r.seq)
                .push_bind(r.ts_us)
                .push_bind(r.event_type.clone())
                .push_bind(r.body.clone())
                .push_bind(r.hash.to_vec());
        });
        // Only full chunks repeat; caching every odd-sized statement would evict useful ones.
        qb.build().persistent(chunk.len() == INSERT_CHUNK).execute(&mut *conn).await.map_err(err)?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(new_head.seq)
        .bind(new_head.hash.to_vec())
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    Ok(new_head)
}

async fn bump_revision(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1").execute(conn).await.map_err(err)?;
    Ok(())
}

async fn count_admins_in(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE is_admin AND status = 'active'")
        .fetch_one(conn)
        .await
        .map_err(err)
}

async fn insert_user(conn: &mut SqliteConnection, user: &User, factors: &[Factor]) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, username, display_name, email, employee_id, roles, is_admin, status, \
         failed_attempts, last_failure_at_us, locked_until_us, created_at_us, privileged, role_expiry, vendor, \
         account_expires_us, manager, last_login_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&user.id)
    .bind(user.username.as_str())
    .bind(&user.display_name)
    .bind(&user.email)
    .bind(&user.employee_id)
    .bind(common::roles_json(&user.roles))
    .bind(user.is_admin())
    .bind(user.status.as_str())
    .bind(common::failures(&user.attempts)?)
    .bind(user.attempts.last_failure_at.map(micros))
    .bind(user.attempts.locked_until.map(micros))
    .bind(micros(user.created_at))
    .bind(user.privileged)
    .bind(common::role_expiry_json(user))
    .bind(&user.vendor)
    .bind(user.account_expires.map(micros))
    .bind(user.manager.as_ref().map(Username::as_str))
    .bind(user.last_login_at.map(micros))
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    for factor in factors {
        insert_factor(conn, factor).await?;
    }
    Ok(())
}

async fn insert_factor(conn: &mut SqliteConnection, f: &Factor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO factors (id, user_id, kind, label, secret, params, counter, credential_id, created_at_us, \
         last_used_at_us, expires_at_us, enrolled_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&f.id)
    .bind(&f.user_id)
    .bind(f.kind.as_str())
    .bind(&f.label)
    .bind(&f.secret)
    .bind(f.params.to_string())
    .bind(f.counter)
    .bind(&f.credential_id)
    .bind(micros(f.created_at))
    .bind(f.last_used_at.map(micros))
    .bind(f.expires_at.map(micros))
    .bind(&f.enrolled_by)
    .execute(conn)
    .await
    .map_err(err)?;
    Ok(())
}

/// Ends everything that lets an account act: sessions and API tokens are revoked (kept,
/// for the record), pending flows and enrollment links deleted; `terminate` also deletes
/// the factors, since the person has left for good.
async fn end_access(
    conn: &mut SqliteConnection,
    user_id: &str,
    at: OffsetDateTime,
    terminate: bool,
) -> Result<(), StoreError> {
    let at = micros(at);
    sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE user_id = $2 AND revoked_at_us IS NULL")
        .bind(at)
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    sqlx::query("UPDATE api_tokens SET revoked_at_us = $1 WHERE user_id = $2 AND revoked_at_us IS NULL")
        .bind(at)
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    for sql in ["DELETE FROM flows WHERE user_id = $1", "DELETE FROM enrollment_links WHERE user_id = $1"] {
        sqlx::query(sql).bind(user_id).execute(&mut *conn).await.map_err(err)?;
    }
    if terminate {
        sqlx::query("DELETE FROM factors WHERE user_id = $1").bind(user_id).execute(&mut *conn).await.map_err(err)?;
    }
    Ok(())
}

async fn insert_session(conn: &mut SqliteConnection, s: &Session) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (digest, id, user_id, aal, amr, correlation_id, client_ip, user_agent, created_at_us, \
         last_seen_at_us, revoked_at_us, idle_timeout_us, lifetime_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(s.id_digest.to_vec())
    .bind(&s.id)
    .bind(&s.user_id)
    .bind(s.aal.as_str())
    .bind(common::amr_json(&s.amr))
    .bind(&s.correlation_id)
    .bind(s.client_ip.map(|ip| ip.to_string()))
    .bind(&s.user_agent)
    .bind(micros(s.created_at))
    .bind(micros(s.last_seen_at))
    .bind(s.revoked_at.map(micros))
    .bind(s.limits.map(|l| l.idle_timeout.whole_microseconds() as i64))
    .bind(s.limits.map(|l| l.absolute_lifetime.whole_microseconds() as i64))
    .execute(conn)
    .await
    .map_err(err)?;
    Ok(())
}

async fn insert_code_row(conn: &mut SqliteConnection, code: &AuthCode) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_codes (digest, client_id, user_id, session_id, redirect_uri, code_challenge, nonce, \
             scopes, acr, amr, auth_time_us, correlation_id, created_at_us, expires_at_us, grant_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(code.digest.to_vec())
    .bind(&code.client_id)
    .bind(&code.user_id)
    .bind(&code.session_id)
    .bind(&code.redirect_uri)
    .bind(&code.code_challenge)
    .bind(&code.nonce)
    .bind(common::list_json(&code.scopes))
    .bind(&code.acr)
    .bind(common::list_json(&code.amr))
    .bind(micros(code.auth_time))
    .bind(&code.correlation_id)
    .bind(micros(code.created_at))
    .bind(micros(code.expires_at))
    .bind(&code.grant_id)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(|e| common::conflict(e, err))
}

/// Single use: the guarded UPDATE is what makes it hold whatever the locking (as on
/// PostgreSQL); the write lock the caller holds also serialises redemptions.
async fn redeem_code_in(
    conn: &mut SqliteConnection,
    digest: &[u8; 32],
    now: OffsetDateTime,
    grant_id: &str,
) -> Result<CodeRedemption, StoreError> {
    let redeemed = sqlx::query(
        "UPDATE oidc_codes SET grant_id = $1 WHERE digest = $2 AND grant_id IS NULL AND expires_at_us > $3",
    )
    .bind(grant_id)
    .bind(digest.to_vec())
    .bind(micros(now))
    .execute(&mut *conn)
    .await
    .map_err(err)?
    .rows_affected()
        == 1;
    let row: Option<common::CodeRow> = sqlx::query_as(common::select_codes!("WHERE digest = $1"))
        .bind(digest.to_vec())
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    Ok(common::redemption(redeemed, row.map(common::auth_code).transpose()?))
}

/// The statement that spends every presented refresh token that is live (unused,
/// unexpired at its own request's time, its grant not revoked), without its end.
fn push_spend(qb: &mut QueryBuilder<Sqlite>, presented: &[([u8; 32], OffsetDateTime)]) {
    qb.push("WITH presented(digest, now_us) AS (");
    qb.push_values(presented, |mut row, (digest, now)| {
        row.push_bind(digest.to_vec()).push_bind(micros(*now));
    });
    qb.push(
        ") UPDATE oidc_refresh_tokens \
         SET used_at_us = (SELECT now_us FROM presented p WHERE p.digest = oidc_refresh_tokens.digest) \
         WHERE used_at_us IS NULL AND digest IN (SELECT digest FROM presented) \
         AND expires_at_us > (SELECT now_us FROM presented p WHERE p.digest = oidc_refresh_tokens.digest) \
         AND EXISTS (SELECT 1 FROM oidc_grants g WHERE g.id = oidc_refresh_tokens.grant_id \
                     AND g.revoked_at_us IS NULL)",
    );
}

/// The statement that redeems every presented code that is unused and unexpired at its own
/// request's time for the grant given with it, without its end.
fn push_redeem(qb: &mut QueryBuilder<Sqlite>, presented: &[(&[u8; 32], OffsetDateTime, &str)]) {
    qb.push("WITH presented(digest, now_us, grant_id) AS (");
    qb.push_values(presented, |mut row, (digest, now, grant_id)| {
        row.push_bind(digest.to_vec()).push_bind(micros(*now)).push_bind(grant_id.to_string());
    });
    qb.push(
        ") UPDATE oidc_codes \
         SET grant_id = (SELECT grant_id FROM presented p WHERE p.digest = oidc_codes.digest) \
         WHERE grant_id IS NULL AND digest IN (SELECT digest FROM presented) \
         AND expires_at_us > (SELECT now_us FROM presented p WHERE p.digest = oidc_codes.digest)",
    );
}

/// Fails the statement list (the head's `seq` becomes NULL, a constraint error) unless the
/// statement before it changed exactly `n` rows.
fn push_changed_guard(qb: &mut QueryBuilder<Sqlite>, n: usize) {
    qb.push("; UPDATE audit_head SET seq = CASE WHEN changes() = ")
        .push_bind(n as i64)
        .push(" THEN seq END WHERE id = 1; ");
}

/// Spends, in one statement, every presented refresh token of a batch that is live (unused,
/// unexpired at its own request's time, its grant not revoked) and returns their grants by
/// token digest. What it leaves — replays, unknown and expired tokens — goes one by one
/// through [`rotate_in`], which tells them apart. One round trip for a batch of refreshes
/// instead of three each, while the whole batch waited on every one.
async fn spend_live(
    conn: &mut SqliteConnection,
    begin: &mut Option<&str>,
    presented: &[([u8; 32], OffsetDateTime)],
) -> Result<std::collections::HashMap<[u8; 32], Grant>, StoreError> {
    let mut spent = std::collections::HashMap::new();
    if presented.is_empty() {
        return Ok(spent);
    }
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(begin.take().unwrap_or(""));
    push_spend(&mut qb, presented);
    qb.push(" RETURNING digest, grant_id");
    let used: Vec<(Vec<u8>, String)> =
        qb.build_query_as().persistent(false).fetch_all(&mut *conn).await.map_err(err)?;
    if used.is_empty() {
        return Ok(spent);
    }
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(common::select_grants!("WHERE id IN ("));
    let mut ids = qb.separated(", ");
    for (_, grant_id) in &used {
        ids.push_bind(grant_id.clone());
    }
    ids.push_unseparated(")");
    let rows: Vec<common::GrantRow> = qb.build_query_as().persistent(false).fetch_all(&mut *conn).await.map_err(err)?;
    let mut grants = std::collections::HashMap::new();
    for row in rows {
        let g = common::grant(row)?;
        grants.insert(g.id.clone(), g);
    }
    for (digest, grant_id) in used {
        let digest: [u8; 32] = digest.try_into().map_err(|_| StoreError::Malformed("refresh token digest".into()))?;
        let grant = grants.get(&grant_id).cloned().ok_or_else(|| StoreError::Malformed(format!("grant {grant_id}")))?;
        spent.insert(digest, grant);
    }
    Ok(spent)
}

/// Redeems, in one statement, every presented code of a batch that is unused and unexpired
/// at its own request's time, for the grant given with it, and returns the redeemed codes
/// by digest. What it leaves goes one by one through [`redeem_code_in`].
async fn redeem_fresh(
    conn: &mut SqliteConnection,
    begin: &mut Option<&str>,
    presented: &[(&[u8; 32], OffsetDateTime, &str)],
) -> Result<std::collections::HashMap<[u8; 32], AuthCode>, StoreError> {
    let mut fresh = std::collections::HashMap::new();
    if presented.is_empty() {
        return Ok(fresh);
    }
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(begin.take().unwrap_or(""));
    push_redeem(&mut qb, presented);
    qb.push(concat!(" RETURNING ", common::code_columns!()));
    let rows: Vec<common::CodeRow> = qb.build_query_as().persistent(false).fetch_all(&mut *conn).await.map_err(err)?;
    for row in rows {
        let code = common::auth_code(row)?;
        fresh.insert(code.digest, code);
    }
    Ok(fresh)
}

/// The state change of [`Store::rotate_refresh_token`] but for storing the successor, which
/// the caller does after a `Rotated` (under the grant returned); a `Reused` outcome has
/// revoked the grant and the caller appends its record.
async fn rotate_in(
    conn: &mut SqliteConnection,
    digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Rotation, StoreError> {
    let Some((token, grant)) = token_and_grant(conn, digest).await? else {
        return Ok(Rotation::Unknown);
    };
    let state = common::presented(&token, &grant, now);
    if state == Presented::Live && mark_used(conn, digest, now).await? {
        return Ok(Rotation::Rotated(grant));
    }
    if state == Presented::Unknown || !revoke_grant_in(conn, &grant.id, now).await? {
        return Ok(Rotation::Unknown);
    }
    Ok(Rotation::Reused(Grant { revoked_at: Some(now), ..grant }))
}

async fn insert_grant_row(conn: &mut SqliteConnection, g: &Grant) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_grants (id, client_id, user_id, session_id, scopes, acr, amr, auth_time_us, correlation_id, \
         created_at_us, revoked_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&g.id)
    .bind(&g.client_id)
    .bind(&g.user_id)
    .bind(&g.session_id)
    .bind(common::list_json(&g.scopes))
    .bind(&g.acr)
    .bind(common::list_json(&g.amr))
    .bind(g.auth_time.map(micros))
    .bind(&g.correlation_id)
    .bind(micros(g.created_at))
    .bind(g.revoked_at.map(micros))
    .execute(conn)
    .await
    .map_err(|e| common::conflict(e, err))?;
    Ok(())
}

/// Stores `t` under `grant_id` (which the caller has checked or chosen).
async fn insert_refresh_token(conn: &mut SqliteConnection, t: &RefreshToken, grant_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_refresh_tokens (digest, grant_id, created_at_us, expires_at_us, used_at_us) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(t.digest.to_vec())
    .bind(grant_id)
    .bind(micros(t.created_at))
    .bind(micros(t.expires_at))
    .bind(t.used_at.map(micros))
    .execute(conn)
    .await
    .map_err(|e| common::conflict(e, err))?;
    Ok(())
}

async fn token_and_grant(
    conn: &mut SqliteConnection,
    digest: &[u8; 32],
) -> Result<Option<(RefreshToken, Grant)>, StoreError> {
    let row: Option<common::RefreshTokenRow> = sqlx::query_as(common::select_refresh_tokens!("WHERE digest = $1"))
        .bind(digest.to_vec())
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    let Some(token) = row.map(common::refresh_token).transpose()? else { return Ok(None) };
    let row: Option<common::GrantRow> = sqlx::query_as(common::select_grants!("WHERE id = $1"))
        .bind(&token.grant_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    Ok(row.map(common::grant).transpose()?.map(|g| (token, g)))
}

/// Marks a refresh token used if nobody has; returns whether this call did.
async fn mark_used(conn: &mut SqliteConnection, digest: &[u8; 32], now: OffsetDateTime) -> Result<bool, StoreError> {
    let marked = sqlx::query("UPDATE oidc_refresh_tokens SET used_at_us = $1 WHERE digest = $2 AND used_at_us IS NULL")
        .bind(micros(now))
        .bind(digest.to_vec())
        .execute(conn)
        .await
        .map_err(err)?
        .rows_affected();
    Ok(marked == 1)
}

/// Revokes a grant if it is live; returns whether this call did.
async fn revoke_grant_in(conn: &mut SqliteConnection, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
    let revoked = sqlx::query("UPDATE oidc_grants SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL")
        .bind(micros(now))
        .bind(id)
        .execute(conn)
        .await
        .map_err(err)?
        .rows_affected();
    Ok(revoked == 1)
}

/// Fails with [`StoreError::NotFound`] unless `sql` (a `count(*)` by `$1`) counts a row:
/// tells "no such row" from "no longer in the state a conditional update needs".
async fn exists(conn: &mut SqliteConnection, sql: &'static str, id: &str) -> Result<(), StoreError> {
    let n: i64 = sqlx::query_scalar(sql).bind(id).fetch_one(conn).await.map_err(err)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Reads the account, lets `change` edit its roles, and writes them back if it says it
/// changed them. The caller holds the write lock, so no other change to the roles comes
/// between the read and the write.
async fn change_roles(
    conn: &mut SqliteConnection,
    user_id: &str,
    change: impl FnOnce(&mut User) -> bool,
) -> Result<(), StoreError> {
    let row: Option<common::UserRow> = sqlx::query_as(common::select_users!("WHERE id = $1"))
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    let mut user = common::user(row.ok_or(StoreError::NotFound)?)?;
    if change(&mut user) {
        sqlx::query(governance::SET_ROLES)
            .bind(user_id)
            .bind(common::roles_json(&user.roles))
            .bind(user.is_admin())
            .bind(common::role_expiry_json(&user))
            .execute(conn)
            .await
            .map_err(err)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn node(&self) -> &str {
        &self.node
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(err)?;
        Ok(())
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)
    }

    async fn meta_init(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(&mut *tx).await.map_err(err)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT value FROM revision WHERE id = 1").fetch_one(&self.pool).await.map_err(err)
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<ChainHead, StoreError> {
        let (head, durable) = self.append_audit_pipelined(events).await?;
        durable.wait().await?;
        Ok(head)
    }

    async fn commit(&self, writes: &[Write]) -> Result<(Vec<Written>, ChainHead), StoreError> {
        let (found, head, durable) = self.commit_pipelined(writes).await?;
        durable.wait().await?;
        Ok((found, head))
    }

    async fn append_audit_pipelined(&self, events: &[AuditEvent]) -> Result<(ChainHead, Durable), StoreError> {
        {
            let mut guard = self.writer.lock().await;
            if let Some(head) = guard.take().filter(|_| events.len() <= INSERT_CHUNK) {
                match self.append_known_head(head, &Rows::default(), events).await {
                    Ok((new_head, durable)) => {
                        *guard = Some(new_head);
                        return Ok((new_head, durable));
                    }
                    Err(e) => tracing::debug!(error = %e, "fast audit append refused; re-reading the head"),
                }
            }
        }
        // The write pool's commits are durable when they return.
        let (mut guard, mut tx) = self.write().await?;
        let r = append_in(&mut tx, &self.node, events).await;
        let new_head = common::finish(tx, r, err).await?;
        *guard = Some(new_head);
        Ok((new_head, Durable::now()))
    }

    async fn commit_pipelined(&self, writes: &[Write]) -> Result<(Vec<Written>, ChainHead, Durable), StoreError> {
        let mut guard = self.writer.lock().await;
        let mut known = guard.take();
        if let Some(head) = known.filter(|_| writes.len() <= FAST_BATCH && writes.iter().all(Write::is_read_ahead)) {
            match self.read_ahead_known_head(head, writes).await {
                Ok((found, new_head, durable)) => {
                    *guard = Some(new_head);
                    return Ok((found, new_head, durable));
                }
                Err(e) => {
                    // A token spent or a grant revoked since it was read, a conflict, or
                    // another process moved the head: the reading path tells which.
                    tracing::debug!(error = %e, "batch read ahead refused; reading it in the transaction");
                    known = None;
                }
            }
        }
        loop {
            let mut hot = self.hot_connection().await?;
            match self.commit_on(opened(&mut hot)?, known, writes).await {
                Ok((found, head)) => {
                    *guard = Some(head);
                    return Ok((found, head, self.flusher.committed()));
                }
                Err(e) => {
                    roll_back(&mut hot).await;
                    // The remembered head may be stale (another process appended): once
                    // more, reading it inside the transaction.
                    if known.take().is_none() {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, "batch refused on the remembered head; reading it again");
                }
            }
        }
    }

    async fn audit_head(&self) -> Result<ChainHead, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        read_head(&mut conn, Head::Head).await
    }

    async fn audit_anchor(&self) -> Result<ChainHead, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        read_head(&mut conn, Head::Anchor).await
    }

    async fn audit_records(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredRecord>, StoreError> {
        let rows: Vec<common::RecordRow> = sqlx::query_as(
            "SELECT seq, ts_us, event_type, body, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        Ok(rows.into_iter().map(common::record).collect())
    }

    async fn audit_first_seq_at(&self, ts_us: i64) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT min(seq) FROM audit_log WHERE ts_us >= $1")
            .bind(ts_us)
            .fetch_one(&self.pool)
            .await
            .map_err(err)
    }

    async fn audit_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&self.pool).await.map_err(err)
    }

    async fn insert_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            let inserted = sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, ts_us, node, key_id, signature) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING",
            )
            .bind(cp.seq)
            .bind(cp.hash.to_vec())
            .bind(cp.ts_us)
            .bind(&cp.node)
            .bind(&cp.key_id)
            .bind(cp.signature.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if inserted == 0 {
                // Another node checkpointed the same head: fine if it is the same chain.
                let stored: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_checkpoints WHERE seq = $1")
                    .bind(cp.seq)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                if stored.as_slice() != cp.hash.as_slice() {
                    return Err(StoreError::Corrupt(format!(
                        "a different checkpoint for audit record {} is already stored",
                        cp.seq
                    )));
                }
            }
            Ok(())
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn checkpoints(&self, after_seq: i64, upto_seq: i64) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<common::CheckpointRow> = sqlx::query_as(
            "SELECT seq, hash, ts_us, node, key_id, signature FROM audit_checkpoints \
             WHERE seq > $1 AND seq <= $2 ORDER BY seq",
        )
        .bind(after_seq)
        .bind(upto_seq)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(common::checkpoint).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row: Option<common::CheckpointRow> = sqlx::query_as(
            "SELECT seq, hash, ts_us, node, key_id, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(common::checkpoint).transpose()
    }

    async fn audit_marks(&self) -> Result<AuditMarks, StoreError> {
        let (exported_seq, verified_seq): (i64, i64) =
            sqlx::query_as("SELECT exported_seq, verified_seq FROM audit_marks WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(err)?;
        Ok(AuditMarks { exported_seq, verified_seq })
    }

    async fn raise_audit_mark(&self, mark: AuditMark, seq: i64) -> Result<(), StoreError> {
        let sql = match mark {
            AuditMark::Exported => "UPDATE audit_marks SET exported_seq = max(exported_seq, $1) WHERE id = 1",
            AuditMark::Verified => "UPDATE audit_marks SET verified_seq = max(verified_seq, $1) WHERE id = 1",
        };
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = sqlx::query(sql).bind(seq).execute(&mut *tx).await.map(|_| ()).map_err(err);
        common::finish(tx, r, err).await
    }

    async fn prune_audit(&self, through: &Checkpoint, event: &AuditEvent) -> Result<u64, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let anchor = read_head(&mut tx, Head::Anchor).await?;
            let head = read_head(&mut tx, Head::Head).await?;
            let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(through.seq)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            common::check_prune_target(anchor, head, stored, through)?;
            let deleted = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
                .bind(through.seq)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            sqlx::query("UPDATE audit_anchor SET seq = $1, hash = $2 WHERE id = 1")
                .bind(through.seq)
                .bind(through.hash.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(deleted)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(
                "INSERT INTO signing_keys (id, purpose, public_key, private_sealed, created_at_us) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.id)
            .bind(&key.purpose)
            .bind(key.public_key.to_vec())
            .bind(&key.private_sealed)
            .bind(micros(key.created_at))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows: Vec<common::SigningKeyRow> = sqlx::query_as(
            "SELECT id, purpose, public_key, private_sealed, created_at_us FROM signing_keys \
             WHERE purpose = $1 ORDER BY created_at_us DESC, id DESC",
        )
        .bind(purpose)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(common::signing_key).collect()
    }

    async fn sealed_values(&self) -> Result<Vec<SealedRef>, StoreError> {
        let factors: Vec<(String, String)> =
            sqlx::query_as("SELECT id, secret FROM factors WHERE substr(secret, 1, 4) = $1 ORDER BY id")
                .bind(common::SEALED_PREFIX)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        let keys: Vec<(String, String)> = sqlx::query_as("SELECT id, private_sealed FROM signing_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let oidc_keys: Vec<(String, String)> = sqlx::query_as("SELECT id, private_sealed FROM oidc_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let factors = factors.into_iter().map(|(id, sealed)| SealedRef {
            column: SealedColumn::FactorSecret,
            context: Factor::seal_context(&id),
            id,
            sealed,
        });
        let keys = keys.into_iter().map(|(id, sealed)| SealedRef {
            column: SealedColumn::SigningKeyPrivate,
            context: SigningKeyRecord::seal_context(&id),
            id,
            sealed,
        });
        let oidc_keys = oidc_keys.into_iter().map(|(id, sealed)| SealedRef {
            column: SealedColumn::OidcKeyPrivate,
            context: OidcKey::seal_context(&id),
            id,
            sealed,
        });
        Ok(factors.chain(keys).chain(oidc_keys).collect())
    }

    async fn replace_sealed(&self, old: &SealedRef, new_sealed: &str) -> Result<bool, StoreError> {
        let sql = match old.column {
            SealedColumn::FactorSecret => "UPDATE factors SET secret = $1 WHERE id = $2 AND secret = $3",
            SealedColumn::SigningKeyPrivate => {
                "UPDATE signing_keys SET private_sealed = $1 WHERE id = $2 AND private_sealed = $3"
            }
            SealedColumn::OidcKeyPrivate => {
                "UPDATE oidc_keys SET private_sealed = $1 WHERE id = $2 AND private_sealed = $3"
            }
        };
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            let replaced = sqlx::query(sql)
                .bind(new_sealed)
                .bind(&old.id)
                .bind(&old.sealed)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected()
                == 1;
            if replaced {
                bump_revision(&mut tx).await?;
            }
            Ok(replaced)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_user(&self, user: &User, factors: &[Factor], event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            insert_user(&mut tx, user, factors).await?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn user_by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row: Option<common::UserRow> = self
            .read(async |c| {
                sqlx::query_as(common::select_users!("WHERE username = $1"))
                    .bind(username.as_str())
                    .fetch_optional(c)
                    .await
            })
            .await?;
        row.map(common::user).transpose()
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row: Option<common::UserRow> = self
            .read(async |c| sqlx::query_as(common::select_users!("WHERE id = $1")).bind(id).fetch_optional(c).await)
            .await?;
        row.map(common::user).transpose()
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError> {
        // Every username is at least one character, so "" starts before the first.
        let rows: Vec<common::UserRow> =
            sqlx::query_as(common::select_users!("WHERE username > $1 ORDER BY username LIMIT $2"))
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::user).collect()
    }

    async fn count_admins(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        count_admins_in(&mut conn).await
    }

    async fn update_user(&self, user: &User, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let updated = sqlx::query(
                "UPDATE users SET display_name = $1, email = $2, employee_id = $3, roles = $4, is_admin = $5, \
                 status = $6, privileged = $8, role_expiry = $9, vendor = $10, account_expires_us = $11, \
                 manager = $12 WHERE id = $7",
            )
            .bind(&user.display_name)
            .bind(&user.email)
            .bind(&user.employee_id)
            .bind(common::roles_json(&user.roles))
            .bind(user.is_admin())
            .bind(user.status.as_str())
            .bind(&user.id)
            .bind(user.privileged)
            .bind(common::role_expiry_json(user))
            .bind(&user.vendor)
            .bind(user.account_expires.map(micros))
            .bind(user.manager.as_ref().map(Username::as_str))
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            if matches!(user.status, AccountStatus::Disabled | AccountStatus::Terminated) {
                // Revoked at the time the audit record gives for the change.
                end_access(&mut tx, &user.id, event.at, user.status == AccountStatus::Terminated).await?;
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn set_attempts(
        &self,
        user_id: &str,
        expected: &Attempts,
        new: &Attempts,
        event: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write_if_audited(event.is_some()).await?;
        let r = async {
            let replaced = sqlx::query(
                "UPDATE users SET failed_attempts = $1, last_failure_at_us = $2, locked_until_us = $3 \
                 WHERE id = $4 AND failed_attempts = $5 AND last_failure_at_us IS $6 AND locked_until_us IS $7",
            )
            .bind(common::failures(new)?)
            .bind(new.last_failure_at.map(micros))
            .bind(new.locked_until.map(micros))
            .bind(user_id)
            .bind(common::failures(expected)?)
            .bind(expected.last_failure_at.map(micros))
            .bind(expected.locked_until.map(micros))
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected()
                == 1;
            // The loser of the race retries with its event; appending it now would record
            // one lockout twice.
            if let Some(event) = event.filter(|_| replaced) {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            }
            Ok(replaced)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn add_factor(&self, factor: &Factor, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            insert_factor(&mut tx, factor).await?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        let rows: Vec<common::FactorRow> = self
            .read(async |c| {
                sqlx::query_as(common::select_factors!("WHERE user_id = $1 ORDER BY created_at_us, id"))
                    .bind(user_id)
                    .fetch_all(c)
                    .await
            })
            .await?;
        rows.into_iter().map(common::factor).collect()
    }

    async fn factor_by_credential(&self, credential_id: &str) -> Result<Option<Factor>, StoreError> {
        let row: Option<common::FactorRow> = sqlx::query_as(common::select_factors!("WHERE credential_id = $1"))
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::factor).transpose()
    }

    async fn advance_factor_counter(
        &self,
        factor_id: &str,
        counter: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = sqlx::query(
            "UPDATE factors SET counter = $1, last_used_at_us = $2 \
             WHERE id = $3 AND (counter IS NULL OR counter < $1)",
        )
        .bind(counter)
        .bind(micros(now))
        .bind(factor_id)
        .execute(&mut *tx)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(err);
        common::finish(tx, r, err).await
    }

    async fn update_factor(
        &self,
        new: &Factor,
        expected_secret: &str,
        event: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write_if_audited(event.is_some()).await?;
        let r = async {
            let replaced = sqlx::query(
                "UPDATE factors SET secret = $1, params = $2, counter = $3, label = $4, last_used_at_us = $5 \
                 WHERE id = $6 AND secret = $7",
            )
            .bind(&new.secret)
            .bind(new.params.to_string())
            .bind(new.counter)
            .bind(&new.label)
            .bind(new.last_used_at.map(micros))
            .bind(&new.id)
            .bind(expected_secret)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected()
                == 1;
            if let Some(event) = event.filter(|_| replaced) {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            }
            Ok(replaced)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn remove_factor(&self, user_id: &str, factor_id: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let removed = sqlx::query("DELETE FROM factors WHERE id = $1 AND user_id = $2")
                .bind(factor_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if removed == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn issue_enrollment(
        &self,
        user_id: &str,
        digest: &[u8; 32],
        expires_at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            match status.as_deref() {
                None => return Err(StoreError::NotFound),
                Some("invited") => {}
                Some(_) => return Err(StoreError::EnrollmentInvalid),
            }
            sqlx::query(
                "INSERT INTO enrollment_links (user_id, digest, expires_at_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET digest = excluded.digest, expires_at_us = excluded.expires_at_us",
            )
            .bind(user_id)
            .bind(digest.to_vec())
            .bind(micros(expires_at))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn enrollment_user(&self, digest: &[u8; 32], now: OffsetDateTime) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT user_id FROM enrollment_links WHERE digest = $1 AND expires_at_us > $2")
            .bind(digest.to_vec())
            .bind(micros(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(err)
    }

    async fn complete_enrollment(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        user_id: &str,
        factors: &[Factor],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let used =
                sqlx::query("DELETE FROM enrollment_links WHERE digest = $1 AND user_id = $2 AND expires_at_us > $3")
                    .bind(digest.to_vec())
                    .bind(user_id)
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
            let activated = sqlx::query("UPDATE users SET status = 'active' WHERE id = $1 AND status = 'invited'")
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if used == 0 || activated == 0 {
                return Err(StoreError::EnrollmentInvalid);
            }
            for factor in factors {
                insert_factor(&mut tx, factor).await?;
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn insert_flow(&self, flow: &Flow) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = sqlx::query(
            "INSERT INTO flows (digest, kind, user_id, state, version, created_at_us, expires_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(flow.id_digest.to_vec())
        .bind(flow.kind.as_str())
        .bind(&flow.user_id)
        .bind(flow.state.to_string())
        .bind(flow.version)
        .bind(micros(flow.created_at))
        .bind(micros(flow.expires_at))
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(err);
        common::finish(tx, r, err).await
    }

    async fn flow(&self, digest: &[u8; 32], now: OffsetDateTime) -> Result<Option<Flow>, StoreError> {
        let row: Option<common::FlowRow> =
            sqlx::query_as(common::select_flows!("WHERE digest = $1 AND expires_at_us > $2"))
                .bind(digest.to_vec())
                .bind(micros(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        row.map(common::flow).transpose()
    }

    async fn update_flow(&self, flow: &Flow) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = sqlx::query(
            "UPDATE flows SET state = $1, user_id = $2, expires_at_us = $3, version = version + 1 \
             WHERE digest = $4 AND version = $5",
        )
        .bind(flow.state.to_string())
        .bind(&flow.user_id)
        .bind(micros(flow.expires_at))
        .bind(flow.id_digest.to_vec())
        .bind(flow.version)
        .execute(&mut *tx)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(err);
        common::finish(tx, r, err).await
    }

    async fn delete_flow(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = sqlx::query("DELETE FROM flows WHERE digest = $1")
            .bind(digest.to_vec())
            .execute(&mut *tx)
            .await
            .map(|_| ())
            .map_err(err);
        common::finish(tx, r, err).await
    }

    async fn purge_expired_flows(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        // `<=`: a flow is live only while `now < expires_at` (`Flow::is_live`).
        let r = sqlx::query("DELETE FROM flows WHERE expires_at_us <= $1")
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(err);
        common::finish(tx, r, err).await
    }

    async fn create_session(
        &self,
        session: &Session,
        flow: Option<&[u8; 32]>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            if let Some(digest) = flow {
                let deleted = sqlx::query("DELETE FROM flows WHERE digest = $1")
                    .bind(digest.to_vec())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
            }
            insert_session(&mut tx, session).await?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            Ok(())
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn session_by_digest(&self, digest: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        let row: Option<common::SessionRow> = sqlx::query_as(common::select_sessions!("WHERE digest = $1"))
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::session).transpose()
    }

    async fn session_and_user(&self, digest: &[u8; 32]) -> Result<Option<(Session, User)>, StoreError> {
        let row = self.row_by_digest(common::select_session_and_user!("WHERE s.digest = $1"), digest).await?;
        row.as_ref().map(common::session_and_user).transpose()
    }

    async fn session_with_user(&self, id: &str) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(common::select_session_and_user!("WHERE s.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(common::session_and_user).transpose()
    }

    async fn touch_session(&self, digest: &[u8; 32], now: OffsetDateTime) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        // Two nodes may report activity out of order; the later time wins.
        let r = sqlx::query("UPDATE sessions SET last_seen_at_us = max(last_seen_at_us, $1) WHERE digest = $2")
            .bind(micros(now))
            .bind(digest.to_vec())
            .execute(&mut *tx)
            .await
            .map(|_| ())
            .map_err(err);
        common::finish_quiet(tx, r, err).await
    }

    async fn sessions_of(&self, user_id: &str) -> Result<Vec<Session>, StoreError> {
        let rows: Vec<common::SessionRow> = sqlx::query_as(common::select_sessions!(
            "WHERE user_id = $1 AND revoked_at_us IS NULL ORDER BY created_at_us DESC, id DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(common::session).collect()
    }

    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let revoked = sqlx::query(
                "UPDATE sessions SET revoked_at_us = $1 WHERE user_id = $2 AND id = $3 AND revoked_at_us IS NULL",
            )
            .bind(micros(now))
            .bind(user_id)
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if revoked == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let revoked =
                sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE user_id = $2 AND revoked_at_us IS NULL")
                    .bind(micros(now))
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(revoked)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_api_token(&self, token: &ApiToken, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, digest, label, scopes, created_at_us, expires_at_us, \
                 revoked_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&token.id)
            .bind(&token.user_id)
            .bind(token.digest.to_vec())
            .bind(&token.label)
            .bind(common::scopes_json(&token.scopes))
            .bind(micros(token.created_at))
            .bind(micros(token.expires_at))
            .bind(token.revoked_at.map(micros))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn api_token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
        let row: Option<common::ApiTokenRow> = sqlx::query_as(common::select_api_tokens!("WHERE digest = $1"))
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::api_token).transpose()
    }

    async fn api_tokens_of(&self, user_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<common::ApiTokenRow> =
            sqlx::query_as(common::select_api_tokens!("WHERE user_id = $1 ORDER BY created_at_us DESC, id DESC"))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::api_token).collect()
    }

    async fn revoke_api_token(&self, id: &str, now: OffsetDateTime, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let revoked =
                sqlx::query("UPDATE api_tokens SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL")
                    .bind(micros(now))
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
            if revoked == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn issue_bootstrap(
        &self,
        digest: &[u8; 32],
        expires_at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            if count_admins_in(&mut tx).await? > 0 {
                return Err(StoreError::AdminExists);
            }
            sqlx::query(
                "INSERT INTO bootstrap (id, digest, expires_at_us) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, expires_at_us = excluded.expires_at_us",
            )
            .bind(digest.to_vec())
            .bind(micros(expires_at))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn bootstrap_pending(&self, now: OffsetDateTime) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bootstrap WHERE expires_at_us > $1")
            .bind(micros(now))
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    async fn redeem_bootstrap(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        admin: &User,
        factors: &[Factor],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let expires_at_us: Option<i64> =
                sqlx::query_scalar("SELECT expires_at_us FROM bootstrap WHERE digest = $1")
                    .bind(digest.to_vec())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
            match expires_at_us {
                Some(exp) if micros(now) < exp => {}
                _ => return Err(StoreError::BootstrapInvalid),
            }
            if count_admins_in(&mut tx).await? > 0 {
                return Err(StoreError::AdminExists);
            }
            insert_user(&mut tx, admin, factors).await?;
            sqlx::query("DELETE FROM bootstrap WHERE id = 1").execute(&mut *tx).await.map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_client(&self, client: &OidcClient, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(
                "INSERT INTO oidc_clients (id, name, redirect_uris, post_logout_redirect_uris, secret_digest, scopes, \
                 first_party, backchannel_logout_uri, access_token_ttl_secs, refresh_token_ttl_secs, created_at_us, \
                 jwks, signing_alg) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&client.id)
            .bind(&client.name)
            .bind(common::list_json(&client.redirect_uris))
            .bind(common::list_json(&client.post_logout_redirect_uris))
            .bind(client.secret_digest.map(|d| d.to_vec()))
            .bind(common::list_json(&client.scopes))
            .bind(client.first_party)
            .bind(&client.backchannel_logout_uri)
            .bind(common::ttl(client.access_token_ttl_secs))
            .bind(common::ttl(client.refresh_token_ttl_secs))
            .bind(micros(client.created_at))
            .bind(&client.jwks)
            .bind(&client.signing_alg)
            .execute(&mut *tx)
            .await
            .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn client(&self, id: &str) -> Result<Option<OidcClient>, StoreError> {
        let row: Option<common::ClientRow> = self
            .read(async |c| sqlx::query_as(common::select_clients!("WHERE id = $1")).bind(id).fetch_optional(c).await)
            .await?;
        row.map(common::client).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<OidcClient>, StoreError> {
        let rows: Vec<common::ClientRow> =
            sqlx::query_as(common::select_clients!("ORDER BY name, id")).fetch_all(&self.pool).await.map_err(err)?;
        rows.into_iter().map(common::client).collect()
    }

    async fn update_client(&self, client: &OidcClient, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let updated = sqlx::query(
                "UPDATE oidc_clients SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3, \
                 secret_digest = $4, scopes = $5, first_party = $6, backchannel_logout_uri = $7, \
                 access_token_ttl_secs = $8, refresh_token_ttl_secs = $9, jwks = $11, signing_alg = $12 \
                 WHERE id = $10",
            )
            .bind(&client.name)
            .bind(common::list_json(&client.redirect_uris))
            .bind(common::list_json(&client.post_logout_redirect_uris))
            .bind(client.secret_digest.map(|d| d.to_vec()))
            .bind(common::list_json(&client.scopes))
            .bind(client.first_party)
            .bind(&client.backchannel_logout_uri)
            .bind(common::ttl(client.access_token_ttl_secs))
            .bind(common::ttl(client.refresh_token_ttl_secs))
            .bind(&client.id)
            .bind(&client.jwks)
            .bind(&client.signing_alg)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn delete_client(&self, id: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            // Codes, grants with their refresh tokens, and consents follow by ON DELETE CASCADE.
            let deleted = sqlx::query("DELETE FROM oidc_clients WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn grant_consent(&self, consent: &Consent, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(
                "INSERT INTO oidc_consents (user_id, client_id, scopes, granted_at_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, \
                 granted_at_us = excluded.granted_at_us",
            )
            .bind(&consent.user_id)
            .bind(&consent.client_id)
            .bind(common::list_json(&consent.scopes))
            .bind(micros(consent.granted_at))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            Ok(())
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError> {
        let row: Option<common::ConsentRow> = self
            .read(async |c| {
                sqlx::query_as(common::select_consents!("WHERE user_id = $1 AND client_id = $2"))
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(c)
                    .await
            })
            .await?;
        row.map(common::consent).transpose()
    }

    async fn revoke_consent(&self, user_id: &str, client_id: &str, event: &AuditEvent) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let revoked = sqlx::query("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected()
                == 1;
            // Revoking what is not there changes nothing, so records nothing.
            if revoked {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            }
            Ok(revoked)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn consents_of(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        let rows: Vec<common::ConsentRow> =
            sqlx::query_as(common::select_consents!("WHERE user_id = $1 ORDER BY client_id"))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::consent).collect()
    }

    async fn insert_auth_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = insert_code_row(&mut tx, code).await;
        common::finish(tx, r, err).await
    }

    async fn auth_code(&self, digest: &[u8; 32]) -> Result<Option<AuthCode>, StoreError> {
        let row: Option<common::CodeRow> = sqlx::query_as(common::select_codes!("WHERE digest = $1"))
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::auth_code).transpose()
    }

    async fn auth_code_with_user(&self, digest: &[u8; 32]) -> Result<Option<(AuthCode, Option<User>)>, StoreError> {
        let row = self.row_by_digest(common::select_code_and_user!("WHERE c.digest = $1"), digest).await?;
        row.as_ref().map(common::code_and_user).transpose()
    }

    async fn redeem_auth_code(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        grant_id: &str,
    ) -> Result<CodeRedemption, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = redeem_code_in(&mut tx, digest, now, grant_id).await;
        common::finish(tx, r, err).await
    }

    async fn insert_grant(
        &self,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        common::check_first_refresh(grant, refresh)?;
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            insert_grant_row(&mut tx, grant).await?;
            if let Some(t) = refresh {
                insert_refresh_token(&mut tx, t, &grant.id).await?;
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            Ok(())
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let row: Option<common::GrantRow> = self
            .read(async |c| sqlx::query_as(common::select_grants!("WHERE id = $1")).bind(id).fetch_optional(c).await)
            .await?;
        row.map(common::grant).transpose()
    }

    async fn refresh_token(&self, digest: &[u8; 32]) -> Result<Option<(RefreshToken, Grant)>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        token_and_grant(&mut conn, digest).await
    }

    async fn refresh_holder(&self, digest: &[u8; 32]) -> Result<Option<RefreshHolder>, StoreError> {
        let row = self.row_by_digest(common::select_refresh_holder!("WHERE t.digest = $1"), digest).await?;
        row.as_ref().map(common::refresh_holder).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        digest: &[u8; 32],
        next: &RefreshToken,
        now: OffsetDateTime,
        reuse_event: &AuditEvent,
    ) -> Result<Rotation, StoreError> {
        // Most rotations append nothing, so they leave the remembered head alone.
        let (mut guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            let rotation = rotate_in(&mut tx, digest, now).await?;
            if let Rotation::Rotated(g) = &rotation {
                insert_refresh_token(&mut tx, next, &g.id).await?;
            }
            if matches!(rotation, Rotation::Reused(_)) {
                // A replay appends after all, which moves the head that `write_beside_chain` kept.
                *guard = None;
                append_in(&mut tx, &self.node, std::slice::from_ref(reuse_event)).await?;
            }
            Ok(rotation)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn revoke_grant(&self, id: &str, now: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let live = revoke_grant_in(&mut tx, id, now).await?;
            // Revoking twice (RFC 7009 allows it) changes nothing, so records nothing.
            if live {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            }
            Ok(live)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn revoke_grants_of_session(
        &self,
        session_id: &str,
        now: OffsetDateTime,
        reason: &str,
        event: &AuditEvent,
    ) -> Result<Vec<Grant>, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let rows: Vec<common::GrantRow> = sqlx::query_as(concat!(
                "UPDATE oidc_grants SET revoked_at_us = $1 WHERE session_id = $2 AND revoked_at_us IS NULL RETURNING ",
                common::grant_columns!()
            ))
            .bind(micros(now))
            .bind(session_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            let revoked = common::grants_in_order(rows)?;
            for (client_id, user_id, correlation_id) in common::notices_owed(&revoked) {
                sqlx::query(common::QUEUE_NOTICE)
                    .bind(session_id)
                    .bind(client_id)
                    .bind(user_id)
                    .bind(correlation_id)
                    .bind(reason)
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
            // Most sessions never signed in to a client: their end adds no record here.
            if !revoked.is_empty() {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            }
            Ok(revoked)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn sessions_to_end(
        &self,
        policy: &SessionPolicy,
        now: OffsetDateTime,
        revoked_before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let rows: Vec<common::SessionRow> = sqlx::query_as(common::sessions_to_end_sql!())
            .bind(micros(now))
            .bind(policy.idle_timeout.whole_microseconds() as i64)
            .bind(policy.absolute_lifetime.whole_microseconds() as i64)
            .bind(micros(revoked_before))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.into_iter().map(common::session).collect()
    }

    async fn claim_logout_notices(
        &self,
        node: &str,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<LogoutNotice>, StoreError> {
        // The write lock makes the select-and-update one step for every process on the file.
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            let rows: Vec<common::NoticeRow> = sqlx::query_as(common::claim_notices_sql!(""))
                .bind(node)
                .bind(micros(now))
                .bind(micros(now + lease))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
            common::notices_in_order(rows)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn logout_notice_delivered(&self, id: i64, node: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = sqlx::query(common::NOTICE_DELIVERED)
            .bind(micros(now))
            .bind(node)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(err);
        common::finish(tx, r, err).await
    }

    async fn logout_notice_failed(
        &self,
        id: i64,
        node: &str,
        now: OffsetDateTime,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = sqlx::query(common::NOTICE_FAILED)
            .bind(micros(now))
            .bind(node)
            .bind(id)
            .bind(error)
            .bind(retry_at.map(micros))
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(err);
        common::finish(tx, r, err).await
    }

    async fn logout_notices_of_session(&self, session_id: &str) -> Result<Vec<LogoutNotice>, StoreError> {
        let rows: Vec<common::NoticeRow> =
            sqlx::query_as(common::select_notices!("WHERE session_id = $1 ORDER BY created_at_us, id"))
                .bind(session_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::notice).collect()
    }

    async fn purge_oidc_history(&self, before: OffsetDateTime) -> Result<OidcPurged, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            let mut purged = OidcPurged::default();
            for (kind, sql) in common::PURGE_OIDC {
                let n = sqlx::query(sql).bind(micros(before)).execute(&mut *tx).await.map_err(err)?.rows_affected();
                kind.count(&mut purged, n);
            }
            Ok(purged)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn insert_oidc_key(&self, key: &OidcKey, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(
                "INSERT INTO oidc_keys (id, algorithm, public_jwk, private_sealed, created_at_us, retired_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.id)
            .bind(&key.algorithm)
            .bind(&key.public_jwk)
            .bind(&key.private_sealed)
            .bind(micros(key.created_at))
            .bind(key.retired_at.map(micros))
            .execute(&mut *tx)
            .await
            .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn oidc_keys(&self) -> Result<Vec<OidcKey>, StoreError> {
        let rows: Vec<common::OidcKeyRow> =
            sqlx::query_as(common::select_oidc_keys!("ORDER BY created_at_us DESC, id DESC"))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        Ok(rows.into_iter().map(common::oidc_key).collect())
    }

    async fn retire_oidc_key(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            // The first retirement stands: moving it later would keep the key published
            // longer, moving it earlier could purge it while its tokens are still valid.
            let retired =
                sqlx::query("UPDATE oidc_keys SET retired_at_us = $1 WHERE id = $2 AND retired_at_us IS NULL")
                    .bind(micros(at))
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
            if retired == 0 {
                let exists: i64 = sqlx::query_scalar("SELECT count(*) FROM oidc_keys WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                return if exists == 0 { Err(StoreError::NotFound) } else { Ok(()) };
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn purge_oidc_keys(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            let purged = sqlx::query("DELETE FROM oidc_keys WHERE retired_at_us IS NOT NULL AND retired_at_us < $1")
                .bind(micros(before))
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            // The published key set changed: other nodes reload it.
            if purged > 0 {
                bump_revision(&mut tx).await?;
            }
            Ok(purged)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn propose_policy(&self, v: &NewPolicyVersion, event: &AuditEvent) -> Result<PolicyVersion, StoreError> {
        // BEGIN IMMEDIATE: no other writer, in this process or another, reads the same
        // highest number before this one commits.
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let row: common::PolicyVersionRow = sqlx::query_as(common::PROPOSE_POLICY)
                .bind(&v.source)
                .bind(&v.author)
                .bind(&v.reason)
                .bind(micros(v.proposed_at))
                .bind(v.restores)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            common::policy_version(row)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn policy_version(&self, number: i64) -> Result<Option<PolicyVersion>, StoreError> {
        let row: Option<common::PolicyVersionRow> =
            sqlx::query_as(common::select_policy_versions!("WHERE number = $1"))
                .bind(number)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        row.map(common::policy_version).transpose()
    }

    async fn policy_versions(&self) -> Result<Vec<PolicyVersion>, StoreError> {
        let rows: Vec<common::PolicyVersionRow> =
            sqlx::query_as(common::select_policy_versions!("ORDER BY number DESC"))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::policy_version).collect()
    }

    async fn active_policy(&self) -> Result<Option<PolicyVersion>, StoreError> {
        let row: Option<common::PolicyVersionRow> =
            sqlx::query_as(common::select_policy_versions!("WHERE status = 'active'"))
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        row.map(common::policy_version).transpose()
    }

    async fn activate_policy(
        &self,
        number: i64,
        approved_by: &str,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<PolicyVersion, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            // Checked under the write lock, so of concurrent activations only the first
            // finds the version still proposed.
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM policy_versions WHERE number = $1")
                .bind(number)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            if status.as_deref() != Some("proposed") {
                return Err(common::not_proposed(status));
            }
            sqlx::query("UPDATE policy_versions SET status = 'superseded' WHERE status = 'active'")
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            let row: Option<common::PolicyVersionRow> = sqlx::query_as(common::ACTIVATE_POLICY)
                .bind(number)
                .bind(approved_by)
                .bind(micros(at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            let row = row.ok_or(StoreError::Conflict)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            common::policy_version(row)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn reject_policy(&self, number: i64, event: &AuditEvent) -> Result<PolicyVersion, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let row: Option<common::PolicyVersionRow> =
                sqlx::query_as(common::REJECT_POLICY).bind(number).fetch_optional(&mut *tx).await.map_err(err)?;
            let Some(row) = row else {
                let status: Option<String> = sqlx::query_scalar("SELECT status FROM policy_versions WHERE number = $1")
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                return Err(common::not_proposed(status));
            };
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            common::policy_version(row)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_device(&self, device: &Device, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(common::INSERT_DEVICE)
                .bind(&device.id)
                .bind(&device.name)
                .bind(&device.site)
                .bind(device.managed)
                .bind(device.trusted)
                .bind(device.posture.disk_encrypted)
                .bind(device.posture.patched)
                .bind(device.posture.checked_in_at.map(micros))
                .bind(device.secret_digest.to_vec())
                .bind(micros(device.created_at))
                .bind(device.revoked_at.map(micros))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn device_by_name(&self, name: &str) -> Result<Option<Device>, StoreError> {
        let row: Option<common::DeviceRow> = sqlx::query_as(common::select_devices!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::device).transpose()
    }

    async fn device_by_digest(&self, digest: &[u8; 32]) -> Result<Option<Device>, StoreError> {
        let row: Option<common::DeviceRow> = sqlx::query_as(common::select_devices!("WHERE secret_digest = $1"))
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::device).transpose()
    }

    async fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        let rows: Vec<common::DeviceRow> =
            sqlx::query_as(common::select_devices!("ORDER BY name")).fetch_all(&self.pool).await.map_err(err)?;
        rows.into_iter().map(common::device).collect()
    }

    async fn update_device(&self, device: &Device, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let updated = sqlx::query(common::UPDATE_DEVICE)
                .bind(&device.id)
                .bind(&device.name)
                .bind(&device.site)
                .bind(device.managed)
                .bind(device.trusted)
                .bind(device.posture.disk_encrypted)
                .bind(device.posture.patched)
                .bind(device.posture.checked_in_at.map(micros))
                .bind(device.secret_digest.to_vec())
                .bind(device.revoked_at.map(micros))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    // --- governance ------------------------------------------------------------------------

    async fn record_login(&self, user_id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_beside_chain().await?;
        let r = async {
            let found = sqlx::query(
                "UPDATE users SET last_login_at_us = max(coalesce(last_login_at_us, $2), $2) WHERE id = $1",
            )
            .bind(user_id)
            .bind(micros(at))
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if found == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn users_expired(&self, now: OffsetDateTime) -> Result<Vec<User>, StoreError> {
        let rows: Vec<common::UserRow> = sqlx::query_as(common::select_users!(
            "WHERE status = 'active' AND account_expires_us <= $1 ORDER BY username"
        ))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(common::user).collect()
    }

    async fn users_dormant(&self, before: OffsetDateTime) -> Result<Vec<User>, StoreError> {
        let rows: Vec<common::UserRow> = sqlx::query_as(common::select_users!(
            "WHERE status = 'active' AND coalesce(last_login_at_us, created_at_us) < $1 ORDER BY username"
        ))
        .bind(micros(before))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(common::user).collect()
    }

    async fn open_break_glass(&self, bg: &BreakGlass, event: &AuditEvent) -> Result<(), StoreError> {
        if bg.review.is_some() {
            return Err(StoreError::Malformed(format!("break-glass {} cannot be opened reviewed", bg.id)));
        }
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(governance::INSERT_BREAK_GLASS)
                .bind(&bg.id)
                .bind(&bg.user_id)
                .bind(bg.username.as_str())
                .bind(&bg.reason_code)
                .bind(&bg.justification)
                .bind(micros(bg.opened_at))
                .bind(micros(bg.expires_at))
                .bind(&bg.session_id)
                .bind(bg.client_ip.map(|ip| ip.to_string()))
                .bind(governance::micros_opt(bg.ended_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn break_glass(&self, id: &str) -> Result<Option<BreakGlass>, StoreError> {
        let row: Option<governance::BreakGlassRow> = sqlx::query_as(governance::select_break_glass!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(governance::break_glass).transpose()
    }

    async fn list_break_glass(&self, pending_only: bool) -> Result<Vec<BreakGlass>, StoreError> {
        let rows: Vec<governance::BreakGlassRow> = sqlx::query_as(governance::select_break_glass!(
            "WHERE ($1 = 0 OR reviewed_at_us IS NULL) ORDER BY opened_at_us DESC, id DESC"
        ))
        .bind(pending_only)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(governance::break_glass).collect()
    }

    async fn end_break_glass(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let ended = sqlx::query(governance::END_BREAK_GLASS)
                .bind(id)
                .bind(micros(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected()
                == 1;
            if ended {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
                bump_revision(&mut tx).await?;
            } else {
                exists(&mut tx, "SELECT count(*) FROM break_glass WHERE id = $1", id).await?;
            }
            Ok(ended)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn review_break_glass(&self, id: &str, review: &Review, event: &AuditEvent) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let (reviewer, outcome, comment, at) = governance::review_columns(review);
            let reviewed = sqlx::query(governance::REVIEW_BREAK_GLASS)
                .bind(id)
                .bind(reviewer)
                .bind(outcome)
                .bind(comment)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected()
                == 1;
            if reviewed {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
                bump_revision(&mut tx).await?;
            } else {
                exists(&mut tx, "SELECT count(*) FROM break_glass WHERE id = $1", id).await?;
            }
            Ok(reviewed)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn active_break_glass_of(&self, user_id: &str, now: OffsetDateTime) -> Result<Vec<BreakGlass>, StoreError> {
        let rows: Vec<governance::BreakGlassRow> = sqlx::query_as(governance::select_break_glass!(
            "WHERE user_id = $1 AND opened_at_us <= $2 AND expires_at_us > $2 \
             AND (ended_at_us IS NULL OR ended_at_us > $2) ORDER BY opened_at_us DESC, id DESC"
        ))
        .bind(user_id)
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(governance::break_glass).collect()
    }

    async fn request_elevation(&self, e: &Elevation, event: &AuditEvent) -> Result<(), StoreError> {
        if e.status != ElevationStatus::Pending {
            return Err(StoreError::Malformed(format!("elevation {} is requested {}", e.id, e.status.as_str())));
        }
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(governance::INSERT_ELEVATION)
                .bind(&e.id)
                .bind(&e.user_id)
                .bind(e.username.as_str())
                .bind(&e.role)
                .bind(&e.reason)
                .bind(governance::duration_us(e)?)
                .bind(micros(e.requested_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn elevation(&self, id: &str) -> Result<Option<Elevation>, StoreError> {
        let row: Option<governance::ElevationRow> = sqlx::query_as(governance::select_elevations!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(governance::elevation).transpose()
    }

    async fn list_elevations(&self, pending_only: bool) -> Result<Vec<Elevation>, StoreError> {
        let rows: Vec<governance::ElevationRow> = sqlx::query_as(governance::select_elevations!(
            "WHERE ($1 = 0 OR status = 'pending') ORDER BY requested_at_us DESC, id DESC"
        ))
        .bind(pending_only)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(governance::elevation).collect()
    }

    async fn decide_elevation(&self, e: &Elevation, event: &AuditEvent) -> Result<bool, StoreError> {
        let (status, by, at, expires_at, comment) = governance::decision_columns(&e.status);
        if e.status == ElevationStatus::Pending {
            return Err(StoreError::Malformed(format!("elevation {} cannot be decided pending", e.id)));
        }
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let decided: Option<(String, String)> = sqlx::query_as(governance::DECIDE_ELEVATION)
                .bind(&e.id)
                .bind(status)
                .bind(by)
                .bind(at)
                .bind(expires_at)
                .bind(comment)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            let Some((user_id, role)) = decided else {
                exists(&mut tx, "SELECT count(*) FROM elevations WHERE id = $1", &e.id).await?;
                return Ok(false);
            };
            if let ElevationStatus::Approved { expires_at, .. } = e.status {
                change_roles(&mut tx, &user_id, |u| {
                    u.grant_role_until(&role, expires_at);
                    true
                })
                .await?;
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(true)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_vendor(&self, vendor: &Vendor, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(governance::INSERT_VENDOR)
                .bind(&vendor.name)
                .bind(&vendor.display_name)
                .bind(&vendor.baa_reference)
                .bind(governance::date(vendor.baa_effective)?)
                .bind(governance::date(vendor.baa_expires)?)
                .bind(vendor.sponsor.as_str())
                .bind(micros(vendor.created_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn vendor(&self, name: &str) -> Result<Option<Vendor>, StoreError> {
        let row: Option<governance::VendorRow> = sqlx::query_as(governance::select_vendors!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(governance::vendor).transpose()
    }

    async fn list_vendors(&self) -> Result<Vec<Vendor>, StoreError> {
        let rows: Vec<governance::VendorRow> =
            sqlx::query_as(governance::select_vendors!("ORDER BY name")).fetch_all(&self.pool).await.map_err(err)?;
        rows.into_iter().map(governance::vendor).collect()
    }

    async fn update_vendor(&self, vendor: &Vendor, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let updated = sqlx::query(governance::UPDATE_VENDOR)
                .bind(&vendor.name)
                .bind(&vendor.display_name)
                .bind(&vendor.baa_reference)
                .bind(governance::date(vendor.baa_effective)?)
                .bind(governance::date(vendor.baa_expires)?)
                .bind(vendor.sponsor.as_str())
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn vendor_users(&self, name: &str) -> Result<Vec<User>, StoreError> {
        let rows: Vec<common::UserRow> = sqlx::query_as(common::select_users!("WHERE vendor = $1 ORDER BY username"))
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.into_iter().map(common::user).collect()
    }

    async fn create_campaign(&self, campaign: &Campaign, items: &[Item], event: &AuditEvent) -> Result<(), StoreError> {
        governance::check_items(campaign, items)?;
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(governance::INSERT_CAMPAIGN)
                .bind(&campaign.id)
                .bind(campaign.scope.to_string())
                .bind(campaign.reviewer.as_str())
                .bind(&campaign.created_by)
                .bind(micros(campaign.created_at))
                .bind(micros(campaign.deadline))
                .bind(campaign.default_action.as_str())
                .bind(governance::micros_opt(campaign.closed_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            for item in items {
                sqlx::query(governance::INSERT_ITEM)
                    .bind(&item.id)
                    .bind(&item.campaign_id)
                    .bind(&item.user_id)
                    .bind(item.username.as_str())
                    .bind(&item.role)
                    .bind(item.decision.map(Decision::as_str))
                    .bind(&item.decided_by)
                    .bind(governance::micros_opt(item.decided_at))
                    .bind(&item.comment)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| common::conflict(e, err))?;
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        let row: Option<governance::CampaignRow> = sqlx::query_as(governance::select_campaigns!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(governance::campaign).transpose()
    }

    async fn list_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let rows: Vec<governance::CampaignRow> =
            sqlx::query_as(governance::select_campaigns!("ORDER BY created_at_us DESC, id DESC"))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(governance::campaign).collect()
    }

    async fn campaign_items(&self, campaign_id: &str) -> Result<Vec<Item>, StoreError> {
        let rows: Vec<governance::ItemRow> =
            sqlx::query_as(governance::select_items!("WHERE campaign_id = $1 ORDER BY username, role, id"))
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(governance::item).collect()
    }

    async fn decide_item(
        &self,
        item_id: &str,
        decision: Decision,
        by: &str,
        at: OffsetDateTime,
        comment: Option<&str>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let decided: Option<(String, String)> = sqlx::query_as(governance::DECIDE_ITEM)
                .bind(item_id)
                .bind(decision.as_str())
                .bind(by)
                .bind(micros(at))
                .bind(comment)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            let Some((user_id, role)) = decided else {
                exists(&mut tx, "SELECT count(*) FROM review_items WHERE id = $1", item_id).await?;
                return Ok(false);
            };
            if decision == Decision::Revoke {
                change_roles(&mut tx, &user_id, |u| u.revoke_role(&role)).await?;
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(true)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn close_campaign(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let closed = sqlx::query(governance::CLOSE_CAMPAIGN)
                .bind(id)
                .bind(micros(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            let closed = closed.rows_affected() == 1;
            if closed {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
                bump_revision(&mut tx).await?;
            } else {
                exists(&mut tx, "SELECT count(*) FROM review_campaigns WHERE id = $1", id).await?;
            }
            Ok(closed)
        }
        .await;
        common::finish(tx, r, err).await
    }

    // --- SCIM (L4) ---------------------------------------------------------------------------

    async fn create_scim_token(&self, token: &ScimToken, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(scim::INSERT_TOKEN)
                .bind(&token.id)
                .bind(&token.label)
                .bind(token.digest.to_vec())
                .bind(&token.created_by)
                .bind(micros(token.created_at))
                .bind(micros(token.expires_at))
                .bind(token.revoked_at.map(micros))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn scim_token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<ScimToken>, StoreError> {
        let row: Option<scim::TokenRow> = sqlx::query_as(scim::TOKEN_BY_DIGEST)
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(scim::token).transpose()
    }

    async fn scim_tokens(&self) -> Result<Vec<ScimToken>, StoreError> {
        let rows: Vec<scim::TokenRow> = sqlx::query_as(scim::ALL_TOKENS).fetch_all(&self.pool).await.map_err(err)?;
        rows.into_iter().map(scim::token).collect()
    }

    async fn revoke_scim_token(&self, id: &str, now: OffsetDateTime, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let revoked =
                sqlx::query(scim::REVOKE_TOKEN).bind(id).bind(micros(now)).execute(&mut *tx).await.map_err(err)?;
            if revoked.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn scim_attributes(&self, user_id: &str) -> Result<Option<(serde_json::Value, OffsetDateTime)>, StoreError> {
        let row: Option<scim::AttributesRow> =
            sqlx::query_as(scim::ATTRIBUTES_OF).bind(user_id).fetch_optional(&self.pool).await.map_err(err)?;
        Ok(row.map(scim::attributes).transpose()?.map(|(_, v, at)| (v, at)))
    }

    async fn all_scim_attributes(&self) -> Result<Vec<(String, serde_json::Value, OffsetDateTime)>, StoreError> {
        let rows: Vec<scim::AttributesRow> =
            sqlx::query_as(scim::ALL_ATTRIBUTES).fetch_all(&self.pool).await.map_err(err)?;
        rows.into_iter().map(scim::attributes).collect()
    }

    async fn save_scim_user(
        &self,
        user: &User,
        attributes: &serde_json::Value,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let updated = sqlx::query(scim::UPDATE_PROFILE)
                .bind(&user.id)
                .bind(&user.display_name)
                .bind(&user.email)
                .bind(&user.employee_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(scim::UPSERT_ATTRIBUTES)
                .bind(&user.id)
                .bind(attributes.to_string())
                .bind(micros(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_scim_group(&self, group: &ScimGroup, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(scim::INSERT_GROUP)
                .bind(&group.id)
                .bind(&group.display_name)
                .bind(scim::display_key(&group.display_name))
                .bind(&group.external_id)
                .bind(scim::members_json(group))
                .bind(micros(group.created_at))
                .bind(micros(group.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn scim_group(&self, id: &str) -> Result<Option<ScimGroup>, StoreError> {
        let row: Option<scim::GroupRow> =
            sqlx::query_as(scim::GROUP_BY_ID).bind(id).fetch_optional(&self.pool).await.map_err(err)?;
        row.map(scim::group).transpose()
    }

    async fn scim_groups(&self) -> Result<Vec<ScimGroup>, StoreError> {
        let rows: Vec<scim::GroupRow> = sqlx::query_as(scim::ALL_GROUPS).fetch_all(&self.pool).await.map_err(err)?;
        rows.into_iter().map(scim::group).collect()
    }

    async fn update_scim_group(&self, group: &ScimGroup, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let updated = sqlx::query(scim::UPDATE_GROUP)
                .bind(&group.id)
                .bind(&group.display_name)
                .bind(scim::display_key(&group.display_name))
                .bind(&group.external_id)
                .bind(scim::members_json(group))
                .bind(micros(group.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn delete_scim_group(&self, id: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let deleted = sqlx::query(scim::DELETE_GROUP).bind(id).execute(&mut *tx).await.map_err(err)?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    // --- identity lifecycle (L1-L3) ---

    async fn record_proofing(&self, proofing: &Proofing, event: &AuditEvent) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let (a, b, c, d, e, f, g, h, i) = lifecycle::proofing_columns(proofing);
            sqlx::query(lifecycle::INSERT_PROOFING)
                .bind(a)
                .bind(b)
                .bind(c)
                .bind(d)
                .bind(e)
                .bind(f)
                .bind(g)
                .bind(h)
                .bind(i)
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn proofings_of(&self, user_id: &str) -> Result<Vec<Proofing>, StoreError> {
        let rows: Vec<lifecycle::ProofingRow> =
            sqlx::query_as(lifecycle::select_proofing!("WHERE user_id = $1 ORDER BY proofed_at_us, id"))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(lifecycle::proofing).collect()
    }

    async fn factor_inventory(
        &self,
        user_id: Option<&str>,
        expiring_before: Option<OffsetDateTime>,
    ) -> Result<Vec<Factor>, StoreError> {
        let rows: Vec<common::FactorRow> = sqlx::query_as(common::select_factors!(
            "WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR expires_at_us < $2) ORDER BY created_at_us, id"
        ))
        .bind(user_id)
        .bind(lifecycle::opt_micros(expiring_before))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(common::factor).collect()
    }

    async fn set_factor_expiry(
        &self,
        user_id: &str,
        factor_id: &str,
        expires_at: Option<OffsetDateTime>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let changed = sqlx::query(lifecycle::SET_FACTOR_EXPIRY)
                .bind(user_id)
                .bind(factor_id)
                .bind(lifecycle::opt_micros(expires_at))
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn open_recovery(&self, request: &RecoveryRequest, event: &AuditEvent) -> Result<(), StoreError> {
        if request.status != RecoveryStatus::Pending {
            return Err(StoreError::Malformed(format!("recovery request {} is not pending", request.id)));
        }
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            sqlx::query(lifecycle::INSERT_RECOVERY)
                .bind(&request.id)
                .bind(&request.user_id)
                .bind(request.username.as_str())
                .bind(request.opened_by.as_str())
                .bind(&request.reason)
                .bind(micros(request.opened_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| common::conflict(e, err))?;
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn recovery_request(&self, id: &str) -> Result<Option<RecoveryRequest>, StoreError> {
        let row: Option<lifecycle::RecoveryRow> = sqlx::query_as(lifecycle::select_recovery!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(lifecycle::recovery).transpose()
    }

    async fn list_recovery(&self, pending_only: bool) -> Result<Vec<RecoveryRequest>, StoreError> {
        let rows: Vec<lifecycle::RecoveryRow> = sqlx::query_as(lifecycle::select_recovery!(
            "WHERE ($1 = 0 OR status = 'pending') ORDER BY opened_at_us DESC, id DESC"
        ))
        .bind(pending_only)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(lifecycle::recovery).collect()
    }

    async fn decide_recovery(
        &self,
        request: &RecoveryRequest,
        link_digest: Option<&[u8; 32]>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let lifecycle::DecisionColumns { by, at, comment, link_expires_at: expires } = lifecycle::decision(request)?;
        let query = match (expires, link_digest) {
            (Some(exp), Some(d)) => {
                sqlx::query(lifecycle::APPROVE_RECOVERY).bind(&request.id).bind(by).bind(at).bind(d.to_vec()).bind(exp)
            }
            (None, None) => sqlx::query(lifecycle::DENY_RECOVERY).bind(&request.id).bind(by).bind(at).bind(comment),
            _ => {
                return Err(StoreError::Malformed(format!(
                    "recovery request {}: an approval needs a link digest, a denial none",
                    request.id
                )));
            }
        };
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let decided = query.execute(&mut *tx).await.map_err(err)?.rows_affected() == 1;
            if decided {
                append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
                bump_revision(&mut tx).await?;
            } else {
                exists(&mut tx, "SELECT count(*) FROM recovery_requests WHERE id = $1", &request.id).await?;
            }
            Ok(decided)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn recovery_by_link(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<RecoveryRequest>, StoreError> {
        let row: Option<lifecycle::RecoveryRow> = sqlx::query_as(lifecycle::select_recovery!(
            "WHERE link_digest = $1 AND status = 'approved' AND link_expires_at_us > $2"
        ))
        .bind(digest.to_vec())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(lifecycle::recovery).transpose()
    }

    async fn complete_recovery(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        factor: &Factor,
        retire: &[String],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let r = async {
            let used = sqlx::query(lifecycle::USE_RECOVERY_LINK)
                .bind(digest.to_vec())
                .bind(micros(now))
                .bind(&factor.user_id)
                .bind(&factor.id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if used != 1 {
                return Err(StoreError::EnrollmentInvalid);
            }
            insert_factor(&mut tx, factor).await?;
            for id in retire.iter().filter(|id| **id != factor.id) {
                sqlx::query("DELETE FROM factors WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(&factor.user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
            append_in(&mut tx, &self.node, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }
}

#[cfg(test)]
mod tests {
    use wardgate_core::audit::Outcome;

    use super::*;

    fn ev(t: &'static str) -> AuditEvent {
        AuditEvent::known(OffsetDateTime::now_utc(), t, Outcome::Success)
    }

    /// The group commit's connection does not wait for the disk: the flusher does, and
    /// nobody hears of a commit before the flush that carries it has returned.
    #[tokio::test]
    async fn the_group_commit_is_answered_after_its_log_is_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db"), "n1").await.unwrap();
        // The first append reads the head on the write pool; the next ones know it.
        store.append_audit(&[ev("auth.login.succeeded")]).await.unwrap();
        for n in 1..=3 {
            let (_, durable) = store.append_audit_pipelined(&[ev("gateway.access")]).await.unwrap();
            assert_eq!(store.flusher.progress().0, n, "the commit is registered for a flush");
            durable.wait().await.unwrap();
            assert!(store.flusher.progress().1 >= n, "answered before its flush");
        }
        store.append_audit(&[ev("gateway.access")]).await.unwrap();
        let (committed, flushed) = store.flusher.progress();
        assert_eq!((committed, flushed), (4, 4), "append_audit returns only once flushed");
        let mut hot = store.hot.lock().await;
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(opened(&mut hot).unwrap()).await.unwrap();
        assert_eq!(level, 1, "NORMAL: the commit itself does not wait for the disk");
    }

    /// The workspace's `.cargo/config.toml` passes SQLite its build flags through
    /// `LIBSQLITE3_FLAGS`. SQLite lists only one of the two among its compile options
    /// (`HAVE_FDATASYNC` is not one), so this shows that the variable reached the build.
    #[tokio::test]
    async fn the_workspace_sqlite_flags_reach_the_build() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options").fetch_all(&mut conn).await.unwrap();
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
    }

    /// After a failed flush the kernel may have dropped the log's pages; building on them
    /// would acknowledge records the disk never got, so the store takes no more writes.
    #[tokio::test]
    async fn after_a_failed_flush_no_write_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("w.db"), "n1").await.unwrap();
        store.append_audit(&[ev("auth.login.succeeded")]).await.unwrap();
        store.fail_flushes();
        let e = store.append_audit(&[ev("gateway.access")]).await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        for refused in [
            store.append_audit(&[ev("gateway.access")]).await.unwrap_err(),
            store.commit(&[Write::Audit(ev("gateway.access"))]).await.unwrap_err(),
            store
                .insert_checkpoint(&Checkpoint {
                    seq: 1,
                    hash: [0; 32],
                    ts_us: 0,
                    node: "n1".into(),
                    key_id: "k".into(),
                    signature: [0; 64],
                })
                .await
                .unwrap_err(),
        ] {
            assert!(refused.to_string().contains("could not be flushed"), "{refused}");
        }
    }

    /// A fresh store with a client `c1` and one record, and a grant `g1` of that client with
    /// its first refresh token (`[9; 32]`), not yet stored.
    async fn oidc_store() -> (tempfile::TempDir, SqliteStore, ChainHead, Grant, RefreshToken) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("w.db"), "n1").await.unwrap();
        let client = OidcClient {
            id: "c1".into(),
            name: "Service".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            post_logout_redirect_uris: vec![],
            secret_digest: Some([1; 32]),
            scopes: vec!["openid".into()],
            first_party: true,
            backchannel_logout_uri: None,
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 3600,
            created_at: OffsetDateTime::UNIX_EPOCH,
            jwks: None,
            signing_alg: "ES256".into(),
        };
        store.create_client(&client, &ev("oidc.client.created")).await.unwrap();
        let grant = Grant {
            id: "g1".into(),
            client_id: "c1".into(),
            user_id: None,
            session_id: None,
            scopes: vec![],
            acr: None,
            amr: vec![],
            auth_time: None,
            correlation_id: "corr".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            revoked_at: None,
        };
        let first = RefreshToken {
            digest: [9; 32],
            grant_id: "g1".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1),
            used_at: None,
        };
        let head = store.append_audit(&[ev("auth.login.succeeded")]).await.unwrap();
        (dir, store, head, grant, first)
    }

    /// A rotation of `[spent; 32]` into `[next; 32]` at `now`, read ahead as live.
    fn rotate(grant: &Grant, first: &RefreshToken, spent: u8, next: u8, now: OffsetDateTime) -> Write {
        Write::RotateRefresh {
            digest: [spent; 32],
            next: RefreshToken { digest: [next; 32], created_at: now, ..first.clone() },
            now,
            rotated: ev("oidc.token.refreshed"),
            reused: ev("oidc.refresh.reused"),
            live: Some(grant.clone()),
        }
    }

    /// The conformance suite cannot tell the one-statement path from the slow one it falls
    /// back to; this calls it directly, so a broken statement list fails here.
    #[tokio::test]
    async fn a_batch_read_ahead_goes_in_one_statement_list() {
        let (_dir, store, head, grant, first) = oidc_store().await;
        let writes = [
            Write::InsertGrant { grant: grant.clone(), refresh: Some(first.clone()), event: ev("oidc.grant.issued") },
            Write::Audit(ev("oidc.token.refreshed")),
        ];
        let (found, new_head, durable) = store.read_ahead_known_head(head, &writes).await.unwrap();
        durable.wait().await.unwrap();
        assert_eq!(found, [Written::Done, Written::Done]);
        assert_eq!(new_head.seq, head.seq + 2);
        assert_eq!(store.audit_head().await.unwrap(), new_head);
        assert_eq!(store.grant("g1").await.unwrap(), Some(grant.clone()));
        assert_eq!(store.refresh_token(&[9; 32]).await.unwrap().unwrap().0, first);
        // A stale head is refused and changes nothing.
        let again = [Write::Audit(ev("auth.login.succeeded"))];
        assert!(store.read_ahead_known_head(head, &again).await.is_err());
        assert_eq!(store.audit_head().await.unwrap(), new_head);

        // A refresh read ahead is spent blind, its successor stored, in the same one list.
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(1);
        let next = |d: u8| RefreshToken { digest: [d; 32], created_at: now, ..first.clone() };
        let rotate = |d: u8, n: u8| rotate(&grant, &first, d, n, now);
        let (found, head, durable) = store.read_ahead_known_head(new_head, &[rotate(9, 10)]).await.unwrap();
        durable.wait().await.unwrap();
        assert_eq!(found, [Written::Rotation(Rotation::Rotated(grant.clone()))]);
        assert_eq!(store.refresh_token(&[9; 32]).await.unwrap().unwrap().0.used_at, Some(now));
        assert_eq!(store.refresh_token(&[10; 32]).await.unwrap().unwrap().0, next(10));
        assert_eq!(store.audit_head().await.unwrap(), head);
        // Read ahead, but spent meanwhile (or presented twice in one batch): the guard
        // refuses the whole list and nothing of it is kept.
        for batch in [vec![rotate(9, 11)], vec![rotate(10, 12), rotate(10, 13)]] {
            assert!(store.read_ahead_known_head(head, &batch).await.is_err());
            assert_eq!(store.audit_head().await.unwrap(), head);
            for d in [11, 12, 13] {
                assert_eq!(store.refresh_token(&[d; 32]).await.unwrap(), None);
            }
            assert_eq!(store.refresh_token(&[10; 32]).await.unwrap().unwrap().0.used_at, None);
        }
        // Through `commit`, the refused batch takes the reading path and is told apart:
        // the first presentation of 10 rotates, the second is a replay that revokes.
        let (found, _) = store.commit(&[rotate(10, 12), rotate(10, 13)]).await.unwrap();
        assert_eq!(found[0], Written::Rotation(Rotation::Rotated(grant.clone())));
        assert!(matches!(found[1], Written::Rotation(Rotation::Reused(_))), "{found:?}");
        assert!(store.grant("g1").await.unwrap().unwrap().revoked_at.is_some());
    }

    /// A steady load repeats a few batch shapes: each is prepared once on the group
    /// commit's connection, and a list its guard refused is still good for the next batch.
    #[tokio::test]
    async fn batches_of_one_shape_reuse_their_prepared_statements() {
        use sqlx::Connection as _;
        let (_dir, store, head, grant, first) = oidc_store().await;
        let insert =
            [Write::InsertGrant { grant: grant.clone(), refresh: Some(first.clone()), event: ev("oidc.grant.issued") }];
        let (_, mut head, durable) = store.read_ahead_known_head(head, &insert).await.unwrap();
        durable.wait().await.unwrap();
        let cached = || async { store.hot.lock().await.as_ref().unwrap().cached_statements_size() };
        let before = cached().await;
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(1);
        let rotate = |d: u8, n: u8| rotate(&grant, &first, d, n, now);
        // 9 → 10, then a refused replay of 9, then 10 → 11: one shape, one prepared list.
        let mut counts = Vec::new();
        for (d, n, ok) in [(9, 10, true), (9, 12, false), (10, 11, true)] {
            match store.read_ahead_known_head(head, &[rotate(d, n)]).await {
                Ok((found, h, durable)) => {
                    assert!(ok, "a spent token was rotated again");
                    durable.wait().await.unwrap();
                    assert_eq!(found, [Written::Rotation(Rotation::Rotated(grant.clone()))]);
                    head = h;
                }
                Err(e) => assert!(!ok, "{e}"),
            }
            counts.push(cached().await);
        }
        // The refusal's rollback is a statement of its own; the third batch adds nothing.
        assert_eq!((counts[0], counts[2]), (before + 1, counts[1]), "the rotation's statement list is prepared once");
        assert_eq!(store.refresh_token(&[11; 32]).await.unwrap().unwrap().0.grant_id, "g1");
        assert_eq!(store.refresh_token(&[12; 32]).await.unwrap(), None);
        assert_eq!(store.audit_head().await.unwrap(), head);
    }
}
