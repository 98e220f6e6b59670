//! Where the daemon's socket and the frame slots live. Both sides compute the same places.

use std::path::{Path, PathBuf};

use crate::ProtocolError;

/// Environment variable that overrides the socket path (tests, several daemons side by side).
pub const SOCKET_ENV: &str = "FACESWAPD_SOCKET";

/// File name of the socket inside the runtime dir.
pub const SOCKET_FILE: &str = "faceswapd.sock";

/// Per-user runtime dir: `$XDG_RUNTIME_DIR/faceswappp`, else a private dir in tmpfs
/// (`/dev/shm`, so frame slots stay in memory), else in the temp dir. Created owner-only (0700).
pub fn runtime_dir() -> Result<PathBuf, ProtocolError> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(base) => PathBuf::from(base).join("faceswappp"),
        None => fallback_runtime_dir(),
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
}

#[cfg(target_os = "linux")]
fn fallback_runtime_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("faceswappp-{}", user_tag()))
}

#[cfg(not(target_os = "linux"))]
fn fallback_runtime_dir() -> PathBuf {
    std::env::temp_dir().join(format!("faceswappp-{}", user_tag()))
}

#[cfg(unix)]
fn user_tag() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }.to_string()
}

#[cfg(not(unix))]
fn user_tag() -> String {
    std::env::var("USERNAME").unwrap_or_else(|_| "user".into())
}

/// Creates `dir` if needed and makes sure only its owner, this user, can enter it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ProtocolError> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(dir)?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = unsafe { libc::getuid() };
        if meta.uid() != me {
            return Err(ProtocolError::Slot(format!(
                "{} belongs to uid {}, not to this user ({me}); remove it or set {SOCKET_ENV}",
                dir.display(),
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// The daemon's address: a socket file on Unix, a per-user named pipe on Windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath {
    path: PathBuf,
}

impl SocketPath {
    /// `$FACESWAPD_SOCKET` when set, else the default in the runtime dir.
    pub fn resolve() -> Result<Self, ProtocolError> {
        match std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()) {
            Some(p) => Ok(Self::new(PathBuf::from(p))),
            None => Self::default_path(),
        }
    }

    /// The default address for this user.
    pub fn default_path() -> Result<Self, ProtocolError> {
        #[cfg(unix)]
        {
            Ok(Self::new(runtime_dir()?.join(SOCKET_FILE)))
        }
        #[cfg(not(unix))]
        {
            Ok(Self::new(PathBuf::from(format!(
                "faceswappp-{}-faceswapd",
                user_tag()
            ))))
        }
    }

    /// An explicit address.
    pub fn new(path: PathBuf) -> Self {
        SocketPath { path }
    }

    /// The socket file (Unix) or pipe name (Windows).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folder for frame slots that belong to this daemon: beside the socket (owner-only).
    pub fn slot_dir(&self) -> Result<PathBuf, ProtocolError> {
        #[cfg(unix)]
        let dir = self
            .path
            .parent()
            .map(|p| p.join("slots"))
            .ok_or_else(|| ProtocolError::Slot("socket path has no parent folder".into()))?;
        #[cfg(not(unix))]
        let dir = std::env::temp_dir().join(format!("faceswappp-{}-slots", user_tag()));
        ensure_private_dir(&dir)?;
        Ok(dir)
    }

    /// The interprocess name for this address.
    pub fn to_name(&self) -> std::io::Result<interprocess::local_socket::Name<'_>> {
        #[cfg(unix)]
        {
            use interprocess::local_socket::{GenericFilePath, ToFsName};
            self.path.as_path().to_fs_name::<GenericFilePath>()
        }
        #[cfg(not(unix))]
        {
            use interprocess::local_socket::{GenericNamespaced, ToNsName};
            self.path.as_os_str().to_ns_name::<GenericNamespaced>()
        }
    }
}

impl std::fmt::Display for SocketPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}
