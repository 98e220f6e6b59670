//! `faceswapd shutdown`: stop the running daemon and wait until it is gone.

use std::process::ExitCode;
use std::time::Duration;

use faceswap_protocol::Request;

use super::session::*;
use crate::cli_output::outln;

/// How long `shutdown` waits for the daemon to exit (running jobs save a checkpoint first).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(120);

/// Runs `faceswapd shutdown`.
pub(super) fn run(session: &Session) -> anyhow::Result<ExitCode> {
    let mut c = session.connect_running()?;
    c.call(&Request::Shutdown)?;
    drop(c);
    // Returns once the daemon has exited, so a next command never meets a dying one.
    let lock = crate::server::lock_path(&session.socket);
    if crate::lock::wait_released(&lock, SHUTDOWN_WAIT)? {
        outln!("faceswapd stopped");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "faceswapd is still stopping after {} s (its running jobs are saving); \
                 `faceswapd status` shows when it is gone",
            SHUTDOWN_WAIT.as_secs()
        )
    }
}
