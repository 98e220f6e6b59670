//! Media I/O through FFmpeg (ffmpeg-next): the frame type and errors here, decoding in
//! `decode.rs`, the frame-export job in `frames.rs`. (Convert's encoders live with its output,
//! `merge/output.rs`.)

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;

mod decode;
mod frames;

pub use decode::*;
pub use frames::*;

/// A decoded frame, 8-bit RGB, rows packed (`width × 3` bytes each).
#[derive(Debug, Clone)]
pub struct RgbFrame {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `width × height × 3` bytes.
    pub data: Vec<u8>,
}

/// What a video file holds.
#[derive(Debug, Clone)]
pub struct VideoInfo {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frame count from the container, or estimated from duration × rate; None when unknown.
    pub frames: Option<u64>,
    /// Average frame rate.
    pub fps: f64,
}

/// Media could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// FFmpeg could not open or decode the file.
    #[error(
        "cannot read video {path}: {reason} (is it a video file FFmpeg can decode? try `ffprobe {path}`)"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// FFmpeg's message.
        reason: String,
    },
    /// The file has no video stream.
    #[error("{0} has no video stream")]
    NoVideo(PathBuf),
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> MediaError {
    MediaError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Initialises FFmpeg once (safe to call repeatedly).
pub fn init() -> Result<(), MediaError> {
    ffmpeg::init().map_err(|e| unreadable(Path::new("(ffmpeg init)"), e))
}
