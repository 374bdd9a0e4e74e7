//! The `wardgate` binary as an operator runs it.

use crate::{stderr, stdout};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wardgate");

fn wardgate(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("WARDGATE_CONFIG")
        .env_remove("WARDGATE_DATABASE")
        .output()
        .unwrap()
}

/// A started `wardgate serve`, with what it printed.
struct Served {
    child: Child,
    base: String,
    bootstrap: Option<String>,
}

fn serve(data: &Path) -> Served {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.strip_prefix("Wardgate listening on ").unwrap().split(' ').next().unwrap().to_owned();
    let next = lines.next().unwrap().unwrap();
    let bootstrap = if next.starts_with("Enroll the first administrator") {
        Some(lines.next().unwrap().unwrap().trim().to_owned())
    } else {
        None
    };
    Served { child, base, bootstrap }
}

impl Served {
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
    }
}

/// An installation with a few dozen audit records, stopped.
fn installation() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    serve(&data).stop();
    for _ in 0..3 {
        assert!(wardgate(&data, &["admin", "bootstrap"]).status.success());
    }
    serve(&data).stop();
    (dir, data)
}

fn sql<S: AsRef<str>>(data: &Path, statements: &[S]) {
    let db = data.join("wardgate.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.as_ref().to_owned())).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();
    });
}

fn verify_fails_at(data: &Path, seq: i64) {
    let o = wardgate(data, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(3), "verify should fail: {}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("first bad sequence number: {seq}")), "{err}");
    assert_eq!(err.trim_end().lines().filter(|l| l.starts_with("wardgate: error")).count(), 1, "{err}");
}

#[test]
fn help_lists_the_subcommands() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    let out = stdout(&o);
    for cmd in ["serve", "config", "admin", "keys", "audit", "user", "token", "client", "policy", "role", "device"] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
}

/// clap checks a command's definition only when it is built: ask every subcommand for its
/// help, so a definition mistake fails here and not in an operator's hands.
#[test]
fn every_subcommand_has_help() {
    let top = stdout(&Command::new(BIN).arg("--help").output().unwrap());
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 11, "{commands:?}");
    for cmd in &commands {
        let o = Command::new(BIN).args([cmd.as_str(), "--help"]).output().unwrap();
        assert!(o.status.success(), "{cmd} --help: {}", stderr(&o));
        let subs: Vec<String> = stdout(&o)
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .filter(|c| c != "help")
            .collect();
        for sub in subs {
            let o = Command::new(BIN).args([cmd.as_str(), sub.as_str(), "--help"]).output().unwrap();
            assert!(o.status.success(), "{cmd} {sub} --help: {}", stderr(&o));
        }
    }
}

#[test]
fn serve_starts_on_an_empty_data_dir_prints_the_link_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let s = serve(&data);
    let link = s.bootstrap.clone().expect("bootstrap link printed on first start");
    assert!(link.starts_with(&format!("{}/bootstrap?token=", s.base)), "{link}");
    s.stop();
    assert!(data.join("wardgate.db").exists());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(data.join("master.key")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // A second start does not print a new link while the first is unused.
    let s = serve(&data);
    assert!(s.bootstrap.is_none());
    s.stop();
    let o = wardgate(&data, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("audit log intact"), "{}", stdout(&o));
}

#[test]
fn verify_names_the_first_altered_deleted_or_swapped_record() {
    let (_dir, data) = installation();
    let o = wardgate(&data, &["audit", "verify"]);
    assert!(o.status.success(), "untouched log verifies: {}", stderr(&o));

    // One field of one record.
    let (_d1, altered) = copy(&data);
    sql(
        &altered,
        &[
            "UPDATE audit_log SET body = replace(body, '\"outcome\":\"success\"', '\"outcome\":\"failure\"') WHERE seq = 5",
        ],
    );
    verify_fails_at(&altered, 5);

    // One record deleted.
    let (_d2, deleted) = copy(&data);
    sql(&deleted, &["DELETE FROM audit_log WHERE seq = 4"]);
    verify_fails_at(&deleted, 4);

    // Two records swapped (everything but their position).
    let (_d3, swapped) = copy(&data);
    sql(
        &swapped,
        &[
            "CREATE TEMP TABLE s AS SELECT * FROM audit_log WHERE seq IN (3, 6)",
            "UPDATE audit_log SET body = (SELECT body FROM s WHERE seq = 6), hash = (SELECT hash FROM s WHERE seq = 6), ts_us = (SELECT ts_us FROM s WHERE seq = 6), event_type = (SELECT event_type FROM s WHERE seq = 6) WHERE seq = 3",
            "UPDATE audit_log SET body = (SELECT body FROM s WHERE seq = 3), hash = (SELECT hash FROM s WHERE seq = 3), ts_us = (SELECT ts_us FROM s WHERE seq = 3), event_type = (SELECT event_type FROM s WHERE seq = 3) WHERE seq = 6",
        ],
    );
    verify_fails_at(&swapped, 3);

    // The tail cut off below a signed checkpoint.
    let (_d4, truncated) = copy(&data);
    sql(&truncated, &["DELETE FROM audit_log WHERE seq >= 8"]);
    verify_fails_at(&truncated, 8);
}

fn copy(data: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("data");
    std::fs::create_dir(&to).unwrap();
    for e in std::fs::read_dir(data).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    (dir, to)
}

#[test]
fn export_writes_lines_anyone_can_chain_with_sha256() {
    use sha2::Digest as _;
    let (_dir, data) = installation();
    let o = wardgate(&data, &["audit", "export", "--format", "jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 9, "{out}");
    for pair in lines.windows(2) {
        let next: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
        assert_eq!(next["prev"], hex::encode(sha2::Sha256::digest(pair[0].as_bytes())));
    }
    let o = wardgate(&data, &["audit", "export", "--format", "syslog", "--since", "2000-01-01"]);
    let out = stdout(&o);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("<85>1 ") && first.contains(" wardgate - keys.signing.created [wardgate@32473 seq=\"1\""),
        "{first}"
    );
    let o = wardgate(&data, &["audit", "export", "--until", "2000-01-01"]);
    assert!(o.status.success() && stdout(&o).is_empty());
    let o = wardgate(&data, &["audit", "export", "--since", "yesterday-ish"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a time"));
}

#[test]
fn config_check_reports_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wardgate.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"0.0.0.0:80\"\ncolour = \"blue\"\n[audit]\nretention_days = 7\n")
        .unwrap();
    let o = Command::new(BIN).args(["config", "check"]).arg(&cfg).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let name = cfg.display().to_string();
    assert!(out.contains(&format!("{name}:2: server.listen:")), "{out}");
    assert!(out.contains(&format!("{name}:3: server.colour: unknown key")), "{out}");
    assert!(out.contains(&format!("{name}:5: audit.retention_days:")), "{out}");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
    let o = Command::new(BIN).args(["config", "check"]).arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", stdout(&o));
    // The authenticator allowlist is a table of role → AAGUIDs; each AAGUID is checked.
    let table = "[auth.webauthn_allowed_aaguids]\nprescriber = [\"73bb0cd4-e502-49b8-9c6f-b59445bf720b\"]\n";
    std::fs::write(&cfg, table).unwrap();
    let o = Command::new(BIN).args(["config", "check"]).arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", stdout(&o));
    std::fs::write(&cfg, "[oidc.scope_claims]\nehr = [\"employee_id\", \"groups\"]\n").unwrap();
    let o = Command::new(BIN).args(["config", "check"]).arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", stdout(&o));
    std::fs::write(&cfg, "[oidc.scope_claims]\nehr = [\"ssn\"]\n").unwrap();
    let o = Command::new(BIN).args(["config", "check"]).arg(&cfg).output().unwrap();
    assert!(!o.status.success() && stdout(&o).contains("unknown claim"), "{}", stdout(&o));
    std::fs::write(&cfg, "[auth.webauthn_allowed_aaguids]\nprescriber = [\"yubikey\"]\nnurse = 3\n").unwrap();
    let o = Command::new(BIN).args(["config", "check"]).arg(&cfg).output().unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("auth.webauthn_allowed_aaguids"), "{out}");
}

#[test]
fn config_show_layers_file_environment_and_flags_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wardgate.toml");
    std::fs::write(
        &cfg,
        "database = \"postgres://wg:hunter2hunter2@db.internal/wardgate\"\n[audit]\ncheckpoint_every = 50\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["--config"])
        .arg(&cfg)
        .args(["--log-format", "json", "config", "show"])
        .env("WARDGATE_AUDIT_CHECKPOINT_EVERY", "77")
        .env("WARDGATE_SERVER_LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("checkpoint_every = 77"), "env beats file:\n{out}");
    assert!(out.contains("listen = \"127.0.0.1:9999\""), "{out}");
    assert!(out.contains("format = \"json\""), "flag applies:\n{out}");
    assert!(!out.contains("hunter2"), "secret shown:\n{out}");
    let o = Command::new(BIN).args(["config", "show"]).env("WARDGATE_AUDIT_CHECKPOINT_EVERY", "lots").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("WARDGATE_AUDIT_CHECKPOINT_EVERY"), "{}", stderr(&o));
}

/// What the database holds, independent of how SQLite lays it out in the file and its WAL
/// (opening and closing may fold the WAL into the main file without changing any content).
fn contents(data: &Path) -> Vec<String> {
    let db = data.join("wardgate.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let mut out: Vec<String> =
            sqlx::query_scalar("SELECT body FROM audit_log ORDER BY seq").fetch_all(&mut c).await.unwrap();
        for t in ["users", "factors", "signing_keys", "audit_checkpoints", "meta", "bootstrap"] {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
                .fetch_one(&mut c)
                .await
                .unwrap();
            out.push(format!("{t}={n}"));
        }
        c.close().await.unwrap();
        out
    })
}

fn digest(p: &Path) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

#[test]
fn a_malformed_config_file_stops_serve_with_one_line_and_touches_nothing() {
    let (_dir, data) = installation();
    let before = contents(&data);
    let cfg = data.parent().unwrap().join("bad.toml");
    std::fs::write(&cfg, "[server\nlisten = 1").unwrap();
    let o = Command::new(BIN).arg("--config").arg(&cfg).arg("--data-dir").arg(&data).arg("serve").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.toml:1") && err.contains("not valid TOML"), "{err}");
    assert_eq!(contents(&data), before);
}

#[test]
fn a_truncated_database_gives_one_clear_message_and_is_left_as_it_was() {
    let (_dir, data) = installation();
    let db = data.join("wardgate.db");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..100]).unwrap();
    let _ = std::fs::remove_file(data.join("wardgate.db-wal"));
    let _ = std::fs::remove_file(data.join("wardgate.db-shm"));
    let before = digest(&db);
    for args in [&["audit", "verify"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let o = wardgate(&data, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("damaged or not a Wardgate database"), "{err}");
    }
    assert_eq!(digest(&db), before, "the damaged file is evidence: never rewritten");
}

#[test]
fn a_missing_key_file_stops_everything_instead_of_making_a_new_key() {
    let (_dir, data) = installation();
    std::fs::remove_file(data.join("master.key")).unwrap();
    let before = contents(&data);
    for args in [&["serve", "--listen", "127.0.0.1:0"][..], &["audit", "verify"][..], &["keys", "rotate"][..]] {
        let o = wardgate(&data, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("master.key is missing") && err.contains("restore"), "{err}");
    }
    assert!(!data.join("master.key").exists());
    assert_eq!(contents(&data), before);
}

#[test]
fn key_rotation_rewraps_secrets_and_the_log_still_verifies() {
    let (_dir, data) = installation();
    let old = std::fs::read_to_string(data.join("master.key")).unwrap();
    let o = wardgate(&data, &["keys", "rotate", "--grace-secs", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The audit-checkpoint key and the OpenID Connect signing key.
    assert!(stdout(&o).contains("2 secret(s) re-wrapped"), "{}", stdout(&o));
    let new = std::fs::read_to_string(data.join("master.key")).unwrap();
    let key_lines = |s: &str| s.lines().filter(|l| l.starts_with("wgk1.")).map(String::from).collect::<Vec<_>>();
    assert_eq!(key_lines(&new).len(), 1, "old key retired");
    assert_ne!(key_lines(&new), key_lines(&old));
    // Checkpoint keys still open under the new key-encryption key, so signatures still count.
    let o = wardgate(&data, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wardgate(&data, &["audit", "export"]);
    assert!(stdout(&o).contains("keys.kek.rotated"));
    // A server starts on the rotated installation.
    serve(&data).stop();
}

#[test]
fn admin_commands_refuse_a_directory_that_was_never_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let o = wardgate(&dir.path().join("nothing"), &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no Wardgate installation"), "{}", stderr(&o));
    assert!(!dir.path().join("nothing").exists());
}

#[test]
fn another_installations_key_file_is_refused_rather_than_splitting_the_evidence() {
    let (_dir, data) = installation();
    let (_other_dir, other) = installation();
    std::fs::copy(other.join("master.key"), data.join("master.key")).unwrap();
    let before = contents(&data);
    let o = wardgate(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("is not this installation's key file"), "{err}");
    assert_eq!(contents(&data), before);
    // And verification does not trust checkpoints it cannot tie to its own key file.
    assert_eq!(wardgate(&data, &["audit", "verify"]).status.code(), Some(3));
}

#[test]
fn prune_keeps_young_records_even_when_exported_and_verified() {
    let (dir, data) = installation();
    let out = dir.path().join("export.jsonl");
    assert!(wardgate(&data, &["audit", "export", "--output", out.to_str().unwrap()]).status.success());
    assert!(wardgate(&data, &["audit", "verify"]).status.success());
    let before = contents(&data);
    let o = wardgate(&data, &["audit", "prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("nothing to prune"), "{}", stdout(&o));
    assert_eq!(contents(&data), before);
}

#[test]
fn tail_prints_the_latest_records_then_follows_new_ones() {
    let (_dir, data) = installation();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["audit", "tail", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let last = lines.next().unwrap().unwrap();
    assert!(last.contains("\"type\":\"system.node.stopped\""), "{last}");
    assert!(wardgate(&data, &["admin", "bootstrap"]).status.success());
    let followed = lines.next().unwrap().unwrap();
    assert!(followed.contains("\"type\":\"admin.bootstrap.issued\""), "{followed}");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn keys_rotate_while_a_server_runs_and_the_server_keeps_signing() {
    let (_dir, data) = installation();
    let s = serve(&data);
    let o = wardgate(&data, &["keys", "rotate", "--grace-secs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The running server still answers and, when stopped, signs a final checkpoint with a
    // key that opens under the new key file.
    assert!(http_get(&s.base, "/healthz").starts_with("HTTP/1.1 200"));
    s.stop();
    let o = wardgate(&data, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("not yet under a signed checkpoint"), "{}", stdout(&o));
}

/// A bare HTTP/1.1 GET, enough to see that a server answers.
fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let addr = base.strip_prefix("http://").unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn verify_refuses_forged_checkpoints() {
    let (_dir, data) = installation();
    let first: i64 = scalar::<i64>(&data, "SELECT min(seq) FROM audit_checkpoints");
    let last: i64 = scalar::<i64>(&data, "SELECT max(seq) FROM audit_checkpoints");
    assert!(first < last, "the installation has an older and a newest checkpoint");

    // The newest checkpoint's signature is what proves the chain: a forged one is named.
    let (_d1, forged) = copy(&data);
    sql(&forged, &[&format!("UPDATE audit_checkpoints SET signature = zeroblob(64) WHERE seq = {last}")]);
    verify_fails_at(&forged, last);

    // An older checkpoint that disagrees with the chain is named where the chain passes it.
    let (_d2, moved) = copy(&data);
    sql(&moved, &[&format!("UPDATE audit_checkpoints SET hash = zeroblob(32) WHERE seq = {first}")]);
    verify_fails_at(&moved, first);
}

#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(out.next().unwrap().unwrap().starts_with("Wardgate listening on"));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the shutdown is logged");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
}

#[test]
fn an_action_whose_audit_record_cannot_be_written_does_not_happen() {
    let (_dir, data) = installation();
    let tokens_before = scalar::<i64>(&data, "SELECT count(*) FROM bootstrap");
    let digest_before = scalar::<String>(&data, "SELECT hex(digest) FROM bootstrap");
    // The audit log refuses every write, as a full disk or a damaged table would.
    sql(
        &data,
        &[
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END",
        ],
    );
    let o = wardgate(&data, &["admin", "bootstrap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("audit log unavailable"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("bootstrap?token="), "no link is handed out: {}", stdout(&o));
    // The new link was not stored either: the old one is still the one on record.
    assert_eq!(scalar::<i64>(&data, "SELECT count(*) FROM bootstrap"), tokens_before);
    assert_eq!(scalar::<String>(&data, "SELECT hex(digest) FROM bootstrap"), digest_before);
    // And a server does not start without recording that it started.
    let o = wardgate(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("audit log unavailable"), "{}", stderr(&o));
}

/// One value read straight from the SQLite file, as an auditor's tool would.
fn scalar<T>(data: &Path, q: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
{
    let db = data.join("wardgate.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let v: T = sqlx::query_scalar(sqlx::AssertSqlSafe(q.to_owned())).fetch_one(&mut c).await.unwrap();
        c.close().await.unwrap();
        v
    })
}

/// The figure in BENCHMARKS.md for `wardgate audit verify` itself (not a pass/fail test):
/// `cargo test --release -p wardgate --test cli -- --ignored --nocapture million`.
#[test]
#[ignore]
fn verify_a_million_records_timed() {
    let (_dir, data) = installation();
    append_bulk(&data, 1_000_000);
    // A server start and stop signs a checkpoint over the whole log.
    serve(&data).stop();
    if let Ok(keep) = std::env::var("WARDGATE_KEEP_MILLION") {
        copy_dir(&data, Path::new(&keep));
    }
    for run in 1..=3 {
        let start = std::time::Instant::now();
        let o = wardgate(&data, &["audit", "verify"]);
        let took = start.elapsed();
        assert!(o.status.success(), "{}", stderr(&o));
        println!(
            "run {run}: wardgate audit verify: {:.2} s — {}",
            took.as_secs_f64(),
            stdout(&o).lines().next().unwrap()
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Appends `n` realistic login records straight through the store, in batches of 1000.
fn append_bulk(data: &Path, n: i64) {
    use wardgate_core::audit::{AuditEvent, Outcome, event::types};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let location = wardgate_core::settings::DatabaseLocation::Sqlite(data.join("wardgate.db"));
        let store = wardgate_store::open(&location, "bulk").await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        for chunk in 0..(n + 999) / 1000 {
            let batch: Vec<_> = (chunk * 1000..((chunk + 1) * 1000).min(n))
                .map(|i| {
                    AuditEvent::known(
                        now + time::Duration::microseconds(i),
                        types::AUTH_LOGIN_SUCCEEDED,
                        Outcome::Success,
                    )
                    .subject(format!("user{}", i % 5000))
                    .factor("pwd")
                    .factor("hwk")
                    .client_ip(Some("10.20.30.40".parse().unwrap()))
                    .user_agent(Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/156.0".into()))
                    .device_id(Some("ws-icu-07".into()))
                    .correlation_id(format!("{i:032x}"))
                })
                .collect();
            store.append_audit(&batch).await.unwrap();
        }
    });
}

#[test]
fn verify_reads_many_pages_and_still_names_the_first_gap() {
    let (_dir, data) = installation();
    append_bulk(&data, 45_000);
    serve(&data).stop();
    let o = wardgate(&data, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Gaps just inside, at and after page boundaries (pages are 20,000 records).
    for seq in [20_000, 20_001, 40_000, 44_000] {
        let (_d, broken) = copy(&data);
        sql(&broken, &[format!("DELETE FROM audit_log WHERE seq = {seq}")]);
        verify_fails_at(&broken, seq);
    }
    // Two gaps: the first is named.
    let (_d, broken) = copy(&data);
    sql(
        &broken,
        &["DELETE FROM audit_log WHERE seq BETWEEN 19990 AND 20030", "DELETE FROM audit_log WHERE seq = 39000"],
    );
    verify_fails_at(&broken, 19_990);
}

#[test]
fn signing_keys_rotate_while_the_server_runs_and_the_old_one_stays_published() {
    use base64::Engine as _;
    let (_dir, data) = installation();
    let o = wardgate(
        &data,
        &[
            "client",
            "add",
            "Lab system",
            "--redirect-uri",
            "https://lab.example.org/cb",
            "--scope",
            "lab:read",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let client: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let (id, secret) =
        (client["client_id"].as_str().unwrap().to_owned(), client["client_secret"].as_str().unwrap().to_owned());
    let s = serve(&data);
    // reqwest may be built with TLS but no crypto provider when the server's tests are built too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let kids = || {
        rt.block_on(async {
            let v: serde_json::Value =
                http.get(format!("{}/oidc/jwks", s.base)).send().await.unwrap().json().await.unwrap();
            v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        })
    };
    let signed_by = || {
        rt.block_on(async {
            let v: serde_json::Value = http
                .post(format!("{}/oidc/token", s.base))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials"), ("scope", "lab:read")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let header = v["access_token"].as_str().unwrap().split('.').next().unwrap().to_owned();
            let header: serde_json::Value =
                serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap())
                    .unwrap();
            header["kid"].as_str().unwrap().to_owned()
        })
    };
    let first = kids();
    assert_eq!(first.len(), 1);
    assert_eq!(signed_by(), first[0]);
    let o = wardgate(&data, &["keys", "rotate-signing"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut now = kids();
    for _ in 0..40 {
        if now.len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        now = kids();
    }
    assert_eq!(now.len(), 2, "the new key is published and the old one still is");
    assert!(now.contains(&first[0]));
    let new_kid = now.iter().find(|k| **k != first[0]).unwrap().clone();
    assert_eq!(signed_by(), new_kid, "the running server signs with the new key");
    s.stop();
    let o = wardgate(&data, &["audit", "export", "--format", "jsonl"]);
    let export = stdout(&o);
    assert!(export.contains("\"keys.signing.retired\"") && export.contains("\"oidc.client.created\""));
}
