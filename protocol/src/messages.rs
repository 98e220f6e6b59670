//! Requests and responses after the handshake.

use serde::{Deserialize, Serialize};

use crate::{ConvertSettings, ErrorCode, JobId, JobRecord, JobSpec, JobSummary};

/// What a frame request asks the daemon to do with the pixels in a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FrameOp {
    /// Check the slot header only and hand the frame back untouched: the bare transport, as
    /// used by health checks and the transport benchmark.
    Passthrough,
    /// Verify the slot header and content hash, leave the pixels as they are (an integrity
    /// check of the shared memory). The swap effect adds its own operation.
    Verify,
    /// Verify, then invert the colour channels in place (alpha kept). A cheap transform that
    /// proves the daemon really read and wrote the shared pixels.
    Invert,
    /// Find the faces in the frame (rows top-down) and swap them with a trained model, through
    /// the same merge as `convert`; pixels the merge does not reach keep their exact bytes.
    Swap(Box<SwapSettings>),
}

/// Which faces of a frame the swap effect replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwapTarget {
    /// Every face found.
    All,
    /// The largest face only.
    Largest,
    /// The n-th face in detection order.
    Index(u32),
}

/// The swap effect's parameters for one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapSettings {
    /// The trained model folder.
    pub model_dir: String,
    /// Which faces.
    pub target: SwapTarget,
    /// The slot's rows are bottom row first (OFX images with positive rowbytes).
    pub bottom_up: bool,
    /// Merge options (the writer fields are unused).
    pub merge: ConvertSettings,
}

/// A client's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Daemon status.
    Status,
    /// All jobs, oldest first.
    ListJobs,
    /// One job in full.
    ShowJob {
        /// Which job.
        id: JobId,
    },
    /// Queue a new job.
    SubmitJob {
        /// What to do.
        spec: JobSpec,
    },
    /// Cancel a queued or running job.
    CancelJob {
        /// Which job.
        id: JobId,
    },
    /// Re-queue a failed, cancelled or interrupted job; it continues from its checkpoint.
    ResumeJob {
        /// Which job.
        id: JobId,
    },
    /// Process the frame in a shared-memory slot in place.
    ProcessFrame {
        /// Slot file path, as returned by [`crate::FrameSlot::path`].
        slot: String,
        /// What to do.
        op: FrameOp,
    },
    /// Stop the daemon cleanly (running jobs become interrupted, resumable).
    Shutdown,
}

/// The daemon's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(DaemonStatus),
    /// Answer to [`Request::ListJobs`].
    Jobs(Vec<JobSummary>),
    /// Answer to [`Request::ShowJob`].
    Job(Box<JobRecord>),
    /// Answer to [`Request::SubmitJob`].
    JobSubmitted {
        /// The new job's id.
        id: JobId,
    },
    /// The request was carried out.
    Ok,
    /// Answer to [`Request::ProcessFrame`]: the slot now holds the result.
    FrameDone {
        /// Content hash of the result, also written into the slot header.
        content_hash: u64,
    },
    /// The request was refused.
    Error(ErrorReply),
}

/// A refusal: stable code plus a message meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Stable code.
    pub code: ErrorCode,
    /// What happened and what to do.
    pub message: String,
}

/// The daemon's state, for `faceswapd status` and the plugin's status line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// Release.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Open client connections (this one included).
    pub connections: u32,
    /// Jobs waiting.
    pub queued_jobs: u32,
    /// Jobs running.
    pub running_jobs: u32,
    /// Where the daemon keeps projects and jobs.
    pub data_dir: String,
    /// Compute device the daemon uses for models.
    pub device: String,
}
