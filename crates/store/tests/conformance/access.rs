//! What a person holds between requests: flows between login steps, sessions, API tokens.

use std::sync::Arc;

use wardgate_core::api_token::Scope;
use wardgate_core::audit::event::types;
use wardgate_core::flow::Flow;
use wardgate_core::login::Aal;
use wardgate_store::StoreError;

use crate::harness::*;

conformance!(
    flows_compare_and_set_and_expire,
    a_flow_makes_one_session_only,
    sessions_round_trip_touch_and_revoke,
    api_tokens_round_trip_and_revoke,
);

async fn flows_compare_and_set_and_expire(env: &Env) {
    let s = &*env.store;
    // A login for a name nobody has still gets a flow (a decoy), so no user is needed.
    let f = flow(1, Some("u1"), 300);
    let decoy = flow(2, None, 300);
    let short = flow(3, None, 10);
    for x in [&f, &decoy, &short] {
        s.insert_flow(x).await.unwrap();
    }
    assert_eq!(s.flow(&[1; 32], T0).await.unwrap(), Some(f.clone()));
    assert_eq!(s.flow(&[2; 32], T0).await.unwrap(), Some(decoy));
    assert_eq!(s.flow(&[9; 32], T0).await.unwrap(), None);
    assert!(s.insert_flow(&f).await.is_err(), "a second flow under one digest");

    let mut next = f.clone();
    next.state = serde_json::json!({ "step": "totp", "factors": ["pwd"] });
    next.expires_at = T0 + secs(600);
    assert!(s.update_flow(&next).await.unwrap());
    let stored = s.flow(&[1; 32], T0).await.unwrap().unwrap();
    assert_eq!(stored, Flow { version: 1, ..next.clone() });
    // The same step replayed carries the old version and changes nothing.
    let replay = Flow { state: serde_json::json!({ "step": "done" }), ..next };
    assert!(!s.update_flow(&replay).await.unwrap());
    assert_eq!(s.flow(&[1; 32], T0).await.unwrap().as_ref(), Some(&stored));

    // Two requests racing on one step, on two nodes: one advances it.
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            let attempt = Flow { state: serde_json::json!({ "winner": i }), ..stored.clone() };
            tokio::spawn(async move { (store.update_flow(&attempt).await.unwrap(), attempt.state) })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (won, state) = t.await.unwrap();
        if won {
            winners.push(state);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let now = s.flow(&[1; 32], T0).await.unwrap().unwrap();
    assert_eq!((now.version, &now.state), (2, &winners[0]));

    // Expired flows are not read, and purging removes exactly those.
    assert!(s.flow(&[1; 32], T0 + secs(599)).await.unwrap().is_some());
    assert_eq!(s.flow(&[1; 32], T0 + secs(600)).await.unwrap(), None);
    assert_eq!(s.purge_expired_flows(T0 + secs(300)).await.unwrap(), 2);
    assert_eq!(s.purge_expired_flows(T0 + secs(300)).await.unwrap(), 0);
    assert!(s.flow(&[1; 32], T0 + secs(300)).await.unwrap().is_some());
    s.delete_flow(&[1; 32]).await.unwrap();
    s.delete_flow(&[1; 32]).await.unwrap();
    assert_eq!(s.flow(&[1; 32], T0).await.unwrap(), None);
    assert!(!s.update_flow(&now).await.unwrap());
    // Flows are routine: nothing audited, no revision.
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (0, 0));
}

async fn a_flow_makes_one_session_only(env: &Env) {
    let s = &*env.store;
    s.create_user(&user("u1", "alice", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let login = admin_ev(types::AUTH_LOGIN_SUCCEEDED);
    s.insert_flow(&flow(1, Some("u1"), 300)).await.unwrap();
    let first = session("s1", "u1", 11, 0);
    s.create_session(&first, Some(&[1; 32]), &login).await.unwrap();
    assert_eq!(s.flow(&[1; 32], T0).await.unwrap(), None);
    assert_eq!(s.session_by_digest(&[11; 32]).await.unwrap(), Some(first));
    assert_eq!(last_type(s).await, types::AUTH_LOGIN_SUCCEEDED);

    // The last step replayed: no second session, no second record.
    let before = snapshot(s).await;
    let r = s.create_session(&session("s2", "u1", 12, 0), Some(&[1; 32]), &login).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.session_by_digest(&[12; 32]).await.unwrap(), None);

    // The last step sent twice at once, to two nodes.
    s.insert_flow(&flow(2, Some("u1"), 300)).await.unwrap();
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0u8..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            let sess = session(&format!("r{i}"), "u1", 20 + i, 1);
            tokio::spawn(async move {
                store.create_session(&sess, Some(&[2; 32]), &admin_ev(types::AUTH_LOGIN_SUCCEEDED)).await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::NotFound) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.sessions_of("u1").await.unwrap().len(), 2);
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 1);

    // A session for nobody is refused, and the flow it would have used stays.
    s.insert_flow(&flow(3, None, 300)).await.unwrap();
    let r = s.create_session(&session("s-x", "u-nobody", 40, 0), Some(&[3; 32]), &login).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(s.flow(&[3; 32], T0).await.unwrap().is_some());
    // Sessions that end no flow (a step-up, say) need none.
    s.create_session(&session("s3", "u1", 41, 5), None, &login).await.unwrap();
    assert_eq!(s.sessions_of("u1").await.unwrap().len(), 3);
}

async fn sessions_round_trip_touch_and_revoke(env: &Env) {
    let s = &*env.store;
    for u in [user("u1", "alice", false), user("u2", "bob", false)] {
        s.create_user(&u, &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    }
    let s1 = session("s1", "u1", 1, 10);
    let mut s2 = session("s2", "u1", 2, 20);
    s2.client_ip = Some("10.0.0.7".parse().unwrap());
    let mut s3 = session("s3", "u1", 3, 30);
    (s3.client_ip, s3.user_agent, s3.aal, s3.amr) = (None, None, Aal::Aal1, vec!["pwd".into()]);
    let login = admin_ev(types::AUTH_LOGIN_SUCCEEDED);
    for x in [&s1, &s2, &s3] {
        s.create_session(x, None, &login).await.unwrap();
        assert_eq!(s.session_by_digest(&x.id_digest).await.unwrap().as_ref(), Some(x));
    }
    assert_eq!(s.session_by_digest(&[9; 32]).await.unwrap(), None);
    // The one-read form carries the same session and its own account.
    let alice = s.user_by_id("u1").await.unwrap().unwrap();
    for x in [&s1, &s2, &s3] {
        assert_eq!(s.session_and_user(&x.id_digest).await.unwrap(), Some((x.clone(), alice.clone())));
    }
    assert_eq!(s.session_and_user(&[9; 32]).await.unwrap(), None);
    assert_eq!(s.session_with_user("s2").await.unwrap(), Some((s2.clone(), alice.clone())));
    assert_eq!(s.session_with_user("s-none").await.unwrap(), None);
    assert_eq!(s.sessions_of("u1").await.unwrap(), [s3.clone(), s2.clone(), s1.clone()]);
    assert!(s.sessions_of("u2").await.unwrap().is_empty());

    // Activity moves `last_seen_at` forward only, and is not audited.
    let before = snapshot(s).await;
    s.touch_session(&[1; 32], T0 + secs(100)).await.unwrap();
    s.touch_session(&[1; 32], T0 + secs(50)).await.unwrap();
    s.touch_session(&[9; 32], T0 + secs(50)).await.unwrap();
    assert_eq!(s.session_by_digest(&[1; 32]).await.unwrap().unwrap().last_seen_at, T0 + secs(100));
    assert_eq!(snapshot(s).await, before);

    // Revoking one: only the owner's, only once.
    let revoked = typed_ev("user.session.revoked");
    for (user_id, id) in [("u2", "s1"), ("u1", "s-missing")] {
        let r = s.revoke_session(user_id, id, T0 + secs(200), &revoked).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    assert_eq!(snapshot(s).await, before);
    s.revoke_session("u1", "s1", T0 + secs(200), &revoked).await.unwrap();
    assert_eq!(s.session_by_digest(&[1; 32]).await.unwrap().unwrap().revoked_at, Some(T0 + secs(200)));
    assert_eq!(s.sessions_of("u1").await.unwrap(), [s3, s2]);
    assert_eq!(last_type(s).await, "user.session.revoked");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2 + 1));
    let r = s.revoke_session("u1", "s1", T0 + secs(201), &revoked).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");

    // Revoking all of them counts the live ones and leaves others' sessions alone.
    s.create_session(&session("b1", "u2", 5, 0), None, &login).await.unwrap();
    let all = typed_ev("admin.sessions.revoked");
    assert_eq!(s.revoke_sessions_of("u1", T0 + secs(300), &all).await.unwrap(), 2);
    assert!(s.sessions_of("u1").await.unwrap().is_empty());
    assert_eq!(s.session_by_digest(&[1; 32]).await.unwrap().unwrap().revoked_at, Some(T0 + secs(200)));
    assert_eq!(s.session_by_digest(&[2; 32]).await.unwrap().unwrap().revoked_at, Some(T0 + secs(300)));
    assert_eq!(s.sessions_of("u2").await.unwrap().len(), 1);
    let bob = s.session_and_user(&[5; 32]).await.unwrap().unwrap().1;
    assert_eq!(bob, s.user_by_id("u2").await.unwrap().unwrap(), "each session with its own account");
    let count = s.audit_count().await.unwrap();
    assert_eq!(s.revoke_sessions_of("u1", T0 + secs(301), &all).await.unwrap(), 0);
    assert_eq!(s.audit_count().await.unwrap(), count + 1, "the administrator's action is recorded anyway");
}

async fn api_tokens_round_trip_and_revoke(env: &Env) {
    let s = &*env.store;
    s.create_user(&user("u1", "alice", true), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let t1 = api_token("t1", "u1", 1, 1);
    let mut t2 = api_token("t2", "u1", 2, 2);
    t2.scopes = vec![Scope::UsersRead];
    let created = typed_ev("admin.token.created");
    for t in [&t1, &t2] {
        s.create_api_token(t, &created).await.unwrap();
    }
    assert_eq!(last_type(s).await, "admin.token.created");
    assert_eq!(s.revision().await.unwrap(), 3);
    assert_eq!(s.api_token_by_digest(&[1; 32]).await.unwrap(), Some(t1.clone()));
    assert_eq!(s.api_token_by_digest(&[9; 32]).await.unwrap(), None);
    assert_eq!(s.api_tokens_of("u1").await.unwrap(), [t2.clone(), t1.clone()]);

    let revoked = typed_ev("admin.token.revoked");
    s.revoke_api_token("t1", T0 + secs(60), &revoked).await.unwrap();
    let t1 = wardgate_core::api_token::ApiToken { revoked_at: Some(T0 + secs(60)), ..t1 };
    assert_eq!(s.api_token_by_digest(&[1; 32]).await.unwrap().as_ref(), Some(&t1));
    assert!(!t1.allows(Scope::UsersRead, T0 + secs(61)));
    // Revoked tokens stay listed, for the record.
    assert_eq!(s.api_tokens_of("u1").await.unwrap(), [t2, t1]);
    assert_eq!(last_type(s).await, "admin.token.revoked");

    let before = snapshot(s).await;
    for id in ["t1", "t-missing"] {
        let r = s.revoke_api_token(id, T0 + secs(61), &revoked).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    let r = s.create_api_token(&api_token("t3", "u-nobody", 3, 3), &created).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(s.create_api_token(&api_token("t4", "u1", 1, 4), &created).await.is_err(), "a reused digest");
    assert_eq!(snapshot(s).await, before);
}
