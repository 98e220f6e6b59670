//! `tracing` to stderr and, for the service, to a size-capped rotating file in the data dir.

use std::path::Path;
use std::sync::Mutex;

use file_rotate::{ContentLimit, FileRotate, compression::Compression, suffix::AppendCount};
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogConfig;

/// File name of the daemon log inside `<data>/logs`.
pub const LOG_FILE: &str = "faceswapd.log";

/// Logs for client commands: warnings and errors to stderr only (stdout stays for results).
pub fn init_client(verbose: bool) {
    let filter = EnvFilter::try_from_env("FACESWAPD_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if verbose { "debug" } else { "warn" }));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .try_init();
}

/// Logs for `serve`: the configured level to stderr and to `<logs>/faceswapd.log`, rotated at
/// `file_max_bytes` keeping `files_kept` old files.
pub fn init_service(cfg: &LogConfig, logs_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(logs_dir)?;
    let filter =
        || EnvFilter::try_from_env("FACESWAPD_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let file = FileRotate::new(
        logs_dir.join(LOG_FILE),
        AppendCount::new(cfg.files_kept.max(1) as usize),
        ContentLimit::BytesSurpassed(cfg.file_max_bytes.max(4096) as usize),
        Compression::None,
        None,
    );
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter()),
        )
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .with_filter(filter()),
        )
        .try_init();
    Ok(())
}

use tracing_subscriber::Layer as _;
