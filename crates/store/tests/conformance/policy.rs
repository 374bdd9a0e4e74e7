//! Numbered access-policy versions (proposal, activation, rejection, history) and
//! registered devices.

use std::collections::HashSet;
use std::sync::Arc;

use time::OffsetDateTime;
use wardgate_core::device::{Device, Posture};
use wardgate_core::policy::{NewPolicyVersion, PolicyVersion, VersionStatus};
use wardgate_store::{Store, StoreError};

use crate::harness::*;
use crate::oidc::{session_grant, with_client};

conformance!(
    proposals_are_numbered_in_order_and_listed_newest_first,
    activation_supersedes_the_active_version,
    a_version_is_activated_once_under_a_race,
    concurrent_proposals_get_distinct_numbers,
    a_proposal_is_rejected_once,
    each_policy_and_device_change_appends_its_event,
    devices_create_look_up_and_list,
    devices_update_every_mutable_field,
    privilege_role_expiry_and_session_limits_round_trip,
    policy_session_limits_decide_which_sessions_end,
);

// --- fixtures -----------------------------------------------------------------------------

fn at(s: i64) -> OffsetDateTime {
    // Sub-second, to show microseconds survive the round trip.
    T0 + secs(s) + time::Duration::microseconds(654_321)
}

fn proposal(i: i64) -> NewPolicyVersion {
    NewPolicyVersion {
        source: format!("# version {i}\n[[rule]]\nroles = [\"nurse\"]\nclients = [\"ehr\"]\n"),
        author: format!("operator:author{i}"),
        reason: format!("reason {i}: ward 4B goes live"),
        proposed_at: at(i),
        restores: None,
    }
}

/// What the store should hold for a proposal it numbered `number`.
fn proposed(number: i64, v: &NewPolicyVersion) -> PolicyVersion {
    PolicyVersion {
        number,
        source: v.source.clone(),
        author: v.author.clone(),
        reason: v.reason.clone(),
        proposed_at: v.proposed_at,
        restores: v.restores,
        status: VersionStatus::Proposed,
        approved_by: None,
        approved_at: None,
    }
}

fn status(v: &PolicyVersion, status: VersionStatus) -> PolicyVersion {
    PolicyVersion { status, ..v.clone() }
}

fn approved(v: &PolicyVersion, status: VersionStatus, by: &str, when: OffsetDateTime) -> PolicyVersion {
    PolicyVersion { status, approved_by: Some(by.into()), approved_at: Some(when), ..v.clone() }
}

async fn propose_all(s: &dyn Store, n: i64) -> Vec<PolicyVersion> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(s.propose_policy(&proposal(i), &typed_ev("policy.proposed")).await.unwrap());
    }
    out
}

async fn statuses(s: &dyn Store) -> Vec<(i64, VersionStatus)> {
    s.policy_versions().await.unwrap().into_iter().map(|v| (v.number, v.status)).collect()
}

fn device(id: &str, name: &str, digest: u8) -> Device {
    Device {
        id: id.into(),
        name: name.into(),
        site: Some("ward-4b".into()),
        managed: true,
        trusted: false,
        posture: Posture { disk_encrypted: true, patched: false, checked_in_at: Some(at(5)) },
        secret_digest: [digest; 32],
        created_at: at(1),
        revoked_at: None,
    }
}

// --- cases --------------------------------------------------------------------------------

async fn proposals_are_numbered_in_order_and_listed_newest_first(env: &Env) {
    let s = &*env.store;
    assert!(s.policy_versions().await.unwrap().is_empty());
    assert_eq!(s.active_policy().await.unwrap(), None);

    let first = proposal(1);
    let second = NewPolicyVersion { restores: None, reason: String::new(), ..proposal(2) };
    // A rollback names the version it re-proposes.
    let third = NewPolicyVersion { restores: Some(1), source: proposal(1).source, ..proposal(3) };
    let mut expected = Vec::new();
    for (i, v) in [&first, &second, &third].into_iter().enumerate() {
        let stored = s.propose_policy(v, &typed_ev("policy.proposed")).await.unwrap();
        assert_eq!(stored, proposed(i as i64 + 1, v));
        expected.push(stored);
    }
    for v in &expected {
        assert_eq!(s.policy_version(v.number).await.unwrap().as_ref(), Some(v));
    }
    assert_eq!(s.policy_version(0).await.unwrap(), None);
    assert_eq!(s.policy_version(4).await.unwrap(), None);
    expected.reverse();
    assert_eq!(s.policy_versions().await.unwrap(), expected, "newest first");
    assert_eq!(s.active_policy().await.unwrap(), None, "nothing is in force before an activation");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (3, 3));

    // Restoring a version that does not exist is refused, keeps nothing and uses no number.
    let before = snapshot(s).await;
    let r =
        s.propose_policy(&NewPolicyVersion { restores: Some(42), ..proposal(4) }, &typed_ev("policy.proposed")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.policy_versions().await.unwrap().len(), 3);

    // Another handle (the CLI beside the server, another node) continues the numbering.
    let b = env.open("node-b").await.unwrap();
    assert_eq!(b.propose_policy(&proposal(4), &typed_ev("policy.proposed")).await.unwrap().number, 4);
    assert_eq!(s.propose_policy(&proposal(5), &typed_ev("policy.proposed")).await.unwrap().number, 5);
}

async fn activation_supersedes_the_active_version(env: &Env) {
    let s = &*env.store;
    let v = propose_all(s, 4).await;

    let one = s.activate_policy(1, "user:bob", at(10), &typed_ev("policy.activated")).await.unwrap();
    assert_eq!(one, approved(&v[0], VersionStatus::Active, "user:bob", at(10)));
    assert_eq!(s.active_policy().await.unwrap().as_ref(), Some(&one));
    assert_eq!(s.policy_version(1).await.unwrap().as_ref(), Some(&one));

    let two = s.activate_policy(2, "user:carol", at(20), &typed_ev("policy.activated")).await.unwrap();
    assert_eq!(two, approved(&v[1], VersionStatus::Active, "user:carol", at(20)));
    assert_eq!(s.active_policy().await.unwrap().as_ref(), Some(&two));
    // The one it replaced keeps its approval, for the record.
    assert_eq!(s.policy_version(1).await.unwrap(), Some(status(&one, VersionStatus::Superseded)));
    s.reject_policy(3, &typed_ev("policy.rejected")).await.unwrap();
    assert_eq!(
        statuses(s).await,
        [
            (4, VersionStatus::Proposed),
            (3, VersionStatus::Rejected),
            (2, VersionStatus::Active),
            (1, VersionStatus::Superseded)
        ]
    );

    // Superseded, rejected and active versions cannot be activated (a rollback proposes the
    // old text again); unknown numbers are not found. None of it changes anything.
    let before = snapshot(s).await;
    for (number, expected) in [(1, "Conflict"), (2, "Conflict"), (3, "Conflict"), (5, "NotFound"), (0, "NotFound")] {
        let r = s.activate_policy(number, "user:mallory", at(30), &typed_ev("policy.activated")).await;
        let got = match r {
            Err(StoreError::Conflict) => "Conflict",
            Err(StoreError::NotFound) => "NotFound",
            other => panic!("activating {number}: {other:?}"),
        };
        assert_eq!(got, expected, "activating {number}");
    }
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.active_policy().await.unwrap().as_ref(), Some(&two));
    assert_eq!(s.policy_version(4).await.unwrap(), Some(v[3].clone()));

    // The last proposal still can be activated, from another handle.
    let b = env.open("node-b").await.unwrap();
    let four = b.activate_policy(4, "token:t1:ops", at(40), &typed_ev("policy.activated")).await.unwrap();
    assert_eq!(s.active_policy().await.unwrap(), Some(four));
    assert_eq!(s.policy_version(2).await.unwrap(), Some(status(&two, VersionStatus::Superseded)));
}

async fn a_version_is_activated_once_under_a_race(env: &Env) {
    let s = &*env.store;
    propose_all(s, 2).await;
    s.activate_policy(1, "user:bob", at(10), &typed_ev("policy.activated")).await.unwrap();
    let before = s.audit_count().await.unwrap();
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            tokio::spawn(async move {
                store.activate_policy(2, &format!("user:approver{i}"), at(20 + i), &typed_ev("policy.activated")).await
            })
        })
        .collect();
    let (mut won, mut lost) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => won.push(v),
            Err(StoreError::Conflict) => lost += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((won.len(), lost), (1, 7), "{won:?}");
    assert_eq!(s.active_policy().await.unwrap().as_ref(), Some(&won[0]));
    assert_eq!(statuses(s).await, [(2, VersionStatus::Active), (1, VersionStatus::Superseded)]);
    assert_eq!(s.audit_count().await.unwrap(), before + 1, "one activation, one record");
}

async fn concurrent_proposals_get_distinct_numbers(env: &Env) {
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            tokio::spawn(async move {
                let v = proposal(i);
                let stored = store.propose_policy(&v, &typed_ev("policy.proposed")).await.unwrap();
                assert_eq!(stored, proposed(stored.number, &v));
                stored.number
            })
        })
        .collect();
    let mut numbers = HashSet::new();
    for t in tasks {
        let n = t.await.unwrap();
        assert!(numbers.insert(n), "number {n} handed out twice");
    }
    assert_eq!(numbers, (1..=8).collect::<HashSet<_>>());
    let listed: Vec<i64> = env.store.policy_versions().await.unwrap().iter().map(|v| v.number).collect();
    assert_eq!(listed, (1..=8).rev().collect::<Vec<_>>());
    assert_eq!(env.store.audit_count().await.unwrap(), 8);
    verify_all(&*env.store).await;
}

async fn a_proposal_is_rejected_once(env: &Env) {
    let s = &*env.store;
    let v = propose_all(s, 3).await;
    s.activate_policy(1, "user:bob", at(10), &typed_ev("policy.activated")).await.unwrap();

    let rejected = s.reject_policy(2, &typed_ev("policy.rejected")).await.unwrap();
    assert_eq!(rejected, status(&v[1], VersionStatus::Rejected));
    assert_eq!(s.policy_version(2).await.unwrap().as_ref(), Some(&rejected));
    assert_eq!(last_type(s).await, "policy.rejected");
    // Rejecting leaves the policy in force alone.
    assert_eq!(s.active_policy().await.unwrap().map(|a| a.number), Some(1));

    let before = snapshot(s).await;
    for number in [1, 2] {
        let r = s.reject_policy(number, &typed_ev("policy.rejected")).await;
        assert!(matches!(r, Err(StoreError::Conflict)), "rejecting {number}: {r:?}");
    }
    let r = s.reject_policy(9, &typed_ev("policy.rejected")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(
        statuses(s).await,
        [(3, VersionStatus::Proposed), (2, VersionStatus::Rejected), (1, VersionStatus::Active)]
    );
}

/// Every change is administrative: one record of the caller's type and one revision each.
async fn each_policy_and_device_change_appends_its_event(env: &Env) {
    let s = &*env.store;
    let b = env.open("node-b").await.unwrap();
    async fn step(s: &dyn Store, b: &dyn Store, event_type: &str, n: i64) {
        assert_eq!(s.audit_count().await.unwrap(), n, "after {event_type}");
        assert_eq!(last_type(s).await, event_type);
        // Other handles see the revision move, and so reload.
        assert_eq!(b.revision().await.unwrap(), n, "after {event_type}");
    }
    s.propose_policy(&proposal(1), &typed_ev("policy.proposed")).await.unwrap();
    step(s, &*b, "policy.proposed", 1).await;
    s.propose_policy(&proposal(2), &typed_ev("policy.proposed.again")).await.unwrap();
    step(s, &*b, "policy.proposed.again", 2).await;
    s.activate_policy(1, "user:bob", at(10), &typed_ev("policy.activated")).await.unwrap();
    step(s, &*b, "policy.activated", 3).await;
    s.reject_policy(2, &typed_ev("policy.rejected")).await.unwrap();
    step(s, &*b, "policy.rejected", 4).await;
    let mut d = device("d1", "ws-icu-03", 1);
    s.create_device(&d, &typed_ev("device.registered")).await.unwrap();
    step(s, &*b, "device.registered", 5).await;
    d.revoked_at = Some(at(60));
    s.update_device(&d, &typed_ev("device.retired")).await.unwrap();
    step(s, &*b, "device.retired", 6).await;

    // Reads write nothing.
    s.policy_version(1).await.unwrap();
    s.policy_versions().await.unwrap();
    s.active_policy().await.unwrap();
    s.device_by_name("ws-icu-03").await.unwrap();
    s.device_by_digest(&[1; 32]).await.unwrap();
    s.list_devices().await.unwrap();
    step(s, &*b, "device.retired", 6).await;
    let (head, verified) = verify_all(s).await;
    assert_eq!((head.seq, verified), (6, 6));
}

async fn devices_create_look_up_and_list(env: &Env) {
    let s = &*env.store;
    assert!(s.list_devices().await.unwrap().is_empty());
    let icu = device("d-icu", "ws-icu-03", 1);
    let lab = Device {
        site: None,
        managed: false,
        trusted: true,
        posture: Posture::default(),
        revoked_at: Some(at(9)),
        ..device("d-lab", "lab.bench_1", 2)
    };
    let er = Device {
        posture: Posture { disk_encrypted: false, patched: true, ..icu.posture },
        ..device("d-er", "er-01", 3)
    };
    for d in [&icu, &lab, &er] {
        s.create_device(d, &typed_ev("device.registered")).await.unwrap();
    }
    for d in [&icu, &lab, &er] {
        assert_eq!(s.device_by_name(&d.name).await.unwrap().as_ref(), Some(d));
        // Retired devices are found too: the caller tells them apart.
        assert_eq!(s.device_by_digest(&d.secret_digest).await.unwrap().as_ref(), Some(d));
    }
    assert_eq!(s.device_by_name("ws-icu-04").await.unwrap(), None);
    assert_eq!(s.device_by_name("WS-ICU-03").await.unwrap(), None, "names are stored as given, lowercase");
    assert_eq!(s.device_by_digest(&[9; 32]).await.unwrap(), None);
    assert_eq!(s.list_devices().await.unwrap(), [er.clone(), lab.clone(), icu.clone()], "by name");

    // A taken name, secret or id is a conflict, and nothing of the newcomer is kept.
    let before = snapshot(s).await;
    for dup in [device("d-new", "ws-icu-03", 7), device("d-new", "ws-new", 2), device("d-icu", "ws-new", 7)] {
        let r = s.create_device(&dup, &typed_ev("device.registered")).await;
        assert!(matches!(r, Err(StoreError::Conflict)), "{dup:?}: {r:?}");
    }
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.device_by_name("ws-new").await.unwrap(), None);
    assert_eq!(s.device_by_digest(&[7; 32]).await.unwrap(), None);
    assert_eq!(s.list_devices().await.unwrap().len(), 3);
}

async fn devices_update_every_mutable_field(env: &Env) {
    let s = &*env.store;
    let icu = device("d-icu", "ws-icu-03", 1);
    let er = device("d-er", "er-01", 2);
    for d in [&icu, &er] {
        s.create_device(d, &typed_ev("device.registered")).await.unwrap();
    }

    // A posture report.
    let reported = Device {
        posture: Posture { disk_encrypted: false, patched: true, checked_in_at: Some(at(30)) },
        ..icu.clone()
    };
    s.update_device(&reported, &typed_ev("device.checked_in")).await.unwrap();
    assert_eq!(s.device_by_name("ws-icu-03").await.unwrap().as_ref(), Some(&reported));

    // Everything else: renamed, moved, flags flipped, a new secret, retired. The id and the
    // creation time stay as they were.
    let mut changed = Device {
        name: "ws-icu-07".into(),
        site: None,
        managed: false,
        trusted: true,
        posture: Posture { disk_encrypted: true, patched: false, checked_in_at: None },
        secret_digest: [5; 32],
        created_at: at(999),
        revoked_at: Some(at(40)),
        ..reported.clone()
    };
    s.update_device(&changed, &typed_ev("device.updated")).await.unwrap();
    changed.created_at = icu.created_at;
    assert_eq!(s.device_by_name("ws-icu-07").await.unwrap().as_ref(), Some(&changed));
    assert_eq!(s.device_by_digest(&[5; 32]).await.unwrap().as_ref(), Some(&changed));
    assert_eq!(s.device_by_name("ws-icu-03").await.unwrap(), None);
    assert_eq!(s.device_by_digest(&[1; 32]).await.unwrap(), None);
    // Un-retiring writes NULL back.
    let restored = Device { revoked_at: None, ..changed.clone() };
    s.update_device(&restored, &typed_ev("device.updated")).await.unwrap();
    assert_eq!(s.device_by_digest(&[5; 32]).await.unwrap().as_ref(), Some(&restored));
    assert_eq!(s.list_devices().await.unwrap(), [er.clone(), restored.clone()]);

    // Unknown id, or another device's name or secret: refused, nothing changes.
    let before = snapshot(s).await;
    let r = s.update_device(&device("d-missing", "ws-ghost", 8), &typed_ev("device.updated")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = s.update_device(&Device { name: "er-01".into(), ..restored.clone() }, &typed_ev("device.updated")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let r = s.update_device(&Device { secret_digest: [2; 32], ..restored.clone() }, &typed_ev("device.updated")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.list_devices().await.unwrap(), [er, restored]);
}

// --- accounts and sessions under a policy ---------------------------------------------------

async fn privilege_role_expiry_and_session_limits_round_trip(env: &Env) {
    let s = &*env.store;
    let mut u = user("u-p", "priv", false).with_roles(["it-admin".to_owned(), "nurse".to_owned()]);
    u.privileged = true;
    u.role_expiry.insert("it-admin".into(), at(3600));
    s.create_user(&u, &[], &typed_ev("admin.user.created")).await.unwrap();
    assert_eq!(s.user_by_id("u-p").await.unwrap().unwrap(), u);

    let mut changed = u.clone();
    changed.privileged = false;
    changed.role_expiry.clear();
    changed.role_expiry.insert("nurse".into(), at(7200));
    s.update_user(&changed, &typed_ev("admin.role.assigned")).await.unwrap();
    assert_eq!(s.user_by_id("u-p").await.unwrap().unwrap(), changed);

    let limited = wardgate_core::session::Session {
        limits: Some(wardgate_core::session::SessionPolicy {
            idle_timeout: time::Duration::hours(8),
            absolute_lifetime: time::Duration::hours(8),
        }),
        ..session("s-lim", "u-p", 9, 0)
    };
    s.create_session(&limited, None, &typed_ev("auth.session.created")).await.unwrap();
    let (back, owner) = s.session_and_user(&[9; 32]).await.unwrap().unwrap();
    assert_eq!((back, owner), (limited.clone(), changed.clone()));
    let (back, _) = s.session_with_user("s-lim").await.unwrap().unwrap();
    assert_eq!(back, limited);
}

async fn policy_session_limits_decide_which_sessions_end(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    s.create_user(&user("u1", "alice", false), &[], &typed_ev("admin.user.created")).await.unwrap();
    let defaults = wardgate_core::session::SessionPolicy::default(); // 15 min idle
    let long = wardgate_core::session::SessionPolicy {
        idle_timeout: time::Duration::hours(8),
        absolute_lifetime: time::Duration::hours(8),
    };
    // Both idle for an hour: the default session has ended, the workstation one has not.
    let plain = session("s-plain", "u1", 1, 0);
    let shift = wardgate_core::session::Session { limits: Some(long), ..session("s-shift", "u1", 2, 0) };
    for x in [&plain, &shift] {
        s.create_session(x, None, &typed_ev("auth.session.created")).await.unwrap();
        let g = session_grant(&format!("g-{}", x.id), "c1", &x.id);
        s.insert_grant(&g, None, &typed_ev("oidc.grant.issued")).await.unwrap();
    }
    let now = T0 + secs(3600);
    let ids = |v: Vec<wardgate_core::session::Session>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    assert_eq!(ids(s.sessions_to_end(&defaults, now, now - secs(60), 100).await.unwrap()), ["s-plain"]);
    assert_eq!(shift.state(&defaults, now), wardgate_core::session::SessionState::Active);
    // Past its own eight hours it ends too.
    let later = T0 + secs(8 * 3600);
    assert_eq!(ids(s.sessions_to_end(&defaults, later, later - secs(60), 100).await.unwrap()), ["s-plain", "s-shift"]);
    assert_eq!(shift.state(&defaults, later), wardgate_core::session::SessionState::LifetimeExpired);
}
