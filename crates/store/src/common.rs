//! What both backends share: turning rows into domain values, classifying errors, building
//! the embedded migrator, and finishing a transaction.

use std::net::IpAddr;

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::{Database, SqlSafeStr, Transaction};
use time::OffsetDateTime;
use wardgate_core::api_token::{ApiToken, Scope};
use wardgate_core::audit::{ChainHead, Checkpoint, StoredRecord};
use wardgate_core::device::{Device, Posture};
use wardgate_core::flow::{Flow, FlowKind};
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, User, Username};
use wardgate_core::keys::SigningKeyRecord;
use wardgate_core::lockout::Attempts;
use wardgate_core::login::Aal;
use wardgate_core::oidc::{AuthCode, Consent, Grant, LogoutNotice, OidcClient, OidcKey, RefreshToken};
use wardgate_core::policy::{PolicyVersion, VersionStatus};
use wardgate_core::session::Session;
use wardgate_core::{from_unix_micros, unix_micros};

use crate::{CodeRedemption, RefreshHolder, StoreError};

/// The migrator for one backend, built from SQL embedded at compile time (the `migrate!`
/// macro needs sqlx's `macros` feature, which this workspace leaves off).
pub(crate) fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, description.into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

pub(crate) fn migrate_error(e: MigrateError, classify: impl Fn(sqlx::Error) -> StoreError) -> StoreError {
    match e {
        MigrateError::VersionMissing(v) => StoreError::Corrupt(format!(
            "schema migration {v} was applied by a newer version of Wardgate than this one; upgrade Wardgate"
        )),
        MigrateError::VersionMismatch(v) => {
            StoreError::Corrupt(format!("schema migration {v} differs from the one this version of Wardgate applied"))
        }
        MigrateError::Dirty(v) => StoreError::Corrupt(format!("schema migration {v} was only partly applied")),
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => classify(e),
        other => StoreError::Unavailable(format!("schema migration failed: {other}")),
    }
}

/// The classification both backends agree on; each backend first picks out its own codes.
pub(crate) fn sqlx_error(e: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    match e {
        sqlx::Error::Database(d) => match d.kind() {
            ErrorKind::UniqueViolation
                if d.constraint() == Some("users_username_key") || d.message().contains("users.username") =>
            {
                StoreError::UsernameTaken
            }
            // A reference to a row that does not exist (a user, an OIDC client or grant).
            ErrorKind::ForeignKeyViolation => StoreError::NotFound,
            ErrorKind::UniqueViolation | ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                StoreError::Malformed(d.message().to_owned())
            }
            _ => StoreError::Unavailable(d.to_string()),
        },
        sqlx::Error::RowNotFound => StoreError::NotFound,
        e @ (sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => StoreError::Malformed(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// For inserts whose key the caller chose: a duplicate is [`StoreError::Conflict`].
pub(crate) fn conflict(e: sqlx::Error, classify: fn(sqlx::Error) -> StoreError) -> StoreError {
    match e.as_database_error().map(|d| d.kind()) {
        Some(sqlx::error::ErrorKind::UniqueViolation) => StoreError::Conflict,
        _ => classify(e),
    }
}

/// Committed changes made through any store in this process; see [`crate::changes`].
static CHANGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn changes() -> u64 {
    CHANGES.load(std::sync::atomic::Ordering::Acquire)
}

/// Commits on success and counts the change (after the commit, so that whatever is read
/// after noting the count and before the next change is current); on failure rolls back
/// now rather than leaving the rollback to the pool, so the write lock is released before
/// the caller sees the error.
pub(crate) async fn finish<DB: Database, T>(
    tx: Transaction<'static, DB>,
    result: Result<T, StoreError>,
    classify: fn(sqlx::Error) -> StoreError,
) -> Result<T, StoreError> {
    let done = finish_quiet(tx, result, classify).await;
    if done.is_ok() {
        CHANGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
    done
}

/// [`finish`] for writes that change no account and no session's validity — activity
/// times, the audit and token batch — and so must not empty the caches that watch
/// [`crate::changes`].
pub(crate) async fn finish_quiet<DB: Database, T>(
    tx: Transaction<'static, DB>,
    result: Result<T, StoreError>,
    classify: fn(sqlx::Error) -> StoreError,
) -> Result<T, StoreError> {
    match result {
        Ok(v) => {
            tx.commit().await.map_err(classify)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed; the connection is discarded");
            }
            Err(e)
        }
    }
}

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    unix_micros(t)
}

/// Reads the columns `first..` of `row` as a tuple, each column's type taken from the tuple's.
macro_rules! columns_at {
    ($row:expr, $first:expr; $($i:literal),+) => {
        ( $( $row.try_get($first + $i)?, )+ )
    };
}

pub(crate) fn bytes<const N: usize>(v: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    let len = v.len();
    v.try_into().map_err(|_| StoreError::Malformed(format!("{what} is {len} bytes, expected {N}")))
}

pub(crate) fn head((seq, hash): (i64, Vec<u8>), what: &str) -> Result<ChainHead, StoreError> {
    Ok(ChainHead { seq, hash: bytes(hash, what)? })
}

pub(crate) type RecordRow = (i64, i64, String, String, Vec<u8>);

pub(crate) fn record((seq, ts_us, event_type, body, hash): RecordRow) -> StoredRecord {
    StoredRecord { seq, ts_us, event_type, body, hash }
}

pub(crate) type CheckpointRow = (i64, Vec<u8>, i64, String, String, Vec<u8>);

pub(crate) fn checkpoint((seq, hash, ts_us, node, key_id, signature): CheckpointRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        seq,
        hash: bytes(hash, "checkpoint hash")?,
        ts_us,
        node,
        key_id,
        signature: bytes(signature, "checkpoint signature")?,
    })
}

// Each `select_*!` macro spells the column list of one row type, in that type's order, so
// that both backends read a table the same way and a column cannot be added to one without
// the other. They expand to literals, so the statements stay `&'static str`.

macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, display_name, email, employee_id, roles, status, failed_attempts, \
             last_failure_at_us, locked_until_us, created_at_us, privileged, role_expiry, vendor, \
             account_expires_us, manager, last_login_at_us FROM users ",
            $rest
        )
    };
}
pub(crate) use select_users;

/// The columns of [`select_users`], in order. A struct rather than a tuple because there
/// are more of them than sqlx decodes into a tuple; it reads them by position, so that a
/// join can read an account's columns after another row's (see [`session_and_user`]).
pub(crate) struct UserRow {
    id: String,
    username: String,
    display_name: String,
    email: String,
    employee_id: Option<String>,
    roles: String,
    status: String,
    failures: i32,
    last_failure_at_us: Option<i64>,
    locked_until_us: Option<i64>,
    created_at_us: i64,
    privileged: bool,
    role_expiry: String,
    vendor: Option<String>,
    account_expires_us: Option<i64>,
    manager: Option<String>,
    last_login_at_us: Option<i64>,
}

impl UserRow {
    /// Reads the account's columns starting at column `first`: `None` when its id column is
    /// NULL, as for an account on the right of a `LEFT JOIN` that had none.
    fn read<R>(row: &R, first: usize) -> Result<Option<Self>, sqlx::Error>
    where
        R: sqlx::Row,
        usize: sqlx::ColumnIndex<R>,
        String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let Some(id) = row.try_get::<Option<String>, _>(first)? else { return Ok(None) };
        Ok(Some(Self {
            id,
            username: row.try_get(first + 1)?,
            display_name: row.try_get(first + 2)?,
            email: row.try_get(first + 3)?,
            employee_id: row.try_get(first + 4)?,
            roles: row.try_get(first + 5)?,
            status: row.try_get(first + 6)?,
            failures: row.try_get(first + 7)?,
            last_failure_at_us: row.try_get(first + 8)?,
            locked_until_us: row.try_get(first + 9)?,
            created_at_us: row.try_get(first + 10)?,
            privileged: row.try_get(first + 11)?,
            role_expiry: row.try_get(first + 12)?,
            vendor: row.try_get(first + 13)?,
            account_expires_us: row.try_get(first + 14)?,
            manager: row.try_get(first + 15)?,
            last_login_at_us: row.try_get(first + 16)?,
        }))
    }
}

/// What decoding says of a row whose account must be there and is not.
fn no_account(first: usize) -> sqlx::Error {
    sqlx::Error::ColumnDecode { index: first.to_string(), source: "the account id is NULL".into() }
}

impl<'r, R> sqlx::FromRow<'r, R> for UserRow
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    bool: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Self::read(row, 0)?.ok_or_else(|| no_account(0))
    }
}

pub(crate) fn user(row: UserRow) -> Result<User, StoreError> {
    let UserRow {
        id,
        username,
        display_name,
        email,
        employee_id,
        roles,
        status,
        failures,
        last_failure_at_us,
        locked_until_us,
        created_at_us,
        privileged,
        role_expiry,
        vendor,
        account_expires_us,
        manager,
        last_login_at_us,
    } = row;
    let malformed = |what: &str| StoreError::Malformed(format!("user {id} has {what}"));
    let username = Username::parse(&username).map_err(|_| malformed("an invalid username"))?;
    let roles: Vec<String> =
        serde_json::from_str(&roles).map_err(|_| malformed("a roles column that is not a list"))?;
    let status = AccountStatus::parse(&status).ok_or_else(|| malformed("an unknown status"))?;
    let consecutive_failures = u32::try_from(failures).map_err(|_| malformed("a negative failure count"))?;
    let role_expiry: std::collections::BTreeMap<String, i64> =
        serde_json::from_str(&role_expiry).map_err(|_| malformed("a role_expiry column that is not an object"))?;
    let manager =
        manager.map(|m| Username::parse(&m)).transpose().map_err(|_| malformed("a manager that is not a username"))?;
    Ok(User {
        id,
        username,
        display_name,
        email,
        employee_id,
        roles,
        role_expiry: role_expiry.into_iter().map(|(r, us)| (r, from_unix_micros(us))).collect(),
        privileged,
        status,
        attempts: Attempts {
            consecutive_failures,
            last_failure_at: last_failure_at_us.map(from_unix_micros),
            locked_until: locked_until_us.map(from_unix_micros),
        },
        created_at: from_unix_micros(created_at_us),
        vendor,
        account_expires: account_expires_us.map(from_unix_micros),
        manager,
        last_login_at: last_login_at_us.map(from_unix_micros),
    })
}

/// Role expiry as stored: a JSON object of role to microseconds since the epoch.
pub(crate) fn role_expiry_json(user: &User) -> String {
    let m: serde_json::Map<String, serde_json::Value> =
        user.role_expiry.iter().map(|(r, t)| (r.clone(), crate::common::micros_value(*t))).collect();
    serde_json::Value::Object(m).to_string()
}

fn micros_value(t: time::OffsetDateTime) -> serde_json::Value {
    serde_json::Value::from(wardgate_core::unix_micros(t))
}

/// Roles as stored: a JSON list, sorted and without duplicates whatever the caller passed.
pub(crate) fn roles_json(roles: &[String]) -> String {
    let mut sorted: Vec<&str> = roles.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    serde_json::Value::from(sorted).to_string()
}

/// The failure count as the `INTEGER` column holds it.
pub(crate) fn failures(a: &Attempts) -> Result<i32, StoreError> {
    i32::try_from(a.consecutive_failures)
        .map_err(|_| StoreError::Malformed(format!("{} consecutive failures cannot be stored", a.consecutive_failures)))
}

macro_rules! select_factors {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, kind, label, secret, params, counter, credential_id, created_at_us, \
             last_used_at_us, expires_at_us, enrolled_by FROM factors ",
            $rest
        )
    };
}
pub(crate) use select_factors;

pub(crate) type FactorRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

pub(crate) fn factor(
    (
        id,
        user_id,
        kind,
        label,
        secret,
        params,
        counter,
        credential_id,
        created_at_us,
        last_used_at_us,
        expires_at_us,
        enrolled_by,
    ): FactorRow,
) -> Result<Factor, StoreError> {
    let kind = FactorKind::parse(&kind)
        .ok_or_else(|| StoreError::Malformed(format!("factor {id} has unknown kind {kind:?}")))?;
    let params = serde_json::from_str(&params)
        .map_err(|_| StoreError::Malformed(format!("factor {id} has parameters that are not JSON")))?;
    Ok(Factor {
        id,
        user_id,
        kind,
        label,
        secret,
        params,
        counter,
        credential_id,
        created_at: from_unix_micros(created_at_us),
        last_used_at: last_used_at_us.map(from_unix_micros),
        expires_at: expires_at_us.map(from_unix_micros),
        enrolled_by,
    })
}

macro_rules! select_flows {
    ($rest:literal) => {
        concat!("SELECT digest, kind, user_id, state, version, created_at_us, expires_at_us FROM flows ", $rest)
    };
}
pub(crate) use select_flows;

pub(crate) type FlowRow = (Vec<u8>, String, Option<String>, String, i64, i64, i64);

pub(crate) fn flow(
    (digest, kind, user_id, state, version, created_at_us, expires_at_us): FlowRow,
) -> Result<Flow, StoreError> {
    let kind = FlowKind::parse(&kind).ok_or_else(|| StoreError::Malformed(format!("flow of unknown kind {kind:?}")))?;
    let state =
        serde_json::from_str(&state).map_err(|_| StoreError::Malformed("flow state that is not JSON".into()))?;
    Ok(Flow {
        id_digest: bytes(digest, "flow digest")?,
        kind,
        user_id,
        state,
        version,
        created_at: from_unix_micros(created_at_us),
        expires_at: from_unix_micros(expires_at_us),
    })
}

macro_rules! select_sessions {
    ($rest:literal) => {
        concat!(
            "SELECT digest, id, user_id, aal, amr, correlation_id, client_ip, user_agent, created_at_us, \
             last_seen_at_us, revoked_at_us, idle_timeout_us, lifetime_us FROM sessions ",
            $rest
        )
    };
}
pub(crate) use select_sessions;

/// A session's columns followed by its account's (as [`select_users`] names them).
/// A session's columns under the alias `s`, in [`SessionRow`] order.
macro_rules! session_columns_s {
    () => {
        "s.digest, s.id, s.user_id, s.aal, s.amr, s.correlation_id, s.client_ip, s.user_agent, \
         s.created_at_us, s.last_seen_at_us, s.revoked_at_us, s.idle_timeout_us, s.lifetime_us"
    };
}

/// An account's columns under the alias `u`, in [`UserRow`] order.
macro_rules! user_columns_u {
    () => {
        "u.id, u.username, u.display_name, u.email, u.employee_id, u.roles, u.status, u.failed_attempts, \
         u.last_failure_at_us, u.locked_until_us, u.created_at_us, u.privileged, u.role_expiry, u.vendor, \
         u.account_expires_us, u.manager, u.last_login_at_us"
    };
}

macro_rules! select_session_and_user {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            $crate::common::session_columns_s!(),
            ", ",
            $crate::common::user_columns_u!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id ",
            $rest
        )
    };
}
pub(crate) use select_session_and_user;
pub(crate) use session_columns_s;
pub(crate) use user_columns_u;

/// Decodes a row of [`select_session_and_user`]: the session's thirteen columns are a
/// [`SessionRow`], the account's follow them.
pub(crate) fn session_and_user<R>(row: &R) -> Result<(Session, User), StoreError>
where
    R: sqlx::Row,
    SessionRow: for<'r> sqlx::FromRow<'r, R>,
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let bad = |e: sqlx::Error| StoreError::Malformed(format!("session row: {e}"));
    let session = session(<SessionRow as sqlx::FromRow<R>>::from_row(row).map_err(bad)?)?;
    let u = UserRow::read(row, 13).and_then(|u| u.ok_or_else(|| no_account(13))).map_err(bad)?;
    Ok((session, user(u)?))
}

pub(crate) type SessionRow = (
    Vec<u8>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn session(
    (
        digest,
        id,
        user_id,
        aal,
        amr,
        correlation_id,
        client_ip,
        user_agent,
        created_at_us,
        last_seen_at_us,
        revoked_at_us,
        idle_timeout_us,
        lifetime_us,
    ): SessionRow,
) -> Result<Session, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("session {id} has {what}"));
    let aal: Aal =
        serde_json::from_value(serde_json::Value::String(aal)).map_err(|_| malformed("an unknown assurance level"))?;
    let amr: Vec<String> = serde_json::from_str(&amr).map_err(|_| malformed("an amr column that is not a list"))?;
    let client_ip = client_ip
        .map(|ip| ip.parse::<IpAddr>())
        .transpose()
        .map_err(|_| malformed("a client address that is not an IP address"))?;
    Ok(Session {
        id_digest: bytes(digest, "session digest")?,
        id,
        user_id,
        aal,
        amr,
        created_at: from_unix_micros(created_at_us),
        last_seen_at: from_unix_micros(last_seen_at_us),
        revoked_at: revoked_at_us.map(from_unix_micros),
        client_ip,
        user_agent,
        correlation_id,
        limits: match (idle_timeout_us, lifetime_us) {
            (Some(idle), Some(life)) => Some(wardgate_core::session::SessionPolicy {
                idle_timeout: time::Duration::microseconds(idle),
                absolute_lifetime: time::Duration::microseconds(life),
            }),
            _ => None,
        },
    })
}

/// `amr` as stored: a JSON list of RFC 8176 values.
pub(crate) fn amr_json(amr: &[String]) -> String {
    serde_json::Value::from(amr).to_string()
}

macro_rules! select_api_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, digest, label, scopes, created_at_us, expires_at_us, revoked_at_us FROM api_tokens ",
            $rest
        )
    };
}
pub(crate) use select_api_tokens;

pub(crate) type ApiTokenRow = (String, String, Vec<u8>, String, String, i64, i64, Option<i64>);

pub(crate) fn api_token(
    (id, user_id, digest, label, scopes, created_at_us, expires_at_us, revoked_at_us): ApiTokenRow,
) -> Result<ApiToken, StoreError> {
    let malformed = || StoreError::Malformed(format!("API token {id} has scopes that are not a list of known scopes"));
    let names: Vec<String> = serde_json::from_str(&scopes).map_err(|_| malformed())?;
    let scopes = names.iter().map(|s| Scope::parse(s)).collect::<Option<Vec<_>>>().ok_or_else(malformed)?;
    Ok(ApiToken {
        digest: bytes(digest, "API token digest")?,
        id,
        user_id,
        label,
        scopes,
        created_at: from_unix_micros(created_at_us),
        expires_at: from_unix_micros(expires_at_us),
        revoked_at: revoked_at_us.map(from_unix_micros),
    })
}

/// Scopes as stored: a JSON list of their stable names.
pub(crate) fn scopes_json(scopes: &[Scope]) -> String {
    serde_json::Value::from(scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>()).to_string()
}

pub(crate) type SigningKeyRow = (String, String, Vec<u8>, String, i64);

pub(crate) fn signing_key(
    (id, purpose, public_key, private_sealed, created_at_us): SigningKeyRow,
) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        public_key: bytes(public_key, "signing key public half")?,
        id,
        purpose,
        private_sealed,
        created_at: from_unix_micros(created_at_us),
    })
}

// --- OpenID Connect ------------------------------------------------------------------------

/// A list of strings as stored: a JSON array, in the caller's order.
pub(crate) fn list_json(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

fn list(json: &str, malformed: impl FnOnce() -> StoreError) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|_| malformed())
}

/// A lifetime as the `INTEGER` column holds it.
pub(crate) fn ttl(secs: u32) -> i64 {
    i64::from(secs)
}

macro_rules! select_clients {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, redirect_uris, post_logout_redirect_uris, secret_digest, scopes, first_party, \
             backchannel_logout_uri, access_token_ttl_secs, refresh_token_ttl_secs, created_at_us, jwks, signing_alg \
             FROM oidc_clients ",
            $rest
        )
    };
}
pub(crate) use select_clients;

pub(crate) type ClientRow = (
    String,
    String,
    String,
    String,
    Option<Vec<u8>>,
    String,
    bool,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
    String,
);

pub(crate) fn client(
    (
        id,
        name,
        redirect_uris,
        post_logout_redirect_uris,
        secret_digest,
        scopes,
        first_party,
        backchannel_logout_uri,
        access_token_ttl_secs,
        refresh_token_ttl_secs,
        created_at_us,
        jwks,
        signing_alg,
    ): ClientRow,
) -> Result<OidcClient, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("OIDC client {id} has {what}"));
    let secs = |v: i64| u32::try_from(v).map_err(|_| malformed("a token lifetime out of range"));
    Ok(OidcClient {
        name,
        redirect_uris: list(&redirect_uris, || malformed("redirect URIs that are not a list"))?,
        post_logout_redirect_uris: list(&post_logout_redirect_uris, || {
            malformed("post-logout redirect URIs that are not a list")
        })?,
        secret_digest: secret_digest.map(|d| bytes(d, "client secret digest")).transpose()?,
        scopes: list(&scopes, || malformed("scopes that are not a list"))?,
        first_party,
        backchannel_logout_uri,
        access_token_ttl_secs: secs(access_token_ttl_secs)?,
        refresh_token_ttl_secs: secs(refresh_token_ttl_secs)?,
        created_at: from_unix_micros(created_at_us),
        jwks,
        signing_alg,
        id,
    })
}

macro_rules! select_consents {
    ($rest:literal) => {
        concat!("SELECT user_id, client_id, scopes, granted_at_us FROM oidc_consents ", $rest)
    };
}
pub(crate) use select_consents;

pub(crate) type ConsentRow = (String, String, String, i64);

pub(crate) fn consent((user_id, client_id, scopes, granted_at_us): ConsentRow) -> Result<Consent, StoreError> {
    let scopes = list(&scopes, || {
        StoreError::Malformed(format!("consent of {user_id} to client {client_id} has scopes that are not a list"))
    })?;
    Ok(Consent { user_id, client_id, scopes, granted_at: from_unix_micros(granted_at_us) })
}

/// The columns of a [`CodeRow`], in its order.
macro_rules! code_columns {
    () => {
        "digest, client_id, user_id, session_id, redirect_uri, code_challenge, nonce, scopes, acr, amr, \
         auth_time_us, correlation_id, created_at_us, expires_at_us, grant_id"
    };
}
pub(crate) use code_columns;

macro_rules! select_codes {
    ($rest:literal) => {
        concat!("SELECT ", $crate::common::code_columns!(), " FROM oidc_codes ", $rest)
    };
}
pub(crate) use select_codes;

pub(crate) type CodeRow = (
    Vec<u8>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    Option<String>,
);

/// A code and the account it was issued to (`NULL` columns if that is gone), for
/// [`code_and_user`].
macro_rules! select_code_and_user {
    ($rest:literal) => {
        concat!(
            "SELECT c.digest, c.client_id, c.user_id, c.session_id, c.redirect_uri, c.code_challenge, c.nonce, \
             c.scopes, c.acr, c.amr, c.auth_time_us, c.correlation_id, c.created_at_us, c.expires_at_us, \
             c.grant_id, ",
            $crate::common::user_columns_u!(),
            " FROM oidc_codes c LEFT JOIN users u ON u.id = c.user_id ",
            $rest
        )
    };
}
pub(crate) use select_code_and_user;

/// Decodes a row of [`select_code_and_user`]: the code's fifteen columns, then the account's.
pub(crate) fn code_and_user<R>(row: &R) -> Result<(AuthCode, Option<User>), StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Vec<u8>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    const USER: usize = 15;
    let read = || -> Result<_, sqlx::Error> {
        let code: CodeRow = columns_at!(row, 0; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
        let user = UserRow::read(row, USER)?;
        Ok((code, user))
    };
    let (code, user_row) = read().map_err(|e| StoreError::Malformed(format!("code row: {e}")))?;
    Ok((auth_code(code)?, user_row.map(user).transpose()?))
}

pub(crate) fn auth_code(
    (
        digest,
        client_id,
        user_id,
        session_id,
        redirect_uri,
        code_challenge,
        nonce,
        scopes,
        acr,
        amr,
        auth_time_us,
        correlation_id,
        created_at_us,
        expires_at_us,
        grant_id,
    ): CodeRow,
) -> Result<AuthCode, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("authorization code of client {client_id} has {what}"));
    Ok(AuthCode {
        digest: bytes(digest, "authorization code digest")?,
        scopes: list(&scopes, || malformed("scopes that are not a list"))?,
        amr: list(&amr, || malformed("an amr column that is not a list"))?,
        client_id,
        user_id,
        session_id,
        redirect_uri,
        code_challenge,
        nonce,
        acr,
        auth_time: from_unix_micros(auth_time_us),
        correlation_id,
        created_at: from_unix_micros(created_at_us),
        expires_at: from_unix_micros(expires_at_us),
        grant_id,
    })
}

// The grant's columns alone, for `RETURNING` as well as `SELECT`.
macro_rules! grant_columns {
    () => {
        "id, client_id, user_id, session_id, scopes, acr, amr, auth_time_us, correlation_id, created_at_us, \
         revoked_at_us"
    };
}
pub(crate) use grant_columns;

macro_rules! select_grants {
    ($rest:literal) => {
        concat!("SELECT ", $crate::common::grant_columns!(), " FROM oidc_grants ", $rest)
    };
}
pub(crate) use select_grants;

pub(crate) type GrantRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<i64>,
    String,
    i64,
    Option<i64>,
);

pub(crate) fn grant(
    (id, client_id, user_id, session_id, scopes, acr, amr, auth_time_us, correlation_id, created_at_us, revoked_at_us): GrantRow,
) -> Result<Grant, StoreError> {
    let malformed = |what: &str| StoreError::Malformed(format!("grant {id} has {what}"));
    Ok(Grant {
        scopes: list(&scopes, || malformed("scopes that are not a list"))?,
        amr: list(&amr, || malformed("an amr column that is not a list"))?,
        id,
        client_id,
        user_id,
        session_id,
        acr,
        auth_time: auth_time_us.map(from_unix_micros),
        correlation_id,
        created_at: from_unix_micros(created_at_us),
        revoked_at: revoked_at_us.map(from_unix_micros),
    })
}

/// Grants as a caller reads them: oldest first (a `RETURNING` list comes in no set order).
pub(crate) fn grants_in_order(rows: Vec<GrantRow>) -> Result<Vec<Grant>, StoreError> {
    let mut grants = rows.into_iter().map(grant).collect::<Result<Vec<_>, _>>()?;
    grants.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(grants)
}

macro_rules! select_refresh_tokens {
    ($rest:literal) => {
        concat!("SELECT digest, grant_id, created_at_us, expires_at_us, used_at_us FROM oidc_refresh_tokens ", $rest)
    };
}
pub(crate) use select_refresh_tokens;

pub(crate) type RefreshTokenRow = (Vec<u8>, String, i64, i64, Option<i64>);

/// A refresh token, its grant, and the session and account the grant names (`NULL`
/// columns where there is none), for [`refresh_holder`].
macro_rules! select_refresh_holder {
    ($rest:literal) => {
        concat!(
            "SELECT t.digest, t.grant_id, t.created_at_us, t.expires_at_us, t.used_at_us, g.id, g.client_id, \
             g.user_id, g.session_id, g.scopes, g.acr, g.amr, g.auth_time_us, g.correlation_id, g.created_at_us, \
             g.revoked_at_us, ",
            $crate::common::session_columns_s!(),
            ", ",
            $crate::common::user_columns_u!(),
            " FROM oidc_refresh_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
             LEFT JOIN sessions s ON s.id = g.session_id LEFT JOIN users u ON u.id = g.user_id ",
            $rest
        )
    };
}
pub(crate) use select_refresh_holder;

/// Decodes a row of [`select_refresh_holder`]: the token's five columns, the grant's eleven,
/// the session's thirteen and the account's.
pub(crate) fn refresh_holder<R>(row: &R) -> Result<RefreshHolder, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Vec<u8>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    const GRANT: usize = 5;
    const SESSION: usize = 16;
    const USER: usize = 29;
    let read = || -> Result<_, sqlx::Error> {
        let token: RefreshTokenRow = columns_at!(row, 0; 0, 1, 2, 3, 4);
        let grant: GrantRow = columns_at!(row, GRANT; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
        // A missing session or account reads as NULL in its key column.
        let session: Option<SessionRow> = match row.try_get::<Option<String>, _>(SESSION + 1)? {
            Some(_) => Some(columns_at!(row, SESSION; 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)),
            None => None,
        };
        let user = UserRow::read(row, USER)?;
        Ok((token, grant, session, user))
    };
    let (token, grant_row, session_row, user_row) =
        read().map_err(|e| StoreError::Malformed(format!("refresh token row: {e}")))?;
    Ok(RefreshHolder {
        token: refresh_token(token)?,
        grant: grant(grant_row)?,
        session: session_row.map(session).transpose()?,
        user: user_row.map(user).transpose()?,
    })
}

pub(crate) fn refresh_token(
    (digest, grant_id, created_at_us, expires_at_us, used_at_us): RefreshTokenRow,
) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        digest: bytes(digest, "refresh token digest")?,
        grant_id,
        created_at: from_unix_micros(created_at_us),
        expires_at: from_unix_micros(expires_at_us),
        used_at: used_at_us.map(from_unix_micros),
    })
}

/// What a redemption found: `redeemed` says whether this call's conditional update marked
/// the code used, `code` is the code as it now stands.
pub(crate) fn redemption(redeemed: bool, code: Option<AuthCode>) -> CodeRedemption {
    match code {
        None => CodeRedemption::Unknown,
        Some(c) if redeemed => CodeRedemption::Fresh(c),
        // Used before, by this client or a thief: RFC 6749 §4.1.2 says revoke what it gave.
        Some(c) if c.grant_id.is_some() => CodeRedemption::Reused(c),
        // Unused but expired.
        Some(_) => CodeRedemption::Unknown,
    }
}

/// What a presented refresh token turns out to be, before anything is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presented {
    /// May be exchanged for its successor.
    Live,
    /// Exchanged before: a replay, so the grant must be revoked.
    Used,
    Unknown,
}

pub(crate) fn presented(token: &RefreshToken, grant: &Grant, now: OffsetDateTime) -> Presented {
    if grant.revoked_at.is_some() {
        // Nothing left to protect, and a second revocation would only add a record.
        Presented::Unknown
    } else if token.used_at.is_some() {
        // Checked before expiry: a replay is evidence of theft whenever it comes, and the
        // grant's newer tokens are still live (RFC 9700 §4.14.2).
        Presented::Used
    } else if now < token.expires_at {
        Presented::Live
    } else {
        Presented::Unknown
    }
}

/// The first refresh token stored with a grant must belong to it.
pub(crate) fn check_first_refresh(grant: &Grant, refresh: Option<&RefreshToken>) -> Result<(), StoreError> {
    match refresh {
        Some(t) if t.grant_id != grant.id => Err(StoreError::Malformed(format!(
            "a refresh token of grant {} cannot be stored with grant {}",
            t.grant_id, grant.id
        ))),
        _ => Ok(()),
    }
}

macro_rules! select_oidc_keys {
    ($rest:literal) => {
        concat!("SELECT id, algorithm, public_jwk, private_sealed, created_at_us, retired_at_us FROM oidc_keys ", $rest)
    };
}
pub(crate) use select_oidc_keys;

pub(crate) type OidcKeyRow = (String, String, String, String, i64, Option<i64>);

pub(crate) fn oidc_key(
    (id, algorithm, public_jwk, private_sealed, created_at_us, retired_at_us): OidcKeyRow,
) -> OidcKey {
    OidcKey {
        id,
        algorithm,
        public_jwk,
        private_sealed,
        created_at: from_unix_micros(created_at_us),
        retired_at: retired_at_us.map(from_unix_micros),
    }
}

// --- back-channel logout notices -----------------------------------------------------------

// The notice's columns alone, for `RETURNING` as well as `SELECT`.
macro_rules! notice_columns {
    () => {
        "id, session_id, client_id, user_id, correlation_id, reason, created_at_us, attempts, next_attempt_at_us, \
         claimed_by, claimed_until_us, last_error, delivered_at_us, gave_up_at_us"
    };
}
pub(crate) use notice_columns;

macro_rules! select_notices {
    ($rest:literal) => {
        concat!("SELECT ", $crate::common::notice_columns!(), " FROM logout_notices ", $rest)
    };
}
pub(crate) use select_notices;

pub(crate) type NoticeRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn notice(
    (
        id,
        session_id,
        client_id,
        user_id,
        correlation_id,
        reason,
        created_at_us,
        attempts,
        next_attempt_at_us,
        claimed_by,
        claimed_until_us,
        last_error,
        delivered_at_us,
        gave_up_at_us,
    ): NoticeRow,
) -> Result<LogoutNotice, StoreError> {
    let attempts = u32::try_from(attempts)
        .map_err(|_| StoreError::Malformed(format!("logout notice {id} has an attempt count out of range")))?;
    Ok(LogoutNotice {
        id,
        session_id,
        client_id,
        user_id,
        correlation_id,
        reason,
        created_at: from_unix_micros(created_at_us),
        attempts,
        next_attempt_at: from_unix_micros(next_attempt_at_us),
        claimed_by,
        claimed_until: claimed_until_us.map(from_unix_micros),
        last_error,
        delivered_at: delivered_at_us.map(from_unix_micros),
        gave_up_at: gave_up_at_us.map(from_unix_micros),
    })
}

/// Notices in queue order (a `RETURNING` list comes in no set order).
pub(crate) fn notices_in_order(rows: Vec<NoticeRow>) -> Result<Vec<LogoutNotice>, StoreError> {
    let mut notices = rows.into_iter().map(notice).collect::<Result<Vec<_>, _>>()?;
    notices.sort_by_key(|n| (n.next_attempt_at, n.id));
    Ok(notices)
}

/// One notice per client among `revoked` (a session's grants, just revoked), in the order
/// the clients first appear: `(client_id, user_id, correlation_id)`. Whether the client
/// wants one (has a back-channel URI) the insert decides, in the same transaction.
pub(crate) fn notices_owed(revoked: &[Grant]) -> Vec<(&str, Option<&str>, &str)> {
    let mut seen = std::collections::BTreeSet::new();
    revoked
        .iter()
        .filter(|g| seen.insert(g.client_id.as_str()))
        .map(|g| (g.client_id.as_str(), g.user_id.as_deref(), g.correlation_id.as_str()))
        .collect()
}

/// Queues a notice for one client of an ended session, if the client has a back-channel
/// URI. `$1` session, `$2` client, `$3` user, `$4` correlation id, `$5` reason, `$6` now.
pub(crate) const QUEUE_NOTICE: &str = "INSERT INTO logout_notices (session_id, client_id, user_id, correlation_id, \
     reason, created_at_us, attempts, next_attempt_at_us) \
     SELECT $1, id, $3, $4, $5, $6, 0, $6 FROM oidc_clients WHERE id = $2 AND backchannel_logout_uri IS NOT NULL";

/// Sessions with a live grant that have ended without their grants: `$1` last seen at or
/// before this (idle timeout), `$2` created at or before this (lifetime), `$3` revoked
/// before this, `$4` the limit. Driven by the live grants (a partial index), not by the
/// sessions: sessions that expired without a grant are never revoked and pile up.
macro_rules! sessions_to_end_sql {
    () => {
        $crate::common::select_sessions!(
            "WHERE id IN (SELECT session_id FROM oidc_grants WHERE revoked_at_us IS NULL AND session_id IS NOT NULL) \
             AND ((revoked_at_us IS NULL AND (last_seen_at_us + COALESCE(idle_timeout_us, $2) <= $1 \
             OR created_at_us + COALESCE(lifetime_us, $3) <= $1)) OR revoked_at_us < $4) \
             ORDER BY last_seen_at_us, id LIMIT $5"
        )
    };
}
pub(crate) use sessions_to_end_sql;

/// `$1` the node, `$2` now, `$3` the lease's end, `$4` the limit. The backend adds its
/// locking to the inner select.
macro_rules! claim_notices_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE logout_notices SET claimed_by = $1, claimed_until_us = $3 WHERE id IN (\
             SELECT id FROM logout_notices WHERE delivered_at_us IS NULL AND gave_up_at_us IS NULL \
             AND next_attempt_at_us <= $2 AND (claimed_until_us IS NULL OR claimed_until_us <= $2) \
             ORDER BY next_attempt_at_us, id LIMIT $4 ",
            $lock,
            ") RETURNING ",
            $crate::common::notice_columns!()
        )
    };
}
pub(crate) use claim_notices_sql;

/// `$1` now, `$2` the node, `$3` the id.
pub(crate) const NOTICE_DELIVERED: &str = "UPDATE logout_notices SET attempts = attempts + 1, delivered_at_us = $1, \
     claimed_by = NULL, claimed_until_us = NULL \
     WHERE id = $3 AND claimed_by = $2 AND delivered_at_us IS NULL AND gave_up_at_us IS NULL";

/// `$1` now, `$2` the node, `$3` the id, `$4` the error, `$5` the retry time (NULL: give up).
pub(crate) const NOTICE_FAILED: &str = "UPDATE logout_notices SET attempts = attempts + 1, last_error = $4, \
     next_attempt_at_us = coalesce($5, next_attempt_at_us), \
     gave_up_at_us = CASE WHEN $5 IS NULL THEN $1 END, claimed_by = NULL, claimed_until_us = NULL \
     WHERE id = $3 AND claimed_by = $2 AND delivered_at_us IS NULL AND gave_up_at_us IS NULL";

/// Grants housekeeping deletes, `$1` being the cut-off: revoked before it, or made by
/// client credentials (no session, no refresh token) with their access token expired
/// before it.
macro_rules! purgeable_grants {
    () => {
        "(revoked_at_us < $1 OR (revoked_at_us IS NULL AND session_id IS NULL \
         AND created_at_us + 1000000 * (SELECT c.access_token_ttl_secs FROM oidc_clients c \
         WHERE c.id = oidc_grants.client_id) < $1 \
         AND NOT EXISTS (SELECT 1 FROM oidc_refresh_tokens t WHERE t.grant_id = oidc_grants.id)))"
    };
}

/// [`crate::Store::purge_oidc_history`], statement by statement, in this order (a grant's
/// refresh tokens before it, codes once the grants they name are gone), `$1` the cut-off.
pub(crate) const PURGE_OIDC: [(PurgeKind, &str); 5] = [
    (
        PurgeKind::RefreshTokens,
        concat!(
            "DELETE FROM oidc_refresh_tokens WHERE grant_id IN (SELECT id FROM oidc_grants WHERE ",
            purgeable_grants!(),
            ")"
        ),
    ),
    (PurgeKind::Grants, concat!("DELETE FROM oidc_grants WHERE ", purgeable_grants!())),
    (PurgeKind::RefreshTokens, "DELETE FROM oidc_refresh_tokens WHERE expires_at_us < $1 AND used_at_us IS NULL"),
    (
        PurgeKind::Codes,
        "DELETE FROM oidc_codes WHERE expires_at_us < $1 AND (grant_id IS NULL OR NOT EXISTS \
         (SELECT 1 FROM oidc_grants g WHERE g.id = oidc_codes.grant_id AND g.revoked_at_us IS NULL))",
    ),
    (PurgeKind::Notices, "DELETE FROM logout_notices WHERE coalesce(delivered_at_us, gave_up_at_us) < $1"),
];

#[derive(Debug, Clone, Copy)]
pub(crate) enum PurgeKind {
    Notices,
    Codes,
    RefreshTokens,
    Grants,
}

impl PurgeKind {
    pub(crate) fn count(self, purged: &mut crate::OidcPurged, n: u64) {
        match self {
            PurgeKind::Notices => purged.notices += n,
            PurgeKind::Codes => purged.codes += n,
            PurgeKind::RefreshTokens => purged.refresh_tokens += n,
            PurgeKind::Grants => purged.grants += n,
        }
    }
}

// --- access policy -------------------------------------------------------------------------

// A version's columns alone, for `RETURNING` as well as `SELECT`.
macro_rules! policy_columns {
    () => {
        "number, source, author, reason, proposed_at_us, restores, status, approved_by, approved_at_us"
    };
}
pub(crate) use policy_columns;

macro_rules! select_policy_versions {
    ($rest:literal) => {
        concat!("SELECT ", $crate::common::policy_columns!(), " FROM policy_versions ", $rest)
    };
}
pub(crate) use select_policy_versions;

pub(crate) type PolicyVersionRow = (i64, String, String, String, i64, Option<i64>, String, Option<String>, Option<i64>);

pub(crate) fn policy_version(
    (number, source, author, reason, proposed_at_us, restores, status, approved_by, approved_at_us): PolicyVersionRow,
) -> Result<PolicyVersion, StoreError> {
    let status = VersionStatus::parse(&status)
        .ok_or_else(|| StoreError::Malformed(format!("policy version {number} has an unknown status")))?;
    Ok(PolicyVersion {
        number,
        source,
        author,
        reason,
        proposed_at: from_unix_micros(proposed_at_us),
        restores,
        status,
        approved_by,
        approved_at: approved_at_us.map(from_unix_micros),
    })
}

/// Numbers a proposal after the highest number so far, under the caller's write lock.
/// `$1` source, `$2` author, `$3` reason, `$4` proposed at, `$5` restores.
pub(crate) const PROPOSE_POLICY: &str = concat!(
    "INSERT INTO policy_versions (number, source, author, reason, proposed_at_us, restores, status) \
     SELECT coalesce(max(number), 0) + 1, $1, $2, $3, $4, $5, 'proposed' FROM policy_versions RETURNING ",
    policy_columns!()
);

/// `$1` the number, `$2` the approver, `$3` when. Only a proposed version is activated.
pub(crate) const ACTIVATE_POLICY: &str = concat!(
    "UPDATE policy_versions SET status = 'active', approved_by = $2, approved_at_us = $3 \
     WHERE number = $1 AND status = 'proposed' RETURNING ",
    policy_columns!()
);

/// `$1` the number. Only a proposed version is rejected.
pub(crate) const REJECT_POLICY: &str = concat!(
    "UPDATE policy_versions SET status = 'rejected' WHERE number = $1 AND status = 'proposed' RETURNING ",
    policy_columns!()
);

/// Why a version could not change status: it does not exist, or it is no longer proposed.
pub(crate) fn not_proposed(status: Option<String>) -> StoreError {
    match status {
        None => StoreError::NotFound,
        Some(_) => StoreError::Conflict,
    }
}

// --- devices -------------------------------------------------------------------------------

macro_rules! select_devices {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, site, managed, trusted, disk_encrypted, patched, checked_in_at_us, secret_digest, \
             created_at_us, revoked_at_us FROM devices ",
            $rest
        )
    };
}
pub(crate) use select_devices;

pub(crate) type DeviceRow =
    (String, String, Option<String>, bool, bool, bool, bool, Option<i64>, Vec<u8>, i64, Option<i64>);

pub(crate) fn device(
    (
        id,
        name,
        site,
        managed,
        trusted,
        disk_encrypted,
        patched,
        checked_in_at_us,
        secret_digest,
        created_at_us,
        revoked_at_us,
    ): DeviceRow,
) -> Result<Device, StoreError> {
    Ok(Device {
        secret_digest: bytes(secret_digest, "device secret digest")?,
        id,
        name,
        site,
        managed,
        trusted,
        posture: Posture { disk_encrypted, patched, checked_in_at: checked_in_at_us.map(from_unix_micros) },
        created_at: from_unix_micros(created_at_us),
        revoked_at: revoked_at_us.map(from_unix_micros),
    })
}

/// `$1` id, `$2` name, `$3` site, `$4` managed, `$5` trusted, `$6` disk encrypted, `$7`
/// patched, `$8` checked in at, `$9` secret digest, `$10` created at, `$11` revoked at.
pub(crate) const INSERT_DEVICE: &str = "INSERT INTO devices (id, name, site, managed, trusted, disk_encrypted, \
     patched, checked_in_at_us, secret_digest, created_at_us, revoked_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The parameters of [`INSERT_DEVICE`] but the creation time, which never changes (nor
/// does the id): `$10` is the revocation time.
pub(crate) const UPDATE_DEVICE: &str = "UPDATE devices SET name = $2, site = $3, managed = $4, trusted = $5, \
     disk_encrypted = $6, patched = $7, checked_in_at_us = $8, secret_digest = $9, revoked_at_us = $10 \
     WHERE id = $1";

/// Sealed values start with this; anything else in a factor's secret (an Argon2id PHC
/// string) is not under a KEK and is left alone by rotation.
pub(crate) const SEALED_PREFIX: &str = "wg1.";

/// Pruning must move the anchor to a record this chain actually holds (or re-state the
/// current anchor); anything else would leave a chain that cannot be verified.
pub(crate) fn check_prune_target(
    anchor: ChainHead,
    head: ChainHead,
    stored_hash: Option<Vec<u8>>,
    through: &Checkpoint,
) -> Result<(), StoreError> {
    if through.seq < anchor.seq || through.seq > head.seq {
        return Err(StoreError::NotFound);
    }
    let hash = if through.seq == anchor.seq { Some(anchor.hash.to_vec()) } else { stored_hash };
    match hash {
        Some(h) if h.as_slice() == through.hash.as_slice() => Ok(()),
        Some(_) => Err(StoreError::Corrupt(format!(
            "audit record {} does not match the checkpoint pruning was asked to anchor at",
            through.seq
        ))),
        None => Err(StoreError::Corrupt(format!("audit record {} is missing", through.seq))),
    }
}
