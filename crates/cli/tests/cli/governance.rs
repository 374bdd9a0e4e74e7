//! `wardgate elevate|vendor|review|breakglass|report` and `user list --dormant` as operators
//! run them, ending with `audit verify` accepting every record they left.

use crate::users::{installation, ok, refused, sql};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn elevation_vendors_and_reviews_from_the_command_line_leave_a_verifiable_trail() {
    let (_dir, data) = installation();
    ok(&data, &["user", "add", "sam", "--privileged"]);
    ok(&data, &["user", "add", "nina", "--role", "nurse"]);
    sql(&data, "UPDATE users SET status = 'active' WHERE username IN ('sam', 'nina')");

    // Just-in-time elevation: bounded, and never approved by the requester.
    let err = refused(&data, &["elevate", "request", "chief", "auditor", "--for", "9h", "--reason", "evidence"]);
    assert!(err.contains("at most"), "{err}");
    let out = ok(&data, &["elevate", "request", "chief", "auditor", "--for", "2h", "--reason", "quarterly evidence"]);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let err = refused(&data, &["elevate", "approve", &id, "--as", "chief"]);
    assert!(err.contains("person who made it"), "{err}");
    let err = refused(&data, &["elevate", "approve", &id, "--as", "nina"]);
    assert!(err.contains("privileged"), "{err}");
    assert!(ok(&data, &["elevate", "approve", &id, "--as", "sam"]).contains("chief holds auditor until"));
    let list = json(&ok(&data, &["elevate", "list", "--json"]));
    assert_eq!(list[0]["status"], "approved");
    assert_eq!(list[0]["decided_by"], "sam");
    assert!(ok(&data, &["elevate", "list", "--pending"]).contains("(none)"));

    // A vendor and a named vendor account that cannot outlive the agreement.
    ok(
        &data,
        &[
            "vendor",
            "add",
            "acme",
            "--display",
            "Acme Imaging",
            "--baa",
            "BAA-2026-17",
            "--baa-effective",
            "2026-01-01",
            "--baa-expires",
            "2030-01-01",
            "--sponsor",
            "chief",
        ],
    );
    let err = refused(&data, &["user", "add", "victor", "--vendor", "acme"]);
    assert!(err.contains("must have an expiry"), "{err}");
    let err = refused(&data, &["user", "add", "victor", "--vendor", "acme", "--expires", "2031-01-01"]);
    assert!(err.contains("after the vendor's agreement ends"), "{err}");
    ok(&data, &["user", "add", "victor", "--vendor", "acme", "--expires", "2029-06-30", "--role", "vendor-support"]);
    let shown = json(&ok(&data, &["vendor", "show", "acme", "--json"]));
    assert_eq!(shown["users"][0]["username"], "victor");
    assert_eq!(shown["users"][0]["account_expires"], "2029-06-30T00:00:00.000000Z");
    // A shortened agreement brings the account's expiry forward with it.
    let out = ok(&data, &["vendor", "set", "acme", "--baa-expires", "2029-01-01"]);
    assert!(out.contains("Accounts now expiring with the agreement: victor."), "{out}");
    let shown = json(&ok(&data, &["vendor", "show", "acme", "--json"]));
    assert_eq!(shown["users"][0]["account_expires"], "2029-01-01T00:00:00.000000Z");
    let report = json(&ok(&data, &["report", "vendors"]));
    assert_eq!(report["vendors"][0]["users"][0]["mfa_required"], true);
    let html = ok(&data, &["report", "vendors", "--format", "html"]);
    assert!(html.starts_with("<!doctype html>") && html.contains("Acme Imaging") && html.contains("victor"));

    // An access review: the revocation applies at once.
    let out = ok(&data, &["review", "start", "--scope", "role:nurse", "--reviewer", "sam", "--deadline", "14d"]);
    let campaign = out.split_whitespace().nth(1).unwrap().to_owned();
    let c = json(&ok(&data, &["review", "show", &campaign, "--json"]));
    let item = c["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(c["items"][0]["username"], "nina");
    let err = refused(&data, &["review", "decide", &item, "revoke", "--as", "chief"]);
    assert!(err.contains("only the campaign's reviewer"), "{err}");
    assert!(
        ok(&data, &["review", "decide", &item, "revoke", "--as", "sam", "--comment", "moved"])
            .contains("no longer holds nurse")
    );
    let nina = json(&ok(&data, &["user", "show", "nina", "--json"]));
    assert_eq!(nina["user"]["roles"], serde_json::json!([]), "{nina}");
    assert!(ok(&data, &["review", "close", &campaign]).contains("closed"));

    // Break-glass queue (empty) and dormant accounts.
    assert!(ok(&data, &["breakglass", "list", "--pending"]).contains("(none)"));
    sql(&data, "UPDATE users SET created_at_us = 0 WHERE username = 'nina'");
    let dormant = json(&ok(&data, &["user", "list", "--dormant", "--json"]));
    let names: Vec<&str> = dormant.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["nina"]);

    // Overrides: a lockout cleared and the approved elevation, with who did them and why.
    sql(&data, "UPDATE users SET failed_attempts = 20, locked_until_us = 4102444800000000 WHERE username = 'nina'");
    ok(&data, &["user", "unlock", "nina", "--reason", "ticket 8812, identity checked in person"]);
    let o = json(&ok(&data, &["report", "overrides"]));
    let kinds: Vec<&str> = o["overrides"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"elevation.approved"), "{o}");
    let approved = o["overrides"].as_array().unwrap().iter().find(|r| r["type"] == "elevation.approved").unwrap();
    assert!(approved["actor"].as_str().unwrap().starts_with("operator:"));
    let unlock = o["overrides"].as_array().unwrap().iter().find(|r| r["type"] == "admin.user.unlocked").unwrap();
    assert_eq!(unlock["reason"], "ticket 8812, identity checked in person");
    assert_eq!(unlock["subject"], "nina");
    assert!(ok(&data, &["report", "overrides", "--format", "html"]).contains("elevation.approved"));

    // Every record verifies, and the flows are all there.
    ok(&data, &["audit", "verify"]);
    let types: Vec<String> = ok(&data, &["audit", "export", "--format", "jsonl"])
        .lines()
        .map(|l| json(l)["type"].as_str().unwrap().to_owned())
        .collect();
    for t in [
        "elevation.requested",
        "elevation.approved",
        "vendor.created",
        "vendor.updated",
        "review.campaign.started",
        "review.item.decided",
        "review.campaign.closed",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing: {types:?}");
    }
}
