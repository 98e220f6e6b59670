//! `faceswapd convert`: swap the faces of a video or image folder, as a daemon job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use faceswap_options::{
    BalanceSpace, ColorTransferMode, ImageFormat, MaskMode, MergeMode, SharpenKind,
};
use faceswap_protocol::{ConvertJob, JobSpec};

use super::session::*;
use super::values::*;

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
    pub(super) fn settings(&self) -> anyhow::Result<faceswap_protocol::ConvertSettings> {
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

/// Runs `faceswapd convert`.
pub(super) fn run(session: &Session, a: Box<ConvertArgs>) -> anyhow::Result<ExitCode> {
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
    let mut c = session.connect()?;
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
