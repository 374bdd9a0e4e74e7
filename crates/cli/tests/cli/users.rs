//! `wardgate user …` and `wardgate token …` as an operator runs them.

use crate::{stderr, stdout};
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wardgate");
pub(crate) const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokens.pskc");
/// The pre-shared key of RFC 6030 §6.1, which the fixture is encrypted under.
pub(crate) const PSK: &str = "12345678901234567890123456789012";
const OPERATOR: &str = "nightshift";

pub(crate) fn wardgate(data: &Path, args: &[&str]) -> Output {
    wardgate_as(OPERATOR, data, args)
}

/// As `operator`, which names the actor in the audit log (and for the two-person rule).
pub(crate) fn wardgate_as(operator: &str, data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("USER", operator)
        .env_remove("SUDO_USER")
        .env_remove("WARDGATE_CONFIG")
        .env_remove("WARDGATE_DATABASE")
        .env_remove("WARDGATE_PSKC_KEY")
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns what it printed.
pub(crate) fn ok(data: &Path, args: &[&str]) -> String {
    let o = wardgate(data, args);
    assert!(o.status.success(), "{args:?} failed: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// Runs a command that must fail with one line on stderr; returns that line.
pub(crate) fn refused(data: &Path, args: &[&str]) -> String {
    let o = wardgate(data, args);
    assert!(!o.status.success(), "{args:?} should fail: {}", stdout(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{args:?}: one line expected on stderr:\n{err}");
    assert!(err.starts_with("wardgate: error: "), "{err}");
    err
}

/// A stopped installation whose first administrator, `chief`, came in through the
/// bootstrap link like a real one would, and is active.
pub(crate) fn installation() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.strip_prefix("Wardgate listening on ").unwrap().split(' ').next().unwrap().to_owned();
    assert!(lines.next().unwrap().unwrap().starts_with("Enroll the first administrator"));
    let link = lines.next().unwrap().unwrap();
    let token = link.trim().split_once("token=").unwrap().1.to_owned();
    let body = serde_json::json!({
        "token": token,
        "username": "chief",
        "display_name": "Chief Information Security Officer",
        "passphrase": "violet tram oyster quarantine lantern",
    })
    .to_string();
    let response = http_post_json(&base, "/api/v1/bootstrap", &body);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    // Stands in for the second-factor enrollment that follows the bootstrap link (tested
    // with the enrollment pages): these tests are about what comes after.
    sql(&data, "UPDATE users SET status = 'active' WHERE username = 'chief'");
    (dir, data)
}

fn http_post_json(base: &str, path: &str, body: &str) -> String {
    let addr = base.strip_prefix("http://").unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
}

pub(crate) fn sql(data: &Path, statement: &str) {
    let db = data.join("wardgate.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut c).await.unwrap();
        c.close().await.unwrap();
    });
}

fn scalar(data: &Path, q: &str) -> String {
    let db = data.join("wardgate.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(q.to_owned())).fetch_one(&mut c).await.unwrap();
        c.close().await.unwrap();
        v
    })
}

/// `user list --json`, as (username, status) pairs.
pub(crate) fn statuses(data: &Path) -> Vec<(String, String)> {
    let users: serde_json::Value = serde_json::from_str(&ok(data, &["user", "list", "--json"])).unwrap();
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap().to_owned(), u["status"].as_str().unwrap().to_owned()))
        .collect()
}

fn status_of(data: &Path, name: &str) -> String {
    statuses(data).into_iter().find(|(u, _)| u == name).map(|(_, s)| s).unwrap_or_default()
}

pub(crate) fn audit(data: &Path) -> Vec<serde_json::Value> {
    ok(data, &["audit", "export", "--format", "jsonl"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn an_invited_nurse_goes_through_the_life_of_an_account_and_her_name_stays_hers() {
    let (_dir, data) = installation();
    let out = ok(
        &data,
        &[
            "user",
            "add",
            "JSmith",
            "--display-name",
            "Jane Smith",
            "--email",
            "jane.smith@example.org",
            "--employee-id",
            "E-1042",
            "--role",
            "nurse",
            "--role",
            "ward:4b",
        ],
    );
    assert!(out.contains("Invited jsmith (Jane Smith)"), "{out}");
    assert!(out.contains("/enroll?token=") && out.contains("expires"), "{out}");
    let link = out.lines().find(|l| l.contains("/enroll?token=")).unwrap().trim();
    assert_eq!(link.split_once("token=").unwrap().1.len(), 43, "{link}");

    let table = ok(&data, &["user", "list"]);
    let row = table.lines().find(|l| l.starts_with("jsmith ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("invited") && row.contains("Jane Smith") && row.contains("nurse,ward:4b"), "{row}");
    assert_eq!(status_of(&data, "chief"), "active");

    let shown: serde_json::Value = serde_json::from_str(&ok(&data, &["user", "show", "jsmith", "--json"])).unwrap();
    assert_eq!(shown["user"]["employee_id"], "E-1042");
    assert_eq!(shown["user"]["roles"], serde_json::json!(["nurse", "ward:4b"]));
    assert!(ok(&data, &["user", "show", "jsmith"]).contains("Email:        jane.smith@example.org"));

    // A new link replaces the first.
    let again = ok(&data, &["user", "enroll-link", "jsmith"]);
    assert!(again.contains("/enroll?token=") && !again.contains(link), "{again}");

    assert!(ok(&data, &["user", "disable", "jsmith"]).contains("disabled"));
    assert_eq!(status_of(&data, "jsmith"), "disabled");
    refused(&data, &["user", "enroll-link", "jsmith"]);
    ok(&data, &["user", "enable", "jsmith", "--reason", "back from leave"]);
    assert_eq!(status_of(&data, "jsmith"), "invited", "she never enrolled, so she is invited again");

    // Twenty failures locked the administrator out; an unlock lets her back at once.
    sql(&data, "UPDATE users SET failed_attempts = 20, locked_until_us = 4102444800000000 WHERE username = 'chief'");
    assert_eq!(status_of(&data, "chief"), "locked");
    // An override always says why: no reason, or a blank one, is refused and changes nothing.
    let o = wardgate(&data, &["user", "unlock", "chief"]);
    assert!(!o.status.success() && stderr(&o).contains("--reason"), "{}", stderr(&o));
    refused(&data, &["user", "unlock", "chief", "--reason", "  "]);
    assert!(ok(&data, &["user", "unlock", "chief", "--reason", "ticket 1"]).contains("unlocked"));
    assert_eq!(status_of(&data, "chief"), "active");
    assert!(ok(&data, &["user", "unlock", "chief", "--reason", "ticket 1"]).contains("nothing to do"));

    let err = refused(&data, &["user", "delete", "jsmith"]);
    assert!(err.contains("--yes"), "{err}");
    let out = ok(&data, &["user", "delete", "jsmith", "--yes"]);
    assert!(out.contains("terminated") && out.contains("stays reserved"), "{out}");
    assert_eq!(status_of(&data, "jsmith"), "terminated");
    for name in ["jsmith", "JSMITH"] {
        let err = refused(&data, &["user", "add", name]);
        assert!(err.contains("jsmith") && err.contains("never given to another person"), "{err}");
    }
    refused(&data, &["user", "enable", "jsmith", "--reason", "back from leave"]);
    refused(&data, &["user", "delete", "jsmith", "--yes"]);

    // The last administrator cannot be locked out of administration by mistake.
    let err = refused(&data, &["user", "disable", "chief"]);
    assert!(err.contains("last active administrator"), "{err}");
    refused(&data, &["user", "delete", "chief", "--yes"]);

    let records = audit(&data);
    for (kind, subject) in [
        ("admin.user.invited", "jsmith"),
        ("admin.enrollment.issued", "jsmith"),
        ("admin.user.disabled", "jsmith"),
        ("admin.user.enabled", "jsmith"),
        ("admin.user.unlocked", "chief"),
        ("admin.user.terminated", "jsmith"),
    ] {
        let r = records
            .iter()
            .find(|r| r["type"] == kind && r["subject"] == subject)
            .unwrap_or_else(|| panic!("no {kind} record for {subject}"));
        assert_eq!(r["actor"], format!("operator:{OPERATOR}"), "{r}");
    }
    let enrollments =
        records.iter().filter(|r| r["type"] == "admin.enrollment.issued" && r["subject"] == "jsmith").count();
    assert_eq!(enrollments, 2);
    let export = ok(&data, &["audit", "export", "--format", "jsonl"]);
    assert!(!export.contains(link.split_once("token=").unwrap().1), "the link's token must not be in the log");
    assert!(ok(&data, &["audit", "verify"]).contains("intact"));
}

#[test]
fn bad_input_and_unknown_names_get_one_clear_line_and_a_failing_exit() {
    let (_dir, data) = installation();
    for (args, says) in [
        (&["user", "add", "bad name"][..], "invalid username"),
        (&["user", "add", "x;drop"][..], "invalid username"),
        (&["user", "add", "bob", "--role", "Night Nurse"][..], "role \"Night Nurse\" is not valid"),
        (&["user", "add", "bob", "--email", "bob"][..], "not an address"),
        (&["user", "add", "bob", "--display-name", ""][..], "display name"),
        (&["user", "add", "chief"][..], "already taken"),
        (&["user", "show", "nobody"][..], "no user named nobody"),
        (&["user", "disable", "nobody"][..], "no user named nobody"),
        (&["user", "unlock", "nobody", "--reason", "ticket 2"][..], "no user named nobody"),
        (&["token", "create", "--user", "chief", "--scope", "root"][..], "unknown scope \"root\""),
        (&["token", "create", "--user", "chief"][..], "at least one scope"),
        (&["token", "create", "--user", "chief", "--scope", "users:read", "--expires-in-days", "400"][..], "365"),
        (&["token", "create", "--user", "nobody", "--scope", "users:read"][..], "no user named nobody"),
        (&["token", "revoke", "no-such-token"][..], "no API token"),
    ] {
        let err = refused(&data, args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(statuses(&data).len(), 1, "nothing was created");
}

#[test]
fn api_tokens_are_for_active_administrators_shown_once_and_revocable() {
    let (_dir, data) = installation();
    ok(&data, &["user", "add", "pharmacist", "--role", "pharmacy"]);
    let err = refused(&data, &["token", "create", "--user", "pharmacist", "--scope", "users:read"]);
    assert!(err.contains("only for active administrators") && err.contains("does not hold the admin role"), "{err}");
    ok(&data, &["user", "add", "deputy", "--role", "admin"]);
    let err = refused(&data, &["token", "create", "--user", "deputy", "--scope", "users:read"]);
    assert!(err.contains("deputy is invited"), "an invited administrator has no authority yet: {err}");

    let out = ok(
        &data,
        &[
            "token",
            "create",
            "--user",
            "chief",
            "--scope",
            "users:read",
            "--scope",
            "users:write",
            "--label",
            "SCIM bridge",
        ],
    );
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert_eq!(secret.len(), 43, "{out}");
    assert!(out.contains("users:read users:write") && out.contains("shown only now"), "{out}");

    let listed: serde_json::Value =
        serde_json::from_str(&ok(&data, &["token", "list", "--user", "chief", "--json"])).unwrap();
    let t = &listed[0];
    assert_eq!((t["label"].as_str(), t["state"].as_str()), (Some("SCIM bridge"), Some("active")));
    let id = t["id"].as_str().unwrap().to_owned();
    assert!(ok(&data, &["token", "list", "--user", "chief"]).contains(&id));
    let created =
        time::OffsetDateTime::parse(t["created_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let expires =
        time::OffsetDateTime::parse(t["expires_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!((expires - created).whole_days(), 90);
    assert!(!ok(&data, &["user", "show", "chief", "--json"]).contains(&secret));

    assert!(ok(&data, &["token", "revoke", &id]).contains("revoked"));
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&data, &["token", "list", "--user", "chief", "--json"])).unwrap();
    assert_eq!(listed[0]["state"], "revoked");
    refused(&data, &["token", "revoke", &id]);

    let export = ok(&data, &["audit", "export", "--format", "jsonl"]);
    assert!(!export.contains(&secret), "a token never reaches the audit log");
    let records = audit(&data);
    for kind in ["admin.token.created", "admin.token.revoked"] {
        let r = records.iter().find(|r| r["type"] == kind).unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!((r["actor"].as_str(), r["subject"].as_str()), (Some("operator:nightshift"), Some("chief")), "{r}");
    }
    // Without $USER the actor is still named, as unknown.
    let o = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "orphan"])
        .env_remove("USER")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = audit(&data).into_iter().find(|r| r["type"] == "admin.user.invited" && r["subject"] == "orphan").unwrap();
    assert_eq!(r["actor"], "operator:unknown");
}

#[test]
fn hardware_tokens_from_a_pskc_file_are_sealed_and_bound_to_one_person_each() {
    let (_dir, data) = installation();
    ok(&data, &["user", "add", "porter", "--display-name", "Night Porter"]);
    ok(&data, &["user", "add", "midwife"]);

    let err = refused(&data, &["user", "import-token", FIXTURE, "--assign", "987654321=porter"]);
    assert!(err.contains("pre-shared key"), "{err}");
    let err = refused(&data, &["user", "import-token", FIXTURE, "--pre-shared-key", PSK]);
    assert!(err.contains("987654321, 100200300, 555000111"), "lists what the file holds: {err}");
    let wrong = "12345678901234567890123456789013";
    refused(&data, &["user", "import-token", FIXTURE, "--pre-shared-key", wrong, "--assign", "987654321=porter"]);
    let err =
        refused(&data, &["user", "import-token", FIXTURE, "--pre-shared-key", PSK, "--assign", "555000111=porter"]);
    assert!(err.contains("HOTP"), "{err}");
    let err = refused(&data, &["user", "import-token", FIXTURE, "--pre-shared-key", PSK, "--assign", "42=porter"]);
    assert!(err.contains("serial 42 is not in the file"), "{err}");
    refused(&data, &["user", "import-token", FIXTURE, "--pre-shared-key", PSK, "--assign", "987654321=nobody"]);

    let out = ok(
        &data,
        &[
            "user",
            "import-token",
            FIXTURE,
            "--pre-shared-key",
            PSK,
            "--assign",
            "987654321=porter",
            "--assign",
            "100200300=midwife",
        ],
    );
    assert!(out.contains("987654321 for porter (8 digits, 30 s, SHA1)"), "{out}");
    assert!(out.contains("100200300 for midwife (6 digits"), "{out}");

    let shown: serde_json::Value = serde_json::from_str(&ok(&data, &["user", "show", "porter", "--json"])).unwrap();
    let f = &shown["factors"][0];
    assert_eq!((f["kind"].as_str(), f["serial"].as_str()), (Some("totp"), Some("987654321")));
    assert_eq!(f["label"], "Hardware token 987654321");

    // One physical token, one person.
    let err =
        refused(&data, &["user", "import-token", FIXTURE, "--pre-shared-key", PSK, "--assign", "987654321=midwife"]);
    assert!(err.contains("already imported for porter"), "{err}");

    // At rest the seed is sealed to its factor: it opens under the installation's key with
    // that factor's context, and to the RFC's value.
    let id = f["id"].as_str().unwrap();
    let sealed = scalar(&data, &format!("SELECT secret FROM factors WHERE id = '{id}'"));
    assert!(!sealed.contains("MTIz") && sealed.starts_with("wg1."), "{sealed}");
    let params = scalar(&data, &format!("SELECT params FROM factors WHERE id = '{id}'"));
    let params: serde_json::Value = serde_json::from_str(&params).unwrap();
    assert_eq!(params, serde_json::json!({"algorithm": "SHA1", "digits": 8, "step_secs": 30, "serial": "987654321"}));
    let ring =
        wardgate_core::secrets::Keyring::from_file_text(&std::fs::read_to_string(data.join("master.key")).unwrap())
            .unwrap();
    let seed = ring.open(&wardgate_core::identity::Factor::seal_context(id), &sealed).unwrap();
    assert_eq!(seed.as_slice(), b"12345678901234567890");

    let r =
        audit(&data).into_iter().find(|r| r["type"] == "admin.factor.imported" && r["subject"] == "porter").unwrap();
    assert_eq!(r["actor"], "operator:nightshift");
    assert_eq!(r["details"]["serial"], "987654321");
    let export = ok(&data, &["audit", "export", "--format", "jsonl"]);
    assert!(!export.contains(&sealed) && !export.contains("3132333435"), "no secret in the log");
}

#[test]
fn a_passphrase_reset_sends_the_person_back_through_enrollment() {
    let (_dir, data) = installation();
    // The only administrator cannot be reset into an account nobody can use.
    let err = refused(&data, &["user", "reset-passphrase", "chief", "--reason", "ticket 3"]);
    assert!(err.contains("last active administrator"), "{err}");
    ok(&data, &["user", "add", "pnurse", "--role", "nurse"]);
    refused(&data, &["user", "reset-passphrase", "pnurse", "--reason", "ticket 4"]);
    sql(&data, "UPDATE users SET status = 'active' WHERE username = 'pnurse'");
    // She enrolled: a passphrase, an app, recovery codes (made here in the database).
    for (id, kind) in [("f-pwd", "passphrase"), ("f-app", "totp"), ("f-rc", "recovery_codes")] {
        sql(
            &data,
            &format!(
                "INSERT INTO factors (id, user_id, kind, label, secret, created_at_us) \
                 SELECT '{id}', id, '{kind}', '{kind}', 'x', 0 FROM users WHERE username = 'pnurse'"
            ),
        );
    }
    let out = ok(&data, &["user", "reset-passphrase", "pnurse", "--reason", "ticket 4"]);
    assert!(out.contains("/enroll?token=") && out.contains("signed out everywhere"), "{out}");
    assert_eq!(status_of(&data, "pnurse"), "invited");
    let records = audit(&data);
    for kind in ["admin.user.invited", "auth.session.revoked_all"] {
        assert!(
            records.iter().any(|r| r["type"] == kind && r["subject"] == "pnurse" && r["reason"] == "passphrase reset"),
            "{kind}"
        );
    }
    // The passphrase and the recovery codes are gone (remade at re-enrollment); the app stays.
    let removed: Vec<&str> = records
        .iter()
        .filter(|r| r["type"] == "admin.passphrase.reset" && r["subject"] == "pnurse")
        .map(|r| r["details"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(removed, ["passphrase", "recovery_codes"]);
    assert_eq!(scalar(&data, "SELECT group_concat(kind) FROM factors WHERE id LIKE 'f-%'"), "totp");
}

#[test]
fn applications_are_registered_listed_rotated_and_removed_from_the_command_line() {
    let (_dir, data) = installation();
    let out = ok(
        &data,
        &["client", "add", "EHR (production)", "--redirect-uri", "https://ehr.example.org/cb", "--scope", "profile"],
    );
    assert!(out.contains("client_id:") && out.contains("client_secret:") && out.contains("shown only now"), "{out}");
    let id = out.lines().find_map(|l| l.trim().strip_prefix("client_id:")).unwrap().trim().to_owned();
    let secret = out.lines().find_map(|l| l.trim().strip_prefix("client_secret:")).unwrap().trim().to_owned();
    let out = ok(
        &data,
        &["client", "add", "Bedside app", "--redirect-uri", "org.example.bedside:/cb", "--public", "--third-party"],
    );
    assert!(out.contains("public client") && !out.contains("client_secret:"), "{out}");

    let list = ok(&data, &["client", "list"]);
    assert!(
        list.contains("EHR (production)") && list.contains("confidential") && list.contains("Bedside app"),
        "{list}"
    );
    let shown: serde_json::Value = serde_json::from_str(&ok(&data, &["client", "show", &id])).unwrap();
    assert_eq!(shown["scopes"], serde_json::json!(["openid", "profile"]));
    assert!(shown.get("client_secret").is_none() && !shown.to_string().contains(&secret), "no secret shown again");

    let rotated = ok(&data, &["client", "rotate-secret", &id]);
    assert!(!rotated.contains(&secret) && rotated.contains("old one no longer works"), "{rotated}");
    let err = refused(&data, &["client", "delete", &id]);
    assert!(err.contains("--yes"), "{err}");
    ok(&data, &["client", "delete", &id, "--yes"]);
    assert!(refused(&data, &["client", "show", &id]).contains("no client"));

    // Bad input: one clear line, non-zero exit, nothing stored.
    for (args, says) in [
        (
            vec!["client", "add", "Evil", "--redirect-uri", "http://evil.example/cb"],
            "http is allowed only for loopback",
        ),
        (vec!["client", "add", "Frag", "--redirect-uri", "https://a.example/cb#x"], "fragment"),
        (
            vec!["client", "add", "Short", "--redirect-uri", "https://a.example/cb", "--access-token-ttl", "5"],
            "lifetimes",
        ),
        (
            vec!["client", "add", "Keys", "--redirect-uri", "https://a.example/cb", "--jwks", "/nonexistent.json"],
            "cannot read",
        ),
        (
            vec!["client", "add", "Shared", "--redirect-uri", "https://a.example/cb", "--signing-alg", "HS256"],
            "choose ES256, RS256 or EdDSA",
        ),
    ] {
        let err = refused(&data, &args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let list = ok(&data, &["client", "list", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&list).unwrap().as_array().unwrap().len(), 1);

    // A relying party that verifies only RSA: its key is made with it, so the JWKS has it
    // before the first token.
    let lab: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["client", "add", "Lab", "--redirect-uri", "https://lab.example.org/cb", "--signing-alg", "RS256", "--json"],
    ))
    .unwrap();
    assert_eq!(lab["signing_alg"], "RS256");
    assert_eq!(
        scalar(
            &data,
            "SELECT CAST(count(*) AS TEXT) FROM oidc_keys WHERE algorithm = 'RS256' AND retired_at_us IS NULL"
        ),
        "1"
    );
    let made = audit(&data);
    assert!(made.iter().any(|r| r["type"] == "keys.signing.created" && r["details"]["algorithm"] == "RS256"));
    // Rotation renews every algorithm in use.
    let out = ok(&data, &["keys", "rotate-signing"]);
    assert!(out.contains("(ES256)") && out.contains("(RS256)") && !out.contains("(EdDSA)"), "{out}");
    let records = audit(&data);
    for kind in ["oidc.client.created", "oidc.client.updated", "oidc.client.deleted"] {
        let r = records.iter().find(|r| r["type"] == kind).unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(r["actor"], format!("operator:{OPERATOR}"));
    }
}
