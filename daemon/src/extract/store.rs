//! The alignments store: every face found in a source, per frame, in a versioned binary file
//! written atomically (faceswap keeps the same data in its `.fsa` file).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::pipeline::{ExtractSettings, Face};
use crate::atomic::write_atomic;

const MAGIC: &[u8; 8] = b"FSPPALN\0";
/// Layout version of the store; bumped on incompatible changes.
pub const STORE_VERSION: u32 = 1;

/// What the faces were extracted from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Video file or image folder.
    pub path: String,
    /// Frame width of the first frame.
    pub width: u32,
    /// Frame height of the first frame.
    pub height: u32,
    /// Frames per second (videos).
    pub fps: Option<f64>,
}

/// One frame's faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameEntry {
    /// Frame name (image file name, or `frame_NNNNNN` for videos).
    pub name: String,
    /// Presentation timestamp in stream time base (videos).
    pub pts: Option<i64>,
    /// Faces in detection order.
    pub faces: Vec<StoredFace>,
}

/// A face plus the file its aligned crop went to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFace {
    /// Geometry and filter result.
    pub face: Face,
    /// Aligned face file, relative to the faceset folder.
    pub file: Option<String>,
}

/// The whole store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignments {
    /// The source.
    pub source: SourceInfo,
    /// Settings the faces were extracted with.
    pub settings: ExtractSettings,
    /// Frames by index (frames with no face are present with an empty list).
    pub frames: BTreeMap<u64, FrameEntry>,
}

/// The store could not be read or written.
#[derive(Debug, Error)]
pub enum StoreError {
    /// File system.
    #[error("alignments file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not an alignments file, a newer version, or damaged.
    #[error("alignments file {path} is unusable: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Alignments {
    /// Writes the store atomically.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let body =
            bincode::serde::encode_to_vec(self, bincode::config::standard()).map_err(|e| {
                StoreError::Invalid {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
        let mut bytes = Vec::with_capacity(12 + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&STORE_VERSION.to_le_bytes());
        bytes.extend_from_slice(&body);
        write_atomic(path, &bytes).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a store.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |reason: String| StoreError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(invalid("not a Faceswap++ alignments file".into()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != STORE_VERSION {
            return Err(invalid(format!(
                "version {version}, this faceswapd reads version {STORE_VERSION}"
            )));
        }
        let (store, _) =
            bincode::serde::decode_from_slice(&bytes[12..], bincode::config::standard())
                .map_err(|e| invalid(format!("damaged: {e}")))?;
        Ok(store)
    }

    /// Faces kept (not rejected), over all frames.
    pub fn accepted(&self) -> usize {
        self.frames
            .values()
            .flat_map(|f| &f.faces)
            .filter(|f| f.face.rejected.is_none())
            .count()
    }
}
