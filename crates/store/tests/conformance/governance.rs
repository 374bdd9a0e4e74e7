//! Governance: the new account columns (vendor, expiry, manager, last sign-in) and the
//! expired and dormant queries, break-glass access and its review, just-in-time elevation,
//! business associates, and access review campaigns.

use std::sync::Arc;

use time::OffsetDateTime;
use time::macros::date;
use wardgate_core::governance::{
    BreakGlass, Campaign, DEADLINE_DECIDER, Decision, DefaultAction, Elevation, ElevationStatus, Review, ReviewOutcome,
    Scope, Vendor,
};
use wardgate_core::identity::{AccountStatus, User, Username};
use wardgate_store::{Store, StoreError};

use crate::harness::*;

conformance!(
    the_new_account_columns_round_trip,
    a_sign_in_time_only_moves_forward_and_is_not_an_administrative_change,
    expired_and_dormant_accounts_are_found,
    break_glass_is_opened_listed_and_ended,
    break_glass_is_reviewed_once_under_a_race,
    approving_an_elevation_gives_the_role_with_its_expiry,
    an_elevation_is_decided_once_under_a_race,
    vendors_are_created_updated_listed_with_their_accounts,
    a_campaign_is_stored_with_its_items_and_closed_once,
    revoking_a_review_item_takes_the_role_and_an_item_is_decided_once,
    each_governance_change_appends_its_event,
);

// --- fixtures -----------------------------------------------------------------------------

fn at(s: i64) -> OffsetDateTime {
    // Sub-second, to show microseconds survive the round trip.
    T0 + secs(s) + time::Duration::microseconds(271_828)
}

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn vendor(name_: &str) -> Vendor {
    Vendor {
        name: name_.into(),
        display_name: format!("{name_} Imaging"),
        baa_reference: format!("BAA-{name_}-2026"),
        baa_effective: date!(2026 - 01 - 01),
        baa_expires: date!(2027 - 07 - 01),
        sponsor: name("dr.lee"),
        created_at: at(1),
    }
}

/// A vendor's account: expiring, managed by its sponsor, signed in once.
fn vendor_user(id: &str, username: &str, vendor: &str) -> User {
    let mut u = user(id, username, false).with_roles(["vendor-support".to_owned()]);
    u.vendor = Some(vendor.into());
    u.account_expires = Some(at(86_400 * 180));
    u.manager = Some(name("dr.lee"));
    u.last_login_at = Some(at(60));
    u
}

fn break_glass(id: &str, user_id: &str, username: &str, opened: i64) -> BreakGlass {
    BreakGlass {
        id: id.into(),
        user_id: user_id.into(),
        username: name(username),
        reason_code: "code-blue".into(),
        justification: format!("{id}: code blue in bed 12, pharmacist unreachable"),
        opened_at: at(opened),
        expires_at: at(opened + 4 * 3600),
        session_id: Some(format!("s-{id}")),
        client_ip: Some("2001:db8::42".parse().unwrap()),
        ended_at: None,
        review: None,
    }
}

fn review(reviewer: &str, outcome: ReviewOutcome, when: i64) -> Review {
    Review { reviewer: name(reviewer), outcome, comment: format!("{reviewer} looked"), at: at(when) }
}

fn elevation(id: &str, u: &User, role: &str, requested: i64) -> Elevation {
    Elevation::request(
        id.into(),
        u,
        role,
        "cover the night shift",
        time::Duration::hours(8),
        time::Duration::hours(12),
        at(requested),
    )
    .unwrap()
}

fn campaign(id: &str, scope: &str, created: i64) -> Campaign {
    Campaign {
        id: id.into(),
        scope: Scope::parse(scope).unwrap(),
        reviewer: name("sam"),
        created_by: "operator:root".into(),
        created_at: at(created),
        deadline: at(created + 14 * 86_400),
        default_action: DefaultAction::Revoke,
        closed_at: None,
    }
}

fn ids(prefix: &str) -> impl FnMut() -> String + use<> {
    let prefix = prefix.to_owned();
    let mut n = 0;
    move || {
        n += 1;
        format!("{prefix}-{n}")
    }
}

async fn create(s: &dyn Store, users: &[&User]) {
    for u in users {
        s.create_user(u, &[], &typed_ev("admin.user.created")).await.unwrap();
    }
}

// --- accounts -----------------------------------------------------------------------------

async fn the_new_account_columns_round_trip(env: &Env) {
    let s = &*env.store;
    s.create_vendor(&vendor("acme"), &typed_ev("vendor.created")).await.unwrap();
    let jo = vendor_user("u-jo", "acme-jo", "acme");
    let staff = user("u-ann", "ann", false);
    create(s, &[&jo, &staff]).await;
    assert_eq!(s.user_by_id("u-jo").await.unwrap().as_ref(), Some(&jo));
    assert_eq!(s.user_by_username(&name("acme-jo")).await.unwrap().as_ref(), Some(&jo));
    let ann = s.user_by_id("u-ann").await.unwrap().unwrap();
    assert_eq!((ann.vendor, ann.account_expires, ann.manager, ann.last_login_at), (None, None, None, None));
    assert_eq!(s.list_users(None, 10).await.unwrap(), [jo.clone(), staff.clone()]);
    s.create_session(&session("s1", "u-jo", 1, 0), None, &typed_ev("auth.session.created")).await.unwrap();
    assert_eq!(s.session_and_user(&[1; 32]).await.unwrap().unwrap().1, jo);
    assert_eq!(s.session_with_user("s1").await.unwrap().unwrap().1, jo);

    // An update writes the vendor, the expiry and the manager (NULL too), not the sign-in.
    let changed = User {
        vendor: None,
        account_expires: Some(at(999)),
        manager: Some(name("sam")),
        last_login_at: Some(at(5000)),
        ..jo.clone()
    };
    s.update_user(&changed, &typed_ev("admin.user.updated")).await.unwrap();
    let back = s.user_by_id("u-jo").await.unwrap().unwrap();
    assert_eq!(back, User { last_login_at: jo.last_login_at, ..changed.clone() });
    let cleared = User { account_expires: None, manager: None, ..back };
    s.update_user(&cleared, &typed_ev("admin.user.updated")).await.unwrap();
    assert_eq!(s.user_by_id("u-jo").await.unwrap().as_ref(), Some(&cleared));

    // A vendor that does not exist is refused, and nothing is kept.
    let before = snapshot(s).await;
    let ghost = User { vendor: Some("globex".into()), ..user("u-gh", "ghost", false) };
    let r = s.create_user(&ghost, &[], &typed_ev("admin.user.created")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let to_ghost = User { vendor: Some("globex".into()), ..cleared.clone() };
    let r = s.update_user(&to_ghost, &typed_ev("admin.user.updated")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.user_by_id("u-gh").await.unwrap(), None);
    assert_eq!(s.user_by_id("u-jo").await.unwrap().as_ref(), Some(&cleared));
}

async fn a_sign_in_time_only_moves_forward_and_is_not_an_administrative_change(env: &Env) {
    let s = &*env.store;
    create(s, &[&user("u1", "alice", false)]).await;
    let before = snapshot(s).await;
    s.record_login("u1", at(100)).await.unwrap();
    assert_eq!(s.user_by_id("u1").await.unwrap().unwrap().last_login_at, Some(at(100)));
    // Another node reporting an earlier sign-in late does not move it back.
    let b = env.open("node-b").await.unwrap();
    b.record_login("u1", at(50)).await.unwrap();
    assert_eq!(s.user_by_id("u1").await.unwrap().unwrap().last_login_at, Some(at(100)));
    b.record_login("u1", at(200)).await.unwrap();
    assert_eq!(s.user_by_id("u1").await.unwrap().unwrap().last_login_at, Some(at(200)));
    let r = s.record_login("u-nobody", at(300)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // No record, no revision: the sign-in has its own record.
    assert_eq!(snapshot(s).await, before);
}

async fn expired_and_dormant_accounts_are_found(env: &Env) {
    let s = &*env.store;
    let day = 86_400;
    let now = at(100 * day);
    let mut expired = user("u1", "expired", false);
    expired.account_expires = Some(at(99 * day));
    let mut at_now = user("u2", "expires-now", false);
    at_now.account_expires = Some(now);
    let mut later = user("u3", "expires-later", false);
    later.account_expires = Some(now + secs(1));
    let gone = User { status: AccountStatus::Disabled, ..expired.clone() };
    let gone = User { id: "u4".into(), username: name("disabled-expired"), ..gone };
    let mut busy = user("u5", "busy", false);
    busy.last_login_at = Some(at(95 * day));
    let mut idle = user("u6", "idle", false);
    idle.last_login_at = Some(at(5 * day));
    let never = user("u7", "never", false); // created at T0, never signed in
    let mut invited = user("u8", "invited", false);
    invited.status = AccountStatus::Invited;
    let all = [&expired, &at_now, &later, &gone, &busy, &idle, &never, &invited];
    create(s, &all).await;

    let names = |v: Vec<User>| v.into_iter().map(|u| u.username.to_string()).collect::<Vec<_>>();
    assert_eq!(names(s.users_expired(now).await.unwrap()), ["expired", "expires-now"]);
    assert_eq!(names(s.users_expired(at(0)).await.unwrap()), Vec::<String>::new());
    // The core agrees with the store on every account.
    let mut by_core: Vec<_> =
        all.iter().filter(|u| u.may_sign_in() && u.expired_at(now)).map(|u| u.username.to_string()).collect();
    by_core.sort();
    assert_eq!(names(s.users_expired(now).await.unwrap()), by_core);

    // Dormant: no sign-in for 90 days (or none since creation).
    let ninety = time::Duration::days(90);
    let dormant = names(s.users_dormant(now - ninety).await.unwrap());
    let mut by_core: Vec<_> =
        all.iter().filter(|u| u.dormant_at(now, ninety)).map(|u| u.username.to_string()).collect();
    by_core.sort();
    assert_eq!(dormant, by_core);
    assert!(dormant.contains(&"idle".to_owned()) && dormant.contains(&"never".to_owned()), "{dormant:?}");
    assert!(!dormant.contains(&"busy".to_owned()) && !dormant.contains(&"invited".to_owned()), "{dormant:?}");
    // A sign-in takes an account off the list.
    s.record_login("u6", now).await.unwrap();
    assert!(!names(s.users_dormant(now - ninety).await.unwrap()).contains(&"idle".to_owned()));
}

// --- break-glass --------------------------------------------------------------------------

async fn break_glass_is_opened_listed_and_ended(env: &Env) {
    let s = &*env.store;
    create(s, &[&user("u-nina", "nina", false), &user("u-omar", "omar", false)]).await;
    let first = break_glass("bg1", "u-nina", "nina", 0);
    let second = BreakGlass { session_id: None, client_ip: None, ..break_glass("bg2", "u-nina", "nina", 600) };
    let other = break_glass("bg3", "u-omar", "omar", 300);
    for bg in [&first, &second, &other] {
        s.open_break_glass(bg, &typed_ev("breakglass.opened")).await.unwrap();
    }
    for bg in [&first, &second, &other] {
        assert_eq!(s.break_glass(&bg.id).await.unwrap().as_ref(), Some(bg));
    }
    assert_eq!(s.break_glass("bg9").await.unwrap(), None);
    assert_eq!(
        s.list_break_glass(false).await.unwrap(),
        [second.clone(), other.clone(), first.clone()],
        "newest first"
    );
    assert_eq!(s.list_break_glass(true).await.unwrap().len(), 3, "none reviewed yet");

    let ids = |v: Vec<BreakGlass>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(ids(s.active_break_glass_of("u-nina", at(700)).await.unwrap()), ["bg2", "bg1"]);
    assert_eq!(ids(s.active_break_glass_of("u-nina", at(300)).await.unwrap()), ["bg1"], "bg2 not yet opened");
    assert_eq!(ids(s.active_break_glass_of("u-nina", at(4 * 3600 + 300)).await.unwrap()), ["bg2"], "bg1 expired");
    assert!(s.active_break_glass_of("u-nobody", at(700)).await.unwrap().is_empty());

    // Ended once; an expired or ended one is not ended again, and nothing is recorded.
    assert!(s.end_break_glass("bg2", at(900), &typed_ev("breakglass.ended")).await.unwrap());
    assert_eq!(last_type(s).await, "breakglass.ended");
    let ended = BreakGlass { ended_at: Some(at(900)), ..second.clone() };
    assert_eq!(s.break_glass("bg2").await.unwrap().as_ref(), Some(&ended));
    assert_eq!(ids(s.active_break_glass_of("u-nina", at(900)).await.unwrap()), ["bg1"]);
    let before = snapshot(s).await;
    assert!(!s.end_break_glass("bg2", at(950), &typed_ev("breakglass.ended")).await.unwrap());
    assert!(!s.end_break_glass("bg1", at(4 * 3600), &typed_ev("breakglass.ended")).await.unwrap(), "expired");
    let r = s.end_break_glass("bg9", at(950), &typed_ev("breakglass.ended")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");

    // A taken id, an unknown account, or an access that comes reviewed: refused, nothing kept.
    let r = s.open_break_glass(&break_glass("bg1", "u-omar", "omar", 0), &typed_ev("breakglass.opened")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let r = s.open_break_glass(&break_glass("bg8", "u-nobody", "nobody", 0), &typed_ev("breakglass.opened")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let reviewed = BreakGlass {
        review: Some(review("sam", ReviewOutcome::Justified, 10)),
        ..break_glass("bg7", "u-omar", "omar", 0)
    };
    let r = s.open_break_glass(&reviewed, &typed_ev("breakglass.opened")).await;
    assert!(matches!(r, Err(StoreError::Malformed(_))), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.list_break_glass(false).await.unwrap().len(), 3);
}

async fn break_glass_is_reviewed_once_under_a_race(env: &Env) {
    let s = &*env.store;
    create(s, &[&user("u-nina", "nina", false)]).await;
    for bg in [break_glass("bg1", "u-nina", "nina", 0), break_glass("bg2", "u-nina", "nina", 60)] {
        s.open_break_glass(&bg, &typed_ev("breakglass.opened")).await.unwrap();
    }
    let before = s.audit_count().await.unwrap();
    let b = env.open("node-b").await.unwrap();
    let outcomes = [ReviewOutcome::Justified, ReviewOutcome::NotJustified, ReviewOutcome::NeedsFollowUp];
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            let r = review(&format!("reviewer{i}"), outcomes[i % 3], 7200 + i as i64);
            tokio::spawn(async move {
                let kept = store.review_break_glass("bg1", &r, &typed_ev("breakglass.reviewed")).await.unwrap();
                kept.then_some(r)
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.unwrap());
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(s.audit_count().await.unwrap(), before + 1, "one review, one record");
    let stored = s.break_glass("bg1").await.unwrap().unwrap();
    assert_eq!(stored.review.as_ref(), Some(&won[0]), "the kept review is the one that was told so");

    // The reviewed one leaves the pending list; a later review changes nothing.
    let pending: Vec<_> = s.list_break_glass(true).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(pending, ["bg2"]);
    assert_eq!(s.list_break_glass(false).await.unwrap().len(), 2);
    let snap = snapshot(s).await;
    assert!(
        !s.review_break_glass("bg1", &review("ola", ReviewOutcome::Justified, 9000), &typed_ev("breakglass.reviewed"))
            .await
            .unwrap()
    );
    let r = s
        .review_break_glass("bg9", &review("ola", ReviewOutcome::Justified, 9000), &typed_ev("breakglass.reviewed"))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, snap);
    assert_eq!(s.break_glass("bg1").await.unwrap(), Some(stored));
}

// --- elevation ----------------------------------------------------------------------------

async fn approving_an_elevation_gives_the_role_with_its_expiry(env: &Env) {
    let s = &*env.store;
    let nina = user("u-nina", "nina", false).with_roles(["nurse".to_owned()]);
    create(s, &[&nina, &user("u-sam", "sam", false)]).await;
    let mut e1 = elevation("e1", &nina, "pharmacist", 0);
    let e2 = elevation("e2", &nina, "charge-nurse", 10);
    let mut e3 = elevation("e3", &nina, "it-admin", 20);
    for e in [&e1, &e2, &e3] {
        s.request_elevation(e, &typed_ev("elevation.requested")).await.unwrap();
        assert_eq!(s.elevation(&e.id).await.unwrap().as_ref(), Some(e));
    }
    assert_eq!(s.elevation("e9").await.unwrap(), None);
    let ids = |v: Vec<Elevation>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_elevations(true).await.unwrap()), ["e3", "e2", "e1"], "newest first");

    // Approval: the status and the role (with its expiry) arrive together.
    e1.approve(&name("sam"), at(100)).unwrap();
    assert!(s.decide_elevation(&e1, &typed_ev("elevation.approved")).await.unwrap());
    assert_eq!(last_type(s).await, "elevation.approved");
    assert_eq!(s.elevation("e1").await.unwrap().as_ref(), Some(&e1));
    let held = s.user_by_id("u-nina").await.unwrap().unwrap();
    assert_eq!(held.roles, ["nurse", "pharmacist"]);
    assert_eq!(held.role_expiry.get("pharmacist"), Some(&(at(100) + time::Duration::hours(8))));
    assert_eq!(held.role_expiry.get("nurse"), None, "other assignments untouched");
    assert_eq!(held.roles_at(at(100) + time::Duration::hours(8)), ["nurse"], "and it ends by itself");

    // Denied and cancelled requests give nothing, and every status round-trips.
    let mut denied = e2.clone();
    denied.deny(&name("sam"), "not on the rota", at(110)).unwrap();
    assert!(s.decide_elevation(&denied, &typed_ev("elevation.denied")).await.unwrap());
    e3.cancel(at(120)).unwrap();
    assert!(s.decide_elevation(&e3, &typed_ev("elevation.cancelled")).await.unwrap());
    assert_eq!(s.elevation("e2").await.unwrap().as_ref(), Some(&denied));
    assert_eq!(s.elevation("e3").await.unwrap().as_ref(), Some(&e3));
    assert_eq!(s.user_by_id("u-nina").await.unwrap().unwrap().roles, ["nurse", "pharmacist"]);
    assert!(s.list_elevations(true).await.unwrap().is_empty());
    assert_eq!(s.list_elevations(false).await.unwrap(), [e3.clone(), denied.clone(), e1.clone()]);

    // Decided requests stay decided: no record, no role change.
    let before = snapshot(s).await;
    let mut again = elevation("e2", &nina, "charge-nurse", 10);
    again.approve(&name("sam"), at(130)).unwrap();
    assert!(!s.decide_elevation(&again, &typed_ev("elevation.approved")).await.unwrap());
    assert_eq!(s.elevation("e2").await.unwrap().as_ref(), Some(&denied));
    assert_eq!(s.user_by_id("u-nina").await.unwrap().unwrap().roles, ["nurse", "pharmacist"]);
    let unknown = Elevation { id: "e9".into(), ..again.clone() };
    let r = s.decide_elevation(&unknown, &typed_ev("elevation.approved")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = s.decide_elevation(&elevation("e4", &nina, "x", 0), &typed_ev("elevation.approved")).await;
    assert!(matches!(r, Err(StoreError::Malformed(_))), "pending is no decision: {r:?}");
    let r = s.request_elevation(&e1, &typed_ev("elevation.requested")).await;
    assert!(matches!(r, Err(StoreError::Malformed(_))), "a request is pending: {r:?}");
    let r = s.request_elevation(&elevation("e1", &nina, "pharmacist", 0), &typed_ev("elevation.requested")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let ghost = User { id: "u-ghost".into(), ..nina.clone() };
    let r = s.request_elevation(&elevation("e5", &ghost, "pharmacist", 0), &typed_ev("elevation.requested")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, before);

    // A second elevation to a role already held until later never shortens it; one to a
    // role the person holds for good leaves it permanent. The role comes from the stored
    // request, whatever the caller passes.
    let mut longer = elevation("e6", &held, "pharmacist", 200);
    longer.duration = time::Duration::hours(1);
    s.request_elevation(&longer, &typed_ev("elevation.requested")).await.unwrap();
    let mut tampered = Elevation { role: "admin".into(), ..longer.clone() };
    tampered.approve(&name("sam"), at(300)).unwrap();
    assert!(s.decide_elevation(&tampered, &typed_ev("elevation.approved")).await.unwrap());
    let held = s.user_by_id("u-nina").await.unwrap().unwrap();
    assert_eq!(held.roles, ["nurse", "pharmacist"], "no admin role from the caller's copy");
    assert_eq!(held.role_expiry.get("pharmacist"), Some(&(at(100) + time::Duration::hours(8))));
    assert_eq!(s.count_admins().await.unwrap(), 0);
}

async fn an_elevation_is_decided_once_under_a_race(env: &Env) {
    let s = &*env.store;
    let nina = user("u-nina", "nina", false).with_roles(["nurse".to_owned()]);
    create(s, &[&nina]).await;
    let e = elevation("e1", &nina, "pharmacist", 0);
    s.request_elevation(&e, &typed_ev("elevation.requested")).await.unwrap();
    let before = s.audit_count().await.unwrap();
    let b = env.open("node-b").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            let mut mine = e.clone();
            let approver = name(&format!("approver{i}"));
            if i % 3 == 0 {
                mine.deny(&approver, "no", at(100 + i as i64)).unwrap();
            } else {
                mine.approve(&approver, at(100 + i as i64)).unwrap();
            }
            tokio::spawn(async move {
                let kept = store.decide_elevation(&mine, &typed_ev("elevation.decided")).await.unwrap();
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
    assert_eq!(s.elevation("e1").await.unwrap().as_ref(), Some(&won[0]));
    let roles = s.user_by_id("u-nina").await.unwrap().unwrap().roles;
    match won[0].status {
        ElevationStatus::Approved { .. } => assert_eq!(roles, ["nurse", "pharmacist"]),
        _ => assert_eq!(roles, ["nurse"]),
    }
}

// --- vendors ------------------------------------------------------------------------------

async fn vendors_are_created_updated_listed_with_their_accounts(env: &Env) {
    let s = &*env.store;
    assert!(s.list_vendors().await.unwrap().is_empty());
    let acme = vendor("acme");
    let globex =
        Vendor { baa_effective: date!(0999 - 12 - 31), baa_expires: date!(9999 - 12 - 31), ..vendor("globex") };
    let beta = vendor("beta.systems");
    for v in [&acme, &globex, &beta] {
        s.create_vendor(v, &typed_ev("vendor.created")).await.unwrap();
        assert_eq!(s.vendor(&v.name).await.unwrap().as_ref(), Some(v));
    }
    assert_eq!(s.vendor("initech").await.unwrap(), None);
    assert_eq!(s.list_vendors().await.unwrap(), [acme.clone(), beta.clone(), globex.clone()], "by name");

    // Everything but the name and the creation time changes.
    let renewed = Vendor {
        display_name: "ACME Imaging (EMEA)".into(),
        baa_reference: "BAA-acme-2027".into(),
        baa_effective: date!(2027 - 07 - 01),
        baa_expires: date!(2029 - 07 - 01),
        sponsor: name("sam"),
        created_at: at(999),
        ..acme.clone()
    };
    s.update_vendor(&renewed, &typed_ev("vendor.updated")).await.unwrap();
    assert_eq!(s.vendor("acme").await.unwrap(), Some(Vendor { created_at: acme.created_at, ..renewed.clone() }));

    // Accounts of a vendor, whatever their status, by username.
    let jo = vendor_user("u-jo", "acme-jo", "acme");
    let al = User { status: AccountStatus::Disabled, ..vendor_user("u-al", "acme-al", "acme") };
    let other = vendor_user("u-gx", "globex-1", "globex");
    create(s, &[&jo, &al, &other, &user("u-ann", "ann", false)]).await;
    assert_eq!(s.vendor_users("acme").await.unwrap(), [al, jo]);
    assert_eq!(s.vendor_users("globex").await.unwrap(), [other]);
    assert!(s.vendor_users("beta.systems").await.unwrap().is_empty());
    assert!(s.vendor_users("initech").await.unwrap().is_empty());

    // A taken name, an unknown vendor, an agreement that ends before it starts: refused.
    let before = snapshot(s).await;
    let r = s.create_vendor(&vendor("acme"), &typed_ev("vendor.created")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let r = s.update_vendor(&vendor("initech"), &typed_ev("vendor.updated")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let backwards = Vendor { baa_expires: date!(2025 - 01 - 01), ..vendor("hooli") };
    assert!(s.create_vendor(&backwards, &typed_ev("vendor.created")).await.is_err());
    let empty = Vendor { baa_reference: String::new(), ..vendor("hooli") };
    assert!(s.create_vendor(&empty, &typed_ev("vendor.created")).await.is_err());
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.list_vendors().await.unwrap().len(), 3);
}

// --- access reviews -----------------------------------------------------------------------

async fn a_campaign_is_stored_with_its_items_and_closed_once(env: &Env) {
    let s = &*env.store;
    let mut ann = user("u-ann", "ann", false).with_roles(["nurse".to_owned(), "pharmacist".to_owned()]);
    ann.manager = Some(name("sam"));
    let mut bob = user("u-bob", "bob", false).with_roles(["nurse".to_owned()]);
    bob.manager = Some(name("sam"));
    let sam = user("u-sam", "sam", false).with_roles(["nurse".to_owned()]);
    create(s, &[&ann, &bob, &sam]).await;
    let users = s.list_users(None, 100).await.unwrap();

    let by_manager = campaign("c1", "manager:sam", 0);
    let by_role = Campaign { default_action: DefaultAction::Escalate, ..campaign("c2", "role:nurse", 60) };
    let items1 = by_manager.items_for(&users, ids("c1"));
    let items2 = by_role.items_for(&users, ids("c2"));
    assert_eq!((items1.len(), items2.len()), (3, 3));
    s.create_campaign(&by_manager, &items1, &typed_ev("review.campaign.created")).await.unwrap();
    s.create_campaign(&by_role, &items2, &typed_ev("review.campaign.created")).await.unwrap();
    assert_eq!(s.campaign("c1").await.unwrap().as_ref(), Some(&by_manager));
    assert_eq!(s.campaign("c2").await.unwrap().as_ref(), Some(&by_role));
    assert_eq!(s.campaign("c9").await.unwrap(), None);
    assert_eq!(s.list_campaigns().await.unwrap(), [by_role.clone(), by_manager.clone()], "newest first");
    assert_eq!(s.campaign_items("c1").await.unwrap(), items1, "by username then role");
    assert_eq!(s.campaign_items("c2").await.unwrap(), items2);
    assert!(s.campaign_items("c9").await.unwrap().is_empty());

    // Closed once.
    assert!(s.close_campaign("c1", at(500), &typed_ev("review.campaign.closed")).await.unwrap());
    assert_eq!(s.campaign("c1").await.unwrap(), Some(Campaign { closed_at: Some(at(500)), ..by_manager.clone() }));
    let before = snapshot(s).await;
    assert!(!s.close_campaign("c1", at(600), &typed_ev("review.campaign.closed")).await.unwrap());
    let r = s.close_campaign("c9", at(600), &typed_ev("review.campaign.closed")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // A closed campaign takes no decisions.
    assert!(
        !s.decide_item("c1-1", Decision::Revoke, "sam", at(700), None, &typed_ev("review.item.decided")).await.unwrap()
    );
    assert_eq!(s.user_by_id("u-ann").await.unwrap().unwrap().roles, ["nurse", "pharmacist"]);

    // Taken ids, items of another campaign or of nobody: refused, nothing kept.
    let r = s.create_campaign(&campaign("c1", "role:nurse", 0), &[], &typed_ev("review.campaign.created")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    let c3 = campaign("c3", "role:nurse", 900);
    let r = s.create_campaign(&c3, &items2, &typed_ev("review.campaign.created")).await;
    assert!(matches!(r, Err(StoreError::Malformed(_))), "{r:?}");
    let mut stray = c3.items_for(&users, ids("c3"));
    stray[0].user_id = "u-nobody".into();
    let r = s.create_campaign(&c3, &stray, &typed_ev("review.campaign.created")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let mut taken = c3.items_for(&users, ids("c3"));
    taken[1].id = "c1-1".into();
    let r = s.create_campaign(&c3, &taken, &typed_ev("review.campaign.created")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(snapshot(s).await, before);
    assert_eq!(s.campaign("c3").await.unwrap(), None);
    assert!(s.campaign_items("c3").await.unwrap().is_empty());
}

async fn revoking_a_review_item_takes_the_role_and_an_item_is_decided_once(env: &Env) {
    let s = &*env.store;
    let mut ann = user("u-ann", "ann", false).with_roles(["nurse".to_owned(), "pharmacist".to_owned()]);
    ann.role_expiry.insert("pharmacist".into(), at(86_400));
    let bob = user("u-bob", "bob", false).with_roles(["nurse".to_owned()]);
    create(s, &[&ann, &bob]).await;
    let c = campaign("c1", "role:pharmacist", 0);
    let c2 = campaign("c2", "role:nurse", 0);
    let users = s.list_users(None, 100).await.unwrap();
    let items = c.items_for(&users, ids("c1"));
    let nurses = c2.items_for(&users, ids("c2"));
    s.create_campaign(&c, &items, &typed_ev("review.campaign.created")).await.unwrap();
    s.create_campaign(&c2, &nurses, &typed_ev("review.campaign.created")).await.unwrap();

    // Keep: the role stays. Revoke: the role and its expiry go, in the same transaction.
    let (ann_nurse, bob_nurse) = (&nurses[0], &nurses[1]);
    assert_eq!((ann_nurse.username.as_str(), bob_nurse.username.as_str()), ("ann", "bob"));
    assert!(
        s.decide_item(&bob_nurse.id, Decision::Keep, "sam", at(10), None, &typed_ev("review.item.kept")).await.unwrap()
    );
    assert_eq!(last_type(s).await, "review.item.kept");
    assert_eq!(s.user_by_id("u-bob").await.unwrap().unwrap().roles, ["nurse"]);
    let mut decided = items[0].clone();
    c.decide(&mut decided, &name("sam"), Decision::Revoke, "moved to outpatients", at(20)).unwrap();
    let revoked = s
        .decide_item(
            &decided.id,
            Decision::Revoke,
            "sam",
            at(20),
            decided.comment.as_deref(),
            &typed_ev("review.item.revoked"),
        )
        .await
        .unwrap();
    assert!(revoked);
    let after = s.user_by_id("u-ann").await.unwrap().unwrap();
    assert_eq!(after.roles, ["nurse"]);
    assert!(after.role_expiry.is_empty());
    assert_eq!(s.campaign_items("c1").await.unwrap(), [decided.clone()]);

    // Concurrent decisions on one item: one is kept, with one record.
    let before = s.audit_count().await.unwrap();
    let b = env.open("node-b").await.unwrap();
    let item = ann_nurse.id.clone();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&env.store) } else { Arc::clone(&b) };
            let item = item.clone();
            let decision = if i % 2 == 0 { Decision::Keep } else { Decision::Revoke };
            tokio::spawn(async move {
                let by = format!("reviewer{i}");
                let event = typed_ev("review.item.decided");
                let kept = store.decide_item(&item, decision, &by, at(30 + i), None, &event).await.unwrap();
                kept.then_some((decision, by))
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.unwrap());
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(s.audit_count().await.unwrap(), before + 1);
    let stored = s.campaign_items("c2").await.unwrap().remove(0);
    assert_eq!((stored.decision, stored.decided_by.as_deref()), (Some(won[0].0), Some(won[0].1.as_str())));
    let roles = s.user_by_id("u-ann").await.unwrap().unwrap().roles;
    assert_eq!(roles.is_empty(), won[0].0 == Decision::Revoke, "{roles:?}");

    // Decided items stay decided; unknown ones are not found; a role already gone is fine.
    let snap = snapshot(s).await;
    assert!(
        !s.decide_item(&decided.id, Decision::Keep, "sam", at(90), None, &typed_ev("review.item.kept")).await.unwrap()
    );
    let r = s.decide_item("c1-9", Decision::Keep, "sam", at(90), None, &typed_ev("review.item.kept")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(snapshot(s).await, snap);
    // A default action applied at the deadline is recorded as such.
    let bob_item = s.campaign_items("c2").await.unwrap().remove(1);
    assert_eq!(bob_item.decision, Some(Decision::Keep));
    let c3 = campaign("c3", "role:nurse", 100);
    let items = c3.items_for(&s.list_users(None, 100).await.unwrap(), ids("c3"));
    s.create_campaign(&c3, &items, &typed_ev("review.campaign.created")).await.unwrap();
    let mut late = items.into_iter().find(|i| i.username.as_str() == "bob").unwrap();
    let due = c3.apply_default(&mut late, c3.deadline).unwrap();
    let event = typed_ev("review.item.revoked");
    let applied = s.decide_item(&late.id, due, DEADLINE_DECIDER, c3.deadline, late.comment.as_deref(), &event);
    assert!(applied.await.unwrap());
    assert!(s.campaign_items("c3").await.unwrap().contains(&late));
    assert_eq!(s.user_by_id("u-bob").await.unwrap().unwrap().roles, Vec::<String>::new());
}

/// Every change appends one record of the caller's type and bumps the revision once.
async fn each_governance_change_appends_its_event(env: &Env) {
    let s = &*env.store;
    let b = env.open("node-b").await.unwrap();
    async fn step(s: &dyn Store, b: &dyn Store, event_type: &str, n: i64) {
        assert_eq!(s.audit_count().await.unwrap(), n, "after {event_type}");
        assert_eq!(last_type(s).await, event_type);
        // Other handles see the revision move, and so reload.
        assert_eq!(b.revision().await.unwrap(), n, "after {event_type}");
    }
    s.create_vendor(&vendor("acme"), &typed_ev("vendor.created")).await.unwrap();
    step(s, &*b, "vendor.created", 1).await;
    s.update_vendor(&vendor("acme"), &typed_ev("vendor.updated")).await.unwrap();
    step(s, &*b, "vendor.updated", 2).await;
    let nina = user("u-nina", "nina", false).with_roles(["nurse".to_owned()]);
    s.create_user(&nina, &[], &typed_ev("admin.user.created")).await.unwrap();
    step(s, &*b, "admin.user.created", 3).await;
    s.open_break_glass(&break_glass("bg1", "u-nina", "nina", 0), &typed_ev("breakglass.opened")).await.unwrap();
    step(s, &*b, "breakglass.opened", 4).await;
    s.end_break_glass("bg1", at(10), &typed_ev("breakglass.ended")).await.unwrap();
    step(s, &*b, "breakglass.ended", 5).await;
    s.review_break_glass("bg1", &review("sam", ReviewOutcome::Justified, 20), &typed_ev("breakglass.reviewed"))
        .await
        .unwrap();
    step(s, &*b, "breakglass.reviewed", 6).await;
    let mut e = elevation("e1", &nina, "pharmacist", 30);
    s.request_elevation(&e, &typed_ev("elevation.requested")).await.unwrap();
    step(s, &*b, "elevation.requested", 7).await;
    e.approve(&name("sam"), at(40)).unwrap();
    s.decide_elevation(&e, &typed_ev("elevation.approved")).await.unwrap();
    step(s, &*b, "elevation.approved", 8).await;
    let c = campaign("c1", "role:nurse", 50);
    let items = c.items_for(&s.list_users(None, 10).await.unwrap(), ids("c1"));
    s.create_campaign(&c, &items, &typed_ev("review.campaign.created")).await.unwrap();
    step(s, &*b, "review.campaign.created", 9).await;
    s.decide_item(&items[0].id, Decision::Keep, "sam", at(60), Some("ok"), &typed_ev("review.item.kept"))
        .await
        .unwrap();
    step(s, &*b, "review.item.kept", 10).await;
    s.close_campaign("c1", at(70), &typed_ev("review.campaign.closed")).await.unwrap();
    step(s, &*b, "review.campaign.closed", 11).await;

    // Reads write nothing, nor does a sign-in.
    s.record_login("u-nina", at(80)).await.unwrap();
    s.users_expired(at(80)).await.unwrap();
    s.users_dormant(at(80)).await.unwrap();
    s.break_glass("bg1").await.unwrap();
    s.list_break_glass(true).await.unwrap();
    s.active_break_glass_of("u-nina", at(80)).await.unwrap();
    s.elevation("e1").await.unwrap();
    s.list_elevations(false).await.unwrap();
    s.vendor("acme").await.unwrap();
    s.list_vendors().await.unwrap();
    s.vendor_users("acme").await.unwrap();
    s.campaign("c1").await.unwrap();
    s.list_campaigns().await.unwrap();
    s.campaign_items("c1").await.unwrap();
    assert_eq!((s.audit_count().await.unwrap(), b.revision().await.unwrap()), (11, 11));
    let (head, verified) = verify_all(s).await;
    assert_eq!((head.seq, verified), (11, 11));
}
