//! The optimisation step of a swap model (SAEHD or Phaze-A): DFL's loss on both sides,
//! gradient accumulation over micro-batches, data parallelism over several devices, optional
//! mixed precision with loss scaling, clip by global norm or autoclip, one optimiser step at the
//! scheduled learning rate, and the trainer state as bytes for checkpoints. Data and the job
//! around it live in the daemon.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer, RmsPropConfig,
};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, FloatDType, Tensor};

use crate::batch::SideBatch;
use crate::face_model::{FaceModel, ModelOptions};
use crate::losses::{SideLossOptions, saehd_side_loss};
use crate::optim::{AdaBeliefConfig, LrSchedule};
use crate::weights::{materialise, random_draws, step_seed, weight_values};

pub use faceswap_options::{OptimizerKind, Precision};

/// How to train, fixed for a run (changes take effect on resume).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerConfig {
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Learning-rate dropout (DFL p = 0.3) — AdaBelief only, as in DFL.
    pub lr_dropout: bool,
    /// Scale all gradients together when their global L2 norm exceeds this (DFL clipgrad: 1.0).
    pub clip_norm: Option<f32>,
    /// faceswap's autoclip: clip by global norm at the 10th percentile of the norms seen so far
    /// (the last 10 000 steps); the history is part of the checkpoint, so resumes stay exact.
    pub autoclip: bool,
    /// Learning rate per step.
    pub schedule: LrSchedule,
    /// Split each batch into this many micro-batches and accumulate their gradients.
    pub micro_batches: usize,
    /// Loss terms.
    pub loss: SideLossOptions,
    /// Seeds the weights and every step's random draws (LRD), so a run is reproducible and a
    /// resumed run continues bit-exactly.
    pub seed: u64,
    /// Parts kept frozen (no updates) for the first this-many steps: the parts loaded from a
    /// pretrained model, so the rest can catch up before they move.
    pub freeze: Option<(Vec<crate::saehd::ModelPart>, u64)>,
    /// Compute precision of the forward and backward passes; the weights and the optimiser stay
    /// in f32.
    pub precision: Precision,
}

/// The half-precision dtype a mixed-precision step computes in (`None`: all f32). Mixed
/// precision (f16/bf16) runs the networks on a half-precision copy of the f32 master weights,
/// takes the loss in f32, and scales it dynamically so small gradients survive (faceswap
/// `mixed_precision`, Keras' `LossScaleOptimizer`).
fn compute_dtype(precision: Precision) -> Option<FloatDType> {
    match precision {
        Precision::F32 => None,
        Precision::F16 => Some(FloatDType::F16),
        Precision::Bf16 => Some(FloatDType::BF16),
    }
}

/// Dynamic loss scaling (Keras `LossScaleOptimizer`): start at 2^15, halve and skip the update
/// when a gradient overflows, double after 2000 finite steps in a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScale {
    /// The factor the loss is multiplied by before the backward pass.
    pub scale: f32,
    /// Finite steps since the scale last changed.
    pub good_steps: u32,
}

impl Default for LossScale {
    fn default() -> Self {
        LossScale {
            scale: 32768.0,
            good_steps: 0,
        }
    }
}

impl LossScale {
    const GROWTH_INTERVAL: u32 = 2000;

    /// Records one step's gradients: `true` when they are finite and the update should happen.
    pub fn update(&mut self, grads_finite: bool) -> bool {
        if grads_finite {
            self.good_steps += 1;
            if self.good_steps >= Self::GROWTH_INTERVAL {
                self.scale = (self.scale * 2.0).min(f32::MAX / 2.0);
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        }
        grads_finite
    }
}

/// Casts the float parameters to the compute dtype; the cast is part of the autodiff graph, so
/// gradients reach the f32 master parameters. Batch norms stay in f32 (their running statistics
/// are f32, and Keras' mixed policy keeps them there too).
struct CastParams {
    dtype: FloatDType,
    /// For each module entered: whether it is a batch norm.
    in_batch_norm: Vec<bool>,
}

impl ModuleMapper for CastParams {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.in_batch_norm
            .push(container_type == "Struct:BatchNorm");
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.in_batch_norm.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.in_batch_norm.last() == Some(&true) {
            return param;
        }
        let dtype = self.dtype;
        param.map(|t| t.cast(dtype))
    }
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            optimizer: OptimizerKind::AdaBelief,
            lr_dropout: false,
            clip_norm: None,
            autoclip: false,
            schedule: LrSchedule::default(),
            micro_batches: 1,
            loss: SideLossOptions {
                masked: true,
                eyes_mouth: false,
                learn_mask: true,
                image_losses: [None; 4],
            },
            seed: 0,
            freeze: None,
            precision: Precision::F32,
        }
    }
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean loss of side A over the batch.
    pub loss_a: f32,
    /// Mean loss of side B.
    pub loss_b: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping (measured only when clipping is on).
    pub grad_norm: Option<f32>,
    /// Mixed precision: the loss scale this step used, and whether its gradients overflowed
    /// (then the update was skipped and the scale halved).
    pub loss_scale: Option<(f32, bool)>,
}

/// The trainer could not save or restore its state.
#[derive(Debug, thiserror::Error)]
pub enum TrainStateError {
    /// burn could not encode or decode the record.
    #[error("model or optimiser state: {0}")]
    Record(String),
    /// Pretrained parts could not be taken.
    #[error("pretrained parts: {0}")]
    Pretrained(String),
}

/// A swap model (SAEHD or Phaze-A) with its optimiser state and step counter.
pub struct FaceTrainer {
    model: FaceModel,
    optimizer: ModuleOptimizer,
    cfg: TrainerConfig,
    resolution: usize,
    device: Device,
    /// Further devices each step's batch is split over (data parallelism); the weights and the
    /// optimiser live on `device`.
    replicas: Vec<Device>,
    step: u64,
    /// Autoclip's global gradient norms, oldest first.
    norms: std::collections::VecDeque<f32>,
    /// Mixed precision's dynamic loss scale.
    loss_scale: LossScale,
}

/// The settings of one step that every device's part of it shares.
struct PartStep<'a> {
    /// The whole batch (each micro-batch's loss is weighted by its share of it).
    batch: usize,
    micro_batches: usize,
    half: Option<FloatDType>,
    scale: Option<f32>,
    resolution: usize,
    loss: SideLossOptions,
    /// Where the weights live: every part's gradients end up there.
    main: &'a Device,
}

/// One device's part of a step: its gradients (on the trainer's device) and its share of the
/// losses.
struct PartResult {
    grads: GradientsParams,
    loss_a: f32,
    loss_b: f32,
}

impl PartStep<'_> {
    /// Forward and backward of `model` (on `device`) over the batch rows `shard` (start, len),
    /// in micro-batches whose gradients are accumulated.
    fn run(
        &self,
        model: FaceModel,
        device: Device,
        a: &SideBatch,
        b: &SideBatch,
        shard: (usize, usize),
    ) -> PartResult {
        let (start, len) = shard;
        let (a, b) = (a.narrow(start, len), b.narrow(start, len));
        let (a, b) = if &device == self.main {
            (a, b)
        } else {
            (a.to_device(&device), b.to_device(&device))
        };
        let mut acc = GradientsAccumulator::new();
        let (mut loss_a, mut loss_b) = (0.0f32, 0.0f32);
        for (at, len) in split(len, self.micro_batches.min(len).max(1)) {
            let (ma, mb) = (a.narrow(at, len), b.narrow(at, len));
            // Mixed precision: the networks run on a half-precision view of the master weights,
            // cast afresh for each backward pass (burn's graph is consumed by one).
            let compute = match self.half {
                Some(dtype) => model.clone().map(&mut CastParams {
                    dtype,
                    in_batch_norm: Vec::new(),
                }),
                None => model.clone(),
            };
            let (out_a, out_b) = match self.half {
                Some(dtype) => {
                    let (oa, ob) = compute.forward_train(
                        ma.warped.clone().cast(dtype),
                        mb.warped.clone().cast(dtype),
                    );
                    // The loss is taken in f32.
                    let f32 = FloatDType::F32;
                    (
                        (oa.0.cast(f32), oa.1.cast(f32)),
                        (ob.0.cast(f32), ob.1.cast(f32)),
                    )
                }
                None => compute.forward_train(ma.warped.clone(), mb.warped.clone()),
            };
            let share = len as f32 / self.batch as f32;
            // Each micro-batch's mean loss weighted by its share of the whole batch.
            let la = saehd_side_loss(out_a.0, out_a.1, &ma, self.resolution, self.loss)
                .mul_scalar(share);
            let lb = saehd_side_loss(out_b.0, out_b.1, &mb, self.resolution, self.loss)
                .mul_scalar(share);
            loss_a += la.clone().into_scalar::<f32>();
            loss_b += lb.clone().into_scalar::<f32>();
            let loss = match self.scale {
                Some(s) => (la + lb).mul_scalar(s),
                None => la + lb,
            };
            let grads = loss.backward();
            acc.accumulate(&model, GradientsParams::from_grads(grads, &model));
        }
        let grads = acc.grads();
        let grads = if &device == self.main {
            grads
        } else {
            grads.to_device(self.main, &model)
        };
        PartResult {
            grads,
            loss_a,
            loss_b,
        }
    }
}

/// `total` rows in `parts` consecutive (start, len) runs, equal but for the last, which takes
/// the remainder (as the micro-batches always were).
fn split(total: usize, parts: usize) -> Vec<(usize, usize)> {
    let per = total / parts;
    (0..parts)
        .map(|k| {
            let len = if k + 1 == parts { total - per * k } else { per };
            (per * k, len)
        })
        .collect()
}

/// Tags the trainer state's second layout (loss scale, then autoclip's norms).
const EXTRA_STATE_V2: &[u8; 8] = b"FSTRAIN2";

/// Autoclip's percentile and history length (faceswap `lib/model/autoclip.py`).
const AUTOCLIP_PERCENTILE: f64 = 10.0;
const AUTOCLIP_HISTORY: usize = 10_000;

/// The `p`-th percentile of `values` with linear interpolation between ranks (NumPy's default).
pub fn percentile(values: &[f32], p: f64) -> f32 {
    let mut v: Vec<f32> = values.to_vec();
    v.sort_by(f32::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let f = (rank - lo as f64) as f32;
    v[lo] + (v[hi] - v[lo]) * f
}

impl FaceTrainer {
    /// A fresh model on `device` (an autodiff device: `Device::flex().autodiff()` on the CPU),
    /// its weights drawn from `cfg.seed`.
    pub fn new(opts: impl Into<ModelOptions>, device: &Device, cfg: TrainerConfig) -> Self {
        let opts: ModelOptions = opts.into();
        let _draws = random_draws();
        device.seed(cfg.seed);
        let optimizer = match cfg.optimizer {
            OptimizerKind::AdaBelief => AdaBeliefConfig {
                lr_dropout: cfg.lr_dropout.then_some(0.3),
                ..AdaBeliefConfig::default()
            }
            .init(),
            OptimizerKind::Adam => AdamConfig::new().with_epsilon(1e-7).init(),
            OptimizerKind::AdamW => AdamWConfig::new()
                .with_epsilon(1e-7)
                .with_weight_decay(0.004)
                .init(),
            OptimizerKind::RmsProp => RmsPropConfig::new()
                .with_alpha(0.9)
                .with_momentum(0.0)
                .with_epsilon(1e-7)
                .init(),
            OptimizerKind::Lion => crate::optim::LionConfig::default().init(),
        };
        let model = opts.init(device);
        materialise(&model);
        FaceTrainer {
            model,
            optimizer,
            resolution: opts.resolution(),
            device: device.clone(),
            replicas: Vec::new(),
            cfg,
            step: 0,
            norms: Default::default(),
            loss_scale: LossScale::default(),
        }
    }

    /// The trainer's own state for the checkpoint: autoclip's norm history (little-endian f32s).
    pub fn extra_state(&self) -> Vec<u8> {
        let mut out = EXTRA_STATE_V2.to_vec();
        out.extend(self.loss_scale.scale.to_le_bytes());
        out.extend(self.loss_scale.good_steps.to_le_bytes());
        out.extend(self.norms.iter().flat_map(|n| n.to_le_bytes()));
        out
    }

    /// Restores [`Self::extra_state`]; empty bytes (older checkpoints) mean no history.
    pub fn restore_extra(&mut self, bytes: &[u8]) -> Result<(), String> {
        // Version 1 was autoclip's norms alone; version 2 leads with a tag and the loss scale.
        let bytes = match bytes.strip_prefix(EXTRA_STATE_V2.as_slice()) {
            Some(rest) if rest.len() >= 8 => {
                self.loss_scale = LossScale {
                    scale: f32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]),
                    good_steps: u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]),
                };
                &rest[8..]
            }
            Some(_) => return Err("trainer state is cut short".into()),
            None => bytes,
        };
        if !bytes.len().is_multiple_of(4) {
            return Err(format!("trainer state of {} bytes is damaged", bytes.len()));
        }
        self.norms = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(())
    }

    /// The model as trained so far.
    pub fn model(&self) -> &FaceModel {
        &self.model
    }

    /// Takes `parts` from a pretrained model's weights (same architecture) into this fresh
    /// model; the other parts keep their fresh initialisation. Only before the first step.
    pub fn load_parts(
        &mut self,
        opts: impl Into<ModelOptions>,
        pretrained: Vec<u8>,
        parts: &[crate::saehd::ModelPart],
    ) -> Result<(), TrainStateError> {
        if self.step != 0 {
            return Err(TrainStateError::Pretrained(
                "they load into a new model only (this one has trained already)".into(),
            ));
        }
        let from = FaceModel::load(&opts.into(), &self.device, pretrained)
            .map_err(|e| TrainStateError::Pretrained(e.to_string()))?;
        self.model = self
            .model
            .clone()
            .with_parts_of(&from, parts)
            .map_err(TrainStateError::Pretrained)?;
        Ok(())
    }

    /// Optimiser steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The training settings.
    pub fn config(&self) -> &TrainerConfig {
        &self.cfg
    }

    /// Data parallelism: each step's batch is split over the trainer's device and `replicas`
    /// (autodiff devices, like the trainer's). Each runs forward and backward on its share on a
    /// copy of the weights; the gradients are summed on the trainer's device, which takes the
    /// one optimiser step, and the next step's copies start from the new weights. The sum of
    /// the share-weighted gradients is the whole batch's gradient, so this trains as one device
    /// would with the whole batch.
    pub fn with_replicas(mut self, replicas: Vec<Device>) -> Self {
        self.replicas = replicas;
        self
    }

    /// One optimiser step on a batch of each side; the batch is split into the configured
    /// number of micro-batches whose gradients are accumulated.
    pub fn train_step(&mut self, a: &SideBatch, b: &SideBatch) -> StepStats {
        let _draws = random_draws();
        self.device.seed(step_seed(self.cfg.seed, self.step));
        // Freezing is a function of the step, so a resumed run freezes exactly the same steps;
        // parts are trainable by default, so only the frozen steps and the first after change.
        if let Some((parts, steps)) = &self.cfg.freeze
            && self.step <= *steps
        {
            let trainable = self.step == *steps;
            self.model = self.model.clone().with_parts_trainable(parts, trainable);
        }
        let batch = a.batch_size();
        let half = compute_dtype(self.cfg.precision);
        let scale = half.map(|_| self.loss_scale.scale);
        let devices: Vec<&Device> = std::iter::once(&self.device)
            .chain(&self.replicas)
            .take(batch.max(1))
            .collect();
        for device in &devices[1..] {
            device.seed(step_seed(self.cfg.seed, self.step));
        }
        let part = PartStep {
            batch,
            micro_batches: self.cfg.micro_batches,
            half,
            scale,
            resolution: self.resolution,
            loss: self.cfg.loss,
            main: &self.device,
        };
        let shards = split(batch, devices.len());
        let results: Vec<PartResult> = if devices.len() == 1 {
            vec![part.run(self.model.clone(), self.device.clone(), a, b, (0, batch))]
        } else {
            std::thread::scope(|scope| {
                let part = &part;
                let handles: Vec<_> = devices
                    .iter()
                    .zip(shards)
                    .enumerate()
                    .map(|(k, (device, shard))| {
                        let model = self.model.clone();
                        // The trainer's own share uses its weights; the others take copies.
                        let replica = (k > 0).then(|| (*device).clone());
                        scope.spawn(move || match replica {
                            Some(device) => {
                                let copy = model.fork(&device);
                                part.run(copy, device, a, b, shard)
                            }
                            None => part.run(model, part.main.clone(), a, b, shard),
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        };
        let mut acc = GradientsAccumulator::new();
        let (mut loss_a, mut loss_b) = (0.0f32, 0.0f32);
        for r in results {
            loss_a += r.loss_a;
            loss_b += r.loss_b;
            acc.accumulate(&self.model, r.grads);
        }
        let mut grads = acc.grads();
        let lr = self.cfg.schedule.at(self.step);
        // Loss scaling and clipping both need the global norm: one pass serves both.
        let mut norm = None;
        let loss_scale = scale.map(|s| {
            scale_grads(&self.model, &mut grads, 1.0 / s);
            let n = global_norm(&self.model, &grads);
            norm = Some(n);
            (s, !self.loss_scale.update(n.is_finite()))
        });
        if let Some((_, true)) = loss_scale {
            // Overflowed: no update this step, a smaller scale next time.
            self.step += 1;
            return StepStats {
                loss_a,
                loss_b,
                lr,
                grad_norm: None,
                loss_scale,
            };
        }
        let grad_norm = if self.cfg.autoclip {
            let norms = &mut self.norms;
            Some(clip_global_norm(&self.model, &mut grads, norm, |norm| {
                if norms.len() == AUTOCLIP_HISTORY {
                    norms.pop_front();
                }
                norms.push_back(norm);
                Some(percentile(norms.make_contiguous(), AUTOCLIP_PERCENTILE))
            }))
        } else {
            self.cfg
                .clip_norm
                .map(|max| clip_global_norm(&self.model, &mut grads, norm, |_| Some(max)))
        };
        self.model = self.optimizer.step(lr, self.model.clone(), grads);
        self.step += 1;
        StepStats {
            loss_a,
            loss_b,
            lr,
            grad_norm,
            loss_scale,
        }
    }

    /// Every weight value in the module's visiting order: compares two models' weights (their
    /// saved records also carry parameter ids, which differ between separately built models).
    pub fn weight_values(&self) -> Vec<f32> {
        weight_values(&self.model)
    }

    /// Weights and optimiser state as bytes (burnpack each), for a checkpoint.
    pub fn save_state(&self) -> Result<(Vec<u8>, Vec<u8>), TrainStateError> {
        state_bytes(&self.model, &self.optimizer)
    }

    /// Restores weights, optimiser state and the step count saved by [`Self::save_state`].
    pub fn restore_state(
        &mut self,
        model: Vec<u8>,
        optim: Vec<u8>,
        step: u64,
    ) -> Result<(), TrainStateError> {
        let (loaded, optimizer) = load_state(self.model.clone(), &self.optimizer, model, optim)?;
        self.model = loaded.fork(&self.device);
        self.optimizer = optimizer;
        self.step = step;
        Ok(())
    }
}

/// A module's weights and its optimiser's state as bytes (burnpack each).
pub(crate) fn state_bytes<M: Module + Clone>(
    model: &M,
    optimizer: &ModuleOptimizer,
) -> Result<(Vec<u8>, Vec<u8>), TrainStateError> {
    let weights = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| TrainStateError::Record(e.to_string()))?;
    let optim = optimizer
        .into_bytes()
        .map_err(|e| TrainStateError::Record(e.to_string()))?;
    Ok((weights.to_vec(), optim.to_vec()))
}

/// `model` and `optimizer` with the state [`state_bytes`] wrote.
pub(crate) fn load_state<M: Module>(
    model: M,
    optimizer: &ModuleOptimizer,
    weights: Vec<u8>,
    optim: Vec<u8>,
) -> Result<(M, ModuleOptimizer), TrainStateError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights))
        .map_err(|e| TrainStateError::Record(e.to_string()))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| TrainStateError::Record(e.to_string()))?;
    let optimizer = optimizer
        .clone()
        .from_bytes(Bytes::from_bytes_vec(optim))
        .map_err(|e| TrainStateError::Record(e.to_string()))?;
    Ok((model, optimizer))
}

/// Global L2 norm of all gradients (NaN or infinite when one overflowed).
fn global_norm(model: &FaceModel, grads: &GradientsParams) -> f32 {
    // Summed on the device, read once: one synchronisation per step on a GPU, not one per tensor.
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let sq = g.powf_scalar(2.0).sum(); // [1]
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + sq,
                    None => sq,
                });
            }
        }
    }
    let mut norm = SquaredNorm { grads, sum: None };
    model.visit(&mut norm);
    norm.sum.map_or(0.0, |s| s.into_scalar::<f32>().sqrt())
}

/// Multiplies every gradient by `factor`.
fn scale_grads(model: &FaceModel, grads: &mut GradientsParams, factor: f32) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    model.visit(&mut Scale { grads, factor });
}

/// Scales every gradient by one factor when their global L2 norm (`norm` when already known)
/// exceeds the limit `limit` gives for that norm (DFL clipgrad, TF `clip_by_global_norm`, which
/// burn's per-tensor clip is not); returns the norm.
fn clip_global_norm(
    model: &FaceModel,
    grads: &mut GradientsParams,
    norm: Option<f32>,
    limit: impl FnOnce(f32) -> Option<f32>,
) -> f32 {
    let total = norm.unwrap_or_else(|| global_norm(model, grads));
    if let Some(max) = limit(total)
        && total > max
        && total.is_finite()
    {
        scale_grads(model, grads, max / total);
    }
    total
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::losses::SideLossOptions;
    use crate::saehd::SaehdOptions;
    use burn::tensor::TensorData;

    /// Smooth gradients as stand-in faces: side A horizontal, side B vertical; full masks.
    pub(super) fn side(vertical: bool, device: &Device) -> SideBatch {
        let mut d = Vec::with_capacity(2 * 3 * 32 * 32);
        for _ in 0..2 {
            for c in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        let t = if vertical { y } else { x } as f32 / 31.0;
                        d.push(0.2 + 0.6 * t * (c as f32 + 1.0) / 3.0);
                    }
                }
            }
        }
        let img = Tensor::<4>::from_data(TensorData::new(d, [2, 3, 32, 32]), device);
        let ones = Tensor::<4>::ones([2, 1, 32, 32], device);
        SideBatch {
            warped: img.clone(),
            target: img,
            mask: ones.clone(),
            loss_mask: ones.clone(),
            em_mask: ones.mul_scalar(0.1),
        }
    }

    /// A batch of `batch` different faces (a per-sample wave pattern) with uneven masks, so
    /// each sample's loss and gradient differ.
    pub(super) fn varied_side(batch: usize, seed: u32, device: &Device) -> SideBatch {
        let r = 32;
        let wave = |k: usize, c: usize, y: usize, x: usize| {
            let f = (seed as usize * 7 + k * 3 + c) as f32;
            0.5 + 0.4 * ((x as f32 * 0.21 * (1.0 + f * 0.1)) + (y as f32 * 0.13 * f).cos()).sin()
        };
        let mut img = Vec::with_capacity(batch * 3 * r * r);
        let mut mask = Vec::with_capacity(batch * r * r);
        for k in 0..batch {
            for c in 0..3 {
                for y in 0..r {
                    for x in 0..r {
                        img.push(wave(k, c, y, x));
                    }
                }
            }
            for y in 0..r {
                for x in 0..r {
                    // A disc whose radius differs per sample.
                    let (dx, dy) = (x as f32 - 15.5, y as f32 - 15.5);
                    let inside = dx * dx + dy * dy < ((10 + 2 * k) as f32).powi(2);
                    mask.push(if inside { 1.0 } else { 0.0 });
                }
            }
        }
        let faces = Tensor::<4>::from_data(TensorData::new(img, [batch, 3, r, r]), device);
        let mask = Tensor::<4>::from_data(TensorData::new(mask, [batch, 1, r, r]), device);
        SideBatch {
            warped: faces.clone().flip([3]),
            target: faces,
            mask: mask.clone(),
            loss_mask: mask.clone().add_scalar(0.25).clamp(0.0, 1.0),
            em_mask: mask.mul_scalar(0.3),
        }
    }

    pub(super) fn trainer(device: &Device, cfg: TrainerConfig) -> FaceTrainer {
        let opts = SaehdOptions::parse("df", 32, 16, 4, 4, 2).unwrap();
        FaceTrainer::new(&opts, device, cfg)
    }

    pub(super) fn cfg() -> TrainerConfig {
        TrainerConfig {
            schedule: LrSchedule {
                base: 1e-3,
                warmup: 2,
                cosine: None,
            },
            micro_batches: 2,
            lr_dropout: true,
            clip_norm: Some(1.0),
            loss: SideLossOptions {
                masked: true,
                eyes_mouth: true,
                learn_mask: true,
                image_losses: [None; 4],
            },
            seed: 7,
            ..TrainerConfig::default()
        }
    }

    /// The dtype of every float parameter.
    pub(super) fn param_dtypes(model: &FaceModel) -> Vec<burn::tensor::DType> {
        struct D(Vec<burn::tensor::DType>);
        impl ModuleVisitor for D {
            fn visit_float<const N: usize>(&mut self, param: &Param<Tensor<N>>) {
                self.0.push(param.val().dtype());
            }
        }
        let mut d = D(Vec::new());
        model.visit(&mut d);
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use crate::saehd::SaehdOptions;

    /// The total loss (A + B) of the first and the last of `steps` steps.
    fn losses_over(t: &mut FaceTrainer, a: &SideBatch, b: &SideBatch, steps: usize) -> (f32, f32) {
        let first = t.train_step(a, b);
        let last = (1..steps).fold(first, |_, _| t.train_step(a, b));
        (first.loss_a + first.loss_b, last.loss_a + last.loss_b)
    }

    /// How many values differ in their bits.
    fn bit_differences(a: &[f32], b: &[f32]) -> usize {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count()
    }

    fn weights(t: &FaceTrainer) -> Vec<f32> {
        t.weight_values()
    }

    fn max_difference(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn two_devices_take_the_same_steps_as_one_device_with_the_whole_batch() {
        // Two logical CPU devices: the second share runs on a fork of the weights in its own
        // thread, and its gradients move back to the trainer's device to be summed.
        let device = Device::flex().autodiff();
        let cfg = TrainerConfig {
            micro_batches: 1,
            ..cfg()
        };
        let (a, b) = (side(false, &device), side(true, &device));
        let mut one = trainer(&device, cfg.clone());
        let mut two = trainer(&device, cfg).with_replicas(vec![device.clone()]);
        let start = weights(&one);
        assert_eq!(start, weights(&two));
        for _ in 0..3 {
            let (s1, s2) = (one.train_step(&a, &b), two.train_step(&a, &b));
            // The losses and the gradient's norm (before clipping) are the whole batch's.
            assert!(
                (s1.loss_a - s2.loss_a).abs() <= 1e-5 * s1.loss_a,
                "{s1:?} {s2:?}"
            );
            assert!(
                (s1.loss_b - s2.loss_b).abs() <= 1e-5 * s1.loss_b,
                "{s1:?} {s2:?}"
            );
            let (n1, n2) = (s1.grad_norm.unwrap(), s2.grad_norm.unwrap());
            assert!((n1 - n2).abs() <= 1e-5 * n1, "grad norm {n1} vs {n2}");
        }
        let (w1, w2) = (weights(&one), weights(&two));
        let moved = max_difference(&start, &w1);
        assert!(moved > 1e-3, "3 steps moved the weights by only {moved}");
        let apart = max_difference(&w1, &w2);
        assert!(apart <= 1e-5, "weights differ by {apart} after 3 steps");
    }

    #[test]
    fn micro_batches_through_the_trainer_take_the_same_steps_as_one_whole_batch() {
        // The trainer's own step: batch split, share weighting, masked + eyes/mouth loss,
        // learned mask, clipping, lr dropout and AdaBelief, with 1, 2 and 3 micro-batches
        // (3 splits the 4 faces unevenly: 1, 1, 2).
        let device = Device::flex().autodiff();
        let (a, b) = (varied_side(4, 1, &device), varied_side(4, 2, &device));
        let whole = TrainerConfig {
            micro_batches: 1,
            ..cfg()
        };
        let mut one = trainer(&device, whole.clone());
        let start = weights(&one);
        let reference: Vec<StepStats> = (0..3).map(|_| one.train_step(&a, &b)).collect();
        let w1 = weights(&one);
        let moved = max_difference(&start, &w1);
        assert!(moved > 1e-3, "3 steps moved the weights by only {moved}");
        for n in [2, 3] {
            let mut split = trainer(
                &device,
                TrainerConfig {
                    micro_batches: n,
                    ..whole.clone()
                },
            );
            for (k, r) in reference.iter().enumerate() {
                let s = split.train_step(&a, &b);
                let close = |x: f32, y: f32| (x - y).abs() <= 1e-5 * x.abs().max(1e-3);
                assert!(
                    close(r.loss_a, s.loss_a) && close(r.loss_b, s.loss_b),
                    "{n} micro-batches, step {k}: {r:?} vs {s:?}"
                );
                let (g1, g2) = (r.grad_norm.unwrap(), s.grad_norm.unwrap());
                assert!(
                    close(g1, g2),
                    "{n} micro-batches, step {k}: grad norm {g1} vs {g2}"
                );
            }
            let apart = max_difference(&w1, &weights(&split));
            println!("{n} micro-batches: weights within {apart:e} of the whole batch's");
            assert!(
                apart <= 1e-5,
                "{n} micro-batches: weights differ by {apart}"
            );
        }
    }

    #[test]
    fn loss_falls_on_a_fixed_pair_with_accumulation_and_clipping() {
        let device = Device::flex().autodiff();
        let mut trainer = trainer(&device, cfg());
        let (a, b) = (side(false, &device), side(true, &device));
        let first = trainer.train_step(&a, &b);
        let mut last = first;
        for _ in 0..39 {
            last = trainer.train_step(&a, &b);
        }
        assert_eq!(trainer.step(), 40);
        let (f, l) = (first.loss_a + first.loss_b, last.loss_a + last.loss_b);
        assert!(l.is_finite() && l < 0.6 * f, "loss {f} -> {l}");
        assert!(first.grad_norm.is_some_and(|n| n > 0.0));
    }

    #[test]
    fn adam_trains_too() {
        let device = Device::flex().autodiff();
        let mut trainer = trainer(
            &device,
            TrainerConfig {
                optimizer: OptimizerKind::Adam,
                lr_dropout: false,
                ..cfg()
            },
        );
        let (a, b) = (side(false, &device), side(true, &device));
        let (f, l) = losses_over(&mut trainer, &a, &b, 30);
        assert!(l < 0.7 * f);
    }

    #[test]
    fn adamw_rmsprop_and_lion_train_too() {
        for (optimizer, lr) in [
            (OptimizerKind::AdamW, 1e-3),
            (OptimizerKind::RmsProp, 1e-3),
            (OptimizerKind::Lion, 1e-3),
        ] {
            let device = Device::flex().autodiff();
            let base = cfg();
            let mut trainer = trainer(
                &device,
                TrainerConfig {
                    optimizer,
                    lr_dropout: false,
                    schedule: LrSchedule {
                        base: lr,
                        ..base.schedule.clone()
                    },
                    ..base
                },
            );
            let (a, b) = (side(false, &device), side(true, &device));
            let (f, l) = losses_over(&mut trainer, &a, &b, 30);
            println!("{optimizer:?}: loss {f:.3} -> {l:.3}");
            assert!(
                l.is_finite() && l < 0.8 * f,
                "{optimizer:?}: loss {f} -> {l}"
            );
        }
    }

    /// Pretrain, load only the encoder into a fresh model, freeze it for 3 steps: it stays
    /// bit-identical to the pretrained encoder for those steps and moves after; the other parts
    /// start from the fresh model's own initialisation.
    #[test]
    fn a_pretrained_encoder_loads_alone_and_stays_frozen_for_n_steps() {
        use crate::saehd::ModelPart::{self, DecoderA, DecoderB, Encoder, Inter};
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let device = Device::flex().autodiff();
        let (a, b) = (side(false, &device), side(true, &device));
        let plain = |seed| TrainerConfig {
            seed,
            lr_dropout: false,
            ..cfg()
        };
        let mut pre = trainer(&device, plain(1));
        for _ in 0..3 {
            pre.train_step(&a, &b);
        }
        let (pretrained, _) = pre.save_state().unwrap();
        let part = |t: &FaceTrainer, p: ModelPart| bits(t.model().part_values(p));
        let fresh = trainer(&device, plain(2));
        let mut t = trainer(
            &device,
            TrainerConfig {
                freeze: Some((vec![Encoder], 3)),
                ..plain(2)
            },
        );
        let opts = SaehdOptions::parse("df", 32, 16, 4, 4, 2).unwrap();
        t.load_parts(&opts, pretrained, &[Encoder]).unwrap();
        assert_eq!(
            part(&t, Encoder),
            part(&pre, Encoder),
            "the encoder is the pretrained one"
        );
        for p in [Inter, DecoderA, DecoderB] {
            assert_eq!(part(&t, p), part(&fresh, p), "{p:?} is freshly initialised");
            assert_ne!(
                part(&t, p),
                part(&pre, p),
                "{p:?} is not the pretrained one"
            );
        }
        let before = part(&t, DecoderA);
        for step in 1..=3 {
            t.train_step(&a, &b);
            assert_eq!(
                part(&t, Encoder),
                part(&pre, Encoder),
                "frozen at step {step}"
            );
        }
        assert_ne!(part(&t, DecoderA), before, "the rest trains meanwhile");
        t.train_step(&a, &b);
        assert_ne!(
            part(&t, Encoder),
            part(&pre, Encoder),
            "unfrozen after 3 steps"
        );
        // Only new models take pretrained parts.
        let (again, _) = pre.save_state().unwrap();
        assert!(t.load_parts(&opts, again, &[Encoder]).is_err());
    }

    #[test]
    fn faceswap_losses_train_too() {
        use crate::faceswap_losses::ImageLoss;
        let device = Device::flex().autodiff();
        let base = cfg();
        let mut trainer = trainer(
            &device,
            TrainerConfig {
                loss: SideLossOptions {
                    image_losses: [
                        Some((ImageLoss::MsSsim, 1.0)),
                        Some((ImageLoss::Mae, 1.0)),
                        Some((ImageLoss::LaplacianPyramid, 1.0)),
                        Some((ImageLoss::FocalFrequency, 1.0)),
                    ],
                    ..base.loss
                },
                ..base
            },
        );
        let (a, b) = (side(false, &device), side(true, &device));
        let (f, l) = losses_over(&mut trainer, &a, &b, 30);
        assert!(l.is_finite() && l < 0.7 * f, "loss {f} -> {l}");
    }

    #[test]
    fn global_norm_clip_scales_every_gradient_by_one_factor() {
        let device = Device::flex().autodiff();
        let t = trainer(&device, cfg());
        let (a, b) = (side(false, &device), side(true, &device));
        let grads = || {
            let (oa, ob) = t.model.forward_train(a.warped.clone(), b.warped.clone());
            let loss = saehd_side_loss(oa.0, oa.1, &a, 32, t.cfg.loss)
                + saehd_side_loss(ob.0, ob.1, &b, 32, t.cfg.loss);
            GradientsParams::from_grads(loss.backward(), &t.model)
        };
        let mut clipped = grads();
        let norm = clip_global_norm(&t.model, &mut clipped, None, |_| Some(1e-3));
        assert!(norm > 1e-3, "the test needs a norm above the limit: {norm}");
        let new_norm = clip_global_norm(&t.model, &mut clipped, None, |_| None);
        assert!((new_norm - 1e-3).abs() < 1e-6, "{new_norm}");
        // Unchanged when below the limit.
        let mut same = grads();
        let n2 = clip_global_norm(&t.model, &mut same, None, |_| Some(norm * 2.0));
        assert_eq!(n2, norm);
    }

    #[test]
    fn the_seed_alone_decides_the_initial_weights() {
        let device = Device::flex().autodiff();
        let (x, y) = (trainer(&device, cfg()), trainer(&device, cfg()));
        let other = trainer(&device, TrainerConfig { seed: 8, ..cfg() });
        assert!(weights(&x) == weights(&y));
        assert!(weights(&x) != weights(&other));
    }

    #[test]
    fn percentile_interpolates_between_ranks_as_numpy() {
        let v: Vec<f32> = (1..=10).map(|x| x as f32).collect();
        assert!((percentile(&v, 10.0) - 1.9).abs() < 1e-6);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 10.0);
        assert_eq!(percentile(&[3.0], 10.0), 3.0);
    }

    /// Autoclip keeps a history of norms (its limit is their 10th percentile), and a run resumed from
    /// saved state plus that history ends bit-identical to an uninterrupted one.
    #[test]
    fn autoclip_keeps_its_history_and_resumes_exactly() {
        let device = Device::flex().autodiff();
        let (a, b) = (side(false, &device), side(true, &device));
        let auto = || TrainerConfig {
            autoclip: true,
            clip_norm: None,
            ..cfg()
        };
        let mut straight = trainer(&device, auto());
        let norms: Vec<f32> = (0..6)
            .map(|_| straight.train_step(&a, &b).grad_norm.unwrap())
            .collect();
        // Tag, loss scale and its count, then one f32 per step.
        assert_eq!(straight.extra_state().len(), 8 + 8 + 6 * 4);
        println!("autoclip norms {norms:?}");
        let mut first = trainer(&device, auto());
        for _ in 0..3 {
            first.train_step(&a, &b);
        }
        let (m, o) = first.save_state().unwrap();
        let extra = first.extra_state();
        let mut resumed = trainer(&device, auto());
        resumed.restore_state(m, o, 3).unwrap();
        resumed.restore_extra(&extra).unwrap();
        for _ in 0..3 {
            resumed.train_step(&a, &b);
        }
        assert_eq!(resumed.extra_state(), straight.extra_state());
        assert_eq!(bit_differences(&weights(&resumed), &weights(&straight)), 0);
        // Without the history the resumed run would clip differently.
        assert!(resumed.restore_extra(&[1, 2, 3]).is_err());
    }

    #[test]
    fn restored_state_continues_bit_exactly() {
        let device = Device::flex().autodiff();
        let (a, b) = (side(false, &device), side(true, &device));
        let mut straight = trainer(&device, cfg());
        for _ in 0..6 {
            straight.train_step(&a, &b);
        }
        let mut first = trainer(&device, cfg());
        for _ in 0..3 {
            first.train_step(&a, &b);
        }
        let (m, o) = first.save_state().unwrap();
        drop(first);
        let mut resumed = trainer(&device, cfg());
        // Disturb its weights and moments: restore must overwrite all of them.
        resumed.train_step(&a, &b);
        resumed.train_step(&b, &a);
        resumed.restore_state(m, o, 3).unwrap();
        for _ in 0..3 {
            resumed.train_step(&a, &b);
        }
        assert_eq!(resumed.step(), 6);
        let (w1, w2) = (weights(&resumed), weights(&straight));
        let differing = bit_differences(&w1, &w2);
        assert!(
            w1.len() == w2.len() && differing == 0,
            "{differing} of {} weights differ",
            w1.len()
        );
        // Garbage is refused, not a panic.
        assert!(resumed.restore_state(vec![1, 2, 3], vec![], 0).is_err());
    }
}

#[cfg(test)]
mod mixed_precision_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn loss_scale_halves_on_overflow_and_doubles_after_2000_good_steps() {
        let mut s = LossScale::default();
        assert!(!s.update(false));
        assert_eq!(s.scale, 16384.0);
        for _ in 0..1999 {
            assert!(s.update(true));
        }
        assert_eq!(s.scale, 16384.0);
        assert!(s.update(true));
        assert_eq!((s.scale, s.good_steps), (32768.0, 0));
    }

    #[test]
    fn mixed_precision_follows_the_f32_loss_and_keeps_f32_master_weights() {
        let device = Device::flex().autodiff();
        let (a, b) = (side(false, &device), side(true, &device));
        let mut curves = Vec::new();
        for precision in [Precision::F32, Precision::Bf16, Precision::F16] {
            let mut t = trainer(
                &device,
                TrainerConfig {
                    optimizer: OptimizerKind::Adam,
                    lr_dropout: false,
                    precision,
                    ..cfg()
                },
            );
            let losses: Vec<f32> = (0..30)
                .map(|_| {
                    let s = t.train_step(&a, &b);
                    if precision != Precision::F32 {
                        assert!(s.loss_scale.is_some());
                    }
                    s.loss_a + s.loss_b
                })
                .collect();
            let dtypes = param_dtypes(t.model());
            assert!(
                dtypes.iter().all(|d| *d == burn::tensor::DType::F32),
                "{dtypes:?}"
            );
            println!(
                "{precision:?}: loss {:.4} → {:.4}, loss scale {}",
                losses[0], losses[29], t.loss_scale.scale
            );
            curves.push(losses);
        }
        let f32_curve = &curves[0];
        for half in &curves[1..] {
            assert!(half[29] < 0.7 * half[0], "mixed precision learns: {half:?}");
            let gap = (half[29] - f32_curve[29]).abs() / f32_curve[29];
            assert!(
                gap < 0.15,
                "final loss {} vs f32 {}",
                half[29],
                f32_curve[29]
            );
        }
    }

    #[test]
    fn an_overflowing_step_is_skipped_and_the_scale_halved() {
        let device = Device::flex().autodiff();
        let (a, b) = (side(false, &device), side(true, &device));
        let mut t = trainer(
            &device,
            TrainerConfig {
                precision: Precision::Bf16,
                ..cfg()
            },
        );
        t.loss_scale.scale = f32::MAX;
        let before = t.weight_values();
        let s = t.train_step(&a, &b);
        assert_eq!(s.loss_scale, Some((f32::MAX, true)));
        assert_eq!(t.weight_values(), before, "no update on overflow");
        assert_eq!(t.loss_scale.scale, f32::MAX / 2.0);
        // The scale round-trips through the checkpoint's trainer state.
        let state = t.extra_state();
        let mut u = trainer(&device, cfg());
        u.restore_extra(&state).unwrap();
        assert_eq!(u.loss_scale, t.loss_scale);
        u.restore_extra(&[0u8; 8]).unwrap();
    }
}
