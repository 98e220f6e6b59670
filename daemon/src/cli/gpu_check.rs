//! `faceswapd gpu-check`: measure each GPU backend (what installers/gpu-check.sh runs).

use std::process::ExitCode;

/// Runs `faceswapd gpu-check`.
pub(super) fn run(args: crate::gpu_check::GpuCheckArgs) -> anyhow::Result<ExitCode> {
    let ok =
        crate::gpu_check::run(&args, &mut std::io::stdout().lock()).map_err(anyhow::Error::msg)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
