//! The Faceswap++ OpenFX plugin: thin, no ML, no FFmpeg; everything heavy happens in `faceswapd`.
//!
//! This crate starts with the plugin's link to the daemon ([`DaemonLink`]), which the OFX render
//! action uses: copy the host's frame into a shared-memory slot, ask the daemon, copy the result
//! out, all within a deadline. When the daemon is down or late, render passes the source
//! through and the caller shows the returned reason as a persistent message; the host is never
//! blocked beyond the deadline and never sees a panic. The OFX entry points build on this.

pub mod background;
mod health;
mod host;
pub mod ofx;
mod status;
mod swap;
mod trainer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use health::Health;

use faceswap_protocol::{
    ClientKind, Connection, FrameOp, FrameSlot, PixelFormat, ProtocolError, Request, Response,
    SocketPath,
};

/// A host image as the render action sees it: RGBA rows `stride` bytes apart.
pub struct HostImage<'a> {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Component type.
    pub format: PixelFormat,
    /// The bytes.
    pub data: &'a [u8],
}

/// What a render produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderOutcome {
    /// The daemon processed the frame; the output holds its result.
    Processed,
    /// The output holds the unchanged source; the reason is meant for a persistent message.
    PassedThrough(String),
}

/// The plugin's connection to the daemon, with its frame slot. One per render instance.
pub struct DaemonLink {
    socket: SocketPath,
    deadline: Duration,
    conn: Option<Connection>,
    slot: Option<FrameSlot>,
    retry_after: Option<Instant>,
    autostart: bool,
    health: Arc<Health>,
}

/// After a failed connect, wait this long before trying again (render is called per frame).
const RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

impl DaemonLink {
    /// A link to the daemon at `socket`; each render waits at most `deadline` for it.
    pub fn new(socket: SocketPath, deadline: Duration) -> Self {
        DaemonLink {
            socket,
            deadline,
            conn: None,
            slot: None,
            retry_after: None,
            autostart: false,
            health: Arc::default(),
        }
    }

    /// Starts `faceswapd serve` in the background when the daemon is not running (the editor
    /// plug-in does; tests of the bare link do not). The binary is `$FACESWAPD_BIN`, else
    /// `faceswapd` on PATH, else `~/.local/bin/faceswapd` (the user install).
    pub fn with_autostart(mut self, on: bool) -> Self {
        self.autostart = on;
        self
    }

    /// Drops the back-off after a failed connect, so the next call tries the daemon at once
    /// (after the user restarted it, say).
    pub fn retry_now(&mut self) {
        self.retry_after = None;
    }

    /// Changes how long each render waits (the effect's deadline param).
    pub fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    /// Sends `src` through the daemon with `op` and writes the result into `dst` (same size and
    /// layout as `src`, rows `dst_stride` apart). Never fails: problems pass the source through.
    pub fn render(
        &mut self,
        src: &HostImage<'_>,
        dst: &mut [u8],
        dst_stride: usize,
        op: FrameOp,
    ) -> RenderOutcome {
        let why = if !self.health.responding() {
            NOT_RESPONDING.to_string()
        } else {
            match self.try_render(src, dst, dst_stride, op) {
                Ok(()) => return RenderOutcome::Processed,
                Err(e) => self.failed(&e),
            }
        };
        copy_rows(src, dst, dst_stride);
        RenderOutcome::PassedThrough(format!("{why}; showing the source frame"))
    }

    /// After a failed call: drops the connection (after a timeout its stream may hold a late
    /// reply), notes a missed deadline, and says what happened.
    fn failed(&mut self, e: &ProtocolError) -> String {
        self.conn = None;
        if e.is_timeout() {
            self.health.missed_deadline(&self.socket);
        }
        describe(e, &self.socket, self.deadline)
    }

    fn try_render(
        &mut self,
        src: &HostImage<'_>,
        dst: &mut [u8],
        dst_stride: usize,
        op: FrameOp,
    ) -> Result<(), ProtocolError> {
        let path = self.put_frame(src)?;
        let conn = self.conn.as_mut().ok_or(ProtocolError::Disconnected)?;
        match conn.call(&Request::ProcessFrame { slot: path, op })? {
            Response::FrameDone { .. } => {}
            other => return Err(ProtocolError::Unexpected(format!("{other:?}"))),
        }
        self.slot
            .as_ref()
            .ok_or_else(|| ProtocolError::Slot("no slot".into()))?
            .read_rows(dst, dst_stride)?;
        Ok(())
    }

    /// Connects (within the deadline) and copies `src` into this link's slot; returns the
    /// slot's path for the request.
    fn put_frame(&mut self, src: &HostImage<'_>) -> Result<String, ProtocolError> {
        let deadline = self.deadline;
        self.connection()?.set_timeout(Some(deadline))?;
        let need = src.width as usize * src.height as usize * src.format.bytes_per_pixel();
        if self.slot.as_ref().is_none_or(|s| s.capacity() < need) {
            self.slot = Some(FrameSlot::create(&self.socket.slot_dir()?, need)?);
        }
        let slot = self
            .slot
            .as_mut()
            .ok_or_else(|| ProtocolError::Slot("no slot".into()))?;
        slot.write_rows(src.width, src.height, src.format, src.data, src.stride)?;
        Ok(slot.path().display().to_string())
    }

    /// Sends `src` to the daemon as training material: its faces are added to side `side` of
    /// `project` as frame `frame`. Returns how many faces were found.
    pub fn collect(
        &mut self,
        src: &HostImage<'_>,
        project: &str,
        side: faceswap_protocol::Side,
        frame: u64,
        bottom_up: bool,
    ) -> Result<u32, String> {
        if !self.health.responding() {
            return Err(NOT_RESPONDING.into());
        }
        let result = (|| -> Result<u32, ProtocolError> {
            let path = self.put_frame(src)?;
            let conn = self.conn.as_mut().ok_or(ProtocolError::Disconnected)?;
            match conn.call(&Request::CollectFrame {
                project: project.to_string(),
                side,
                frame,
                slot: path,
                bottom_up,
            })? {
                Response::Collected { faces } => Ok(faces),
                other => Err(ProtocolError::Unexpected(format!("{other:?}"))),
            }
        })();
        result.map_err(|e| self.failed(&e))
    }

    /// One control request (no frame), within the deadline.
    pub fn call(&mut self, request: &Request) -> Result<Response, String> {
        if !self.health.responding() {
            return Err(NOT_RESPONDING.into());
        }
        let deadline = self.deadline;
        let result = (|| -> Result<Response, ProtocolError> {
            let conn = self.connection()?;
            conn.set_timeout(Some(deadline))?;
            conn.call(request)
        })();
        result.map_err(|e| self.failed(&e))
    }

    fn connection(&mut self) -> Result<&mut Connection, ProtocolError> {
        if self.conn.is_none() {
            if self.retry_after.is_some_and(|t| Instant::now() < t) {
                return Err(ProtocolError::Disconnected);
            }
            match Connection::connect(&self.socket, ClientKind::OfxPlugin, self.deadline) {
                Ok(c) => {
                    self.retry_after = None;
                    self.conn = Some(c);
                }
                Err(e) => {
                    self.retry_after = Some(Instant::now() + RECONNECT_BACKOFF);
                    if self.autostart {
                        start_daemon(&self.socket);
                    }
                    return Err(e);
                }
            }
        }
        self.conn.as_mut().ok_or(ProtocolError::Disconnected)
    }
}

impl Drop for DaemonLink {
    fn drop(&mut self) {
        self.health.close();
    }
}

/// What calls say while the daemon has not answered since a missed deadline.
const NOT_RESPONDING: &str = "Faceswap++: the daemon is not responding (it is checked in the \
                              background)";

/// The faceswapd binary to start: `$FACESWAPD_BIN`, `faceswapd` on PATH, `~/.local/bin`.
fn daemon_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("FACESWAPD_BIN").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let name = if cfg!(windows) {
        "faceswapd.exe"
    } else {
        "faceswapd"
    };
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let p = std::path::Path::new(&home).join(".local/bin").join(name);
        p.is_file().then_some(p)
    })
}

/// Starts the daemon in the background (its own process group, no stdio); a thread reaps it
/// when it exits so no zombie is left in the host.
fn start_daemon(socket: &SocketPath) {
    let Some(bin) = daemon_binary() else {
        return;
    };
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--socket")
        .arg(socket.path())
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Not in the host's process group: the editor's signals are not the daemon's.
        cmd.process_group(0);
    }
    if let Ok(mut child) = cmd.spawn() {
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
}

pub(crate) fn copy_rows(src: &HostImage<'_>, dst: &mut [u8], dst_stride: usize) {
    let row = src.width as usize * src.format.bytes_per_pixel();
    for y in 0..src.height as usize {
        let (s, d) = (y * src.stride, y * dst_stride);
        if let (Some(from), Some(to)) = (src.data.get(s..s + row), dst.get_mut(d..d + row)) {
            to.copy_from_slice(from);
        }
    }
}

/// What a failed call means to someone in an editor, in one line: what happened and what to
/// do (every message the effects set comes from here or from the daemon's answer).
fn describe(e: &ProtocolError, socket: &SocketPath, deadline: Duration) -> String {
    let text = if e.is_timeout() {
        format!(
            "Faceswap++: the daemon is not responding (no answer within {} ms)",
            deadline.as_millis()
        )
    } else {
        match e {
            ProtocolError::Disconnected | ProtocolError::Io(_) => format!(
                "Faceswap++: the daemon is not running and could not be started ({socket}); \
                 install Faceswap++ again or start faceswapd"
            ),
            ProtocolError::Remote { message, .. } => format!("Faceswap++: {message}"),
            ProtocolError::Unexpected(_)
            | ProtocolError::Malformed(_)
            | ProtocolError::BadMagic => {
                "Faceswap++: the daemon answered in a way this plug-in does not understand; \
                 install the same Faceswap++ release for the plug-in and the daemon"
                    .to_string()
            }
            other => format!("Faceswap++: {other}"),
        }
    };
    one_line(&text)
}

/// Joins the lines of a message: hosts show persistent messages and status params on one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
