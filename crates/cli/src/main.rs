//! `wardgate`: the server and its administration, one binary.

mod admin;
mod audit;
mod client;
mod config_cmd;
mod device;
mod governance;
mod import;
mod keys;
mod lifecycle;
mod policy;
mod report;
mod role;
mod scim;
mod settings_load;
mod token;
mod user;

/// mimalloc rather than glibc's malloc: a request allocates and frees many small strings,
/// and glibc's allocator took about a fifth of the gateway's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Multi-factor authentication, single sign-on, access policy and a tamper-evident audit
/// trail in front of clinical systems.
#[derive(Parser)]
#[command(name = "wardgate", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command shares, so administration works against the same store as `serve`.
#[derive(Args, Clone, Default)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "WARDGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (default ./wardgate-data).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database: postgres://… for several nodes; default SQLite in the data directory.
    #[arg(long, global = true)]
    pub database: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    pub log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server.
    Serve(ServeArgs),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Administration that works directly against the store.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Key-encryption keys and token-signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// People's accounts: invite, list, show, disable, enable, unlock, delete, hardware tokens.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    User(user::UserCommand),
    /// API tokens for the admin API.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Token(token::TokenCommand),
    /// Applications that sign people in through Wardgate (OpenID Connect clients).
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Client(client::ClientCommand),
    /// The access policy: check, propose, approve (two-person rule), history, diff,
    /// rollback, explain and simulate.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Policy(policy::PolicyCommand),
    /// Roles by job function: list them, assign them (optionally until a time), remove them.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Role(role::RoleCommand),
    /// Registered workstations and their posture.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Device(device::DeviceCommand),
    /// Break-glass emergency access: list (overdue reviews flagged) and review.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Breakglass(governance::BreakglassCommand),
    /// Just-in-time elevation: request a role for a limited time, approve (another person), deny, list.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Elevate(governance::ElevateCommand),
    /// Business associates (vendors), their agreements and sponsors.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Vendor(governance::VendorCommand),
    /// Access reviews (recertification campaigns).
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Review(governance::ReviewCommand),
    /// Reports for auditors.
    #[command(subcommand)]
    Report(governance::ReportCommand),
    /// Provisioning from the HR system (SCIM 2.0): the connector's tokens.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Scim(scim::ScimCommand),
    /// Every factor of every person (the inventory), and factor expiry.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Factor(lifecycle::FactorCommand),
    /// Help-desk recovery of a lost factor: open, approve (another person), deny, list.
    #[command(subcommand, after_help = user::ACTOR_HELP)]
    Recovery(lifecycle::RecoveryCommand),
}

#[derive(Args, Default)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// TLS is terminated by a trusted reverse proxy; requires --trusted-proxy.
    #[arg(long)]
    pub behind_proxy: bool,
    /// A proxy address or CIDR whose X-Forwarded-For is believed (repeatable).
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Make a self-signed certificate (for trying Wardgate out only).
    #[arg(long)]
    pub dev_tls: bool,
}

/// A command's failure: one line for stderr, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self { message: message.to_string(), code: 1 }
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Self::new(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wardgate: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => admin::serve(&cli.global, &args).await,
            Command::Config(c) => config_cmd::run(&cli.global, c),
            Command::Admin(c) => admin::run(&cli.global, c).await,
            Command::Keys(c) => keys::run(&cli.global, c).await,
            Command::Audit(c) => audit::run(&cli.global, c).await,
            Command::User(c) => user::run(&cli.global, c).await,
            Command::Token(c) => token::run(&cli.global, c).await,
            Command::Client(c) => client::run(&cli.global, c).await,
            Command::Policy(c) => policy::run(&cli.global, c).await,
            Command::Role(c) => role::run(&cli.global, c).await,
            Command::Device(c) => device::run(&cli.global, c).await,
            Command::Breakglass(c) => governance::breakglass_run(&cli.global, c).await,
            Command::Elevate(c) => governance::elevate_run(&cli.global, c).await,
            Command::Vendor(c) => governance::vendor_run(&cli.global, c).await,
            Command::Review(c) => governance::review_run(&cli.global, c).await,
            Command::Report(c) => governance::report_run(&cli.global, c).await,
            Command::Scim(c) => scim::run(&cli.global, c).await,
            Command::Factor(c) => lifecycle::factor_run(&cli.global, c).await,
            Command::Recovery(c) => lifecycle::recovery_run(&cli.global, c).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // One line: operators grep for it and scripts show it verbatim.
            eprintln!("wardgate: error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}
