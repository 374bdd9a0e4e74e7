//! Group commit for the audit log.
//!
//! Many tasks report events at once; one writer task drains them into batches and
//! appends each batch as a single durable transaction, so the cost of an fsync is shared by
//! every event in the batch. A caller's `append` resolves only after its event is durable:
//! if the write fails, the caller learns it and must fail the action it was recording.
//! The writer also signs checkpoints over the chain head on the configured schedule.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use wardgate_core::audit::checkpoint::CheckpointPolicy;
use wardgate_core::audit::{AuditEvent, ChainHead, CheckpointSigner};

use crate::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log write failed: {0}")]
    Store(#[from] StoreError),
    #[error("audit writer has stopped")]
    Closed,
}

type Reply = oneshot::Sender<Result<ChainHead, Arc<StoreError>>>;

/// The writer's configuration.
pub struct AuditWriterConfig {
    pub max_batch: usize,
    pub checkpoints: CheckpointPolicy,
    /// Source of "now" for checkpoint timestamps and schedules; injectable for tests.
    pub clock: fn() -> OffsetDateTime,
}

/// A cheap handle for reporting events; clone it freely.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<(AuditEvent, Reply)>,
}

impl AuditHandle {
    /// Appends one event and waits until it is durable.
    pub async fn append(&self, event: AuditEvent) -> Result<ChainHead, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((event, reply)).await.map_err(|_| AuditError::Closed)?;
        match rx.await {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(e)) => Err(AuditError::Store(clone_error(&e))),
            Err(_) => Err(AuditError::Closed),
        }
    }
}

/// The running writer. Dropping every [`AuditHandle`] and calling [`AuditWriter::close`]
/// drains what is queued, signs a final checkpoint and stops.
pub struct AuditWriter {
    task: tokio::task::JoinHandle<()>,
}

impl AuditWriter {
    pub fn spawn(
        store: Arc<dyn Store>,
        signer: Arc<CheckpointSigner>,
        config: AuditWriterConfig,
    ) -> (Self, AuditHandle) {
        // Bounded so that a stalled database pushes back on callers instead of growing memory.
        let (tx, rx) = mpsc::channel(config.max_batch.max(1) * 8);
        let task = tokio::spawn(run(store, signer, config, rx));
        (Self { task }, AuditHandle { tx })
    }

    /// Waits for the queue to drain (all handles must be dropped first) and the final checkpoint.
    pub async fn close(self) {
        let _ = self.task.await;
    }
}

async fn run(
    store: Arc<dyn Store>,
    signer: Arc<CheckpointSigner>,
    config: AuditWriterConfig,
    mut rx: mpsc::Receiver<(AuditEvent, Reply)>,
) {
    let mut last_checkpoint = match store.latest_checkpoint().await {
        Ok(cp) => cp.map(|c| (c.seq, wardgate_core::from_unix_micros(c.ts_us))),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the latest audit checkpoint; signing one soon");
            None
        }
    };
    let mut tick = tokio::time::interval(config.checkpoints.interval.unsigned_abs());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut queued: Vec<(AuditEvent, Reply)> = Vec::with_capacity(config.max_batch);
    let mut events: Vec<AuditEvent> = Vec::with_capacity(config.max_batch);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut queued, config.max_batch) => {
                if n == 0 {
                    break;
                }
                gather_stragglers(&mut rx, &mut queued, config.max_batch).await;
            }
            _ = tick.tick() => {
                checkpoint_if_due(&*store, &signer, &config, &mut last_checkpoint, None, false).await;
                continue;
            }
        }
        let replies: Vec<Reply> = queued
            .drain(..)
            .map(|(event, reply)| {
                events.push(event);
                reply
            })
            .collect();
        let result = store.append_audit(&events).await;
        match result {
            Ok(h) => {
                metrics::counter!("wardgate_audit_records_total").increment(events.len() as u64);
                metrics::gauge!("wardgate_audit_chain_length").set(h.seq as f64);
                for r in replies {
                    let _ = r.send(Ok(h));
                }
                checkpoint_if_due(&*store, &signer, &config, &mut last_checkpoint, Some(h), false).await;
            }
            Err(e) => {
                metrics::counter!("wardgate_audit_write_failures_total").increment(1);
                tracing::error!(error = %e, records = events.len(), "audit batch not written; the actions it records fail");
                let e = Arc::new(e);
                for r in replies {
                    let _ = r.send(Err(Arc::clone(&e)));
                }
            }
        }
        events.clear();
    }
    // Shutdown: pin whatever was written since the last checkpoint, schedule or not.
    checkpoint_if_due(&*store, &signer, &config, &mut last_checkpoint, None, true).await;
}

/// The callers of the last batch were all woken at once and are reporting their next
/// events right now; committing the first one alone would split them over several
/// commits, each paying a full fsync. So let them run while the queue keeps growing (a
/// few scheduler turns, no timer) and take what arrived.
async fn gather_stragglers(
    rx: &mut mpsc::Receiver<(AuditEvent, Reply)>,
    queued: &mut Vec<(AuditEvent, Reply)>,
    max: usize,
) {
    for turn in 0..8 {
        if queued.len() >= max {
            return;
        }
        let before = rx.len();
        tokio::task::yield_now().await;
        // The first turn often runs before any woken caller has; give it a second.
        if turn > 0 && rx.len() == before {
            break;
        }
    }
    let room = max - queued.len();
    if room > 0 && !rx.is_empty() {
        rx.recv_many(queued, room).await;
    }
}

async fn checkpoint_if_due(
    store: &dyn Store,
    signer: &CheckpointSigner,
    config: &AuditWriterConfig,
    last: &mut Option<(i64, OffsetDateTime)>,
    known_head: Option<ChainHead>,
    force: bool,
) {
    let now = (config.clock)();
    // Without a head from our own append (timer, shutdown), read it from the store:
    // other processes and nodes may have appended since.
    let head = match known_head {
        Some(h) => h,
        None => match store.audit_head().await {
            Ok(h) => h,
            Err(_) => return,
        },
    };
    let grown = last.is_none_or(|(seq, _)| head.seq > seq) && head.seq > 0;
    if !(config.checkpoints.due(*last, head.seq, now) || (force && grown)) {
        return;
    }
    let cp = signer.sign(head, now);
    match store.insert_checkpoint(&cp).await {
        Ok(()) => *last = Some((cp.seq, now)),
        Err(e) => tracing::warn!(error = %e, seq = cp.seq, "audit checkpoint not written; will retry"),
    }
}

fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
        StoreError::Malformed(s) => StoreError::Malformed(s.clone()),
        other => StoreError::Unavailable(other.to_string()),
    }
}
