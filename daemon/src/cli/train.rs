//! `faceswapd train`: train a SAEHD or Phaze-A model, as a daemon job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use faceswap_options::{OptimizerKind, Precision};
use faceswap_protocol::{JobSpec, TrainJob};

use super::session::*;
use super::values::*;

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
    pub(super) fn settings(&self) -> faceswap_protocol::TrainSettings {
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

/// Runs `faceswapd train`.
pub(super) fn run(session: &Session, a: Box<TrainArgs>) -> anyhow::Result<ExitCode> {
    let (fa, fb) = (absolute(&a.a)?, absolute(&a.b)?);
    std::fs::create_dir_all(&a.model)
        .with_context(|| format!("creating model folder {}", a.model.display()))?;
    let model = absolute(&a.model)?;
    let mut c = session.connect()?;
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
