//! `wardgate user …`: invite people and manage their accounts from the server's shell.

use std::path::PathBuf;

use clap::Subcommand;
use time::OffsetDateTime;
use wardgate_core::settings::Settings;
use wardgate_server::accounts::{
    AccountError, Accounts, Assignment, EnrollmentLink, ErrorKind, FactorView, NewUser, SessionView, TokenView,
    UserView,
};
use wardgate_server::{Installation, OpenMode};

use crate::{Failure, GlobalArgs, settings_load};

/// Shown under `wardgate user --help` and `wardgate token --help`.
pub const ACTOR_HELP: &str = "Every change is recorded in the audit log with the actor `operator:<name>`, where <name> \
is the operating-system user from $USER (`operator:unknown` when $USER is unset).";

#[derive(Subcommand)]
pub enum UserCommand {
    /// Invite a person: creates an `invited` account and prints a one-time enrollment link.
    Add {
        /// Login name: 1-64 characters of a-z, 0-9, '.', '_', '-', '@' (case-folded).
        name: String,
        /// Full name as people see it (default: the username).
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Identifier in the HR system.
        #[arg(long)]
        employee_id: Option<String>,
        /// A role such as `nurse` or `admin` (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// An administrative account, separate from the person's clinical one: only these
        /// may hold roles with admin.* permissions, and they always need a security key.
        #[arg(long)]
        privileged: bool,
        /// The vendor (business associate) this named person works for; needs --expires no
        /// later than the vendor's agreement.
        #[arg(long)]
        vendor: Option<String>,
        /// When the account stops working: YYYY-MM-DD (midnight UTC) or RFC 3339.
        #[arg(long)]
        expires: Option<String>,
        /// The person responsible for this account (for access reviews by manager).
        #[arg(long)]
        manager: Option<String>,
        /// Base URL people reach this server at (default: public_url, else from server.listen).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// List every account with its status.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Only active accounts within 14 days of being disabled as dormant (no sign-in for
        /// governance.dormant_after_days), or past it.
        #[arg(long)]
        dormant: bool,
    },
    /// Show an account with its factors, live sessions and API tokens.
    Show {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an account; its sessions and API tokens end at once.
    Disable { name: String },
    /// Re-enable a disabled account.
    Enable {
        name: String,
        /// Why, e.g. the help-desk ticket and how the person was identified: required, and
        /// recorded as the override's reason (see `wardgate report overrides`).
        #[arg(long)]
        reason: String,
    },
    /// Clear failed sign-in attempts and any lockout.
    Unlock {
        name: String,
        /// Why, e.g. the help-desk ticket and how the person was identified: required, and
        /// recorded as the override's reason (see `wardgate report overrides`).
        #[arg(long)]
        reason: String,
    },
    /// Terminate an account for good: sessions, API tokens and factors are removed. The
    /// username stays reserved forever and is never given to another person.
    Delete {
        name: String,
        /// Confirm: termination cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Print a new enrollment link for an invited account (the previous link stops working).
    EnrollLink {
        name: String,
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Reset a forgotten passphrase: the account's sessions end, its passphrase and recovery
    /// codes are removed, and it re-enrolls (a new passphrase, a second factor proven again,
    /// fresh recovery codes) through a new one-time link.
    ResetPassphrase {
        name: String,
        #[arg(long)]
        base_url: Option<String>,
        /// Why, e.g. the help-desk ticket and how the person was identified: required, and
        /// recorded as the override's reason (see `wardgate report overrides`).
        #[arg(long)]
        reason: String,
    },
    /// Load many accounts from a CSV file (the first load from HR): every line is checked
    /// first, refused lines are named with the reason, and the good ones are imported as
    /// `invited` only once you agree to leave the refused ones out.
    Import(crate::import::ImportArgs),
    /// Import hardware TOTP tokens from a PSKC file (RFC 6030) and assign them to people.
    ImportToken {
        /// The PSKC file from the token vendor.
        file: PathBuf,
        /// Give the token with this serial number to this user (repeatable).
        #[arg(long = "assign", value_name = "SERIAL=USERNAME")]
        assign: Vec<String>,
        /// The AES key (hex) the vendor encrypted the secrets with. Prefer the environment
        /// variable: a command line is visible to other users of the machine.
        #[arg(long, value_name = "HEX", env = "WARDGATE_PSKC_KEY", hide_env_values = true)]
        pre_shared_key: Option<String>,
    },
    /// Record that the person's identity was verified (identity proofing, see
    /// docs/lifecycle.md): roles with `require_proofing` enroll no second factor without it.
    Proof {
        name: String,
        /// in-person or remote-supervised.
        #[arg(long)]
        method: String,
        /// passport, drivers-license, state-id, national-id, military-id,
        /// permanent-resident-card or employee-badge.
        #[arg(long)]
        document: String,
        /// The ticket or case number holding the evidence (never the document or its image).
        #[arg(long)]
        evidence_ref: String,
        /// The verifier's username (who checked the document).
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// The audit actor for everything done from this shell.
/// Under `sudo -u wardgate`, the person is `SUDO_USER`, not the service account.
pub fn actor() -> String {
    format!("operator:{}", crate::admin::whoami())
}

/// Exit code 2 for input the operator can correct (as clap does for bad arguments), 1 otherwise.
pub fn failure(e: AccountError) -> Failure {
    Failure { code: if e.kind() == ErrorKind::Invalid { 2 } else { 1 }, message: e.to_string() }
}

pub async fn open(global: &GlobalArgs) -> Result<Installation, Failure> {
    let settings = settings_load::load(global, None)?;
    Ok(Installation::open(settings, OpenMode::Existing).await?)
}

pub async fn run(global: &GlobalArgs, cmd: UserCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let actor = actor();
    let now = OffsetDateTime::now_utc();
    let accounts = Accounts::new(&*inst.store, &actor, now, &inst.settings.auth);
    match cmd {
        UserCommand::Add {
            name,
            display_name,
            email,
            employee_id,
            roles,
            privileged,
            vendor,
            expires,
            manager,
            base_url,
        } => {
            let base = base_url_for(&inst.settings, base_url);
            let account_expires = expires.map(|e| crate::governance::instant("--expires", &e)).transpose()?;
            let new = NewUser {
                username: name,
                display_name,
                email,
                employee_id,
                roles,
                privileged,
                vendor,
                account_expires,
                manager,
            };
            let (user, link) = accounts.invite(new, &base).await.map_err(failure)?;
            println!("Invited {} ({}).", user.username, user.display_name);
            print_link(&link);
        }
        UserCommand::EnrollLink { name, base_url } => {
            let base = base_url_for(&inst.settings, base_url);
            let (user, link) = accounts.reissue_enrollment(&name, &base).await.map_err(failure)?;
            println!("New enrollment link for {} (the previous one no longer works).", user.username);
            print_link(&link);
        }
        UserCommand::ResetPassphrase { name, base_url, reason } => {
            let reason = override_reason(reason)?;
            let accounts = accounts.with_reason(reason);
            let base = base_url_for(&inst.settings, base_url);
            let (user, link) = accounts.reset_passphrase(&name, &base).await.map_err(failure)?;
            println!(
                "Passphrase of {} reset: signed out everywhere; give them this link to choose a new one and prove a second factor.",
                user.username
            );
            print_link(&link);
        }
        UserCommand::List { json, dormant } => {
            let after = inst.settings.governance.dormant_after();
            let soon = now + time::Duration::days(14);
            let users: Vec<UserView> = accounts
                .list()
                .await
                .map_err(failure)?
                .iter()
                .filter(|u| !dormant || u.dormant_at(soon, after))
                .map(|u| UserView::new(u, now))
                .collect();
            if json {
                print_json(&users)?;
            } else {
                let rows = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.username.clone(),
                            u.status.to_owned(),
                            u.display_name.clone(),
                            u.email.clone(),
                            u.roles.join(","),
                            short_ts(u.created_at),
                            u.last_login_at.map(short_ts).unwrap_or_else(|| "never".into()),
                        ]
                    })
                    .collect();
                print_table(&["USERNAME", "STATUS", "NAME", "EMAIL", "ROLES", "CREATED", "LAST SIGN-IN"], rows);
            }
        }
        UserCommand::Show { name, json } => {
            let details = accounts.show(&name).await.map_err(failure)?;
            let proofing: Vec<serde_json::Value> = inst
                .store
                .proofings_of(&details.user.id)
                .await?
                .iter()
                .map(wardgate_server::lifecycle::proofing::json)
                .collect();
            let view = details.view(now);
            if json {
                let mut v = serde_json::to_value(&view)?;
                v["proofing"] = proofing.into();
                print_json(&v)?;
            } else {
                show(&view.user, &view.factors, &view.sessions, &view.tokens);
                crate::lifecycle::print_proofing(&proofing);
            }
        }
        UserCommand::Proof { name, method, document, evidence_ref, as_, reason } => {
            let claim = wardgate_core::lifecycle::ProofingClaim { method, document, evidence_ref, reason };
            crate::lifecycle::proof(&inst, &actor, &name, &as_, &claim, now).await?;
        }
        UserCommand::Disable { name } => {
            let user = accounts.disable(&name).await.map_err(failure)?;
            println!("{} is disabled; its sessions and API tokens have ended.", user.username);
        }
        UserCommand::Enable { name, reason } => {
            let reason = override_reason(reason)?;
            let accounts = accounts.with_reason(reason);
            let user = accounts.enable(&name).await.map_err(failure)?;
            println!("{} is {} again.", user.username, user.status.as_str());
        }
        UserCommand::Unlock { name, reason } => {
            let reason = override_reason(reason)?;
            match accounts.with_reason(reason).unlock(&name).await.map_err(failure)? {
                (user, true) => println!("{} is unlocked; failed attempts cleared.", user.username),
                (user, false) => println!("{} had no failed attempts or lockout; nothing to do.", user.username),
            }
        }
        UserCommand::Delete { name, yes } => {
            if !yes {
                return Err(Failure {
                    code: 2,
                    message: format!("deleting {name} cannot be undone; run again with --yes to confirm"),
                });
            }
            let user = accounts.terminate(&name).await.map_err(failure)?;
            println!(
                "{} is terminated: sessions, API tokens and factors are removed. The username {} stays reserved \
                 forever and will never be given to another person.",
                user.username, user.username
            );
        }
        UserCommand::Import(args) => crate::import::run(&inst, &accounts, &actor, args).await?,
        UserCommand::ImportToken { file, assign, pre_shared_key } => {
            let xml = std::fs::read_to_string(&file)
                .map_err(|e| Failure::new(format!("cannot read {}: {e}", file.display())))?;
            let psk = pre_shared_key
                .map(|h| hex::decode(h.trim()))
                .transpose()
                .map_err(|_| Failure { code: 2, message: "--pre-shared-key must be hexadecimal".into() })?;
            let assignments =
                assign.iter().map(|a| a.parse::<Assignment>()).collect::<Result<Vec<_>, _>>().map_err(failure)?;
            let ring = inst.keyring.get();
            let imported = accounts.import_tokens(&ring, &xml, psk.as_deref(), &assignments).await.map_err(failure)?;
            for t in &imported {
                println!(
                    "Imported hardware token {} for {} ({} digits, {} s, {}).",
                    t.serial,
                    t.username,
                    t.params.digits,
                    t.params.step_secs,
                    t.params.algorithm.as_str()
                );
            }
        }
    }
    Ok(())
}

fn print_link(link: &EnrollmentLink) {
    println!("Enrollment link (works once, expires {}):", short_ts(link.expires_at));
    println!("  {}", link.url);
}

fn show(user: &UserView, factors: &[FactorView], sessions: &[SessionView], tokens: &[TokenView]) {
    let or_dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
    println!("Username:     {}", user.username);
    println!("Name:         {}", user.display_name);
    println!("Email:        {}", or_dash(&user.email));
    println!("Employee id:  {}", or_dash(user.employee_id.as_deref().unwrap_or_default()));
    let roles: Vec<String> = user
        .roles
        .iter()
        .map(|r| match user.roles_until.get(r) {
            Some(t) => format!("{r} (until {t})"),
            None => r.clone(),
        })
        .collect();
    println!("Roles:        {}", or_dash(&roles.join(", ")));
    println!("Privileged:   {}", if user.privileged { "yes (administrative account)" } else { "no" });
    println!("Status:       {}", user.status);
    if user.failed_attempts > 0 {
        println!("Failed attempts: {}", user.failed_attempts);
    }
    if let Some(until) = user.locked_until {
        println!("Locked until: {}", short_ts(until));
    }
    println!("Id:           {}", user.id);
    println!("Created:      {}", short_ts(user.created_at));
    println!("\nFactors:");
    print_table(
        &["ID", "KIND", "LABEL", "CREATED", "LAST USED", "EXPIRES"],
        factors
            .iter()
            .map(|f| {
                vec![
                    f.id.clone(),
                    f.kind.to_owned(),
                    f.label.clone(),
                    short_ts(f.created_at),
                    f.last_used_at.map(short_ts).unwrap_or_else(|| "never".into()),
                    f.expires_at.map(short_ts).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
    println!("\nSessions:");
    print_table(
        &["ID", "LEVEL", "METHODS", "FROM", "STARTED", "LAST SEEN"],
        sessions
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.aal.to_owned(),
                    s.amr.join(","),
                    s.client_ip.clone().unwrap_or_else(|| "-".into()),
                    short_ts(s.created_at),
                    short_ts(s.last_seen_at),
                ]
            })
            .collect(),
    );
    println!("\nAPI tokens:");
    print_tokens(tokens);
}

pub fn print_tokens(tokens: &[TokenView]) {
    print_table(
        &["ID", "LABEL", "SCOPES", "STATE", "CREATED", "EXPIRES"],
        tokens
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.label.clone(),
                    t.scopes.join(" "),
                    t.state.to_owned(),
                    short_ts(t.created_at),
                    short_ts(t.expires_at),
                ]
            })
            .collect(),
    );
}

pub fn base_url_for(settings: &Settings, given: Option<String>) -> String {
    given
        .or_else(|| settings.public_url.clone())
        .unwrap_or_else(|| {
            let tls = settings.server.dev_tls || settings.server.tls_cert.is_some();
            format!("{}://{}", if tls { "https" } else { "http" }, settings.server.listen)
        })
        .trim_end_matches('/')
        .to_owned()
}

/// Minutes are what an operator reads; the audit log keeps the exact time.
pub fn short_ts(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC).format(f).unwrap_or_default()
}

pub fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Left-aligned columns, two spaces apart; `(none)` for an empty table.
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        println!("  (none)");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// An administrative override (unlock, enable, passphrase reset) is always recorded with
/// its reason; a blank one is refused rather than recorded as nothing.
fn override_reason(reason: String) -> Result<Option<String>, Failure> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(Failure {
            code: 2,
            message: "--reason must say why (a ticket number, how the person was identified)".into(),
        });
    }
    Ok(Some(r.to_owned()))
}
