//! The CLI's side of the socket: connect to the running daemon, starting it in the background
//! when none is running, so the editor plugin and the CLI share one daemon.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use faceswap_protocol::{ClientKind, Connection, ProtocolError, SocketPath};

/// Exit status of `serve` when another daemon already runs.
pub const EXIT_ALREADY_RUNNING: i32 = 3;

/// How long a CLI call waits for each reply.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a freshly started daemon gets to open its socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

fn is_not_running(e: &ProtocolError) -> bool {
    matches!(e, ProtocolError::Io(io) if matches!(
        io.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    ))
}

/// Connects to the daemon at `socket`; when nothing listens there and `autostart` is set, starts
/// `faceswapd serve` in the background (its log goes to `log_hint`) and waits for it.
pub fn connect(
    socket: &SocketPath,
    autostart: bool,
    log_hint: &std::path::Path,
) -> anyhow::Result<Connection> {
    match Connection::connect(socket, ClientKind::Cli, CALL_TIMEOUT) {
        Ok(c) => return Ok(c),
        Err(e) if autostart && is_not_running(&e) => {}
        Err(e) if is_not_running(&e) => {
            bail!("faceswapd is not running at {socket} ({e}); start it with `faceswapd serve`")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot talk to faceswapd at {socket}")),
    }
    let mut child = spawn_daemon(socket)?;
    let start = Instant::now();
    loop {
        match Connection::connect(socket, ClientKind::Cli, CALL_TIMEOUT) {
            Ok(c) => return Ok(c),
            Err(e) if is_not_running(&e) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot talk to faceswapd at {socket}"));
            }
        }
        if let Some(status) = child.try_wait().context("checking the started daemon")? {
            // Exit 3: another daemon held the lock, either starting (it will listen shortly) or
            // shutting down (then nobody will): start ours again until one answers.
            if status.code() == Some(EXIT_ALREADY_RUNNING) && start.elapsed() < START_TIMEOUT {
                std::thread::sleep(Duration::from_millis(100));
                child = spawn_daemon(socket)?;
                continue;
            }
            bail!(
                "faceswapd failed to start ({status}); see its log in {}",
                log_hint.display()
            );
        }
        if start.elapsed() > START_TIMEOUT {
            bail!(
                "faceswapd did not open {socket} within {}s; see its log in {}",
                START_TIMEOUT.as_secs(),
                log_hint.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_daemon(socket: &SocketPath) -> anyhow::Result<std::process::Child> {
    let exe: PathBuf = std::env::current_exe().context("finding the faceswapd executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--socket")
        .arg(socket.path())
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: Ctrl-C in the terminal that ran the CLI must not stop it.
        cmd.process_group(0);
    }
    tracing::info!("starting faceswapd in the background");
    cmd.spawn().context("starting faceswapd in the background")
}
