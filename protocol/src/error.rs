//! Errors on either side of the wire, and the codes the daemon sends back.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What went wrong, as a stable code both sides understand (sent inside [`crate::ErrorReply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The message could not be decoded.
    Malformed,
    /// Client and daemon speak different protocol versions.
    VersionMismatch,
    /// A length prefix or payload exceeded the control-message limit.
    TooLarge,
    /// The named job, slot or file does not exist.
    NotFound,
    /// The request is valid but not in the object's current state (e.g. resuming a finished job).
    InvalidState,
    /// A shared-memory frame slot is unusable (outside the slot dir, wrong owner, bad header).
    BadSlot,
    /// The daemon is at its connection limit.
    Busy,
    /// A request argument is invalid (bad path, zero size, unsupported option).
    InvalidInput,
    /// The daemon hit an internal error; its log has details.
    Internal,
}

/// Errors from encoding, decoding, transport and handshake.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// Socket or shared-memory I/O failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection cleanly between messages.
    #[error("the peer closed the connection")]
    Disconnected,
    /// A length prefix announced more than the control-message limit.
    #[error("message of {len} bytes exceeds the {max}-byte control-message limit")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// Limit in force.
        max: u32,
    },
    /// The bytes did not decode as the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The handshake preamble did not start with the Faceswap++ magic.
    #[error("the peer is not a Faceswap++ endpoint (bad handshake magic)")]
    BadMagic,
    /// The two sides speak different protocol versions.
    #[error(
        "protocol version mismatch: this side speaks v{ours}, the peer speaks v{theirs}; \
         install the same Faceswap++ release for the plugin and faceswapd (then restart faceswapd)"
    )]
    VersionMismatch {
        /// This side's version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The daemon answered with an error.
    #[error("daemon error ({code:?}): {message}")]
    Remote {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The daemon answered with a response that does not fit the request.
    #[error("unexpected response from the daemon: {0}")]
    Unexpected(String),
    /// A frame slot is unusable.
    #[error("frame slot: {0}")]
    Slot(String),
}

impl ProtocolError {
    /// The code to send back to a peer whose message caused this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::TooLarge { .. } => ErrorCode::TooLarge,
            ProtocolError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            ProtocolError::Remote { code, .. } => *code,
            ProtocolError::Slot(_) => ErrorCode::BadSlot,
            ProtocolError::Malformed(_) | ProtocolError::BadMagic => ErrorCode::Malformed,
            _ => ErrorCode::Internal,
        }
    }

    /// True when the error came from the socket timing out (the peer went quiet).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProtocolError::Io(e)
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    }
}
