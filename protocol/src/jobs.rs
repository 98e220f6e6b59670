//! Job descriptions and records: what the daemon persists and what clients see.

use faceswap_options::{
    BalanceSpace, Centering, ColorTransferMode, ImageFormat, LandmarkMask, MaskMode, MergeMode,
    OptimizerKind, Precision, SharpenKind, SortMethod,
};
use serde::{Deserialize, Serialize};

/// Identifies a job; allocated by the daemon, increasing, never reused within a data dir.
pub type JobId = u64;

/// What a job does: one variant per stage, each carrying its own job struct. New capabilities
/// add variants (a protocol version bump). Serialised as the struct-variants of protocol v7
/// were, so their job records still load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobSpec {
    /// [`ExtractFramesJob`].
    ExtractFrames(ExtractFramesJob),
    /// [`ExtractJob`].
    Extract(ExtractJob),
    /// [`TrainJob`].
    Train(TrainJob),
    /// [`ConvertJob`].
    Convert(ConvertJob),
    /// [`ToolJob`].
    Tool(ToolJob),
    /// [`XsegTrainJob`].
    XsegTrain(XsegTrainJob),
    /// [`ImportJob`].
    Import(ImportJob),
    /// [`AverageJob`].
    FacesetAverage(AverageJob),
}

/// Decode a video (or image folder) and write every `every_nth` frame as a PNG into
/// `output_dir` as `frame_NNNNNN.png` (faceswap's `effmpeg extract`). Resumable: frames
/// already written are not decoded to disk again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractFramesJob {
    /// Video file path.
    pub input: String,
    /// Output folder (created when missing).
    pub output_dir: String,
    /// Keep one frame in this many (1 = all).
    pub every_nth: u32,
}

/// Find, landmark and align faces in a video or image folder; write an alignments store and
/// aligned face PNGs into `output_dir` (faceswap/DFL "extract"). Resumable: frames already
/// in the store are skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractJob {
    /// Video file or image folder.
    pub input: String,
    /// Faceset folder.
    pub output_dir: String,
    /// Aligned face size in pixels.
    pub size: u32,
    /// Aligned face centering / face type.
    pub centering: Centering,
    /// Keep one frame in this many.
    pub every_nth: u32,
    /// Re-run landmarks on an aligned crop.
    pub second_pass: bool,
    /// Extra jittered landmark runs averaged in.
    pub refeed: u32,
    /// Smooth landmarks over time in videos (One-Euro per face).
    #[serde(default = "default_true")]
    pub smoothing: bool,
    /// At most this many faces per frame, the largest (DFL's max faces from image); 0: all.
    #[serde(default)]
    pub max_faces: u32,
}

/// Train a SAEHD swap model from faceset A (the identity to put in) and faceset B (the
/// faces to replace) into `model_dir`, until `settings.steps` optimiser steps are done.
/// Resumable: it continues from the newest checkpoint, bit-exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainJob {
    /// Faceset A folder (DFL "src").
    pub faceset_a: String,
    /// Faceset B folder (DFL "dst").
    pub faceset_b: String,
    /// Model folder (created; holds model.toml, checkpoints, previews, the loss log).
    pub model_dir: String,
    /// Architecture and training options (boxed: the other variants are small).
    pub settings: Box<TrainSettings>,
}

/// Swap the faces of a video (or image folder) with a trained model and write the result
/// (faceswap "convert", DFL "merge"): a video with the source's audio, or PNG/TIFF images.
/// The output appears under its final name only when complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvertJob {
    /// The destination video file or image folder (what `extract` read).
    pub input: String,
    /// The alignments store of that input (`alignments.fsppa`, or the faceset folder).
    pub alignments: String,
    /// The trained model folder.
    pub model_dir: String,
    /// A video file (.mp4, .mkv, .mov) or a folder for an image sequence.
    pub output: String,
    /// Merge and writer options (boxed: the other variants are small).
    pub settings: Box<ConvertSettings>,
}

/// A faceset clean-up tool (faceswap's sort and alignments tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolJob {
    /// Faceset folder.
    pub faceset: String,
    /// What to run.
    pub tool: ToolSpec,
}

/// Train (or resume) an XSeg model on the labelled faces of facesets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XsegTrainJob {
    /// Faceset folders with labelled faces.
    pub facesets: Vec<String>,
    /// XSeg model folder (created).
    pub model_dir: String,
    /// Options.
    pub settings: XsegSettings,
}

/// Bring work from faceswap or DeepFaceLab into a new faceset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportJob {
    /// What to read.
    pub source: ImportSource,
    /// The new faceset folder.
    pub out: String,
}

/// Where an import reads from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ImportSource {
    /// A faceswap alignments file and the video or image folder it describes.
    Fsa {
        /// The .fsa file.
        alignments: String,
        /// The video or image folder.
        source: String,
        /// Aligned face size.
        size: u32,
        /// Aligned face centering.
        centering: Centering,
    },
    /// A DeepFaceLab aligned folder (faces, landmarks, XSeg labels and masks).
    Dfl {
        /// The aligned folder.
        aligned: String,
    },
}

/// An average faceset (for pretraining): the mean of facesets' faces and jittered copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AverageJob {
    /// Faceset folders written by `extract`.
    pub inputs: Vec<String>,
    /// The new faceset folder.
    pub out: String,
    /// Faces to write.
    pub count: u32,
    /// Seed of the jitter.
    pub seed: u64,
}

/// A BiSeNet-FP mask to store with each face (faceswap's bisenet-fp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BisenetMask {
    /// The ONNX model; `None`: the daemon's `masks.bisenet_model`.
    pub model: Option<String>,
    /// Hair counts as face (or the config's `masks.bisenet_hair`).
    pub hair: bool,
    /// Ears count as face (or `masks.bisenet_ears`).
    pub ears: bool,
    /// Glasses count as face (or `masks.bisenet_glasses`).
    pub glasses: bool,
}

fn default_true() -> bool {
    true
}

/// The faceset tools the daemon runs as jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToolSpec {
    /// Sorted copies of the faces in `out`, or in `groups` folders.
    Sort {
        /// Method.
        by: SortMethod,
        /// Output folder.
        out: String,
        /// Group folders (1 = one sorted folder).
        groups: u32,
    },
    /// Remove from the alignments the faces whose files were deleted.
    RemoveFaces,
    /// Frames with boxes and landmarks drawn into `out`.
    Draw {
        /// The video or image folder.
        source: String,
        /// Output folder.
        out: String,
    },
    /// Frames of the source missing from the alignments.
    MissingFrames {
        /// The video or image folder.
        source: String,
    },
    /// Frames with several faces.
    MultiFaces,
    /// Frames without a face.
    NoFaces,
    /// Smooth each track's landmarks over time.
    Spatial,
    /// Store an XSeg mask with every face, predicted by a trained XSeg model.
    XsegApply {
        /// The XSeg model folder.
        model: String,
        /// The compute device (`None`: the daemon's `compute.device`).
        device: Option<String>,
    },
    /// Store landmark masks (and, when asked, a BiSeNet-FP mask) with every face.
    MaskGenerate {
        /// The landmark masks.
        kinds: Vec<LandmarkMask>,
        /// A BiSeNet-FP mask too (`None`: no BiSeNet, whatever the config says).
        bisenet: Option<BisenetMask>,
    },
    /// (Re)write the face files from the source at a size and centering.
    Extract {
        /// The video or image folder.
        source: String,
        /// Face size.
        size: u32,
        /// Centering.
        centering: Centering,
    },
}

impl ToolSpec {
    /// Short name for listings.
    pub fn name(&self) -> &'static str {
        match self {
            ToolSpec::Sort { .. } => "sort",
            ToolSpec::RemoveFaces => "remove-faces",
            ToolSpec::Draw { .. } => "draw",
            ToolSpec::MissingFrames { .. } => "missing-frames",
            ToolSpec::MultiFaces => "multi-faces",
            ToolSpec::NoFaces => "no-faces",
            ToolSpec::Spatial => "spatial",
            ToolSpec::Extract { .. } => "alignments-extract",
            ToolSpec::XsegApply { .. } => "xseg-apply",
            ToolSpec::MaskGenerate { .. } => "mask-generate",
        }
    }
}

/// XSeg training options (DFL's defaults: 256 px, base 32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XsegSettings {
    /// Input side of a new model (a multiple of 16).
    pub resolution: u32,
    /// First-level channels of a new model.
    pub base: u32,
    /// Train until the model has this many steps.
    pub steps: u64,
    /// Faces per step.
    pub batch: u32,
    /// Learning rate.
    pub lr: f64,
    /// Checkpoint every this many steps.
    pub save_every: u64,
    /// The compute device this job runs on (`cpu`, `cuda:1`, `vulkan`…); `None`: the daemon's
    /// `compute.device`.
    #[serde(default)]
    pub device: Option<String>,
}

impl Default for XsegSettings {
    fn default() -> Self {
        XsegSettings {
            resolution: 256,
            base: 32,
            steps: 10_000,
            batch: 8,
            lr: 1e-3,
            save_every: 500,
            device: None,
        }
    }
}

/// Merge options, named as DeepFaceLab's merger and faceswap's convert name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvertSettings {
    /// How the face is blended.
    pub mode: MergeMode,
    /// Which mask blends it.
    pub mask_mode: MaskMode,
    /// Colour transfer.
    pub color: ColorTransferMode,
    /// Colour statistics as DFL computes them (zeroed pixels outside the mask count).
    pub dfl_mask_statistics: bool,
    /// Manual balance colour space.
    pub balance_space: BalanceSpace,
    /// Manual balance per channel, percent.
    pub balance: [f32; 3],
    /// Manual contrast, percent.
    pub contrast: f32,
    /// Manual brightness, percent.
    pub brightness: f32,
    /// Erode (> 0) or dilate (< 0) the mask, −400…400.
    pub erode: i32,
    /// Blur the mask, 0…400.
    pub blur: u32,
    /// Output face scale, −50…50 percent.
    pub face_scale: i32,
    /// Sharpen (> 0) or soften (< 0), −100…100.
    pub sharpen: i32,
    /// Sharpening kernel.
    pub sharpen_kind: SharpenKind,
    /// Motion blur power, 0…100.
    pub motion_blur: u32,
    /// hist-match threshold, 0…255.
    pub hist_match_threshold: u8,
    /// hist-match inside the mask only.
    pub masked_hist_match: bool,
    /// Blend strength, 0…1.
    pub opacity: f32,
    /// Only these face indices of each frame (empty = every accepted face).
    pub faces: Vec<u32>,
    /// Only the faces of these tracks (people followed through a video; empty = every track).
    #[serde(default)]
    pub tracks: Vec<u32>,
    /// Only the track that looks most like this aligned face file of the person.
    #[serde(default)]
    pub reference: Option<String>,
    /// Inclusive frame ranges to convert (empty = all).
    pub frames: Vec<(u64, u64)>,
    /// Frames outside `frames` are written unchanged instead of left out.
    pub keep_unchanged: bool,
    /// Frames missing from the alignments pass through unchanged instead of failing.
    pub allow_missing_alignments: bool,
    /// Image-sequence format (video outputs ignore it).
    pub image_format: ImageFormat,
    /// Video encoder (FFmpeg name), e.g. libx264, libx265, mpeg4, ffv1.
    pub codec: String,
    /// Constant rate factor / quality (encoder-specific; libx264: 0…51).
    pub crf: u32,
    /// Output pixel format, e.g. yuv420p, yuv444p.
    pub pixel_format: String,
    /// Text drawn in the top-left corner of every frame (e.g. "SYNTHETIC"), or none.
    pub label: Option<String>,
    /// Project name written into the output's provenance tag.
    pub project: String,
    /// Also write a before/after PNG (source | result, side by side) of a frame from the
    /// middle of the input to this path.
    pub before_after: Option<String>,
    /// XSeg model folder for the XSeg mask modes.
    pub xseg_model: Option<String>,
    /// Which stored mask each frame uses with mask mode `stored`, e.g.
    /// `10-50: xseg; otherwise: bisenet-fp_face; fallback: components` (ranges inclusive).
    pub mask_rules: Option<String>,
    /// Seed for idt / sot.
    pub seed: u64,
    /// The compute device this job runs on (`cpu`, `cuda:1`, `vulkan`…); `None`: the daemon's
    /// `compute.device`.
    #[serde(default)]
    pub device: Option<String>,
}

impl Default for ConvertSettings {
    fn default() -> Self {
        ConvertSettings {
            mode: MergeMode::default(),
            mask_mode: MaskMode::default(),
            color: ColorTransferMode::default(),
            dfl_mask_statistics: false,
            balance_space: BalanceSpace::default(),
            balance: [0.0; 3],
            contrast: 0.0,
            brightness: 0.0,
            erode: 0,
            blur: 0,
            face_scale: 0,
            sharpen: 0,
            sharpen_kind: SharpenKind::default(),
            motion_blur: 0,
            hist_match_threshold: 238,
            masked_hist_match: true,
            opacity: 1.0,
            faces: Vec::new(),
            tracks: Vec::new(),
            reference: None,
            frames: Vec::new(),
            keep_unchanged: false,
            allow_missing_alignments: false,
            image_format: ImageFormat::default(),
            codec: "libx264".into(),
            crf: 18,
            pixel_format: "yuv420p".into(),
            label: None,
            project: String::new(),
            before_after: None,
            xseg_model: None,
            mask_rules: None,
            seed: 0,
            device: None,
        }
    }
}

/// SAEHD training options, named as DeepFaceLab names them. The architecture fields are fixed
/// when a model is created; the rest may change on each run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// `df` or `liae` with options `u`, `d`, `t` (e.g. `liae-ud`), or `phaze-a`,
    /// `phaze-a:PRESET`, `phaze-a:FILE.toml`.
    pub archi: String,
    /// Face resolution in pixels (multiple of 16; of 32 with `d`); 0 for a Phaze-A preset's own.
    pub resolution: u32,
    /// Autoencoder bottleneck width.
    pub ae_dims: u32,
    /// Encoder width.
    pub e_dims: u32,
    /// Decoder width.
    pub d_dims: u32,
    /// Learned-mask decoder width.
    pub d_mask_dims: u32,
    /// Faces per side per step.
    pub batch: u32,
    /// Split each batch into this many micro-batches (gradient accumulation).
    pub micro_batches: u32,
    /// Train until the model has taken this many steps in all.
    pub steps: u64,
    /// Seed of the weights and of every random draw.
    pub seed: u64,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warmup steps.
    pub warmup: u64,
    /// Cosine annealing cycle length in steps (0 = constant after warmup).
    pub cosine_cycle: u64,
    /// Each cosine cycle is this many times longer than the last.
    pub cosine_t_mul: f64,
    /// Learning-rate dropout (AdaBelief only).
    pub lr_dropout: bool,
    /// Clip gradients to this global norm (0 = off; DFL clipgrad = 1).
    pub clip_norm: f32,
    /// Image loss only inside the face mask.
    pub masked_training: bool,
    /// Which stored mask each face trains with, per frame range (`10-50: xseg; otherwise:
    /// components; fallback: extended`, the rules convert's `stored` mask mode reads); faces
    /// the rules give none, and every face when unset, train with the landmark hull.
    #[serde(default)]
    pub mask_rules: Option<String>,
    /// faceswap-style image losses with weights (`ms_ssim`, `gmsd`, `mae`, `mse`, `logcosh`,
    /// `ffl`, `laploss`, `ssim`), up to four, replacing DFL's DSSIM + MSE term; empty = DFL's.
    #[serde(default)]
    pub losses: Vec<(String, f32)>,
    /// Pretraining (faceswap/Faceswap++): no random warp, flips on both sides, no LRD,
    /// uniform yaw — on any faceset (pass it as both A and B).
    #[serde(default)]
    pub pretrain: bool,
    /// A new model takes `load_parts` from this pretrained model folder (same architecture).
    #[serde(default)]
    pub pretrained: Option<String>,
    /// Parts to take: `encoder`, `inter`, `decoder_a`, `decoder_b` (default: the encoder).
    #[serde(default)]
    pub load_parts: Vec<String>,
    /// The taken parts stay frozen for this many steps (0 = never frozen).
    #[serde(default)]
    pub freeze_steps: u64,
    /// faceswap's autoclip (global-norm clipping at the 10th percentile of past norms) instead
    /// of a fixed `clip_norm`.
    #[serde(default)]
    pub autoclip: bool,
    /// Compute precision: f32, or mixed f16 / bf16 (f32 master weights, loss scaling).
    /// Protocol v7 wrote `""` for f32.
    #[serde(default, deserialize_with = "faceswap_options::empty_as_default")]
    pub precision: Precision,
    /// Eyes-and-mouth priority.
    pub eyes_mouth_prio: bool,
    /// Train the learned mask.
    pub learn_mask: bool,
    /// Random warp of the inputs (off for pretraining).
    pub random_warp: bool,
    /// Random flips of side A.
    pub flip_a: bool,
    /// Random flips of side B.
    pub flip_b: bool,
    /// Random HSV shift of side A, 0–0.3.
    pub hsv_power: f64,
    /// Sample side A's yaw uniformly.
    pub uniform_yaw: bool,
    /// Write a checkpoint every this many steps (and always at the end or on stop).
    pub save_every: u64,
    /// Write a preview every this many steps (0 = only at the end).
    pub preview_every: u64,
    /// Copy the checkpoint into `backups/` every this many steps (0 = never).
    pub backup_every: u64,
    /// Backups kept (the oldest go first).
    pub keep_backups: u32,
    /// The compute device this job runs on (`cpu`, `cuda:1`, `vulkan`…); `None`: the daemon's
    /// `compute.device`.
    #[serde(default)]
    pub device: Option<String>,
}

impl Default for TrainSettings {
    /// DFL SAEHD's defaults, except a 128 px `df` model with smaller dims that trains on a CPU.
    fn default() -> Self {
        TrainSettings {
            archi: "df".into(),
            resolution: 128,
            ae_dims: 256,
            e_dims: 64,
            d_dims: 64,
            d_mask_dims: 22,
            batch: 8,
            micro_batches: 1,
            steps: 100_000,
            seed: 0,
            optimizer: OptimizerKind::default(),
            lr: 5e-5,
            warmup: 250,
            cosine_cycle: 0,
            cosine_t_mul: 1.0,
            lr_dropout: false,
            clip_norm: 0.0,
            masked_training: true,
            mask_rules: None,
            losses: Vec::new(),
            pretrain: false,
            pretrained: None,
            load_parts: Vec::new(),
            freeze_steps: 0,
            autoclip: false,
            precision: Precision::default(),
            eyes_mouth_prio: false,
            learn_mask: true,
            random_warp: true,
            flip_a: false,
            flip_b: false,
            hsv_power: 0.0,
            uniform_yaw: false,
            save_every: 500,
            preview_every: 500,
            backup_every: 10_000,
            keep_backups: 5,
            device: None,
        }
    }
}

impl JobSpec {
    /// Short kind name for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::ExtractFrames(_) => "extract-frames",
            JobSpec::Extract(_) => "extract",
            JobSpec::Train(_) => "train",
            JobSpec::Convert(_) => "convert",
            JobSpec::XsegTrain(_) => "xseg-train",
            JobSpec::Tool(job) => job.tool.name(),
            JobSpec::Import(_) => "import",
            JobSpec::FacesetAverage(_) => "faceset-average",
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The compute device it last ran on (`cuda:0`, `cpu`…), once it has chosen one.
    #[serde(default)]
    pub device: Option<String>,
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
    /// [`JobRecord::device`].
    pub device: Option<String>,
}

impl From<&JobRecord> for JobSummary {
    fn from(r: &JobRecord) -> Self {
        JobSummary {
            id: r.id,
            kind: r.spec.kind().to_string(),
            state: r.state,
            progress: r.progress.clone(),
            device: r.device.clone(),
        }
    }
}
