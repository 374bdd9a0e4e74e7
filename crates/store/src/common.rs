//! What both backends share: turning rows into domain values, classifying errors, building
//! the embedded migrator, and finishing a transaction.

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::{Database, SqlSafeStr, Transaction};
use time::OffsetDateTime;
use wardgate_core::audit::{ChainHead, Checkpoint, StoredRecord};
use wardgate_core::identity::{Factor, FactorKind, User, Username};
use wardgate_core::keys::SigningKeyRecord;
use wardgate_core::{from_unix_micros, unix_micros};

use crate::StoreError;

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
            // The only foreign key is factor → user: the user does not exist.
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

/// Commits on success; on failure rolls back now rather than leaving the rollback to the
/// pool, so the write lock is released before the caller sees the error.
pub(crate) async fn finish<DB: Database, T>(
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

pub(crate) type UserRow = (String, String, String, bool, bool, i64);

pub(crate) fn user(
    (id, username, display_name, is_admin, disabled, created_at_us): UserRow,
) -> Result<User, StoreError> {
    let username =
        Username::parse(&username).map_err(|_| StoreError::Malformed(format!("user {id} has an invalid username")))?;
    Ok(User { id, username, display_name, is_admin, disabled, created_at: from_unix_micros(created_at_us) })
}

pub(crate) type FactorRow = (String, String, String, String, String, i64, Option<i64>);

pub(crate) fn factor(
    (id, user_id, kind, label, secret, created_at_us, last_used_at_us): FactorRow,
) -> Result<Factor, StoreError> {
    let kind = FactorKind::parse(&kind)
        .ok_or_else(|| StoreError::Malformed(format!("factor {id} has unknown kind {kind:?}")))?;
    Ok(Factor {
        id,
        user_id,
        kind,
        label,
        secret,
        created_at: from_unix_micros(created_at_us),
        last_used_at: last_used_at_us.map(from_unix_micros),
    })
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
