//! The OpenID Connect provider's storage: clients, consents, single-use authorization
//! codes, grants with rotating refresh tokens and reuse detection, and token-signing keys.

use std::sync::Arc;

use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::identity::{Factor, FactorKind};
use wardgate_core::keys::{PURPOSE_AUDIT_CHECKPOINT, SigningKeyRecord};
use wardgate_core::oidc::{AuthCode, Consent, Grant, OidcClient, OidcKey, RefreshToken};
use wardgate_core::secrets::{Kek, Keyring};
use wardgate_store::batch::{Write, Written};
use wardgate_store::{CodeRedemption, RefreshHolder, Rotation, SealedColumn, SealedRef, Store, StoreError};

use crate::harness::*;

conformance!(
    clients_create_read_update_delete,
    client_signing_alg_round_trips_and_defaults_to_es256,
    consents_are_replaced_read_and_revoked,
    consents_of_a_person_by_client,
    deleting_a_client_removes_its_consents,
    codes_are_redeemed_once,
    expired_codes_are_unknown_and_stay_unused,
    a_code_is_redeemed_once_under_a_race,
    refresh_tokens_rotate_and_a_replay_revokes_the_grant,
    refresh_rotation_expiry_and_strays,
    a_refresh_token_is_rotated_once_under_a_race,
    a_refresh_token_is_read_with_its_account_and_session,
    a_code_is_read_with_its_account,
    grants_revoked_one_by_one_and_by_session,
    deleting_a_client_removes_its_codes_grants_and_tokens,
    oidc_keys_newest_first_retire_and_purge,
    key_rotation_rewraps_oidc_signing_keys,
    a_batch_applies_every_write_with_its_records_in_order,
    a_batch_with_a_failing_write_keeps_nothing,
    batches_of_inserts_one_after_another,
    a_code_is_read_then_redeemed_into_its_grant_in_one_write,
    one_batch_presenting_a_refresh_token_twice_rotates_once_and_revokes,
    one_batch_redeeming_codes_tells_fresh_replayed_and_expired_apart,
    batches_from_two_writers_never_fork_the_chain,
);

// --- fixtures -----------------------------------------------------------------------------

pub(crate) fn at(s: i64) -> OffsetDateTime {
    // Sub-second, to show microseconds survive the round trip.
    T0 + secs(s) + time::Duration::microseconds(250_001)
}

pub(crate) fn client(id: &str, name: &str) -> OidcClient {
    OidcClient {
        id: id.into(),
        name: name.into(),
        redirect_uris: vec!["https://ehr.example.org/cb".into(), "http://127.0.0.1:8400/cb".into()],
        post_logout_redirect_uris: vec!["https://ehr.example.org/bye".into()],
        secret_digest: Some([id.len() as u8; 32]),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        first_party: true,
        backchannel_logout_uri: Some("https://ehr.example.org/bcl".into()),
        access_token_ttl_secs: 300,
        refresh_token_ttl_secs: 86_400,
        created_at: at(0),
        jwks: Some(r#"{"keys":[]}"#.into()),
        signing_alg: "ES256".into(),
    }
}

pub(crate) fn code(digest: u8, client_id: &str, session_id: &str, expires_in: i64) -> AuthCode {
    AuthCode {
        digest: [digest; 32],
        client_id: client_id.into(),
        user_id: "u1".into(),
        session_id: session_id.into(),
        redirect_uri: "https://ehr.example.org/cb".into(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        nonce: Some("n-0S6_WzA2Mj".into()),
        scopes: vec!["openid".into(), "profile".into()],
        acr: "urn:wardgate:aal2".into(),
        amr: vec!["pwd".into(), "otp".into()],
        auth_time: at(-30),
        correlation_id: format!("corr-{session_id}"),
        created_at: at(0),
        expires_at: T0 + secs(expires_in),
        grant_id: None,
    }
}

/// The grant a redeemed code becomes.
fn grant_of(code: &AuthCode, id: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: code.client_id.clone(),
        user_id: Some(code.user_id.clone()),
        session_id: Some(code.session_id.clone()),
        scopes: code.scopes.clone(),
        acr: Some(code.acr.clone()),
        amr: code.amr.clone(),
        auth_time: Some(code.auth_time),
        correlation_id: code.correlation_id.clone(),
        created_at: at(1),
        revoked_at: None,
    }
}

pub(crate) fn session_grant(id: &str, client_id: &str, session_id: &str) -> Grant {
    grant_of(&code(0, client_id, session_id, 60), id)
}

/// A client-credentials grant: no person, no session.
pub(crate) fn service_grant(id: &str, client_id: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: client_id.into(),
        user_id: None,
        session_id: None,
        scopes: vec!["api.read".into()],
        acr: None,
        amr: Vec::new(),
        auth_time: None,
        correlation_id: format!("corr-{id}"),
        created_at: at(2),
        revoked_at: None,
    }
}

pub(crate) fn refresh(digest: u8, grant_id: &str, created: i64, ttl: i64) -> RefreshToken {
    RefreshToken {
        digest: [digest; 32],
        grant_id: grant_id.into(),
        created_at: at(created),
        expires_at: T0 + secs(created + ttl),
        used_at: None,
    }
}

fn oidc_key(id: &str, created: i64, sealed: &str) -> OidcKey {
    OidcKey {
        id: id.into(),
        algorithm: "ES256".into(),
        public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","kid":"{id}","x":"x","y":"y"}}"#),
        private_sealed: sealed.into(),
        created_at: at(created),
        retired_at: None,
    }
}

fn consent(user_id: &str, client_id: &str, scopes: &[&str], granted: i64) -> Consent {
    Consent {
        user_id: user_id.into(),
        client_id: client_id.into(),
        scopes: scopes.iter().map(|&s| s.into()).collect(),
        granted_at: at(granted),
    }
}

pub(crate) async fn with_user(s: &dyn Store, id: &str, name: &str) {
    s.create_user(&user(id, name, false), &[], &typed_ev("admin.user.created")).await.unwrap();
}

pub(crate) async fn with_client(s: &dyn Store, id: &str) {
    s.create_client(&client(id, &format!("{id} app")), &typed_ev("oidc.client.created")).await.unwrap();
}

/// A grant stored with its first refresh token.
pub(crate) async fn with_grant(s: &dyn Store, grant: &Grant, token: u8) {
    s.insert_grant(grant, Some(&refresh(token, &grant.id, 1, 3600)), &typed_ev("oidc.grant.issued")).await.unwrap();
}

fn used(mut t: RefreshToken, when: OffsetDateTime) -> RefreshToken {
    t.used_at = Some(when);
    t
}

fn revoked(mut g: Grant, when: OffsetDateTime) -> Grant {
    g.revoked_at = Some(when);
    g
}

// --- cases --------------------------------------------------------------------------------

async fn clients_create_read_update_delete(env: &Env) {
    let s = &*env.store;
    let ehr = client("c-ehr", "Zeta EHR");
    let portal = OidcClient {
        secret_digest: None,
        jwks: None,
        first_party: false,
        backchannel_logout_uri: None,
        post_logout_redirect_uris: Vec::new(),
        ..client("c-portal", "Alpha portal")
    };
    let created = typed_ev("oidc.client.created");
    for c in [&ehr, &portal] {
        s.create_client(c, &created).await.unwrap();
    }
    assert_eq!(s.client("c-ehr").await.unwrap().as_ref(), Some(&ehr));
    assert_eq!(s.client("c-portal").await.unwrap().as_ref(), Some(&portal));
    assert!(s.client("c-portal").await.unwrap().unwrap().is_public());
    assert_eq!(s.client("c-missing").await.unwrap(), None);
    assert_eq!(s.list_clients().await.unwrap(), [portal.clone(), ehr.clone()], "by name");
    assert_eq!(last_type(s).await, "oidc.client.created");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (2, 2));

    // A taken id is a conflict, and nothing of the newcomer is kept.
    let before = snapshot(s).await;
    let r = s.create_client(&client("c-ehr", "Impostor"), &created).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.client("c-ehr").await.unwrap().as_ref(), Some(&ehr));

    // Update writes everything but the id and the creation time.
    let mut changed = OidcClient {
        name: "EHR (Ward 4B)".into(),
        redirect_uris: vec!["org.example.ehr:/cb".into()],
        post_logout_redirect_uris: Vec::new(),
        secret_digest: None,
        scopes: vec!["openid".into()],
        first_party: false,
        backchannel_logout_uri: None,
        access_token_ttl_secs: 60,
        refresh_token_ttl_secs: 0,
        created_at: at(999),
        jwks: None,
        signing_alg: "RS256".into(),
        ..ehr.clone()
    };
    s.update_client(&changed, &typed_ev("oidc.client.updated")).await.unwrap();
    changed.created_at = ehr.created_at;
    assert_eq!(s.client("c-ehr").await.unwrap().as_ref(), Some(&changed));
    assert_eq!(last_type(s).await, "oidc.client.updated");
    // A secret set again (rotate-secret) round-trips too.
    let rotated = OidcClient { secret_digest: Some([0xab; 32]), ..changed.clone() };
    s.update_client(&rotated, &typed_ev("oidc.client.updated")).await.unwrap();
    assert_eq!(s.client("c-ehr").await.unwrap().as_ref(), Some(&rotated));

    let before = snapshot(s).await;
    let r = s.update_client(&client("c-missing", "x"), &typed_ev("oidc.client.updated")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = s.delete_client("c-missing", &typed_ev("oidc.client.deleted")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);

    s.delete_client("c-portal", &typed_ev("oidc.client.deleted")).await.unwrap();
    assert_eq!(s.client("c-portal").await.unwrap(), None);
    assert_eq!(s.list_clients().await.unwrap(), [rotated]);
    assert_eq!(last_type(s).await, "oidc.client.deleted");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2 + 1));
    let r = s.delete_client("c-portal", &typed_ev("oidc.client.deleted")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}

async fn client_signing_alg_round_trips_and_defaults_to_es256(env: &Env) {
    let s = &*env.store;
    let rsa = OidcClient { signing_alg: "RS256".into(), ..client("c-rsa", "Legacy lab system") };
    let ec = client("c-ec", "EHR");
    for c in [&rsa, &ec] {
        s.create_client(c, &typed_ev("oidc.client.created")).await.unwrap();
    }
    assert_eq!(s.client("c-rsa").await.unwrap().unwrap().signing_alg, "RS256");
    assert_eq!(s.client("c-ec").await.unwrap().unwrap().signing_alg, "ES256");

    // Switched both ways by an update.
    let ec_now = OidcClient { signing_alg: "ES256".into(), ..rsa.clone() };
    let rsa_now = OidcClient { signing_alg: "RS256".into(), ..ec.clone() };
    for c in [&ec_now, &rsa_now] {
        s.update_client(c, &typed_ev("oidc.client.updated")).await.unwrap();
    }
    assert_eq!(s.list_clients().await.unwrap(), [rsa_now, ec_now]);

    // A client registered before the column existed (written without it) signs with ES256.
    env.raw_exec(
        "INSERT INTO oidc_clients (id, name, redirect_uris, post_logout_redirect_uris, scopes, first_party, \
         access_token_ttl_secs, refresh_token_ttl_secs, created_at_us) \
         VALUES ('c-old', 'Old', '[]', '[]', '[\"openid\"]', 1, 300, 0, 0)",
        "INSERT INTO oidc_clients (id, name, redirect_uris, post_logout_redirect_uris, scopes, first_party, \
         access_token_ttl_secs, refresh_token_ttl_secs, created_at_us) \
         VALUES ('c-old', 'Old', '[]', '[]', '[\"openid\"]', true, 300, 0, 0)",
    )
    .await;
    assert_eq!(s.client("c-old").await.unwrap().unwrap().signing_alg, "ES256");
}

async fn consents_are_replaced_read_and_revoked(env: &Env) {
    let s = &*env.store;
    with_user(s, "u1", "alice").await;
    with_client(s, "c1").await;
    assert_eq!(s.consent("u1", "c1").await.unwrap(), None);
    let before = snapshot(s).await;

    let first = consent("u1", "c1", &["openid", "profile", "email"], 1);
    s.grant_consent(&first, &typed_ev("oidc.consent.granted")).await.unwrap();
    assert_eq!(s.consent("u1", "c1").await.unwrap().as_ref(), Some(&first));
    assert_eq!(last_type(s).await, "oidc.consent.granted");
    // A person's own act, not an administrative change: recorded, but no new revision.
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2));

    // Consenting again replaces the scopes (narrower too) and the time; still one consent.
    let again = consent("u1", "c1", &["openid"], 50);
    s.grant_consent(&again, &typed_ev("oidc.consent.granted")).await.unwrap();
    assert_eq!(s.consent("u1", "c1").await.unwrap().as_ref(), Some(&again));
    assert_eq!(s.consents_of("u1").await.unwrap(), std::slice::from_ref(&again));
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 2);

    // To someone or something that does not exist: refused, nothing recorded.
    let before = snapshot(s).await;
    for (u, c) in [("u-missing", "c1"), ("u1", "c-missing")] {
        let r = s.grant_consent(&consent(u, c, &["openid"], 60), &typed_ev("oidc.consent.granted")).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{u} {c}: {r:?}");
    }
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.consent("u1", "c-missing").await.unwrap(), None);

    // Revoked once: true and one record; again, or what never was: false and nothing.
    let revoke = typed_ev("oidc.consent.revoked");
    assert!(s.revoke_consent("u1", "c1", &revoke).await.unwrap());
    assert_eq!(s.consent("u1", "c1").await.unwrap(), None);
    assert_eq!(last_type(s).await, "oidc.consent.revoked");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2));
    let after = snapshot(s).await;
    assert!(!s.revoke_consent("u1", "c1", &revoke).await.unwrap());
    assert!(!s.revoke_consent("u-missing", "c-missing", &revoke).await.unwrap());
    assert_eq!(snapshot(s).await, after);
    assert!(s.consents_of("u1").await.unwrap().is_empty());
    assert_eq!(verify_all(s).await.1, after.1 as u64);
}

async fn consents_of_a_person_by_client(env: &Env) {
    let s = &*env.store;
    with_user(s, "u1", "alice").await;
    with_user(s, "u2", "bob").await;
    // Ids in an order that neither creation, consent time nor client name follows;
    // upper case sorts before lower case, byte-wise, on both backends.
    for id in ["c-b", "c-a", "C-z", "c-c"] {
        with_client(s, id).await;
    }
    let (a, b, z) = (
        consent("u1", "c-a", &["openid"], 3),
        consent("u1", "c-b", &["openid"], 1),
        consent("u1", "C-z", &["openid"], 2),
    );
    let bob = consent("u2", "c-c", &["openid", "profile"], 0);
    for c in [&b, &z, &bob, &a] {
        s.grant_consent(c, &typed_ev("oidc.consent.granted")).await.unwrap();
    }
    assert_eq!(s.consents_of("u1").await.unwrap(), [z, a, b]);
    assert_eq!(s.consents_of("u2").await.unwrap(), [bob]);
    assert!(s.consents_of("u-missing").await.unwrap().is_empty());
}

async fn deleting_a_client_removes_its_consents(env: &Env) {
    let s = &*env.store;
    with_user(s, "u1", "alice").await;
    with_user(s, "u2", "bob").await;
    with_client(s, "c1").await;
    with_client(s, "c2").await;
    let kept = consent("u1", "c2", &["openid"], 2);
    for c in [&consent("u1", "c1", &["openid"], 1), &consent("u2", "c1", &["openid"], 1), &kept] {
        s.grant_consent(c, &typed_ev("oidc.consent.granted")).await.unwrap();
    }
    let before = snapshot(s).await;

    s.delete_client("c1", &typed_ev("oidc.client.deleted")).await.unwrap();
    assert_eq!(s.consent("u1", "c1").await.unwrap(), None);
    assert_eq!(s.consent("u2", "c1").await.unwrap(), None);
    assert_eq!(s.consents_of("u1").await.unwrap(), std::slice::from_ref(&kept));
    assert!(s.consents_of("u2").await.unwrap().is_empty());
    // One record, the deletion's: the consents went with it.
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 1);
    assert_eq!(last_type(s).await, "oidc.client.deleted");

    // A client registered again under the id inherits nothing.
    with_client(s, "c1").await;
    assert_eq!(s.consent("u1", "c1").await.unwrap(), None);
    assert_eq!(s.consent("u1", "c2").await.unwrap(), Some(kept));
}

async fn codes_are_redeemed_once(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let c = code(1, "c1", "s1", 60);
    s.insert_auth_code(&c).await.unwrap();
    assert!(matches!(s.insert_auth_code(&c).await, Err(StoreError::Conflict)), "a second code under one digest");
    let r = s.insert_auth_code(&code(2, "c-missing", "s1", 60)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // Codes are routine: neither audited nor administrative.
    let before = snapshot(s).await;

    let fresh = AuthCode { grant_id: Some("g1".into()), ..c.clone() };
    assert_eq!(s.redeem_auth_code(&[1; 32], at(5), "g1").await.unwrap(), CodeRedemption::Fresh(fresh.clone()));
    // The replay names the first grant, not its own, and changes nothing.
    assert_eq!(s.redeem_auth_code(&[1; 32], at(6), "g2").await.unwrap(), CodeRedemption::Reused(fresh.clone()));
    // Even once the code has expired, a replay is recognised as one.
    assert_eq!(s.redeem_auth_code(&[1; 32], at(600), "g3").await.unwrap(), CodeRedemption::Reused(fresh.clone()));
    assert_eq!(s.redeem_auth_code(&[9; 32], at(5), "g4").await.unwrap(), CodeRedemption::Unknown);
    assert_eq!(snapshot(s).await, before);

    // The grant the caller then stores, with its first refresh token.
    let g = grant_of(&fresh, "g1");
    let t = refresh(10, "g1", 5, 3600);
    s.insert_grant(&g, Some(&t), &typed_ev("oidc.grant.issued")).await.unwrap();
    assert_eq!(s.grant("g1").await.unwrap().as_ref(), Some(&g));
    assert_eq!(s.grant("g2").await.unwrap(), None);
    assert_eq!(s.refresh_token(&[10; 32]).await.unwrap(), Some((t, g.clone())));
    assert_eq!(s.refresh_token(&[11; 32]).await.unwrap(), None);
    assert_eq!(last_type(s).await, "oidc.grant.issued");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2));

    // A grant is stored once, and only with its own refresh token; refusals change nothing.
    let before = snapshot(s).await;
    let r = s.insert_grant(&g, None, &typed_ev("oidc.grant.issued")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let foreign = refresh(12, "g1", 5, 3600);
    let r = s.insert_grant(&service_grant("g5", "c1"), Some(&foreign), &typed_ev("oidc.grant.issued")).await;
    assert!(matches!(r, Err(StoreError::Malformed(_))), "{r:?}");
    let r = s.insert_grant(&service_grant("g6", "c-missing"), None, &typed_ev("oidc.grant.issued")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!((s.grant("g5").await.unwrap(), s.grant("g6").await.unwrap()), (None, None));
    assert_eq!(s.refresh_token(&[12; 32]).await.unwrap(), None);

    // Client credentials: a grant for nobody, without refresh token.
    let cc = service_grant("g7", "c1");
    s.insert_grant(&cc, None, &typed_ev("oidc.grant.issued")).await.unwrap();
    assert_eq!(s.grant("g7").await.unwrap(), Some(cc));
}

async fn expired_codes_are_unknown_and_stay_unused(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    s.insert_auth_code(&code(1, "c1", "s1", 60)).await.unwrap();
    // Live while `now < expires_at`.
    for now in [T0 + secs(60), T0 + secs(3600)] {
        assert_eq!(s.redeem_auth_code(&[1; 32], now, "g-late").await.unwrap(), CodeRedemption::Unknown);
    }
    // Refusing it did not mark it used: earlier, it still redeems.
    let r = s.redeem_auth_code(&[1; 32], T0 + secs(59), "g1").await.unwrap();
    assert!(matches!(&r, CodeRedemption::Fresh(c) if c.grant_id.as_deref() == Some("g1")), "{r:?}");
}

async fn a_code_is_redeemed_once_under_a_race(env: &Env) {
    with_client(&*env.store, "c1").await;
    env.store.insert_auth_code(&code(1, "c1", "s1", 60)).await.unwrap();
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            tokio::spawn(async move { store.redeem_auth_code(&[1; 32], T0 + secs(1), &format!("g{i}")).await.unwrap() })
        })
        .collect();
    let (mut fresh, mut reused) = (Vec::new(), Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            CodeRedemption::Fresh(c) => fresh.push(c.grant_id.unwrap()),
            CodeRedemption::Reused(c) => reused.push(c.grant_id.unwrap()),
            CodeRedemption::Unknown => panic!("a live code was unknown"),
        }
    }
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert_eq!(reused.len(), 7);
    // Every loser is told the winner's grant, the one to revoke.
    assert!(reused.iter().all(|g| *g == fresh[0]), "{reused:?} vs {fresh:?}");
}

async fn refresh_tokens_rotate_and_a_replay_revokes_the_grant(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let g = session_grant("g1", "c1", "s1");
    with_grant(s, &g, 1).await;
    let before = snapshot(s).await;

    // A → B → C.
    let (b, c) = (refresh(2, "g1", 10, 3600), refresh(3, "g1", 20, 3600));
    let reuse = typed_ev("oidc.refresh.reused");
    assert_eq!(s.rotate_refresh_token(&[1; 32], &b, at(10), &reuse).await.unwrap(), Rotation::Rotated(g.clone()));
    assert_eq!(s.rotate_refresh_token(&[2; 32], &c, at(20), &reuse).await.unwrap(), Rotation::Rotated(g.clone()));
    assert_eq!(s.refresh_token(&[1; 32]).await.unwrap(), Some((used(refresh(1, "g1", 1, 3600), at(10)), g.clone())));
    assert_eq!(s.refresh_token(&[2; 32]).await.unwrap(), Some((used(b, at(20)), g.clone())));
    assert_eq!(s.refresh_token(&[3; 32]).await.unwrap(), Some((c.clone(), g.clone())));
    // Rotation is routine: no record, no revision.
    assert_eq!(snapshot(s).await, before);

    // A presented again: theft. The grant goes, recorded once, and no successor is stored.
    let stray = refresh(4, "g1", 30, 3600);
    let gone = revoked(g.clone(), at(30));
    assert_eq!(s.rotate_refresh_token(&[1; 32], &stray, at(30), &reuse).await.unwrap(), Rotation::Reused(gone.clone()));
    assert_eq!(s.grant("g1").await.unwrap().as_ref(), Some(&gone));
    assert_eq!(s.refresh_token(&[4; 32]).await.unwrap(), None);
    assert_eq!(last_type(s).await, "oidc.refresh.reused");
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 1);

    // The newest token dies with the grant, and stays as it was.
    let after = snapshot(s).await;
    assert_eq!(s.rotate_refresh_token(&[3; 32], &stray, at(31), &reuse).await.unwrap(), Rotation::Unknown);
    assert_eq!(s.refresh_token(&[3; 32]).await.unwrap(), Some((c, gone.clone())));
    // A further replay finds nothing left to revoke: no second record.
    assert_eq!(s.rotate_refresh_token(&[1; 32], &stray, at(32), &reuse).await.unwrap(), Rotation::Unknown);
    assert_eq!(snapshot(s).await, after);
    assert_eq!(s.grant("g1").await.unwrap(), Some(gone));
    assert_eq!(verify_all(s).await.1, after.1 as u64);
}

async fn refresh_rotation_expiry_and_strays(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let reuse = typed_ev("oidc.refresh.reused");

    // Expired (live while `now < expires_at`): unknown, and not marked used.
    let g = session_grant("g1", "c1", "s1");
    let a = refresh(1, "g1", 0, 100);
    s.insert_grant(&g, Some(&a), &typed_ev("oidc.grant.issued")).await.unwrap();
    let before = snapshot(s).await;
    let next = refresh(2, "g1", 100, 100);
    assert_eq!(s.rotate_refresh_token(&[1; 32], &next, T0 + secs(100), &reuse).await.unwrap(), Rotation::Unknown);
    assert_eq!(s.rotate_refresh_token(&[9; 32], &next, T0, &reuse).await.unwrap(), Rotation::Unknown);
    assert_eq!(s.refresh_token(&[1; 32]).await.unwrap(), Some((a, g.clone())));
    assert_eq!(s.refresh_token(&[2; 32]).await.unwrap(), None);
    assert_eq!(snapshot(s).await, before);

    // The successor joins the presented token's grant, whatever it says itself.
    let h = session_grant("g2", "c1", "s2");
    with_grant(s, &h, 3).await;
    let odd = refresh(4, "g-other", 10, 3600);
    assert_eq!(s.rotate_refresh_token(&[3; 32], &odd, at(10), &reuse).await.unwrap(), Rotation::Rotated(h.clone()));
    assert_eq!(s.refresh_token(&[4; 32]).await.unwrap().unwrap().0.grant_id, "g2");

    // A used token replayed after it expired is still a replay.
    let count = s.audit_count().await.unwrap();
    let late = T0 + secs(1 + 3600 + 1);
    let r = s.rotate_refresh_token(&[3; 32], &refresh(5, "g2", 4000, 3600), late, &reuse).await.unwrap();
    assert_eq!(r, Rotation::Reused(revoked(h, late)));
    assert_eq!(s.audit_count().await.unwrap(), count + 1);
    // The other grant is untouched.
    assert_eq!(s.grant("g1").await.unwrap(), Some(g));
}

async fn a_refresh_token_is_rotated_once_under_a_race(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let b = env.open("node-b").await.unwrap();
    // Pairs, as a client retrying a request produces, then a crowd.
    for (round, racers) in [(0u8, 2u8), (1, 2), (2, 2), (3, 8)] {
        let grant_id = format!("g{round}");
        with_grant(s, &session_grant(&grant_id, "c1", "s1"), round).await;
        let count = s.audit_count().await.unwrap();
        let tasks: Vec<_> = (0..racers)
            .map(|i| {
                let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
                let next = refresh(100 + round * 10 + i, &grant_id, 10, 3600);
                tokio::spawn(async move {
                    let r = store
                        .rotate_refresh_token(&[round; 32], &next, at(10), &typed_ev("oidc.refresh.reused"))
                        .await
                        .unwrap();
                    (r, next.digest)
                })
            })
            .collect();
        let (mut rotated, mut reused, mut unknown) = (Vec::new(), 0, 0);
        for t in tasks {
            match t.await.unwrap() {
                (Rotation::Rotated(_), next) => rotated.push(next),
                (Rotation::Reused(g), _) => {
                    assert_eq!(g.revoked_at, Some(at(10)));
                    reused += 1;
                }
                (Rotation::Unknown, _) => unknown += 1,
            }
        }
        // One wins; the first loser is a replay and revokes; later ones find it revoked.
        assert_eq!((rotated.len(), reused, unknown), (1, 1, racers as usize - 2), "round {round}");
        assert_eq!(s.grant(&grant_id).await.unwrap().unwrap().revoked_at, Some(at(10)));
        assert_eq!(s.audit_count().await.unwrap(), count + 1, "one reuse record");
        // The winner's successor is stored but dead with its grant; the losers' are not stored.
        let won = rotated[0];
        assert!(s.refresh_token(&won).await.unwrap().is_some());
        for i in 0..racers {
            let digest = [100 + round * 10 + i; 32];
            assert_eq!(s.refresh_token(&digest).await.unwrap().is_some(), digest == won);
        }
        let after = refresh(250, &grant_id, 20, 60);
        let r = s.rotate_refresh_token(&won, &after, at(20), &typed_ev("oidc.refresh.reused")).await.unwrap();
        assert_eq!(r, Rotation::Unknown, "the winner's successor died with the grant");
    }
    assert_eq!(verify_all(s).await.1, s.audit_count().await.unwrap() as u64);
}

async fn a_code_is_read_with_its_account(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    s.create_user(&user("u1", "alice", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let alice = s.user_by_id("u1").await.unwrap().unwrap();
    let c = code(1, "c1", "s1", 60);
    s.insert_auth_code(&c).await.unwrap();
    let orphan = AuthCode { user_id: "u-none".into(), ..code(2, "c1", "s1", 60) };
    s.insert_auth_code(&orphan).await.unwrap();

    assert_eq!(s.auth_code_with_user(&[1; 32]).await.unwrap(), Some((c.clone(), Some(alice.clone()))));
    assert_eq!(s.auth_code_with_user(&[2; 32]).await.unwrap(), Some((orphan, None)));
    assert_eq!(s.auth_code_with_user(&[3; 32]).await.unwrap(), None);
    // A redeemed code reads with the grant it bought, as `auth_code` reads it.
    s.redeem_auth_code(&[1; 32], at(5), "g1").await.unwrap();
    let (redeemed, u) = s.auth_code_with_user(&[1; 32]).await.unwrap().unwrap();
    assert_eq!((redeemed.grant_id.as_deref(), u), (Some("g1"), Some(alice)));
    assert_eq!(Some(redeemed), s.auth_code(&[1; 32]).await.unwrap());
}

async fn a_refresh_token_is_read_with_its_account_and_session(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    s.create_user(&user("u1", "alice", false), &[], &admin_ev(types::ADMIN_USER_CREATED)).await.unwrap();
    let s1 = session("s1", "u1", 1, 10);
    s.create_session(&s1, None, &admin_ev(types::AUTH_LOGIN_SUCCEEDED)).await.unwrap();
    let alice = s.user_by_id("u1").await.unwrap().unwrap();

    let (g1, t1) = (session_grant("g1", "c1", "s1"), refresh(1, "g1", 5, 3600));
    s.insert_grant(&g1, Some(&t1), &typed_ev("oidc.grant.issued")).await.unwrap();
    let want =
        RefreshHolder { token: t1.clone(), grant: g1.clone(), user: Some(alice.clone()), session: Some(s1.clone()) };
    assert_eq!(s.refresh_holder(&[1; 32]).await.unwrap(), Some(want.clone()));
    assert_eq!(s.refresh_holder(&[2; 32]).await.unwrap(), None);

    // A grant whose session is gone from the store, and one that names none.
    let (g2, t2) = (session_grant("g2", "c1", "s-gone"), refresh(2, "g2", 5, 3600));
    s.insert_grant(&g2, Some(&t2), &typed_ev("oidc.grant.issued")).await.unwrap();
    let want2 = RefreshHolder { token: t2, grant: g2, user: Some(alice.clone()), session: None };
    assert_eq!(s.refresh_holder(&[2; 32]).await.unwrap(), Some(want2));
    let g3 = Grant { session_id: None, ..session_grant("g3", "c1", "s1") };
    let t3 = refresh(3, "g3", 5, 3600);
    s.insert_grant(&g3, Some(&t3), &typed_ev("oidc.grant.issued")).await.unwrap();
    assert_eq!(s.refresh_holder(&[3; 32]).await.unwrap().unwrap().session, None);

    // A grant for an account that does not exist reads without one.
    let g4 = Grant { user_id: Some("u-none".into()), ..session_grant("g4", "c1", "s1") };
    let t4 = refresh(4, "g4", 5, 3600);
    s.insert_grant(&g4, Some(&t4), &typed_ev("oidc.grant.issued")).await.unwrap();
    let h4 = s.refresh_holder(&[4; 32]).await.unwrap().unwrap();
    assert_eq!((h4.user, h4.session), (None, Some(s1.clone())));

    // Spent, revoked, session ended: still read, state and all; the caller judges.
    let next = refresh(5, "g1", 20, 3600);
    let r = s.rotate_refresh_token(&[1; 32], &next, at(20), &typed_ev("oidc.refresh.reused")).await.unwrap();
    assert_eq!(r, Rotation::Rotated(g1.clone()));
    s.revoke_session("u1", "s1", at(30), &admin_ev(types::AUTH_SESSION_REVOKED)).await.unwrap();
    let h = s.refresh_holder(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(h.token, used(t1, at(20)));
    assert_eq!(h.session.unwrap().revoked_at, Some(at(30)));
    assert_eq!(h.user, Some(alice));
    // Its successor reads the same grant, which the ended session revoked.
    let h5 = s.refresh_holder(&[5; 32]).await.unwrap().unwrap();
    assert_eq!((h5.token, h5.grant.id.as_str()), (next, "g1"));
    assert_eq!(h5.grant.revoked_at, s.grant("g1").await.unwrap().unwrap().revoked_at);
}

async fn grants_revoked_one_by_one_and_by_session(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    with_client(s, "c2").await;
    let g1 = session_grant("g1", "c1", "s1");
    let mut g2 = session_grant("g2", "c2", "s1");
    g2.created_at = at(5);
    let g3 = session_grant("g3", "c1", "s2");
    let g4 = service_grant("g4", "c1");
    for (g, t) in [(&g1, 1), (&g2, 2), (&g3, 3), (&g4, 4)] {
        with_grant(s, g, t).await;
    }

    let revoke = typed_ev("oidc.grant.revoked");
    let count = s.audit_count().await.unwrap();
    assert!(s.revoke_grant("g1", at(10), &revoke).await.unwrap());
    assert_eq!(s.grant("g1").await.unwrap(), Some(revoked(g1.clone(), at(10))));
    assert_eq!(last_type(s).await, "oidc.grant.revoked");
    assert_eq!(s.audit_count().await.unwrap(), count + 1);
    // Its refresh token is dead with it.
    let next = refresh(50, "g1", 11, 60);
    assert_eq!(s.rotate_refresh_token(&[1; 32], &next, at(11), &revoke).await.unwrap(), Rotation::Unknown);
    // Revoking again, or what does not exist: not live, and nothing recorded.
    let before = snapshot(s).await;
    assert!(!s.revoke_grant("g1", at(12), &revoke).await.unwrap());
    assert!(!s.revoke_grant("g-missing", at(12), &revoke).await.unwrap());
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.grant("g1").await.unwrap().unwrap().revoked_at, Some(at(10)));

    // A session's end revokes its live grants (of every client) and returns them.
    let logout = typed_ev("oidc.logout.grants_revoked");
    let ended = s.revoke_grants_of_session("s1", at(20), "signed out", &logout).await.unwrap();
    assert_eq!(ended, [revoked(g2.clone(), at(20))]);
    assert_eq!(last_type(s).await, "oidc.logout.grants_revoked");
    assert_eq!(s.audit_count().await.unwrap(), before.1 + 1);
    assert_eq!(s.grant("g1").await.unwrap().unwrap().revoked_at, Some(at(10)), "first revocation stands");
    assert_eq!(s.grant("g2").await.unwrap(), Some(revoked(g2, at(20))));
    assert_eq!(s.grant("g3").await.unwrap(), Some(g3.clone()));
    assert_eq!(s.grant("g4").await.unwrap(), Some(g4));
    // Nothing left to end: nothing returned, nothing recorded.
    let before = snapshot(s).await;
    assert!(s.revoke_grants_of_session("s1", at(21), "signed out", &logout).await.unwrap().is_empty());
    assert!(s.revoke_grants_of_session("s-none", at(21), "signed out", &logout).await.unwrap().is_empty());
    assert_eq!(snapshot(s).await, before);

    // Several at once come back oldest first.
    let mut g5 = session_grant("g5", "c2", "s2");
    g5.created_at = at(-5);
    with_grant(s, &g5, 5).await;
    let ended = s.revoke_grants_of_session("s2", at(30), "signed out", &logout).await.unwrap();
    assert_eq!(ended, [revoked(g5, at(30)), revoked(g3, at(30))]);
    assert_eq!(verify_all(s).await.1, s.audit_count().await.unwrap() as u64);
}

async fn deleting_a_client_removes_its_codes_grants_and_tokens(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    with_client(s, "c2").await;
    for (d, client_id) in [(1, "c1"), (2, "c2")] {
        s.insert_auth_code(&code(d, client_id, "s1", 60)).await.unwrap();
    }
    // c1: a redeemed code and its grant with a rotated chain, an unredeemed code, a
    // client-credentials grant; c2: one of each.
    assert!(matches!(s.redeem_auth_code(&[1; 32], at(1), "g1").await.unwrap(), CodeRedemption::Fresh(_)));
    s.insert_auth_code(&code(3, "c1", "s1", 60)).await.unwrap();
    let g1 = session_grant("g1", "c1", "s1");
    with_grant(s, &g1, 11).await;
    let reuse = typed_ev("oidc.refresh.reused");
    s.rotate_refresh_token(&[11; 32], &refresh(12, "g1", 5, 60), at(5), &reuse).await.unwrap();
    with_grant(s, &service_grant("g2", "c1"), 13).await;
    let g3 = session_grant("g3", "c2", "s1");
    with_grant(s, &g3, 21).await;
    let before = snapshot(s).await;

    s.delete_client("c1", &typed_ev("oidc.client.deleted")).await.unwrap();
    assert_eq!(s.client("c1").await.unwrap(), None);
    for g in ["g1", "g2"] {
        assert_eq!(s.grant(g).await.unwrap(), None, "{g}");
    }
    for t in [11, 12, 13] {
        assert_eq!(s.refresh_token(&[t; 32]).await.unwrap(), None, "token {t}");
    }
    assert_eq!(s.redeem_auth_code(&[1; 32], at(2), "g9").await.unwrap(), CodeRedemption::Unknown);
    assert_eq!(s.redeem_auth_code(&[3; 32], at(2), "g9").await.unwrap(), CodeRedemption::Unknown);
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2 + 1));

    // The other client keeps everything.
    assert!(s.client("c2").await.unwrap().is_some());
    assert_eq!(s.grant("g3").await.unwrap(), Some(g3.clone()));
    assert_eq!(s.refresh_token(&[21; 32]).await.unwrap(), Some((refresh(21, "g3", 1, 3600), g3)));
    assert!(matches!(s.redeem_auth_code(&[2; 32], at(2), "g4").await.unwrap(), CodeRedemption::Fresh(_)));
    // The id is free again, and the new client inherits nothing.
    with_client(s, "c1").await;
    assert_eq!(s.grant("g1").await.unwrap(), None);
    assert_eq!(s.redeem_auth_code(&[3; 32], at(2), "g9").await.unwrap(), CodeRedemption::Unknown);
}

async fn oidc_keys_newest_first_retire_and_purge(env: &Env) {
    let s = &*env.store;
    assert!(s.oidc_keys().await.unwrap().is_empty());
    let created = typed_ev("keys.oidc.created");
    let (k1, k2, k3) = (oidc_key("k1", 1, "wg1.a.b.c"), oidc_key("k2", 2, "wg1.d.e.f"), oidc_key("k3", 3, "wg1.g.h.i"));
    for k in [&k2, &k3, &k1] {
        s.insert_oidc_key(k, &created).await.unwrap();
    }
    assert_eq!(s.oidc_keys().await.unwrap(), [k3.clone(), k2.clone(), k1.clone()]);
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (3, 3));
    let before = snapshot(s).await;
    let r = s.insert_oidc_key(&oidc_key("k1", 9, "wg1.x.y.z"), &created).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(snapshot(s).await, before);

    let retire = typed_ev("keys.oidc.retired");
    s.retire_oidc_key("k1", at(10), &retire).await.unwrap();
    let k1 = OidcKey { retired_at: Some(at(10)), ..k1 };
    assert_eq!(s.oidc_keys().await.unwrap(), [k3.clone(), k2.clone(), k1.clone()], "retired keys stay listed");
    assert_eq!(last_type(s).await, "keys.oidc.retired");
    assert_eq!((s.audit_count().await.unwrap(), s.revision().await.unwrap()), (before.1 + 1, before.2 + 1));
    // Retiring again keeps the first time (so the key is not purged early or kept late).
    let before = snapshot(s).await;
    s.retire_oidc_key("k1", at(20), &retire).await.unwrap();
    assert_eq!(s.oidc_keys().await.unwrap()[2], k1);
    let r = s.retire_oidc_key("k-missing", at(20), &retire).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);

    s.retire_oidc_key("k2", at(30), &retire).await.unwrap();
    let k2 = OidcKey { retired_at: Some(at(30)), ..k2 };
    // Strictly before: k2, retired at that very moment, stays.
    let revision = s.revision().await.unwrap();
    assert_eq!(s.purge_oidc_keys(at(30)).await.unwrap(), 1);
    assert_eq!(s.oidc_keys().await.unwrap(), [k3.clone(), k2]);
    assert_eq!(s.revision().await.unwrap(), revision + 1, "the published key set changed");
    assert_eq!(s.purge_oidc_keys(at(30)).await.unwrap(), 0);
    assert_eq!(s.revision().await.unwrap(), revision + 1);
    // A key in use is never purged.
    assert_eq!(s.purge_oidc_keys(T0 + secs(100 * 365 * 86_400)).await.unwrap(), 1);
    assert_eq!(s.oidc_keys().await.unwrap(), [k3]);
}

async fn key_rotation_rewraps_oidc_signing_keys(env: &Env) {
    let s = &*env.store;
    let ring = Keyring::generate().unwrap();
    let totp_sealed = ring.seal(&Factor::seal_context("f1"), b"JBSWY3DPEHPK3PXP").unwrap();
    let audit_sealed = ring.seal(&SigningKeyRecord::seal_context("a1"), &[7; 32]).unwrap();
    let oidc_sealed = ring.seal(&OidcKey::seal_context("kid-1"), b"pkcs8 der of an ES256 key").unwrap();
    s.create_user(
        &user("u1", "alice", false),
        &[factor("f1", "u1", FactorKind::Totp, &totp_sealed, 1)],
        &typed_ev("admin.user.created"),
    )
    .await
    .unwrap();
    s.insert_signing_key(&key("a1", PURPOSE_AUDIT_CHECKPOINT, 1, &audit_sealed), &typed_ev("keys.signing.created"))
        .await
        .unwrap();
    s.insert_oidc_key(&oidc_key("kid-1", 1, &oidc_sealed), &typed_ev("keys.oidc.created")).await.unwrap();

    let oidc_ref = SealedRef {
        column: SealedColumn::OidcKeyPrivate,
        id: "kid-1".into(),
        context: "oidc_key:kid-1:private".into(),
        sealed: oidc_sealed.clone(),
    };
    let all = s.sealed_values().await.unwrap();
    assert_eq!(
        all.iter().map(|r| (r.column, r.id.as_str())).collect::<Vec<_>>(),
        [
            (SealedColumn::FactorSecret, "f1"),
            (SealedColumn::SigningKeyPrivate, "a1"),
            (SealedColumn::OidcKeyPrivate, "kid-1")
        ]
    );
    assert_eq!(all[2], oidc_ref);

    // What `wardgate keys rotate` does to each value.
    let ring = ring.with_new_active(Kek::generate().unwrap());
    let revision = s.revision().await.unwrap();
    for v in &all {
        let new = ring.rewrap(&v.context, &v.sealed).unwrap().unwrap();
        assert!(s.replace_sealed(v, &new).await.unwrap(), "{:?}", v.column);
    }
    assert!(!s.replace_sealed(&oidc_ref, "wg1.stale.x.y").await.unwrap(), "compare-and-swap");
    assert_eq!(s.revision().await.unwrap(), revision + 3);
    let stored = s.oidc_keys().await.unwrap().remove(0).private_sealed;
    assert_ne!(stored, oidc_sealed);
    let ring = ring.retire_inactive();
    assert_eq!(ring.open(&oidc_ref.context, &stored).unwrap().as_slice(), b"pkcs8 der of an ES256 key");
    assert!(s.sealed_values().await.unwrap().iter().all(|v| ring.open(&v.context, &v.sealed).is_ok()));
}

/// The token paths' group commit: a grant, a code, a redemption, rotations (one routine, one
/// replay, one unknown) and a bare record, in one transaction; each finds what its own
/// method would, and the records go on the chain in batch order.
async fn a_batch_applies_every_write_with_its_records_in_order(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    with_grant(s, &session_grant("g1", "c1", "s1"), 1).await;
    let spent = session_grant("g2", "c1", "s2");
    with_grant(s, &spent, 2).await;
    s.rotate_refresh_token(&[2; 32], &refresh(3, "g2", 5, 3600), at(5), &typed_ev("oidc.refresh.reused"))
        .await
        .unwrap();
    s.insert_auth_code(&code(7, "c1", "s1", 60)).await.unwrap();
    let before = s.audit_head().await.unwrap();

    let cc = service_grant("g-cc", "c1");
    let fresh = code(8, "c1", "s1", 60);
    let writes = vec![
        Write::InsertGrant { grant: cc.clone(), refresh: None, event: typed_ev("oidc.grant.issued") },
        Write::InsertCode { code: fresh.clone(), event: typed_ev("oidc.authorization") },
        Write::RedeemCode { digest: [7; 32], now: at(10), grant_id: "g-code".into() },
        Write::RedeemCode { digest: [7; 32], now: at(10), grant_id: "g-again".into() },
        Write::RotateRefresh {
            digest: [1; 32],
            next: refresh(4, "g1", 10, 3600),
            now: at(10),
            rotated: typed_ev("oidc.token.refreshed"),
            reused: typed_ev("oidc.refresh.reused"),
            live: None,
        },
        // g2's first token was exchanged before: a replay, so g2 is revoked.
        Write::RotateRefresh {
            digest: [2; 32],
            next: refresh(5, "g2", 10, 3600),
            now: at(10),
            rotated: typed_ev("oidc.token.refreshed"),
            reused: typed_ev("oidc.refresh.reused"),
            live: None,
        },
        Write::RotateRefresh {
            digest: [99; 32],
            next: refresh(6, "g1", 10, 3600),
            now: at(10),
            rotated: typed_ev("oidc.token.refreshed"),
            reused: typed_ev("oidc.refresh.reused"),
            live: None,
        },
        Write::Audit(typed_ev("auth.login.succeeded")),
    ];
    let (found, head) = s.commit(&writes).await.unwrap();
    let redeemed = |g: &str| AuthCode { grant_id: Some(g.into()), ..code(7, "c1", "s1", 60) };
    assert_eq!(
        found,
        vec![
            Written::Done,
            Written::Done,
            Written::Redemption(CodeRedemption::Fresh(redeemed("g-code"))),
            Written::Redemption(CodeRedemption::Reused(redeemed("g-code"))),
            Written::Rotation(Rotation::Rotated(session_grant("g1", "c1", "s1"))),
            Written::Rotation(Rotation::Reused(revoked(spent.clone(), at(10)))),
            Written::Rotation(Rotation::Unknown),
            Written::Done,
        ]
    );
    assert_eq!(s.grant("g-cc").await.unwrap(), Some(cc));
    assert_eq!(s.grant("g2").await.unwrap(), Some(revoked(spent, at(10))));
    assert_eq!(s.refresh_token(&[4; 32]).await.unwrap().unwrap().0, refresh(4, "g1", 10, 3600));
    assert_eq!(s.refresh_token(&[5; 32]).await.unwrap(), None);
    assert_eq!(s.refresh_token(&[6; 32]).await.unwrap(), None);
    // The new code is redeemable once, like any other.
    let later = s.redeem_auth_code(&[8; 32], at(11), "g-8").await.unwrap();
    assert_eq!(later, CodeRedemption::Fresh(AuthCode { grant_id: Some("g-8".into()), ..fresh }));

    let types: Vec<String> =
        s.audit_records(before.seq, 100).await.unwrap().into_iter().map(|r| r.event_type).collect();
    assert_eq!(
        types,
        [
            "oidc.grant.issued",
            "oidc.authorization",
            "oidc.token.refreshed",
            "oidc.refresh.reused",
            "auth.login.succeeded"
        ]
    );
    assert_eq!(head, s.audit_head().await.unwrap());
    assert_eq!(head.seq, before.seq + 5);
    assert_eq!(verify_all(s).await.0, head);
}

/// All or nothing: a write that cannot be applied (a grant id taken) leaves every other
/// write of the batch, and the chain, as they were.
async fn a_batch_with_a_failing_write_keeps_nothing(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    with_grant(s, &session_grant("g1", "c1", "s1"), 1).await;
    s.insert_auth_code(&code(7, "c1", "s1", 60)).await.unwrap();
    let before = snapshot(s).await;
    // Read in the transaction, and read ahead (which SQLite sends blind, in one list).
    for live in [None, Some(session_grant("g1", "c1", "s1"))] {
        let writes = vec![
            Write::InsertGrant {
                grant: service_grant("g-new", "c1"),
                refresh: None,
                event: typed_ev("oidc.grant.issued"),
            },
            Write::RotateRefresh {
                digest: [1; 32],
                next: refresh(4, "g1", 10, 3600),
                now: at(10),
                rotated: typed_ev("oidc.token.refreshed"),
                reused: typed_ev("oidc.refresh.reused"),
                live: live.clone(),
            },
            Write::InsertGrant {
                grant: service_grant("g1", "c1"),
                refresh: None,
                event: typed_ev("oidc.grant.issued"),
            },
        ];
        let mut writes = writes;
        if live.is_none() {
            writes.insert(1, Write::RedeemCode { digest: [7; 32], now: at(10), grant_id: "g-code".into() });
        }
        assert!(matches!(s.commit(&writes).await, Err(StoreError::Conflict)), "a taken grant id is a conflict");
        assert_eq!(snapshot(s).await, before);
        assert_eq!(s.grant("g-new").await.unwrap(), None);
        assert_eq!(s.refresh_token(&[1; 32]).await.unwrap().unwrap().0.used_at, None);
        assert_eq!(s.refresh_token(&[4; 32]).await.unwrap(), None);
    }
    assert!(matches!(s.redeem_auth_code(&[7; 32], at(11), "g-x").await.unwrap(), CodeRedemption::Fresh(_)));
}

/// Batches that only add rows (grants with their first refresh token, service grants,
/// codes, records) — the shape the SQLite backend sends as one statement list once it
/// knows the chain head, so the second batch here takes that path there. Both batches
/// land whole, in order; a third with a taken grant id lands not at all.
async fn batches_of_inserts_one_after_another(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let batch = |n: u8| {
        let person = session_grant(&format!("g{n}"), "c1", &format!("s{n}"));
        let first = refresh(n, &person.id, 1, 3600);
        vec![
            Write::InsertGrant { grant: person, refresh: Some(first), event: typed_ev("oidc.grant.issued") },
            Write::InsertGrant {
                grant: service_grant(&format!("cc{n}"), "c1"),
                refresh: None,
                event: typed_ev("oidc.grant.issued"),
            },
            Write::InsertCode { code: code(100 + n, "c1", "s1", 60), event: typed_ev("oidc.authorization") },
            Write::Audit(typed_ev("auth.login.succeeded")),
        ]
    };
    let start = s.audit_head().await.unwrap();
    for n in [1, 2] {
        let (found, head) = s.commit(&batch(n)).await.unwrap();
        assert_eq!(found, vec![Written::Done; 4]);
        assert_eq!(head, s.audit_head().await.unwrap());
        assert_eq!(s.grant(&format!("cc{n}")).await.unwrap(), Some(service_grant(&format!("cc{n}"), "c1")));
        let (t, g) = s.refresh_token(&[n; 32]).await.unwrap().unwrap();
        assert_eq!((t, g.id), (refresh(n, &format!("g{n}"), 1, 3600), format!("g{n}")));
        let redeemed = s.redeem_auth_code(&[100 + n; 32], at(5), "g-x").await.unwrap();
        assert!(matches!(redeemed, CodeRedemption::Fresh(_)), "{redeemed:?}");
    }
    let types: Vec<String> = s.audit_records(start.seq, 100).await.unwrap().into_iter().map(|r| r.event_type).collect();
    let one = ["oidc.grant.issued", "oidc.grant.issued", "oidc.authorization", "auth.login.succeeded"];
    assert_eq!(types, [one, one].concat(), "each write's record, in batch order");
    assert_eq!(verify_all(s).await.0, s.audit_head().await.unwrap());

    let before = snapshot(s).await;
    let mut taken = batch(3);
    taken.push(Write::InsertGrant {
        grant: service_grant("cc1", "c1"),
        refresh: None,
        event: typed_ev("oidc.grant.issued"),
    });
    assert!(matches!(s.commit(&taken).await, Err(StoreError::Conflict)));
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.grant("cc3").await.unwrap(), None);
    assert_eq!(s.refresh_token(&[3; 32]).await.unwrap(), None);
    // And the path is open again afterwards.
    s.commit(&batch(4)).await.unwrap();
    assert!(s.grant("cc4").await.unwrap().is_some());
    assert_eq!(verify_all(s).await.0, s.audit_head().await.unwrap());
}

/// The token endpoint reads a code, checks the request against it, then spends it and
/// stores the grant it buys in one write: the grant only when the code was fresh.
async fn a_code_is_read_then_redeemed_into_its_grant_in_one_write(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let c = code(7, "c1", "s1", 60);
    s.insert_auth_code(&c).await.unwrap();
    assert_eq!(s.auth_code(&[7; 32]).await.unwrap(), Some(c.clone()));
    assert_eq!(s.auth_code(&[8; 32]).await.unwrap(), None);

    let into = |grant_id: &str, token: u8, now: OffsetDateTime| Write::RedeemIntoGrant {
        digest: [7; 32],
        now,
        grant: grant_of(&c, grant_id),
        refresh: refresh(token, grant_id, 1, 3600),
        event: typed_ev("oidc.grant.issued"),
        // Read ahead as the token endpoint does; stale for the replay below, which the
        // store must still tell apart.
        read: Some(c.clone()),
    };
    let before = s.audit_head().await.unwrap();
    let (found, _) = s.commit(&[into("g1", 1, at(5))]).await.unwrap();
    let spent = AuthCode { grant_id: Some("g1".into()), ..c.clone() };
    assert_eq!(found, [Written::Redemption(CodeRedemption::Fresh(spent.clone()))]);
    assert_eq!(s.grant("g1").await.unwrap(), Some(grant_of(&c, "g1")));
    assert_eq!(s.refresh_token(&[1; 32]).await.unwrap().unwrap().1.id, "g1");
    assert_eq!(s.auth_code(&[7; 32]).await.unwrap(), Some(spent.clone()));
    assert_eq!(last_type(s).await, "oidc.grant.issued");

    // Presented again: a replay. Nothing more is stored or recorded here; the caller revokes.
    let after = snapshot(s).await;
    let (found, _) = s.commit(&[into("g2", 2, at(6))]).await.unwrap();
    assert_eq!(found, [Written::Redemption(CodeRedemption::Reused(spent))]);
    assert_eq!(s.grant("g2").await.unwrap(), None);
    assert_eq!(s.refresh_token(&[2; 32]).await.unwrap(), None);
    assert_eq!(snapshot(s).await, after);
    assert_eq!(s.audit_head().await.unwrap().seq, before.seq + 1);

    // Expired before it was redeemed: unknown, and still unspent.
    let old = code(9, "c1", "s1", 60);
    s.insert_auth_code(&old).await.unwrap();
    let late = Write::RedeemIntoGrant {
        digest: [9; 32],
        now: T0 + secs(60),
        grant: grant_of(&old, "g3"),
        refresh: refresh(3, "g3", 1, 3600),
        event: typed_ev("oidc.grant.issued"),
        read: Some(old.clone()),
    };
    let (found, _) = s.commit(&[late]).await.unwrap();
    assert_eq!(found, [Written::Redemption(CodeRedemption::Unknown)]);
    assert_eq!(s.grant("g3").await.unwrap(), None);
    assert_eq!(s.auth_code(&[9; 32]).await.unwrap(), Some(old));
}

/// Two presentations of one live token in one batch (a thief racing the client): the first
/// exchanges it, the second is a replay that revokes the grant — as if one after the other.
/// Other live tokens of the batch, presented each at their own time, rotate normally.
async fn one_batch_presenting_a_refresh_token_twice_rotates_once_and_revokes(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let g1 = session_grant("g1", "c1", "s1");
    let g2 = session_grant("g2", "c1", "s2");
    with_grant(s, &g1, 1).await;
    with_grant(s, &g2, 2).await;
    let rotate = |digest: u8, next: u8, grant: &str, when: i64| Write::RotateRefresh {
        digest: [digest; 32],
        next: refresh(next, grant, when, 3600),
        now: at(when),
        rotated: typed_ev("oidc.token.refreshed"),
        reused: typed_ev("oidc.refresh.reused"),
        // Read ahead, as the token endpoint does: both presentations saw the token live.
        live: Some(if grant == "g1" { g1.clone() } else { g2.clone() }),
    };
    let before = s.audit_head().await.unwrap();
    let writes = [rotate(1, 11, "g1", 10), rotate(2, 21, "g2", 11), rotate(1, 12, "g1", 12)];
    let (found, _) = s.commit(&writes).await.unwrap();
    assert_eq!(
        found,
        [
            Written::Rotation(Rotation::Rotated(g1.clone())),
            Written::Rotation(Rotation::Rotated(g2.clone())),
            Written::Rotation(Rotation::Reused(revoked(g1.clone(), at(12)))),
        ]
    );
    assert_eq!(s.refresh_token(&[1; 32]).await.unwrap().unwrap().0.used_at, Some(at(10)));
    assert_eq!(s.refresh_token(&[2; 32]).await.unwrap().unwrap().0.used_at, Some(at(11)));
    assert_eq!(s.refresh_token(&[21; 32]).await.unwrap().unwrap(), (refresh(21, "g2", 11, 3600), g2));
    assert_eq!(s.grant("g1").await.unwrap(), Some(revoked(g1, at(12))));
    assert_eq!(s.refresh_token(&[12; 32]).await.unwrap(), None, "the replay's successor is not stored");
    let types: Vec<String> = s.audit_records(before.seq, 10).await.unwrap().into_iter().map(|r| r.event_type).collect();
    assert_eq!(types, ["oidc.token.refreshed", "oidc.token.refreshed", "oidc.refresh.reused"]);
}

/// A batch as a busy token endpoint makes it: several codes redeemed at once, one of them
/// presented twice (the second is a replay, as if one after the other), one expired, with a
/// refresh and a bare record among them. Each outcome is what it would be on its own.
async fn one_batch_redeeming_codes_tells_fresh_replayed_and_expired_apart(env: &Env) {
    let s = &*env.store;
    with_client(s, "c1").await;
    let g0 = session_grant("g0", "c1", "s0");
    with_grant(s, &g0, 1).await;
    let (a, b, old) = (code(7, "c1", "s1", 60), code(8, "c1", "s2", 60), code(9, "c1", "s3", 60));
    for c in [&a, &b, &old] {
        s.insert_auth_code(c).await.unwrap();
    }
    let into = |c: &AuthCode, grant_id: &str, token: u8, now: OffsetDateTime, kind: &str| Write::RedeemIntoGrant {
        digest: c.digest,
        now,
        grant: grant_of(c, grant_id),
        refresh: refresh(token, grant_id, 1, 3600),
        event: typed_ev(kind),
        read: Some(c.clone()),
    };
    let before = s.audit_head().await.unwrap();
    let writes = [
        into(&a, "ga", 70, at(5), "test.a"),
        Write::Audit(typed_ev("test.bare")),
        into(&b, "gb", 80, at(6), "test.b"),
        into(&a, "ga2", 71, at(7), "test.a.again"),
        into(&old, "gold", 90, T0 + secs(61), "test.old"),
        Write::RotateRefresh {
            digest: [1; 32],
            next: refresh(11, "g0", 8, 3600),
            now: at(8),
            rotated: typed_ev("test.refreshed"),
            reused: typed_ev("test.reused"),
            live: None,
        },
    ];
    let (found, head) = s.commit(&writes).await.unwrap();
    let spent = |c: &AuthCode, g: &str| AuthCode { grant_id: Some(g.into()), ..c.clone() };
    assert_eq!(
        found,
        [
            Written::Redemption(CodeRedemption::Fresh(spent(&a, "ga"))),
            Written::Done,
            Written::Redemption(CodeRedemption::Fresh(spent(&b, "gb"))),
            Written::Redemption(CodeRedemption::Reused(spent(&a, "ga"))),
            Written::Redemption(CodeRedemption::Unknown),
            Written::Rotation(Rotation::Rotated(g0.clone())),
        ]
    );
    assert_eq!(s.grant("ga").await.unwrap(), Some(grant_of(&a, "ga")));
    assert_eq!(s.grant("gb").await.unwrap(), Some(grant_of(&b, "gb")));
    for nothing in ["ga2", "gold"] {
        assert_eq!(s.grant(nothing).await.unwrap(), None, "{nothing}");
    }
    assert_eq!(s.refresh_token(&[70; 32]).await.unwrap().unwrap().1.id, "ga");
    assert_eq!(s.refresh_token(&[80; 32]).await.unwrap().unwrap().1.id, "gb");
    assert_eq!(s.refresh_token(&[71; 32]).await.unwrap(), None);
    assert_eq!(s.refresh_token(&[90; 32]).await.unwrap(), None);
    assert_eq!(s.refresh_token(&[11; 32]).await.unwrap().unwrap().1.id, "g0");
    assert_eq!(s.auth_code(&old.digest).await.unwrap(), Some(old), "the expired code is left unspent");
    let types: Vec<String> = s.audit_records(before.seq, 10).await.unwrap().into_iter().map(|r| r.event_type).collect();
    assert_eq!(types, ["test.a", "test.bare", "test.b", "test.refreshed"]);
    assert_eq!(head, s.audit_head().await.unwrap());

    // The next batch goes on from that head, and the chain verifies.
    let (_, next) = s.commit(&[Write::Audit(typed_ev("test.after"))]).await.unwrap();
    assert_eq!(next.seq, head.seq + 1);
    assert_eq!(verify_all(s).await.0, next);
}

/// Each writer remembers the head its last batch left; when the other has appended since,
/// a batch that also changes state must neither fork the chain nor fail.
async fn batches_from_two_writers_never_fork_the_chain(env: &Env) {
    let a = Arc::clone(&env.store);
    let b = env.open("node-b").await.unwrap();
    with_client(&*a, "c1").await;
    let mut expected = a.audit_head().await.unwrap().seq;
    for round in 0..4u8 {
        for (store, name) in [(&a, "a"), (&b, "b")] {
            let c = code(10 + round * 2 + u8::from(name == "b"), "c1", &format!("s{round}{name}"), 60);
            store.insert_auth_code(&c).await.unwrap();
            let grant_id = format!("g{round}{name}");
            let writes = [
                Write::Audit(typed_ev("test.bare")),
                Write::RedeemIntoGrant {
                    digest: c.digest,
                    now: at(5),
                    grant: grant_of(&c, &grant_id),
                    refresh: refresh(100 + c.digest[0], &grant_id, 1, 3600),
                    event: typed_ev("test.issued"),
                    read: Some(c.clone()),
                },
            ];
            let (found, head) = store.commit(&writes).await.unwrap();
            expected += 2;
            assert_eq!(head.seq, expected, "round {round}, writer {name}");
            assert!(matches!(found[1], Written::Redemption(CodeRedemption::Fresh(_))), "round {round}, writer {name}");
            assert!(store.grant(&grant_id).await.unwrap().is_some());
        }
    }
    let (head, verified) = verify_all(&*a).await;
    assert_eq!((head.seq, verified), (expected, expected as u64));
}
