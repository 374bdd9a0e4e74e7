//! `wardgate scim …`: the HR connector's access (SCIM 2.0 provisioning, docs/scim.md).

use clap::Subcommand;
use time::OffsetDateTime;
use wardgate_server::scim::tokens::{self, DEFAULT_DAYS, MAX_DAYS};

use crate::user::{actor, open, print_json, short_ts};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum ScimCommand {
    /// Bearer tokens for the HR connector (Workday, Entra ID, Okta…).
    #[command(subcommand)]
    Token(ScimTokenCommand),
}

#[derive(Subcommand)]
pub enum ScimTokenCommand {
    /// Create a token. It is printed once; only its digest is kept.
    Create {
        /// What the token is for, e.g. `workday`: audit records name its changes `scim:LABEL`.
        #[arg(long)]
        label: String,
        #[arg(long, value_name = "DAYS", help = format!("Lifetime, e.g. 365d (default {DEFAULT_DAYS}d, at most {MAX_DAYS}d)"))]
        expires_in: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every SCIM token, revoked and expired ones included.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (from `scim token list`); it stops working at once.
    Revoke { id: String },
}

/// `365d` or `365`.
fn days(s: &str) -> Result<u32, Failure> {
    let n = s.trim().strip_suffix('d').unwrap_or(s.trim());
    n.parse().map_err(|_| Failure::new(format!("--expires-in {s:?} is not a number of days such as 365d")))
}

fn view(t: &wardgate_core::scim::token::ScimToken, now: OffsetDateTime) -> serde_json::Value {
    let ts = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    serde_json::json!({
        "id": t.id,
        "label": t.label,
        "state": t.state_at(now),
        "created_by": t.created_by,
        "created_at": ts(t.created_at),
        "expires_at": ts(t.expires_at),
        "revoked_at": t.revoked_at.map(ts),
    })
}

pub async fn run(global: &GlobalArgs, cmd: ScimCommand) -> Result<(), Failure> {
    let ScimCommand::Token(cmd) = cmd;
    let inst = open(global).await?;
    let actor = actor();
    let now = OffsetDateTime::now_utc();
    match cmd {
        ScimTokenCommand::Create { label, expires_in, json } => {
            let d = expires_in.as_deref().map(days).transpose()?.unwrap_or(DEFAULT_DAYS);
            let (t, secret) = tokens::create(&*inst.store, &actor, now, &label, d).await?;
            if json {
                let mut v = view(&t, now);
                v["token"] = secret.into();
                print_json(&v)?;
            } else {
                println!("SCIM token {} ({}), expires {}.", t.id, t.label, short_ts(t.expires_at));
                println!("It is shown only now; store it in the HR connector:");
                println!("  {secret}");
            }
        }
        ScimTokenCommand::List { json } => {
            let all = tokens::list(&*inst.store).await?;
            if json {
                print_json(&all.iter().map(|t| view(t, now)).collect::<Vec<_>>())?;
            } else if all.is_empty() {
                println!("No SCIM tokens.");
            } else {
                println!("{:<32}  {:<20}  {:<8}  {:<16}  CREATED BY", "ID", "LABEL", "STATE", "EXPIRES");
                for t in &all {
                    println!(
                        "{:<32}  {:<20}  {:<8}  {:<16}  {}",
                        t.id,
                        t.label,
                        t.state_at(now),
                        short_ts(t.expires_at),
                        t.created_by
                    );
                }
            }
        }
        ScimTokenCommand::Revoke { id } => {
            let t = tokens::revoke(&*inst.store, &actor, now, id.trim()).await?;
            println!("SCIM token {} ({}) is revoked.", t.id, t.label);
        }
    }
    Ok(())
}
