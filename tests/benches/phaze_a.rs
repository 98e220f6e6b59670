//! Phaze-A on the CPU: every preset built at 64/128/256 px with one training step each
//! (parameter counts printed), then the 256 px "optimised" preset (fspp-256) at batch 8 against
//! SAEHD-DF at the same resolution and batch (DFL's default dims): parameters, peak memory and
//! ms per step, with the ratio.
//!
//! Then fspp-256 again with mixed precision (`FSPP_BENCH_PRECISION`, bf16; `f32` skips it).
//!
//! `cargo bench -p faceswap-tests --bench phaze_a`; `FSPP_BENCH_BATCH` (8 per side),
//! `FSPP_BENCH_STEPS` (2 timed after one untimed), `FSPP_BENCH_SIZES` (64,128,256) for the
//! preset matrix, `FSPP_BENCH_MATRIX=0` to skip it.

use std::time::Instant;

use faceswap_models::burn::module::Module;
use faceswap_models::phaze_a::PRESETS;
use faceswap_models::train::Precision;
use faceswap_models::{ModelOptions, PhazeAOptions, SaehdOptions};
use faceswap_tests::{env_or, time_train_steps};

/// Peak resident memory since the last [`reset_peak`], in MiB (Linux `VmHWM`).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets `VmHWM` to the current resident size (Linux: `5` into `clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Parameters, peak MiB and mean ms per step of `steps` timed steps after one untimed.
fn measure(
    opts: &ModelOptions,
    precision: Precision,
    batch: usize,
    steps: usize,
) -> (usize, f64, f64) {
    reset_peak();
    let (ms, t) = time_train_steps(opts, precision, batch, steps);
    (t.model().num_params(), peak_mib(), ms)
}

fn main() -> anyhow::Result<()> {
    // As the daemon runs training jobs.
    faceswapd::memory::keep_freed_memory();
    let batch: usize = env_or("FSPP_BENCH_BATCH", 8);
    let steps: usize = env_or("FSPP_BENCH_STEPS", 2);
    let sizes: Vec<usize> = env_or("FSPP_BENCH_SIZES", "64,128,256".to_string())
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    if env_or("FSPP_BENCH_MATRIX", 1) != 0 {
        println!("preset            size  encoder-in  parameters   first step (batch 2)");
        for (name, _) in PRESETS {
            for &res in &sizes {
                let o = PhazeAOptions::preset(name)?.at_resolution(res)?;
                let start = Instant::now();
                let (p, _, _) = measure(&ModelOptions::PhazeA(o.clone()), Precision::F32, 2, 0);
                println!(
                    "{name:<17} {res:>4}  {:>10}  {p:>10}   {:.1} s",
                    o.input_size(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }

    let fspp = ModelOptions::PhazeA(PhazeAOptions::preset("fspp-256")?);
    let (p_fspp, mem_fspp, ms_fspp) = measure(&fspp, Precision::F32, batch, steps);
    println!(
        "Phaze-A fspp-256, batch {batch}: {p_fspp} parameters, peak {mem_fspp:.0} MiB, {ms_fspp:.0} ms/step"
    );
    let df = ModelOptions::Saehd(
        SaehdOptions::parse("df", 256, 256, 64, 64, 22).map_err(anyhow::Error::msg)?,
    );
    let (p_df, mem_df, ms_df) = measure(&df, Precision::F32, batch, steps);
    println!(
        "SAEHD-DF 256 px (ae 256 e 64 d 64 mask 22), batch {batch}: {p_df} parameters, peak {mem_df:.0} MiB, {ms_df:.0} ms/step"
    );
    println!(
        "ratio fspp-256 / SAEHD-DF: {:.2}× time per step, {:.2}× peak memory, {:.2}× parameters",
        ms_fspp / ms_df,
        mem_fspp / mem_df,
        p_fspp as f64 / p_df as f64
    );
    let precision: String = env_or("FSPP_BENCH_PRECISION", "bf16".to_string());
    if let Some(half) = precision
        .parse::<Precision>()
        .ok()
        .filter(|p| *p != Precision::F32)
    {
        let (_, mem_half, ms_half) = measure(&fspp, half, batch, steps);
        println!(
            "fspp-256 mixed {precision}: peak {mem_half:.0} MiB, {ms_half:.0} ms/step; vs f32 {:.2}× memory, {:.2}× time",
            mem_half / mem_fspp,
            ms_half / ms_fspp
        );
    }
    Ok(())
}
