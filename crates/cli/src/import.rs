//! `wardgate user import FILE.csv`: the first load of the directory from an HR extract.
//!
//! Every line is checked before anything is written — the same checks `user add` makes,
//! plus duplicates within the file — so that a dry run says exactly what a real run would
//! do. Lines that fail are named with their line number and the reason; the good lines are
//! imported only once the operator agrees to leave the bad ones out (`--yes`, or an answer
//! at the terminal). Nothing already stored is changed: an existing username is a refused
//! line, never an update.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_server::accounts::{Accounts, NewUser};

use crate::Failure;

/// Columns a file may have; only `username` is required. Headers are matched without
/// regard to case, spaces or dashes, so `Employee ID` and `employee_id` are one column.
const COLUMNS: [&str; 9] =
    ["username", "display_name", "email", "employee_id", "roles", "privileged", "vendor", "expires", "manager"];

/// A file bigger than this is not an HR extract for one hospital; refusing it early keeps
/// a wrong path (a database dump, an image) from being read into memory.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Args)]
pub struct ImportArgs {
    /// CSV file with a header line. Columns: username (required), display_name, email,
    /// employee_id, roles (separated by ';' or spaces), privileged (yes/no), vendor,
    /// expires (YYYY-MM-DD or RFC 3339), manager.
    file: PathBuf,
    /// Check every line and report what would be imported and what refused; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import the good lines even though some are refused, without asking.
    #[arg(long)]
    yes: bool,
    /// Also issue an enrollment link for each imported account and write them to this file
    /// (CSV: username, link, expires; created with owner-only permissions). Without it the
    /// accounts wait, `invited`, until the help desk runs `wardgate user enroll-link`.
    #[arg(long, value_name = "FILE")]
    links: Option<PathBuf>,
    /// Base URL people reach this server at, for --links (default: public_url).
    #[arg(long)]
    base_url: Option<String>,
}

/// One data line of the file, as read.
struct Line {
    /// Physical line number in the file (the header is line 1).
    number: u64,
    new: Result<NewUser, String>,
}

pub async fn run(
    inst: &wardgate_server::Installation,
    accounts: &Accounts<'_>,
    actor: &str,
    args: ImportArgs,
) -> Result<(), Failure> {
    let bytes = read(&args.file)?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let lines = parse(&bytes)?;

    // Checking pass: the same validation a real run makes, without writing.
    let bar = progress(lines.len() as u64, "checking");
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    let mut good: Vec<(u64, NewUser)> = Vec::new();
    let mut bad: Vec<(u64, String)> = Vec::new();
    for line in lines {
        bar.inc(1);
        let new = match line.new {
            Ok(n) => n,
            Err(why) => {
                bad.push((line.number, why));
                continue;
            }
        };
        match accounts.prepare(&new).await {
            Ok(user) => match first_seen.get(user.username.as_str()) {
                Some(first) => {
                    bad.push((line.number, format!("username {} appears again (first on line {first})", user.username)))
                }
                None => {
                    first_seen.insert(user.username.to_string(), line.number);
                    good.push((line.number, new));
                }
            },
            Err(e) if matches!(e.kind(), wardgate_server::accounts::ErrorKind::Unavailable) => {
                return Err(crate::user::failure(e));
            }
            Err(e) => bad.push((line.number, e.to_string())),
        }
    }
    bar.finish_and_clear();

    for (number, why) in &bad {
        println!("line {number}: refused: {why}");
    }
    println!("{}: {} line(s) to import, {} refused.", args.file.display(), good.len(), bad.len());
    if args.dry_run {
        println!("Dry run: nothing was written.");
        // A script can tell a clean file from one that needs attention.
        return if bad.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(format!("{} line(s) would be refused", bad.len())))
        };
    }
    if good.is_empty() {
        return Err(Failure::new("nothing to import"));
    }
    if !bad.is_empty() && !args.yes && !confirm(good.len(), bad.len())? {
        return Err(Failure {
            code: 2,
            message: format!(
                "nothing imported: {} line(s) are refused (listed above); fix them, or run again with --yes to import the {} good line(s) only",
                bad.len(),
                good.len()
            ),
        });
    }

    let mut links = match &args.links {
        Some(path) => Some(LinksFile::create(path)?),
        None => None,
    };
    let base = args.base_url.clone().or_else(|| inst.settings.public_url.clone());
    if links.is_some() && base.is_none() {
        return Err(Failure { code: 2, message: "--links needs --base-url or public_url in the configuration".into() });
    }

    let bar = progress(good.len() as u64, "importing");
    let mut imported = 0u64;
    let mut failed: Vec<(u64, String)> = Vec::new();
    for (number, new) in good {
        bar.inc(1);
        // Checked above, but another administrator may have taken a name since: such a
        // line is reported like any other refusal and the rest go on.
        let user = match accounts.create(new).await {
            Ok(u) => u,
            Err(e) => {
                failed.push((number, e.to_string()));
                continue;
            }
        };
        imported += 1;
        if let (Some(file), Some(base)) = (links.as_mut(), base.as_deref()) {
            let (_, link) =
                accounts.reissue_enrollment(user.username.as_str(), base).await.map_err(crate::user::failure)?;
            file.write(user.username.as_str(), &link.url, link.expires_at)?;
        }
    }
    bar.finish_and_clear();
    if let Some(file) = links {
        file.finish()?;
    }

    let summary = AuditEvent::known(OffsetDateTime::now_utc(), types::ADMIN_USERS_IMPORTED, Outcome::Success)
        .actor(actor)
        .detail("file_sha256", digest)
        .detail("imported", imported)
        .detail("refused", (bad.len() + failed.len()) as u64)
        .detail("refused_lines", bad.iter().chain(&failed).map(|(n, _)| *n).collect::<Vec<_>>())
        .detail("links_issued", args.links.is_some());
    inst.store.append_audit(&[summary]).await?;

    for (number, why) in &failed {
        println!("line {number}: refused: {why}");
    }
    println!("Imported {imported} account(s) as invited; {} line(s) refused.", bad.len() + failed.len());
    if let Some(path) = &args.links {
        println!(
            "Enrollment links are in {} (owner-only); hand each to its person and delete the file.",
            path.display()
        );
    } else if imported > 0 {
        println!(
            "Issue each person's enrollment link with `wardgate user enroll-link NAME` when they are ready to enroll."
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!("{} line(s) could not be imported", failed.len())))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    let cannot = |e: std::io::Error| Failure::new(format!("cannot read {}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(cannot)?.len();
    if len > MAX_FILE_BYTES {
        return Err(Failure {
            code: 2,
            message: format!("{} is {len} bytes; an import file may be at most {MAX_FILE_BYTES}", path.display()),
        });
    }
    std::fs::read(path).map_err(cannot)
}

fn column_key(header: &str) -> String {
    header.trim().trim_start_matches('\u{feff}').to_lowercase().replace([' ', '-'], "_")
}

/// Reads the header and every data line. A header that cannot be used refuses the whole
/// file; a line that cannot be read is a refused line.
fn parse(bytes: &[u8]) -> Result<Vec<Line>, Failure> {
    let invalid = |m: String| Failure { code: 2, message: m };
    let mut reader = csv::ReaderBuilder::new().flexible(true).has_headers(true).from_reader(bytes);
    let header = reader.byte_headers().map_err(|e| invalid(format!("cannot read the header line: {e}")))?.clone();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, raw) in header.iter().enumerate() {
        let name = column_key(&String::from_utf8_lossy(raw));
        let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
            return Err(invalid(format!(
                "unknown column {name:?} in the header; known columns: {}",
                COLUMNS.join(", ")
            )));
        };
        if index.insert(known, i).is_some() {
            return Err(invalid(format!("column {known:?} appears twice in the header")));
        }
    }
    if !index.contains_key("username") {
        return Err(invalid(format!("the header has no username column; known columns: {}", COLUMNS.join(", "))));
    }

    let mut lines = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let number = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let number = record.position().map_or(number, |p| line_at(bytes, p.byte()));
                if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                    continue;
                }
                lines.push(Line { number, new: line(&record, header.len(), &index) });
            }
            // The csv reader resynchronises at the next line, so one broken line does not
            // hide the rest.
            Err(e) => {
                let number = e.position().map_or(number, |p| line_at(bytes, p.byte()));
                lines.push(Line { number, new: Err(format!("cannot be read as CSV: {e}")) })
            }
        }
    }
    Ok(lines)
}

/// The line a record starting at byte `offset` is on. The reader's own line count puts a
/// record that follows a blank line on the blank line; people look for the text.
fn line_at(bytes: &[u8], offset: u64) -> u64 {
    let offset = (offset as usize).min(bytes.len());
    let start = offset + bytes[offset..].iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    1 + bytes[..start].iter().filter(|b| **b == b'\n').count() as u64
}

fn line(record: &csv::ByteRecord, width: usize, index: &HashMap<&'static str, usize>) -> Result<NewUser, String> {
    if record.len() != width {
        return Err(format!("has {} field(s) where the header has {width}", record.len()));
    }
    let field = |name: &str| -> Result<Option<String>, String> {
        let Some(&i) = index.get(name) else { return Ok(None) };
        let raw = record.get(i).unwrap_or_default();
        let s = std::str::from_utf8(raw).map_err(|_| format!("{name} is not valid UTF-8"))?.trim();
        Ok((!s.is_empty()).then(|| s.to_owned()))
    };
    let username = field("username")?.ok_or("username is empty")?;
    let roles = field("roles")?
        .map(|r| r.split([';', ' ', '|']).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let privileged = match field("privileged")?.as_deref().map(str::to_lowercase).as_deref() {
        None | Some("no" | "false" | "0" | "n") => false,
        Some("yes" | "true" | "1" | "y") => true,
        Some(other) => return Err(format!("privileged {other:?} is not yes or no")),
    };
    let account_expires =
        field("expires")?.map(|e| crate::governance::instant("expires", &e).map_err(|f| f.message)).transpose()?;
    Ok(NewUser {
        username,
        display_name: field("display_name")?,
        email: field("email")?,
        employee_id: field("employee_id")?,
        roles,
        privileged,
        vendor: field("vendor")?,
        account_expires,
        manager: field("manager")?,
    })
}

/// Asks at the terminal; with no terminal to ask at, the answer is no.
fn confirm(good: usize, bad: usize) -> Result<bool, Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(false);
    }
    print!("Import the {good} good line(s) and leave out the {bad} refused? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

fn progress(len: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} lines ({{per_sec}})"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The enrollment links of a bulk import: each is a credential until used, so the file is
/// created owner-only and never overwrites an existing one.
struct LinksFile {
    writer: csv::Writer<std::fs::File>,
}

impl LinksFile {
    fn create(path: &Path) -> Result<Self, Failure> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|e| Failure {
            code: 2,
            message: format!("cannot create {} (it must not exist yet): {e}", path.display()),
        })?;
        let mut writer = csv::Writer::from_writer(file);
        writer.write_record(["username", "link", "expires"]).map_err(Failure::new)?;
        Ok(Self { writer })
    }

    fn write(&mut self, username: &str, url: &str, expires: OffsetDateTime) -> Result<(), Failure> {
        let expires = wardgate_core::audit::record::format_ts(expires);
        self.writer.write_record([username, url, expires.as_str()]).map_err(Failure::new)
    }

    fn finish(mut self) -> Result<(), Failure> {
        self.writer.flush().map_err(Failure::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers_and_errors(csv: &str) -> Vec<(u64, Result<String, String>)> {
        parse(csv.as_bytes()).unwrap().into_iter().map(|l| (l.number, l.new.map(|n| n.username))).collect()
    }

    #[test]
    fn lines_are_numbered_as_in_the_file_and_broken_ones_named() {
        let csv = "Username,Display Name,Roles,Privileged\n\
                   nina,Nina Patel,nurse;charge-nurse,no\n\
                   \n\
                   omar,\"Omar, MD\",physician\n\
                   ,Nobody,nurse,no\n\
                   paul,\"Paul\nSmith\",nurse,maybe\n\
                   rita,Rita,nurse,yes\n";
        let got = numbers_and_errors(csv);
        assert_eq!(got[0], (2, Ok("nina".into())));
        assert_eq!(got[1].0, 4);
        assert!(got[1].1.as_ref().unwrap_err().contains("3 field(s)"), "{got:?}");
        assert_eq!(got[2], (5, Err("username is empty".into())));
        // A quoted newline keeps the record on its first line and the next one numbered right.
        assert_eq!(got[3].0, 6);
        assert!(got[3].1.as_ref().unwrap_err().contains("privileged \"maybe\""));
        assert_eq!(got[4], (8, Ok("rita".into())));
    }

    #[test]
    fn fields_are_trimmed_and_roles_split() {
        let lines = parse(b"username,roles,privileged,expires\n nina , nurse; pharmacist ,YES,2027-06-30\n").unwrap();
        let n = lines[0].new.as_ref().unwrap();
        assert_eq!(n.username, "nina");
        assert_eq!(n.roles, ["nurse", "pharmacist"]);
        assert!(n.privileged);
        assert_eq!(n.account_expires.unwrap().date().to_string(), "2027-06-30");
        let lines = parse(b"username,expires\nnina,next tuesday\n").unwrap();
        assert!(lines[0].new.as_ref().unwrap_err().contains("a date such as"));
    }

    #[test]
    fn an_unusable_header_refuses_the_file() {
        for (csv, says) in [
            ("name,email\nnina,n@example.org\n", "unknown column \"name\""),
            ("email\nn@example.org\n", "no username column"),
            ("username,Username\nnina,nina\n", "appears twice"),
        ] {
            let e = parse(csv.as_bytes()).err().unwrap();
            assert!(e.message.contains(says), "{csv:?}: {}", e.message);
            assert_eq!(e.code, 2);
        }
        // A byte-order mark from a spreadsheet export is not part of the first column's name.
        assert!(parse("\u{feff}username\nnina\n".as_bytes()).is_ok());
    }
}
