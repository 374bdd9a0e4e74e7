//! `wardgate policy …`, `wardgate role …` and `wardgate device …` as operators run them.

use std::path::Path;

use crate::users::{installation, ok, refused, sql, wardgate_as};
use crate::{stderr, stdout};

const EXAMPLE: &str = include_str!("../../../../docs/policy.example.toml");

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn as_(who: &str, data: &Path, args: &[&str]) -> std::process::Output {
    wardgate_as(who, data, args)
}

fn ok_as(who: &str, data: &Path, args: &[&str]) -> String {
    let o = as_(who, data, args);
    assert!(o.status.success(), "{who} {args:?} failed: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

#[test]
fn a_policy_takes_effect_only_when_a_second_person_approves_it_and_a_bad_one_never() {
    let (dir, data) = installation();
    let file = write(dir.path(), "policy.toml", EXAMPLE);
    assert!(ok(&data, &["policy", "check", &file]).contains("valid — 8 rules, 10 roles, 3 network segments"));

    let out = ok_as("alice", &data, &["policy", "propose", &file, "--reason", "the documented example"]);
    assert!(out.contains("Version 1 proposed by operator:alice"), "{out}");
    // The author cannot approve their own proposal.
    let o = as_("alice", &data, &["policy", "approve", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("two-person rule"), "{}", stderr(&o));
    assert!(refused(&data, &["policy", "show"]).contains("no policy version is in force"));
    let out = ok_as("bob", &data, &["policy", "approve", "1"]);
    assert!(out.contains("Version 1 is in force (proposed by operator:alice, approved by operator:bob)"), "{out}");
    assert_eq!(ok(&data, &["policy", "show"]), EXAMPLE);

    // A file that names a role nobody defined is refused with its line, whole.
    let bad = EXAMPLE.replace("roles = [\"vendor-support\"]\nactions", "roles = [\"contractor\"]\nactions");
    assert_ne!(bad, EXAMPLE);
    let bad_file = write(dir.path(), "bad.toml", &bad);
    let err = refused(&data, &["policy", "propose", &bad_file, "--reason", "typo"]);
    assert!(err.contains("unknown role \"contractor\"") && err.contains("line "), "{err}");
    let err = refused(&data, &["policy", "check", &bad_file]);
    assert!(err.contains("unknown role \"contractor\""), "{err}");
    // Nothing was stored and version 1 is still in force.
    let history: serde_json::Value = serde_json::from_str(&ok(&data, &["policy", "history", "--json"])).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["status"], "active");

    // A second version, its diff, then a rollback to the first.
    let shorter =
        EXAMPLE.replace("idle_timeout = \"15m\"\nlifetime = \"12h\"", "idle_timeout = \"10m\"\nlifetime = \"12h\"");
    let shorter_file = write(dir.path(), "shorter.toml", &shorter);
    ok_as("alice", &data, &["policy", "propose", &shorter_file, "--reason", "shorter idle timeout"]);
    ok_as("bob", &data, &["policy", "approve", "2"]);
    let diff = ok(&data, &["policy", "diff", "1", "2"]);
    assert!(diff.contains("-idle_timeout = \"15m\"") && diff.contains("+idle_timeout = \"10m\""), "{diff}");
    let out = ok_as("alice", &data, &["policy", "rollback", "1", "--reason", "night shift complained"]);
    assert!(out.contains("Version 3 (a copy of version 1) is in force"), "{out}");
    let history: serde_json::Value = serde_json::from_str(&ok(&data, &["policy", "history", "--json"])).unwrap();
    let statuses: Vec<_> = history.as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["active", "superseded", "superseded"]);
    assert_eq!(history[0]["restores"], 1);
    assert!(refused(&data, &["policy", "approve", "2"]).contains("not proposed"));
    assert!(refused(&data, &["policy", "approve", "9"]).contains("no policy version 9"));
    assert!(refused(&data, &["policy", "propose", &file, "--reason", " "]).contains("reason"));

    // Every step is on record.
    let audit = ok(&data, &["audit", "export", "--format", "jsonl"]);
    for t in ["policy.version.proposed", "policy.version.activated", "policy.version.refused"] {
        assert!(audit.contains(t), "{t} missing");
    }
}

#[test]
fn roles_devices_and_explanations() {
    let (dir, data) = installation();
    let file = write(dir.path(), "policy.toml", EXAMPLE);
    ok_as("alice", &data, &["policy", "propose", &file, "--reason", "start"]);
    ok_as("bob", &data, &["policy", "approve", "1"]);

    // Roles come from the policy in force; administrative ones only for privileged accounts.
    let roles = ok(&data, &["role", "list"]);
    assert!(roles.contains("physician") && roles.contains("privileged only"), "{roles}");
    ok(&data, &["user", "add", "nina", "--role", "nurse"]);
    sql(&data, "UPDATE users SET status = 'active' WHERE username = 'nina'");
    assert!(refused(&data, &["role", "assign", "nina", "it-admin"]).contains("privileged"));
    assert!(refused(&data, &["role", "assign", "nina", "surgeon"]).contains("no role named \"surgeon\""));
    assert!(ok(&data, &["role", "assign", "nina", "pharmacist", "--for", "8h"]).contains("holds pharmacist until"));
    assert!(ok(&data, &["user", "show", "nina"]).contains("pharmacist (until "));
    ok(&data, &["role", "assign", "chief", "security-admin"]);

    let out = ok(&data, &["device", "add", "ws-icu-03", "--trusted", "--site", "main"]);
    assert!(out.contains("secret: wgd_"), "{out}");
    ok(&data, &["device", "set", "ws-icu-03", "--disk-encrypted", "true", "--patched", "true", "--check-in"]);
    let list = ok(&data, &["device", "list"]);
    assert!(list.contains("ws-icu-03") && list.contains("main"), "{list}");
    assert!(refused(&data, &["device", "add", "ws-icu-03"]).contains("already registered"));
    assert!(refused(&data, &["device", "add", "Bad Name"]).contains("device names"));

    // Explain: the decision and every rule's verdict.
    let args = |extra: &[&'static str]| {
        let mut a = vec!["policy", "explain", "--user", "nina", "--action", "ephi.read"];
        a.extend_from_slice(extra);
        a
    };
    let out = ok(&data, &args(&["--network", "clinical-vlan", "--device", "ws-icu-03", "--aal", "aal1"]));
    assert!(out.contains("Decision: allow") && out.contains("rule trusted-clinical-workstation"), "{out}");
    assert!(out.contains("Session limits: idle 8h, lifetime 8h, reauthenticate after 30m"), "{out}");
    assert!(out.contains("MATCH") && out.contains("no (network not listed)"), "{out}");
    let out = ok(&data, &args(&["--network", "internet", "--aal", "aal1"]));
    assert!(out.contains("Decision: step_up") && out.contains("Required assurance: aal2"), "{out}");
    let out = ok(&data, &["policy", "explain", "--user", "chief", "--action", "admin.policy", "--network", "internet"]);
    assert!(out.contains("Decision: step_up") && out.contains("Required assurance: aal3"), "{out}");
    let out = ok(&data, &["policy", "explain", "--user", "nina", "--action", "epcs.sign", "--network", "internet"]);
    assert!(out.contains("Decision: deny") && out.contains("builtin:no-permission"), "{out}");

    // A retired device is unknown from then on.
    ok(&data, &["device", "retire", "ws-icu-03"]);
    assert!(refused(&data, &args(&["--device", "ws-icu-03"])).contains("no registered device"));

    // With nothing recorded yet, a simulation replays nothing.
    assert!(ok(&data, &["policy", "simulate", &file, "--since", "7d"]).contains("Replayed 0 recorded decisions"));
    assert!(refused(&data, &["policy", "simulate", &file, "--since", "forever"]).contains("duration"));
}
