//! Which compute device a job runs on: [`Runtime::device`]'s rule (its own `--device`, else the
//! config's `compute.device`), recorded on the job.

use faceswap_models::{ComputeDevice, DeviceRequest};

use crate::config::device_request;
use crate::jobs::{JobContext, JobError};
use crate::runtime::Runtime;

/// The device a job runs on: `requested` (the job's `--device`), else `compute.device`.
/// Recorded on the job (`faceswapd jobs show`) and in its log.
pub fn job_device(requested: Option<&str>, ctx: &JobContext) -> Result<ComputeDevice, JobError> {
    let device = ctx.runtime().device(requested).map_err(JobError::Failed)?;
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
    let runtime: &Runtime = ctx.runtime();
    let devices = list
        .split(',')
        .map(
            |one| match device_request(one.trim()).map_err(JobError::Failed)? {
                DeviceRequest::Auto => Err(JobError::Failed(format!(
                    "device list {list:?}: name each device (cuda:0,cuda:1); auto picks one"
                ))),
                DeviceRequest::Exact(_) => {
                    runtime.device(Some(one.trim())).map_err(JobError::Failed)
                }
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    ctx.ran_on(&names.join(","));
    Ok(devices)
}
