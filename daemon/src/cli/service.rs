//! `faceswapd service …`: run the daemon as a per-user background service.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::cli_output::{out, outln};

/// `faceswapd service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Install the service for this faceswapd (or --exec) and start it.
    Install {
        /// The faceswapd the service runs (default: this one).
        #[arg(long)]
        exec: Option<PathBuf>,
    },
    /// Stop the service and remove it.
    Uninstall,
    /// What the service manager says about it.
    Status,
    /// Print this platform's service definition (what `install` writes) for --exec.
    Definition {
        /// The faceswapd the service runs (default: this one).
        #[arg(long)]
        exec: Option<PathBuf>,
    },
}

/// Runs `faceswapd service`.
pub(super) fn run(c: ServiceCommand) -> anyhow::Result<ExitCode> {
    use crate::service;
    let exec = |e: Option<PathBuf>| -> anyhow::Result<PathBuf> {
        Ok(match e {
            Some(p) => p,
            None => std::env::current_exe()?,
        })
    };
    let lines = match c {
        ServiceCommand::Install { exec: e } => service::install(&exec(e)?)?,
        ServiceCommand::Uninstall => service::uninstall()?,
        ServiceCommand::Status => service::status()?,
        ServiceCommand::Definition { exec: e } => {
            out!("{}", service::definition(&exec(e)?)?);
            return Ok(ExitCode::SUCCESS);
        }
    };
    for line in lines {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
