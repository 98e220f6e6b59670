//! The GPU check's measurements, on any device: the smoke comparison (a seeded SAEHD-DF at
//! 32 px trains the same batches as on the CPU; its loss must fall as the CPU's does) and the
//! time and device memory of a training step. The `gpu_smoke` tests and `faceswapd gpu-check`
//! (what `installers/gpu-check.sh` runs on a GPU machine) both measure through here.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::optim::LrSchedule;
use crate::train::{OptimizerKind, Precision, TrainerConfig};
use crate::{FaceTrainer, ModelOptions, SaehdOptions, SideBatch};

/// The smoke run's face size, batch per side and step count.
pub const SMOKE_RES: usize = 32;
/// Faces per side in the smoke run.
pub const SMOKE_BATCH: usize = 4;
/// Steps in the smoke run.
pub const SMOKE_STEPS: usize = 40;

/// Fixed pixel values in [0.1, 0.9], the same on every device: `[batch, channels, res, res]`.
pub fn pixels(batch: usize, channels: usize, res: usize, seed: f32, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..batch * channels * res * res)
        .map(|i| 0.5 + 0.4 * (i as f32 * 0.0137 + seed).sin() * (i as f32 * 0.00071).cos())
        .collect();
    Tensor::<1>::from_floats(values.as_slice(), device).reshape([batch, channels, res, res])
}

/// One side's fixed batch at `res` px.
pub fn fixed_side(batch: usize, res: usize, seed: f32, device: &Device) -> SideBatch {
    SideBatch::unmasked(pixels(batch, 3, res, seed, device))
}

/// Seeded Adam without warmup: a few steps must show the trend.
pub fn seeded_adam(seed: u64, precision: Precision) -> TrainerConfig {
    TrainerConfig {
        optimizer: OptimizerKind::Adam,
        schedule: LrSchedule {
            base: 1e-3,
            warmup: 0,
            cosine: None,
        },
        seed,
        precision,
        ..TrainerConfig::default()
    }
}

/// The summed A + B loss of each of `steps` steps of a fresh seeded `opts` model on `device`
/// (a plain device: the autodiff one is made here), on fixed batches of [`SMOKE_BATCH`].
pub fn face_losses(
    opts: impl Into<ModelOptions>,
    res: usize,
    seed: u64,
    steps: usize,
    device: &Device,
) -> Vec<f32> {
    let device = device.clone().autodiff();
    let mut trainer = FaceTrainer::new(opts, &device, seeded_adam(seed, Precision::F32));
    let (a, b) = (
        fixed_side(SMOKE_BATCH, res, 0.3, &device),
        fixed_side(SMOKE_BATCH, res, 1.7, &device),
    );
    (0..steps)
        .map(|_| {
            let s = trainer.train_step(&a, &b);
            s.loss_a + s.loss_b
        })
        .collect()
}

/// The smoke run: SAEHD-DF at 32 px, every step's loss.
pub fn smoke_losses(device: &Device) -> Vec<f32> {
    let opts = SaehdOptions::parse("df", SMOKE_RES, 64, 16, 16, 8)
        .expect("the smoke run's SAEHD options are valid");
    face_losses(&opts, SMOKE_RES, 11, SMOKE_STEPS, device)
}

/// Mean of the first and of the last five losses.
pub fn loss_ends(losses: &[f32]) -> (f32, f32) {
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    let k = losses.len().min(5);
    (mean(&losses[..k]), mean(&losses[losses.len() - k..]))
}

/// Whether a device's smoke losses follow the CPU's: finite, the same start within 25 % (seeded
/// weights are drawn per backend), and a fall to within 0.15 of the CPU's relative fall.
pub fn follows_cpu_trend(device: &[f32], cpu: &[f32]) -> Result<(), String> {
    let (c0, c1) = loss_ends(cpu);
    let (g0, g1) = loss_ends(device);
    if !device.iter().all(|l| l.is_finite()) {
        return Err(format!("non-finite loss: {device:?}"));
    }
    if (g0 - c0).abs() >= 0.25 * c0 {
        return Err(format!("starts at {g0:.4}, the CPU at {c0:.4}"));
    }
    if (g1 / g0 - c1 / c0).abs() >= 0.15 {
        return Err(format!(
            "fell to {:.3} of its start, the CPU to {:.3}",
            g1 / g0,
            c1 / c0
        ));
    }
    Ok(())
}

/// What [`time_steps`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTiming {
    /// Mean wall time of a timed step, in milliseconds (device work included: each step reads
    /// its loss back, and the device is synchronised before the clock stops).
    pub ms_per_step: f64,
    /// The most memory burn's pools held on the device after any step (they keep pages for
    /// reuse, so this is the working set a card must have); `None` on a backend that does not
    /// report it (the CPU).
    pub peak_device_bytes: Option<u64>,
    /// Trainable parameters of the model.
    pub params: usize,
    /// The last step's A + B loss.
    pub loss: f32,
}

/// Times `steps` training steps (after `warmup` untimed ones, which compile the kernels) of a
/// fresh Adam model `opts` on `device` at `precision`, on fixed batches of `batch` per side.
pub fn time_steps(
    opts: impl Into<ModelOptions>,
    device: &Device,
    precision: Precision,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> StepTiming {
    let opts: ModelOptions = opts.into();
    let res = opts.resolution();
    let autodiff = device.clone().autodiff();
    let mut trainer = FaceTrainer::new(&opts, &autodiff, seeded_adam(1, precision));
    let (a, b) = (
        fixed_side(batch, res, 0.3, &autodiff),
        fixed_side(batch, res, 1.7, &autodiff),
    );
    let mut peak = None;
    let note_memory = |peak: &mut Option<u64>| {
        if let Some(usage) = device.memory_pool_usage() {
            *peak = Some(peak.unwrap_or(0).max(usage.bytes_reserved));
        }
    };
    let mut loss = f32::NAN;
    for _ in 0..warmup {
        let s = trainer.train_step(&a, &b);
        loss = s.loss_a + s.loss_b;
        note_memory(&mut peak);
    }
    // Kernels queued by the last untimed step must not land on the clock.
    let _ = device.sync();
    let start = Instant::now();
    for _ in 0..steps {
        let s = trainer.train_step(&a, &b);
        loss = s.loss_a + s.loss_b;
        note_memory(&mut peak);
    }
    let _ = device.sync();
    let ms_per_step = start.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64;
    StepTiming {
        ms_per_step,
        peak_device_bytes: peak,
        params: trainer.model().num_params(),
        loss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trend_check_passes_a_like_run_and_refuses_a_flat_or_broken_one() {
        let cpu: Vec<f32> = (0..40).map(|i| 10.0 - 0.15 * i as f32).collect();
        let like: Vec<f32> = cpu.iter().map(|l| l * 1.02).collect();
        assert_eq!(follows_cpu_trend(&like, &cpu), Ok(()));
        let flat = vec![10.0; 40];
        assert!(follows_cpu_trend(&flat, &cpu).unwrap_err().contains("fell"));
        let mut broken = like.clone();
        broken[7] = f32::NAN;
        assert!(follows_cpu_trend(&broken, &cpu).is_err());
        let far = vec![20.0; 40];
        assert!(
            follows_cpu_trend(&far, &cpu)
                .unwrap_err()
                .contains("starts")
        );
    }

    #[test]
    fn a_timed_cpu_step_reports_the_models_parameters() {
        let opts = SaehdOptions::parse("df", 32, 32, 8, 8, 4).unwrap();
        let t = time_steps(&opts, &Device::flex(), Precision::F32, 2, 1, 1);
        assert_eq!(t.params, opts.expected_params());
        assert!(t.ms_per_step > 0.0 && t.loss.is_finite(), "{t:?}");
        assert_eq!(t.peak_device_bytes, None);
    }
}
