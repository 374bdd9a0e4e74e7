//! `wardgate scim token …` as an operator runs it.

use serde_json::Value;

use crate::users::{installation, ok, refused};

#[test]
fn scim_tokens_are_shown_once_listed_revoked_and_audited() {
    let (_dir, data) = installation();
    let out = ok(&data, &["scim", "token", "create", "--label", "workday", "--expires-in", "30d"]);
    assert!(out.contains("shown only now"), "{out}");
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert!(secret.len() >= 40, "{out}");

    let created: Value =
        serde_json::from_str(&ok(&data, &["scim", "token", "create", "--label", "entra", "--json"])).unwrap();
    assert!(created["token"].is_string());
    let list: Value = serde_json::from_str(&ok(&data, &["scim", "token", "list", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|t| t["state"] == "active" && t.get("token").is_none()), "{list:?}");
    let text = ok(&data, &["scim", "token", "list"]);
    assert!(!text.contains(&secret), "the secret is never shown again");
    let workday = list.iter().find(|t| t["label"] == "workday").unwrap()["id"].as_str().unwrap().to_owned();

    assert!(ok(&data, &["scim", "token", "revoke", &workday]).contains("revoked"));
    let list: Value = serde_json::from_str(&ok(&data, &["scim", "token", "list", "--json"])).unwrap();
    assert!(list.as_array().unwrap().iter().any(|t| t["id"] == workday.as_str() && t["state"] == "revoked"));

    // Mistakes: one line on stderr and a failing exit status.
    assert!(refused(&data, &["scim", "token", "revoke", &workday]).contains("no active SCIM token"));
    assert!(refused(&data, &["scim", "token", "create", "--label", "has space"]).contains("label"));
    assert!(refused(&data, &["scim", "token", "create", "--label", "x", "--expires-in", "forever"]).contains("days"));
    assert!(refused(&data, &["scim", "token", "create", "--label", "x", "--expires-in", "9999d"]).contains("730"));

    let export = ok(&data, &["audit", "export", "--format", "jsonl"]);
    assert_eq!(export.lines().filter(|l| l.contains("\"scim.token.created\"")).count(), 2);
    assert_eq!(export.lines().filter(|l| l.contains("\"scim.token.revoked\"")).count(), 1);
    assert!(!export.contains(&secret));
    ok(&data, &["audit", "verify"]);
}
