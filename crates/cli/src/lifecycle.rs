//! `wardgate user proof`, `wardgate factor …`, `wardgate recovery …`: the identity life
//! cycle (L1-L3) from the server's shell. See docs/lifecycle.md.

use clap::Subcommand;
use serde_json::Value;
use time::OffsetDateTime;
use wardgate_core::lifecycle::{ProofingClaim, parse_expiry};
use wardgate_core::policy::document::parse_duration;
use wardgate_server::Installation;
use wardgate_server::lifecycle::{GovernanceError, inventory, proofing, recovery};
use wardgate_server::roles::catalog;

use crate::user::{actor, open, print_json, print_table};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum FactorCommand {
    /// Every factor of every person (or of one): kind, label, serial, authenticator model,
    /// who enrolled it, last use and expiry. Secrets are never shown.
    List {
        #[arg(long)]
        user: Option<String>,
        /// Only factors expiring within this long, e.g. 30d (expired ones included).
        #[arg(long, value_name = "DURATION")]
        expiring: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Give a factor an expiry, after which it is refused at sign-in.
    Expire {
        user: String,
        factor_id: String,
        /// A date (YYYY-MM-DD, midnight UTC) or an RFC 3339 instant.
        #[arg(long, conflicts_with_all = ["in_", "clear"], required_unless_present_any = ["in_", "clear"])]
        at: Option<String>,
        /// A duration from now, e.g. 90d.
        #[arg(long = "in", value_name = "DURATION", conflicts_with = "clear")]
        in_: Option<String>,
        /// Remove the factor's expiry.
        #[arg(long)]
        clear: bool,
        /// Why, e.g. the ticket: required and recorded.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum RecoveryCommand {
    /// A help-desk agent (permission recovery.open) opens a request for a person who lost
    /// their second factor. Knowledge-based questions are never used: verify the person as
    /// docs/lifecycle.md says before opening.
    Open {
        user: String,
        #[arg(long)]
        reason: String,
        /// The agent's username.
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
    },
    /// Approve a request (permission recovery.approve; not the agent who opened it, not the
    /// person). Prints the one-time recovery link once: hand it over through a verified channel.
    Approve {
        id: String,
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
        /// Base URL people reach this server at (default: public_url, else from server.listen).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Requests, newest first.
    List {
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        json: bool,
    },
}

fn fail(e: GovernanceError) -> Failure {
    Failure { code: e.exit_code(), message: e.to_string() }
}

fn invalid(message: String) -> Failure {
    Failure { code: 2, message }
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub async fn proof(
    inst: &Installation,
    actor: &str,
    name: &str,
    verifier: &str,
    claim: &ProofingClaim,
    now: OffsetDateTime,
) -> Result<(), Failure> {
    let policy = catalog(&*inst.store).await?;
    let p = proofing::record(&*inst.store, &policy, actor, name, verifier, claim, now).await.map_err(fail)?;
    println!(
        "Identity of {} verified by {} ({}, {}, evidence {}); proofing {}.",
        p.username,
        p.verified_by,
        p.method.as_str(),
        p.document,
        p.evidence_ref,
        p.id
    );
    Ok(())
}

pub fn print_proofing(rows: &[Value]) {
    println!("\nIdentity proofing:");
    print_table(
        &["AT", "METHOD", "DOCUMENT", "EVIDENCE", "VERIFIED BY"],
        rows.iter()
            .map(|p| vec![s(p, "at"), s(p, "method"), s(p, "document"), s(p, "evidence_ref"), s(p, "verified_by")])
            .collect(),
    );
}

pub async fn factor_run(global: &GlobalArgs, cmd: FactorCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let now = OffsetDateTime::now_utc();
    let store = &*inst.store;
    match cmd {
        FactorCommand::List { user, expiring, json } => {
            let within = expiring
                .map(|e| parse_duration(&e).ok_or_else(|| invalid(format!("--expiring {e:?}: a duration such as 30d"))))
                .transpose()?;
            let rows = inventory::list(store, user.as_deref(), within, now).await.map_err(fail)?;
            if json {
                return print_json(&rows);
            }
            let table = rows
                .iter()
                .map(|f| {
                    let model = match (&f["model"], &f["serial"]) {
                        (Value::String(m), _) => m.clone(),
                        (_, Value::String(serial)) => format!("serial {serial}"),
                        _ => "-".into(),
                    };
                    let expires = match (&f["expires_at"], f["expired"] == true) {
                        (Value::String(t), true) => format!("{t} (expired)"),
                        _ => s(f, "expires_at"),
                    };
                    vec![
                        s(f, "username"),
                        s(f, "id"),
                        s(f, "kind"),
                        s(f, "label"),
                        model,
                        s(f, "enrolled_by"),
                        s(f, "last_used_at"),
                        expires,
                    ]
                })
                .collect();
            print_table(&["USER", "ID", "KIND", "LABEL", "MODEL", "ENROLLED BY", "LAST USED", "EXPIRES"], table);
        }
        FactorCommand::Expire { user, factor_id, at, in_, clear, reason } => {
            let until =
                match (at, in_, clear) {
                    (_, _, true) => None,
                    (Some(a), _, _) => Some(parse_expiry(&a, now).ok_or_else(|| {
                        invalid(format!("--at {a:?}: a future date (YYYY-MM-DD) or RFC 3339 instant"))
                    })?),
                    (_, Some(d), _) => Some(
                        parse_duration(&d)
                            .map(|d| now + d)
                            .ok_or_else(|| invalid(format!("--in {d:?}: a duration such as 90d")))?,
                    ),
                    (None, None, false) => return Err(invalid("give --at, --in or --clear".into())),
                };
            let f = inventory::expire(store, &actor(), &user, &factor_id, until, &reason, now).await.map_err(fail)?;
            match f.expires_at {
                Some(t) => println!("{} ({}) of {user} expires at {}.", f.label, f.id, crate::user::short_ts(t)),
                None => println!("{} ({}) of {user} no longer expires.", f.label, f.id),
            }
        }
    }
    Ok(())
}

pub async fn recovery_run(global: &GlobalArgs, cmd: RecoveryCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let now = OffsetDateTime::now_utc();
    let store = &*inst.store;
    match cmd {
        RecoveryCommand::Open { user, reason, as_ } => {
            let policy = catalog(store).await?;
            let r = recovery::open(store, &policy, &actor(), &user, &as_, &reason, now).await.map_err(fail)?;
            println!("Recovery request {} for {} opened by {as_}. Someone else approves it with:", r.id, r.username);
            println!("  wardgate recovery approve {} --as USERNAME", r.id);
        }
        RecoveryCommand::Approve { id, as_, base_url } => {
            let policy = catalog(store).await?;
            let ttl = time::Duration::minutes(inst.settings.governance.recovery_link_minutes as i64);
            let base = crate::user::base_url_for(&inst.settings, base_url);
            let a = recovery::approve(store, &policy, &actor(), &id, &as_, ttl, &base, now).await.map_err(fail)?;
            println!(
                "Recovery of {} approved by {as_}. One-time link, valid until {} (shown once; give it to the person \
                 through a verified channel, such as a call back to the number on file):",
                a.request.username,
                crate::user::short_ts(a.expires_at)
            );
            println!("{}", a.link);
        }
        RecoveryCommand::Deny { id, as_, comment } => {
            let policy = catalog(store).await?;
            let r = recovery::deny(store, &policy, &actor(), &id, &as_, &comment, now).await.map_err(fail)?;
            println!("Recovery request {} for {} denied by {as_}.", r.id, r.username);
        }
        RecoveryCommand::List { pending, json } => {
            let rows: Vec<Value> = store.list_recovery(pending).await?.iter().map(|r| recovery::json(r, now)).collect();
            if json {
                return print_json(&rows);
            }
            let table = rows
                .iter()
                .map(|r| {
                    vec![
                        s(r, "id"),
                        s(r, "username"),
                        s(r, "status"),
                        s(r, "opened_by"),
                        s(r, "decided_by"),
                        s(r, "opened_at"),
                        s(r, "reason"),
                    ]
                })
                .collect();
            print_table(&["ID", "USERNAME", "STATUS", "OPENED BY", "DECIDED BY", "OPENED", "REASON"], table);
        }
    }
    Ok(())
}
