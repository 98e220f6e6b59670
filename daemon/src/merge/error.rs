//! Why a conversion stopped: the one error type of the merge stage's offline path.

use std::path::PathBuf;

/// Why a conversion stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An option is wrong.
    #[error("{0}")]
    Settings(String),
    /// The model folder cannot be used.
    #[error("model {path}: {reason}")]
    Model {
        /// The model folder.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The alignments cannot be used.
    #[error("{0}")]
    Alignments(String),
    /// A frame of the input has no entry in the alignments.
    #[error(
        "frame {index} ({name}) of {input} has no entry in {alignments}: the alignments come from another source or an interrupted extract; run `faceswapd extract` on this input again (it resumes), or pass --allow-missing-alignments to pass such frames through unchanged"
    )]
    MissingAlignments {
        /// Frame index.
        index: u64,
        /// Frame name.
        name: String,
        /// The input.
        input: String,
        /// The alignments file.
        alignments: String,
    },
    /// The input cannot be read.
    #[error("{0}")]
    Input(String),
    /// The output cannot be written.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// The model failed on a frame.
    #[error("frame {0}: {1}")]
    Merge(u64, String),
    /// The caller asked to stop (nothing was left under the output name).
    #[error("stopped after {0} frames; the partial output was removed")]
    Stopped(u64),
}

impl From<crate::media::MediaError> for ConvertError {
    fn from(e: crate::media::MediaError) -> Self {
        ConvertError::Input(e.to_string())
    }
}
