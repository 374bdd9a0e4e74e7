//! Committed is not yet durable: a write the database has committed but the disk may not
//! hold yet, and the handle that says when it does.
//!
//! The group commit uses the gap to overlap work. While one batch's write-ahead log is being
//! flushed, the next batch is already being applied on top of it; each batch's callers are
//! answered only once the flush that covers it has returned. Other connections may read a
//! committed batch before it is durable. That is safe because the log is flushed in order:
//! if the machine fails before the flush, the batch and everything applied after it are
//! lost together, and none of their callers was told that they had succeeded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tokio::sync::watch;

use crate::StoreError;

/// Resolves when a committed write is on disk. A store that commits durably hands out
/// [`Durable::now`].
#[must_use = "a committed write is not durable until this resolves"]
pub struct Durable(Option<(watch::Receiver<Flushed>, u64)>);

impl Durable {
    /// For a write that was durable when its commit returned.
    pub fn now() -> Durable {
        Durable(None)
    }

    /// Whether the write was durable when its commit returned.
    pub fn is_now(&self) -> bool {
        self.0.is_none()
    }

    /// Waits until the write is on disk, or fails if the disk refused the flush that was to
    /// carry it.
    pub async fn wait(self) -> Result<(), StoreError> {
        let Some((mut rx, ticket)) = self.0 else { return Ok(()) };
        let flushed = rx
            .wait_for(|f| f.through >= ticket || f.failed.is_some())
            .await
            .map_err(|_| StoreError::Unavailable("the write-ahead log flusher has stopped".into()))?;
        match &flushed.failed {
            Some(e) if flushed.through < ticket => Err(StoreError::Unavailable(e.clone())),
            _ => Ok(()),
        }
    }
}

/// How far the flusher has come.
#[derive(Clone, Debug, Default)]
struct Flushed {
    /// Every commit with a ticket up to this one is on disk.
    through: u64,
    /// Set once a flush fails; no later flush is attempted.
    failed: Option<String>,
}

#[derive(Default)]
struct Queue {
    /// The ticket of the last commit registered.
    committed: u64,
    stop: bool,
}

struct Shared {
    log: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    flushed: watch::Sender<Flushed>,
}

/// Flushes a SQLite write-ahead log on a thread of its own, once for every run of commits
/// registered while the previous flush was under way. Dropping it stops the thread after
/// the flush in progress.
pub(crate) struct LogFlusher {
    shared: Arc<Shared>,
}

impl LogFlusher {
    /// A flusher for the log at `log` (the database path with `-wal` appended). The file is
    /// opened for each flush: SQLite removes and recreates it when every connection closes.
    pub(crate) fn start(log: &Path) -> Result<LogFlusher, StoreError> {
        let shared = Arc::new(Shared {
            log: log.to_owned(),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            flushed: watch::Sender::new(Flushed::default()),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("wardgate-wal-flush".into())
            .spawn(move || flush_loop(&worker))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the write-ahead log flusher: {e}")))?;
        Ok(LogFlusher { shared })
    }

    /// Registers a commit that has just returned: its frames are written, not yet flushed.
    /// Call it only after the commit has returned, so that the flush that carries the
    /// ticket starts after the frames were written.
    pub(crate) fn committed(&self) -> Durable {
        let ticket = {
            let mut q = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.committed += 1;
            q.committed
        };
        self.shared.wake.notify_one();
        Durable(Some((self.shared.flushed.subscribe(), ticket)))
    }

    /// Why the store must stop writing, once a flush has failed. After a failed `fdatasync`
    /// the kernel may have dropped the pages it could not write and reports the loss only
    /// once; a later commit that seems to succeed would build on records the disk never
    /// got. Only a restart, which replays the log from disk, is safe.
    pub(crate) fn failure(&self) -> Option<String> {
        self.shared.flushed.borrow().failed.clone()
    }

    /// Commits registered, and commits flushed.
    #[cfg(test)]
    pub(crate) fn progress(&self) -> (u64, u64) {
        let committed = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).committed;
        (committed, self.shared.flushed.borrow().through)
    }

    /// Waits until everything registered so far is on disk.
    pub(crate) async fn settle(&self) -> Result<(), StoreError> {
        let ticket = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).committed;
        Durable(Some((self.shared.flushed.subscribe(), ticket))).wait().await
    }
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        self.shared.wake.notify_one();
    }
}

fn flush_loop(shared: &Shared) {
    let mut through = 0;
    loop {
        let target = {
            let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            while q.committed == through && !q.stop {
                q = shared.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            if q.committed == through {
                return;
            }
            q.committed
        };
        // fdatasync flushes the file's pages whichever descriptor wrote them. SQLite
        // removes the log only when its last connection closes, after copying it into the
        // database file and flushing that: then what was to be flushed is on disk already.
        let flushed = match std::fs::File::open(&shared.log) {
            Ok(f) => f.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        match flushed {
            Ok(()) => {
                through = target;
                shared.flushed.send_modify(|f| f.through = target);
            }
            Err(e) => {
                let why = format!(
                    "the write-ahead log {} could not be flushed to disk ({e}); no further writes are taken until a restart",
                    shared.log.display()
                );
                tracing::error!(error = %e, log = %shared.log.display(), "write-ahead log flush failed; writes stop");
                shared.flushed.send_modify(|f| f.failed = Some(why));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_commit_is_durable_once_a_flush_started_after_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("db-wal");
        std::fs::write(&log, b"frames").unwrap();
        let flusher = LogFlusher::start(&log).unwrap();
        let waits: Vec<Durable> = (0..50).map(|_| flusher.committed()).collect();
        for w in waits {
            w.wait().await.unwrap();
        }
        flusher.settle().await.unwrap();
        assert!(flusher.failure().is_none());
        assert!(Durable::now().wait().await.is_ok());
    }

    #[tokio::test]
    async fn a_failed_flush_fails_its_writers_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        // A name no file can have: opening it for the flush fails, as a dead disk would.
        let flusher = LogFlusher::start(&dir.path().join("db\0-wal")).unwrap();
        let first = flusher.committed();
        let e = first.wait().await.unwrap_err();
        assert!(e.to_string().contains("could not be flushed"), "{e}");
        assert!(flusher.failure().is_some());
        assert!(flusher.committed().wait().await.is_err(), "a later commit is not durable either");
    }
}
