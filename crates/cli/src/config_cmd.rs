//! `wardgate config check|show`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::settings_load::{self, check_file};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file; prints each problem with its key and line.
    Check {
        /// The file (default: --config).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (file, environment, flags) with secrets masked.
    Show,
}

pub fn run(global: &GlobalArgs, cmd: ConfigCommand) -> Result<(), Failure> {
    match cmd {
        ConfigCommand::Check { file } => {
            let Some(file) = file.or_else(|| global.config.clone()) else {
                return Err(Failure::new("config check needs a file: wardgate config check FILE"));
            };
            let problems = check_file(&file);
            if problems.is_empty() {
                println!("{}: OK", file.display());
                return Ok(());
            }
            for p in &problems {
                println!("{p}");
            }
            Err(Failure::new(format!("{}: {} problem(s)", file.display(), problems.len())))
        }
        ConfigCommand::Show => {
            let settings = settings_load::load(global, None)?;
            print!("{}", settings_load::show(&settings)?);
            Ok(())
        }
    }
}
