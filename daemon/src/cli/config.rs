//! `faceswapd config …`: the configuration file and its effective values.

use std::process::ExitCode;

use clap::Subcommand;

use super::session::*;
use crate::cli_output::{out, outln};
use crate::config::{Config, LoadedConfig};

/// `faceswapd config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective configuration, each key with its source and meaning.
    Show,
    /// A documented config file with every default.
    Default,
    /// The config file's path.
    Path,
}

/// Runs `faceswapd config`.
pub(super) fn run(session: &Session, c: ConfigCommand) -> anyhow::Result<ExitCode> {
    let path = session.dirs.config_file();
    match c {
        ConfigCommand::Path => outln!("{}", path.display()),
        ConfigCommand::Default => out!("{}", Config::default_toml()),
        ConfigCommand::Show => out!("{}", LoadedConfig::load(&path)?.show()),
    }
    Ok(ExitCode::SUCCESS)
}
