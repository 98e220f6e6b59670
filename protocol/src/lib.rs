//! Wire protocol between Faceswap++ clients (the OFX plugin, the `faceswapd` CLI) and the daemon.
//!
//! Control messages are bincode-encoded enums behind a `u32` little-endian length prefix
//! ([`framing`]), exchanged over a per-user local socket ([`transport`]). Pixels never travel
//! through the socket: they sit in shared-memory [`slot::FrameSlot`]s that the client creates and
//! the daemon maps. Every connection starts with a handshake ([`handshake`]) that carries the
//! protocol version, so a plugin and a daemon of different releases fail with a clear message.

pub mod error;
pub mod framing;
pub mod handshake;
pub mod jobs;
pub mod locations;
pub mod messages;
pub mod slot;
pub mod stream_copy;
pub mod transport;

pub use error::{ErrorCode, ProtocolError};
pub use faceswap_options::{
    self as options, BalanceSpace, Centering, ColorTransferMode, ImageFormat, LandmarkMask,
    MaskMode, MergeMode, OptimizerKind, Precision, SharpenKind, SortMethod, UnknownOption,
};
pub use framing::{MAX_CONTROL_MESSAGE, decode_payload, encode_payload, read_frame, write_frame};
pub use handshake::{ClientKind, Hello, MAGIC, PROTOCOL_VERSION, Welcome, error_response};
pub use jobs::{
    AverageJob, BisenetMask, ConvertJob, ConvertSettings, ExtractFramesJob, ExtractJob, ImportJob,
    ImportSource, JobId, JobRecord, JobSpec, JobState, JobSummary, Progress, ToolJob, ToolSpec,
    TrainJob, TrainSettings, XsegSettings, XsegTrainJob,
};
pub use messages::{
    DaemonStatus, ErrorReply, FrameOp, ProjectReport, Request, Response, Side, SwapSettings,
    SwapTarget, SwapView,
};
pub use slot::{FrameSlot, PixelFormat, SlotHeader};
pub use transport::{Connection, SocketPath};
