//! The training job: facesets → background batches → SAEHD or Phaze-A steps → checkpoints, previews and
//! the loss log in the model folder; resumes bit-exactly from the newest checkpoint.

pub mod augment;
pub mod average;
pub mod faceset;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use faceswap_models::SideBatch;
use faceswap_models::burn::tensor::{Device, Tensor, TensorData};
use faceswap_models::losses::SideLossOptions;
use faceswap_models::optim::{Cosine, LrSchedule};
use faceswap_models::train::{FaceTrainer, TrainerConfig};
use faceswap_models::{ComputeDevice, ModelOptions, PhazeAOptions, SaehdOptions};
use faceswap_protocol::TrainSettings;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::extract::geometry::Centering;
use crate::masks::rules::MaskRules;
use augment::{AugmentOptions, HostSide, make_side, yaw_bins};
use faceset::{Faceset, FacesetError, load_faceset};

/// The model folder's description of the model (fixed at creation).
pub const MODEL_FILE: &str = "model.toml";
/// The loss log: `step,loss_a,loss_b,lr,ms` per step.
pub const LOSS_LOG: &str = "loss.csv";
/// The newest preview image.
pub const PREVIEW: &str = "preview.png";

/// What `model.toml` holds: the architecture and the seed, fixed when the model is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// `df`/`liae` with `u`/`d`/`t`, or `phaze-a[:preset name or file]`.
    pub archi: String,
    /// Face resolution.
    pub resolution: u32,
    /// Bottleneck width.
    pub ae_dims: u32,
    /// Encoder width.
    pub e_dims: u32,
    /// Decoder width.
    pub d_dims: u32,
    /// Mask decoder width.
    pub d_mask_dims: u32,
    /// The run's seed (weights and every random draw).
    pub seed: u64,
    /// The Faceswap++ version that created it.
    pub created_by: String,
    /// The aligned-face centering of the facesets it learned from (`f`, `wf`, `legacy`, …);
    /// merge crops destination faces the same way. Recorded by the first training run.
    #[serde(default)]
    pub centering: Option<String>,
    /// Phaze-A: every option, resolved from the preset when the model was created (later
    /// edits to the preset do not change this model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phaze_a: Option<PhazeAOptions>,
}

/// The Phaze-A options `archi` names (`phaze-a`: faceswap's defaults; `phaze-a:NAME`: a shipped
/// preset; `phaze-a:PATH.toml`: a preset file; `phaze-a:PATH.json`: a faceswap GUI preset), at
/// `resolution` (0: the preset's); `None` for SAEHD.
pub fn phaze_a_options(archi: &str, resolution: u32) -> Result<Option<PhazeAOptions>, String> {
    let Some(rest) = archi.strip_prefix("phaze-a") else {
        return Ok(None);
    };
    let opts = match rest.strip_prefix(':') {
        None if rest.is_empty() => {
            let o = PhazeAOptions::default();
            o.check().map_err(|e| e.to_string())?;
            o
        }
        None => {
            return Err(format!(
                "unknown architecture {archi:?}; use phaze-a or phaze-a:PRESET"
            ));
        }
        Some(name) if name.ends_with(".json") => {
            let text = std::fs::read_to_string(name)
                .map_err(|e| format!("faceswap preset file {name}: {e}"))?;
            let (opts, notes) =
                PhazeAOptions::from_faceswap_json(&text).map_err(|e| format!("{name}: {e}"))?;
            for note in notes {
                tracing::info!("{name}: {note}");
            }
            opts
        }
        Some(name) if name.ends_with(".toml") || name.contains(std::path::MAIN_SEPARATOR) => {
            let text = std::fs::read_to_string(name)
                .map_err(|e| format!("Phaze-A preset file {name}: {e}"))?;
            PhazeAOptions::from_toml(&text).map_err(|e| format!("{name}: {e}"))?
        }
        Some(name) => PhazeAOptions::preset(name).map_err(|e| e.to_string())?,
    };
    let opts = if resolution == 0 || resolution as usize == opts.output_size {
        opts
    } else {
        opts.at_resolution(resolution as usize)
            .map_err(|e| e.to_string())?
    };
    // Presets, files and resizes are checked where they are made.
    Ok(Some(opts))
}

impl ModelFile {
    fn from_settings(s: &TrainSettings) -> Result<ModelFile, String> {
        let phaze_a = phaze_a_options(&s.archi, s.resolution)?;
        Ok(ModelFile {
            archi: s.archi.clone(),
            resolution: phaze_a
                .as_ref()
                .map_or(s.resolution, |o| o.output_size as u32),
            ae_dims: s.ae_dims,
            e_dims: s.e_dims,
            d_dims: s.d_dims,
            d_mask_dims: s.d_mask_dims,
            seed: s.seed,
            created_by: format!("Faceswap++ {}", env!("CARGO_PKG_VERSION")),
            centering: None,
            phaze_a,
        })
    }

    fn same_architecture(&self, other: &ModelFile) -> bool {
        if self.phaze_a.is_some() || other.phaze_a.is_some() {
            return self.phaze_a == other.phaze_a;
        }
        (
            &self.archi,
            self.resolution,
            self.ae_dims,
            self.e_dims,
            self.d_dims,
            self.d_mask_dims,
        ) == (
            &other.archi,
            other.resolution,
            other.ae_dims,
            other.e_dims,
            other.d_dims,
            other.d_mask_dims,
        )
    }

    /// The centering merge must crop with; the error says what the model file lacks.
    pub fn centering(&self) -> Result<Centering, String> {
        let name = self.centering.as_deref().ok_or(
            "model.toml does not say which face centering the model learned; train it at least one step with this version (it records the facesets' centering)",
        )?;
        name.parse::<Centering>()
            .map_err(|e| format!("model.toml names an {e}"))
    }

    /// One line naming the architecture.
    pub fn describe(&self) -> String {
        if self.phaze_a.is_some() {
            return format!("{} {} px", self.archi, self.resolution);
        }
        format!(
            "{} {} px, ae {} e {} d {} mask {}",
            self.archi, self.resolution, self.ae_dims, self.e_dims, self.d_dims, self.d_mask_dims
        )
    }

    /// The network options.
    pub fn options(&self) -> Result<ModelOptions, String> {
        if let Some(o) = &self.phaze_a {
            o.check().map_err(|e| e.to_string())?;
            return Ok(ModelOptions::PhazeA(o.clone()));
        }
        SaehdOptions::parse(
            &self.archi,
            self.resolution as usize,
            self.ae_dims as usize,
            self.e_dims as usize,
            self.d_dims as usize,
            self.d_mask_dims as usize,
        )
        .map(ModelOptions::Saehd)
    }
}

/// The network options a job's settings ask for (an error names what is wrong).
pub fn network_options(s: &TrainSettings) -> Result<ModelOptions, String> {
    ModelFile::from_settings(s)?.options()
}

/// Why training stopped short.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Options that cannot work.
    #[error("{0}")]
    Settings(String),
    /// A faceset could not be used.
    #[error(transparent)]
    Faceset(#[from] FacesetError),
    /// Checkpoint trouble.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The model folder could not be written or read.
    #[error("model folder {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Weights or optimiser state could not be encoded, or a checkpoint does not fit this model.
    #[error("model state in {0}: {1}")]
    State(PathBuf, String),
    /// Stopped on request after saving a checkpoint.
    #[error("stopped at step {0} (checkpoint saved)")]
    Stopped(u64),
}

/// What a finished (or stopped) run did.
#[derive(Debug, Clone, Default)]
pub struct TrainSummary {
    /// Step the run started from (0 for a new model).
    pub start_step: u64,
    /// Step it ended at.
    pub end_step: u64,
    /// Mean loss (A + B) of the run's first 10 steps.
    pub first_loss: f32,
    /// Mean loss of its last 10 steps.
    pub last_loss: f32,
    /// Mean wall time per step.
    pub ms_per_step: f64,
    /// Mean time a step waited for its batch (0 when data preparation keeps up).
    pub ms_waiting_for_data: f64,
    /// Notes for the user (fallbacks, skipped files).
    pub notes: Vec<String>,
}

impl TrainSummary {
    /// Lines for the job log.
    pub fn report(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "steps {} → {}: loss {:.4} → {:.4}",
                self.start_step, self.end_step, self.first_loss, self.last_loss
            ),
            format!(
                "{:.1} ms/step, of which {:.2} ms waiting for data",
                self.ms_per_step, self.ms_waiting_for_data
            ),
        ];
        out.extend(self.notes.iter().cloned());
        out
    }
}

/// One step's numbers, for progress reporting.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Steps done so far (the model's total).
    pub step: u64,
    /// The target.
    pub total: u64,
    /// Side A's loss.
    pub loss_a: f32,
    /// Side B's loss.
    pub loss_b: f32,
    /// This step's wall time in milliseconds.
    pub ms: f64,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Faceset A.
    pub faceset_a: PathBuf,
    /// Faceset B.
    pub faceset_b: PathBuf,
    /// Model folder.
    pub model_dir: PathBuf,
    /// Options.
    pub settings: TrainSettings,
    /// Where to train (the weights and the optimiser live there).
    pub device: ComputeDevice,
    /// Further devices each batch is split over (data parallelism); usually none.
    pub replicas: Vec<ComputeDevice>,
}

/// The trainer's settings; `resolution` is the model's (a Phaze-A preset's when the job says 0).
fn trainer_config(
    s: &TrainSettings,
    seed: u64,
    resolution: usize,
) -> Result<TrainerConfig, TrainError> {
    let optimizer = s.optimizer;
    if !(s.lr.is_finite() && s.lr > 0.0) {
        return Err(TrainError::Settings(format!(
            "learning rate {} must be above 0",
            s.lr
        )));
    }
    let precision = s.precision;
    Ok(TrainerConfig {
        precision,
        optimizer,
        // Pretraining runs without learning-rate dropout (Faceswap++).
        lr_dropout: s.lr_dropout && !s.pretrain,
        clip_norm: (s.clip_norm > 0.0).then_some(s.clip_norm),
        autoclip: s.autoclip,
        schedule: LrSchedule {
            base: s.lr,
            warmup: s.warmup,
            cosine: (s.cosine_cycle > 0).then(|| Cosine {
                first_cycle: s.cosine_cycle,
                t_mul: s.cosine_t_mul.max(1.0),
                ..Cosine::default()
            }),
        },
        micro_batches: s.micro_batches.max(1) as usize,
        loss: SideLossOptions {
            masked: s.masked_training,
            eyes_mouth: s.eyes_mouth_prio,
            learn_mask: s.learn_mask,
            image_losses: image_losses(&s.losses, resolution)?,
        },
        seed,
        freeze: match (load_parts(s)?, s.freeze_steps) {
            (parts, n) if !parts.is_empty() && n > 0 => Some((parts, n)),
            _ => None,
        },
    })
}

/// Reads `model.toml`, or writes it for a new model; refuses a different architecture.
fn open_model(dir: &Path, s: &TrainSettings) -> Result<ModelFile, TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Io(dir.to_path_buf(), e))?;
    let path = dir.join(MODEL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let have: ModelFile = toml::from_str(&text).map_err(|e| {
                TrainError::Settings(format!(
                    "{} is damaged ({e}); restore it or use a new model folder",
                    path.display()
                ))
            })?;
            // A Phaze-A model resumes from the options model.toml keeps: the preset it names
            // may have been edited or moved since.
            if have.phaze_a.is_some()
                && have.archi == s.archi
                && (s.resolution == 0 || s.resolution == have.resolution)
            {
                return Ok(have);
            }
            let wanted = ModelFile::from_settings(s).map_err(TrainError::Settings)?;
            if !have.same_architecture(&wanted) {
                return Err(TrainError::Settings(format!(
                    "model {} was created as {}, not {}; use the same options or a new model folder",
                    dir.display(),
                    have.describe(),
                    wanted.describe()
                )));
            }
            Ok(have)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let wanted = ModelFile::from_settings(s).map_err(TrainError::Settings)?;
            wanted.options().map_err(TrainError::Settings)?;
            let text = toml::to_string(&wanted)
                .map_err(|e| TrainError::Settings(format!("model.toml: {e}")))?;
            crate::atomic::write_atomic(&path, text.as_bytes())
                .map_err(|e| TrainError::Io(path.clone(), e))?;
            Ok(wanted)
        }
        Err(e) => Err(TrainError::Io(path, e)),
    }
}

/// Checks that both facesets were cropped alike, and records that centering in `model.toml`
/// (merge crops with it); a model that learned another centering is refused.
fn record_centering(
    dir: &Path,
    mut file: ModelFile,
    a: &Faceset,
    b: &Faceset,
) -> Result<(), TrainError> {
    let (ca, cb) = (
        a.centering().map_err(TrainError::Settings)?,
        b.centering().map_err(TrainError::Settings)?,
    );
    if ca != cb {
        return Err(TrainError::Settings(format!(
            "faceset A was extracted with --centering {} and faceset B with {}; extract both the same way",
            ca.name(),
            cb.name()
        )));
    }
    match file.centering.as_deref() {
        Some(have) if have == ca.name() => Ok(()),
        Some(have) => Err(TrainError::Settings(format!(
            "model {} learned faces cropped with centering {have}, these facesets use {}; use facesets extracted with --centering {have} or a new model folder",
            dir.display(),
            ca.name()
        ))),
        None => {
            file.centering = Some(ca.name().to_string());
            let path = dir.join(MODEL_FILE);
            let text = toml::to_string(&file)
                .map_err(|e| TrainError::Settings(format!("model.toml: {e}")))?;
            crate::atomic::write_atomic(&path, text.as_bytes())
                .map_err(|e| TrainError::Io(path.clone(), e))
        }
    }
}

/// Keeps the loss log's rows up to `step` (rows past the checkpoint belong to lost work).
fn trim_loss_log(path: &Path, step: u64) -> Result<(), TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return crate::atomic::write_atomic(path, b"step,loss_a,loss_b,lr,ms\n")
                .map_err(|e| TrainError::Io(path.to_path_buf(), e));
        }
        Err(e) => return Err(TrainError::Io(path.to_path_buf(), e)),
    };
    let mut kept = String::from("step,loss_a,loss_b,lr,ms\n");
    for line in text.lines().skip(1) {
        let row_step = line.split(',').next().and_then(|v| v.parse::<u64>().ok());
        if row_step.is_some_and(|s| s <= step) && line.split(',').count() == 5 {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    crate::atomic::write_atomic(path, kept.as_bytes())
        .map_err(|e| TrainError::Io(path.to_path_buf(), e))
}

/// Both sides' batch for one step, in host memory.
struct HostBatch {
    a: HostSide,
    b: HostSide,
}

/// Prepares batches on background threads, in step order, a few steps ahead (bounded queues:
/// memory stays flat when the trainer is slower).
struct BatchSource {
    queues: Vec<Receiver<HostBatch>>,
    next: usize,
}

struct SideSource {
    set: Arc<Faceset>,
    bins: Vec<Vec<usize>>,
    opts: AugmentOptions,
}

impl BatchSource {
    fn start(
        a: Arc<SideSource>,
        b: Arc<SideSource>,
        seed: u64,
        first_step: u64,
        batch: usize,
        threads: usize,
    ) -> BatchSource {
        let mut queues = Vec::with_capacity(threads);
        for k in 0..threads {
            let (tx, rx): (SyncSender<HostBatch>, _) = sync_channel(2);
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut step = first_step + k as u64;
                loop {
                    let hb = HostBatch {
                        a: make_side(&a.set, &a.bins, &a.opts, seed, step, 0, batch),
                        b: make_side(&b.set, &b.bins, &b.opts, seed, step, 1, batch),
                    };
                    if tx.send(hb).is_err() {
                        return; // the run ended
                    }
                    step += threads as u64;
                }
            });
            queues.push(rx);
        }
        BatchSource { queues, next: 0 }
    }

    fn next(&mut self) -> Option<HostBatch> {
        let q = &self.queues[self.next];
        self.next = (self.next + 1) % self.queues.len();
        q.recv().ok()
    }
}

fn side_tensors(h: HostSide, batch: usize, r: usize, device: &Device) -> SideBatch {
    // The host buffers move into the tensors: no copy.
    let t = |v: Vec<f32>, c: usize| {
        Tensor::<4>::from_data(TensorData::new(v, [batch, c, r, r]), device)
    };
    SideBatch {
        warped: t(h.warped, 3), // [B, 3, R, R]
        target: t(h.target, 3), // [B, 3, R, R]
        mask: t(h.mask, 1),     // [B, 1, R, R]
        loss_mask: t(h.loss_mask, 1),
        em_mask: t(h.em_mask, 1),
    }
}

/// The parts a new model takes from its pretrained model (the encoder when none are named).
fn load_parts(s: &TrainSettings) -> Result<Vec<faceswap_models::saehd::ModelPart>, TrainError> {
    if s.pretrained.is_none() {
        return Ok(Vec::new());
    }
    if s.load_parts.is_empty() {
        return Ok(vec![faceswap_models::saehd::ModelPart::Encoder]);
    }
    s.load_parts
        .iter()
        .map(|p| {
            faceswap_models::saehd::ModelPart::parse(p).ok_or_else(|| {
                TrainError::Settings(format!(
                    "unknown model part {p:?}: encoder, inter, decoder_a, decoder_b"
                ))
            })
        })
        .collect()
}

/// The `--loss name:weight` list as the trainer's image losses (at most four, faceswap's limit).
fn image_losses(
    losses: &[(String, f32)],
    resolution: usize,
) -> Result<[Option<(faceswap_models::faceswap_losses::ImageLoss, f32)>; 4], TrainError> {
    if losses.len() > 4 {
        return Err(TrainError::Settings(format!(
            "{} losses given; faceswap combines at most 4",
            losses.len()
        )));
    }
    let mut out = [None; 4];
    for (slot, (name, weight)) in out.iter_mut().zip(losses) {
        let loss = faceswap_models::faceswap_losses::ImageLoss::parse(name, resolution)
            .ok_or_else(|| {
                TrainError::Settings(format!(
                    "unknown loss {name:?}: ssim, ms_ssim, gmsd, mae, mse, logcosh, ffl, laploss"
                ))
            })?;
        if !(weight.is_finite() && *weight > 0.0) {
            return Err(TrainError::Settings(format!(
                "loss {name} has weight {weight}; weights must be above 0"
            )));
        }
        *slot = Some((loss, *weight));
    }
    Ok(out)
}

/// Trains until `settings.steps` or until `on_step` returns false (then a checkpoint is saved
/// and [`TrainError::Stopped`] returned).
pub fn run_training(
    req: &TrainRequest,
    mut on_step: impl FnMut(&StepReport) -> bool,
) -> Result<TrainSummary, TrainError> {
    let s = &req.settings;
    let model_file = open_model(&req.model_dir, s)?;
    let opts = model_file.options().map_err(TrainError::Settings)?;
    let cfg = trainer_config(s, model_file.seed, opts.resolution())?;
    let batch = s.batch.max(1) as usize;
    if s.micro_batches as usize > batch {
        return Err(TrainError::Settings(format!(
            "micro_batches {} cannot exceed the batch size {batch}",
            s.micro_batches
        )));
    }
    let r = opts.resolution();
    let rules = s
        .mask_rules
        .as_deref()
        .map(MaskRules::parse)
        .transpose()
        .map_err(TrainError::Settings)?;
    let set_a = Arc::new(load_faceset(&req.faceset_a, r, rules.as_ref())?);
    let set_b = Arc::new(load_faceset(&req.faceset_b, r, rules.as_ref())?);
    record_centering(&req.model_dir, model_file.clone(), &set_a, &set_b)?;
    let mut summary = TrainSummary::default();
    for (name, set) in [("A", &set_a), ("B", &set_b)] {
        if !set.skipped.is_empty() {
            summary.notes.push(format!(
                "faceset {name}: skipped {} file(s), first: {}",
                set.skipped.len(),
                set.skipped[0]
            ));
        }
        if rules.is_some() {
            let counts = set.mask_counts();
            let stored: usize = counts.values().sum();
            let named: Vec<String> = counts.iter().map(|(m, n)| format!("{m} {n}")).collect();
            summary.notes.push(format!(
                "faceset {name}: masks from the rules: {}; landmark hull {}",
                if named.is_empty() {
                    "none".into()
                } else {
                    named.join(", ")
                },
                set.faces.len() - stored
            ));
        }
    }

    let device = req
        .device
        .device()
        .ok_or_else(|| TrainError::Settings(format!("no {} backend", req.device)))?
        .autodiff();
    let replicas = req
        .replicas
        .iter()
        .map(|r| {
            r.device()
                .map(|d| d.autodiff())
                .ok_or_else(|| TrainError::Settings(format!("no {r} backend")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut trainer = FaceTrainer::new(&opts, &device, cfg).with_replicas(replicas);
    let (latest, warnings) = checkpoint::load_latest(&req.model_dir)?;
    summary.notes.extend(warnings);
    if let Some(ck) = latest {
        trainer
            .restore_state(ck.model, ck.optimizer, ck.step)
            .map_err(|e| TrainError::State(req.model_dir.clone(), e.to_string()))?;
        trainer
            .restore_extra(&ck.extra)
            .map_err(|e| TrainError::State(req.model_dir.clone(), e))?;
    }
    if trainer.step() == 0
        && let Some(dir) = &s.pretrained
    {
        let dir = Path::new(dir);
        let text = std::fs::read_to_string(dir.join(MODEL_FILE)).map_err(|e| {
            TrainError::Settings(format!(
                "{} is not a model folder ({e}); train or pretrain one first",
                dir.display()
            ))
        })?;
        let theirs: ModelFile = toml::from_str(&text)
            .map_err(|e| TrainError::Settings(format!("{}: {e}", dir.display())))?;
        if !theirs.same_architecture(&model_file) {
            return Err(TrainError::Settings(format!(
                "pretrained model {} is {}, this one {}: parts only move between equal architectures",
                dir.display(),
                theirs.describe(),
                model_file.describe()
            )));
        }
        let (ck, _) = checkpoint::load_latest(dir)?;
        let ck = ck.ok_or_else(|| {
            TrainError::Settings(format!(
                "pretrained model {} has no checkpoint",
                dir.display()
            ))
        })?;
        let parts = load_parts(s)?;
        trainer
            .load_parts(&opts, ck.model, &parts)
            .map_err(|e| TrainError::State(req.model_dir.clone(), e.to_string()))?;
        summary.notes.push(format!(
            "took {parts:?} from {} (step {}){}",
            dir.display(),
            ck.step,
            if s.freeze_steps > 0 {
                format!(", frozen for {} steps", s.freeze_steps)
            } else {
                String::new()
            }
        ));
    }
    let start = trainer.step();
    summary.start_step = start;
    summary.end_step = start;
    let log_path = req.model_dir.join(LOSS_LOG);
    trim_loss_log(&log_path, start)?;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .map_err(|e| TrainError::Io(log_path.clone(), e))?;

    let side = |set: &Arc<Faceset>, a_side: bool| {
        Arc::new(SideSource {
            set: set.clone(),
            bins: yaw_bins(set),
            opts: AugmentOptions {
                // Pretraining: no warp, flips on both sides, uniform yaw (Faceswap++).
                random_warp: s.random_warp && !s.pretrain,
                flip: s.pretrain || if a_side { s.flip_a } else { s.flip_b },
                hsv_power: if a_side {
                    s.hsv_power.clamp(0.0, 0.3)
                } else {
                    0.0
                },
                uniform_yaw: s.pretrain || (a_side && s.uniform_yaw),
                eyes_mouth: s.eyes_mouth_prio,
            },
        })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    let mut source = BatchSource::start(
        side(&set_a, true),
        side(&set_b, false),
        model_file.seed,
        start,
        batch,
        threads,
    );

    let save = |trainer: &FaceTrainer| -> Result<(), TrainError> {
        let (model, optimizer) = trainer
            .save_state()
            .map_err(|e| TrainError::State(req.model_dir.clone(), e.to_string()))?;
        checkpoint::save(
            &req.model_dir,
            &Checkpoint {
                step: trainer.step(),
                model,
                optimizer,
                extra: trainer.extra_state(),
            },
        )?;
        Ok(())
    };
    let (mut losses, mut waited) = (Vec::new(), Duration::ZERO);
    let (mut overflows, mut last_scale) = (0u64, None);
    let run_start = Instant::now();
    while trainer.step() < s.steps {
        let wait = Instant::now();
        let Some(hb) = source.next() else {
            return Err(TrainError::Settings("batch preparation stopped".into()));
        };
        waited += wait.elapsed();
        let t = Instant::now();
        let a = side_tensors(hb.a, batch, r, &device);
        let b = side_tensors(hb.b, batch, r, &device);
        let stats = trainer.train_step(&a, &b);
        if let Some((scale, overflowed)) = stats.loss_scale {
            overflows += u64::from(overflowed);
            last_scale = Some(scale);
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let step = trainer.step();
        writeln!(
            log,
            "{step},{:.6},{:.6},{:.3e},{ms:.1}",
            stats.loss_a, stats.loss_b, stats.lr
        )
        .map_err(|e| TrainError::Io(log_path.clone(), e))?;
        losses.push(stats.loss_a + stats.loss_b);
        summary.end_step = step;
        let report = StepReport {
            step,
            total: s.steps,
            loss_a: stats.loss_a,
            loss_b: stats.loss_b,
            ms,
        };
        let go_on = on_step(&report);
        let due = |every: u64| every > 0 && step.is_multiple_of(every);
        if due(s.save_every) || due(s.backup_every) || !go_on || step >= s.steps {
            log.sync_all()
                .map_err(|e| TrainError::Io(log_path.clone(), e))?;
            save(&trainer)?;
        }
        if due(s.backup_every) {
            checkpoint::backup(&req.model_dir, step, s.keep_backups as usize)?;
        }
        if due(s.preview_every) || step >= s.steps {
            write_preview(&trainer, &set_a, &set_b, &req.model_dir, step, &device)?;
        }
        if !go_on {
            return Err(TrainError::Stopped(step));
        }
    }
    if let Some(scale) = last_scale {
        summary.notes.push(format!(
            "mixed precision ({}): {overflows} steps skipped on gradient overflow, loss scale now {scale}",
            s.precision
        ));
    }
    let n = losses.len();
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    summary.first_loss = mean(&losses[..n.min(10)]);
    summary.last_loss = mean(&losses[n.saturating_sub(10)..]);
    summary.ms_per_step = run_start.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    summary.ms_waiting_for_data = waited.as_secs_f64() * 1e3 / n.max(1) as f64;
    Ok(summary)
}

/// A preview grid: one row per face (up to 4 from each side), columns A, A→A, A→B, B, B→B, B→A.
fn write_preview(
    trainer: &FaceTrainer,
    set_a: &Faceset,
    set_b: &Faceset,
    dir: &Path,
    step: u64,
    device: &Device,
) -> Result<(), TrainError> {
    let r = set_a.resolution;
    let rows = set_a.faces.len().min(set_b.faces.len()).min(4);
    let pick = |set: &Faceset| -> Vec<f32> {
        let mut v = Vec::with_capacity(rows * 3 * r * r);
        for k in 0..rows {
            let f = &set.faces[k * set.faces.len() / rows];
            for c in 0..3 {
                v.extend(f.rgb.iter().skip(c).step_by(3).map(|p| *p as f32 / 255.0));
            }
        }
        v
    };
    let (va, vb) = (pick(set_a), pick(set_b));
    let t =
        |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [rows, 3, r, r]), device);
    let out = trainer.model().forward(t(&va), t(&vb));
    // A failed read-back is an error, never a black preview that looks like a dead model.
    let data = |x: Tensor<4>| {
        // Converted first: a half-precision run predicts f16/bf16 faces.
        x.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| {
                TrainError::State(
                    dir.join(PREVIEW),
                    format!("the preview's predicted faces could not be read back ({e:?})"),
                )
            })
    };
    let columns = [
        va,
        data(out.a.0)?,
        data(out.a_to_b.0)?,
        vb,
        data(out.b.0)?,
        data(out.b_to_a.0)?,
    ];
    let (w, h) = (columns.len() * r, rows * r);
    let mut img = image::RgbImage::new(w as u32, h as u32);
    for (col, planes) in columns.iter().enumerate() {
        for row in 0..rows {
            for y in 0..r {
                for x in 0..r {
                    let at = |c: usize| {
                        planes
                            .get(((row * 3 + c) * r + y) * r + x)
                            .map_or(0, |v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                    };
                    img.put_pixel(
                        (col * r + x) as u32,
                        (row * r + y) as u32,
                        image::Rgb([at(0), at(1), at(2)]),
                    );
                }
            }
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| TrainError::Io(dir.join(PREVIEW), std::io::Error::other(e)))?;
    let history = dir.join("previews");
    std::fs::create_dir_all(&history).map_err(|e| TrainError::Io(history.clone(), e))?;
    for path in [
        dir.join(PREVIEW),
        history.join(format!("step_{step:08}.png")),
    ] {
        crate::atomic::write_atomic(&path, &png).map_err(|e| TrainError::Io(path, e))?;
    }
    Ok(())
}

/// The daemon job for [`faceswap_protocol::TrainJob`].
pub fn run_job(
    job: &faceswap_protocol::TrainJob,
    ctx: &crate::jobs::JobContext,
) -> Result<(), crate::jobs::JobError> {
    use crate::jobs::JobError;
    let faceswap_protocol::TrainJob {
        faceset_a,
        faceset_b,
        model_dir,
        settings,
    } = job;
    let devices = crate::device::job_devices(settings.device.as_deref(), ctx)?;
    let Some((&device, replicas)) = devices.split_first() else {
        return Err(JobError::Failed("no compute device".into()));
    };
    let req = TrainRequest {
        faceset_a: faceset_a.into(),
        faceset_b: faceset_b.into(),
        model_dir: model_dir.into(),
        settings: (**settings).clone(),
        device,
        replicas: replicas.to_vec(),
    };
    let size = match settings.resolution {
        0 => "at the preset's size".to_string(),
        r => format!("{r} px"),
    };
    ctx.log(format!(
        "training {} {size} on {} from {faceset_a} (A) and {faceset_b} (B) into {model_dir}",
        settings.archi,
        devices
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" + ")
    ));
    let result = run_training(&req, |r| {
        ctx.progress(
            r.step,
            Some(r.total),
            &format!(
                "steps; loss A {:.4} B {:.4}; {:.0} ms/step",
                r.loss_a, r.loss_b, r.ms
            ),
        );
        !ctx.should_stop()
    });
    match result {
        Ok(summary) => {
            for line in summary.report() {
                ctx.log(line);
            }
            Ok(())
        }
        Err(TrainError::Stopped(step)) => {
            ctx.log(format!("stopped at step {step}; checkpoint saved"));
            Err(JobError::Stopped)
        }
        Err(e) => Err(JobError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_log_trim_keeps_rows_up_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LOSS_LOG);
        std::fs::write(
            &p,
            "step,loss_a,loss_b,lr,ms\n1,1,1,1,1\n2,1,1,1,1\n3,1,1,1,1\n4,1,1",
        )
        .unwrap();
        trim_loss_log(&p, 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "step,loss_a,loss_b,lr,ms\n1,1,1,1,1\n2,1,1,1,1\n"
        );
    }

    #[test]
    fn a_model_folder_refuses_another_architecture() {
        let dir = tempfile::tempdir().unwrap();
        let s = TrainSettings {
            resolution: 32,
            ..TrainSettings::default()
        };
        open_model(dir.path(), &s).unwrap();
        assert!(open_model(dir.path(), &s).is_ok());
        let other = TrainSettings {
            archi: "liae".into(),
            ..s.clone()
        };
        let err = open_model(dir.path(), &other).unwrap_err().to_string();
        assert!(err.contains("was created as df 32 px"), "{err}");
        let bad = TrainSettings {
            resolution: 33,
            ..s
        };
        let fresh = tempfile::tempdir().unwrap();
        assert!(open_model(fresh.path(), &bad).is_err());
    }
}
