//! `wardgate user proof`, `factor list|expire` and `recovery open|approve|deny|list` as
//! operators run them: bad input gets one line on stderr and a non-zero exit, and `audit
//! verify` accepts every record they left.

use crate::users::{installation, ok, refused, sql};

fn proof<'a>(evidence: &'a str, method: &'a str, by: &'a str) -> [&'a str; 11] {
    ["user", "proof", "nina", "--method", method, "--document", "passport", "--evidence-ref", evidence, "--as", by]
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn proofing_inventory_and_help_desk_recovery_from_the_command_line() {
    let (_dir, data) = installation();
    ok(&data, &["user", "add", "nina", "--role", "nurse"]);
    ok(&data, &["user", "add", "hank", "--role", "helpdesk", "--role", "security-admin", "--privileged"]);
    ok(&data, &["user", "add", "sue", "--role", "security-admin", "--privileged"]);
    sql(&data, "UPDATE users SET status = 'active'");

    // Identity proofing: a ticket number, never a document image; someone else verifies.
    let err = refused(&data, &proof("data:image/png;base64,iVBORw0KGgo", "in-person", "hank"));
    assert!(err.contains("image data"), "{err}");
    let err = refused(&data, &proof("HR-1", "telepathy", "hank"));
    assert!(err.contains("in-person or remote-supervised"), "{err}");
    let err = refused(&data, &proof("HR-1", "in-person", "nina"));
    assert!(err.contains("may not record identity proofing"), "{err}");
    let err = refused(&data, &proof("HR-1", "in-person", "nobody"));
    assert!(err.contains("no account named nobody"), "{err}");
    let out = ok(&data, &proof("HR-1234", "in-person", "hank"));
    assert!(out.contains("verified by hank"), "{out}");
    let shown = json(&ok(&data, &["user", "show", "nina", "--json"]));
    assert_eq!(shown["proofing"][0]["evidence_ref"], "HR-1234", "{shown}");
    assert_eq!(shown["proofing"][0]["method"], "in_person");
    let text = ok(&data, &["user", "show", "nina"]);
    assert!(text.contains("Identity proofing:") && text.contains("HR-1234"), "{text}");

    // The inventory, and an expiry.
    sql(
        &data,
        "INSERT INTO factors (id, user_id, kind, label, secret, params, created_at_us, enrolled_by) \
         SELECT 'f-nina', id, 'totp', 'Hardware token T-9', 'wg1.not-a-real-secret', '{\"serial\":\"T-9\"}', 0, \
         'admin:operator:test' FROM users WHERE username = 'nina'",
    );
    let all = ok(&data, &["factor", "list", "--json"]);
    assert!(!all.contains("wg1.not-a-real-secret"), "no secret in the inventory");
    let all = json(&all);
    let rows = all.as_array().unwrap();
    assert!(rows.iter().any(|f| f["username"] == "chief" && f["kind"] == "passphrase"), "{all}");
    let nina = rows.iter().find(|f| f["id"] == "f-nina").unwrap();
    assert_eq!((nina["serial"].as_str(), nina["enrolled_by"].as_str()), (Some("T-9"), Some("admin:operator:test")));
    let pwd = rows.iter().find(|f| f["kind"] == "passphrase").unwrap()["id"].as_str().unwrap().to_owned();
    let err = refused(&data, &["factor", "expire", "nina", "f-nina", "--in", "soon", "--reason", "recall"]);
    assert!(err.contains("a duration such as 90d"), "{err}");
    let err = refused(&data, &["factor", "expire", "nina", "f-nina", "--at", "2001-01-01", "--reason", "recall"]);
    assert!(err.contains("future date"), "{err}");
    let err = refused(&data, &["factor", "expire", "nina", "f-nina", "--in", "30d", "--reason", " "]);
    assert!(err.contains("reason is required"), "{err}");
    let err = refused(&data, &["factor", "expire", "chief", &pwd, "--in", "30d", "--reason", "rotation"]);
    assert!(err.contains("passphrases do not expire"), "{err}");
    let err = refused(&data, &["factor", "expire", "nina", "f-none", "--in", "30d", "--reason", "recall"]);
    assert!(err.contains("not found"), "{err}");
    let out = ok(&data, &["factor", "expire", "nina", "f-nina", "--in", "10d", "--reason", "token recall RC-7"]);
    assert!(out.contains("expires at"), "{out}");
    let expiring = json(&ok(&data, &["factor", "list", "--expiring", "30d", "--json"]));
    let ids: Vec<&str> = expiring.as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["f-nina"]);
    assert!(ok(&data, &["factor", "list", "--user", "chief", "--expiring", "30d"]).contains("(none)"));
    let err = refused(&data, &["factor", "list", "--expiring", "one month"]);
    assert!(err.contains("a duration such as 30d"), "{err}");

    // Help-desk recovery: two different people, the link printed once.
    let err = refused(&data, &["recovery", "open", "nina", "--reason", "phone lost", "--as", "nina"]);
    assert!(err.contains("recovery.open"), "{err}");
    let err = refused(&data, &["recovery", "open", "nina", "--reason", "  ", "--as", "hank"]);
    assert!(err.contains("reason is required"), "{err}");
    let out =
        ok(&data, &["recovery", "open", "nina", "--reason", "INC-4411 phone lost, call-back done", "--as", "hank"]);
    let id = out.split_whitespace().nth(2).unwrap().to_owned();
    let err = refused(&data, &["recovery", "approve", &id, "--as", "hank"]);
    assert!(err.contains("someone other than the person who opened it"), "{err}");
    let err = refused(&data, &["recovery", "approve", &id, "--as", "nina"]);
    assert!(err.contains("recovery.approve"), "{err}");
    assert!(ok(&data, &["recovery", "list", "--pending"]).contains(&id));
    let out = ok(&data, &["recovery", "approve", &id, "--as", "sue", "--base-url", "https://wardgate.example.org"]);
    assert!(out.contains("https://wardgate.example.org/recover?token="), "{out}");
    let err = refused(&data, &["recovery", "approve", &id, "--as", "sue"]);
    assert!(err.contains("not pending"), "{err}");
    let err = refused(&data, &["recovery", "deny", "no-such-request", "--as", "sue"]);
    assert!(err.contains("not found"), "{err}");
    let list = json(&ok(&data, &["recovery", "list", "--json"]));
    assert_eq!((list[0]["status"].as_str(), list[0]["decided_by"].as_str()), (Some("approved"), Some("sue")));
    assert!(ok(&data, &["recovery", "list", "--pending"]).contains("(none)"));

    ok(&data, &["audit", "verify"]);
}

/// L1 for hardware tokens: under an approved policy whose role requires proofing, a token
/// is not issued to a holder of that role until someone has verified who they are.
#[test]
fn a_hardware_token_waits_for_identity_proofing_when_the_role_requires_it() {
    use crate::users::{FIXTURE, PSK, wardgate_as};
    let (dir, data) = installation();
    ok(&data, &["user", "add", "nina", "--role", "prescriber"]);
    ok(&data, &["user", "add", "hank", "--role", "helpdesk"]);
    sql(&data, "UPDATE users SET status = 'active'");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[roles.prescriber]
permissions = ["ephi.read"]
require_proofing = true

[roles.helpdesk]
permissions = ["proofing.record"]

[[rule]]
name = "sign-in"
actions = ["login"]
require = "aal2"
"#,
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    assert!(
        wardgate_as("alice", &data, &["policy", "propose", policy, "--reason", "prescribers are proofed"])
            .status
            .success()
    );
    assert!(wardgate_as("bob", &data, &["policy", "approve", "1"]).status.success());

    let import = ["user", "import-token", FIXTURE, "--pre-shared-key", PSK, "--assign", "987654321=nina"];
    let err = refused(&data, &import);
    assert!(err.contains("nina holds role prescriber, which requires identity proofing"), "{err}");
    let shown = json(&ok(&data, &["user", "show", "nina", "--json"]));
    assert!(shown["factors"].as_array().unwrap().is_empty(), "nothing issued: {shown}");

    ok(&data, &proof("HR-77", "in-person", "hank"));
    let out = ok(&data, &import);
    assert!(out.contains("987654321 for nina"), "{out}");
}
