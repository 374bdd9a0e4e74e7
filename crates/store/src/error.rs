//! What can go wrong in a store, in terms a caller can act on.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (PostgreSQL down, file locked too long, disk full).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The file or schema is not a Wardgate database (truncated, foreign, newer version).
    #[error("database is damaged or not a Wardgate database: {0}")]
    Corrupt(String),
    #[error("username is already taken")]
    UsernameTaken,
    #[error("bootstrap link is invalid, used or expired")]
    BootstrapInvalid,
    #[error("an administrator already exists")]
    AdminExists,
    #[error("enrollment link is invalid, used or expired")]
    EnrollmentInvalid,
    /// A row with this key exists already.
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    /// A stored value could not be decoded (a column holds something the schema forbids).
    #[error("stored data is malformed: {0}")]
    Malformed(String),
}
