//! Issue 4's GPU smoke run: a seeded SAEHD-DF at 32 px trains the same batches for a few steps
//! on the CPU and on every GPU backend built in (`--features vulkan` / `wgpu` / `cuda`); the
//! GPU's loss must fall as the CPU's does. Built only with a GPU feature, so the default test
//! run never needs a device:
//! `cargo test -p faceswap-models --features vulkan --lib gpu_smoke -- --nocapture`.
//! Without a GPU, Mesa's lavapipe (a Vulkan driver on the CPU) runs both paths:
//! `VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json cargo test -p faceswap-models
//! --features vulkan,wgpu --lib gpu_smoke -- --nocapture`. Its SPIR-V path needs our patched
//! cubecl-spirv (third_party/cubecl-spirv/PATCHED.md); upstream 0.11.3 crashed the driver.

use burn::tensor::{Device, Tensor};

use crate::backend::{ComputeBackend, ProbeError, probe, probe_device, software_only};
use crate::optim::LrSchedule;
use crate::train::{OptimizerKind, TrainerConfig};
use crate::{FaceTrainer, SaehdOptions, SideBatch};

const RES: usize = 32;
const BATCH: usize = 4;
const STEPS: usize = 40;

/// One side's batch from fixed pixel values: the same data on every device.
fn side(seed: f32, device: &Device) -> SideBatch {
    let values: Vec<f32> = (0..BATCH * 3 * RES * RES)
        .map(|i| 0.5 + 0.4 * (i as f32 * 0.0137 + seed).sin() * (i as f32 * 0.00071).cos())
        .collect();
    SideBatch::unmasked(
        Tensor::<1>::from_floats(values.as_slice(), device).reshape([BATCH, 3, RES, RES]),
    )
}

/// The summed A + B loss of every step of a seeded Adam run on `device`.
fn losses(device: &Device) -> Vec<f32> {
    let opts = SaehdOptions::parse("df", RES, 64, 16, 16, 8).expect("valid SAEHD options");
    let device = device.clone().autodiff();
    let mut trainer = FaceTrainer::new(
        &opts,
        &device,
        TrainerConfig {
            optimizer: OptimizerKind::Adam,
            // No warmup: a few steps must show the trend.
            schedule: LrSchedule {
                base: 1e-3,
                warmup: 0,
                cosine: None,
            },
            seed: 11,
            ..TrainerConfig::default()
        },
    );
    let (a, b) = (side(0.3, &device), side(1.7, &device));
    (0..STEPS)
        .map(|_| {
            let s = trainer.train_step(&a, &b);
            s.loss_a + s.loss_b
        })
        .collect()
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
    let mut ran = 0;
    for backend in ComputeBackend::ALL {
        let Some(device) = backend.device().filter(|_| backend != ComputeBackend::Cpu) else {
            continue;
        };
        // A software adapter (lavapipe) is allowed here: it checks the code path, not speed.
        if let Err(e) = probe_device(backend) {
            panic!("{e}: this test needs a working {} device", backend.name());
        }
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
        ran += 1;
    }
    assert!(ran > 0, "built without a GPU backend");
}
