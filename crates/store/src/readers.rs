//! Connections for the point reads on the request path (a session, a client, a refresh
//! token, a code), kept apart from sqlx's pool.
//!
//! The pool tests every connection on its way back with a ping: for SQLite a round trip
//! to the connection's worker thread, in a task spawned for it, after every read. A
//! refresh grant or a code exchange reads once or twice, so that round trip was as many
//! thread wake-ups again on two cores shared by every request. A connection here goes back
//! to the idle list as it is, which is sound for what these reads are: one statement in
//! autocommit, which SQLite ends by itself when the statement is reset (the worker thread
//! resets a statement whose rows are no longer wanted before it takes the next command).
//! A read that fails, or is dropped before it finishes (its request gone), takes its
//! connection out of service instead; the next read opens a fresh one.

use std::sync::Mutex;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection as _, Error};
use tokio::sync::Semaphore;

pub(crate) struct Readers {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Semaphore,
}

impl Readers {
    /// At most `max` connections, opened as reads need them.
    pub(crate) fn new(options: SqliteConnectOptions, max: usize) -> Readers {
        Readers { options, idle: Mutex::new(Vec::with_capacity(max)), permits: Semaphore::new(max) }
    }

    /// Runs `read` on a connection of its own.
    pub(crate) async fn read<T>(
        &self,
        read: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::PoolClosed)?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => SqliteConnection::connect_with(&self.options).await?,
        };
        let r = read(&mut conn).await;
        if r.is_ok() && !self.permits.is_closed() {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
        r
    }

    /// Closes the idle connections and lends out no more.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for conn in idle {
            let _ = conn.close().await;
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;
    use sqlx::sqlite::SqliteJournalMode;

    use super::*;

    async fn readers(dir: &tempfile::TempDir) -> (Readers, SqliteConnection) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("r.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut writer = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER NOT NULL)").execute(&mut writer).await.unwrap();
        sqlx::query("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500) INSERT INTO t SELECT n FROM c")
            .execute(&mut writer)
            .await
            .unwrap();
        (Readers::new(options, 2), writer)
    }

    async fn count(readers: &Readers) -> i64 {
        readers.read(async |c| sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(c).await).await.unwrap()
    }

    /// A connection comes back as it is and is used again: the temporary table made on
    /// it (temporary tables live on one connection) is there the second time.
    #[tokio::test]
    async fn a_connection_goes_back_idle_and_is_used_again() {
        let dir = tempfile::tempdir().unwrap();
        let (readers, _writer) = readers(&dir).await;
        readers.read(async |c| sqlx::query("CREATE TEMP TABLE mine (x)").execute(c).await).await.unwrap();
        assert_eq!(readers.idle_count(), 1);
        let found: i64 = readers
            .read(async |c| {
                sqlx::query_scalar("SELECT count(*) FROM temp.sqlite_master WHERE name = 'mine'").fetch_one(c).await
            })
            .await
            .unwrap();
        assert_eq!(found, 1, "the same connection was used again");
    }

    #[tokio::test]
    async fn a_connection_whose_read_failed_is_not_used_again() {
        let dir = tempfile::tempdir().unwrap();
        let (readers, _writer) = readers(&dir).await;
        let failed = readers.read(async |c| sqlx::query("SELECT * FROM no_such_table").fetch_optional(c).await).await;
        assert!(failed.is_err());
        assert_eq!(readers.idle_count(), 0);
        assert_eq!(count(&readers).await, 500, "a fresh connection takes its place");
    }

    /// A read that is dropped before it finishes does not hand its connection back.
    #[tokio::test]
    async fn a_read_dropped_midway_takes_its_connection_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (readers, _writer) = readers(&dir).await;
        let (started, running) = tokio::sync::oneshot::channel();
        let mut read = Box::pin(readers.read(async |c| {
            sqlx::query("SELECT 1").execute(&mut *c).await?;
            let _ = started.send(());
            std::future::pending::<()>().await;
            Ok(())
        }));
        tokio::select! {
            _ = &mut read => unreachable!("the read never ends"),
            _ = running => {}
        }
        drop(read);
        assert_eq!(readers.idle_count(), 0);
        assert_eq!(count(&readers).await, 500);
    }

    /// Rows left unread must not keep the statement's snapshot: a later read on the same
    /// connection sees what was committed since.
    #[tokio::test]
    async fn rows_left_unread_leave_the_connection_fit_for_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let (readers, mut writer) = readers(&dir).await;
        readers
            .read(async |c| {
                let mut rows = sqlx::query("SELECT n FROM t").fetch(c);
                rows.next().await.transpose().map(|_| ())
            })
            .await
            .unwrap();
        assert_eq!(readers.idle_count(), 1);
        sqlx::query("INSERT INTO t (n) VALUES (501)").execute(&mut writer).await.unwrap();
        assert_eq!(count(&readers).await, 501, "the next read sees the newer commit");
        assert_eq!(readers.idle_count(), 1);
    }

    #[tokio::test]
    async fn closed_readers_lend_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (readers, _writer) = readers(&dir).await;
        count(&readers).await;
        readers.close().await;
        assert_eq!(readers.idle_count(), 0);
        assert!(readers.read(async |c| sqlx::query("SELECT 1").execute(c).await).await.is_err());
    }
}
