//! Which compute device work runs on: a job's own `--device`, else the config's
//! `compute.device`, resolved by [`faceswap_models::select_device`] (the one rule).

use faceswap_models::{ComputeDevice, DeviceRequest, select_device};

use crate::config::{Config, LoadedConfig, device_request};
use crate::jobs::{JobContext, JobError};

/// The device a job runs on: `requested` (the job's `--device`), else `compute.device` as the
/// config file says now. Recorded on the job (`faceswapd jobs show`) and in its log.
pub fn job_device(requested: Option<&str>, ctx: &JobContext) -> Result<ComputeDevice, JobError> {
    let device = resolve(requested)?;
    ctx.ran_on(&device.to_string());
    Ok(device)
}

/// The devices a training job splits each batch over (`--devices cuda:0,cuda:1`: data
/// parallelism), the first holding the weights; one device when the request names one (or
/// none). Recorded on the job like [`job_device`].
pub fn job_devices(
    requested: Option<&str>,
    ctx: &JobContext,
) -> Result<Vec<ComputeDevice>, JobError> {
    let Some(list) = requested.filter(|r| r.contains(',')) else {
        return job_device(requested, ctx).map(|device| vec![device]);
    };
    let devices = list
        .split(',')
        .map(
            |one| match device_request(one.trim()).map_err(JobError::Failed)? {
                DeviceRequest::Auto => Err(JobError::Failed(format!(
                    "device list {list:?}: name each device (cuda:0,cuda:1); auto picks one"
                ))),
                DeviceRequest::Exact(_) => resolve(Some(one.trim())),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    ctx.ran_on(&names.join(","));
    Ok(devices)
}

/// [`job_device`] for work outside a job (the CLI's local XSeg apply).
pub fn resolve(requested: Option<&str>) -> Result<ComputeDevice, JobError> {
    let spelling = match requested {
        Some(d) => d.to_string(),
        None => {
            let dirs =
                crate::paths::Dirs::resolve().map_err(|e| JobError::Failed(e.to_string()))?;
            LoadedConfig::load(&dirs.config_file())
                .map_err(|e| JobError::Failed(e.to_string()))?
                .config
                .compute
                .device
        }
    };
    let request = device_request(&spelling).map_err(JobError::Failed)?;
    select_device(request).map_err(|e| JobError::Failed(format!("device {spelling}: {e}")))
}

/// The device the daemon's live renders (the plug-in's frames) use, and why it is not the
/// configured one when that cannot be used: renders then run on the CPU rather than fail,
/// and `faceswapd status` says so.
pub fn render_device(cfg: &Config) -> (ComputeDevice, Option<String>) {
    match resolve(Some(&cfg.compute.device)) {
        Ok(device) => (device, None),
        Err(why) => {
            let why = why.to_string();
            tracing::warn!(
                "compute.device = {}: {why}; the plug-in's renders use the cpu",
                cfg.compute.device
            );
            (ComputeDevice::CPU, Some(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_device_is_used_or_refused_never_swapped() {
        assert_eq!(resolve(Some("cpu")).unwrap(), ComputeDevice::CPU);
        let err = resolve(Some("tpu:0")).unwrap_err().to_string();
        assert!(err.contains("cuda[:N]"), "{err}");
        if faceswap_models::ComputeBackend::Cuda.device().is_none() {
            let err = resolve(Some("cuda:1")).unwrap_err().to_string();
            assert!(
                err.contains("device cuda:1") && err.contains("--features cuda"),
                "{err}"
            );
        }
        let cfg = Config {
            compute: crate::config::ComputeConfig {
                device: "cpu".into(),
            },
            ..Config::default()
        };
        assert_eq!(render_device(&cfg), (ComputeDevice::CPU, None));
    }
}
