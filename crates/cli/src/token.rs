//! `wardgate token …`: API tokens for the admin API, bound to an administrator's account.

use clap::Subcommand;
use time::OffsetDateTime;
use wardgate_server::accounts::{Accounts, TOKEN_DEFAULT_DAYS, TOKEN_MAX_DAYS, TokenView};

use crate::user::{actor, failure, open, print_json, print_tokens, short_ts};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token for an active administrator. It is printed once; only its digest is kept.
    Create {
        /// The administrator the token acts as.
        #[arg(long)]
        user: String,
        /// What the token may do: users:read, users:write, clients:read, clients:write (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// What the token is for, e.g. the system that uses it.
        #[arg(long)]
        label: Option<String>,
        #[arg(long, value_name = "N", help = format!("Lifetime in days (default {TOKEN_DEFAULT_DAYS}, at most {TOKEN_MAX_DAYS})"))]
        expires_in_days: Option<u32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List a user's tokens, revoked and expired ones included.
    List {
        #[arg(long)]
        user: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (from `token list`); it stops working at once.
    Revoke { id: String },
}

pub async fn run(global: &GlobalArgs, cmd: TokenCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let actor = actor();
    let now = OffsetDateTime::now_utc();
    let accounts = Accounts::new(&*inst.store, &actor, now, &inst.settings.auth);
    match cmd {
        TokenCommand::Create { user, scopes, label, expires_in_days, json } => {
            let created =
                accounts.create_api_token(&user, &scopes, label.as_deref(), expires_in_days).await.map_err(failure)?;
            let t = &created.token;
            if json {
                let mut v = serde_json::to_value(TokenView::new(t, now))?;
                if let Some(m) = v.as_object_mut() {
                    m.insert("user".into(), created.user.username.as_str().into());
                    m.insert("token".into(), created.secret.clone().into());
                }
                print_json(&v)?;
            } else {
                println!(
                    "API token {} for {} ({}), expires {}.",
                    t.id,
                    created.user.username,
                    t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
                    short_ts(t.expires_at)
                );
                println!("It is shown only now; store it in the system that uses it:");
                println!("  {}", created.secret);
            }
        }
        TokenCommand::List { user, json } => {
            let (_, tokens) = accounts.api_tokens(&user).await.map_err(failure)?;
            let views: Vec<TokenView> = tokens.iter().map(|t| TokenView::new(t, now)).collect();
            if json { print_json(&views)? } else { print_tokens(&views) }
        }
        TokenCommand::Revoke { id } => {
            let (user, t) = accounts.revoke_api_token(id.trim()).await.map_err(failure)?;
            println!("API token {} ({}) of {} is revoked.", t.id, t.label, user.username);
        }
    }
    Ok(())
}
