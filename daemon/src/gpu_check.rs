//! `faceswapd gpu-check`: the measurements `installers/gpu-check.sh` takes on a GPU machine, as
//! one markdown table. The smoke comparison (a seeded SAEHD-DF trains as on the CPU) on each GPU
//! backend, then training-step time and peak device memory of the models users train (SAEHD-DF
//! and LIAE-UDT at DFL's default dims, Phaze-A `fspp-256`) in f32 and in half precision.
//! `--quick` runs the same rows at small sizes, so the script is checked end to end on a
//! machine without a GPU (Mesa's lavapipe, the CPU).

use std::io::Write;

use clap::Args;
use faceswap_models::backend::{ComputeBackend, ComputeDevice, probe, probe_device};
use faceswap_models::gpu_check::{follows_cpu_trend, loss_ends, smoke_losses, time_steps};
use faceswap_models::train::Precision;
use faceswap_models::{ModelOptions, PhazeAOptions, SaehdOptions};

/// Arguments of `gpu-check`.
#[derive(Debug, Args)]
pub struct GpuCheckArgs {
    /// Small sizes and few steps: checks the whole run in minutes without a GPU.
    #[arg(long)]
    pub quick: bool,
    /// Also measure on software GPUs (lavapipe), which `auto` never uses: the software mode.
    #[arg(long)]
    pub software: bool,
    /// Devices to time on (default: each GPU backend built in that works, else the cpu).
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Timed steps per row (after two untimed ones).
    #[arg(long)]
    pub steps: Option<usize>,
}

/// One model the check times.
struct Workload {
    name: String,
    opts: ModelOptions,
    batch: usize,
    /// FLOPs of one step, where the architecture's are counted (SAEHD-DF).
    flops: Option<f64>,
}

fn workloads(quick: bool) -> Result<Vec<Workload>, String> {
    let (res, dims, batch) = if quick {
        (64, [64, 16, 16, 8], 2)
    } else {
        // DFL's SAEHD defaults: 256 px would be its "high" preset; dims ae 256, e/d 64, mask 22.
        (256, [256, 64, 64, 22], 8)
    };
    let saehd = |archi: &str| SaehdOptions::parse(archi, res, dims[0], dims[1], dims[2], dims[3]);
    let df = saehd("df")?;
    let fspp = PhazeAOptions::preset("fspp-256").map_err(|e| e.to_string())?;
    let fspp = if quick {
        fspp.at_resolution(res).map_err(|e| e.to_string())?
    } else {
        fspp
    };
    Ok(vec![
        Workload {
            name: format!("SAEHD-DF {res} px bs {batch}"),
            opts: ModelOptions::from(&df),
            batch,
            flops: df.train_step_flops(batch),
        },
        Workload {
            name: format!("SAEHD liae-udt {res} px bs {batch}"),
            opts: ModelOptions::from(&saehd("liae-udt")?),
            batch,
            flops: None,
        },
        Workload {
            name: format!("Phaze-A fspp-256 at {} px bs {batch}", fspp.output_size),
            opts: ModelOptions::from(&fspp),
            batch,
            flops: None,
        },
    ])
}

/// The GPU backends built in that run here (software adapters too with `software`).
fn working_gpus(software: bool) -> Vec<(ComputeDevice, String)> {
    faceswap_models::compiled_backends()
        .into_iter()
        .filter(|b| *b != ComputeBackend::Cpu)
        .filter_map(|b| {
            let device = ComputeDevice::from(b);
            match (probe(device), software) {
                (Ok(_), _) => Some((device, "hardware".to_string())),
                (
                    Err(faceswap_models::backend::ProbeError::SoftwareAdapter { adapter, .. }),
                    true,
                ) => probe_device(device)
                    .ok()
                    .map(|_| (device, format!("software: {adapter}"))),
                _ => None,
            }
        })
        .collect()
}

/// The half precision a backend trains in: bf16 where CUDA has it, f16 elsewhere.
fn half_precision(backend: ComputeBackend) -> Precision {
    match backend {
        ComputeBackend::Cuda => Precision::Bf16,
        _ => Precision::F16,
    }
}

/// Runs the check, writing its report (markdown) to `out` a line at a time (a run cut short
/// keeps what it measured); returns whether every smoke row passed.
pub fn run(args: &GpuCheckArgs, out: &mut dyn Write) -> Result<bool, String> {
    let mut line = |text: String| {
        // Progress, not data: a closed pipe must not stop the measuring.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    };
    let mut ok = true;
    let gpus = working_gpus(args.software);
    line("## Smoke: seeded SAEHD-DF 32 px, 40 Adam steps, loss against the CPU's\n".into());
    line("| device | adapter | loss first 5 → last 5 | CPU | verdict |".into());
    line("|---|---|---|---|---|".into());
    let cpu = smoke_losses(&burn_device(ComputeDevice::CPU)?);
    let (c0, c1) = loss_ends(&cpu);
    if gpus.is_empty() {
        line(format!(
            "| (no GPU backend works here) | | | {c0:.4} → {c1:.4} | — |"
        ));
    }
    for (device, adapter) in &gpus {
        let losses = smoke_losses(&burn_device(*device)?);
        let (g0, g1) = loss_ends(&losses);
        let verdict = match follows_cpu_trend(&losses, &cpu) {
            Ok(()) => "follows the CPU".to_string(),
            Err(why) => {
                ok = false;
                format!("FAILED: {why}")
            }
        };
        line(format!(
            "| {device} | {adapter} | {g0:.4} → {g1:.4} | {c0:.4} → {c1:.4} | {verdict} |"
        ));
    }

    let devices: Vec<ComputeDevice> = if args.devices.is_empty() {
        let mut d: Vec<ComputeDevice> = gpus.iter().map(|(d, _)| *d).collect();
        if d.is_empty() {
            d.push(ComputeDevice::CPU);
        }
        d
    } else {
        args.devices
            .iter()
            .map(|s| ComputeDevice::parse(s).ok_or_else(|| crate::config::unknown_device(s)))
            .collect::<Result<_, _>>()?
    };
    let steps = args.steps.unwrap_or(if args.quick { 2 } else { 10 });
    line(format!(
        "\n## Training step: Adam, fixed batches, {steps} timed steps after 2 untimed\n"
    ));
    line(
        "| model | device | precision | parameters | ms/step | peak device memory | TFLOP/s | loss |"
            .into(),
    );
    line("|---|---|---|---|---|---|---|---|".into());
    for w in workloads(args.quick)? {
        for device in &devices {
            for precision in [Precision::F32, half_precision(device.backend)] {
                let t = time_steps(
                    &w.opts,
                    &burn_device(*device)?,
                    precision,
                    w.batch,
                    2,
                    steps,
                );
                let memory = t.peak_device_bytes.map_or("— (not reported)".into(), |b| {
                    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
                });
                // Achieved, from the architecture's count: compare with the GPU's peak.
                let tflops = w
                    .flops
                    .map_or("—".into(), |f| format!("{:.2}", f / t.ms_per_step / 1e9));
                line(format!(
                    "| {} | {device} | {} | {} | {:.1} | {memory} | {tflops} | {:.4} |",
                    w.name,
                    Precision::name(precision),
                    t.params,
                    t.ms_per_step,
                    t.loss
                ));
            }
        }
    }
    Ok(ok)
}

fn burn_device(device: ComputeDevice) -> Result<faceswap_models::burn::tensor::Device, String> {
    device
        .device()
        .ok_or_else(|| format!("{device}: not built into this faceswapd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_rows_are_the_full_rows_small_and_df_counts_its_flops() {
        let quick = workloads(true).unwrap();
        let full = workloads(false).unwrap();
        assert_eq!(quick.len(), full.len());
        for (q, f) in quick.iter().zip(&full) {
            assert!(q.opts.resolution() < f.opts.resolution(), "{}", q.name);
        }
        assert_eq!(full[0].name, "SAEHD-DF 256 px bs 8");
        assert!(
            full[0].flops.is_some_and(|f| f > 1e12),
            "a 256 px DF step is > 1 TFLOP"
        );
        assert_eq!(
            full[2].opts.resolution(),
            256,
            "Phaze-A fspp-256 at its own size"
        );
        assert_eq!(half_precision(ComputeBackend::Cuda), Precision::Bf16);
        assert_eq!(half_precision(ComputeBackend::Vulkan), Precision::F16);
    }
}
