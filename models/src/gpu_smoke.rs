//! Issue 4's GPU smoke run: a seeded SAEHD-DF at 32 px trains the same batches for a few steps
//! on the CPU and on every GPU backend built in (`--features vulkan` / `wgpu` / `cuda`); the
//! GPU's loss must fall as the CPU's does. A second test takes a few steps of SAEHD LIAE-UDT,
//! Phaze-A and XSeg on each GPU backend: every model family's kernels run there. Built only with
//! a GPU feature, so the default test run never needs a device:
//! `cargo test -p faceswap-models --features vulkan --lib gpu_smoke -- --nocapture`.
//! Without a GPU, Mesa's lavapipe (a Vulkan driver on the CPU) runs both paths:
//! `VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json cargo test -p faceswap-models
//! --features vulkan,wgpu --lib gpu_smoke -- --nocapture`. Its SPIR-V path needs our patched
//! cubecl-spirv (third_party/cubecl-spirv/PATCHED.md); upstream 0.11.3 crashed the driver.

use burn::tensor::{Device, Tensor};

use crate::backend::{
    ComputeBackend, ProbeError, compiled_backends, probe, probe_device, software_only,
};
use crate::optim::LrSchedule;
use crate::train::{OptimizerKind, TrainerConfig};
use crate::xseg::{XSegOptions, XSegTrainer};
use crate::{FaceTrainer, ModelOptions, SaehdOptions, SideBatch};

const RES: usize = 32;
const BATCH: usize = 4;
const STEPS: usize = 40;

/// Fixed pixel values in [0.1, 0.9], the same on every device: `[BATCH, channels, res, res]`.
fn pixels(channels: usize, res: usize, seed: f32, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..BATCH * channels * res * res)
        .map(|i| 0.5 + 0.4 * (i as f32 * 0.0137 + seed).sin() * (i as f32 * 0.00071).cos())
        .collect();
    Tensor::<1>::from_floats(values.as_slice(), device).reshape([BATCH, channels, res, res])
}

/// One side's batch at `res` px.
fn side_at(res: usize, seed: f32, device: &Device) -> SideBatch {
    SideBatch::unmasked(pixels(3, res, seed, device))
}

/// Seeded Adam without warmup: a few steps must show the trend.
fn adam(seed: u64) -> TrainerConfig {
    TrainerConfig {
        optimizer: OptimizerKind::Adam,
        schedule: LrSchedule {
            base: 1e-3,
            warmup: 0,
            cosine: None,
        },
        seed,
        ..TrainerConfig::default()
    }
}

/// The summed A + B loss of each of `steps` steps of a fresh `opts` model on `device`.
fn face_losses(
    opts: impl Into<ModelOptions>,
    res: usize,
    seed: u64,
    steps: usize,
    device: &Device,
) -> Vec<f32> {
    let device = device.clone().autodiff();
    let mut trainer = FaceTrainer::new(opts, &device, adam(seed));
    let (a, b) = (side_at(res, 0.3, &device), side_at(res, 1.7, &device));
    (0..steps)
        .map(|_| {
            let s = trainer.train_step(&a, &b);
            s.loss_a + s.loss_b
        })
        .collect()
}

/// The smoke run: SAEHD-DF at 32 px, every step's loss.
fn losses(device: &Device) -> Vec<f32> {
    let opts = SaehdOptions::parse("df", RES, 64, 16, 16, 8).expect("valid SAEHD options");
    face_losses(&opts, RES, 11, STEPS, device)
}

/// Each GPU backend built in, with its device; panics when one fails its probe, or none is built.
fn gpu_devices() -> Vec<(ComputeBackend, Device)> {
    let gpus: Vec<_> = compiled_backends()
        .into_iter()
        .filter(|&b| b != ComputeBackend::Cpu)
        .filter_map(|b| b.device().map(|d| (b, d)))
        .collect();
    assert!(!gpus.is_empty(), "built without a GPU backend");
    for (backend, _) in &gpus {
        // A software adapter (lavapipe) is allowed here: it checks the code path, not speed.
        if let Err(e) = probe_device(*backend) {
            panic!("{e}: this test needs a working {} device", backend.name());
        }
    }
    gpus
}

/// The first losses of one model of each other family on `device`, each from a fresh seeded
/// model: SAEHD LIAE-UDT (its own kernels: depth-to-space output, residual blocks, two inters),
/// Phaze-A at small widths (dense bottleneck, its upscalers) and XSeg (pooling, BCE).
fn other_models(device: &Device) -> Vec<(&'static str, Vec<f32>)> {
    const STEPS: usize = 3;
    let liae = SaehdOptions::parse("liae-udt", 64, 64, 16, 16, 8).expect("valid SAEHD options");
    let phaze = crate::phaze_a::build_tests::small();
    let mut out = vec![
        (
            "SAEHD liae-udt 64 px",
            face_losses(&liae, 64, 5, STEPS, device),
        ),
        ("Phaze-A 64 px", face_losses(&phaze, 64, 5, STEPS, device)),
    ];
    let device = device.clone().autodiff();
    let xseg = XSegOptions {
        resolution: 32,
        base: 8,
    };
    let mut trainer = XSegTrainer::new(&xseg, &device, 1e-3, 5);
    let (images, masks) = (
        pixels(3, 32, 0.9, &device),
        pixels(1, 32, 2.1, &device).greater_elem(0.5).float(),
    );
    let losses = (0..STEPS)
        .map(|_| trainer.train_step(images.clone(), masks.clone()))
        .collect();
    out.push(("XSeg 32 px", losses));
    out
}

#[test]
fn every_model_family_trains_on_the_gpu() {
    let cpu = other_models(&Device::flex());
    for (backend, device) in gpu_devices() {
        for ((name, gpu), (_, cpu)) in other_models(&device).into_iter().zip(&cpu) {
            eprintln!("{} {name}: {gpu:?}, CPU {cpu:?}", backend.name());
            assert!(gpu.iter().all(|l| l.is_finite()), "{name}: {gpu:?}");
            // Seeded weights are drawn per backend: the same loss scale, not the same value.
            assert!(
                (gpu[0] - cpu[0]).abs() < 0.25 * cpu[0],
                "{} {name}: starts at {}, CPU {}",
                backend.name(),
                gpu[0],
                cpu[0]
            );
        }
    }
}

/// Mean of the first and of the last five losses.
fn ends(losses: &[f32]) -> (f32, f32) {
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    (mean(&losses[..5]), mean(&losses[losses.len() - 5..]))
}

#[test]
fn gpu_training_follows_the_cpu_trend() {
    let cpu = losses(&Device::flex());
    let (c0, c1) = ends(&cpu);
    eprintln!("cpu: loss {c0:.4} → {c1:.4} over {STEPS} steps");
    assert!(c1 < 0.8 * c0, "the CPU run itself did not learn: {cpu:?}");
    for (backend, device) in gpu_devices() {
        let gpu = losses(&device);
        let (g0, g1) = ends(&gpu);
        let software = software_only(backend);
        if software.is_some() {
            // What `auto` and the daemon see: a software adapter is refused, not used.
            assert!(
                matches!(probe(backend), Err(ProbeError::SoftwareAdapter { .. })),
                "{}: the probe must refuse a software adapter",
                backend.name()
            );
        }
        let adapter = software.map_or("hardware".into(), |a| format!("software: {a}"));
        eprintln!("{} ({adapter}): loss {g0:.4} → {g1:.4}", backend.name());
        assert!(
            gpu.iter().all(|l| l.is_finite()),
            "{}: {gpu:?}",
            backend.name()
        );
        // Same data, same architecture: the start within 25 % and the fall within 0.15.
        assert!(
            (g0 - c0).abs() < 0.25 * c0,
            "{}: starts at {g0}, CPU {c0}",
            backend.name()
        );
        assert!(
            (g1 / g0 - c1 / c0).abs() < 0.15,
            "{}: fell to {:.3} of its start, CPU to {:.3}",
            backend.name(),
            g1 / g0,
            c1 / c0
        );
    }
}
