//! The training job: facesets → background batches → SAEHD or Phaze-A steps → checkpoints, previews and
//! the loss log in the model folder; resumes bit-exactly from the newest checkpoint.

pub mod augment;
pub mod average;
pub mod faceset;

mod batches;
mod model_file;
mod preview;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faceswap_models::ComputeDevice;
use faceswap_models::losses::SideLossOptions;
use faceswap_models::optim::{Cosine, LrSchedule};
use faceswap_models::train::{FaceTrainer, TrainerConfig};
use faceswap_protocol::TrainSettings;

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::masks::rules::MaskRules;
use augment::{AugmentOptions, yaw_bins};
use batches::*;
use faceset::{Faceset, FacesetError, load_faceset};
pub use model_file::*;
use preview::*;

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
                    "{} is damaged ({}); restore it or use a new model folder",
                    path.display(),
                    crate::toml_error::one_line(&text, &e)
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
        let theirs: ModelFile = toml::from_str(&text).map_err(|e| {
            TrainError::Settings(format!(
                "{}: {}",
                dir.display(),
                crate::toml_error::one_line(&text, &e)
            ))
        })?;
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
