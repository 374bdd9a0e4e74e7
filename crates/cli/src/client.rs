//! `wardgate client …`: OpenID Connect relying parties.

use clap::Subcommand;
use time::OffsetDateTime;
use wardgate_server::clients::{Clients, ClientsError, NewClient, view};

use crate::user::{actor, open, print_json, print_table};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register an application that signs people in through Wardgate. Prints its client id
    /// and, unless --public, its secret (shown once; only a digest is kept).
    Add {
        /// A name people recognise, e.g. "EHR (production)".
        name: String,
        /// Where Wardgate may send the person back (exact match; repeatable).
        #[arg(long = "redirect-uri", value_name = "URI", required = true)]
        redirect_uris: Vec<String>,
        /// Where it may send them after signing out (repeatable).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// An app on a device that cannot keep a secret: no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// Not operated by the hospital: people are asked to allow it before it gets anything.
        #[arg(long)]
        third_party: bool,
        /// Scopes it may ask for besides openid: profile, email, roles, offline_access, or your own.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A file holding the client's public keys (a JWK Set): it authenticates with signed
        /// assertions (private_key_jwt, RFC 7523) instead of a secret.
        #[arg(long, value_name = "FILE")]
        jwks: Option<std::path::PathBuf>,
        /// Where to POST a logout token when a person's session ends (back-channel logout).
        #[arg(long, value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// Access-token lifetime in seconds (60-3600, default 300).
        #[arg(long)]
        access_token_ttl: Option<u32>,
        /// Refresh-token lifetime in seconds (300-2592000, default 43200).
        #[arg(long)]
        refresh_token_ttl: Option<u32>,
        /// Signing algorithm of its tokens: ES256 (default), RS256 for applications that only
        /// verify RSA signatures, or EdDSA.
        #[arg(long, value_name = "ALG")]
        signing_alg: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List registered clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show { id: String },
    /// Give a confidential client a new secret; the old one stops working at once.
    RotateSecret { id: String },
    /// Remove a client and revoke everything it was granted.
    Delete {
        id: String,
        /// Confirm: its tokens stop working at once.
        #[arg(long)]
        yes: bool,
    },
}

fn failure(e: ClientsError) -> Failure {
    let code = match e {
        ClientsError::Invalid(_)
        | ClientsError::Lifetime
        | ClientsError::Public
        | ClientsError::Jwks
        | ClientsError::SigningAlg(_) => 2,
        _ => 1,
    };
    Failure { code, message: e.to_string() }
}

pub async fn run(global: &GlobalArgs, cmd: ClientCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let actor = actor();
    let ring = inst.keyring.get();
    let clients = Clients::new(&*inst.store, &actor, OffsetDateTime::now_utc()).with_keyring(&ring);
    match cmd {
        ClientCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            third_party,
            scopes,
            jwks,
            backchannel_logout_uri,
            access_token_ttl,
            refresh_token_ttl,
            signing_alg,
            json,
        } => {
            let jwks = match jwks {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| Failure { code: 2, message: format!("cannot read {}: {e}", path.display()) })?,
                ),
                None => None,
            };
            let new = NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                scopes,
                third_party,
                backchannel_logout_uri,
                access_token_ttl_secs: access_token_ttl,
                refresh_token_ttl_secs: refresh_token_ttl,
                jwks,
                signing_alg,
            };
            let (c, secret) = clients.add(new).await.map_err(failure)?;
            if json {
                let mut v = view(&c);
                v["client_secret"] = secret.clone().into();
                print_json(&v)?;
            } else {
                println!("Client {} registered.", c.name);
                println!("  client_id:     {}", c.id);
                match secret {
                    Some(s) => println!(
                        "  client_secret: {s}\n  (shown only now; store it in the application's configuration)"
                    ),
                    None if c.jwks.is_some() => println!("  authenticates with signed assertions (private_key_jwt)"),
                    None => println!("  public client: no secret; it must use PKCE (S256)"),
                }
            }
        }
        ClientCommand::List { json } => {
            let all = clients.list().await.map_err(failure)?;
            if json {
                print_json(&all.iter().map(view).collect::<Vec<_>>())?;
            } else {
                let rows = all
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.name.clone(),
                            if c.is_public() { "public" } else { "confidential" }.into(),
                            c.redirect_uris.join(" "),
                        ]
                    })
                    .collect();
                print_table(&["CLIENT ID", "NAME", "TYPE", "REDIRECT URIS"], rows);
            }
        }
        ClientCommand::Show { id } => print_json(&view(&clients.show(id.trim()).await.map_err(failure)?))?,
        ClientCommand::RotateSecret { id } => {
            let (c, secret) = clients.rotate_secret(id.trim()).await.map_err(failure)?;
            println!("New secret for {} ({}); the old one no longer works:\n  {secret}", c.name, c.id);
        }
        ClientCommand::Delete { id, yes } => {
            if !yes {
                return Err(Failure {
                    code: 2,
                    message: "deleting a client revokes all its tokens; add --yes to confirm".into(),
                });
            }
            let c = clients.delete(id.trim()).await.map_err(failure)?;
            println!("Client {} ({}) deleted; its tokens no longer work.", c.name, c.id);
        }
    }
    Ok(())
}
