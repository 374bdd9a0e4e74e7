//! The storage conformance suite: every case runs against SQLite (a fresh file) and against
//! PostgreSQL (a fresh schema in the database named by `WARDGATE_TEST_POSTGRES_URL`).
//!
//! Each case is an `async fn(&Env)` written once; `conformance!` turns it into one test per
//! backend. Without the environment variable the PostgreSQL tests say so and pass, unless
//! `WARDGATE_REQUIRE_POSTGRES=1` (as in CI), when they fail.
//!
//! `harness` holds the environment and the fixtures; the cases are grouped by what they
//! exercise: the audit chain, keys and the first administrator here, accounts, factors and
//! enrollment in `accounts`, flows, sessions and API tokens in `access`, the OpenID Connect
//! provider's clients, codes, grants and keys in `oidc`, back-channel logout notices, the
//! sessions that ended without their grants and housekeeping in `logout`, numbered policy
//! versions and registered devices in `policy`, break-glass access, elevation, vendors,
//! access reviews and expired or dormant accounts in `governance`. One test binary, because linking one is
//! what takes longest.

#[macro_use]
mod harness;
mod access;
mod accounts;
mod governance;
mod lifecycle;
mod logout;
mod oidc;
mod policy;
mod scim;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::Connection as _;
use wardgate_core::audit::event::types;
use wardgate_core::audit::record::seal_batch;
use wardgate_core::audit::{AuditEvent, AuditRecord, ChainHead, CheckpointSigner, Outcome};
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, User, Username};
use wardgate_core::keys::{PURPOSE_AUDIT_CHECKPOINT, SigningKeyRecord};
use wardgate_core::lockout::Attempts;
use wardgate_core::secrets::{Kek, Keyring};
use wardgate_core::settings::DatabaseLocation;
use wardgate_core::unix_micros;
use wardgate_store::{AuditMark, AuditMarks, PostgresStore, SealedColumn, SealedRef, SqliteStore, Store, StoreError};

use harness::*;

conformance!(
    fresh_store_is_empty,
    append_and_read_back,
    chain_verifies_after_many_appends,
    concurrent_appenders_never_fork_the_chain,
    alternating_writers_each_see_the_others_appends,
    checkpoints_insert_list_latest,
    audit_marks_only_rise,
    prune_moves_the_anchor_and_the_rest_still_verifies,
    prune_refuses_a_checkpoint_off_the_chain,
    meta_init_sets_only_once,
    revision_bumps_on_admin_changes_only,
    users_create_and_look_up,
    factors_add_and_list,
    signing_keys_newest_first_per_purpose,
    bootstrap_issue_and_redeem,
    bootstrap_replaced_and_refused_once_an_admin_exists,
    bootstrap_redeemed_once_under_a_race,
    sealed_values_and_compare_and_swap,
    newer_schema_is_refused,
);

// --- cases --------------------------------------------------------------------------------

async fn fresh_store_is_empty(env: &Env) {
    let s = &*env.store;
    assert_eq!(s.backend(), if env.is_sqlite() { "sqlite" } else { "postgres" });
    assert_eq!(s.node(), "node-a");
    s.ping().await.unwrap();
    assert_eq!(s.audit_head().await.unwrap(), ChainHead::GENESIS);
    assert_eq!(s.audit_anchor().await.unwrap(), ChainHead::GENESIS);
    assert_eq!(s.audit_count().await.unwrap(), 0);
    assert!(s.audit_records(0, 10).await.unwrap().is_empty());
    assert_eq!(s.audit_first_seq_at(0).await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), 0);
    assert_eq!(s.audit_marks().await.unwrap(), AuditMarks::default());
    assert!(s.checkpoints(0, i64::MAX).await.unwrap().is_empty());
    assert_eq!(s.latest_checkpoint().await.unwrap(), None);
    assert_eq!(s.count_admins().await.unwrap(), 0);
    assert!(!s.bootstrap_pending(T0).await.unwrap());
    assert!(s.sealed_values().await.unwrap().is_empty());
    assert_eq!(s.meta_get("installation_id").await.unwrap(), None);
    // Opening an already migrated database again is fine.
    let again = env.open("node-b").await.unwrap();
    assert_eq!(again.node(), "node-b");
    assert_eq!(verify_all(&*again).await, (ChainHead::GENESIS, 0));
}

async fn append_and_read_back(env: &Env) {
    let s = &*env.store;
    let events: Vec<_> = (0..3).map(ev).collect();
    let expected = seal_batch(&ChainHead::GENESIS, "node-a", &events);
    let head = s.append_audit(&events).await.unwrap();
    assert_eq!(head, expected[2].head());
    assert_eq!(s.audit_head().await.unwrap(), head);
    assert_eq!(s.append_audit(&[]).await.unwrap(), head);

    let recs = s.audit_records(0, 10).await.unwrap();
    assert_eq!(recs.len(), 3);
    for (r, e) in recs.iter().zip(&expected) {
        assert_eq!((r.seq, r.ts_us, &r.event_type, &r.body), (e.seq, e.ts_us, &e.event_type, &e.body));
        assert_eq!(r.hash, e.hash.to_vec());
    }
    let body: AuditRecord = serde_json::from_str(&recs[1].body).unwrap();
    assert_eq!((body.seq, body.node.as_str(), body.subject.as_deref()), (2, "node-a", Some("user1")));

    assert_eq!(s.audit_records(1, 1).await.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    assert!(s.audit_records(3, 10).await.unwrap().is_empty());
    assert!(s.audit_records(0, 0).await.unwrap().is_empty());
    assert_eq!(s.audit_count().await.unwrap(), 3);

    let t0 = unix_micros(T0);
    assert_eq!(s.audit_first_seq_at(0).await.unwrap(), Some(1));
    assert_eq!(s.audit_first_seq_at(t0 + 1_000_000).await.unwrap(), Some(2));
    assert_eq!(s.audit_first_seq_at(t0 + 500_000).await.unwrap(), Some(2));
    assert_eq!(s.audit_first_seq_at(t0 + 2_000_001).await.unwrap(), None);

    // Plain appends are not administrative changes, and the anchor stays at genesis.
    assert_eq!(s.revision().await.unwrap(), 0);
    assert_eq!(s.audit_anchor().await.unwrap(), ChainHead::GENESIS);

    // A second handle continues the same chain.
    let b = env.open("node-b").await.unwrap();
    let head = b.append_audit(&[ev(3)]).await.unwrap();
    assert_eq!(head, seal_batch(&expected[2].head(), "node-b", &[ev(3)])[0].head());
    assert_eq!(s.audit_head().await.unwrap(), head);
}

async fn chain_verifies_after_many_appends(env: &Env) {
    let s = &*env.store;
    let mut n = 0;
    // Sizes around and beyond the backends' insert chunking.
    for size in [1, 7, 1000, 999, 1001, 2500] {
        let events: Vec<_> = (n..n + size).map(ev).collect();
        n += size;
        assert_eq!(s.append_audit(&events).await.unwrap().seq, n as i64);
    }
    assert_eq!(s.audit_count().await.unwrap(), n as i64);
    let (head, verified) = verify_all(s).await;
    assert_eq!((head.seq, verified), (n as i64, n as u64));
}

async fn concurrent_appenders_never_fork_the_chain(env: &Env) {
    const TASKS_A: usize = 16;
    const TASKS_B: usize = 8;
    const PER_TASK: usize = 50;
    let b = env.open("node-b").await.unwrap();
    let mut tasks = Vec::new();
    for (store, count) in [(Arc::clone(&env.store), TASKS_A), (b, TASKS_B)] {
        for t in 0..count {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    seqs.push(store.append_audit(&[ev(t * 1000 + i)]).await.unwrap().seq);
                }
                seqs
            }));
        }
    }
    let mut all = HashSet::new();
    for t in tasks {
        for seq in t.await.unwrap() {
            assert!(all.insert(seq), "sequence {seq} handed out twice");
        }
    }
    let total = ((TASKS_A + TASKS_B) * PER_TASK) as i64;
    assert_eq!(all, (1..=total).collect::<HashSet<_>>());
    let (head, verified) = verify_all(&*env.store).await;
    assert_eq!((head.seq, verified), (total, total as u64));
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for r in env.store.audit_records(0, u32::MAX).await.unwrap() {
        let body: AuditRecord = serde_json::from_str(&r.body).unwrap();
        *per_node.entry(body.node).or_default() += 1;
    }
    assert_eq!(
        per_node.into_iter().collect::<Vec<_>>(),
        [("node-a".to_owned(), TASKS_A * PER_TASK), ("node-b".to_owned(), TASKS_B * PER_TASK)]
    );
}

/// Each handle remembers the head its own last append left; when the other handle (another
/// process or node) has appended since, that memory is stale and must never fork the chain.
async fn alternating_writers_each_see_the_others_appends(env: &Env) {
    let a = Arc::clone(&env.store);
    let b = env.open("node-b").await.unwrap();
    let mut expected = 0;
    for round in 0..5 {
        for (store, n) in [(&a, 3), (&b, 2)] {
            let batch: Vec<_> = (0..n).map(|i| ev(round * 10 + i)).collect();
            expected += n as i64;
            assert_eq!(store.append_audit(&batch).await.unwrap().seq, expected, "round {round}");
        }
        // A state change with its own audit record between appends moves the head too.
        let now = T0 + secs(round as i64);
        a.issue_bootstrap(&[round as u8; 32], now + secs(60), &admin_ev(types::ADMIN_BOOTSTRAP_ISSUED)).await.unwrap();
        expected += 1;
    }
    let (head, verified) = verify_all(&*env.store).await;
    assert_eq!((head.seq, verified), (expected, expected as u64));
    assert_eq!(b.audit_head().await.unwrap(), head);
}

async fn checkpoints_insert_list_latest(env: &Env) {
    let s = &*env.store;
    s.append_audit(&(0..10).map(ev).collect::<Vec<_>>()).await.unwrap();
    let signer = signer();
    let cp = |h: ChainHead, at: i64| signer.sign(h, T0 + secs(at));
    let (cp3, cp5, cp7) = (cp(head_at(s, 3).await, 3), cp(head_at(s, 5).await, 5), cp(head_at(s, 7).await, 7));
    for c in [&cp7, &cp3, &cp5] {
        s.insert_checkpoint(c).await.unwrap();
    }
    assert_eq!(s.checkpoints(0, i64::MAX).await.unwrap(), [cp3.clone(), cp5.clone(), cp7.clone()]);
    assert_eq!(s.checkpoints(3, i64::MAX).await.unwrap(), [cp5.clone(), cp7.clone()]);
    assert!(s.checkpoints(7, i64::MAX).await.unwrap().is_empty());
    assert_eq!(s.checkpoints(3, 6).await.unwrap(), std::slice::from_ref(&cp5));
    assert_eq!(s.checkpoints(0, 7).await.unwrap(), [cp3.clone(), cp5.clone(), cp7.clone()]);
    assert!(s.checkpoints(5, 5).await.unwrap().is_empty());
    let latest = s.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(latest, cp7);
    assert!(latest.verify(&signer.verifying_key()));

    // Another node signing the same head is the same fact; a different hash is not.
    let again = CheckpointSigner::new("k2".into(), "node-b".into(), ed25519_dalek::SigningKey::from_bytes(&[8; 32]))
        .sign(cp5.head(), T0 + secs(99));
    s.insert_checkpoint(&again).await.unwrap();
    let forged = signer.sign(ChainHead { seq: 5, hash: [9; 32] }, T0);
    assert!(matches!(s.insert_checkpoint(&forged).await, Err(StoreError::Corrupt(_))));
    assert_eq!(s.checkpoints(0, i64::MAX).await.unwrap(), [cp3, cp5, cp7]);
    assert_eq!(verify_all(s).await.0.seq, 10);
}

async fn audit_marks_only_rise(env: &Env) {
    let s = &*env.store;
    let marks = |e, v| AuditMarks { exported_seq: e, verified_seq: v };
    s.raise_audit_mark(AuditMark::Exported, 5).await.unwrap();
    assert_eq!(s.audit_marks().await.unwrap(), marks(5, 0));
    s.raise_audit_mark(AuditMark::Verified, 3).await.unwrap();
    assert_eq!(s.audit_marks().await.unwrap(), marks(5, 3));
    s.raise_audit_mark(AuditMark::Exported, 2).await.unwrap();
    s.raise_audit_mark(AuditMark::Verified, 0).await.unwrap();
    assert_eq!(s.audit_marks().await.unwrap(), marks(5, 3));
    s.raise_audit_mark(AuditMark::Verified, 10).await.unwrap();
    assert_eq!(s.audit_marks().await.unwrap(), marks(5, 10));
    assert_eq!(env.open("node-b").await.unwrap().audit_marks().await.unwrap(), marks(5, 10));
}

async fn prune_moves_the_anchor_and_the_rest_still_verifies(env: &Env) {
    let s = &*env.store;
    s.append_audit(&(0..10).map(ev).collect::<Vec<_>>()).await.unwrap();
    let signer = signer();
    let cp6 = signer.sign(head_at(s, 6).await, T0);
    let cp9 = signer.sign(head_at(s, 9).await, T0);
    s.insert_checkpoint(&cp6).await.unwrap();
    s.insert_checkpoint(&cp9).await.unwrap();

    let pruned = AuditEvent::known(T0 + secs(60), types::AUDIT_RETENTION_PRUNED, Outcome::Success).detail("through", 6);
    assert_eq!(s.prune_audit(&cp6, &pruned).await.unwrap(), 6);
    assert_eq!(s.audit_anchor().await.unwrap(), cp6.head());
    assert_eq!(s.audit_head().await.unwrap().seq, 11);
    assert_eq!(s.audit_count().await.unwrap(), 5);
    let seqs: Vec<_> = s.audit_records(0, 100).await.unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [7, 8, 9, 10, 11]);
    assert_eq!(last_type(s).await, types::AUDIT_RETENTION_PRUNED);
    assert_eq!(s.audit_first_seq_at(0).await.unwrap(), Some(7));
    assert_eq!(s.revision().await.unwrap(), 1);
    // Verified from the new anchor, against the checkpoint beyond it.
    assert_eq!(verify_all(s).await, (s.audit_head().await.unwrap(), 5));

    // Pruning further, and the chain keeps growing from there.
    assert_eq!(s.prune_audit(&cp9, &pruned).await.unwrap(), 3);
    s.append_audit(&[ev(50)]).await.unwrap();
    let seqs: Vec<_> = s.audit_records(0, 100).await.unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [10, 11, 12, 13]);
    assert_eq!(verify_all(s).await.1, 4);
    assert_eq!(s.audit_anchor().await.unwrap(), cp9.head());
}

async fn prune_refuses_a_checkpoint_off_the_chain(env: &Env) {
    let s = &*env.store;
    s.append_audit(&(0..10).map(ev).collect::<Vec<_>>()).await.unwrap();
    let signer = signer();
    let pruned = AuditEvent::known(T0, types::AUDIT_RETENTION_PRUNED, Outcome::Success);
    let before = snapshot(s).await;
    let wrong_hash = signer.sign(ChainHead { seq: 4, hash: [1; 32] }, T0);
    assert!(matches!(s.prune_audit(&wrong_hash, &pruned).await, Err(StoreError::Corrupt(_))));
    let beyond_head = signer.sign(ChainHead { seq: 11, hash: [1; 32] }, T0);
    assert!(matches!(s.prune_audit(&beyond_head, &pruned).await, Err(StoreError::NotFound)));
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.audit_anchor().await.unwrap(), ChainHead::GENESIS);

    // Once pruned to 6, going back to 4 would lose the anchor.
    s.prune_audit(&signer.sign(head_at(s, 6).await, T0), &pruned).await.unwrap();
    let cp4 = signer.sign(ChainHead { seq: 4, hash: [2; 32] }, T0);
    assert!(matches!(s.prune_audit(&cp4, &pruned).await, Err(StoreError::NotFound)));
    assert_eq!(verify_all(s).await.1, 5);
}

async fn meta_init_sets_only_once(env: &Env) {
    let s = &*env.store;
    assert_eq!(s.meta_init("installation_id", "first").await.unwrap(), "first");
    assert_eq!(s.meta_init("installation_id", "second").await.unwrap(), "first");
    assert_eq!(s.meta_get("installation_id").await.unwrap().as_deref(), Some("first"));
    assert_eq!(s.meta_get("other").await.unwrap(), None);

    // Racing initialisers all get the one value that won.
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            tokio::spawn(async move { store.meta_init("race", &format!("v{i}")).await.unwrap() })
        })
        .collect();
    let mut won = HashSet::new();
    for t in tasks {
        won.insert(t.await.unwrap());
    }
    assert_eq!(won.len(), 1);
    assert_eq!(s.meta_get("race").await.unwrap(), won.into_iter().next());
}

async fn revision_bumps_on_admin_changes_only(env: &Env) {
    let s = &*env.store;
    let b = env.open("node-b").await.unwrap();
    assert_eq!(s.revision().await.unwrap(), 0);
    s.create_user(&user("u1", "alice", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    assert_eq!(b.revision().await.unwrap(), 1);
    let f = factor("f1", "u1", FactorKind::Totp, "wg1.aa.bb.cc", 1);
    s.add_factor(&f, &admin_ev(types::ADMIN_FACTOR_ADDED)).await.unwrap();
    assert_eq!(b.revision().await.unwrap(), 2);
    let k = key("k1", PURPOSE_AUDIT_CHECKPOINT, 1, "wg1.x.y.z");
    s.insert_signing_key(&k, &admin_ev(types::KEYS_SIGNING_CREATED)).await.unwrap();
    assert_eq!(b.revision().await.unwrap(), 3);
    b.issue_bootstrap(&[1; 32], T0 + secs(3600), &admin_ev(types::ADMIN_BOOTSTRAP_ISSUED)).await.unwrap();
    assert_eq!(s.revision().await.unwrap(), 4);
    let sealed = s.sealed_values().await.unwrap();
    assert!(s.replace_sealed(&sealed[0], "wg1.new.new.new").await.unwrap());
    assert_eq!(s.revision().await.unwrap(), 5);

    // Neither refused changes nor routine writes move it.
    let dup = s.create_user(&user("u2", "alice", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await;
    assert!(matches!(dup, Err(StoreError::UsernameTaken)));
    assert!(!s.replace_sealed(&sealed[0], "wg1.stale.stale.stale").await.unwrap());
    s.append_audit(&[ev(1)]).await.unwrap();
    s.raise_audit_mark(AuditMark::Exported, 1).await.unwrap();
    s.insert_checkpoint(&signer().sign(head_at(s, 1).await, T0)).await.unwrap();
    s.meta_init("k", "v").await.unwrap();
    assert_eq!(b.revision().await.unwrap(), 5);
    // Each administrative change left exactly one audit record.
    assert_eq!(s.audit_count().await.unwrap(), 5);
}

async fn users_create_and_look_up(env: &Env) {
    let s = &*env.store;
    let mut alice = user("u-alice", "alice", false).with_roles(["nurse".to_owned(), "charge:4b".to_owned()]);
    alice.employee_id = Some("E-1042".into());
    alice.attempts = Attempts {
        consecutive_failures: 2,
        last_failure_at: Some(T0 + time::Duration::microseconds(7)),
        locked_until: None,
    };
    let factors = [
        factor("f-pass", "u-alice", FactorKind::Passphrase, PHC, 1),
        factor("f-totp", "u-alice", FactorKind::Totp, "wg1.k.n.c", 2),
    ];
    let created = admin_ev(types::ADMIN_USER_CREATED).subject("u-alice");
    s.create_user(&alice, &factors, &created).await.unwrap();
    assert_eq!(s.user_by_username(&Username::parse("alice").unwrap()).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_username(&Username::parse("ALICE").unwrap()).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_id("u-alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.user_by_username(&Username::parse("bob").unwrap()).await.unwrap(), None);
    assert_eq!(s.user_by_id("u-nobody").await.unwrap(), None);
    assert_eq!(s.factors_of("u-alice").await.unwrap(), factors);
    assert_eq!(last_type(s).await, types::ADMIN_USER_CREATED);
    let body: AuditRecord = serde_json::from_str(&s.audit_records(0, 1).await.unwrap()[0].body).unwrap();
    assert_eq!(body.subject.as_deref(), Some("u-alice"));
    assert_eq!(s.count_admins().await.unwrap(), 0);

    // Taken name: refused, and neither the user, its factors nor an audit record appear.
    let before = snapshot(s).await;
    let imposter = user("u-imposter", "alice", true);
    let f = [factor("f-imp", "u-imposter", FactorKind::Totp, "wg1.a.b.c", 1)];
    let r = s.create_user(&imposter, &f, &admin_ev(types::ADMIN_USER_CREATED)).await;
    assert!(matches!(r, Err(StoreError::UsernameTaken)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.user_by_id("u-imposter").await.unwrap(), None);
    assert!(s.factors_of("u-imposter").await.unwrap().is_empty());

    // Only active administrators count.
    let root = User { status: AccountStatus::Disabled, ..user("u-root", "root", true) };
    let invited = User { status: AccountStatus::Invited, ..user("u-new", "newadmin", true) };
    for u in [&root, &invited] {
        s.create_user(u, &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    }
    assert_eq!(s.count_admins().await.unwrap(), 0);
    s.create_user(&user("u-boss", "boss", true), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    s.create_user(&user("u-carol", "carol", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    assert_eq!(s.count_admins().await.unwrap(), 1);
    assert_eq!(s.user_by_id("u-root").await.unwrap(), Some(root));
    assert_eq!(s.user_by_id("u-new").await.unwrap(), Some(invited));
}

async fn factors_add_and_list(env: &Env) {
    let s = &*env.store;
    s.create_user(&user("u1", "alice", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let mut later = factor("f-b", "u1", FactorKind::Webauthn, "wg1.w.w.w", 20);
    later.last_used_at = Some(T0 + time::Duration::microseconds(5_000_001));
    later.params = serde_json::json!({ "aaguid": "ee882879-721c-4913-9775-3dfcce97072a", "uv": true });
    later.counter = Some(41);
    later.credential_id = Some("Y3JlZGVudGlhbA".into());
    let earlier = factor("f-z", "u1", FactorKind::RecoveryCodes, "wg1.r.r.r", 10);
    s.add_factor(&later, &admin_ev(types::ADMIN_FACTOR_ADDED)).await.unwrap();
    s.add_factor(&earlier, &admin_ev(types::ADMIN_FACTOR_ADDED)).await.unwrap();
    assert_eq!(s.factors_of("u1").await.unwrap(), [earlier, later]);
    assert_eq!(last_type(s).await, types::ADMIN_FACTOR_ADDED);

    let before = snapshot(s).await;
    let orphan = factor("f-o", "u-missing", FactorKind::Totp, "wg1.o.o.o", 1);
    let r = s.add_factor(&orphan, &admin_ev(types::ADMIN_FACTOR_ADDED)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert!(s.factors_of("u-missing").await.unwrap().is_empty());
}

async fn signing_keys_newest_first_per_purpose(env: &Env) {
    let s = &*env.store;
    let k1 = key("k1", PURPOSE_AUDIT_CHECKPOINT, 1, "wg1.k1.n.c");
    let k2 = key("k2", PURPOSE_AUDIT_CHECKPOINT, 2, "wg1.k2.n.c");
    let other = key("k3", "token-signing", 3, "wg1.k3.n.c");
    for k in [&k1, &other, &k2] {
        s.insert_signing_key(k, &admin_ev(types::KEYS_SIGNING_CREATED)).await.unwrap();
    }
    assert_eq!(s.signing_keys(PURPOSE_AUDIT_CHECKPOINT).await.unwrap(), [k2, k1.clone()]);
    assert_eq!(s.signing_keys("token-signing").await.unwrap(), [other]);
    assert!(s.signing_keys("nothing").await.unwrap().is_empty());
    assert_eq!(s.audit_count().await.unwrap(), 3);
    assert_eq!(last_type(s).await, types::KEYS_SIGNING_CREATED);
    let r = s.insert_signing_key(&k1, &admin_ev(types::KEYS_SIGNING_CREATED)).await;
    assert!(r.is_err());
    assert_eq!(s.audit_count().await.unwrap(), 3);
}

async fn bootstrap_issue_and_redeem(env: &Env) {
    let s = &*env.store;
    let digest = [1u8; 32];
    let expires = T0 + secs(3600);
    s.issue_bootstrap(&digest, expires, &admin_ev(types::ADMIN_BOOTSTRAP_ISSUED)).await.unwrap();
    assert!(s.bootstrap_pending(T0).await.unwrap());
    assert!(!s.bootstrap_pending(expires).await.unwrap());
    assert_eq!(last_type(s).await, types::ADMIN_BOOTSTRAP_ISSUED);

    let root = user("u-root", "root", true);
    let factors = [factor("f-root", "u-root", FactorKind::Passphrase, PHC, 0)];
    let redeemed = admin_ev(types::ADMIN_BOOTSTRAP_REDEEMED);
    let before = snapshot(s).await;
    for (d, now) in [([2u8; 32], T0), (digest, expires), (digest, expires + secs(1))] {
        let r = s.redeem_bootstrap(&d, now, &root, &factors, &redeemed).await;
        assert!(matches!(r, Err(StoreError::BootstrapInvalid)), "{r:?}");
    }
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.user_by_id("u-root").await.unwrap(), None);

    s.redeem_bootstrap(&digest, expires - secs(1), &root, &factors, &redeemed).await.unwrap();
    assert_eq!(s.user_by_username(&root.username).await.unwrap(), Some(root.clone()));
    assert_eq!(s.factors_of("u-root").await.unwrap(), factors);
    assert_eq!(s.count_admins().await.unwrap(), 1);
    assert!(!s.bootstrap_pending(T0).await.unwrap());
    assert_eq!(last_type(s).await, types::ADMIN_BOOTSTRAP_REDEEMED);
    assert_eq!(s.revision().await.unwrap(), before.2 + 1);
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 1);

    // Used once only; and no new link once an administrator exists.
    let after = snapshot(s).await;
    let again = user("u-root2", "root2", true);
    let r = s.redeem_bootstrap(&digest, T0, &again, &[], &redeemed).await;
    assert!(matches!(r, Err(StoreError::BootstrapInvalid)), "{r:?}");
    let r = s.issue_bootstrap(&[3; 32], expires, &admin_ev(types::ADMIN_BOOTSTRAP_ISSUED)).await;
    assert!(matches!(r, Err(StoreError::AdminExists)), "{r:?}");
    assert_eq!(snapshot(s).await, after);
    assert_eq!(s.user_by_id("u-root2").await.unwrap(), None);
}

async fn bootstrap_replaced_and_refused_once_an_admin_exists(env: &Env) {
    let s = &*env.store;
    let b = env.open("node-b").await.unwrap();
    let expires = T0 + secs(3600);
    let issued = admin_ev(types::ADMIN_BOOTSTRAP_ISSUED);
    s.issue_bootstrap(&[1; 32], expires, &issued).await.unwrap();
    b.issue_bootstrap(&[2; 32], expires, &issued).await.unwrap();
    let root = user("u-root", "root", true);
    let redeemed = admin_ev(types::ADMIN_BOOTSTRAP_REDEEMED);
    let r = s.redeem_bootstrap(&[1; 32], T0, &root, &[], &redeemed).await;
    assert!(matches!(r, Err(StoreError::BootstrapInvalid)), "replaced token still worked: {r:?}");

    // An administrator appears some other way while the link is pending.
    s.create_user(&user("u-admin", "admin", true), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let before = snapshot(s).await;
    assert!(before.4, "the link is still pending");
    let r = b.redeem_bootstrap(&[2; 32], T0, &root, &[], &redeemed).await;
    assert!(matches!(r, Err(StoreError::AdminExists)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.user_by_id("u-root").await.unwrap(), None);
}

async fn bootstrap_redeemed_once_under_a_race(env: &Env) {
    let b = env.open("node-b").await.unwrap();
    env.store.issue_bootstrap(&[1; 32], T0 + secs(3600), &admin_ev(types::ADMIN_BOOTSTRAP_ISSUED)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            tokio::spawn(async move {
                let admin = user(&format!("u-root{i}"), &format!("root{i}"), true);
                store.redeem_bootstrap(&[1; 32], T0, &admin, &[], &admin_ev(types::ADMIN_BOOTSTRAP_REDEEMED)).await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::BootstrapInvalid) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(env.store.count_admins().await.unwrap(), 1);
    assert_eq!(env.store.audit_count().await.unwrap(), 2);
    assert_eq!(verify_all(&*env.store).await.1, 2);
}

async fn sealed_values_and_compare_and_swap(env: &Env) {
    let s = &*env.store;
    let ring = Keyring::generate().unwrap();
    let totp_sealed = ring.seal(&Factor::seal_context("f-totp"), b"JBSWY3DPEHPK3PXP").unwrap();
    let key_sealed = ring.seal(&SigningKeyRecord::seal_context("k1"), &[7; 32]).unwrap();
    let factors = [
        factor("f-pass", "u1", FactorKind::Passphrase, PHC, 1),
        factor("f-totp", "u1", FactorKind::Totp, &totp_sealed, 2),
    ];
    s.create_user(&user("u1", "alice", false), &factors, &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    s.insert_signing_key(&key("k1", PURPOSE_AUDIT_CHECKPOINT, 1, &key_sealed), &admin_ev(types::KEYS_SIGNING_CREATED))
        .await
        .unwrap();
    let totp_ref = SealedRef {
        column: SealedColumn::FactorSecret,
        id: "f-totp".into(),
        context: "factor:f-totp:secret".into(),
        sealed: totp_sealed.clone(),
    };
    let key_ref = SealedRef {
        column: SealedColumn::SigningKeyPrivate,
        id: "k1".into(),
        context: "signing_key:k1:private".into(),
        sealed: key_sealed.clone(),
    };
    assert_eq!(s.sealed_values().await.unwrap(), [totp_ref.clone(), key_ref.clone()]);

    // Rotation: re-wrap under a new KEK, compare-and-swap each value.
    let ring = ring.with_new_active(Kek::generate().unwrap());
    let new_totp = ring.rewrap(&totp_ref.context, &totp_ref.sealed).unwrap().unwrap();
    let new_key = ring.rewrap(&key_ref.context, &key_ref.sealed).unwrap().unwrap();
    assert!(s.replace_sealed(&totp_ref, &new_totp).await.unwrap());
    assert!(s.replace_sealed(&key_ref, &new_key).await.unwrap());
    // A stale `old` (someone else already replaced it) changes nothing.
    assert!(!s.replace_sealed(&totp_ref, "wg1.stale.x.y").await.unwrap());
    let missing = SealedRef { id: "f-missing".into(), ..totp_ref.clone() };
    assert!(!s.replace_sealed(&missing, "wg1.x.y.z").await.unwrap());

    let stored = s.factors_of("u1").await.unwrap();
    assert_eq!(stored[0].secret, PHC);
    assert_eq!(stored[1].secret, new_totp);
    assert_eq!(
        ring.retire_inactive().open(&totp_ref.context, &stored[1].secret).unwrap().as_slice(),
        b"JBSWY3DPEHPK3PXP"
    );
    assert_eq!(s.signing_keys(PURPOSE_AUDIT_CHECKPOINT).await.unwrap()[0].private_sealed, new_key);
    let now: Vec<_> = s.sealed_values().await.unwrap().into_iter().map(|r| r.sealed).collect();
    assert_eq!(now, [new_totp, new_key]);
}

async fn newer_schema_is_refused(env: &Env) {
    env.raw_exec(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00'::bytea, 0)",
    )
    .await;
    match env.open("node-b").await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("newer version"), "{msg}"),
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

/// Group-commit throughput: batches of 1000, as the audit writer produces under load.
/// Run with `cargo test --release -p wardgate-store -- --ignored throughput --nocapture`;
/// the targets are asserted only in optimised builds.
async fn throughput(env: &Env, target_per_sec: f64) {
    let batches: Vec<Vec<AuditEvent>> = (0..50).map(|b| (b * 1000..(b + 1) * 1000).map(ev).collect()).collect();
    let started = std::time::Instant::now();
    for batch in &batches {
        env.store.append_audit(batch).await.unwrap();
    }
    let rate = 50_000.0 / started.elapsed().as_secs_f64();
    eprintln!("{}: {rate:.0} appends/s in batches of 1000", env.store.backend());
    assert_eq!(verify_all(&*env.store).await.1, 50_000);
    if !cfg!(debug_assertions) {
        assert!(rate >= target_per_sec, "{rate:.0}/s is below the {target_per_sec}/s target");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark"]
async fn throughput_sqlite() {
    run(Env::sqlite().await, |env| Box::pin(throughput(env, 50_000.0))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark"]
async fn throughput_postgres() {
    if let Some(env) = Env::postgres().await {
        run(env, |env| Box::pin(throughput(env, 20_000.0))).await;
    }
}

// --- SQLite files -------------------------------------------------------------------------

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

#[tokio::test]
async fn sqlite_file_never_holds_a_plaintext_factor_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wardgate.db");
    let store = SqliteStore::open(&path, "node-a").await.unwrap();
    let plaintext = b"KNOWNPLAINTEXTTOTPSECRET234567AB";
    let ring = Keyring::generate().unwrap();
    let sealed = ring.seal(&Factor::seal_context("f-totp"), plaintext).unwrap();
    let f = factor("f-totp", "u1", FactorKind::Totp, &sealed, 1);
    store.create_user(&user("u1", "alice", false), &[f], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();

    // While open (the row may still be only in the WAL) and after close (checkpointed).
    let open_bytes = [file_bytes(&path), file_bytes(&wal_path(&path))].concat();
    assert!(contains(&open_bytes, sealed.as_bytes()), "sealed value not found: looking at the wrong bytes");
    assert!(!contains(&open_bytes, plaintext));
    store.close().await;
    let closed_bytes = file_bytes(&path);
    assert!(contains(&closed_bytes, sealed.as_bytes()));
    assert!(!contains(&closed_bytes, plaintext));

    let store = SqliteStore::open(&path, "node-a").await.unwrap();
    let back = store.factors_of("u1").await.unwrap().remove(0).secret;
    assert_eq!(ring.open(&Factor::seal_context("f-totp"), &back).unwrap().as_slice(), plaintext);
}

async fn assert_refused_untouched(path: &Path) {
    let before = file_bytes(path);
    let siblings_before: Vec<_> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    match SqliteStore::open(path, "node-a").await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains(&path.display().to_string()), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(file_bytes(path), before, "the damaged file was modified");
    let siblings_after: Vec<_> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(siblings_after.len(), siblings_before.len(), "{siblings_after:?}");
}

#[tokio::test]
async fn sqlite_garbage_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wardgate.db");
    std::fs::write(&path, b"this is not a database, it is a shopping list\n".repeat(100)).unwrap();
    assert_refused_untouched(&path).await;
    std::fs::write(&path, b"SQLite format 3\0short").unwrap();
    assert_refused_untouched(&path).await;
}

#[tokio::test]
async fn sqlite_truncated_database_is_refused_and_left_alone() {
    for keep in [100, 4096, 3 * 4096 + 17] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wardgate.db");
        let store = SqliteStore::open(&path, "node-a").await.unwrap();
        store.append_audit(&(0..500).map(ev).collect::<Vec<_>>()).await.unwrap();
        store.close().await;
        assert!(!wal_path(&path).exists());
        assert!(file_bytes(&path).len() > keep * 2);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(keep as u64).unwrap();
        assert_refused_untouched(&path).await;
    }
}

#[tokio::test]
async fn sqlite_database_of_another_application_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::query("CREATE TABLE recipes (name TEXT)").execute(&mut c).await.unwrap();
    c.close().await.unwrap();
    let before = file_bytes(&path);
    match SqliteStore::open(&path, "node-a").await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("not a Wardgate database"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Not even switched to WAL mode.
    assert_eq!(file_bytes(&path), before);
    assert!(!wal_path(&path).exists());
}

#[tokio::test]
async fn sqlite_data_survives_reopening_and_open_picks_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("wardgate.db");
    assert!(matches!(SqliteStore::open(&path, "n").await, Err(StoreError::Unavailable(_))), "missing directory");
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    let store = wardgate_store::open(&DatabaseLocation::Sqlite(path.clone()), "node-a").await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    let head = store.append_audit(&(0..5).map(ev).collect::<Vec<_>>()).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&path, "node-a").await.unwrap();
    assert_eq!(store.audit_head().await.unwrap(), head);
    assert_eq!(verify_all(&store).await, (head, 5));
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    let r = PostgresStore::open("postgres://wardgate:secret-password@127.0.0.1:1/nothing", "node-a").await;
    match r {
        Err(StoreError::Unavailable(msg)) => assert!(!msg.contains("secret-password"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let r = wardgate_store::open(&DatabaseLocation::Postgres("postgres://127.0.0.1:1/x".into()), "n").await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))));
}

/// Nodes reach a shared PostgreSQL over the network: `sslmode=require` (or `verify-full`
/// with the hospital's CA in the system store or `sslrootcert=`) must give TLS.
#[tokio::test]
async fn postgres_connections_use_tls_when_the_url_asks() {
    let Some(env) = Env::postgres().await else { return };
    let Backend::Postgres { url, .. } = &env.backend else { unreachable!() };
    let tls_url = format!("{url}&sslmode=require");
    let mut probe = sqlx::PgConnection::connect(&tls_url).await;
    let server_ssl: Option<String> = match &mut probe {
        Ok(c) => sqlx::query_scalar("SHOW ssl").fetch_one(&mut *c).await.ok(),
        Err(_) => None,
    };
    if server_ssl.as_deref() != Some("on") {
        eprintln!("PostgreSQL TLS check skipped: the server has ssl = off");
        env.finish().await;
        return;
    }
    let mut c = probe.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&mut c).await.unwrap();
    assert!(encrypted, "sslmode=require gave a plaintext connection");
    c.close().await.unwrap();
    let store = PostgresStore::open(&tls_url, "node-tls").await.unwrap();
    store.append_audit(&[ev(1)]).await.unwrap();
    assert_eq!(store.audit_head().await.unwrap().seq, 1);
    drop(store);
    env.finish().await;
}
