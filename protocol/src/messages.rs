//! Requests and responses after the handshake.

use serde::{Deserialize, Serialize};

use crate::{ConvertSettings, ErrorCode, JobId, JobRecord, JobSpec, JobSummary, TrainSettings};

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

/// What the swap effect shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwapView {
    /// The swapped frame.
    Result,
    /// The blend mask as grey (white = the swapped face).
    Mask,
    /// The source with the 68 landmarks of the chosen faces drawn over it.
    Landmarks,
}

/// The swap effect's parameters for one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapSettings {
    /// The trained model folder (unused when `project` is set).
    pub model_dir: String,
    /// A trainer project whose newest model to use instead of `model_dir`.
    pub project: Option<String>,
    /// Which faces.
    pub target: SwapTarget,
    /// The slot's rows are bottom row first (OFX images with positive rowbytes).
    pub bottom_up: bool,
    /// What the effect shows.
    pub show: SwapView,
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
    /// Training from the editor: find the faces in the frame in `slot` and add them to side
    /// `side` of project `project` (the effect instance's id), as frame `frame`.
    CollectFrame {
        /// Project name: letters, digits, `-` and `_` only.
        project: String,
        /// Which side the faces are material for.
        side: Side,
        /// The frame number in the clip (names the faces; collecting a frame again replaces).
        frame: u64,
        /// Slot file path holding the frame.
        slot: String,
        /// The slot's rows are bottom row first.
        bottom_up: bool,
    },
    /// Queue a training job on a project's collected faces (model in the project's folder).
    TrainProject {
        /// Project name.
        project: String,
        /// Training options.
        settings: Box<TrainSettings>,
    },
    /// A project's collected faces, its newest training job and checkpoint.
    ProjectStatus {
        /// Project name.
        project: String,
    },
}

/// Which side of a swap collected faces are material for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// The identity to put in (DFL "src").
    A,
    /// The faces to replace (DFL "dst").
    B,
}

/// What the daemon knows of an editor project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectReport {
    /// Faces collected for side A.
    pub faces_a: u64,
    /// Faces collected for side B.
    pub faces_b: u64,
    /// The newest training job of the project.
    pub job: Option<JobSummary>,
    /// Step of the newest checkpoint, once one exists.
    pub checkpoint_step: Option<u64>,
    /// The project's model folder (what the swap effect's model param takes).
    pub model_dir: String,
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
    /// Answer to [`Request::CollectFrame`]: faces found and stored from that frame.
    Collected {
        /// Faces added.
        faces: u32,
    },
    /// Answer to [`Request::ProjectStatus`].
    Project(Box<ProjectReport>),
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
