//! `faceswapd extract`: find, landmark and align faces, as a daemon job.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use faceswap_options::Centering;
use faceswap_protocol::{ExtractJob, JobSpec};

use super::session::*;

/// Arguments of `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Video file or folder of images.
    pub input: PathBuf,
    /// Faceset folder for aligned faces and the alignments store.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Aligned face size in pixels.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Centering / face type: legacy, face, head (faceswap); f, wf, dfl-head (DFL).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Centering::Legacy)]
    pub centering: Centering,
    /// Keep one frame in N.
    #[arg(long, default_value_t = 1)]
    pub every: u32,
    /// Extra jittered landmark runs averaged in (faceswap re-feed).
    #[arg(long, default_value_t = 0)]
    pub refeed: u32,
    /// Skip the second landmark pass.
    #[arg(long)]
    pub no_second_pass: bool,
    /// Videos: keep the raw landmarks of every frame (no temporal smoothing).
    #[arg(long)]
    pub no_smoothing: bool,
    /// At most this many faces per frame, the largest (DFL's max faces from image); 0: all.
    /// Tracking a video with this many faces skips the periodic re-detection.
    #[arg(long, default_value_t = 0)]
    pub max_faces: u32,
    /// Return once queued instead of following progress.
    #[arg(long)]
    pub detach: bool,
}

/// Runs `faceswapd extract`.
pub(super) fn run(session: &Session, a: ExtractArgs) -> anyhow::Result<ExitCode> {
    let (input, out) = input_and_output(&a.input, &a.out)?;
    let mut c = session.connect()?;
    let spec = JobSpec::Extract(ExtractJob {
        input: input.display().to_string(),
        output_dir: out.display().to_string(),
        size: a.size,
        centering: a.centering,
        every_nth: a.every,
        second_pass: !a.no_second_pass,
        refeed: a.refeed,
        smoothing: !a.no_smoothing,
        max_faces: a.max_faces,
    });
    let what = format!(
        "extract faces from {} into {}",
        input.display(),
        out.display()
    );
    submit_and_follow(&mut c, spec, &what, a.detach)
}
