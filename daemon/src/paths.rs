//! Where the daemon keeps things (`directories`: XDG on Linux, so tests can isolate every root).

use std::path::PathBuf;

use directories::ProjectDirs;
use faceswap_protocol::SocketPath;
use thiserror::Error;

/// Environment variable naming the config file (overrides `<config>/faceswapd.toml`).
pub const CONFIG_ENV: &str = "FACESWAPD_CONFIG";

/// No home directory could be determined.
#[derive(Debug, Error)]
#[error("cannot find the user's home directory to place data, cache and config folders (set HOME)")]
pub struct NoHome;

/// The roots every part of the daemon uses.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Projects, jobs, logs.
    pub data: PathBuf,
    /// Downloaded assets and model files.
    pub cache: PathBuf,
    /// `faceswapd.toml` lives here.
    pub config: PathBuf,
}

impl Dirs {
    /// The per-user roots.
    pub fn resolve() -> Result<Self, NoHome> {
        let p = ProjectDirs::from("", "", "faceswappp").ok_or(NoHome)?;
        Ok(Dirs {
            data: p.data_dir().to_path_buf(),
            cache: p.cache_dir().to_path_buf(),
            config: p.config_dir().to_path_buf(),
        })
    }

    /// Job records.
    pub fn jobs(&self) -> PathBuf {
        self.data.join("jobs")
    }

    /// Log files.
    pub fn logs(&self) -> PathBuf {
        self.data.join("logs")
    }

    /// Test media and other fetched assets.
    pub fn assets(&self) -> PathBuf {
        self.cache.join("assets")
    }

    /// Model files (each pinned by SHA-256).
    pub fn models(&self) -> PathBuf {
        self.cache.join("models")
    }

    /// Native runtime libraries (ONNX Runtime).
    pub fn runtime_libs(&self) -> PathBuf {
        self.cache.join("runtime")
    }

    /// The config file: `$FACESWAPD_CONFIG`, else `<config>/faceswapd.toml`.
    pub fn config_file(&self) -> PathBuf {
        match std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => self.config.join("faceswapd.toml"),
        }
    }
}

/// The socket address in force (`--socket`, `$FACESWAPD_SOCKET`, or the per-user default).
pub fn socket(explicit: Option<PathBuf>) -> Result<SocketPath, faceswap_protocol::ProtocolError> {
    match explicit {
        Some(p) => Ok(SocketPath::new(p)),
        None => SocketPath::resolve(),
    }
}
