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

use burn::tensor::Device;

use crate::SaehdOptions;
use crate::backend::{
    ComputeBackend, ProbeError, compiled_backends, probe, probe_device, software_only,
};
use crate::gpu_check::{
    SMOKE_BATCH, SMOKE_STEPS as STEPS, face_losses, follows_cpu_trend, loss_ends, pixels,
    smoke_losses as losses,
};
use crate::xseg::{XSegOptions, XSegTrainer};

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
        pixels(SMOKE_BATCH, 3, 32, 0.9, &device),
        pixels(SMOKE_BATCH, 1, 32, 2.1, &device)
            .greater_elem(0.5)
            .float(),
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

#[test]
fn gpu_training_follows_the_cpu_trend() {
    let cpu = losses(&Device::flex());
    let (c0, c1) = loss_ends(&cpu);
    eprintln!("cpu: loss {c0:.4} → {c1:.4} over {STEPS} steps");
    assert!(c1 < 0.8 * c0, "the CPU run itself did not learn: {cpu:?}");
    for (backend, device) in gpu_devices() {
        let gpu = losses(&device);
        let (g0, g1) = loss_ends(&gpu);
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
        if let Err(why) = follows_cpu_trend(&gpu, &cpu) {
            panic!("{}: {why}", backend.name());
        }
    }
}
