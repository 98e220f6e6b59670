//! SAEHD-DF training speed on the CPU: ms per step and peak memory for our burn model, and in
//! the same run the same architecture, loss, optimiser (Adam) and batch in TensorFlow — what
//! DeepFaceLab users run — through `benches/reference/saehd_df_tf.py`, with the ratio.
//!
//! `cargo bench -p faceswap-tests --bench train_step`; sizes from `FSPP_BENCH_RES` (128),
//! `FSPP_BENCH_BATCH` (8 per side), `FSPP_BENCH_STEPS` (3 timed after one untimed),
//! `FSPP_BENCH_DIMS` (ae,e,d,d_mask: 256,64,64,22 = DFL's defaults). TensorFlow comes from
//! `$FSPP_BENCH_PYTHON`, else a private venv `<cache>/tools/tf-bench` with the pinned
//! `tensorflow-cpu==2.18.0` (created on first run from PyPI); skipped with a note when that
//! cannot be had.

use std::process::Command;

use faceswap_models::SaehdOptions;
use faceswap_models::train::Precision;
use faceswap_tests::{env_or, time_train_steps};

fn peak_rss_kb() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss
}

fn main() -> anyhow::Result<()> {
    // As the daemon runs training jobs.
    faceswapd::memory::keep_freed_memory();
    let res: usize = env_or("FSPP_BENCH_RES", 128);
    let batch: usize = env_or("FSPP_BENCH_BATCH", 8);
    let steps: usize = env_or("FSPP_BENCH_STEPS", 3);
    let dims: Vec<usize> = env_or("FSPP_BENCH_DIMS", "256,64,64,22".to_string())
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    anyhow::ensure!(dims.len() == 4, "FSPP_BENCH_DIMS is ae,e,d,d_mask");
    let opts = SaehdOptions::parse("df", res, dims[0], dims[1], dims[2], dims[3])
        .map_err(anyhow::Error::msg)?;
    println!(
        "SAEHD-DF {res} px, ae {} e {} d {} mask {}, batch {batch} per side, Adam, {} parameters",
        dims[0],
        dims[1],
        dims[2],
        dims[3],
        opts.expected_params()
    );

    let (ours_ms, _) = time_train_steps(&opts, Precision::F32, batch, steps);
    let ours_rss = peak_rss_kb();
    println!(
        "faceswap++ (burn flex, CPU): {ours_ms:.0} ms/step, peak RSS {} MiB",
        ours_rss / 1024
    );

    let python = match std::env::var("FSPP_BENCH_PYTHON") {
        Ok(p) => p.into(),
        Err(_) => faceswap_tests::bench_venv("tf-bench", "tensorflow-cpu==2.18.0")?,
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/reference/saehd_df_tf.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .args([res, batch, steps, dims[0], dims[1], dims[2], dims[3]].map(|v| v.to_string()))
        .output();
    let line = match &out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            println!(
                "TensorFlow reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return Ok(());
        }
        Err(e) => {
            println!("TensorFlow reference skipped ({}: {e})", python.display());
            return Ok(());
        }
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(v.len() == 3, "unexpected reference output {line:?}");
    println!(
        "TensorFlow 2.18 (oneDNN, CPU):  {:.0} ms/step, peak RSS {} MiB, {} parameters",
        v[0],
        v[1] as i64 / 1024,
        v[2]
    );
    println!(
        "ratio faceswap++ / TensorFlow: {:.2}× time, {:.2}× memory",
        ours_ms / v[0],
        ours_rss as f64 / v[1]
    );
    Ok(())
}
