//! `faceswapd serve`: run the daemon in the foreground.

use std::process::ExitCode;

use anyhow::Context;
use faceswap_protocol::SocketPath;

use crate::client::EXIT_ALREADY_RUNNING;
use crate::config::LoadedConfig;
use crate::paths::Dirs;

/// Runs `faceswapd serve`.
pub(super) fn run(dirs: &Dirs, socket: SocketPath) -> anyhow::Result<ExitCode> {
    crate::memory::keep_freed_memory();
    let loaded = LoadedConfig::load(&dirs.config_file())?;
    crate::logging::init_service(&loaded.config.log, &dirs.logs())
        .with_context(|| format!("opening the log folder {}", dirs.logs().display()))?;
    match crate::server::serve(loaded.config, dirs, socket) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(crate::server::ServeError::Lock(e @ crate::lock::LockError::AlreadyRunning { .. })) => {
            eprintln!("faceswapd: {e}");
            Ok(ExitCode::from(EXIT_ALREADY_RUNNING as u8))
        }
        Err(e) => Err(e.into()),
    }
}
