//! Wardgate's storage layer: one contract ([`Store`]), two implementations (SQLite, the
//! embedded default, and PostgreSQL for several nodes), and the audit group committer.
//!
//! Invariant: every state change that an auditor cares about is written in the same
//! transaction as its audit record. Callers pass the [`AuditEvent`] to the mutating method;
//! there is no way to create or change an account, a factor, a key, a link, a session or
//! an API token without one. Only routine bookkeeping is written without a record — flows
//! between login steps, session activity, factor and failure counters — and those methods
//! take an optional event for the writes that are events (a lockout, an unlock). A spent
//! recovery code is such a counter write; its audit record follows it through the writer.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit_writer;
pub mod batch;
mod common;
mod contract;
mod durable;
mod error;
mod governance;
mod lifecycle;
mod postgres;
mod readers;
mod scim;
mod sqlite;

pub use contract::{
    AuditMark, AuditMarks, CodeRedemption, OidcPurged, RefreshHolder, Rotation, SealedColumn, SealedRef, Store,
};
pub use durable::Durable;
pub use error::StoreError;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use std::sync::Arc;

/// A count of the changes committed through any store in this process, raised after each
/// commit — except activity times and the audit and token batch, which change no account
/// and end no session. A node-local cache of accounts or sessions notes it before reading
/// and treats what it read as stale once it moves: a sign-out, a disabled account or a
/// removed role on this node is seen by the very next request. Changes made by other
/// processes (another node, the command line) are not counted; such a cache must also
/// expire its entries.
pub fn changes() -> u64 {
    common::changes()
}

use wardgate_core::settings::DatabaseLocation;

/// Opens the configured database, creating and migrating it as needed.
pub async fn open(location: &DatabaseLocation, node: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match location {
        DatabaseLocation::Sqlite(path) => Arc::new(SqliteStore::open(path, node).await?),
        DatabaseLocation::Postgres(url) => Arc::new(PostgresStore::open(url, node).await?),
    })
}
