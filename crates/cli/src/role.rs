//! `wardgate role …`: roles by job function and who holds them.

use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wardgate_core::policy::document::parse_duration;
use wardgate_server::roles::{Roles, RolesError, catalog};

use crate::user::{actor, open, print_table};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum RoleCommand {
    /// The roles of the policy in force and the permissions each grants.
    List,
    /// Give a role to an account.
    Assign {
        user: String,
        role: String,
        /// End the assignment after this long (e.g. 8h, 30d).
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
        for_: Option<String>,
        /// End it at this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
    /// Take a role away.
    Remove { user: String, role: String },
}

fn failure(e: RolesError) -> Failure {
    let code = if matches!(e, RolesError::Store(_)) { 1 } else { 2 };
    Failure { code, message: e.to_string() }
}

pub async fn run(global: &GlobalArgs, cmd: RoleCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let policy = catalog(&*inst.store).await.map_err(Failure::new)?;
    let actor = actor();
    let now = OffsetDateTime::now_utc();
    let roles = Roles::new(&*inst.store, &actor, now, &policy);
    match cmd {
        RoleCommand::List => {
            let rows = policy
                .roles()
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.permissions.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
                        if r.administrative() { "privileged only" } else { "" }.into(),
                        r.description.clone(),
                    ]
                })
                .collect();
            print_table(&["ROLE", "PERMISSIONS", "", "DESCRIPTION"], rows);
        }
        RoleCommand::Assign { user, role, for_, until } => {
            let until = match (for_, until) {
                (Some(d), _) => Some(
                    now + parse_duration(&d).ok_or_else(|| Failure {
                        code: 2,
                        message: format!("--for {d:?}: a duration such as 8h or 30d"),
                    })?,
                ),
                (None, Some(t)) => Some(
                    OffsetDateTime::parse(&t, &Rfc3339)
                        .map_err(|_| Failure { code: 2, message: format!("--until {t:?}: an RFC 3339 time") })?,
                ),
                (None, None) => None,
            };
            let u = roles.assign(&user, &role, until).await.map_err(failure)?;
            match until.and_then(|t| t.format(&Rfc3339).ok()) {
                Some(t) => println!("{} holds {role} until {t}.", u.username),
                None => println!("{} holds {role}.", u.username),
            }
        }
        RoleCommand::Remove { user, role } => {
            let u = roles.remove(&user, &role).await.map_err(failure)?;
            println!("{} no longer holds {role}.", u.username);
        }
    }
    Ok(())
}
