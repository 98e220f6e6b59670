//! Job descriptions and records: what the daemon persists and what clients see.

use serde::{Deserialize, Serialize};

/// Identifies a job; allocated by the daemon, increasing, never reused within a data dir.
pub type JobId = u64;

/// What a job does. New capabilities add variants (a protocol version bump).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobSpec {
    /// Decode a video (or image folder) and write every `every_nth` frame as a PNG into
    /// `output_dir` as `frame_NNNNNN.png` (faceswap's `effmpeg extract`). Resumable: frames
    /// already written are not decoded to disk again.
    ExtractFrames {
        /// Video file path.
        input: String,
        /// Output folder (created when missing).
        output_dir: String,
        /// Keep one frame in this many (1 = all).
        every_nth: u32,
    },
    /// Find, landmark and align faces in a video or image folder; write an alignments store and
    /// aligned face PNGs into `output_dir` (faceswap/DFL "extract"). Resumable: frames already
    /// in the store are skipped.
    Extract {
        /// Video file or image folder.
        input: String,
        /// Faceset folder.
        output_dir: String,
        /// Aligned face size in pixels.
        size: u32,
        /// `legacy`, `face`, `head`, `f`, `wf` or `dfl-head`.
        centering: String,
        /// Keep one frame in this many.
        every_nth: u32,
        /// Re-run landmarks on an aligned crop.
        second_pass: bool,
        /// Extra jittered landmark runs averaged in.
        refeed: u32,
    },
}

impl JobSpec {
    /// Short kind name for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::ExtractFrames { .. } => "extract-frames",
            JobSpec::Extract { .. } => "extract",
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// Finished successfully.
    Done,
    /// Stopped by an error (see the record's `error`); can be resumed.
    Failed,
    /// Cancelled by the user; can be resumed.
    Cancelled,
    /// The daemon stopped (crash, kill, shutdown) while it ran; can be resumed.
    Interrupted,
}

impl JobState {
    /// True for states from which `resume` re-queues the job.
    pub fn is_resumable(self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Cancelled | JobState::Interrupted
        )
    }

    /// True when the job will not change again without a resume.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// Lower-case name for listings.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }
}

/// How far a job has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Units done (frames, steps…).
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// What the job is doing now.
    pub message: String,
}

/// A job as the daemon stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// What it does.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// How far it came.
    pub progress: Progress,
    /// Unix seconds when submitted.
    pub created_unix: u64,
    /// Unix seconds of the last state change.
    pub updated_unix: u64,
    /// How many times it was resumed.
    pub resumes: u32,
    /// The error that failed it, if any.
    pub error: Option<String>,
    /// The last lines of its log (bounded by the daemon's `jobs.log_tail_lines`).
    pub log_tail: Vec<String>,
}

/// One line of a job listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// Its id.
    pub id: JobId,
    /// [`JobSpec::kind`].
    pub kind: String,
    /// Where it is.
    pub state: JobState,
    /// How far it came.
    pub progress: Progress,
}

impl From<&JobRecord> for JobSummary {
    fn from(r: &JobRecord) -> Self {
        JobSummary {
            id: r.id,
            kind: r.spec.kind().to_string(),
            state: r.state,
            progress: r.progress.clone(),
        }
    }
}
