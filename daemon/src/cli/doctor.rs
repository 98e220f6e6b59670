//! `faceswapd doctor`: check every runtime dependency and say how to fix what is missing.

use std::process::ExitCode;

use super::session::*;
use crate::cli_output::out;

/// Runs `faceswapd doctor`.
pub(super) fn run(session: &Session) -> anyhow::Result<ExitCode> {
    let (report, ok) = crate::doctor::render(&crate::doctor::run(&session.dirs, &session.socket));
    out!("{report}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
