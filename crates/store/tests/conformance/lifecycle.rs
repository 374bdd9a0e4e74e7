//! The identity life cycle (L1-L3): proofing records, factor expiry and who enrolled a
//! factor, the factor inventory, and recovery requests decided once and links spent once.

use std::sync::Arc;

use time::OffsetDateTime;
use wardgate_core::identity::{Factor, FactorKind, Username};
use wardgate_core::lifecycle::{Proofing, ProofingMethod, RecoveryRequest, RecoveryStatus};
use wardgate_store::{Store, StoreError};

use crate::harness::*;

conformance!(
    proofing_records_round_trip_and_need_an_account,
    factor_expiry_and_enrolment_source_round_trip_and_the_inventory_filters,
    a_recovery_request_is_approved_and_its_link_spent_once,
    an_expired_or_denied_recovery_link_enrolls_nothing,
    a_recovery_request_is_decided_once_under_a_race,
);

fn at(s: i64) -> OffsetDateTime {
    // Sub-second, to show microseconds survive the round trip.
    T0 + secs(s) + time::Duration::microseconds(314_159)
}

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn proofing(id: &str, user_id: &str, username: &str, s: i64) -> Proofing {
    Proofing {
        id: id.into(),
        user_id: user_id.into(),
        username: name(username),
        method: ProofingMethod::InPerson,
        document: "passport".into(),
        evidence_ref: format!("HR-{id}"),
        verified_by: name("hd.sam"),
        reason: Some("new hire".into()),
        at: at(s),
    }
}

fn request(id: &str, user_id: &str, username: &str, s: i64) -> RecoveryRequest {
    RecoveryRequest {
        id: id.into(),
        user_id: user_id.into(),
        username: name(username),
        opened_by: name("hd.sam"),
        reason: "phone lost, INC-77".into(),
        opened_at: at(s),
        status: RecoveryStatus::Pending,
    }
}

fn approved(mut r: RecoveryRequest, by: &str, s: i64, ttl: i64) -> RecoveryRequest {
    r.status = RecoveryStatus::Approved { by: name(by), at: at(s), link_expires_at: at(s + ttl) };
    r
}

async fn nina(s: &dyn Store) {
    s.create_user(&user("u-nina", "nina", false), &[], &typed_ev("admin.user.created")).await.unwrap();
}

async fn proofing_records_round_trip_and_need_an_account(env: &Env) {
    let s = &*env.store;
    nina(s).await;
    assert!(s.proofings_of("u-nina").await.unwrap().is_empty());
    let (p1, p2) = (proofing("p1", "u-nina", "nina", 10), proofing("p2", "u-nina", "nina", 5));
    s.record_proofing(&p1, &typed_ev("proofing.recorded")).await.unwrap();
    let p2 = Proofing { method: ProofingMethod::RemoteSupervised, reason: None, ..p2 };
    s.record_proofing(&p2, &typed_ev("proofing.recorded")).await.unwrap();
    assert_eq!(s.proofings_of("u-nina").await.unwrap(), [p2.clone(), p1.clone()], "oldest first");
    assert_eq!(s.audit_count().await.unwrap(), 3);
    assert_eq!(last_type(s).await, "proofing.recorded");

    let before = snapshot(s).await;
    let ghost = proofing("p3", "u-ghost", "ghost", 1);
    assert!(matches!(s.record_proofing(&ghost, &typed_ev("proofing.recorded")).await, Err(StoreError::NotFound)));
    assert!(matches!(s.record_proofing(&p1, &typed_ev("proofing.recorded")).await, Err(StoreError::Conflict)));
    assert_eq!(snapshot(s).await, before, "a refused write leaves no record");
}

async fn factor_expiry_and_enrolment_source_round_trip_and_the_inventory_filters(env: &Env) {
    let s = &*env.store;
    nina(s).await;
    s.create_user(&user("u-omar", "omar", false), &[], &typed_ev("admin.user.created")).await.unwrap();
    let mut app = factor("f-app", "u-nina", FactorKind::Totp, "wg1.sealed.a", 1);
    app.enrolled_by = Some("enrollment_link".into());
    app.expires_at = Some(at(86_400 * 10));
    let key = Factor {
        enrolled_by: Some("recovery:r1".into()),
        ..factor("f-key", "u-nina", FactorKind::Webauthn, "wg1.k", 2)
    };
    let omar = factor("f-omar", "u-omar", FactorKind::Totp, "wg1.sealed.o", 3);
    for f in [&app, &key, &omar] {
        s.add_factor(f, &typed_ev("account.factor.added")).await.unwrap();
    }
    assert_eq!(s.factors_of("u-nina").await.unwrap(), [app.clone(), key.clone()]);

    assert_eq!(s.factor_inventory(None, None).await.unwrap(), [app.clone(), key.clone(), omar.clone()]);
    assert_eq!(s.factor_inventory(Some("u-omar"), None).await.unwrap(), std::slice::from_ref(&omar));
    assert_eq!(s.factor_inventory(None, Some(at(86_400 * 30))).await.unwrap(), [app.clone()], "only those expiring");
    assert!(s.factor_inventory(None, Some(at(86_400 * 10))).await.unwrap().is_empty(), "the bound is exclusive");

    let until = at(86_400 * 20);
    s.set_factor_expiry("u-omar", "f-omar", Some(until), &typed_ev("factor.expiry.set")).await.unwrap();
    assert_eq!(last_type(s).await, "factor.expiry.set");
    let stored = s.factors_of("u-omar").await.unwrap();
    assert_eq!(stored[0].expires_at, Some(until));
    assert_eq!(s.factor_inventory(Some("u-omar"), Some(at(86_400 * 30))).await.unwrap().len(), 1);
    s.set_factor_expiry("u-nina", "f-app", None, &typed_ev("factor.expiry.set")).await.unwrap();
    assert_eq!(s.factors_of("u-nina").await.unwrap()[0].expires_at, None, "cleared");

    // Another user's factor, or none: not found, and no record.
    let before = snapshot(s).await;
    for (u, f) in [("u-nina", "f-omar"), ("u-nina", "f-none")] {
        let r = s.set_factor_expiry(u, f, Some(until), &typed_ev("factor.expiry.set")).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{u} {f}: {r:?}");
    }
    assert_eq!(snapshot(s).await, before);
    // A counter update keeps the expiry and the enrolment source.
    assert!(s.advance_factor_counter("f-omar", 7, at(100)).await.unwrap());
    let f = &s.factors_of("u-omar").await.unwrap()[0];
    assert_eq!((f.expires_at, f.enrolled_by.as_deref()), (Some(until), None));
}

async fn a_recovery_request_is_approved_and_its_link_spent_once(env: &Env) {
    let s = &*env.store;
    nina(s).await;
    s.create_user(&user("u-omar", "omar", false), &[], &typed_ev("admin.user.created")).await.unwrap();
    let r = request("r1", "u-nina", "nina", 0);
    s.open_recovery(&r, &typed_ev("recovery.opened")).await.unwrap();
    assert_eq!(s.recovery_request("r1").await.unwrap(), Some(r.clone()));
    assert_eq!(s.list_recovery(true).await.unwrap(), std::slice::from_ref(&r));
    assert!(matches!(s.open_recovery(&r, &typed_ev("recovery.opened")).await, Err(StoreError::Conflict)));
    let ghost = request("r2", "u-ghost", "ghost", 1);
    assert!(matches!(s.open_recovery(&ghost, &typed_ev("recovery.opened")).await, Err(StoreError::NotFound)));
    let decided = approved(r.clone(), "sup.sue", 60, 900);
    assert!(matches!(s.open_recovery(&decided, &typed_ev("x.y")).await, Err(StoreError::Malformed(_))));
    // An approval needs its digest.
    assert!(matches!(
        s.decide_recovery(&decided, None, &typed_ev("recovery.approved")).await,
        Err(StoreError::Malformed(_))
    ));

    let link = [7u8; 32];
    assert!(s.decide_recovery(&decided, Some(&link), &typed_ev("recovery.approved")).await.unwrap());
    assert_eq!(last_type(s).await, "recovery.approved");
    assert!(!s.decide_recovery(&decided, Some(&[8; 32]), &typed_ev("recovery.approved")).await.unwrap(), "once");
    assert_eq!(s.recovery_request("r1").await.unwrap(), Some(decided.clone()));
    assert!(s.list_recovery(true).await.unwrap().is_empty());
    assert_eq!(s.list_recovery(false).await.unwrap(), std::slice::from_ref(&decided));
    assert_eq!(s.recovery_by_link(&link, at(100)).await.unwrap(), Some(decided.clone()));
    assert_eq!(s.recovery_by_link(&[8; 32], at(100)).await.unwrap(), None);

    let mut new = factor("f-new", "u-nina", FactorKind::Totp, "wg1.sealed.n", 120);
    new.enrolled_by = Some("recovery:r1".into());
    // Not for another account's factor.
    let stray = Factor { user_id: "u-omar".into(), id: "f-stray".into(), ..new.clone() };
    let before = snapshot(s).await;
    let r = s.complete_recovery(&link, at(120), &stray, &[], &typed_ev("recovery.completed")).await;
    assert!(matches!(r, Err(StoreError::EnrollmentInvalid)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    // The factors the person lost go in the same transaction; another account's never.
    let lost = factor("f-lost", "u-nina", FactorKind::Totp, "wg1.sealed.l", 5);
    s.add_factor(&lost, &typed_ev("account.factor.added")).await.unwrap();
    let omar = factor("f-omar", "u-omar", FactorKind::Totp, "wg1.sealed.o", 5);
    s.add_factor(&omar, &typed_ev("account.factor.added")).await.unwrap();
    let retire = ["f-lost".to_owned(), "f-omar".to_owned()];
    s.complete_recovery(&link, at(120), &new, &retire, &typed_ev("recovery.completed")).await.unwrap();
    assert_eq!(last_type(s).await, "recovery.completed");
    assert_eq!(s.factors_of("u-nina").await.unwrap(), [new.clone()]);
    assert_eq!(s.factors_of("u-omar").await.unwrap(), [omar]);
    let used = s.recovery_request("r1").await.unwrap().unwrap();
    assert_eq!(
        used.status,
        RecoveryStatus::Used {
            by: name("sup.sue"),
            at: at(60),
            link_expires_at: at(960),
            used_at: at(120),
            factor_id: "f-new".into()
        }
    );
    // Once: the link finds nothing, enrolls nothing.
    assert_eq!(s.recovery_by_link(&link, at(130)).await.unwrap(), None);
    let again = Factor { id: "f-again".into(), ..new };
    let before = snapshot(s).await;
    let r = s.complete_recovery(&link, at(130), &again, &[], &typed_ev("recovery.completed")).await;
    assert!(matches!(r, Err(StoreError::EnrollmentInvalid)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.factors_of("u-nina").await.unwrap().len(), 1);
}

async fn an_expired_or_denied_recovery_link_enrolls_nothing(env: &Env) {
    let s = &*env.store;
    nina(s).await;
    let link = [3u8; 32];
    let r = request("r1", "u-nina", "nina", 0);
    s.open_recovery(&r, &typed_ev("recovery.opened")).await.unwrap();
    s.decide_recovery(&approved(r, "sup.sue", 10, 900), Some(&link), &typed_ev("recovery.approved")).await.unwrap();
    // At its expiry instant the link is already dead.
    assert_eq!(s.recovery_by_link(&link, at(910)).await.unwrap(), None);
    let f = factor("f-late", "u-nina", FactorKind::Totp, "wg1.l", 910);
    let r = s.complete_recovery(&link, at(910), &f, &[], &typed_ev("recovery.completed")).await;
    assert!(matches!(r, Err(StoreError::EnrollmentInvalid)), "{r:?}");
    assert!(s.factors_of("u-nina").await.unwrap().is_empty());

    let mut d = request("r2", "u-nina", "nina", 20);
    s.open_recovery(&d, &typed_ev("recovery.opened")).await.unwrap();
    d.status = RecoveryStatus::Denied { by: name("sup.sue"), at: at(30), comment: "could not call back".into() };
    assert!(matches!(
        s.decide_recovery(&d, Some(&[4; 32]), &typed_ev("recovery.denied")).await,
        Err(StoreError::Malformed(_))
    ));
    assert!(s.decide_recovery(&d, None, &typed_ev("recovery.denied")).await.unwrap());
    assert_eq!(s.recovery_request("r2").await.unwrap(), Some(d.clone()));
    assert_eq!(s.list_recovery(false).await.unwrap().first(), Some(&d), "newest first");
    assert!(matches!(
        s.decide_recovery(&approved(request("r9", "u-nina", "nina", 0), "x", 1, 2), Some(&[5; 32]), &typed_ev("x.y"))
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn a_recovery_request_is_decided_once_under_a_race(env: &Env) {
    let s = &*env.store;
    nina(s).await;
    let r = request("r1", "u-nina", "nina", 0);
    s.open_recovery(&r, &typed_ev("recovery.opened")).await.unwrap();
    let before = s.audit_count().await.unwrap();
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            let mut mine = r.clone();
            let by = name(&format!("sup{i}"));
            let digest = (i % 3 != 0).then_some([i; 32]);
            mine.status = match digest {
                Some(_) => RecoveryStatus::Approved { by, at: at(100 + i64::from(i)), link_expires_at: at(2000) },
                None => RecoveryStatus::Denied { by, at: at(100 + i64::from(i)), comment: "no".into() },
            };
            tokio::spawn(async move {
                let kept = store.decide_recovery(&mine, digest.as_ref(), &typed_ev("recovery.decided")).await.unwrap();
                kept.then_some(mine)
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.unwrap());
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(s.audit_count().await.unwrap(), before + 1, "one decision, one record");
    assert_eq!(s.recovery_request("r1").await.unwrap().as_ref(), Some(&won[0]));
}
