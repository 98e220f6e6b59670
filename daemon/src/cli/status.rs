//! `faceswapd status`: the running daemon's status.

use std::process::ExitCode;

use anyhow::bail;
use faceswap_protocol::{Request, Response};

use super::session::*;
use crate::cli_output::outln;

/// Runs `faceswapd status`.
pub(super) fn run(session: &Session) -> anyhow::Result<ExitCode> {
    let socket = &session.socket;
    let mut c = session.connect()?;
    let Response::Status(s) = c.call(&Request::Status)? else {
        bail!("unexpected reply to status");
    };
    outln!(
        "faceswapd {} running (pid {}, up {}s)\nsocket: {socket}\ndata: {}\ndevice: {}\nconnections: {}\njobs: {} queued, {} running",
        s.version,
        s.pid,
        s.uptime_s,
        s.data_dir,
        s.device,
        s.connections,
        s.queued_jobs,
        s.running_jobs
    );
    Ok(ExitCode::SUCCESS)
}
