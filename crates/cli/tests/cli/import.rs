//! `wardgate user import`: a first load from an HR extract with broken lines in it.

use crate::users::{audit, installation, ok, refused, statuses, wardgate};
use crate::{stderr, stdout};

/// Two good lines, and one of each kind of trouble: a line short of fields, a bad email, a
/// name already taken by an existing account, a name repeated within the file, a vendor
/// that does not exist, and an unreadable yes/no.
const EXTRACT: &str = "username,display_name,email,employee_id,roles,privileged,vendor,expires\n\
nina,Nina Patel,nina@example.org,E100,nurse;charge-nurse,no,,\n\
omar,\"Okafor, Omar\",omar@example.org,E101,physician,no,,\n\
short,Too Few Fields\n\
pat,Pat,not-an-address,E102,nurse,no,,\n\
chief,Someone Else,x@example.org,E103,nurse,no,,\n\
Nina,Nina Again,nina2@example.org,E104,nurse,no,,\n\
val,Val,val@example.org,E105,,no,NoSuchVendor,2027-01-01\n\
quinn,Quinn,quinn@example.org,E106,nurse,perhaps,,\n";

const BAD_LINES: [(u32, &str); 6] = [
    (4, "field(s) where the header has 8"),
    (5, "email \"not-an-address\""),
    (6, "already taken"),
    (7, "appears again (first on line 2)"),
    (8, "no vendor named NoSuchVendor"),
    (9, "privileged \"perhaps\""),
];

fn assert_names_every_bad_line(out: &str) {
    for (n, why) in BAD_LINES {
        let line = out.lines().find(|l| l.starts_with(&format!("line {n}: refused: "))).unwrap_or_else(|| {
            panic!("line {n} is not reported:\n{out}");
        });
        assert!(line.contains(why), "line {n} should say {why:?}: {line}");
    }
    for good in [2, 3] {
        assert!(!out.contains(&format!("line {good}:")), "good line {good} reported:\n{out}");
    }
}

#[test]
fn an_extract_with_broken_lines_imports_the_good_ones_only_after_confirmation() {
    let (dir, data) = installation();
    let file = dir.path().join("hr.csv");
    std::fs::write(&file, EXTRACT).unwrap();
    let file = file.to_str().unwrap();
    let before = statuses(&data);
    let records_before = audit(&data).len();

    // A dry run names every bad line, writes nothing, and tells a script it needs attention.
    let o = wardgate(&data, &["user", "import", file, "--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert_names_every_bad_line(&out);
    assert!(out.contains("2 line(s) to import, 6 refused"), "{out}");
    assert!(out.contains("Dry run: nothing was written."));
    assert_eq!(statuses(&data), before);
    assert_eq!(audit(&data).len(), records_before, "a dry run leaves no trace but its output");

    // Without --yes and with no terminal to ask at, nothing is imported.
    let err = refused(&data, &["user", "import", file]);
    assert!(err.contains("nothing imported") && err.contains("--yes"), "{err}");
    assert_eq!(statuses(&data), before);

    // Confirmed: the good lines come in as invited accounts, the bad ones are named again,
    // and the account that already had a name keeps its own record.
    let out = ok(&data, &["user", "import", file, "--yes"]);
    assert_names_every_bad_line(&out);
    assert!(out.contains("Imported 2 account(s) as invited; 6 line(s) refused."), "{out}");
    let after = statuses(&data);
    assert!(after.contains(&("nina".into(), "invited".into())), "{after:?}");
    assert!(after.contains(&("omar".into(), "invited".into())));
    assert!(after.contains(&("chief".into(), "active".into())), "the existing account is untouched");
    for refused_name in ["short", "pat", "val", "quinn"] {
        assert!(!after.iter().any(|(u, _)| u == refused_name), "{refused_name} imported");
    }
    let show: serde_json::Value = serde_json::from_str(&ok(&data, &["user", "show", "omar", "--json"])).unwrap();
    assert_eq!(show["user"]["display_name"], "Okafor, Omar", "quoted commas survive");
    assert_eq!(show["user"]["employee_id"], "E101");
    let chief: serde_json::Value = serde_json::from_str(&ok(&data, &["user", "show", "chief", "--json"])).unwrap();
    assert_eq!(chief["user"]["display_name"], "Chief Information Security Officer");

    // One record per account, and one for the import naming the refused lines.
    let records = audit(&data);
    let invited: Vec<&str> =
        records.iter().filter(|r| r["type"] == "admin.user.invited").filter_map(|r| r["subject"].as_str()).collect();
    assert_eq!(invited, ["nina", "omar"]);
    let summary = records.iter().find(|r| r["type"] == "admin.users.imported").expect("summary record");
    assert_eq!(summary["details"]["imported"], 2);
    assert_eq!(summary["details"]["refused"], 6);
    assert_eq!(summary["details"]["refused_lines"], serde_json::json!([4, 5, 6, 7, 8, 9]));
    assert_eq!(summary["actor"], "operator:nightshift");
    assert!(
        !records
            .iter()
            .any(|r| r["type"] == "admin.enrollment.issued" && (r["subject"] == "nina" || r["subject"] == "omar")),
        "no links unless asked"
    );
    ok(&data, &["audit", "verify"]);

    // Importing the same file again refuses every line: nothing is ever overwritten.
    let o = wardgate(&data, &["user", "import", file, "--yes"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nothing to import"), "{}", stderr(&o));
}

#[test]
fn enrollment_links_go_to_an_owner_only_file_and_bad_headers_refuse_the_file() {
    let (dir, data) = installation();
    let file = dir.path().join("hr.csv");
    std::fs::write(&file, "Username,Display Name,Roles\nrita,Rita Ortiz,nurse\nsam,Sam Lee,pharmacist\n").unwrap();
    let links = dir.path().join("links.csv");
    let out = ok(
        &data,
        &[
            "user",
            "import",
            file.to_str().unwrap(),
            "--links",
            links.to_str().unwrap(),
            "--base-url",
            "https://wardgate.example.org",
        ],
    );
    assert!(out.contains("Imported 2 account(s)"), "{out}");
    let text = std::fs::read_to_string(&links).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "username,link,expires");
    assert!(rows[1].starts_with("rita,https://wardgate.example.org/enroll"), "{text}");
    assert!(rows[2].starts_with("sam,https://wardgate.example.org/enroll"), "{text}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&links).unwrap().permissions().mode() & 0o777, 0o600);
    // An existing links file is never overwritten (it may hold links not yet handed out).
    std::fs::write(&file, "username\ntess\n").unwrap();
    let err = refused(
        &data,
        &[
            "user",
            "import",
            file.to_str().unwrap(),
            "--links",
            links.to_str().unwrap(),
            "--base-url",
            "https://x.example",
        ],
    );
    assert!(err.contains("must not exist yet"), "{err}");

    for (content, says) in [
        ("login,email\nnina,n@example.org\n", "unknown column \"login\""),
        ("display_name\nNina\n", "no username column"),
    ] {
        std::fs::write(&file, content).unwrap();
        let err = refused(&data, &["user", "import", file.to_str().unwrap(), "--yes"]);
        assert!(err.contains(says), "{err}");
    }
    let err = refused(&data, &["user", "import", dir.path().join("missing.csv").to_str().unwrap()]);
    assert!(err.contains("cannot read"), "{err}");
}
