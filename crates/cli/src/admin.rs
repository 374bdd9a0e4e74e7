//! `wardgate serve` and `wardgate admin …`.

use clap::Subcommand;
use time::OffsetDateTime;
use wardgate_server::{Installation, Node, OpenMode};

use crate::{Failure, GlobalArgs, ServeArgs, settings_load};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Print a new one-time link to enroll the first administrator (replaces any earlier one).
    Bootstrap {
        /// Base URL people reach this server at (default: public_url, else from server.listen).
        #[arg(long)]
        base_url: Option<String>,
    },
}

pub async fn serve(global: &GlobalArgs, args: &ServeArgs) -> Result<(), Failure> {
    let settings = settings_load::load(global, Some(args))?;
    init_logging(&settings.log.format, &settings.log.level);
    // Listen for signals before announcing anything: a supervisor that reads our first
    // line and stops us at once must get an orderly shutdown, not the default kill.
    let shutdown = shutdown_signal()?;
    let node = Node::start(settings).await?;
    println!("Wardgate listening on {} ({} store)", node.base_url, node.store.backend());
    if let Some(cert) = &node.dev_cert {
        println!("Development TLS certificate (self-signed, not for production): {}", cert.display());
    }
    if let Some(url) = &node.bootstrap_url {
        println!("Enroll the first administrator (link works once, expires in 24 h):\n  {url}");
    } else if node.bootstrap_pending {
        println!(
            "An enrollment link for the first administrator is still unused; print a new one with `wardgate admin bootstrap`."
        );
    }
    shutdown.await;
    tracing::info!("shutting down: finishing requests and flushing the audit log");
    node.stop().await;
    Ok(())
}

pub async fn run(global: &GlobalArgs, cmd: AdminCommand) -> Result<(), Failure> {
    match cmd {
        AdminCommand::Bootstrap { base_url } => {
            let settings = settings_load::load(global, None)?;
            let base = base_url
                .or_else(|| settings.public_url.clone())
                .unwrap_or_else(|| default_base(&settings))
                .trim_end_matches('/')
                .to_owned();
            let inst = Installation::open(settings, OpenMode::Existing).await?;
            if inst.store.count_admins().await? > 0 {
                return Err(Failure::new(
                    "an administrator already exists; invite further people with `wardgate user add`",
                ));
            }
            let actor = format!("cli:{}", whoami());
            let (url, expires) =
                wardgate_server::node::issue_bootstrap(&*inst.store, &base, OffsetDateTime::now_utc(), &actor).await?;
            println!(
                "Enroll the first administrator (link works once, expires {}):",
                wardgate_core::audit::record::format_ts(expires)
            );
            println!("  {url}");
            Ok(())
        }
    }
}

fn default_base(settings: &wardgate_core::settings::Settings) -> String {
    let tls = settings.server.dev_tls || settings.server.tls_cert.is_some();
    format!("{}://{}", if tls { "https" } else { "http" }, settings.server.listen)
}

/// The operating-system account running the CLI, recorded as the acting administrator.
pub fn whoami() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Failure> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| Failure::new(format!("cannot handle SIGTERM: {e}")))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| Failure::new(format!("cannot handle SIGINT: {e}")))?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
