//! `wardgate device …`: registered workstations and their posture.

use clap::Subcommand;
use time::OffsetDateTime;
use wardgate_server::devices::{DeviceChange, Devices, DevicesError, NewDevice, view};

use crate::user::{actor, open, print_json, print_table};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Register a workstation. Prints its secret once: configure the workstation to send it
    /// in the Wardgate-Device header.
    Add {
        /// e.g. ws-icu-03
        name: String,
        #[arg(long)]
        site: Option<String>,
        /// Managed by the hospital's IT.
        #[arg(long)]
        managed: bool,
        /// A trusted clinical workstation (implies managed).
        #[arg(long)]
        trusted: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        name: String,
    },
    /// Change a device's flags or record its posture.
    Set {
        name: String,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        managed: Option<bool>,
        #[arg(long)]
        trusted: Option<bool>,
        #[arg(long)]
        disk_encrypted: Option<bool>,
        #[arg(long)]
        patched: Option<bool>,
        /// Record that the device reported its posture now.
        #[arg(long)]
        check_in: bool,
    },
    /// Retire a device: its secret stops working at once.
    Retire {
        name: String,
    },
}

fn failure(e: DevicesError) -> Failure {
    let code = if matches!(e, DevicesError::Store(_) | DevicesError::Random) { 1 } else { 2 };
    Failure { code, message: e.to_string() }
}

pub async fn run(global: &GlobalArgs, cmd: DeviceCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let actor = actor();
    let devices = Devices::new(&*inst.store, &actor, OffsetDateTime::now_utc());
    match cmd {
        DeviceCommand::Add { name, site, managed, trusted } => {
            let (d, secret) =
                devices.add(NewDevice { name, site, managed: managed || trusted, trusted }).await.map_err(failure)?;
            println!("Device {} registered.", d.name);
            println!("  secret: {secret}\n  (shown only now; the workstation sends it in the Wardgate-Device header)");
        }
        DeviceCommand::List { json } => {
            let all = devices.list().await.map_err(failure)?;
            if json {
                print_json(&all.iter().map(view).collect::<Vec<_>>())?;
            } else {
                let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
                let rows = all
                    .iter()
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            d.site.clone().unwrap_or_else(|| "-".into()),
                            yes(d.managed),
                            yes(d.trusted),
                            yes(d.posture.disk_encrypted && d.posture.patched),
                            if d.revoked_at.is_some() { "retired" } else { "active" }.into(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "SITE", "MANAGED", "TRUSTED", "ENCRYPTED+PATCHED", "STATUS"], rows);
            }
        }
        DeviceCommand::Show { name } => print_json(&view(&devices.get(&name).await.map_err(failure)?))?,
        DeviceCommand::Set { name, site, managed, trusted, disk_encrypted, patched, check_in } => {
            let c =
                DeviceChange { site: site.map(Some), managed, trusted, disk_encrypted, patched, checked_in: check_in };
            let d = devices.change(&name, c).await.map_err(failure)?;
            print_json(&view(&d))?;
        }
        DeviceCommand::Retire { name } => {
            let d = devices.retire(&name).await.map_err(failure)?;
            println!("Device {} retired; its secret no longer works.", d.name);
        }
    }
    Ok(())
}
