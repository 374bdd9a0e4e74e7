//! Accounts, factors and enrollment links: the life cycle of an account, and the
//! compare-and-set operations that keep concurrent logins on several nodes honest.

use std::sync::Arc;

use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, User, Username};
use wardgate_core::lockout::Attempts;
use wardgate_store::StoreError;

use crate::harness::*;

conformance!(
    list_users_pages_in_username_order,
    update_user_writes_the_profile_and_keeps_the_username,
    count_admins_follows_roles_and_status,
    disabling_ends_sessions_tokens_flows_and_links,
    terminating_deletes_factors_and_keeps_the_username_reserved,
    attempts_compare_and_set_counts_every_failure,
    factor_counter_advances_once_under_a_race,
    update_factor_compare_and_set_on_the_secret,
    factor_by_credential_and_remove_factor,
    enrollment_completes_once,
    enrollment_refuses_expired_foreign_or_used_links_and_changes_nothing,
    migration_from_schema_1_keeps_the_administrator,
);

fn invited(id: &str, name: &str) -> User {
    User { status: AccountStatus::Invited, ..user(id, name, false) }
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

async fn list_users_pages_in_username_order(env: &Env) {
    let s = &*env.store;
    // Punctuation sorts by byte on both backends, whatever the database's collation.
    let all = ["zed", "amy", "a.b", "ab", "a-c", "bob", "a_d", "mo@ward"];
    for (i, name) in all.iter().enumerate() {
        s.create_user(&user(&format!("u{i}"), name, false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    }
    let mut expected = all.to_vec();
    expected.sort_unstable();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.list_users(after.as_deref(), 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.username.as_str().to_owned());
        seen.extend(page);
    }
    assert_eq!(names(&seen), expected);
    for u in &seen {
        assert_eq!(s.user_by_id(&u.id).await.unwrap().as_ref(), Some(u));
    }
    assert!(s.list_users(None, 0).await.unwrap().is_empty());
    assert!(s.list_users(Some("zed"), 10).await.unwrap().is_empty());
    // `after` need not be a name that exists.
    assert_eq!(names(&s.list_users(Some("b"), 10).await.unwrap()), ["bob", "mo@ward", "zed"]);
}

async fn update_user_writes_the_profile_and_keeps_the_username(env: &Env) {
    let s = &*env.store;
    let alice = user("u1", "alice", false);
    let f = factor("f1", "u1", FactorKind::Passphrase, PHC, 1);
    s.create_user(&alice, std::slice::from_ref(&f), &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let (_, count, revision, admins, _) = snapshot(s).await;
    assert_eq!(admins, 0);

    let mut changed = alice.clone().with_roles(["nurse".to_owned(), "admin".to_owned()]);
    changed.display_name = "Alice Liddell".into();
    changed.email = "a.liddell@example.org".into();
    changed.employee_id = Some("E-7".into());
    // Not written by update_user: the username never changes; attempts have their own CAS.
    changed.username = Username::parse("mallory").unwrap();
    changed.attempts.consecutive_failures = 9;
    changed.created_at = T0 + secs(999);
    s.update_user(&changed, &typed_ev("admin.user.updated")).await.unwrap();

    let expected =
        User { username: alice.username.clone(), attempts: alice.attempts, created_at: alice.created_at, ..changed };
    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(expected.clone()));
    assert_eq!(s.user_by_username(&alice.username).await.unwrap(), Some(expected));
    assert_eq!(s.user_by_username(&Username::parse("mallory").unwrap()).await.unwrap(), None);
    assert_eq!(s.count_admins().await.unwrap(), 1);
    assert_eq!(s.factors_of("u1").await.unwrap(), [f]);
    assert_eq!(last_type(s).await, "admin.user.updated");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (count + 1, revision + 1));

    let before = snapshot(s).await;
    let r = s.update_user(&user("u-ghost", "ghost", true), &typed_ev("admin.user.updated")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.user_by_id("u-ghost").await.unwrap(), None);
}

async fn count_admins_follows_roles_and_status(env: &Env) {
    let s = &*env.store;
    s.create_user(&user("u-a", "ann", true), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    s.create_user(&user("u-b", "ben", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    assert_eq!(s.count_admins().await.unwrap(), 1);
    let ann = s.user_by_id("u-a").await.unwrap().unwrap();
    let ben = s.user_by_id("u-b").await.unwrap().unwrap().with_roles(["admin".to_owned()]);
    let steps = [
        (ben.clone(), 2),
        (User { status: AccountStatus::Disabled, ..ann.clone() }, 1),
        (ann.clone(), 2),
        (ben.with_roles([]), 1),
    ];
    for (u, admins) in steps {
        s.update_user(&u, &typed_ev("admin.user.updated")).await.unwrap();
        assert_eq!(s.count_admins().await.unwrap(), admins, "after {u:?}");
    }
}

async fn disabling_ends_sessions_tokens_flows_and_links(env: &Env) {
    let s = &*env.store;
    for u in [user("u1", "alice", false), user("u2", "bob", false)] {
        s.create_user(&u, &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    }
    s.add_factor(&factor("f1", "u1", FactorKind::Passphrase, PHC, 1), &admin_ev(types::ADMIN_FACTOR_ADDED))
        .await
        .unwrap();
    let login = admin_ev(types::AUTH_LOGIN_SUCCEEDED);
    for sess in [session("s1", "u1", 1, 10), session("s2", "u1", 2, 20), session("s3", "u1", 3, 30)] {
        s.create_session(&sess, None, &login).await.unwrap();
    }
    s.create_session(&session("s-bob", "u2", 9, 10), None, &login).await.unwrap();
    // The change count that node-local session caches watch moves after each change that
    // ends a session (other tests run at once, so only "it moved" can be asserted).
    let before = wardgate_store::changes();
    s.revoke_session("u1", "s3", T0 + secs(40), &typed_ev("admin.session.revoked")).await.unwrap();
    assert!(wardgate_store::changes() > before, "a revoked session is a counted change");
    for t in [api_token("t1", "u1", 11, 1), api_token("t2", "u1", 12, 2), api_token("t-bob", "u2", 13, 3)] {
        s.create_api_token(&t, &typed_ev("admin.token.created")).await.unwrap();
    }
    s.revoke_api_token("t2", T0 + secs(50), &typed_ev("admin.token.revoked")).await.unwrap();
    for f in [flow(21, Some("u1"), 300), flow(22, Some("u2"), 300), flow(23, None, 300)] {
        s.insert_flow(&f).await.unwrap();
    }

    let disabled_at = T0 + secs(3600);
    let event = AuditEvent::new(disabled_at, "admin.user.disabled", Outcome::Success).unwrap();
    let alice = User { status: AccountStatus::Disabled, ..s.user_by_id("u1").await.unwrap().unwrap() };
    let before = wardgate_store::changes();
    s.update_user(&alice, &event).await.unwrap();
    assert!(wardgate_store::changes() > before, "a disabled account is a counted change");
    assert_eq!(s.user_by_id("u1").await.unwrap(), Some(alice));
    assert_eq!(last_type(s).await, "admin.user.disabled");

    assert!(s.sessions_of("u1").await.unwrap().is_empty());
    // Revoked at the time of the change; one revoked earlier keeps its own time.
    for (digest, revoked_at) in [(1, disabled_at), (2, disabled_at), (3, T0 + secs(40))] {
        let sess = s.session_by_digest(&[digest; 32]).await.unwrap().unwrap();
        assert_eq!(sess.revoked_at, Some(revoked_at), "{}", sess.id);
    }
    let tokens: Vec<_> = s.api_tokens_of("u1").await.unwrap().into_iter().map(|t| (t.id, t.revoked_at)).collect();
    assert_eq!(tokens, [("t2".to_owned(), Some(T0 + secs(50))), ("t1".to_owned(), Some(disabled_at))]);
    assert_eq!(s.flow(&[21; 32], T0).await.unwrap(), None);
    // A disabled account may come back: its factors stay.
    assert_eq!(s.factors_of("u1").await.unwrap().len(), 1);

    // Nobody else is touched.
    assert_eq!(s.sessions_of("u2").await.unwrap().len(), 1);
    assert_eq!(s.api_token_by_digest(&[13; 32]).await.unwrap().unwrap().revoked_at, None);
    assert!(s.flow(&[22; 32], T0).await.unwrap().is_some());
    assert!(s.flow(&[23; 32], T0).await.unwrap().is_some());

    // An invited account disabled before it enrolled loses its link.
    let carol = invited("u3", "carol");
    s.create_user(&carol, &[], &typed_ev("admin.user.invited")).await.unwrap();
    s.issue_enrollment("u3", &[31; 32], T0 + secs(7200), &typed_ev("admin.enrollment.issued")).await.unwrap();
    assert_eq!(s.enrollment_user(&[31; 32], T0).await.unwrap().as_deref(), Some("u3"));
    s.update_user(&User { status: AccountStatus::Disabled, ..carol }, &event).await.unwrap();
    assert_eq!(s.enrollment_user(&[31; 32], T0).await.unwrap(), None);
}

async fn terminating_deletes_factors_and_keeps_the_username_reserved(env: &Env) {
    let s = &*env.store;
    let alice = user("u1", "alice", true);
    let factors = [
        factor("f-pass", "u1", FactorKind::Passphrase, PHC, 1),
        factor("f-totp", "u1", FactorKind::Totp, "wg1.t.t.t", 2),
    ];
    s.create_user(&alice, &factors, &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    s.create_session(&session("s1", "u1", 1, 10), None, &admin_ev(types::AUTH_LOGIN_SUCCEEDED)).await.unwrap();
    s.create_api_token(&api_token("t1", "u1", 2, 1), &typed_ev("admin.token.created")).await.unwrap();
    assert_eq!(s.count_admins().await.unwrap(), 1);

    let terminated = User { status: AccountStatus::Terminated, ..alice.clone() };
    s.update_user(&terminated, &typed_ev("admin.user.terminated")).await.unwrap();
    assert!(s.factors_of("u1").await.unwrap().is_empty());
    assert!(s.sessions_of("u1").await.unwrap().is_empty());
    assert_eq!(s.api_token_by_digest(&[2; 32]).await.unwrap().unwrap().revoked_at, Some(T0));
    assert_eq!(s.user_by_username(&alice.username).await.unwrap(), Some(terminated));
    assert_eq!(s.count_admins().await.unwrap(), 0);
    assert_eq!(last_type(s).await, "admin.user.terminated");

    // The name stays taken, so that old audit records keep naming one person.
    let before = snapshot(s).await;
    let newcomer = user("u-new", "alice", false);
    let r = s.create_user(&newcomer, &[], &admin_ev(types::ADMIN_USER_CREATED)).await;
    assert!(matches!(r, Err(StoreError::UsernameTaken)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.user_by_id("u-new").await.unwrap(), None);
}

async fn attempts_compare_and_set_counts_every_failure(env: &Env) {
    let s = &*env.store;
    s.create_user(&user("u1", "alice", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let zero = Attempts::default();
    let one = Attempts { consecutive_failures: 1, last_failure_at: Some(T0 + secs(1)), locked_until: None };
    let attempts = async || s.user_by_id("u1").await.unwrap().unwrap().attempts;

    // A stale expectation changes nothing, and its event is not recorded.
    let before = snapshot(s).await;
    assert!(!s.set_attempts("u1", &one, &zero, Some(&typed_ev("auth.account.locked"))).await.unwrap());
    assert!(!s.set_attempts("u-nobody", &zero, &one, None).await.unwrap());
    assert_eq!(snapshot(s).await, before);
    assert!(s.set_attempts("u1", &zero, &one, None).await.unwrap());
    assert_eq!(attempts().await, one);
    // A plain failure count is routine: no record, no revision.
    assert_eq!(snapshot(s).await, before);

    let locked = Attempts {
        consecutive_failures: 2,
        last_failure_at: Some(T0 + secs(2)),
        locked_until: Some(T0 + secs(902) + time::Duration::microseconds(1)),
    };
    assert!(s.set_attempts("u1", &one, &locked, Some(&typed_ev("auth.account.locked"))).await.unwrap());
    assert_eq!(attempts().await, locked);
    assert_eq!(last_type(s).await, "auth.account.locked");
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 1);
    // Every field takes part in the comparison, absent ones included.
    for stale in [
        Attempts { locked_until: Some(T0 + secs(902)), ..locked },
        Attempts { locked_until: None, ..locked },
        Attempts { last_failure_at: None, ..locked },
        Attempts { consecutive_failures: 3, ..locked },
    ] {
        assert!(!s.set_attempts("u1", &stale, &zero, None).await.unwrap(), "{stale:?}");
    }
    assert!(s.set_attempts("u1", &locked, &zero, Some(&typed_ev("admin.user.unlocked"))).await.unwrap());
    assert_eq!(attempts().await, zero);

    // Failures arriving at two nodes at once: each loser re-reads and retries, so every
    // failure is counted (a plain write would lose some).
    let b = env.open("node-b").await.unwrap();
    const FAILURES: u32 = 12;
    let tasks: Vec<_> = (0..FAILURES)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            tokio::spawn(async move {
                loop {
                    let current = store.user_by_id("u1").await.unwrap().unwrap().attempts;
                    let next = Attempts {
                        consecutive_failures: current.consecutive_failures + 1,
                        last_failure_at: Some(T0 + secs(i64::from(i))),
                        locked_until: None,
                    };
                    if store.set_attempts("u1", &current, &next, None).await.unwrap() {
                        break;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(attempts().await.consecutive_failures, FAILURES);
}

async fn factor_counter_advances_once_under_a_race(env: &Env) {
    let s = &*env.store;
    let f = factor("f1", "u1", FactorKind::Totp, "wg1.t.t.t", 1);
    s.create_user(&user("u1", "alice", false), std::slice::from_ref(&f), &admin_ev(types::ADMIN_USER_CREATED))
        .await
        .unwrap();
    let before = snapshot(s).await;
    let b = env.open("node-b").await.unwrap();
    // The same TOTP code arriving at several nodes at once, round after round.
    for step in 100..110 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
                tokio::spawn(async move { store.advance_factor_counter("f1", step, T0 + secs(step)).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            won += usize::from(t.await.unwrap());
        }
        assert_eq!(won, 1, "time step {step} accepted {won} times");
    }
    let stored = s.factors_of("u1").await.unwrap().remove(0);
    assert_eq!((stored.counter, stored.last_used_at), (Some(109), Some(T0 + secs(109))));

    // The same step again, or an older one, is refused and changes nothing.
    for step in [109, 50] {
        assert!(!s.advance_factor_counter("f1", step, T0 + secs(500)).await.unwrap());
    }
    assert_eq!(s.factors_of("u1").await.unwrap().remove(0), stored);
    assert!(s.advance_factor_counter("f1", 110, T0 + secs(600)).await.unwrap());
    let stored = s.factors_of("u1").await.unwrap().remove(0);
    assert_eq!((stored.counter, stored.last_used_at), (Some(110), Some(T0 + secs(600))));
    assert_eq!(Factor { counter: None, last_used_at: None, ..stored }, f);
    assert!(!s.advance_factor_counter("f-missing", 1, T0).await.unwrap());
    // Routine: neither audited nor a revision.
    assert_eq!(snapshot(s).await, before);
}

async fn update_factor_compare_and_set_on_the_secret(env: &Env) {
    let s = &*env.store;
    let mut codes = factor("f-rc", "u1", FactorKind::RecoveryCodes, "wg1.codes.v1", 1);
    codes.credential_id = Some("not-changed-by-update".into());
    s.create_user(&user("u1", "alice", false), std::slice::from_ref(&codes), &admin_ev(types::ADMIN_USER_CREATED))
        .await
        .unwrap();

    let mut spent = codes.clone();
    spent.secret = "wg1.codes.v2".into();
    spent.params = serde_json::json!({ "used": [3], "last_used_slot": 3 });
    spent.counter = Some(1);
    spent.label = "Recovery codes (9 left)".into();
    spent.last_used_at = Some(T0 + secs(5));
    // Not written by update_factor.
    spent.kind = FactorKind::Totp;
    spent.credential_id = None;
    spent.created_at = T0 + secs(999);
    let used = typed_ev("auth.recovery_code.used");

    let before = snapshot(s).await;
    assert!(!s.update_factor(&spent, "wg1.codes.v0", Some(&used)).await.unwrap());
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.factors_of("u1").await.unwrap(), [codes.clone()]);

    assert!(s.update_factor(&spent, "wg1.codes.v1", Some(&used)).await.unwrap());
    let expected = Factor {
        kind: codes.kind,
        credential_id: codes.credential_id.clone(),
        created_at: codes.created_at,
        ..spent.clone()
    };
    assert_eq!(s.factors_of("u1").await.unwrap(), [expected]);
    assert_eq!(last_type(s).await, "auth.recovery_code.used");
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 1);

    // One recovery code submitted on several nodes at once is spent once.
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            let next = Factor { secret: format!("wg1.codes.t{i}"), ..spent.clone() };
            tokio::spawn(async move {
                let won = store.update_factor(&next, "wg1.codes.v2", Some(&typed_ev("auth.recovery_code.used"))).await;
                (won.unwrap(), next.secret)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (won, secret) = t.await.unwrap();
        if won {
            winners.push(secret);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(s.factors_of("u1").await.unwrap()[0].secret, winners[0]);
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 2);

    let missing = Factor { id: "f-missing".into(), ..spent };
    assert!(!s.update_factor(&missing, "wg1.codes.v2", None).await.unwrap());
}

async fn factor_by_credential_and_remove_factor(env: &Env) {
    let s = &*env.store;
    for u in [user("u1", "alice", false), user("u2", "bob", false)] {
        s.create_user(&u, &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    }
    let mut key = factor("f-key", "u1", FactorKind::Webauthn, "wg1.pk.pk.pk", 1);
    key.credential_id = Some("Y3JlZGVudGlhbC0x".into());
    s.add_factor(&key, &admin_ev(types::ADMIN_FACTOR_ADDED)).await.unwrap();
    s.add_factor(&factor("f-pass", "u1", FactorKind::Passphrase, PHC, 2), &admin_ev(types::ADMIN_FACTOR_ADDED))
        .await
        .unwrap();
    assert_eq!(s.factor_by_credential("Y3JlZGVudGlhbC0x").await.unwrap(), Some(key.clone()));
    assert_eq!(s.factor_by_credential("bm9wZQ").await.unwrap(), None);

    // A credential id names one factor only.
    let before = snapshot(s).await;
    let mut copy = factor("f-copy", "u2", FactorKind::Webauthn, "wg1.x.x.x", 3);
    copy.credential_id = key.credential_id.clone();
    assert!(s.add_factor(&copy, &admin_ev(types::ADMIN_FACTOR_ADDED)).await.is_err());
    assert_eq!(snapshot(s).await, before);

    // Only the owner's factor is removed; a refusal leaves no record.
    for (user_id, factor_id) in [("u2", "f-key"), ("u1", "f-missing")] {
        let r = s.remove_factor(user_id, factor_id, &typed_ev("admin.factor.removed")).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    assert_eq!(snapshot(s).await, before);
    s.remove_factor("u1", "f-key", &typed_ev("admin.factor.removed")).await.unwrap();
    assert_eq!(s.factor_by_credential("Y3JlZGVudGlhbC0x").await.unwrap(), None);
    assert_eq!(s.factors_of("u1").await.unwrap().iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["f-pass"]);
    assert_eq!(last_type(s).await, "admin.factor.removed");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2 + 1));
    let r = s.remove_factor("u1", "f-key", &typed_ev("admin.factor.removed")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}

async fn enrollment_completes_once(env: &Env) {
    let s = &*env.store;
    s.create_user(&invited("u3", "carol"), &[], &typed_ev("admin.user.invited")).await.unwrap();
    let expires = T0 + secs(3600);
    let issued = typed_ev("admin.enrollment.issued");
    s.issue_enrollment("u3", &[6; 32], expires, &issued).await.unwrap();
    // A new link replaces the earlier one.
    s.issue_enrollment("u3", &[7; 32], expires, &issued).await.unwrap();
    assert_eq!(last_type(s).await, "admin.enrollment.issued");
    assert_eq!(s.enrollment_user(&[6; 32], T0).await.unwrap(), None);
    assert_eq!(s.enrollment_user(&[7; 32], T0).await.unwrap().as_deref(), Some("u3"));
    assert_eq!(s.enrollment_user(&[7; 32], expires).await.unwrap(), None);

    let factors =
        [factor("f-p", "u3", FactorKind::Passphrase, PHC, 1), factor("f-t", "u3", FactorKind::Totp, "wg1.t.t.t", 2)];
    let before = snapshot(s).await;
    let done = typed_ev("user.enrollment.completed");
    s.complete_enrollment(&[7; 32], expires - secs(1), "u3", &factors, &done).await.unwrap();
    assert_eq!(s.user_by_id("u3").await.unwrap().unwrap().status, AccountStatus::Active);
    assert_eq!(s.factors_of("u3").await.unwrap(), factors);
    assert_eq!(s.enrollment_user(&[7; 32], T0).await.unwrap(), None);
    assert_eq!(last_type(s).await, "user.enrollment.completed");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2 + 1));

    // Used once; and an account that is no longer invited gets no new link.
    let after = snapshot(s).await;
    let again = [factor("f-p2", "u3", FactorKind::Passphrase, PHC, 3)];
    let r = s.complete_enrollment(&[7; 32], T0, "u3", &again, &done).await;
    assert!(matches!(r, Err(StoreError::EnrollmentInvalid)), "{r:?}");
    let r = s.issue_enrollment("u3", &[8; 32], expires, &issued).await;
    assert!(matches!(r, Err(StoreError::EnrollmentInvalid)), "{r:?}");
    let r = s.issue_enrollment("u-nobody", &[9; 32], expires, &issued).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, after);
    assert_eq!(s.factors_of("u3").await.unwrap(), factors);
}

async fn enrollment_refuses_expired_foreign_or_used_links_and_changes_nothing(env: &Env) {
    let s = &*env.store;
    let carol = invited("u3", "carol");
    for u in [carol.clone(), invited("u4", "dave"), user("u5", "erin", false)] {
        s.create_user(&u, &[], &typed_ev("admin.user.invited")).await.unwrap();
    }
    s.add_factor(&factor("f-erin", "u5", FactorKind::Passphrase, PHC, 1), &admin_ev(types::ADMIN_FACTOR_ADDED))
        .await
        .unwrap();
    let expires = T0 + secs(3600);
    let issued = typed_ev("admin.enrollment.issued");
    s.issue_enrollment("u3", &[1; 32], expires, &issued).await.unwrap();
    s.issue_enrollment("u3", &[2; 32], expires, &issued).await.unwrap();
    s.issue_enrollment("u4", &[4; 32], expires, &issued).await.unwrap();

    let done = typed_ev("user.enrollment.completed");
    let carols = [factor("f-p", "u3", FactorKind::Passphrase, PHC, 1)];
    let daves = [factor("f-p", "u4", FactorKind::Passphrase, PHC, 1)];
    let before = snapshot(s).await;
    let attempts: [(&str, [u8; 32], _, &str, &[Factor]); 6] = [
        ("expired at the instant", [2; 32], expires, "u3", &carols),
        ("expired", [2; 32], expires + secs(1), "u3", &carols),
        ("replaced", [1; 32], T0, "u3", &carols),
        ("unknown", [9; 32], T0, "u3", &carols),
        ("dave's link for carol", [4; 32], T0, "u3", &carols),
        ("carol's link for dave", [2; 32], T0, "u4", &daves),
    ];
    for (why, digest, now, user_id, factors) in attempts {
        let r = s.complete_enrollment(&digest, now, user_id, factors, &done).await;
        assert!(matches!(r, Err(StoreError::EnrollmentInvalid)), "{why}: {r:?}");
    }
    // A factor that cannot be stored undoes the whole enrollment.
    let clash = [factor("f-erin", "u3", FactorKind::Passphrase, PHC, 1)];
    assert!(s.complete_enrollment(&[2; 32], T0, "u3", &clash, &done).await.is_err());
    assert_eq!(snapshot(s).await, before);
    for (id, digest) in [("u3", [2; 32]), ("u4", [4; 32])] {
        assert_eq!(s.user_by_id(id).await.unwrap().unwrap().status, AccountStatus::Invited);
        assert!(s.factors_of(id).await.unwrap().is_empty());
        assert_eq!(s.enrollment_user(&digest, T0).await.unwrap().as_deref(), Some(id));
    }
    assert_eq!(s.factors_of("u5").await.unwrap()[0].user_id, "u5");

    // An administrator activated the account some other way: the link is dead.
    s.update_user(&User { status: AccountStatus::Active, ..carol }, &typed_ev("admin.user.enabled")).await.unwrap();
    let before = snapshot(s).await;
    let r = s.complete_enrollment(&[2; 32], T0, "u3", &carols, &done).await;
    assert!(matches!(r, Err(StoreError::EnrollmentInvalid)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert!(s.factors_of("u3").await.unwrap().is_empty());
}

const SCHEMA_1_SQLITE: &str = "
    INSERT INTO users (id, username, display_name, is_admin, disabled, created_at_us) VALUES
        ('u-root', 'root', 'Root', 1, 0, 1000),
        ('u-old', 'oldadmin', 'Former admin', 1, 1, 2000),
        ('u-amy', 'amy', 'Amy', 0, 0, 3000);
    INSERT INTO factors (id, user_id, kind, label, secret, created_at_us, last_used_at_us) VALUES
        ('f-root', 'u-root', 'passphrase', 'Passphrase', 'phc-string', 1000, 1500);
";

const SCHEMA_1_POSTGRES: &str = "
    INSERT INTO users (id, username, display_name, is_admin, disabled, created_at_us) VALUES
        ('u-root', 'root', 'Root', true, false, 1000),
        ('u-old', 'oldadmin', 'Former admin', true, true, 2000),
        ('u-amy', 'amy', 'Amy', false, false, 3000);
    INSERT INTO factors (id, user_id, kind, label, secret, created_at_us, last_used_at_us) VALUES
        ('f-root', 'u-root', 'passphrase', 'Passphrase', 'phc-string', 1000, 1500);
";

/// An installation of the first release, upgraded: its administrator is still one (and so
/// the bootstrap link stays closed), a disabled account stays disabled.
async fn migration_from_schema_1_keeps_the_administrator(env: &Env) {
    let s = env.open_from_schema_1(SCHEMA_1_SQLITE, SCHEMA_1_POSTGRES).await.unwrap();
    let at = wardgate_core::from_unix_micros;
    let root = s.user_by_username(&Username::parse("root").unwrap()).await.unwrap().unwrap();
    let mut expected =
        User::new("u-root".into(), root.username.clone(), "Root".into(), AccountStatus::Active, at(1000))
            .with_roles(["admin".to_owned()]);
    // Schema 7: administrators became privileged accounts.
    expected.privileged = true;
    assert_eq!(root, expected);
    let old = s.user_by_id("u-old").await.unwrap().unwrap();
    assert_eq!((old.status, old.roles.as_slice()), (AccountStatus::Disabled, ["admin".to_owned()].as_slice()));
    let amy = s.user_by_id("u-amy").await.unwrap().unwrap();
    assert_eq!((amy.status, amy.roles.is_empty(), amy.privileged), (AccountStatus::Active, true, false));
    assert_eq!(names(&s.list_users(None, 10).await.unwrap()), ["amy", "oldadmin", "root"]);
    assert_eq!(s.count_admins().await.unwrap(), 1);
    let r = s.issue_bootstrap(&[1; 32], T0 + secs(60), &admin_ev(types::ADMIN_BOOTSTRAP_ISSUED)).await;
    assert!(matches!(r, Err(StoreError::AdminExists)), "{r:?}");

    let mut pass = Factor::new(
        "f-root".into(),
        "u-root".into(),
        FactorKind::Passphrase,
        "Passphrase",
        "phc-string".into(),
        at(1000),
    );
    pass.last_used_at = Some(at(1500));
    assert_eq!(s.factors_of("u-root").await.unwrap(), [pass]);

    // The upgraded schema holds what the first release had no room for.
    s.create_session(&session("s1", "u-root", 1, 0), None, &admin_ev(types::AUTH_LOGIN_SUCCEEDED)).await.unwrap();
    assert_eq!(s.sessions_of("u-root").await.unwrap().len(), 1);
    assert!(s.advance_factor_counter("f-root", 1, T0).await.unwrap());
}
