//! Back-channel logout: the notices a session's end queues with the revocation of its
//! grants, their claiming under a lease by one node at a time, delivery and retry
//! bookkeeping, the sessions that ended without their grants, and the housekeeping that
//! deletes what the provider no longer needs.

use std::collections::HashSet;
use std::sync::Arc;

use time::OffsetDateTime;
use wardgate_core::oidc::{LogoutNotice, OidcClient};
use wardgate_core::session::{Session, SessionPolicy, SessionState};
use wardgate_store::{CodeRedemption, OidcPurged, Rotation, Store};

use crate::harness::*;
use crate::oidc::{at, client, code, refresh, service_grant, session_grant, with_client, with_grant, with_user};

conformance!(
    ending_a_session_queues_one_notice_per_client_that_asked,
    due_notices_are_claimed_by_one_node_at_a_time,
    a_notice_is_claimed_once_under_a_race,
    outcomes_are_recorded_by_the_claimant_only,
    sessions_that_ended_without_their_grants_are_found,
    purging_keeps_what_reuse_detection_and_delivery_still_need,
);

// --- fixtures -----------------------------------------------------------------------------

const LEASE: time::Duration = time::Duration::seconds(60);

/// A notice as queued when `session_id` ended at `when`, for a grant made by `session_grant`.
fn queued(n: &LogoutNotice, session_id: &str, client_id: &str, when: OffsetDateTime, reason: &str) -> LogoutNotice {
    LogoutNotice {
        id: n.id,
        session_id: session_id.into(),
        client_id: client_id.into(),
        user_id: Some("u1".into()),
        correlation_id: format!("corr-{session_id}"),
        reason: reason.into(),
        created_at: when,
        attempts: 0,
        next_attempt_at: when,
        claimed_by: None,
        claimed_until: None,
        last_error: None,
        delivered_at: None,
        gave_up_at: None,
    }
}

/// A grant of `client_id` through `session_id` (no refresh token), then the session's end at `when`.
async fn ended(s: &dyn Store, session_id: &str, client_id: &str, when: OffsetDateTime) {
    let g = session_grant(&format!("g-{session_id}"), client_id, session_id);
    s.insert_grant(&g, None, &typed_ev("oidc.grant.issued")).await.unwrap();
    s.revoke_grants_of_session(session_id, when, "signed out", &typed_ev("oidc.grant.revoked")).await.unwrap();
}

async fn only_notice(s: &dyn Store, session_id: &str) -> LogoutNotice {
    let mut all = s.logout_notices_of_session(session_id).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn sessions_of(notices: &[LogoutNotice]) -> Vec<&str> {
    notices.iter().map(|n| n.session_id.as_str()).collect()
}

// --- cases --------------------------------------------------------------------------------

async fn ending_a_session_queues_one_notice_per_client_that_asked(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    with_client(s, "c2").await;
    let quiet = OidcClient { backchannel_logout_uri: None, ..client("c3", "Quiet app") };
    s.create_client(&quiet, &typed_ev("oidc.client.created")).await.unwrap();
    // s1: one grant of c2, two of c1, one of c3 (which asked for nothing); s2: one of c1.
    for (id, client_id, session_id) in
        [("g1", "c2", "s1"), ("g2", "c1", "s1"), ("g3", "c1", "s1"), ("g4", "c3", "s1"), ("g5", "c1", "s2")]
    {
        s.insert_grant(&session_grant(id, client_id, session_id), None, &typed_ev("oidc.grant.issued")).await.unwrap();
    }
    s.insert_grant(&service_grant("g6", "c1"), None, &typed_ev("oidc.grant.issued")).await.unwrap();
    assert!(s.logout_notices_of_session("s1").await.unwrap().is_empty());
    let before = snapshot(s).await;

    let revoke = typed_ev("oidc.grant.revoked");
    let ended = s.revoke_grants_of_session("s1", at(10), "idle timeout", &revoke).await.unwrap();
    assert_eq!(ended.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["g1", "g2", "g3", "g4"]);
    // One per client that has a back-channel URI, in the order its grants came back.
    let notices = s.logout_notices_of_session("s1").await.unwrap();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert_eq!(notices[0], queued(&notices[0], "s1", "c2", at(10), "idle timeout"));
    assert_eq!(notices[1], queued(&notices[1], "s1", "c1", at(10), "idle timeout"));
    assert_ne!(notices[0].id, notices[1].id);
    // Queued with the revocation, whose one record is all that is written.
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2));
    assert_eq!(last_type(s).await, "oidc.grant.revoked");
    assert!(s.logout_notices_of_session("s2").await.unwrap().is_empty(), "another session is not ended");

    // Ending it again revokes nothing and owes nothing more.
    assert!(s.revoke_grants_of_session("s1", at(20), "signed out", &revoke).await.unwrap().is_empty());
    assert_eq!(s.logout_notices_of_session("s1").await.unwrap(), notices);
    assert!(s.revoke_grants_of_session("s-none", at(20), "signed out", &revoke).await.unwrap().is_empty());
    assert!(s.logout_notices_of_session("s-none").await.unwrap().is_empty());

    // A session whose only application asked for nothing owes nothing.
    s.insert_grant(&session_grant("g7", "c3", "s3"), None, &typed_ev("oidc.grant.issued")).await.unwrap();
    assert_eq!(s.revoke_grants_of_session("s3", at(30), "signed out", &revoke).await.unwrap().len(), 1);
    assert!(s.logout_notices_of_session("s3").await.unwrap().is_empty());

    // Another handle (the command line beside the server) queues them just the same.
    let cli = env.open("cli").await.unwrap();
    cli.revoke_grants_of_session("s2", at(40), "account disabled", &revoke).await.unwrap();
    let n = only_notice(s, "s2").await;
    assert_eq!(n, queued(&n, "s2", "c1", at(40), "account disabled"));

    // A deleted client is told nothing more: its notices go with it.
    s.delete_client("c2", &typed_ev("oidc.client.deleted")).await.unwrap();
    assert_eq!(s.logout_notices_of_session("s1").await.unwrap(), &notices[1..]);
    assert_eq!(verify_all(s).await.1, s.audit_count().await.unwrap() as u64);
}

async fn due_notices_are_claimed_by_one_node_at_a_time(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    for (i, session_id) in ["sa", "sb", "sc"].into_iter().enumerate() {
        ended(s, session_id, "c1", at(10 + i as i64)).await;
    }
    let b = env.open("node-b").await.unwrap();
    let before = snapshot(s).await;

    // Not due before the session ended.
    assert!(s.claim_logout_notices("node-a", at(9), LEASE, 10).await.unwrap().is_empty());
    // Earliest due first, up to the limit, leased to the claimant.
    let first = s.claim_logout_notices("node-a", at(20), LEASE, 2).await.unwrap();
    assert_eq!(sessions_of(&first), ["sa", "sb"]);
    for n in &first {
        let mut expected = queued(n, &n.session_id, "c1", n.created_at, "signed out");
        expected.claimed_by = Some("node-a".into());
        expected.claimed_until = Some(at(20) + LEASE);
        assert_eq!(*n, expected);
        assert_eq!(only_notice(s, &n.session_id).await, expected, "stored as returned");
    }
    // Another node gets the rest, and then nothing while the leases last.
    assert_eq!(sessions_of(&b.claim_logout_notices("node-b", at(21), LEASE, 10).await.unwrap()), ["sc"]);
    assert!(b.claim_logout_notices("node-b", at(79), LEASE, 10).await.unwrap().is_empty());
    assert!(s.claim_logout_notices("node-a", at(79), LEASE, 10).await.unwrap().is_empty(), "not twice by one node");

    // The first node stopped: once its leases have run out, the other takes them over, and
    // the first node's late word no longer counts.
    let taken = b.claim_logout_notices("node-b", at(20) + LEASE, LEASE, 10).await.unwrap();
    assert_eq!(sessions_of(&taken), ["sa", "sb"]);
    assert!(taken.iter().all(|n| n.claimed_by.as_deref() == Some("node-b") && n.attempts == 0));
    assert!(!s.logout_notice_delivered(first[0].id, "node-a", at(81)).await.unwrap());
    assert!(!s.logout_notice_failed(first[1].id, "node-a", at(81), "timed out", Some(at(90))).await.unwrap());
    assert_eq!(only_notice(s, "sa").await, taken[0]);
    // Claims are bookkeeping: no record, no revision.
    assert_eq!(snapshot(s).await, before);
}

async fn a_notice_is_claimed_once_under_a_race(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    const NOTICES: usize = 24;
    for i in 0..NOTICES {
        ended(s, &format!("s{i}"), "c1", at(i as i64)).await;
    }
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, node) =
                if i % 2 == 0 { (Arc::clone(&env.store), "node-a") } else { (Arc::clone(&b), "node-b") };
            tokio::spawn(async move {
                // Until a claim finds nothing: on PostgreSQL a claim skips rows another is
                // claiming at that moment, so one empty answer is not the end of the queue.
                // Bounded, so that a store handing out notices again fails instead of spinning.
                let mut got = Vec::new();
                while got.len() <= NOTICES {
                    let batch = store.claim_logout_notices(node, at(100), LEASE, 5).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    got.extend(batch.into_iter().map(|n| n.id));
                }
                got
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "notice {id} claimed twice");
        }
    }
    assert!(s.claim_logout_notices("node-a", at(100), LEASE, 100).await.unwrap().is_empty());
    assert_eq!(seen.len(), NOTICES, "every notice claimed by someone");
}

async fn outcomes_are_recorded_by_the_claimant_only(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    ended(s, "s1", "c1", at(10)).await;
    let b = env.open("node-b").await.unwrap();
    let before = snapshot(s).await;
    let n = s.claim_logout_notices("node-a", at(10), LEASE, 10).await.unwrap().remove(0);

    // Another node cannot report on a notice it does not hold.
    assert!(!b.logout_notice_failed(n.id, "node-b", at(11), "x", Some(at(16))).await.unwrap());
    assert!(!b.logout_notice_delivered(n.id, "node-b", at(11)).await.unwrap());
    assert_eq!(only_notice(s, "s1").await, n);

    // A failure is counted, its reason kept, the lease released, and the notice due later.
    let why = "the application answered 500 Internal Server Error";
    assert!(s.logout_notice_failed(n.id, "node-a", at(11), why, Some(at(16))).await.unwrap());
    let failed = LogoutNotice {
        attempts: 1,
        last_error: Some(why.into()),
        next_attempt_at: at(16),
        claimed_by: None,
        claimed_until: None,
        ..n.clone()
    };
    assert_eq!(only_notice(s, "s1").await, failed);
    // One report per claim.
    assert!(!s.logout_notice_delivered(n.id, "node-a", at(12)).await.unwrap());
    assert!(s.claim_logout_notices("node-a", at(15), LEASE, 10).await.unwrap().is_empty(), "not due yet");
    let again = b.claim_logout_notices("node-b", at(16), LEASE, 10).await.unwrap().remove(0);
    assert_eq!((again.id, again.attempts), (n.id, 1));

    // The lease ran out without anyone taking it over: the claimant's report still counts.
    let late = at(16) + LEASE + secs(5);
    assert!(b.logout_notice_delivered(n.id, "node-b", late).await.unwrap());
    let delivered = LogoutNotice { attempts: 2, delivered_at: Some(late), ..failed.clone() };
    assert_eq!(only_notice(s, "s1").await, delivered);
    // Delivered is final: never claimed or reported on again.
    assert!(s.claim_logout_notices("node-a", at(100_000), LEASE, 10).await.unwrap().is_empty());
    assert!(!b.logout_notice_delivered(n.id, "node-b", late).await.unwrap());
    assert!(!b.logout_notice_failed(n.id, "node-b", late, "x", None).await.unwrap());
    assert_eq!(only_notice(s, "s1").await, delivered);
    // All of it bookkeeping: the deliverer audits the attempts, not the store.
    assert_eq!(snapshot(s).await, before);

    // Given up: counted, the time kept, and never claimed again.
    ended(s, "s2", "c1", at(20)).await;
    let m = s.claim_logout_notices("node-a", at(30), LEASE, 10).await.unwrap().remove(0);
    assert!(s.logout_notice_failed(m.id, "node-a", at(31), "connection refused", None).await.unwrap());
    let gave_up = LogoutNotice {
        attempts: 1,
        last_error: Some("connection refused".into()),
        gave_up_at: Some(at(31)),
        claimed_by: None,
        claimed_until: None,
        ..m.clone()
    };
    assert_eq!(only_notice(s, "s2").await, gave_up);
    assert_eq!(gave_up.next_attempt_at, at(20), "the last schedule stays as it was");
    assert!(s.claim_logout_notices("node-a", at(100_000), LEASE, 10).await.unwrap().is_empty());
    assert!(!s.logout_notice_delivered(m.id, "node-a", at(32)).await.unwrap());
}

async fn sessions_that_ended_without_their_grants_are_found(env: &Env) {
    let s = &*env.store;
    with_user(s, "u1", "alice").await;
    with_client(s, "c1").await;
    let policy = SessionPolicy::default();
    assert_eq!((policy.idle_timeout, policy.absolute_lifetime), (secs(15 * 60), secs(12 * 3600)));
    let h = 3600;
    let now = T0 + secs(20 * h);
    let mk = |id: &str, digest: u8, created: i64, seen: i64| Session {
        created_at: T0 + secs(created),
        last_seen_at: T0 + secs(seen),
        ..session(id, "u1", digest, 0)
    };
    let sessions = [
        // Seen a minute ago: live.
        mk("s-active", 1, 19 * h, 20 * h - 60),
        // Idle for half an hour, idle for exactly the timeout, past its lifetime though busy.
        mk("s-idle", 2, 19 * h, 19 * h + 30 * 60),
        mk("s-edge", 3, 19 * h, 20 * h - 15 * 60),
        mk("s-old", 4, h, 20 * h - 30),
        // Idle, but nothing to end: no grant, or its only grant already revoked.
        mk("s-quiet", 5, 19 * h, 19 * h),
        mk("s-spent", 6, 19 * h, 19 * h),
        // Revoked an hour ago with its grant left live (its process stopped in between),
        // and revoked a moment ago (still being ended by whoever revoked it).
        mk("s-dropped", 7, 18 * h, 18 * h),
        mk("s-revoking", 8, 19 * h, 20 * h - 60),
    ];
    for x in &sessions {
        s.create_session(x, None, &typed_ev("auth.session.created")).await.unwrap();
        if x.id != "s-quiet" {
            let g = session_grant(&format!("g-{}", x.id), "c1", &x.id);
            s.insert_grant(&g, None, &typed_ev("oidc.grant.issued")).await.unwrap();
        }
    }
    assert!(s.revoke_grant("g-s-spent", T0 + secs(19 * h), &typed_ev("oidc.grant.revoked")).await.unwrap());
    s.revoke_session("u1", "s-dropped", T0 + secs(19 * h), &typed_ev("auth.session.revoked")).await.unwrap();
    s.revoke_session("u1", "s-revoking", now - secs(10), &typed_ev("auth.session.revoked")).await.unwrap();

    let found = s.sessions_to_end(&policy, now, now - secs(60), 100).await.unwrap();
    // Least recently seen first.
    let ids: Vec<_> = found.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["s-dropped", "s-idle", "s-edge", "s-old"]);
    assert_eq!(found[0], Session { revoked_at: Some(T0 + secs(19 * h)), ..sessions[6].clone() });
    assert_eq!(found[1..], [sessions[1].clone(), sessions[2].clone(), sessions[3].clone()]);
    // The store and the domain agree on what has ended.
    let states: Vec<_> = found.iter().map(|x| x.state(&policy, now)).collect();
    use SessionState::*;
    assert_eq!(states, [Revoked, IdleExpired, IdleExpired, LifetimeExpired]);
    assert_eq!(sessions[2].state(&policy, now - time::Duration::microseconds(1)), Active);
    assert!(
        !s.sessions_to_end(&policy, now - time::Duration::microseconds(1), now, 100)
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == "s-edge")
    );
    // Up to the limit.
    let first_two = s.sessions_to_end(&policy, now, now - secs(60), 2).await.unwrap();
    assert_eq!(first_two.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["s-dropped", "s-idle"]);

    // Once their grants are revoked there is nothing left to end.
    for x in &found {
        s.revoke_grants_of_session(&x.id, now, "idle timeout", &typed_ev("oidc.grant.revoked")).await.unwrap();
    }
    assert!(s.sessions_to_end(&policy, now, now - secs(60), 100).await.unwrap().is_empty());
    // A minute on, the session revoked a moment ago counts as left half-ended.
    let later = now + secs(60);
    let found = s.sessions_to_end(&policy, later, later - secs(60), 100).await.unwrap();
    assert_eq!(found.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["s-revoking"]);
}

async fn purging_keeps_what_reuse_detection_and_delivery_still_need(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await; // access tokens live 300 s
    let cutoff = T0 + secs(1000);
    let (issue, revoke) = (typed_ev("oidc.grant.issued"), typed_ev("oidc.grant.revoked"));
    let reuse = typed_ev("oidc.refresh.reused");

    // Grants: revoked before the cut-off (goes, with its token), revoked after it (stays);
    // live through a session, with a chain of spent tokens long expired and an unused
    // expired one; live with an unexpired token; live through a session with no token at
    // all; client credentials whose access token expired before the cut-off (goes) or after.
    with_grant(s, &session_grant("g-old", "c1", "s1"), 1).await;
    assert!(s.revoke_grant("g-old", T0 + secs(500), &revoke).await.unwrap());
    s.insert_grant(&session_grant("g-recent", "c1", "s2"), Some(&refresh(2, "g-recent", 1, 60)), &issue).await.unwrap();
    assert!(s.revoke_grant("g-recent", T0 + secs(2000), &revoke).await.unwrap());
    s.insert_grant(&session_grant("g-live", "c1", "s3"), Some(&refresh(3, "g-live", 1, 60)), &issue).await.unwrap();
    let r = s.rotate_refresh_token(&[3; 32], &refresh(4, "g-live", 10, 60), at(10), &reuse).await.unwrap();
    assert!(matches!(r, Rotation::Rotated(_)));
    let r = s.rotate_refresh_token(&[4; 32], &refresh(5, "g-live", 20, 60), at(20), &reuse).await.unwrap();
    assert!(matches!(r, Rotation::Rotated(_)));
    s.insert_grant(&session_grant("g-live2", "c1", "s4"), Some(&refresh(6, "g-live2", 900, 3600)), &issue)
        .await
        .unwrap();
    s.insert_grant(&session_grant("g-bare", "c1", "s5"), None, &issue).await.unwrap();
    s.insert_grant(&service_grant("g-cc-old", "c1"), None, &issue).await.unwrap();
    let cc_new = wardgate_core::oidc::Grant { created_at: T0 + secs(800), ..service_grant("g-cc-new", "c1") };
    s.insert_grant(&cc_new, None, &issue).await.unwrap();

    // Codes: expired unredeemed (goes); redeemed into a live grant (stays, so that a replay
    // still revokes it), into a grant purged now or revoked (go); unexpired (stays).
    for (digest, expires_in) in [(11, 60), (12, 60), (13, 60), (14, 60), (15, 5000)] {
        s.insert_auth_code(&code(digest, "c1", "s9", expires_in)).await.unwrap();
    }
    for (digest, grant_id) in [(12, "g-live"), (13, "g-old"), (14, "g-recent")] {
        assert!(matches!(s.redeem_auth_code(&[digest; 32], at(1), grant_id).await.unwrap(), CodeRedemption::Fresh(_)));
    }

    // Notices, each of its own session (whose grant, revoked at 100 s, goes too): delivered
    // or given up before the cut-off (go), delivered after it or still pending (stay).
    for n in ["n1", "n2", "n3", "n4"] {
        ended(s, n, "c1", T0 + secs(100)).await;
    }
    let claimed = s.claim_logout_notices("node-a", T0 + secs(100), LEASE, 10).await.unwrap();
    assert_eq!(sessions_of(&claimed), ["n1", "n2", "n3", "n4"]);
    assert!(s.logout_notice_delivered(claimed[0].id, "node-a", T0 + secs(200)).await.unwrap());
    assert!(s.logout_notice_failed(claimed[1].id, "node-a", T0 + secs(300), "gone", None).await.unwrap());
    assert!(s.logout_notice_delivered(claimed[2].id, "node-a", T0 + secs(1500)).await.unwrap());
    assert!(
        s.logout_notice_failed(claimed[3].id, "node-a", T0 + secs(120), "500", Some(T0 + secs(5000))).await.unwrap()
    );
    let before = snapshot(s).await;

    let purged = s.purge_oidc_history(cutoff).await.unwrap();
    // Grants g-old, g-cc-old and the notices' four; tokens 1 (with g-old), 2 and 5 (expired
    // unused); codes 11, 13 and 14; notices n1 and n2.
    assert_eq!(purged, OidcPurged { notices: 2, codes: 3, refresh_tokens: 3, grants: 6 });
    assert_eq!(snapshot(s).await, before, "housekeeping is not audited");
    // Nothing else has ended before the cut-off.
    assert_eq!(s.purge_oidc_history(cutoff).await.unwrap(), OidcPurged::default());

    for (id, kept) in [
        ("g-old", false),
        ("g-cc-old", false),
        ("g-n1", false),
        ("g-recent", true),
        ("g-live", true),
        ("g-live2", true),
        ("g-bare", true),
        ("g-cc-new", true),
    ] {
        assert_eq!(s.grant(id).await.unwrap().is_some(), kept, "grant {id}");
    }
    for (digest, kept) in [(1, false), (2, false), (5, false), (3, true), (4, true), (6, true)] {
        assert_eq!(s.refresh_token(&[digest; 32]).await.unwrap().is_some(), kept, "refresh token {digest}");
    }
    for (n, kept) in [("n1", 0), ("n2", 0), ("n3", 1), ("n4", 1)] {
        assert_eq!(s.logout_notices_of_session(n).await.unwrap().len(), kept, "notice {n}");
    }
    // A replayed code or refresh token of the live grant is still caught, and revokes it.
    let r = s.redeem_auth_code(&[12; 32], cutoff, "g-x").await.unwrap();
    assert!(matches!(&r, CodeRedemption::Reused(c) if c.grant_id.as_deref() == Some("g-live")), "{r:?}");
    assert_eq!(s.redeem_auth_code(&[13; 32], cutoff, "g-x").await.unwrap(), CodeRedemption::Unknown);
    assert!(matches!(s.redeem_auth_code(&[15; 32], cutoff, "g-y").await.unwrap(), CodeRedemption::Fresh(_)));
    let r = s.rotate_refresh_token(&[3; 32], &refresh(7, "g-live", 1000, 60), cutoff, &reuse).await.unwrap();
    assert!(matches!(r, Rotation::Reused(_)), "{r:?}");
}
