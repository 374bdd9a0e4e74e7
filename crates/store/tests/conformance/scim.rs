//! SCIM (L4): the connector's tokens, the SCIM attributes kept beside an account, and groups
//! with their unique names — each change with its audit record, on both backends.

use serde_json::json;
use wardgate_core::identity::AccountStatus;
use wardgate_core::scim::group::ScimGroup;
use wardgate_core::scim::token::ScimToken;
use wardgate_store::StoreError;

use crate::harness::*;

conformance!(
    scim_tokens_are_found_by_digest_listed_and_revoked_once,
    scim_attributes_are_saved_with_the_profile_and_refused_for_terminated_accounts,
    scim_groups_have_unique_names_regardless_of_case_and_keep_their_members,
);

fn token(id: &str, digest: u8, at: i64) -> ScimToken {
    ScimToken {
        id: id.into(),
        label: format!("{id}-label"),
        digest: [digest; 32],
        created_by: "operator:alice".into(),
        created_at: T0 + secs(at) + time::Duration::microseconds(5),
        expires_at: T0 + secs(at + 86_400),
        revoked_at: None,
    }
}

fn group(id: &str, name: &str, members: &[&str]) -> ScimGroup {
    ScimGroup {
        id: id.into(),
        display_name: name.into(),
        external_id: Some(format!("ext-{id}")),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        created_at: T0 + time::Duration::microseconds(7),
        updated_at: T0 + secs(1),
    }
}

async fn scim_tokens_are_found_by_digest_listed_and_revoked_once(env: &Env) {
    let s = &*env.store;
    let (a, b) = (token("t1", 1, 0), token("t2", 2, 10));
    s.create_scim_token(&a, &typed_ev("scim.token.created")).await.unwrap();
    s.create_scim_token(&b, &typed_ev("scim.token.created")).await.unwrap();
    assert!(
        matches!(s.create_scim_token(&token("t3", 1, 0), &ev(0)).await, Err(StoreError::Conflict)),
        "digests are unique"
    );
    assert_eq!(s.scim_token_by_digest(&[1; 32]).await.unwrap(), Some(a.clone()));
    assert_eq!(s.scim_token_by_digest(&[9; 32]).await.unwrap(), None);
    assert_eq!(s.scim_tokens().await.unwrap(), [b.clone(), a.clone()], "newest first");
    let before = s.audit_count().await.unwrap();
    s.revoke_scim_token("t1", T0 + secs(5), &typed_ev("scim.token.revoked")).await.unwrap();
    assert!(matches!(s.revoke_scim_token("t1", T0 + secs(6), &ev(1)).await, Err(StoreError::NotFound)));
    assert!(matches!(s.revoke_scim_token("nope", T0, &ev(1)).await, Err(StoreError::NotFound)));
    assert_eq!(s.audit_count().await.unwrap(), before + 1, "a refused revocation leaves no record");
    assert_eq!(s.scim_token_by_digest(&[1; 32]).await.unwrap().unwrap().revoked_at, Some(T0 + secs(5)));
    assert_eq!(last_type(s).await, "scim.token.revoked");
    verify_all(s).await;
}

async fn scim_attributes_are_saved_with_the_profile_and_refused_for_terminated_accounts(env: &Env) {
    let s = &*env.store;
    let mut u = user("u1", "jsmith", false);
    s.create_user(&u, &[], &ev(0)).await.unwrap();
    assert_eq!(s.scim_attributes("u1").await.unwrap(), None);
    u.display_name = "Jane Smith".into();
    u.email = "jane@example.org".into();
    u.employee_id = Some("701984".into());
    u.roles = vec!["not-written-here".into()];
    let attrs = json!({"user_name": "jsmith", "title": "Charge Nurse"});
    let revision = s.revision().await.unwrap();
    s.save_scim_user(&u, &attrs, T0 + secs(3), &typed_ev("scim.user.updated")).await.unwrap();
    assert!(s.revision().await.unwrap() > revision);
    let stored = s.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!((stored.display_name.as_str(), stored.email.as_str()), ("Jane Smith", "jane@example.org"));
    assert_eq!(stored.employee_id.as_deref(), Some("701984"));
    assert!(stored.roles.is_empty(), "roles change only through the account's own methods");
    assert_eq!(s.scim_attributes("u1").await.unwrap(), Some((attrs.clone(), T0 + secs(3))));
    // A second save replaces the attributes.
    let attrs2 = json!({"user_name": "jsmith", "title": "Ward Manager"});
    s.save_scim_user(&u, &attrs2, T0 + secs(4), &typed_ev("scim.user.updated")).await.unwrap();
    assert_eq!(s.all_scim_attributes().await.unwrap(), [("u1".to_owned(), attrs2, T0 + secs(4))]);

    let gone = wardgate_core::identity::User { status: AccountStatus::Terminated, ..stored };
    s.update_user(&gone, &ev(1)).await.unwrap();
    let before = s.audit_count().await.unwrap();
    assert!(matches!(s.save_scim_user(&u, &attrs, T0, &ev(2)).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.save_scim_user(&user("u9", "ghost", false), &attrs, T0, &ev(2)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.audit_count().await.unwrap(), before);
    verify_all(s).await;
}

async fn scim_groups_have_unique_names_regardless_of_case_and_keep_their_members(env: &Env) {
    let s = &*env.store;
    let icu = group("g1", "ICU Nurses", &["u1", "u2"]);
    s.create_scim_group(&icu, &typed_ev("scim.group.created")).await.unwrap();
    s.create_scim_group(&group("g2", "Pharmacy", &[]), &typed_ev("scim.group.created")).await.unwrap();
    let before = s.audit_count().await.unwrap();
    assert!(matches!(s.create_scim_group(&group("g3", "icu NURSES", &[]), &ev(0)).await, Err(StoreError::Conflict)));
    assert_eq!(s.audit_count().await.unwrap(), before);
    assert_eq!(s.scim_group("g1").await.unwrap(), Some(icu.clone()));
    assert_eq!(s.scim_groups().await.unwrap().iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["g1", "g2"]);

    let renamed = ScimGroup { display_name: "PHARMACY".into(), ..icu.clone() };
    assert!(matches!(s.update_scim_group(&renamed, &ev(1)).await, Err(StoreError::Conflict)));
    let changed = ScimGroup { members: vec!["u2".into()], updated_at: T0 + secs(9), external_id: None, ..icu };
    s.update_scim_group(&changed, &typed_ev("scim.group.updated")).await.unwrap();
    assert_eq!(s.scim_group("g1").await.unwrap(), Some(changed.clone()));
    assert!(matches!(s.update_scim_group(&group("nope", "x", &[]), &ev(2)).await, Err(StoreError::NotFound)));

    s.delete_scim_group("g1", &typed_ev("scim.group.deleted")).await.unwrap();
    assert_eq!(s.scim_group("g1").await.unwrap(), None);
    assert!(matches!(s.delete_scim_group("g1", &ev(3)).await, Err(StoreError::NotFound)));
    // The name is free again.
    s.create_scim_group(&group("g4", "ICU Nurses", &[]), &typed_ev("scim.group.created")).await.unwrap();
    assert_eq!(last_type(s).await, "scim.group.created");
    verify_all(s).await;
}
