//! Group commit for the audit log.
//!
//! Many tasks report events at once; one writer task drains them into batches and
//! appends each batch as a single durable transaction, so the cost of an fsync is shared by
//! every event in the batch. A caller's `append` resolves only after its event is durable:
//! if the write fails, the caller learns it and must fail the action it was recording.
//! The writer also signs checkpoints over the chain head on the configured schedule.
//!
//! Token grants ride along ([`Write`]): a grant and its record go into the same batch
//! transaction as everything else queued, so a burst of grants shares one commit.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use wardgate_core::audit::checkpoint::CheckpointPolicy;
use wardgate_core::audit::{AuditEvent, ChainHead, CheckpointSigner};

use crate::batch::{Write, Written};
use crate::{Durable, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log write failed: {0}")]
    Store(#[from] StoreError),
    #[error("audit writer has stopped")]
    Closed,
}

/// About one durable commit on a local SSD.
const GATHER_AT_MOST: std::time::Duration = std::time::Duration::from_micros(250);

/// A batch that starts with this many writes already queued is committed at once: the
/// burst is here, and whoever comes next rides on the following commit, which gathers
/// while this one is written. Waiting for stragglers only pays when the writer has been
/// woken by the first one or two of a burst.
const GATHER_BELOW: usize = 4;

type Reply = oneshot::Sender<Result<(Written, ChainHead), Arc<StoreError>>>;

/// A committed batch whose callers are answered once it is on disk.
struct Answer {
    durable: Durable,
    head: ChainHead,
    replies: Vec<(Reply, Written)>,
}

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
    tx: mpsc::Sender<(Write, Reply)>,
}

impl AuditHandle {
    /// Appends one event and waits until it is durable.
    pub async fn append(&self, event: AuditEvent) -> Result<ChainHead, AuditError> {
        self.submit(Write::Audit(event)).await.map(|(_, head)| head)
    }

    /// Applies one write with its record in the next batch and waits until it is durable.
    pub async fn write(&self, write: Write) -> Result<Written, AuditError> {
        self.submit(write).await.map(|(found, _)| found)
    }

    async fn submit(&self, write: Write) -> Result<(Written, ChainHead), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((write, reply)).await.map_err(|_| AuditError::Closed)?;
        match rx.await {
            Ok(Ok(done)) => Ok(done),
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
    mut rx: mpsc::Receiver<(Write, Reply)>,
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
    let mut queued: Vec<(Write, Reply)> = Vec::with_capacity(config.max_batch);
    // The next batch is applied while the last one is flushed; a task of its own answers
    // each batch's callers once it is durable.
    let (answers, pending) = mpsc::unbounded_channel();
    let answering = tokio::spawn(answer(pending));
    loop {
        tokio::select! {
            n = rx.recv_many(&mut queued, config.max_batch) => {
                if n == 0 {
                    break;
                }
                if n < GATHER_BELOW {
                    gather_stragglers(&mut rx, &mut queued, config.max_batch).await;
                }
            }
            _ = tick.tick() => {
                checkpoint_if_due(&*store, &signer, &config, &mut last_checkpoint, None, false).await;
                continue;
            }
        }
        let (writes, replies): (Vec<Write>, Vec<Reply>) = queued.drain(..).unzip();
        match apply(&*store, &writes).await {
            Ok((found, h, durable)) => {
                metrics::counter!("wardgate_audit_records_total").increment(writes.len() as u64);
                metrics::gauge!("wardgate_audit_chain_length").set(h.seq as f64);
                let answer = Answer { durable, head: h, replies: replies.into_iter().zip(found).collect() };
                if answer.durable.is_now() {
                    answer.give().await;
                } else {
                    let _ = answers.send(answer);
                }
                checkpoint_if_due(&*store, &signer, &config, &mut last_checkpoint, Some(h), false).await;
            }
            Err(e) if writes.len() > 1 && !writes.iter().all(Write::is_audit_only) => {
                // One write may have failed (a conflict) and taken the batch with it: the
                // others must not fail for it, so each goes again on its own.
                tracing::debug!(error = %e, writes = writes.len(), "batch refused; applying its writes one by one");
                let mut last = None;
                for (w, r) in writes.into_iter().zip(replies) {
                    let one = match apply(&*store, std::slice::from_ref(&w)).await {
                        Ok((found, h, durable)) => durable.wait().await.map(|()| (found, h)),
                        Err(e) => Err(e),
                    };
                    if one.is_err() {
                        metrics::counter!("wardgate_audit_write_failures_total").increment(1);
                    }
                    let _ = r.send(
                        one.map(|(mut f, h)| {
                            last = Some(h);
                            (f.pop().unwrap_or(Written::Done), h)
                        })
                        .map_err(Arc::new),
                    );
                }
                if let Some(h) = last {
                    checkpoint_if_due(&*store, &signer, &config, &mut last_checkpoint, Some(h), false).await;
                }
            }
            Err(e) => {
                metrics::counter!("wardgate_audit_write_failures_total").increment(1);
                tracing::error!(error = %e, records = writes.len(), "audit batch not written; the actions it records fail");
                let e = Arc::new(e);
                for r in replies {
                    let _ = r.send(Err(Arc::clone(&e)));
                }
            }
        }
    }
    drop(answers);
    let _ = answering.await;
    // Shutdown: pin whatever was written since the last checkpoint, schedule or not.
    checkpoint_if_due(&*store, &signer, &config, &mut last_checkpoint, None, true).await;
}

async fn answer(mut pending: mpsc::UnboundedReceiver<Answer>) {
    while let Some(answer) = pending.recv().await {
        answer.give().await;
    }
}

impl Answer {
    async fn give(self) {
        let Answer { durable, head, replies } = self;
        match durable.wait().await {
            Ok(()) => {
                for (r, f) in replies {
                    let _ = r.send(Ok((f, head)));
                }
            }
            Err(e) => {
                metrics::counter!("wardgate_audit_write_failures_total").increment(1);
                tracing::error!(error = %e, records = replies.len(), "audit batch committed but not flushed; the actions it records fail");
                let e = Arc::new(e);
                for (r, _) in replies {
                    let _ = r.send(Err(Arc::clone(&e)));
                }
            }
        }
    }
}

/// The callers of the last batch were all woken at once and are reporting their next
/// events right now; committing the first one alone would split them over several
/// commits, each paying a full fsync. So let them run while the queue keeps growing (a
/// few scheduler turns) and take what arrived — but not for longer than about a commit
/// takes: on a busy server a scheduler turn runs every other request's work first, and
/// waiting out several of them delayed every caller more than a second commit would.
async fn gather_stragglers(rx: &mut mpsc::Receiver<(Write, Reply)>, queued: &mut Vec<(Write, Reply)>, max: usize) {
    let until = std::time::Instant::now() + GATHER_AT_MOST;
    for turn in 0..8 {
        if queued.len() >= max {
            return;
        }
        if std::time::Instant::now() >= until {
            break;
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

/// Records alone take the store's cheapest path; a batch with other writes is one
/// transaction with all of them.
async fn apply(store: &dyn Store, writes: &[Write]) -> Result<(Vec<Written>, ChainHead, Durable), StoreError> {
    if writes.iter().all(Write::is_audit_only) {
        let events: Vec<AuditEvent> =
            writes.iter().filter_map(|w| if let Write::Audit(e) = w { Some(e.clone()) } else { None }).collect();
        let (head, durable) = store.append_audit_pipelined(&events).await?;
        return Ok((vec![Written::Done; writes.len()], head, durable));
    }
    store.commit_pipelined(writes).await
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

#[cfg(test)]
mod tests {
    use wardgate_core::audit::Outcome;
    use wardgate_core::audit::checkpoint::CheckpointPolicy;
    use wardgate_core::oidc::{Grant, OidcClient};

    use super::*;
    use crate::SqliteStore;

    fn grant(id: &str) -> Grant {
        Grant {
            id: id.into(),
            client_id: "c1".into(),
            user_id: None,
            session_id: None,
            scopes: vec![],
            acr: None,
            amr: vec![],
            auth_time: None,
            correlation_id: format!("corr-{id}"),
            created_at: OffsetDateTime::UNIX_EPOCH,
            revoked_at: None,
        }
    }

    fn issued(id: &str) -> Write {
        let event = AuditEvent::known(OffsetDateTime::now_utc(), "oidc.grant.issued", Outcome::Success)
            .detail("grant_id", id.to_owned());
        Write::InsertGrant { grant: grant(id), refresh: None, event }
    }

    /// A batch the database committed but the disk did not take is not answered as kept,
    /// and neither is anything after it.
    #[tokio::test]
    async fn a_batch_whose_flush_fails_is_answered_with_the_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("w.db"), "n1").await.unwrap();
        let made = AuditEvent::known(OffsetDateTime::now_utc(), "system.node.started", Outcome::Success);
        store.append_audit(&[made]).await.unwrap();
        store.fail_flushes();
        let store: Arc<dyn Store> = Arc::new(store);
        let signer = CheckpointSigner::new("k1".into(), "n1".into(), ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let config = AuditWriterConfig {
            max_batch: 64,
            checkpoints: CheckpointPolicy { every: 1_000_000, interval: time::Duration::hours(1) },
            clock: OffsetDateTime::now_utc,
        };
        let (writer, handle) = AuditWriter::spawn(store, Arc::new(signer), config);
        for _ in 0..2 {
            let e = AuditEvent::known(OffsetDateTime::now_utc(), "gateway.access", Outcome::Success);
            let refused = handle.append(e).await.unwrap_err();
            assert!(refused.to_string().contains("could not be flushed"), "{refused}");
        }
        drop(handle);
        writer.close().await;
    }

    /// On one thread every task below has queued its write before the writer runs, so they
    /// meet in one batch; the one that cannot be applied must not fail the others.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_write_does_not_take_its_batch_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("w.db"), "n1").await.unwrap());
        let client = OidcClient {
            id: "c1".into(),
            name: "Service".into(),
            redirect_uris: vec![],
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
        let made = AuditEvent::known(OffsetDateTime::now_utc(), "oidc.client.created", Outcome::Success);
        store.create_client(&client, &made).await.unwrap();
        let first = AuditEvent::known(OffsetDateTime::now_utc(), "oidc.grant.issued", Outcome::Success);
        store.insert_grant(&grant("taken"), None, &first).await.unwrap();
        let before = store.audit_count().await.unwrap();

        let signer = CheckpointSigner::new("k1".into(), "n1".into(), ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let config = AuditWriterConfig {
            max_batch: 64,
            checkpoints: CheckpointPolicy { every: 1_000_000, interval: time::Duration::hours(1) },
            clock: OffsetDateTime::now_utc,
        };
        let (writer, handle) = AuditWriter::spawn(Arc::clone(&store), Arc::new(signer), config);
        let ids: Vec<String> = (0..20).map(|i| if i == 7 { "taken".into() } else { format!("g{i}") }).collect();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (h, w) = (handle.clone(), issued(id));
                tokio::spawn(async move { h.write(w).await })
            })
            .collect();
        for (id, t) in ids.iter().zip(tasks) {
            let r = t.await.unwrap();
            if id == "taken" {
                assert!(r.is_err(), "the grant id was taken");
            } else {
                assert_eq!(r.unwrap(), Written::Done, "{id}");
                assert!(store.grant(id).await.unwrap().is_some(), "{id}");
            }
        }
        assert_eq!(store.audit_count().await.unwrap(), before + 19);
        drop(handle);
        writer.close().await;
    }
}
