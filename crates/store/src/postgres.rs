//! The shared backend: several nodes, one PostgreSQL database.
//!
//! The audit chain is serialised by the database, not by any node: every transaction that
//! appends starts by locking the single `audit_head` row (`SELECT … FOR UPDATE`), and only
//! then reads the head, seals its events after it and moves it. Administrative changes
//! take the same lock first, so on PostgreSQL — as on SQLite — they are applied one at a
//! time, in chain order, which also makes check-then-act steps such as "no administrator
//! exists yet" safe across nodes.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection as _, PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use wardgate_core::api_token::ApiToken;
use wardgate_core::audit::record::seal_batch;
use wardgate_core::audit::{AuditEvent, ChainHead, Checkpoint, StoredRecord};
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
use crate::governance;
use crate::lifecycle;
use crate::scim;
use crate::{
    AuditMark, AuditMarks, CodeRedemption, OidcPurged, RefreshHolder, Rotation, SealedColumn, SealedRef, Store,
    StoreError,
};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/postgres/0001_initial.sql")),
    (2, "authentication", include_str!("../migrations/postgres/0002_authentication.sql")),
    (3, "oidc", include_str!("../migrations/postgres/0003_oidc.sql")),
    (4, "client_keys", include_str!("../migrations/postgres/0004_client_keys.sql")),
    (5, "consent", include_str!("../migrations/postgres/0005_consent.sql")),
    (6, "logout_notices", include_str!("../migrations/postgres/0006_logout_notices.sql")),
    (7, "policy", include_str!("../migrations/postgres/0007_policy.sql")),
    (8, "governance", include_str!("../migrations/postgres/0008_governance.sql")),
    (9, "scim", include_str!("../migrations/postgres/0009_scim.sql")),
    (10, "lifecycle", include_str!("../migrations/postgres/0010_lifecycle.sql")),
];

pub struct PostgresStore {
    pool: PgPool,
    node: String,
}

impl std::fmt::Debug for PostgresStore {
    // The URL is left out on purpose: it may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("node", &self.node).finish()
    }
}

impl PostgresStore {
    /// Connects and migrates. Several nodes may do this at once: the migrator holds a
    /// PostgreSQL advisory lock while it works.
    pub async fn open(url: &str, node: &str) -> Result<PostgresStore, StoreError> {
        // Messages never repeat the URL, which may carry a password.
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("wardgate");
        // One plain connection first: it fails at once when the server is down, where a
        // pool would keep retrying until its acquire timeout.
        PgConnection::connect_with(&options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?
            .close()
            .await
            .map_err(err)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        if let Err(e) = common::migrator(MIGRATIONS).run(&pool).await {
            pool.close().await;
            return Err(common::migrate_error(e, err));
        }
        tracing::debug!(node, "opened PostgreSQL store");
        Ok(PostgresStore { pool, node: node.to_owned() })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(err)
    }

    /// Begins a transaction holding the chain lock, and returns the head as it is now.
    async fn begin_chain(&self) -> Result<(Transaction<'static, Postgres>, ChainHead), StoreError> {
        let mut tx = self.begin().await?;
        let row: (i64, Vec<u8>) = match sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
        {
            Ok(row) => row,
            Err(e) => return common::finish(tx, Err(err(e)), err).await,
        };
        match common::head(row, "audit head hash") {
            Ok(head) => Ok((tx, head)),
            Err(e) => common::finish(tx, Err(e), err).await,
        }
    }

    /// [`Self::begin_chain`] for a change that appends to the chain; for one that does not,
    /// a plain transaction that leaves the other writers alone.
    async fn begin_if_audited(
        &self,
        audited: bool,
    ) -> Result<(Transaction<'static, Postgres>, Option<ChainHead>), StoreError> {
        if audited {
            let (tx, head) = self.begin_chain().await?;
            Ok((tx, Some(head)))
        } else {
            Ok((self.begin().await?, None))
        }
    }
}

fn err(e: sqlx::Error) -> StoreError {
    common::sqlx_error(e)
}

/// Seals `events` after `head` and stores them. `head` must have been read under the chain
/// lock in this same transaction ([`PostgresStore::begin_chain`]). Every mutating method
/// goes through here, so a state change and its audit record commit together.
async fn append_after(
    conn: &mut PgConnection,
    node: &str,
    head: ChainHead,
    events: &[AuditEvent],
) -> Result<ChainHead, StoreError> {
    let sealed = seal_batch(&head, node, events);
    let Some(new_head) = sealed.last().map(|r| r.head()) else {
        return Ok(head);
    };
    let n = sealed.len();
    let (mut seqs, mut ts, mut types, mut bodies, mut hashes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for r in sealed {
        seqs.push(r.seq);
        ts.push(r.ts_us);
        types.push(r.event_type);
        bodies.push(r.body);
        hashes.push(r.hash.to_vec());
    }
    // One statement of five array parameters, whatever the batch size: no bind-parameter
    // limit to chunk around, and the statement is prepared once per connection.
    sqlx::query(
        "INSERT INTO audit_log (seq, ts_us, event_type, body, hash) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BYTEA[])",
    )
    .bind(seqs)
    .bind(ts)
    .bind(types)
    .bind(bodies)
    .bind(hashes)
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(new_head.seq)
        .bind(new_head.hash.to_vec())
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    Ok(new_head)
}

async fn bump_revision(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1").execute(conn).await.map_err(err)?;
    Ok(())
}

async fn count_admins_in(conn: &mut PgConnection) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE is_admin AND status = 'active'")
        .fetch_one(conn)
        .await
        .map_err(err)
}

async fn insert_user(conn: &mut PgConnection, user: &User, factors: &[Factor]) -> Result<(), StoreError> {
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

async fn insert_factor(conn: &mut PgConnection, f: &Factor) -> Result<(), StoreError> {
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
    conn: &mut PgConnection,
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

async fn insert_session(conn: &mut PgConnection, s: &Session) -> Result<(), StoreError> {
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

async fn insert_code_row(conn: &mut PgConnection, code: &AuthCode) -> Result<(), StoreError> {
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

/// Single use: a concurrent redemption waits on the row lock, then re-checks `grant_id IS
/// NULL` against the winner's committed row (READ COMMITTED) and updates nothing.
async fn redeem_code_in(
    conn: &mut PgConnection,
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

/// A rotation inside a transaction that already holds the chain lock, so a replay can
/// revoke at once; the caller appends the record of whichever outcome it was.
async fn rotate_locked(
    conn: &mut PgConnection,
    digest: &[u8; 32],
    next: &RefreshToken,
    now: OffsetDateTime,
) -> Result<Rotation, StoreError> {
    let Some((token, grant)) = locked_token_and_grant(conn, digest).await? else {
        return Ok(Rotation::Unknown);
    };
    match common::presented(&token, &grant, now) {
        Presented::Unknown => Ok(Rotation::Unknown),
        // The row is locked: nobody can spend it between the check and the update.
        Presented::Live if mark_used(conn, digest, now).await? => {
            insert_refresh_token(conn, next, &grant.id).await?;
            Ok(Rotation::Rotated(grant))
        }
        Presented::Live => Ok(Rotation::Unknown),
        Presented::Used if revoke_grant_in(conn, &grant.id, now).await? => {
            Ok(Rotation::Reused(Grant { revoked_at: Some(now), ..grant }))
        }
        Presented::Used => Ok(Rotation::Unknown),
    }
}

async fn insert_grant_row(conn: &mut PgConnection, g: &Grant) -> Result<(), StoreError> {
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
async fn insert_refresh_token(conn: &mut PgConnection, t: &RefreshToken, grant_id: &str) -> Result<(), StoreError> {
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
    conn: &mut PgConnection,
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

/// [`token_and_grant`] for a rotation: the grant is read `FOR SHARE`, so it is neither revoked
/// nor deleted until the rotation commits (a rotation never hands out a token of a grant
/// revoked meanwhile), and it is locked before the token, in the order in which deleting a
/// client cascades, so the two cannot deadlock.
async fn locked_token_and_grant(
    conn: &mut PgConnection,
    digest: &[u8; 32],
) -> Result<Option<(RefreshToken, Grant)>, StoreError> {
    let row: Option<common::GrantRow> = sqlx::query_as(common::select_grants!(
        "WHERE id = (SELECT grant_id FROM oidc_refresh_tokens WHERE digest = $1) FOR SHARE"
    ))
    .bind(digest.to_vec())
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    let Some(grant) = row.map(common::grant).transpose()? else { return Ok(None) };
    let row: Option<common::RefreshTokenRow> = sqlx::query_as(common::select_refresh_tokens!("WHERE digest = $1"))
        .bind(digest.to_vec())
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
    Ok(row.map(common::refresh_token).transpose()?.map(|t| (t, grant)))
}

/// Marks a refresh token used if nobody has; returns whether this call did.
async fn mark_used(conn: &mut PgConnection, digest: &[u8; 32], now: OffsetDateTime) -> Result<bool, StoreError> {
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
async fn revoke_grant_in(conn: &mut PgConnection, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
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
async fn exists(conn: &mut PgConnection, sql: &'static str, id: &str) -> Result<(), StoreError> {
    let n: i64 = sqlx::query_scalar(sql).bind(id).fetch_one(conn).await.map_err(err)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Reads the account (locking its row), lets `change` edit its roles, and writes them back
/// if it says it changed them. The caller holds the chain lock too, which every other
/// change to roles takes first.
async fn change_roles(
    conn: &mut PgConnection,
    user_id: &str,
    change: impl FnOnce(&mut User) -> bool,
) -> Result<(), StoreError> {
    let row: Option<common::UserRow> = sqlx::query_as(common::select_users!("WHERE id = $1 FOR UPDATE"))
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
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let mut tx = self.begin().await?;
        let r = async {
            // DO NOTHING waits for a concurrent inserter to finish, and the SELECT (a new
            // statement, so a new snapshot under READ COMMITTED) then sees its value.
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
        if events.is_empty() {
            return self.audit_head().await;
        }
        let (mut tx, head) = self.begin_chain().await?;
        let r = append_after(&mut tx, &self.node, head, events).await;
        common::finish(tx, r, err).await
    }

    async fn commit(&self, writes: &[Write]) -> Result<(Vec<Written>, ChainHead), StoreError> {
        // The chain lock first, then row locks, as in every audited write.
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let mut records = Vec::with_capacity(writes.len());
            let mut found = Vec::with_capacity(writes.len());
            for w in writes {
                found.push(match w {
                    Write::Audit(e) => {
                        records.push(e.clone());
                        Written::Done
                    }
                    Write::InsertGrant { grant, refresh, event } => {
                        common::check_first_refresh(grant, refresh.as_ref())?;
                        insert_grant_row(&mut tx, grant).await?;
                        if let Some(t) = refresh {
                            insert_refresh_token(&mut tx, t, &grant.id).await?;
                        }
                        records.push(event.clone());
                        Written::Done
                    }
                    Write::InsertCode { code, event } => {
                        insert_code_row(&mut tx, code).await?;
                        records.push(event.clone());
                        Written::Done
                    }
                    Write::RedeemCode { digest, now, grant_id } => {
                        Written::Redemption(redeem_code_in(&mut tx, digest, *now, grant_id).await?)
                    }
                    Write::RedeemIntoGrant { digest, now, grant, refresh, event, .. } => {
                        common::check_first_refresh(grant, Some(refresh))?;
                        let redemption = redeem_code_in(&mut tx, digest, *now, &grant.id).await?;
                        if matches!(redemption, CodeRedemption::Fresh(_)) {
                            insert_grant_row(&mut tx, grant).await?;
                            insert_refresh_token(&mut tx, refresh, &grant.id).await?;
                            records.push(event.clone());
                        }
                        Written::Redemption(redemption)
                    }
                    Write::RotateRefresh { digest, next, now, rotated, reused, .. } => {
                        let rotation = rotate_locked(&mut tx, digest, next, *now).await?;
                        match rotation {
                            Rotation::Rotated(_) => records.push(rotated.clone()),
                            Rotation::Reused(_) => records.push(reused.clone()),
                            Rotation::Unknown => {}
                        }
                        Written::Rotation(rotation)
                    }
                });
            }
            let head = append_after(&mut tx, &self.node, head, &records).await?;
            Ok((found, head))
        }
        .await;
        common::finish_quiet(tx, r, err).await
    }

    async fn audit_head(&self) -> Result<ChainHead, StoreError> {
        let row =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&self.pool).await.map_err(err)?;
        common::head(row, "audit head hash")
    }

    async fn audit_anchor(&self) -> Result<ChainHead, StoreError> {
        let row = sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        common::head(row, "audit anchor hash")
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
        let mut tx = self.begin().await?;
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
            AuditMark::Exported => "UPDATE audit_marks SET exported_seq = GREATEST(exported_seq, $1) WHERE id = 1",
            AuditMark::Verified => "UPDATE audit_marks SET verified_seq = GREATEST(verified_seq, $1) WHERE id = 1",
        };
        sqlx::query(sql).bind(seq).execute(&self.pool).await.map_err(err)?;
        Ok(())
    }

    async fn prune_audit(&self, through: &Checkpoint, event: &AuditEvent) -> Result<u64, StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let anchor = common::head(
                sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?,
                "audit anchor hash",
            )?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(deleted)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        // Under READ COMMITTED an UPDATE re-checks its WHERE against the latest committed
        // row, so the comparison with `old.sealed` is a true compare-and-swap.
        let sql = match old.column {
            SealedColumn::FactorSecret => "UPDATE factors SET secret = $1 WHERE id = $2 AND secret = $3",
            SealedColumn::SigningKeyPrivate => {
                "UPDATE signing_keys SET private_sealed = $1 WHERE id = $2 AND private_sealed = $3"
            }
            SealedColumn::OidcKeyPrivate => {
                "UPDATE oidc_keys SET private_sealed = $1 WHERE id = $2 AND private_sealed = $3"
            }
        };
        let mut tx = self.begin().await?;
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
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            insert_user(&mut tx, user, factors).await?;
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn user_by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row: Option<common::UserRow> = sqlx::query_as(common::select_users!("WHERE username = $1"))
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::user).transpose()
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row: Option<common::UserRow> = sqlx::query_as(common::select_users!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::user).transpose()
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError> {
        // Every username is at least one character, so "" starts before the first.
        let rows: Vec<common::UserRow> = sqlx::query_as(common::select_users!(
            "WHERE username COLLATE \"C\" > $1 ORDER BY username COLLATE \"C\" LIMIT $2"
        ))
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_if_audited(event.is_some()).await?;
        let r = async {
            let replaced = sqlx::query(
                "UPDATE users SET failed_attempts = $1, last_failure_at_us = $2, locked_until_us = $3 \
                 WHERE id = $4 AND failed_attempts = $5 AND last_failure_at_us IS NOT DISTINCT FROM $6 \
                 AND locked_until_us IS NOT DISTINCT FROM $7",
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
            if let (Some(event), Some(head)) = (event.filter(|_| replaced), head) {
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            }
            Ok(replaced)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn add_factor(&self, factor: &Factor, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            insert_factor(&mut tx, factor).await?;
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        let rows: Vec<common::FactorRow> =
            sqlx::query_as(common::select_factors!("WHERE user_id = $1 ORDER BY created_at_us, id"))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
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
        sqlx::query(
            "UPDATE factors SET counter = $1, last_used_at_us = $2 \
             WHERE id = $3 AND (counter IS NULL OR counter < $1)",
        )
        .bind(counter)
        .bind(micros(now))
        .bind(factor_id)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(err)
    }

    async fn update_factor(
        &self,
        new: &Factor,
        expected_secret: &str,
        event: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let (mut tx, head) = self.begin_if_audited(event.is_some()).await?;
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
            if let (Some(event), Some(head)) = (event.filter(|_| replaced), head) {
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            }
            Ok(replaced)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn remove_factor(&self, user_id: &str, factor_id: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn insert_flow(&self, flow: &Flow) -> Result<(), StoreError> {
        sqlx::query(
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
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(err)
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
        sqlx::query(
            "UPDATE flows SET state = $1, user_id = $2, expires_at_us = $3, version = version + 1 \
             WHERE digest = $4 AND version = $5",
        )
        .bind(flow.state.to_string())
        .bind(&flow.user_id)
        .bind(micros(flow.expires_at))
        .bind(flow.id_digest.to_vec())
        .bind(flow.version)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(err)
    }

    async fn delete_flow(&self, digest: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM flows WHERE digest = $1")
            .bind(digest.to_vec())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn purge_expired_flows(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        // `<=`: a flow is live only while `now < expires_at` (`Flow::is_live`).
        sqlx::query("DELETE FROM flows WHERE expires_at_us <= $1")
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(err)
    }

    async fn create_session(
        &self,
        session: &Session,
        flow: Option<&[u8; 32]>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let row = sqlx::query(common::select_session_and_user!("WHERE s.digest = $1"))
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
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
        // Two nodes may report activity out of order; the later time wins.
        sqlx::query("UPDATE sessions SET last_seen_at_us = GREATEST(last_seen_at_us, $1) WHERE digest = $2")
            .bind(micros(now))
            .bind(digest.to_vec())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(err)
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let revoked =
                sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE user_id = $2 AND revoked_at_us IS NULL")
                    .bind(micros(now))
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(revoked)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_api_token(&self, token: &ApiToken, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        // The chain lock taken first serialises this with every other redemption and
        // administrative change, so the token is used once and only while no admin exists.
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_client(&self, client: &OidcClient, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn client(&self, id: &str) -> Result<Option<OidcClient>, StoreError> {
        let row: Option<common::ClientRow> = sqlx::query_as(common::select_clients!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::client).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<OidcClient>, StoreError> {
        let rows: Vec<common::ClientRow> =
            sqlx::query_as(common::select_clients!("ORDER BY name COLLATE \"C\", id COLLATE \"C\""))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::client).collect()
    }

    async fn update_client(&self, client: &OidcClient, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn delete_client(&self, id: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn grant_consent(&self, consent: &Consent, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            Ok(())
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError> {
        let row: Option<common::ConsentRow> =
            sqlx::query_as(common::select_consents!("WHERE user_id = $1 AND client_id = $2"))
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        row.map(common::consent).transpose()
    }

    async fn revoke_consent(&self, user_id: &str, client_id: &str, event: &AuditEvent) -> Result<bool, StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            }
            Ok(revoked)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn consents_of(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
        let rows: Vec<common::ConsentRow> =
            sqlx::query_as(common::select_consents!("WHERE user_id = $1 ORDER BY client_id COLLATE \"C\""))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::consent).collect()
    }

    async fn insert_auth_code(&self, code: &AuthCode) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        insert_code_row(&mut conn, code).await
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
        let row = sqlx::query(common::select_code_and_user!("WHERE c.digest = $1"))
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(common::code_and_user).transpose()
    }

    async fn redeem_auth_code(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        grant_id: &str,
    ) -> Result<CodeRedemption, StoreError> {
        let mut tx = self.begin().await?;
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
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            insert_grant_row(&mut tx, grant).await?;
            if let Some(t) = refresh {
                insert_refresh_token(&mut tx, t, &grant.id).await?;
            }
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            Ok(())
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let row: Option<common::GrantRow> = sqlx::query_as(common::select_grants!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(common::grant).transpose()
    }

    async fn refresh_token(&self, digest: &[u8; 32]) -> Result<Option<(RefreshToken, Grant)>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(err)?;
        token_and_grant(&mut conn, digest).await
    }

    async fn refresh_holder(&self, digest: &[u8; 32]) -> Result<Option<RefreshHolder>, StoreError> {
        let row = sqlx::query(common::select_refresh_holder!("WHERE t.digest = $1"))
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(common::refresh_holder).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        digest: &[u8; 32],
        next: &RefreshToken,
        now: OffsetDateTime,
        reuse_event: &AuditEvent,
    ) -> Result<Rotation, StoreError> {
        // Rotations append nothing, so they run beside the chain lock and in parallel. A
        // replay must revoke and append, which needs that lock; it is taken before any row
        // lock (as by every audited write, lest two transactions wait on each other), so
        // the replay starts over in a second transaction that holds it.
        let mut tx = self.begin().await?;
        let r = async {
            let Some((token, grant)) = locked_token_and_grant(&mut tx, digest).await? else {
                return Ok(Some(Rotation::Unknown));
            };
            match common::presented(&token, &grant, now) {
                Presented::Unknown => Ok(Some(Rotation::Unknown)),
                // A concurrent rotation blocks on the row lock, then finds `used_at_us` set.
                Presented::Live if mark_used(&mut tx, digest, now).await? => {
                    insert_refresh_token(&mut tx, next, &grant.id).await?;
                    Ok(Some(Rotation::Rotated(grant)))
                }
                Presented::Live | Presented::Used => Ok(None),
            }
        }
        .await;
        if let Some(outcome) = common::finish(tx, r, err).await? {
            return Ok(outcome);
        }
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let Some((token, grant)) = locked_token_and_grant(&mut tx, digest).await? else {
                return Ok(Rotation::Unknown);
            };
            // Still used (that never reverts); `Unknown` if another replay revoked it first.
            if common::presented(&token, &grant, now) != Presented::Used
                || !revoke_grant_in(&mut tx, &grant.id, now).await?
            {
                return Ok(Rotation::Unknown);
            }
            append_after(&mut tx, &self.node, head, std::slice::from_ref(reuse_event)).await?;
            Ok(Rotation::Reused(Grant { revoked_at: Some(now), ..grant }))
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn revoke_grant(&self, id: &str, now: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let live = revoke_grant_in(&mut tx, id, now).await?;
            // Revoking twice (RFC 7009 allows it) changes nothing, so records nothing.
            if live {
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        // SKIP LOCKED: nodes claiming at the same moment take different notices instead of
        // queueing behind each other's row locks, and the update re-checks nothing a
        // concurrent claim could have changed (the rows it skips, it does not touch).
        let rows: Vec<common::NoticeRow> = sqlx::query_as(common::claim_notices_sql!("FOR UPDATE SKIP LOCKED"))
            .bind(node)
            .bind(micros(now))
            .bind(micros(now + lease))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        common::notices_in_order(rows)
    }

    async fn logout_notice_delivered(&self, id: i64, node: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        sqlx::query(common::NOTICE_DELIVERED)
            .bind(micros(now))
            .bind(node)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(err)
    }

    async fn logout_notice_failed(
        &self,
        id: i64,
        node: &str,
        now: OffsetDateTime,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        sqlx::query(common::NOTICE_FAILED)
            .bind(micros(now))
            .bind(node)
            .bind(id)
            .bind(error)
            .bind(retry_at.map(micros))
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(err)
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
        let mut tx = self.begin().await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn purge_oidc_keys(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
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
        // Under the chain lock: no other node reads the same highest number before this
        // one commits (and a statement run after the lock is granted sees its insert).
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            // Checked under the chain lock, so of concurrent activations only the first
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            common::policy_version(row)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn reject_policy(&self, number: i64, event: &AuditEvent) -> Result<PolicyVersion, StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            common::policy_version(row)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_device(&self, device: &Device, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let rows: Vec<common::DeviceRow> = sqlx::query_as(common::select_devices!("ORDER BY name COLLATE \"C\""))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.into_iter().map(common::device).collect()
    }

    async fn update_device(&self, device: &Device, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    // --- governance ------------------------------------------------------------------------

    async fn record_login(&self, user_id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        // Two nodes may report sign-ins out of order; the later time wins.
        let found = sqlx::query("UPDATE users SET last_login_at_us = GREATEST(last_login_at_us, $2) WHERE id = $1")
            .bind(user_id)
            .bind(micros(at))
            .execute(&self.pool)
            .await
            .map_err(err)?
            .rows_affected();
        if found == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn users_expired(&self, now: OffsetDateTime) -> Result<Vec<User>, StoreError> {
        let rows: Vec<common::UserRow> = sqlx::query_as(common::select_users!(
            "WHERE status = 'active' AND account_expires_us <= $1 ORDER BY username COLLATE \"C\""
        ))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(common::user).collect()
    }

    async fn users_dormant(&self, before: OffsetDateTime) -> Result<Vec<User>, StoreError> {
        let rows: Vec<common::UserRow> = sqlx::query_as(common::select_users!(
            "WHERE status = 'active' AND coalesce(last_login_at_us, created_at_us) < $1 ORDER BY username COLLATE \"C\""
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
            "WHERE (NOT $1 OR reviewed_at_us IS NULL) ORDER BY opened_at_us DESC, id COLLATE \"C\" DESC"
        ))
        .bind(pending_only)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.into_iter().map(governance::break_glass).collect()
    }

    async fn end_break_glass(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
             AND (ended_at_us IS NULL OR ended_at_us > $2) ORDER BY opened_at_us DESC, id COLLATE \"C\" DESC"
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
            "WHERE (NOT $1 OR status = 'pending') ORDER BY requested_at_us DESC, id COLLATE \"C\" DESC"
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(true)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_vendor(&self, vendor: &Vendor, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
            sqlx::query_as(governance::select_vendors!("ORDER BY name COLLATE \"C\""))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(governance::vendor).collect()
    }

    async fn update_vendor(&self, vendor: &Vendor, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn vendor_users(&self, name: &str) -> Result<Vec<User>, StoreError> {
        let rows: Vec<common::UserRow> =
            sqlx::query_as(common::select_users!("WHERE vendor = $1 ORDER BY username COLLATE \"C\""))
                .bind(name)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(common::user).collect()
    }

    async fn create_campaign(&self, campaign: &Campaign, items: &[Item], event: &AuditEvent) -> Result<(), StoreError> {
        governance::check_items(campaign, items)?;
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
            sqlx::query_as(governance::select_campaigns!("ORDER BY created_at_us DESC, id COLLATE \"C\" DESC"))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.into_iter().map(governance::campaign).collect()
    }

    async fn campaign_items(&self, campaign_id: &str) -> Result<Vec<Item>, StoreError> {
        let rows: Vec<governance::ItemRow> = sqlx::query_as(governance::select_items!(
            "WHERE campaign_id = $1 ORDER BY username COLLATE \"C\", role COLLATE \"C\", id COLLATE \"C\""
        ))
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await?;
            Ok(true)
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn close_campaign(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let closed = sqlx::query(governance::CLOSE_CAMPAIGN)
                .bind(id)
                .bind(micros(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            let closed = closed.rows_affected() == 1;
            if closed {
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let revoked =
                sqlx::query(scim::REVOKE_TOKEN).bind(id).bind(micros(now)).execute(&mut *tx).await.map_err(err)?;
            if revoked.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn create_scim_group(&self, group: &ScimGroup, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn delete_scim_group(&self, id: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let deleted = sqlx::query(scim::DELETE_GROUP).bind(id).execute(&mut *tx).await.map_err(err)?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    // --- identity lifecycle (L1-L3) ---

    async fn record_proofing(&self, proofing: &Proofing, event: &AuditEvent) -> Result<(), StoreError> {
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
            "WHERE ($1::text IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR expires_at_us < $2) \
             ORDER BY created_at_us, id COLLATE \"C\""
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }

    async fn open_recovery(&self, request: &RecoveryRequest, event: &AuditEvent) -> Result<(), StoreError> {
        if request.status != RecoveryStatus::Pending {
            return Err(StoreError::Malformed(format!("recovery request {} is not pending", request.id)));
        }
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
            "WHERE (NOT $1 OR status = 'pending') ORDER BY opened_at_us DESC, id COLLATE \"C\" DESC"
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
        let (mut tx, head) = self.begin_chain().await?;
        let r = async {
            let decided = query.execute(&mut *tx).await.map_err(err)?.rows_affected() == 1;
            if decided {
                append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
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
        let (mut tx, head) = self.begin_chain().await?;
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
            append_after(&mut tx, &self.node, head, std::slice::from_ref(event)).await?;
            bump_revision(&mut tx).await
        }
        .await;
        common::finish(tx, r, err).await
    }
}
