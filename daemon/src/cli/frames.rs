//! `faceswapd frames …`: write a video's frames as images, as a daemon job.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use faceswap_protocol::{ExtractFramesJob, JobSpec};

use super::session::*;

/// `faceswapd frames …`.
#[derive(Debug, Subcommand)]
pub enum FramesCommand {
    /// Write the frames of a video as PNG files (a resumable daemon job).
    Extract(ExtractFramesArgs),
}

/// Arguments of `frames extract`.
#[derive(Debug, Args)]
pub struct ExtractFramesArgs {
    /// Video file.
    pub input: PathBuf,
    /// Output folder.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Keep one frame in N.
    #[arg(long, default_value_t = 1)]
    pub every: u32,
    /// Return once queued instead of following progress.
    #[arg(long)]
    pub detach: bool,
}

/// Runs `faceswapd frames`.
pub(super) fn run(session: &Session, f: FramesCommand) -> anyhow::Result<ExitCode> {
    let FramesCommand::Extract(a) = f;
    let (input, out) = input_and_output(&a.input, &a.out)?;
    let mut c = session.connect()?;
    let spec = JobSpec::ExtractFrames(ExtractFramesJob {
        input: input.display().to_string(),
        output_dir: out.display().to_string(),
        every_nth: a.every,
    });
    let what = format!(
        "extract frames of {} into {}",
        input.display(),
        out.display()
    );
    submit_and_follow(&mut c, spec, &what, a.detach)
}
