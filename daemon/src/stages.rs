//! The stages as the job queue sees them: each [`JobSpec`] kind's validation (what can be
//! known before it runs) and its run. The one module that knows every stage; the queue
//! (`crate::jobs`) and the stages know nothing of each other beyond `JobContext`.

use std::path::Path;

use faceswap_protocol::{
    AverageJob, ConvertJob, ExtractFramesJob, ExtractJob, ImportJob, ImportSource, JobSpec,
    ToolJob, ToolSpec, TrainJob, XsegTrainJob,
};

use crate::jobs::{JobContext, JobError, JobHandlers, JobsError};

/// The daemon's handlers, registered with the queue by `serve`.
pub const HANDLERS: JobHandlers = JobHandlers { validate, run };

/// Dispatches a spec to its stage, which gets its own typed job.
fn run(spec: &JobSpec, ctx: &JobContext) -> Result<(), JobError> {
    match spec {
        JobSpec::ExtractFrames(ExtractFramesJob {
            input,
            output_dir,
            every_nth,
        }) => {
            crate::media::extract_frames(Path::new(input), Path::new(output_dir), *every_nth, ctx)
        }
        JobSpec::Extract(job) => crate::extract::run_job(job, ctx),
        JobSpec::Train(job) => crate::train::run_job(job, ctx),
        JobSpec::Convert(job) => crate::merge::convert::run_job(job, ctx),
        JobSpec::XsegTrain(job) => crate::masks::xseg::run_job(job, ctx),
        JobSpec::Tool(job) => crate::tools::run_job(job, ctx),
        JobSpec::Import(job) => crate::import::run_job(job, ctx),
        JobSpec::FacesetAverage(job) => crate::train::average::run_job(job, ctx),
    }
}

fn require_absolute(paths: &[(&str, &String)]) -> Result<(), JobsError> {
    for (what, p) in paths {
        if !Path::new(p).is_absolute() {
            return Err(JobsError::InvalidInput(format!(
                "{what} {p:?} must be an absolute path (the daemon has its own working folder)"
            )));
        }
    }
    Ok(())
}

/// A job's device spelling must name a device (training: or a comma list of them, data
/// parallel); whether they work here is the job's to find out when it starts.
fn check_device(device: Option<&str>, list: bool) -> Result<(), JobsError> {
    let Some(device) = device else {
        return Ok(());
    };
    if device.contains(',') && !list {
        return Err(JobsError::InvalidInput(format!(
            "device {device:?}: only training splits over several devices; name one"
        )));
    }
    for one in device.split(',') {
        crate::config::device_request(one.trim()).map_err(JobsError::InvalidInput)?;
    }
    Ok(())
}

/// Refuses a spec that cannot run: relative paths, missing inputs, unknown options.
pub fn validate(spec: &JobSpec) -> Result<(), JobsError> {
    match spec {
        JobSpec::ExtractFrames(job) => validate_extract_frames(job),
        JobSpec::Extract(job) => validate_extract(job),
        JobSpec::Train(job) => validate_train(job),
        JobSpec::Convert(job) => validate_convert(job),
        JobSpec::XsegTrain(job) => validate_xseg_train(job),
        JobSpec::Tool(job) => validate_tool(job),
        JobSpec::Import(job) => validate_import(job),
        JobSpec::FacesetAverage(job) => validate_average(job),
    }
}

fn validate_extract_frames(job: &ExtractFramesJob) -> Result<(), JobsError> {
    let ExtractFramesJob {
        input,
        output_dir,
        every_nth,
    } = job;
    require_absolute(&[("input", input), ("output folder", output_dir)])?;
    if !Path::new(input).is_file() {
        return Err(JobsError::InvalidInput(format!(
            "no such video file: {input}"
        )));
    }
    if *every_nth == 0 {
        return Err(JobsError::InvalidInput(
            "every_nth must be at least 1".into(),
        ));
    }
    Ok(())
}

fn validate_extract(job: &ExtractJob) -> Result<(), JobsError> {
    let ExtractJob {
        input,
        output_dir,
        size,
        every_nth,
        refeed,
        ..
    } = job;
    require_absolute(&[("input", input), ("output folder", output_dir)])?;
    if !Path::new(input).exists() {
        return Err(JobsError::InvalidInput(format!(
            "no such video or folder: {input}"
        )));
    }
    if !(32..=4096).contains(size) {
        return Err(JobsError::InvalidInput(format!(
            "face size {size} must be 32..4096"
        )));
    }
    if *every_nth == 0 || *refeed > 16 {
        return Err(JobsError::InvalidInput(
            "every_nth must be at least 1 and refeed at most 16".into(),
        ));
    }
    Ok(())
}

fn validate_train(job: &TrainJob) -> Result<(), JobsError> {
    let TrainJob {
        faceset_a,
        faceset_b,
        model_dir,
        settings,
    } = job;
    require_absolute(&[
        ("faceset A", faceset_a),
        ("faceset B", faceset_b),
        ("model folder", model_dir),
    ])?;
    for (side, dir) in [("A", faceset_a), ("B", faceset_b)] {
        if !Path::new(dir).is_dir() {
            return Err(JobsError::InvalidInput(format!(
                "faceset {side} {dir} is not a folder; run `faceswapd extract` first"
            )));
        }
    }
    crate::train::network_options(settings).map_err(JobsError::InvalidInput)?;
    check_device(settings.device.as_deref(), true)?;
    if settings.batch == 0 || settings.micro_batches > settings.batch {
        return Err(JobsError::InvalidInput(
            "batch must be at least 1 and micro_batches at most the batch".into(),
        ));
    }
    Ok(())
}

fn validate_convert(job: &ConvertJob) -> Result<(), JobsError> {
    let ConvertJob {
        input,
        alignments,
        model_dir,
        output,
        settings,
    } = job;
    require_absolute(&[
        ("input", input),
        ("alignments", alignments),
        ("model folder", model_dir),
        ("output", output),
    ])?;
    if !Path::new(input).exists() {
        return Err(JobsError::InvalidInput(format!(
            "input {input} does not exist"
        )));
    }
    if !Path::new(model_dir)
        .join(crate::train::MODEL_FILE)
        .is_file()
    {
        return Err(JobsError::InvalidInput(format!(
            "{model_dir} is not a model folder (no {}); train one with `faceswapd train`",
            crate::train::MODEL_FILE
        )));
    }
    crate::merge::convert::merge_settings(settings)
        .map_err(|e| JobsError::InvalidInput(e.to_string()))?;
    check_device(settings.device.as_deref(), false)?;
    Ok(())
}

fn validate_xseg_train(job: &XsegTrainJob) -> Result<(), JobsError> {
    let XsegTrainJob {
        facesets,
        model_dir,
        settings,
    } = job;
    let mut named: Vec<(&str, &String)> = vec![("model folder", model_dir)];
    named.extend(facesets.iter().map(|f| ("faceset", f)));
    require_absolute(&named)?;
    if facesets.is_empty() {
        return Err(JobsError::InvalidInput("name at least one faceset".into()));
    }
    if !settings.resolution.is_multiple_of(16) || settings.resolution < 32 {
        return Err(JobsError::InvalidInput(format!(
            "XSeg resolution {} must be a multiple of 16, at least 32",
            settings.resolution
        )));
    }
    check_device(settings.device.as_deref(), false)?;
    Ok(())
}

fn validate_tool(job: &ToolJob) -> Result<(), JobsError> {
    let ToolJob { faceset, tool } = job;
    let mut named: Vec<(&str, &String)> = vec![("faceset", faceset)];
    match tool {
        ToolSpec::Sort { out, .. } => {
            named.push(("output folder", out));
        }
        ToolSpec::Draw { source, out } => {
            named.push(("source", source));
            named.push(("output folder", out));
        }
        ToolSpec::MissingFrames { source } | ToolSpec::Extract { source, .. } => {
            named.push(("source", source));
        }
        ToolSpec::XsegApply { model, device } => {
            named.push(("XSeg model folder", model));
            check_device(device.as_deref(), false)?;
        }
        ToolSpec::MaskGenerate {
            bisenet:
                Some(faceswap_protocol::BisenetMask {
                    model: Some(model), ..
                }),
            ..
        } => named.push(("BiSeNet model", model)),
        _ => {}
    }
    require_absolute(&named)?;
    if !Path::new(faceset)
        .join(crate::faceset::ALIGNMENTS_FILE)
        .is_file()
    {
        return Err(JobsError::InvalidInput(format!(
            "{faceset} has no alignments.fsppa: point at a faceset folder `faceswapd extract` wrote"
        )));
    }
    Ok(())
}

fn validate_import(job: &ImportJob) -> Result<(), JobsError> {
    let mut named: Vec<(&str, &String)> = vec![("output folder", &job.out)];
    match &job.source {
        ImportSource::Fsa {
            alignments, source, ..
        } => {
            named.push(("alignments file", alignments));
            named.push(("source", source));
        }
        ImportSource::Dfl { aligned } => named.push(("DFL aligned folder", aligned)),
    }
    require_absolute(&named)?;
    for (what, p) in &named[1..] {
        if !Path::new(p).exists() {
            return Err(JobsError::InvalidInput(format!(
                "{what} {p} does not exist"
            )));
        }
    }
    Ok(())
}

fn validate_average(job: &AverageJob) -> Result<(), JobsError> {
    let mut named: Vec<(&str, &String)> = vec![("output folder", &job.out)];
    named.extend(job.inputs.iter().map(|f| ("faceset", f)));
    require_absolute(&named)?;
    if job.inputs.is_empty() || job.count == 0 {
        return Err(JobsError::InvalidInput(
            "name at least one faceset and write at least one face".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_and_missing_inputs_are_refused() {
        let relative = JobSpec::ExtractFrames(ExtractFramesJob {
            input: "relative.mp4".into(),
            output_dir: "/tmp".into(),
            every_nth: 1,
        });
        let e = validate(&relative).unwrap_err().to_string();
        assert!(e.contains("absolute path"), "{e}");
        let missing = JobSpec::ExtractFrames(ExtractFramesJob {
            input: "/no/such/video.mp4".into(),
            output_dir: "/tmp".into(),
            every_nth: 1,
        });
        let e = validate(&missing).unwrap_err().to_string();
        assert!(e.contains("no such video file"), "{e}");
    }
}
