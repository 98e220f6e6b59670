//! The `faceswapd` command line (clap derive). `serve` runs the service; everything else is a
//! client of it, or a local tool (config, doctor, assets).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use faceswap_options::{
    BalanceSpace, Centering, ColorTransferMode, ImageFormat, MaskMode, MergeMode, OptimizerKind,
    Precision, SharpenKind, SortMethod,
};
use faceswap_protocol::{
    Connection, JobId, JobRecord, JobSpec, JobState, Request, Response, SocketPath,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::assets::{ASSETS, Asset, AssetKind, Obtained};
use crate::cli_output::{out, outln};
use crate::client::EXIT_ALREADY_RUNNING;
use crate::config::{Config, LoadedConfig};
use crate::paths::Dirs;
use faceswap_protocol::{
    ConvertJob, ExtractFramesJob, ExtractJob, ToolJob, TrainJob, XsegTrainJob,
};

/// How long `shutdown` waits for the daemon to exit (running jobs save a checkpoint first).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(120);

/// Faceswap++ daemon and command line.
#[derive(Debug, Parser)]
#[command(name = "faceswapd", version, about, long_about = None)]
pub struct Cli {
    /// Socket of the daemon (default: per-user runtime dir; env FACESWAPD_SOCKET).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Do not start the daemon when it is not running.
    #[arg(long, global = true)]
    pub no_autostart: bool,
    /// More log output on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (what the service units run).
    Serve,
    /// Show the running daemon's status.
    Status,
    /// Stop the running daemon (running jobs become interrupted, resumable).
    Shutdown,
    /// List, inspect, cancel, resume and wait for jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Find, landmark and align faces in a video or image folder (a resumable daemon job).
    Extract(ExtractArgs),
    /// Train a SAEHD or Phaze-A swap model from two facesets (a resumable daemon job; run it
    /// again with a higher --steps to go on).
    Train(Box<TrainArgs>),
    /// Print a shipped Phaze-A preset as TOML, a starting point for `--archi phaze-a:FILE.toml`
    /// (no name: list them).
    PhazeAPreset {
        /// dfl-saehd-df, dfl-saehd-liae, iae or fspp-256.
        name: Option<String>,
        /// Convert a faceswap Phaze-A preset (its GUI's JSON) instead; notes on what does not
        /// carry over are printed as comments.
        #[arg(long, conflicts_with = "name")]
        from_faceswap: Option<PathBuf>,
    },
    /// Swap the faces of a video or image folder with a trained model and write the result
    /// (faceswap "convert", DFL "merge"): a video with the source's audio, or PNG/TIFF images.
    Convert(Box<ConvertArgs>),
    /// Work on video frames.
    #[command(subcommand)]
    Frames(FramesCommand),
    /// Make facesets.
    #[command(subcommand)]
    Faceset(FacesetCommand),
    /// Face masks in a faceset's alignments.
    #[command(subcommand)]
    Mask(MaskCommand),
    /// XSeg (DeepFaceLab): train on labelled faces, apply to facesets, manage labels.
    #[command(subcommand)]
    Xseg(XsegCommand),
    /// Show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check every runtime dependency and say how to fix what is missing.
    Doctor,
    /// Measure each GPU backend: does training follow the CPU's, and training-step time and
    /// peak device memory of SAEHD and Phaze-A (what installers/gpu-check.sh runs).
    GpuCheck(crate::gpu_check::GpuCheckArgs),
    /// Test media and model files (pinned by SHA-256).
    #[command(subcommand)]
    Assets(AssetsCommand),
    /// Bring work from faceswap (.fsa alignments) or DeepFaceLab (aligned faces) into a new
    /// faceset.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Work on a faceset's alignments.
    #[command(subcommand)]
    Alignments(AlignmentsCommand),
    /// Sort a faceset's faces (faceswap's sort tool) into a sorted copy or groups.
    Sort {
        /// Faceset folder.
        faceset: PathBuf,
        /// How to order the faces.
        #[arg(long, value_enum, ignore_case = true, default_value_t = SortMethod::Face)]
        by: SortMethod,
        /// Where the sorted copies go (the faceset's own files are not renamed).
        #[arg(short, long)]
        out: PathBuf,
        /// Split the order into this many group folders (1 = one sorted folder).
        #[arg(long, default_value_t = 1)]
        groups: usize,
    },
    /// Run the daemon as a per-user background service (systemd user unit, launchd agent,
    /// logon task).
    #[command(subcommand)]
    Service(ServiceCommand),
}

/// `faceswapd import …`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A faceswap alignments file, with the video or image folder it was made from.
    Fsa {
        /// The .fsa file.
        alignments: PathBuf,
        /// The video or image folder the alignments describe.
        source: PathBuf,
        /// New faceset folder.
        #[arg(short, long)]
        out: PathBuf,
        /// Aligned face size.
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Centering of the aligned faces.
        #[arg(long, value_enum, ignore_case = true, default_value_t = Centering::Face)]
        centering: Centering,
    },
    /// A DeepFaceLab aligned folder (faces, landmarks, XSeg labels and masks).
    Dfl {
        /// The aligned folder (workspace/data_src/aligned or data_dst/aligned).
        aligned: PathBuf,
        /// New faceset folder.
        #[arg(short, long)]
        out: PathBuf,
    },
}

/// `faceswapd alignments …`.
#[derive(Debug, Subcommand)]
pub enum AlignmentsCommand {
    /// (Re)write the aligned face files of a faceset from its source frames, at a size and
    /// centering (faceswap's alignments "extract").
    Extract {
        /// Faceset folder.
        faceset: PathBuf,
        /// The video or image folder its alignments describe.
        #[arg(long)]
        source: PathBuf,
        /// Aligned face size.
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Centering.
        #[arg(long, value_enum, ignore_case = true, default_value_t = Centering::Face)]
        centering: Centering,
    },
    /// Each track of a video faceset: frames, lost ranges, low-confidence frames, jitter.
    Tracks {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Remove from the alignments the faces whose files you deleted from faces/.
    RemoveFaces {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Frames with each face's box and landmarks drawn, for review.
    Draw {
        /// Faceset folder.
        faceset: PathBuf,
        /// The video or image folder its alignments describe.
        #[arg(long)]
        source: PathBuf,
        /// Output folder.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Frames of the source that are not in the alignments.
    MissingFrames {
        /// Faceset folder.
        faceset: PathBuf,
        /// The video or image folder.
        #[arg(long)]
        source: PathBuf,
    },
    /// Frames with more than one face.
    MultiFaces {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Frames without a face.
    NoFaces {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Smooth each track's landmarks over time (then rewrite the faces with `extract`).
    Spatial {
        /// Faceset folder.
        faceset: PathBuf,
    },
}

/// `faceswapd service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Install the service for this faceswapd (or --exec) and start it.
    Install {
        /// The faceswapd the service runs (default: this one).
        #[arg(long)]
        exec: Option<PathBuf>,
    },
    /// Stop the service and remove it.
    Uninstall,
    /// What the service manager says about it.
    Status,
    /// Print this platform's service definition (what `install` writes) for --exec.
    Definition {
        /// The faceswapd the service runs (default: this one).
        #[arg(long)]
        exec: Option<PathBuf>,
    },
}

/// `faceswapd jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// All jobs.
    List,
    /// One job in full, with its log tail.
    Show {
        /// Job id.
        id: JobId,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// Job id.
        id: JobId,
    },
    /// Resume a failed, cancelled or interrupted job.
    Resume {
        /// Job id.
        id: JobId,
        /// Return at once instead of following progress.
        #[arg(long)]
        detach: bool,
    },
    /// Follow a job until it ends.
    Wait {
        /// Job id.
        id: JobId,
    },
}

/// `faceswapd xseg …`.
#[derive(Debug, Subcommand)]
pub enum XsegCommand {
    /// Train (or resume) an XSeg model on the labelled faces of one or more facesets.
    Train(XsegTrainArgs),
    /// Store an `xseg` mask for every face of a faceset.
    Apply {
        /// Faceset folder.
        faceset: PathBuf,
        /// XSeg model folder.
        #[arg(long)]
        model: PathBuf,
        /// Compute device: auto, cpu, cuda[:N], vulkan[:N] or wgpu[:N] (default: the config's
        /// compute.device).
        #[arg(long, value_parser = parse_device)]
        device: Option<String>,
    },
    /// Copy the labelled faces of a faceset into a folder.
    FetchLabelled {
        /// Faceset folder.
        faceset: PathBuf,
        /// Where to copy them.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Remove every label from a faceset.
    RemoveLabels {
        /// Faceset folder.
        faceset: PathBuf,
    },
    /// Bring the XSeg labels (and stored XSeg masks) of DeepFaceLab aligned faces into the
    /// matching faces of a faceset (extract the same frames first).
    ImportDfl {
        /// DFL aligned folder (workspace/data_dst/aligned).
        dfl_aligned: PathBuf,
        /// Faceset folder whose faces receive the labels.
        faceset: PathBuf,
    },
}

/// Arguments of `xseg train`.
#[derive(Debug, Args)]
pub struct XsegTrainArgs {
    /// Faceset folders with labelled faces.
    #[arg(required = true)]
    pub facesets: Vec<PathBuf>,
    /// XSeg model folder (created).
    #[arg(long)]
    pub model: PathBuf,
    /// Input side of a new model.
    #[arg(long, default_value_t = 256)]
    pub resolution: u32,
    /// First-level channels of a new model.
    #[arg(long, default_value_t = 32)]
    pub base: u32,
    /// Train until the model has this many steps.
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// Faces per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 500)]
    pub save_every: u64,
    /// Compute device for this job: auto, cpu, cuda[:N], vulkan[:N] or wgpu[:N] (default: the
    /// config's compute.device).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<String>,
    /// Queue the job and return.
    #[arg(long)]
    pub detach: bool,
}

/// `faceswapd mask …`.
#[derive(Debug, Subcommand)]
pub enum MaskCommand {
    /// Add landmark masks (faceswap's components / extended, or the hull) to every face.
    Generate(MaskGenerateArgs),
    /// A review sheet: the aligned faces with the mask the rules choose tinted over them.
    Review(MaskReviewArgs),
}

/// Arguments of `mask generate`.
#[derive(Debug, Args)]
pub struct MaskGenerateArgs {
    /// A faceset folder written by `extract`.
    pub faceset: PathBuf,
    /// Which masks: components, extended, hull.
    #[arg(long, value_delimiter = ',', default_values_t = ["components".to_string(), "extended".to_string()])]
    pub kinds: Vec<String>,
    /// Also a BiSeNet-FP mask from this ONNX file (faceswap's bisenet-fp; see the docs for the
    /// expected signature). Default: the config's `masks.bisenet_model`, if set.
    #[arg(long)]
    pub bisenet: Option<PathBuf>,
    /// Do not run BiSeNet-FP even when the config names a model.
    #[arg(long, conflicts_with = "bisenet")]
    pub no_bisenet: bool,
    /// BiSeNet: hair counts as face (stored as bisenet-fp_head); also `masks.bisenet_hair`.
    #[arg(long)]
    pub hair: bool,
    /// BiSeNet: ears count as face; also `masks.bisenet_ears`.
    #[arg(long)]
    pub ears: bool,
    /// BiSeNet: glasses count as face; also `masks.bisenet_glasses` (on by default).
    #[arg(long)]
    pub glasses: bool,
}

impl MaskGenerateArgs {
    /// The BiSeNet-FP model and parts to run: the flags, else the config's `[masks]`.
    fn bisenet_choice(
        &self,
        cfg: &crate::config::MasksConfig,
    ) -> Option<(PathBuf, faceswap_models::bisenet::BiSeNetParts)> {
        if self.no_bisenet {
            return None;
        }
        let model = self.bisenet.clone().or_else(|| {
            (!cfg.bisenet_model.is_empty()).then(|| PathBuf::from(&cfg.bisenet_model))
        })?;
        let parts = faceswap_models::bisenet::BiSeNetParts {
            glasses: self.glasses || cfg.bisenet_glasses,
            ears: self.ears || cfg.bisenet_ears,
            hair: self.hair || cfg.bisenet_hair,
        };
        Some((model, parts))
    }
}

/// Arguments of `mask review`.
#[derive(Debug, Args)]
pub struct MaskReviewArgs {
    /// A faceset folder written by `extract`.
    pub faceset: PathBuf,
    /// Which mask per frame, e.g. "10-50: xseg; otherwise: extended; fallback: components"
    /// (ranges inclusive).
    #[arg(long, default_value = "otherwise: components")]
    pub rules: String,
    /// The PNG to write.
    #[arg(short, long)]
    pub out: PathBuf,
    /// At most this many faces.
    #[arg(long, default_value_t = 64)]
    pub max: usize,
}

/// `faceswapd faceset …`.
#[derive(Debug, Subcommand)]
pub enum FacesetCommand {
    /// A person who does not exist: the average of the faces of one or more facesets (made
    /// by extract with one --size and --centering), written with jittered copies.
    Average(AverageArgs),
}

/// Arguments of `faceset average`.
#[derive(Debug, Args)]
pub struct AverageArgs {
    /// Faceset folders written by `extract`.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output faceset folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Faces to write: the average and jittered copies of it.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Seed of the jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `faceswapd frames …`.
#[derive(Debug, Subcommand)]
pub enum FramesCommand {
    /// Write the frames of a video as PNG files (a resumable daemon job).
    Extract(ExtractFramesArgs),
}

/// Arguments of `frames extract`.
#[derive(Debug, Args)]
pub struct ExtractFramesArgs {
    /// Video file.
    pub input: PathBuf,
    /// Output folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Keep one frame in N.
    #[arg(long, default_value_t = 1)]
    pub every: u32,
    /// Return once queued instead of following progress.
    #[arg(long)]
    pub detach: bool,
}

/// Arguments of `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Video file or folder of images.
    pub input: PathBuf,
    /// Faceset folder for aligned faces and the alignments store.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Aligned face size in pixels.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Centering / face type: legacy, face, head (faceswap); f, wf, dfl-head (DFL).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Centering::Legacy)]
    pub centering: Centering,
    /// Keep one frame in N.
    #[arg(long, default_value_t = 1)]
    pub every: u32,
    /// Extra jittered landmark runs averaged in (faceswap re-feed).
    #[arg(long, default_value_t = 0)]
    pub refeed: u32,
    /// Skip the second landmark pass.
    #[arg(long)]
    pub no_second_pass: bool,
    /// Videos: keep the raw landmarks of every frame (no temporal smoothing).
    #[arg(long)]
    pub no_smoothing: bool,
    /// At most this many faces per frame, the largest (DFL's max faces from image); 0: all.
    /// Tracking a video with this many faces skips the periodic re-detection.
    #[arg(long, default_value_t = 0)]
    pub max_faces: u32,
    /// Return once queued instead of following progress.
    #[arg(long)]
    pub detach: bool,
}

/// Arguments of `convert`, named as DeepFaceLab's merger and faceswap's convert options.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The video file or image folder whose faces are replaced (what `extract` read).
    pub input: PathBuf,
    /// Its faceset folder (or alignments.fsppa) written by `extract`.
    #[arg(long)]
    pub alignments: PathBuf,
    /// The trained model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Output: a video file (.mp4, .mkv, .mov) or a folder for images.
    #[arg(long)]
    pub out: PathBuf,
    /// Merge mode (DFL's).
    #[arg(long, value_enum, ignore_case = true, default_value_t = MergeMode::default())]
    pub mode: MergeMode,
    /// Mask the face is blended through (the XSeg modes need --xseg-model).
    #[arg(long, value_enum, ignore_case = true, default_value_t = MaskMode::default())]
    pub mask_mode: MaskMode,
    /// Colour transfer.
    #[arg(long, value_enum, ignore_case = true, default_value_t = ColorTransferMode::default())]
    pub color: ColorTransferMode,
    /// Colour statistics as DFL computes them (pixels outside the mask count as black).
    #[arg(long)]
    pub dfl_mask_statistics: bool,
    /// Manual balance colour space.
    #[arg(long, value_enum, ignore_case = true, default_value_t = BalanceSpace::default())]
    pub balance_space: BalanceSpace,
    /// Manual balance, three percentages for the space's channels (e.g. 0,5,-5).
    #[arg(long, value_delimiter = ',', num_args = 3, default_values_t = [0.0, 0.0, 0.0], allow_negative_numbers = true)]
    pub balance: Vec<f32>,
    /// Manual contrast, percent.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub contrast: f32,
    /// Manual brightness, percent.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub brightness: f32,
    /// Erode (> 0) or dilate (< 0) the mask, −400…400.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub erode: i32,
    /// Blur the mask, 0…400.
    #[arg(long, default_value_t = 0)]
    pub blur: u32,
    /// Output face scale, −50…50 percent.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub face_scale: i32,
    /// Sharpen (> 0) or soften (< 0), −100…100.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub sharpen: i32,
    /// Sharpen kernel.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SharpenKind::default())]
    pub sharpen_kind: SharpenKind,
    /// Motion blur power, 0…100.
    #[arg(long, default_value_t = 0)]
    pub motion_blur: u32,
    /// hist-match threshold, 0…255.
    #[arg(long, default_value_t = 238)]
    pub hist_match_threshold: u8,
    /// Blend strength, 0…1.
    #[arg(long, default_value_t = 1.0)]
    pub opacity: f32,
    /// Only these face indices of each frame (comma-separated; default every accepted face).
    #[arg(long, value_delimiter = ',')]
    pub faces: Vec<u32>,
    /// Only the faces of these tracks: the people extraction followed through the video (its
    /// summary lists them; comma-separated; default every track).
    #[arg(long, value_delimiter = ',')]
    pub tracks: Vec<u32>,
    /// Only the person who looks like this aligned face file (one of their faces from any
    /// faceset of the same centering): picks the best-matching track.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Frame ranges to convert, inclusive (e.g. 10-50,100-200); default all.
    #[arg(long, value_delimiter = ',')]
    pub frames: Vec<String>,
    /// Write frames outside --frames unchanged instead of leaving them out.
    #[arg(long)]
    pub keep_unchanged: bool,
    /// Pass frames missing from the alignments through unchanged instead of failing.
    #[arg(long)]
    pub allow_missing_alignments: bool,
    /// Image format for folder outputs.
    #[arg(long, value_enum, ignore_case = true, default_value_t = ImageFormat::default())]
    pub image_format: ImageFormat,
    /// Video encoder (FFmpeg name): libx264, libx265, mpeg4, ffv1, …
    #[arg(long, default_value = "libx264")]
    pub codec: String,
    /// Quality: CRF for x264/x265 (lower is better), qscale for mpeg4.
    #[arg(long, default_value_t = 18)]
    pub crf: u32,
    /// Output pixel format (yuv420p plays everywhere).
    #[arg(long, default_value = "yuv420p")]
    pub pixel_format: String,
    /// Text drawn in the top-left corner of every frame, e.g. "SYNTHETIC".
    #[arg(long)]
    pub label: Option<String>,
    /// Project name for the output's provenance tag.
    #[arg(long, default_value = "")]
    pub project: String,
    /// Also write a before/after PNG of a frame from the middle of the input here.
    #[arg(long)]
    pub before_after: Option<PathBuf>,
    /// XSeg model folder, for the XSeg mask modes.
    #[arg(long)]
    pub xseg_model: Option<PathBuf>,
    /// With --mask-mode stored: which stored mask each frame uses, e.g.
    /// "10-50: xseg; otherwise: bisenet-fp_face; fallback: components" (ranges inclusive).
    #[arg(long)]
    pub mask_rules: Option<String>,
    /// Compute device for this job: auto, cpu, cuda[:N], vulkan[:N] or wgpu[:N] (default: the
    /// config's compute.device).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<String>,
    /// Queue the job and return.
    #[arg(long)]
    pub detach: bool,
}

impl ConvertArgs {
    fn settings(&self) -> anyhow::Result<faceswap_protocol::ConvertSettings> {
        let mut frames = Vec::new();
        for r in &self.frames {
            let parse = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .with_context(|| format!("frame range {r:?}: {v:?} is not a frame number"))
            };
            let (a, b) = match r.split_once('-') {
                Some((a, b)) => (parse(a)?, parse(b)?),
                None => (parse(r)?, parse(r)?),
            };
            if a > b {
                bail!("frame range {r:?} ends before it starts");
            }
            frames.push((a, b));
        }
        let balance = [
            self.balance.first().copied().unwrap_or(0.0),
            self.balance.get(1).copied().unwrap_or(0.0),
            self.balance.get(2).copied().unwrap_or(0.0),
        ];
        Ok(faceswap_protocol::ConvertSettings {
            mode: self.mode,
            mask_mode: self.mask_mode,
            color: self.color,
            dfl_mask_statistics: self.dfl_mask_statistics,
            balance_space: self.balance_space,
            balance,
            contrast: self.contrast,
            brightness: self.brightness,
            erode: self.erode,
            blur: self.blur,
            face_scale: self.face_scale,
            sharpen: self.sharpen,
            sharpen_kind: self.sharpen_kind,
            motion_blur: self.motion_blur,
            hist_match_threshold: self.hist_match_threshold,
            masked_hist_match: true,
            opacity: self.opacity,
            faces: self.faces.clone(),
            tracks: self.tracks.clone(),
            reference: self
                .reference
                .as_ref()
                .map(|p| absolute(p).map(|p| p.display().to_string()))
                .transpose()?,
            frames,
            keep_unchanged: self.keep_unchanged,
            allow_missing_alignments: self.allow_missing_alignments,
            image_format: self.image_format,
            codec: self.codec.clone(),
            crf: self.crf,
            pixel_format: self.pixel_format.clone(),
            label: self.label.clone(),
            project: self.project.clone(),
            before_after: None,
            xseg_model: None,
            mask_rules: self.mask_rules.clone(),
            seed: 0,
            device: self.device.clone(),
        })
    }
}

/// Arguments of `train`, named as DeepFaceLab's SAEHD options.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Faceset A: the identity to put in (DFL "src"), as written by `extract`.
    #[arg(long)]
    pub a: PathBuf,
    /// Faceset B: the faces to replace (DFL "dst").
    #[arg(long)]
    pub b: PathBuf,
    /// Model folder (created): model.toml, checkpoints, previews, loss.csv.
    #[arg(long)]
    pub model: PathBuf,
    /// df or liae, with u/d/t options (e.g. liae-ud), or Phaze-A: `phaze-a` (faceswap's
    /// defaults), `phaze-a:PRESET` (dfl-saehd-df, dfl-saehd-liae, iae, fspp-256) or
    /// `phaze-a:FILE.toml`. Fixed when the model is created.
    #[arg(long, default_value = "df")]
    pub archi: String,
    /// Face resolution (multiple of 16; 32 with d). Fixed at creation. Default: 128 for SAEHD,
    /// the preset's for Phaze-A.
    #[arg(long)]
    pub resolution: Option<u32>,
    /// Autoencoder dims. Fixed at creation.
    #[arg(long, default_value_t = 256)]
    pub ae_dims: u32,
    /// Encoder dims. Fixed at creation.
    #[arg(long, default_value_t = 64)]
    pub e_dims: u32,
    /// Decoder dims. Fixed at creation.
    #[arg(long, default_value_t = 64)]
    pub d_dims: u32,
    /// Mask decoder dims. Fixed at creation.
    #[arg(long, default_value_t = 22)]
    pub d_mask_dims: u32,
    /// Faces per side per step.
    #[arg(long, default_value_t = 8)]
    pub batch: u32,
    /// Micro-batches per step (gradient accumulation: less memory, same update).
    #[arg(long, default_value_t = 1)]
    pub micro_batches: u32,
    /// Train until the model has this many steps in all.
    #[arg(long, default_value_t = 100_000)]
    pub steps: u64,
    /// Seed of a new model's weights and every random draw (kept in model.toml).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The optimiser: adabelief is DFL's; adam, adamw, rmsprop and lion faceswap's.
    #[arg(long, value_enum, ignore_case = true, default_value_t = OptimizerKind::default())]
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 250)]
    pub warmup: u64,
    /// Cosine annealing cycle in steps (0 = constant).
    #[arg(long, default_value_t = 0)]
    pub cosine_cycle: u64,
    /// Each cosine cycle this many times longer than the last.
    #[arg(long, default_value_t = 1.0)]
    pub cosine_t_mul: f64,
    /// Learning-rate dropout (AdaBelief).
    #[arg(long)]
    pub lr_dropout: bool,
    /// Clip gradients to this global norm (0 = off; DFL clipgrad is 1).
    #[arg(long, default_value_t = 0.0)]
    pub clip_norm: f32,
    /// Count the image loss over the whole crop, not only the face mask.
    #[arg(long)]
    pub no_masked_training: bool,
    /// Train each face with the stored mask these rules pick for its frame, e.g.
    /// "10-50: xseg; otherwise: extended; fallback: components" (inclusive ranges; faces the
    /// rules give no mask use the landmark hull).
    #[arg(long)]
    pub mask_rules: Option<String>,
    /// faceswap-style image loss `name:weight` (ssim, ms_ssim, gmsd, mae, mse, logcosh, ffl,
    /// laploss); repeat up to four times. Replaces DFL's DSSIM + MSE term.
    #[arg(long = "loss", value_parser = parse_loss)]
    pub losses: Vec<(String, f32)>,
    /// Pretraining: no random warp, flips on both sides, no LRD, uniform yaw (give the
    /// pretraining faceset as both --a and --b).
    #[arg(long)]
    pub pretrain: bool,
    /// A new model takes --load-parts from this pretrained model folder.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Parts to take from --pretrained: encoder, inter, decoder_a, decoder_b (default encoder).
    #[arg(long, value_delimiter = ',')]
    pub load_parts: Vec<String>,
    /// Keep the taken parts frozen for this many steps.
    #[arg(long, default_value_t = 0)]
    pub freeze_steps: u64,
    /// faceswap's autoclip: clip gradients at the 10th percentile of the global norms so far.
    #[arg(long, conflicts_with = "clip_norm")]
    pub autoclip: bool,
    /// Compute precision: f32, or mixed f16 / bf16 (half-precision compute, f32 master weights,
    /// dynamic loss scaling; for GPUs with fast half precision).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Precision::default())]
    pub precision: Precision,
    /// Eyes-and-mouth priority.
    #[arg(long)]
    pub eyes_mouth_prio: bool,
    /// Do not train the learned mask.
    #[arg(long)]
    pub no_learn_mask: bool,
    /// No random warp (as in pretraining).
    #[arg(long)]
    pub no_random_warp: bool,
    /// Random flips of faceset A.
    #[arg(long)]
    pub flip_a: bool,
    /// Random flips of faceset B.
    #[arg(long)]
    pub flip_b: bool,
    /// Random HSV shift of faceset A (0–0.3).
    #[arg(long, default_value_t = 0.0)]
    pub hsv_power: f64,
    /// Sample faceset A's yaw uniformly.
    #[arg(long)]
    pub uniform_yaw: bool,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 500)]
    pub save_every: u64,
    /// Preview every N steps (0 = at the end only).
    #[arg(long, default_value_t = 500)]
    pub preview_every: u64,
    /// Back the checkpoint up into backups/ every N steps (0 = never).
    #[arg(long, default_value_t = 10_000)]
    pub backup_every: u64,
    /// Backups kept.
    #[arg(long, default_value_t = 5)]
    pub keep_backups: u32,
    /// Compute device for this job: auto, cpu, cuda[:N], vulkan[:N] or wgpu[:N] (default: the
    /// config's compute.device); a comma list (--devices cuda:0,cuda:1) splits each batch over
    /// the devices (data parallel).
    #[arg(long, alias = "devices", value_parser = parse_devices)]
    pub device: Option<String>,
    /// Return once queued instead of following progress.
    #[arg(long)]
    pub detach: bool,
}

impl TrainArgs {
    fn settings(&self) -> faceswap_protocol::TrainSettings {
        faceswap_protocol::TrainSettings {
            archi: self.archi.clone(),
            // 0 asks for the Phaze-A preset's own size.
            resolution: self
                .resolution
                .unwrap_or(if self.archi.starts_with("phaze-a") {
                    0
                } else {
                    128
                }),
            ae_dims: self.ae_dims,
            e_dims: self.e_dims,
            d_dims: self.d_dims,
            d_mask_dims: self.d_mask_dims,
            batch: self.batch,
            micro_batches: self.micro_batches,
            steps: self.steps,
            seed: self.seed,
            optimizer: self.optimizer,
            lr: self.lr,
            warmup: self.warmup,
            cosine_cycle: self.cosine_cycle,
            cosine_t_mul: self.cosine_t_mul,
            lr_dropout: self.lr_dropout,
            clip_norm: self.clip_norm,
            masked_training: !self.no_masked_training,
            mask_rules: self.mask_rules.clone(),
            losses: self.losses.clone(),
            pretrain: self.pretrain,
            pretrained: self.pretrained.as_ref().map(|p| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string()
            }),
            load_parts: self.load_parts.clone(),
            freeze_steps: self.freeze_steps,
            autoclip: self.autoclip,
            precision: self.precision,
            eyes_mouth_prio: self.eyes_mouth_prio,
            learn_mask: !self.no_learn_mask,
            random_warp: !self.no_random_warp,
            flip_a: self.flip_a,
            flip_b: self.flip_b,
            hsv_power: self.hsv_power,
            uniform_yaw: self.uniform_yaw,
            save_every: self.save_every,
            preview_every: self.preview_every,
            backup_every: self.backup_every,
            keep_backups: self.keep_backups,
            device: self.device.clone(),
        }
    }
}

/// Checks a `--device` spelling when the command line is read, so a typo fails before any job.
fn parse_device(s: &str) -> Result<String, String> {
    crate::config::device_request(s).map(|_| s.to_string())
}

/// [`parse_device`] for a comma list of devices (data-parallel training).
fn parse_devices(s: &str) -> Result<String, String> {
    s.split(',')
        .try_for_each(|one| parse_device(one.trim()).map(|_| ()))?;
    Ok(s.to_string())
}

/// `faceswapd config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective configuration, each key with its source and meaning.
    Show,
    /// A documented config file with every default.
    Default,
    /// The config file's path.
    Path,
}

/// `faceswapd assets …`.
#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Every asset, its source package and whether it is cached.
    List,
    /// Fetch assets (all when no selector is given).
    Fetch {
        /// Test media only.
        #[arg(long)]
        media: bool,
        /// Model files only.
        #[arg(long)]
        models: bool,
        /// Runtime libraries only.
        #[arg(long)]
        runtime: bool,
        /// Specific assets by name.
        names: Vec<String>,
    },
    /// Print the cached path of an asset (fails when missing).
    Path {
        /// Asset name.
        name: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faceswapd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dirs = Dirs::resolve()?;
    let socket = crate::paths::socket(cli.socket.clone())?;
    if !matches!(cli.command, Command::Serve) {
        crate::logging::init_client(cli.verbose);
    }
    match cli.command {
        Command::Serve => serve(&dirs, socket),
        Command::Config(c) => {
            let path = dirs.config_file();
            match c {
                ConfigCommand::Path => outln!("{}", path.display()),
                ConfigCommand::Default => out!("{}", Config::default_toml()),
                ConfigCommand::Show => out!("{}", LoadedConfig::load(&path)?.show()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::PhazeAPreset {
            name,
            from_faceswap,
        } => {
            match (name, from_faceswap) {
                (_, Some(path)) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let (opts, notes) = faceswap_models::PhazeAOptions::from_faceswap_json(&text)
                        .with_context(|| path.display().to_string())?;
                    outln!("# Converted from faceswap preset {}", path.display());
                    for note in notes {
                        outln!("# note: {note}");
                    }
                    out!("{}", opts.to_toml());
                }
                (None, None) => {
                    for (name, _) in faceswap_models::phaze_a::PRESETS {
                        outln!("{name}");
                    }
                }
                (Some(name), None) => {
                    out!("{}", faceswap_models::phaze_a::preset_text(&name)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::GpuCheck(args) => {
            let ok = crate::gpu_check::run(&args, &mut std::io::stdout().lock())
                .map_err(anyhow::Error::msg)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Doctor => {
            let (report, ok) = crate::doctor::render(&crate::doctor::run(&dirs, &socket));
            out!("{report}");
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Assets(a) => assets(&dirs, a),
        Command::Import(c) => {
            let r = match c {
                ImportCommand::Fsa {
                    alignments,
                    source,
                    out,
                    size,
                    centering: c,
                } => crate::import::import_fsa(&alignments, &source, &out, size, c),
                ImportCommand::Dfl { aligned, out } => {
                    crate::import::import_dfl_faceset(&aligned, &out)
                }
            }
            .map_err(|e| anyhow::anyhow!(e))?;
            for line in &r.skipped {
                eprintln!("skipped: {line}");
            }
            outln!(
                "imported {} faces in {} frames ({} face files, {} labelled, {} tracks); {} skipped",
                r.faces,
                r.frames,
                r.files,
                r.labelled,
                r.tracks,
                r.skipped.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Alignments(c) => {
            use faceswap_protocol::ToolSpec;
            let abs = |p: &Path| absolute(p).map(|p| p.display().to_string());
            let out_dir = |p: &Path| -> anyhow::Result<String> {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
                abs(p)
            };
            let (faceset, tool) = match c {
                AlignmentsCommand::Extract {
                    faceset,
                    source,
                    size,
                    centering,
                } => (
                    faceset,
                    ToolSpec::Extract {
                        source: abs(&source)?,
                        size,
                        centering,
                    },
                ),
                AlignmentsCommand::RemoveFaces { faceset } => (faceset, ToolSpec::RemoveFaces),
                AlignmentsCommand::Draw {
                    faceset,
                    source,
                    out,
                } => (
                    faceset,
                    ToolSpec::Draw {
                        source: abs(&source)?,
                        out: out_dir(&out)?,
                    },
                ),
                AlignmentsCommand::MissingFrames { faceset, source } => (
                    faceset,
                    ToolSpec::MissingFrames {
                        source: abs(&source)?,
                    },
                ),
                AlignmentsCommand::MultiFaces { faceset } => (faceset, ToolSpec::MultiFaces),
                AlignmentsCommand::NoFaces { faceset } => (faceset, ToolSpec::NoFaces),
                AlignmentsCommand::Spatial { faceset } => (faceset, ToolSpec::Spatial),
                // A read of the store, not a job.
                AlignmentsCommand::Tracks { faceset } => {
                    let store = crate::extract::store::Alignments::load(
                        &faceset.join(crate::extract::ALIGNMENTS_FILE),
                    )?;
                    let reports = crate::extract::track::track_reports(&store);
                    if reports.is_empty() {
                        outln!("no tracks (not a video faceset, or extracted before tracks)");
                    }
                    for r in reports {
                        outln!("{}", r.line());
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let faceset = abs(&faceset)?;
            let what = format!("{} on {faceset}", tool.name());
            let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
            submit_and_follow(
                &mut c,
                JobSpec::Tool(ToolJob { faceset, tool }),
                &what,
                false,
            )
        }
        Command::Sort {
            faceset,
            by,
            out,
            groups,
        } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let faceset = absolute(&faceset)?.display().to_string();
            let tool = faceswap_protocol::ToolSpec::Sort {
                by,
                out: absolute(&out)?.display().to_string(),
                groups: groups as u32,
            };
            let what = format!("sort {faceset} by {by}");
            let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
            submit_and_follow(
                &mut c,
                JobSpec::Tool(ToolJob { faceset, tool }),
                &what,
                false,
            )
        }
        Command::Service(c) => {
            use crate::service;
            let exec = |e: Option<PathBuf>| -> anyhow::Result<PathBuf> {
                Ok(match e {
                    Some(p) => p,
                    None => std::env::current_exe()?,
                })
            };
            let lines = match c {
                ServiceCommand::Install { exec: e } => service::install(&exec(e)?)?,
                ServiceCommand::Uninstall => service::uninstall()?,
                ServiceCommand::Status => service::status()?,
                ServiceCommand::Definition { exec: e } => {
                    out!("{}", service::definition(&exec(e)?)?);
                    return Ok(ExitCode::SUCCESS);
                }
            };
            for line in lines {
                outln!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
            let Response::Status(s) = c.call(&Request::Status)? else {
                bail!("unexpected reply to status");
            };
            outln!(
                "faceswapd {} running (pid {}, up {}s)\nsocket: {socket}\ndata: {}\ndevice: {}\nconnections: {}\njobs: {} queued, {} running",
                s.version,
                s.pid,
                s.uptime_s,
                s.data_dir,
                s.device,
                s.connections,
                s.queued_jobs,
                s.running_jobs
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Shutdown => {
            let mut c = connect(&dirs, &socket, false)?;
            c.call(&Request::Shutdown)?;
            drop(c);
            // Returns once the daemon has exited, so a next command never meets a dying one.
            let lock = crate::server::lock_path(&socket);
            if crate::lock::wait_released(&lock, SHUTDOWN_WAIT)? {
                outln!("faceswapd stopped");
                Ok(ExitCode::SUCCESS)
            } else {
                anyhow::bail!(
                    "faceswapd is still stopping after {} s (its running jobs are saving); \
                     `faceswapd status` shows when it is gone",
                    SHUTDOWN_WAIT.as_secs()
                )
            }
        }
        Command::Jobs(j) => jobs(&dirs, &socket, !cli.no_autostart, j),
        Command::Extract(a) => {
            let (input, out) = input_and_output(&a.input, &a.out)?;
            let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
            let spec = JobSpec::Extract(ExtractJob {
                input: input.display().to_string(),
                output_dir: out.display().to_string(),
                size: a.size,
                centering: a.centering,
                every_nth: a.every,
                second_pass: !a.no_second_pass,
                refeed: a.refeed,
                smoothing: !a.no_smoothing,
                max_faces: a.max_faces,
            });
            let what = format!(
                "extract faces from {} into {}",
                input.display(),
                out.display()
            );
            submit_and_follow(&mut c, spec, &what, a.detach)
        }
        Command::Train(a) => {
            let (fa, fb) = (absolute(&a.a)?, absolute(&a.b)?);
            std::fs::create_dir_all(&a.model)
                .with_context(|| format!("creating model folder {}", a.model.display()))?;
            let model = absolute(&a.model)?;
            let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
            let spec = JobSpec::Train(TrainJob {
                faceset_a: fa.display().to_string(),
                faceset_b: fb.display().to_string(),
                model_dir: model.display().to_string(),
                settings: Box::new(a.settings()),
            });
            let what = format!(
                "train {} to {} steps from {} (A) and {} (B) into {}",
                a.archi,
                a.steps,
                fa.display(),
                fb.display(),
                model.display()
            );
            submit_and_follow(&mut c, spec, &what, a.detach)
        }
        Command::Convert(a) => {
            let mut settings = a.settings()?;
            if let Some(dir) = &a.xseg_model {
                settings.xseg_model = Some(absolute(dir)?.display().to_string());
            }
            if let Some(p) = &a.before_after {
                let p = if p.is_absolute() {
                    p.clone()
                } else {
                    std::env::current_dir()?.join(p)
                };
                settings.before_after = Some(p.display().to_string());
            }
            let input = absolute(&a.input)?;
            let alignments = absolute(&a.alignments)?;
            let model = absolute(&a.model)?;
            // The output need not exist yet: make it absolute through its folder.
            let out = if a.out.is_absolute() {
                a.out.clone()
            } else {
                std::env::current_dir()?.join(&a.out)
            };
            let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
            let spec = JobSpec::Convert(ConvertJob {
                input: input.display().to_string(),
                alignments: alignments.display().to_string(),
                model_dir: model.display().to_string(),
                output: out.display().to_string(),
                settings: Box::new(settings),
            });
            let what = format!(
                "convert {} with model {} into {}",
                input.display(),
                model.display(),
                out.display()
            );
            submit_and_follow(&mut c, spec, &what, a.detach)
        }
        Command::Xseg(x) => {
            match x {
                XsegCommand::Train(a) => {
                    // A daemon job: it survives the terminal, resumes, and shows in `jobs`.
                    let facesets = a
                        .facesets
                        .iter()
                        .map(|f| absolute(f).map(|p| p.display().to_string()))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    std::fs::create_dir_all(&a.model)
                        .with_context(|| format!("creating {}", a.model.display()))?;
                    let model = absolute(&a.model)?;
                    let spec = JobSpec::XsegTrain(XsegTrainJob {
                        facesets: facesets.clone(),
                        model_dir: model.display().to_string(),
                        settings: faceswap_protocol::XsegSettings {
                            resolution: a.resolution,
                            base: a.base,
                            steps: a.steps,
                            batch: a.batch as u32,
                            lr: a.lr,
                            save_every: a.save_every,
                            device: a.device.clone(),
                        },
                    });
                    let what = format!(
                        "train XSeg to {} steps on {} into {}",
                        a.steps,
                        facesets.join(", "),
                        model.display()
                    );
                    let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
                    return submit_and_follow(&mut c, spec, &what, a.detach);
                }
                XsegCommand::Apply {
                    faceset,
                    model,
                    device,
                } => {
                    let device = crate::runtime::Runtime::load(dirs.clone())
                        .and_then(|rt| rt.device(device.as_deref()))
                        .map_err(|e| anyhow::anyhow!(e))?;
                    let n = crate::masks::xseg::apply_xseg(&faceset, &model, device)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    outln!("stored an xseg mask for {n} faces in {}", faceset.display());
                }
                XsegCommand::FetchLabelled { faceset, out } => {
                    let n = crate::masks::xseg::fetch_labelled(&faceset, &out)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    outln!("copied {n} labelled faces to {}", out.display());
                }
                XsegCommand::RemoveLabels { faceset } => {
                    let n = crate::masks::xseg::remove_labels(&faceset)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    outln!("removed the labels of {n} faces");
                }
                XsegCommand::ImportDfl {
                    dfl_aligned,
                    faceset,
                } => {
                    let r = crate::import::import_dfl_labels(&dfl_aligned, &faceset)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    for line in r.unmatched.iter().chain(&r.errors) {
                        eprintln!("{line}");
                    }
                    outln!(
                        "{} DFL faces read: labels for {} faces, XSeg masks for {}; {} unmatched, {} unreadable",
                        r.files,
                        r.labelled,
                        r.xseg_masks,
                        r.unmatched.len(),
                        r.errors.len()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mask(MaskCommand::Generate(a)) => {
            let kinds = a
                .kinds
                .iter()
                .map(|k| match k.as_str() {
                    "components" => Ok(crate::masks::LandmarkMask::Components),
                    "extended" => Ok(crate::masks::LandmarkMask::Extended),
                    "hull" => Ok(crate::masks::LandmarkMask::Hull),
                    other => Err(anyhow::anyhow!(
                        "unknown landmark mask {other:?}: use components, extended or hull"
                    )),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let n = crate::masks::generate_landmark_masks(&a.faceset, &kinds)
                .map_err(|e| anyhow::anyhow!(e))?;
            outln!(
                "added {} to {n} faces in {}",
                a.kinds.join(", "),
                a.faceset.join(crate::extract::ALIGNMENTS_FILE).display()
            );
            let cfg = LoadedConfig::load(&dirs.config_file())?.config;
            if let Some((model, parts)) = a.bisenet_choice(&cfg.masks) {
                let runtime = crate::extract::default_models(&dirs)?.runtime;
                let n = crate::masks::generate_bisenet_masks(&a.faceset, &runtime, &model, parts)
                    .map_err(|e| anyhow::anyhow!(e))?;
                outln!("added a BiSeNet-FP mask ({}) to {n} faces", model.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mask(MaskCommand::Review(a)) => {
            let rules =
                crate::masks::rules::MaskRules::parse(&a.rules).map_err(|e| anyhow::anyhow!(e))?;
            let n = crate::masks::review_grid(&a.faceset, &rules, &a.out, a.max)
                .map_err(|e| anyhow::anyhow!(e))?;
            outln!("{n} faces with their masks: {}", a.out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Faceset(FacesetCommand::Average(a)) => {
            let s = crate::train::average::average_faceset(&a.inputs, &a.out, a.count, a.seed)
                .map_err(|e| anyhow::anyhow!(e))?;
            outln!(
                "averaged {} faces ({} px, centering {}) into {} files in {}",
                s.faces,
                s.size,
                s.centering.name(),
                s.written,
                a.out.join("faces").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Frames(FramesCommand::Extract(a)) => {
            let (input, out) = input_and_output(&a.input, &a.out)?;
            let mut c = connect(&dirs, &socket, !cli.no_autostart)?;
            let spec = JobSpec::ExtractFrames(ExtractFramesJob {
                input: input.display().to_string(),
                output_dir: out.display().to_string(),
                every_nth: a.every,
            });
            let what = format!(
                "extract frames of {} into {}",
                input.display(),
                out.display()
            );
            submit_and_follow(&mut c, spec, &what, a.detach)
        }
    }
}

/// Queues a job, then follows it unless `detach`.
fn submit_and_follow(
    c: &mut Connection,
    spec: JobSpec,
    what: &str,
    detach: bool,
) -> anyhow::Result<ExitCode> {
    let Response::JobSubmitted { id } = c.call(&Request::SubmitJob { spec })? else {
        bail!("unexpected reply to submit");
    };
    outln!("job {id} queued: {what}");
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    follow(c, id)
}

/// The job's input and output folder as absolute paths (the daemon has its own working
/// folder); the output folder is created.
fn input_and_output(input: &Path, out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let input = absolute(input).with_context(|| format!("input {}", input.display()))?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating output folder {}", out.display()))?;
    Ok((input, absolute(out)?))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("{} does not exist", p.display()))
}

fn connect(dirs: &Dirs, socket: &SocketPath, autostart: bool) -> anyhow::Result<Connection> {
    crate::client::connect(
        socket,
        autostart,
        &dirs.logs().join(crate::logging::LOG_FILE),
    )
}

fn serve(dirs: &Dirs, socket: SocketPath) -> anyhow::Result<ExitCode> {
    crate::memory::keep_freed_memory();
    let loaded = LoadedConfig::load(&dirs.config_file())?;
    crate::logging::init_service(&loaded.config.log, &dirs.logs())
        .with_context(|| format!("opening the log folder {}", dirs.logs().display()))?;
    match crate::server::serve(loaded.config, dirs, socket) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(crate::server::ServeError::Lock(e @ crate::lock::LockError::AlreadyRunning { .. })) => {
            eprintln!("faceswapd: {e}");
            Ok(ExitCode::from(EXIT_ALREADY_RUNNING as u8))
        }
        Err(e) => Err(e.into()),
    }
}

fn jobs(
    dirs: &Dirs,
    socket: &SocketPath,
    autostart: bool,
    cmd: JobsCommand,
) -> anyhow::Result<ExitCode> {
    let mut c = connect(dirs, socket, autostart)?;
    match cmd {
        JobsCommand::List => {
            let Response::Jobs(list) = c.call(&Request::ListJobs)? else {
                bail!("unexpected reply to list");
            };
            if list.is_empty() {
                outln!("no jobs");
            }
            for j in list {
                let progress = match j.progress.total {
                    Some(t) => format!("{}/{t}", j.progress.done),
                    None => j.progress.done.to_string(),
                };
                outln!(
                    "{:>5}  {:<16} {:<12} {:<8} {:>12}  {}",
                    j.id,
                    j.kind,
                    j.state.name(),
                    j.device.as_deref().unwrap_or("-"),
                    progress,
                    j.progress.message
                );
            }
        }
        JobsCommand::Show { id } => print_job(&show(&mut c, id)?),
        JobsCommand::Cancel { id } => {
            c.call(&Request::CancelJob { id })?;
            outln!("job {id}: cancel requested");
        }
        JobsCommand::Resume { id, detach } => {
            c.call(&Request::ResumeJob { id })?;
            outln!("job {id} resumed");
            if !detach {
                return follow(&mut c, id);
            }
        }
        JobsCommand::Wait { id } => return follow(&mut c, id),
    }
    Ok(ExitCode::SUCCESS)
}

fn show(c: &mut Connection, id: JobId) -> anyhow::Result<JobRecord> {
    match c.call(&Request::ShowJob { id })? {
        Response::Job(r) => Ok(*r),
        _ => bail!("unexpected reply to show"),
    }
}

fn print_job(r: &JobRecord) {
    outln!("job {} ({}): {}", r.id, r.spec.kind(), r.state.name());
    outln!("spec: {:?}", r.spec);
    match r.progress.total {
        Some(t) => outln!("progress: {}/{t} {}", r.progress.done, r.progress.message),
        None => outln!("progress: {} {}", r.progress.done, r.progress.message),
    }
    outln!("resumes: {}", r.resumes);
    if let Some(device) = &r.device {
        outln!("device: {device}");
    }
    if let Some(e) = &r.error {
        outln!("error: {e}");
    }
    outln!("log:");
    for line in &r.log_tail {
        outln!("  {line}");
    }
}

/// Follows a job with a progress bar until it ends; the exit status says how it ended.
fn follow(c: &mut Connection, id: JobId) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} job {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(id.to_string());
    loop {
        let r = show(c, id)?;
        if let Some(t) = r.progress.total {
            bar.set_length(t);
        }
        bar.set_position(r.progress.done);
        bar.set_message(r.progress.message.clone());
        if r.state.is_final() {
            bar.finish_and_clear();
            outln!("job {id}: {}", r.state.name());
            if let Some(e) = &r.error {
                outln!("error: {e}");
            }
            // The last run's log lines (after its "started").
            let from = r
                .log_tail
                .iter()
                .rposition(|l| l == "started")
                .map_or(0, |i| i + 1);
            for line in r.log_tail[from..].iter().filter(|l| l.as_str() != "done") {
                outln!("  {line}");
            }
            return Ok(if r.state == JobState::Done {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assets(dirs: &Dirs, cmd: AssetsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AssetsCommand::List => {
            for a in ASSETS {
                let state = if !a.applies_here() {
                    format!("not for {}", crate::assets::platform())
                } else if crate::assets::locate(dirs, a.name).is_ok() {
                    "cached".into()
                } else {
                    "missing".into()
                };
                outln!(
                    "{:<42} {:<8} {:<30} {state}",
                    a.name,
                    format!("{:?}", a.kind).to_lowercase(),
                    a.spec()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AssetsCommand::Path { name } => {
            outln!("{}", crate::assets::locate(dirs, &name)?.display());
            Ok(ExitCode::SUCCESS)
        }
        AssetsCommand::Fetch {
            media,
            models,
            runtime,
            names,
        } => {
            let all = !media && !models && !runtime && names.is_empty();
            let mut wanted: Vec<&'static Asset> = ASSETS
                .iter()
                .filter(|a| a.applies_here())
                .filter(|a| {
                    all || (media && a.kind == AssetKind::Media)
                        || (models && a.kind == AssetKind::Model)
                        || (runtime && a.kind == AssetKind::Runtime)
                })
                .collect();
            for n in &names {
                wanted.push(Asset::by_name(n)?);
            }
            let cfg = LoadedConfig::load(&dirs.config_file())?.config;
            let mirrors = crate::assets::mirrors(&cfg.assets.mirror);
            let result = crate::assets::fetch(dirs, &wanted, &mirrors, |a, r| match r {
                Ok(Obtained::Cached) => outln!("cached      {}", a.name),
                Ok(Obtained::Mirror(p)) => {
                    outln!("mirrored    {} (from {})", a.name, p.display())
                }
                Ok(Obtained::Downloaded(spec)) => outln!("downloaded  {} (from {spec})", a.name),
                Err(e) => outln!("FAILED      {}: {e}", a.name),
            });
            result?;
            if wanted.iter().any(|a| a.kind == AssetKind::Model) {
                crate::assets::convert_models(dirs, |name, what| outln!("{what:<11} {name}"))?;
            }
            outln!("assets are in {}", dirs.cache.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `name:weight` (weight 1 when left out).
fn parse_loss(s: &str) -> Result<(String, f32), String> {
    match s.split_once(':') {
        Some((name, w)) => w
            .trim()
            .parse::<f32>()
            .map(|w| (name.trim().to_string(), w))
            .map_err(|_| format!("{w:?} is not a weight; write e.g. ms_ssim:1.0")),
        None => Ok((s.trim().to_string(), 1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(args: &[&str]) -> MaskGenerateArgs {
        let cli = Cli::try_parse_from([&["faceswapd", "mask", "generate", "faces"], args].concat())
            .unwrap();
        match cli.command {
            Command::Mask(MaskCommand::Generate(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn losses_parse_as_name_and_weight() {
        assert_eq!(parse_loss("ms_ssim:0.5"), Ok(("ms_ssim".into(), 0.5)));
        assert_eq!(parse_loss("mae"), Ok(("mae".into(), 1.0)));
        assert!(parse_loss("mae:lots").unwrap_err().contains("not a weight"));
        let cli = Cli::try_parse_from([
            "faceswapd",
            "train",
            "--a",
            "a",
            "--b",
            "b",
            "--model",
            "m",
            "--loss",
            "gmsd:2",
            "--loss",
            "ffl",
        ])
        .unwrap();
        let Command::Train(t) = cli.command else {
            panic!("not train")
        };
        assert_eq!(
            t.settings().losses,
            vec![("gmsd".into(), 2.0), ("ffl".into(), 1.0)]
        );
    }

    #[test]
    fn bisenet_comes_from_the_flag_else_the_config() {
        let mut cfg = crate::config::MasksConfig::default();
        assert!(
            generate(&[]).bisenet_choice(&cfg).is_none(),
            "nothing configured"
        );
        cfg.bisenet_model = "/models/bisenet.onnx".into();
        let (model, parts) = generate(&[]).bisenet_choice(&cfg).unwrap();
        assert_eq!(model, PathBuf::from("/models/bisenet.onnx"));
        assert!(
            parts.glasses && !parts.hair && !parts.ears,
            "faceswap's defaults"
        );
        let (model, parts) = generate(&["--bisenet", "other.onnx", "--hair"])
            .bisenet_choice(&cfg)
            .unwrap();
        assert_eq!(model, PathBuf::from("other.onnx"));
        assert!(parts.hair);
        assert!(generate(&["--no-bisenet"]).bisenet_choice(&cfg).is_none());
        assert!(
            Cli::try_parse_from([
                "faceswapd",
                "mask",
                "generate",
                "f",
                "--bisenet",
                "x",
                "--no-bisenet"
            ])
            .is_err()
        );
    }
}
